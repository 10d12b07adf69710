"""postern queue, mailq and postern trace against real instances, running and stopped: a held message is
listed as held, released and delivered; --json is one JSON object per line that survives odd addresses;
delete of one ID leaves the others and delete deferred only the deferred ones; corrupt files are listed
apart; show prints envelope and content; mailq has Postfix's layout; trace follows a deferred message's
attempts and a bounce's new queue ID; every command answers --help and unknown ones exit 64."""
import json
import re
import smtplib
import subprocess

import pytest

from conftest import build_dir, free_port, postern_bin
from test_queue import _demo, _maildir_files, _queued, _wait

EX_USAGE = 64
EX_NOINPUT = 66


@pytest.fixture
def qinst(make_instance):
    """A stopped instance whose remote mail goes to a closed loopback port (so it is deferred)."""
    inst = make_instance(start=False)
    for prog in ('qmgr', 'local', 'smtp'):
        if not (build_dir() / 'bin' / prog).exists():
            pytest.skip(f'not built yet: {prog}')
    inst.cli('config', 'set', 'queue_scan_interval=1s', f'relayhost=[127.0.0.1]:{free_port()}',
             'smtp_tls_security_level=none', 'smtp_connect_timeout=2s', check=True)
    return inst


def _json(inst):
    r = inst.cli('queue', 'list', '--json', check=True)
    return [json.loads(line) for line in r.stdout.splitlines()]


def _by_id(inst):
    return {m['queue_id']: m for m in _json(inst)}


def test_hold_list_release_deliver(qinst):
    inst = qinst
    user, maildir = _demo(inst)
    qid = _queued(inst, 'sender@remote.test', [user], 'held one')
    other = _queued(inst, 'sender@remote.test', [user], 'not held')
    # stopped: the request is done on disk
    assert inst.cli('queue', 'hold', qid, check=True).stdout.strip() == '1 message'
    assert _by_id(inst)[qid]['queue_name'] == 'hold'
    inst.start()
    _wait(lambda: len(_maildir_files(maildir)) == 1, what='the message not held', inst=inst)
    inst.wait_log(rf'{other}: removed')
    msgs = _by_id(inst)
    assert list(msgs) == [qid] and msgs[qid]['queue_name'] == 'hold'
    assert msgs[qid]['recipients'][0]['address'] == user
    assert re.search(rf'^{qid}!', inst.run('mailq', '-C', inst.dir, check=True).stdout, re.M)
    assert len(_maildir_files(maildir)) == 1        # held: not delivered
    # running: the request goes to qmgr
    assert inst.cli('queue', 'release', qid, check=True).stdout.strip() == '1 message'
    _wait(lambda: len(_maildir_files(maildir)) == 2, what='the released message', inst=inst)
    inst.wait_log(rf'{qid}: removed')
    assert 'Mail queue is empty' in inst.cli('queue', 'list', check=True).stdout
    trace = inst.cli('trace', qid, check=True).stdout
    events = [re.search(rf': {qid}: (held|released|to=<[^>]*>.*status=sent|removed)', l) for l in
              trace.splitlines()]
    assert [m.group(1).split(',')[0] for m in events if m] == ['held', 'released', f'to=<{user}>', 'removed'], trace


def test_offline_after_a_run(qinst):
    """Stopped after running (master's lock file exists): requests are done on disk under that lock."""
    inst = qinst
    user, maildir = _demo(inst)
    inst.start()
    inst.stop()
    ids = [_queued(inst, 'sender@remote.test', [user], f'offline {i}') for i in range(2)]
    assert inst.cli('queue', 'hold', 'ALL', check=True).stdout.strip() == '2 messages'
    assert inst.cli('queue', 'release', ids[1], check=True).stdout.strip() == '1 message'
    assert inst.cli('queue', 'flush', check=True).stdout.strip() == '0 messages'     # no state yet
    msgs = _by_id(inst)
    assert msgs[ids[0]]['queue_name'] == 'hold' and msgs[ids[1]]['queue_name'] == 'active'
    inst.start()
    _wait(lambda: len(_maildir_files(maildir)) == 1, what='the released message', inst=inst)
    inst.wait_log(rf'{ids[1]}: removed')
    assert list(_by_id(inst)) == [ids[0]]
    trace = inst.cli('trace', ids[0], check=True).stdout
    assert re.search(rf': {ids[0]}: held \(qmgr not running\)$', trace, re.M), trace


def test_json_escaping(qinst):
    inst = qinst
    odd = ['"quoted\\back"@remote.test', 'caf\u00e9@remote.test']
    qid = _queued(inst, 'we"ird\\\t@remote.test', odd, 'odd addresses')
    m = _by_id(inst)[qid]
    assert m['queue_name'] == 'incoming' and m['sender'] == 'we"ird\\\t@remote.test'
    assert m['message_size'] > 0 and isinstance(m['arrival_time'], int)
    assert [r['address'] for r in m['recipients']] == odd
    assert {r['status'] for r in m['recipients']} == {'pending'}
    inst.cli('queue', 'delete', qid, check=True)    # its sender could not be sent a bounce in SMTP
    # running, through qmgr: the same fields, and the deferral reason once tried
    qid = _queued(inst, 'sender@remote.test', odd, 'odd addresses')
    inst.start()
    inst.wait_log(rf'{qid}: to=<.*status=deferred')
    _wait(lambda: all(r['status'] == 'deferred' for r in _by_id(inst)[qid]['recipients']), what='deferral',
          inst=inst)
    m = _by_id(inst)[qid]
    assert [r['address'] for r in m['recipients']] == odd
    assert all(r['delay_reason'] and r['attempts'] >= 1 for r in m['recipients']), m


def test_delete_one_and_deferred(qinst):
    inst = qinst
    user, maildir = _demo(inst)
    ids = [_queued(inst, 'sender@remote.test', ['far@remote.test'], f'n{i}') for i in range(3)]
    # stopped: one ID goes, the others stay
    assert inst.cli('queue', 'delete', ids[0], check=True).stdout.strip() == '1 message'
    assert set(_by_id(inst)) == set(ids[1:])
    r = inst.cli('queue', 'delete', ids[0])
    assert r.returncode == EX_NOINPUT and 'no such message' in r.stderr
    assert inst.cli('queue', 'delete').returncode == EX_USAGE      # never "everything" by accident
    inst.start()
    for qid in ids[1:]:
        inst.wait_log(rf'{qid}: to=<far@remote\.test>.*status=deferred')
    _wait(lambda: {m['queue_name'] for m in _json(inst)} == {'deferred'}, what='deferred/', inst=inst)
    # running: one ID, then "deferred" leaves a held message alone
    assert inst.cli('queue', 'delete', ids[1], check=True).stdout.strip() == '1 message'
    assert set(_by_id(inst)) == {ids[2]}
    held = _queued(inst, 'sender@remote.test', ['far@remote.test'], 'held')
    inst.cli('queue', 'hold', held, check=True)
    _wait(lambda: _by_id(inst).get(held, {}).get('queue_name') == 'hold', what='the hold', inst=inst)
    assert inst.cli('queue', 'delete', 'deferred', check=True).stdout.strip() == '1 message'
    assert set(_by_id(inst)) == {held}
    inst.wait_log(rf'{ids[2]}: removed by the administrator')
    assert inst.cli('queue', 'delete', 'ALL', check=True).stdout.strip() == '1 message'
    assert _json(inst) == []


def test_requeue_flush_and_trace_deferred(qinst):
    inst = qinst
    inst.cli('config', 'set', 'minimal_backoff_time=1h', check=True)
    inst.start()
    qid = _queued(inst, 'sender@remote.test', ['far@remote.test'], 'deferred')
    attempt = rf'{qid}: to=<far@remote\.test>, relay=smtp, .*status=deferred'
    inst.wait_log(attempt)
    assert inst.cli('queue', 'flush', qid, check=True).stdout.strip() == '1 message'
    _wait(lambda: len([l for l in inst.log_lines() if re.search(attempt, l)]) >= 2, what='a second attempt',
          inst=inst)
    assert inst.cli('queue', 'requeue', 'ALL', check=True).stdout.strip() == '1 message'
    _wait(lambda: len([l for l in inst.log_lines() if re.search(attempt, l)]) >= 3, what='a third attempt',
          inst=inst)
    # sendmail -q is the same flush while the mail system runs
    r = inst.run('sendmail', '-C', inst.dir, '-q')
    assert r.returncode == 0, r.stderr
    _wait(lambda: len([l for l in inst.log_lines() if re.search(attempt, l)]) >= 4, what='a fourth attempt',
          inst=inst)
    # the classic listing: the reason in parentheses over the recipient
    mailq = inst.run('mailq', '-C', inst.dir, check=True).stdout.splitlines()
    assert mailq[0] == '-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------'
    i = next(i for i, l in enumerate(mailq) if l.startswith(qid))
    assert re.match(rf'^{qid}[ *] +\d+ \w{{3}} \w{{3}} [ \d]\d \d\d:\d\d:\d\d +sender@remote\.test$', mailq[i])
    assert mailq[i + 1].startswith('(') and mailq[i + 1].endswith(')') and mailq[i + 2].strip() == 'far@remote.test'
    assert mailq[-1] == '-- 1 Kbytes in 1 Request.'
    # trace: how it arrived, then each attempt with relay, delay and status
    trace = inst.cli('trace', qid, check=True).stdout.splitlines()
    assert re.search(rf': {qid}: from=<sender@remote\.test>', trace[0]), trace
    tries = [l for l in trace if re.search(attempt, l)]
    assert len(tries) >= 4 and all(re.search(r'delay=[\d.]+, dsn=4\.\d\.\d', l) for l in tries), trace
    assert all(qid in l for l in trace)


def test_trace_follows_bounce(qinst):
    inst = qinst
    user, maildir = _demo(inst)
    inst.start()
    qid = _queued(inst, user, [f'nobody-here@{inst.domain}'], 'bounces')
    nid = inst.wait_log(rf'{qid}: sender non-delivery notification: ([0-9A-Z]+)').group(1)
    inst.wait_log(rf'{nid}: removed')
    trace = inst.cli('trace', qid, check=True).stdout
    m = re.search(rf': {qid}: sender non-delivery notification: ([0-9A-Z]+)$', trace, re.M)
    assert m, trace
    assert re.search(rf': {m.group(1)}: to=<{re.escape(user)}>.*status=sent', trace), trace
    r = inst.cli('trace', '0000000000000AB')
    assert r.returncode == 1 and 'no log lines' in r.stderr


def test_trace_smtp_reception(qinst):
    inst = qinst
    user, maildir = _demo(inst)
    inst.start()
    with smtplib.SMTP('127.0.0.1', inst.port('smtp'), timeout=10) as s:
        s.sendmail('someone@remote.test', [user], b'Subject: traced\r\n\r\nhi\r\n')
    qid = inst.wait_log(r'([0-9A-Z]+): from=<someone@remote\.test> size=').group(1)
    inst.wait_log(rf'{qid}: removed')
    trace = [l.split(': ', 2)[-1] for l in inst.cli('trace', qid, check=True).stdout.splitlines()]
    assert trace[0].startswith(f'{qid}: client=') and '127.0.0.1' in trace[0], trace
    assert any(l.startswith(f'{qid}: from=<someone@remote.test>, size=') and '(queue active)' in l for l in trace)
    assert any(l.startswith(f'{qid}: to=<{user}>') and 'status=sent' in l for l in trace), trace
    assert trace[-1] == f'{qid}: removed', trace


def test_show_and_corrupt(qinst):
    inst = qinst
    qid = _queued(inst, 'sender@remote.test', ['a@remote.test', 'b@remote.test'], 'shown', body='the body\n',
                  extra='X-Test: yes\n')
    out = inst.cli('queue', 'show', qid, check=True).stdout
    head, _, content = out.partition('\n\n')
    assert f'Queue-ID: {qid}' in head and 'Queue: incoming' in head and 'Sender: <sender@remote.test>' in head
    assert 'Recipient: <a@remote.test> new' in head and 'Recipient: <b@remote.test> new' in head
    assert 'Subject: shown\nX-Test: yes\n\nthe body\n' in content
    assert inst.cli('queue', 'show', '0000000000000AB').returncode == EX_NOINPUT
    # a corrupt file is listed apart and does not make the queue look non-empty
    inst.cli('queue', 'delete', qid, check=True)
    inst.path('queue', 'corrupt', '0000000000000AB').write_text('junk')
    listing = inst.cli('queue', 'list', check=True).stdout
    assert listing.startswith('Mail queue is empty\n') and 'Corrupt' in listing and '0000000000000AB' in listing
    assert _json(inst) == []


def _commands():
    out = subprocess.run([str(postern_bin()), 'help'], stdout=subprocess.PIPE, text=True, check=True).stdout
    return re.findall(r'^  (\S+)', out, re.M)


def test_help_and_usage_everywhere(tmp_path):
    cmds = _commands()
    assert {'queue', 'trace', 'map', 'config', 'check', 'mailq', 'sendmail', 'newaliases'} <= set(cmds)
    env = {'POSTERN_DIR': str(tmp_path / 'none'), 'PATH': '/usr/bin:/bin'}
    for c in cmds:
        r = subprocess.run([str(postern_bin()), c, '--help'], capture_output=True, text=True, env=env, timeout=10)
        assert r.returncode == 0 and r.stdout.startswith(f'usage: postern {c} '), (c, r)
        if c == 'help':
            continue
        r = subprocess.run([str(postern_bin()), c, '--no-such-option'], capture_output=True, text=True, env=env,
                           timeout=10)
        assert r.returncode == EX_USAGE and 'usage' in r.stderr, (c, r)
    r = subprocess.run([str(postern_bin()), 'no-such-command'], capture_output=True, text=True, timeout=10)
    assert r.returncode == EX_USAGE and 'usage: postern COMMAND' in r.stderr
    for sub in ('list', 'show', 'delete', 'hold'):
        r = subprocess.run([str(postern_bin()), 'queue', sub, '--bogus'], capture_output=True, text=True,
                           env=env, timeout=10)
        assert r.returncode == EX_USAGE, (sub, r)
        r = subprocess.run([str(postern_bin()), 'queue', sub, '--help'], capture_output=True, text=True,
                           env=env, timeout=10)
        assert r.returncode == 0 and r.stdout.startswith('usage: postern queue '), (sub, r)


def test_inject_as_root_into_unprivileged_instance(make_instance):
    """root runs `postern queue inject` into an instance whose daemons run as nobody: the queue file must be
    nobody's like the queue, or qmgr cannot open it ("open active/ID: Permission denied") and it never leaves."""
    import os
    from pathlib import Path
    if os.geteuid() != 0:
        pytest.skip('needs root: the CLI runs as root, the daemons as nobody')
    inst = make_instance(extra_args=('--user', 'nobody'))
    for p in [inst.dir, *inst.dir.parents]:     # nobody must reach the instance (test directories are private)
        if p == Path('/'):
            break
        os.chmod(p, os.stat(p).st_mode | 0o005)
    inst.start()
    user, maildir = _demo(inst)
    qid = _queued(inst, 'root@example.org', [user], 'root inject')
    _wait(lambda: _maildir_files(maildir), what='delivery of the injected message', inst=inst)
    assert 'Permission denied' not in '\n'.join(inst.log_lines())
    assert any(qid in line for line in inst.log_lines())
