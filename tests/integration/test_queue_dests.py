"""Destinations in the queue, with Postfix's smtp-sink as the next hop: one domain's server is down while
another domain's mail flows. The down destination is marked dead after its first attempts, so its other mail
waits ("delivery temporarily suspended") instead of trying the dead server message by message; the live one
gets its mail at no more than default_destination_concurrency_limit connections at once."""
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import build_dir, free_port
from test_queue import _queued, _wait

SINK = '/usr/sbin/smtp-sink'
N = 8            # messages per destination
LIMIT = 2        # default_destination_concurrency_limit


def _established(port):
    """Our client connections to port that are open now."""
    out = subprocess.run(['ss', '-Htn', 'state', 'established', f'( dport = :{port} )'], capture_output=True,
                         text=True).stdout
    return sum(1 for line in out.splitlines() if line.strip())


@pytest.fixture
def sink():
    if not os.path.exists(SINK) or not shutil.which('ss'):
        pytest.skip('needs smtp-sink (postfix) and ss (iproute2)')
    port = free_port()
    # smtp-sink writes as nobody when started as root: a directory it can reach (pytest's tmp_path is 0700)
    top = pathlib.Path(tempfile.mkdtemp(prefix='postern-sink-'))
    dump = top / 'sink'
    dump.mkdir()
    os.chmod(top, 0o755)
    os.chmod(dump, 0o777)
    args = [SINK, '-d', f'{dump}/msg.', '-w', '1']      # a second per message, so sessions overlap
    if os.geteuid() == 0:
        args += ['-u', 'nobody']
    proc = subprocess.Popen(args + [f'127.0.0.1:{port}', '64'], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: subprocess.run(['ss', '-Htln', f'( sport = :{port} )'], capture_output=True,
                                     text=True).stdout.strip(), what='smtp-sink listening')
        yield port, dump
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(top, ignore_errors=True)


def test_dead_destination_waits_while_another_flows(make_instance, sink):
    up_port, dump = sink
    down_port = free_port()     # nothing listens here
    inst = make_instance(start=False)
    for prog in ('qmgr', 'local', 'smtp'):
        if not (build_dir() / 'bin' / prog).exists():
            pytest.skip(f'not built yet: {prog}')
    tmap = inst.path('etc', 'transport')
    tmap.write_text(f'up.test smtp:[127.0.0.1]:{up_port}\ndown.test smtp:[127.0.0.1]:{down_port}\n')
    inst.run('map', 'compile', tmap, check=True)
    # the first retry 5 min after a failure is 5 s here
    inst.cli('config', 'set', 'queue_scan_interval=1s', 'queue_time_scale=60', f'transport_maps={tmap}',
             'smtp_tls_security_level=none', 'smtp_connection_reuse_time=0', 'smtp_connect_timeout=2s',
             f'default_destination_concurrency_limit={LIMIT}', check=True)
    # queued while stopped, so that all of it is due at once when qmgr starts
    up = [_queued(inst, 'sender@local.test', [f'u{i}@up.test'], f'up {i}') for i in range(N)]
    down = [_queued(inst, 'sender@local.test', [f'd{i}@down.test'], f'down {i}') for i in range(N)]
    inst.start()
    t0 = time.monotonic()

    most = 0

    def up_done():
        nonlocal most
        most = max(most, _established(up_port))
        log = '\n'.join(inst.log_lines())
        return all(re.search(rf'{qid}: to=<u\d+@up\.test>, relay=smtp, .*status=sent', log) for qid in up)
    _wait(up_done, timeout=30, what='the mail for up.test delivered', inst=inst)
    took = time.monotonic() - t0
    assert len(list(dump.iterdir())) == N

    # at most LIMIT sessions at once, and really in parallel: N one-second sessions took about N/LIMIT s
    assert most <= LIMIT, most
    assert most == LIMIT or took < N * 0.9, (most, took)

    inst.wait_log(r'destination down\.test marked dead for 5\.0 s: .*refused', timeout=10)
    suspended = rf'to=<d\d+@down\.test>, relay=smtp, .*status=deferred \(delivery temporarily suspended: '
    _wait(lambda: sum(1 for line in inst.log_lines() if re.search(suspended, line)) >= N - LIMIT,
          what='the rest of down.test suspended', inst=inst)
    lines = inst.log_lines()
    tried = [line for line in lines if re.search(r'to=<d\d+@down\.test>, relay=smtp, .*status=deferred', line)
             and 'temporarily suspended' not in line]
    # the first round tried at most LIMIT of them; whatever else was tried by now is one probe per dead period
    periods = (time.monotonic() - t0) / 5.0
    print(f'\nup.test: {N} messages in {took:.1f}s, at most {most} connections at once; down.test: '
          f'{len(tried)} attempts in {periods * 5:.1f}s')
    assert len(tried) <= LIMIT + int(periods) + 1, (len(tried), tried)
    listing = inst.cli('queue', 'list', check=True).stdout
    assert all(qid in listing for qid in down), listing
    assert 'delivery temporarily suspended' in listing
