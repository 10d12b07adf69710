"""Queue faults, with the queue's clock sped up (queue_time_scale): a next hop that is down for an "hour" (mail
deferred, retried on schedule, the reason shown by `postern queue list`, a delay warning to the sender after
delay_warning_time, delivered once the hop is back), expiry after maximal_queue_lifetime (bounced to the
sender), truncated queue files in incoming/ and deferred/ (set aside in corrupt/, the rest goes on), a
full queue filesystem (452, nothing damaged, resumes), and smtp's receipts after a crash."""
import os
import re
import smtplib
import subprocess
import time

import pytest

from conftest import build_dir, free_port
from queue_sink import Sink
from test_queue import _demo, _maildir_files, _queued, _wait

SCALE = 3600    # an hour of queue time is a second


@pytest.fixture
def relay_inst(make_instance):
    """An instance whose remote mail goes to a sink on a loopback port; the sink starts closed."""
    inst = make_instance(start=False)
    for prog in ('qmgr', 'local', 'smtp'):
        if not (build_dir() / 'bin' / prog).exists():
            pytest.skip(f'not built yet: {prog}')
    sink = Sink(free_port())
    inst.sink = sink
    inst.cli('config', 'set', 'queue_scan_interval=1s', f'queue_time_scale={SCALE}',
             f'relayhost=[127.0.0.1]:{sink.port}', 'smtp_tls_security_level=none', 'smtp_connect_timeout=2s',
             check=True)
    yield inst
    sink.close()


def _reports(maildir, subject):
    out = []
    for f in _maildir_files(maildir):
        text = f.read_text(errors='replace')
        if re.search(rf'^Subject: {re.escape(subject)}$', text, re.M):
            out.append(text)
    return out


def test_next_hop_down_for_an_hour(relay_inst):
    inst = relay_inst
    # first retry after 5 min (0.08 s here), doubling up to 15 min; a warning after 30 min; 5 days to live
    inst.cli('config', 'set', 'minimal_backoff_time=5m', 'maximal_backoff_time=15m', 'delay_warning_time=30m',
             check=True)
    inst.start()
    user, maildir = _demo(inst)
    qid = _queued(inst, user, ['far@remote.test'], 'waits for the hop')
    deferred = rf'{qid}: to=<far@remote\.test>, relay=smtp, .*status=deferred'
    inst.wait_log(deferred, timeout=20)

    # the reason is in the listing
    listing = inst.cli('queue', 'list', check=True).stdout
    assert qid in listing and 'far@remote.test' in listing, listing
    assert re.search(r'4\.\d\.\d \(.*(127\.0\.0\.1|refused|connect).*\)', listing, re.I), listing

    # retried on schedule: several attempts in the "hour" the hop is down, not one per scan or a busy loop
    time.sleep(1.0)
    attempts = [l for l in inst.log_lines() if re.search(deferred, l)]
    assert 2 <= len(attempts) <= 12, attempts

    # the delay warning reached the sender, once
    warning = _wait(lambda: _reports(maildir, 'Delayed Mail (still being retried)'), timeout=20,
                    what='the delay warning', inst=inst)
    assert len(warning) == 1
    assert 'Action: delayed' in warning[0] and 'Final-Recipient: rfc822; far@remote.test' in warning[0]
    assert re.search(rf'^X-Postern-Queue-ID: {qid}$', warning[0], re.M)

    # the hop comes back: delivered on the next retry, exactly once, and the queue is empty
    inst.sink.open()
    inst.wait_log(rf'{qid}: to=<far@remote\.test>, relay=smtp, .*status=sent', timeout=20)
    inst.wait_log(rf'{qid}: removed', timeout=10)
    assert inst.sink.subjects(r'^Subject: (waits for the hop)\r?$') == {'waits for the hop': 1}
    assert 'Mail queue is empty' in inst.cli('queue', 'list', check=True).stdout
    time.sleep(0.5)
    assert len(_reports(maildir, 'Delayed Mail (still being retried)')) == 1
    assert not _reports(maildir, 'Undelivered Mail Returned to Sender')


def test_expired_after_queue_lifetime(relay_inst):
    inst = relay_inst
    inst.cli('config', 'set', 'minimal_backoff_time=10m', 'maximal_backoff_time=30m',
             'maximal_queue_lifetime=2h', check=True)
    inst.start()
    user, maildir = _demo(inst)
    qid = _queued(inst, user, ['never@remote.test'], 'never arrives', body='the original text\n')
    inst.wait_log(rf'{qid}: to=<never@remote\.test>, relay=smtp, .*status=deferred', timeout=20)
    inst.wait_log(rf'{qid}: to=<never@remote\.test>, relay=smtp, .*status=bounced \(delivery time expired',
                  timeout=30)
    inst.wait_log(rf'{qid}: removed', timeout=10)
    bounce = _wait(lambda: _reports(maildir, 'Undelivered Mail Returned to Sender'), timeout=20,
                   what='the expiry bounce', inst=inst)
    assert len(bounce) == 1
    text = bounce[0]
    assert 'Action: failed' in text and 'Final-Recipient: rfc822; never@remote.test' in text
    assert re.search(r'^Status: 4\.\d\.\d$', text, re.M), text    # the last temporary error is reported
    assert 'the original text' in text
    # the message lived at least its (scaled) lifetime
    delay = float(inst.wait_log(rf'{qid}: to=<never@remote\.test>, .*delay=([0-9.]+), .*status=bounced').group(1))
    assert delay >= 2 * 3600 / SCALE
    assert 'Mail queue is empty' in inst.cli('queue', 'list', check=True).stdout


def _truncate(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[:keep(len(data))])


def test_truncated_queue_files(relay_inst):
    inst = relay_inst
    inst.cli('config', 'set', 'minimal_backoff_time=1h', 'maximal_backoff_time=1h', check=True)
    inst.start()
    user, maildir = _demo(inst)
    # one message deferred (hop down), then the instance stops
    deferred = _queued(inst, user, ['later@remote.test'], 'deferred one')
    inst.wait_log(rf'{deferred}: to=<later@remote\.test>, .*status=deferred', timeout=20)
    _wait(lambda: inst.path('queue', 'deferred', deferred).exists(), what='the file in deferred/', inst=inst)
    inst.stop()
    # while stopped: three new messages; one is cut inside its envelope, one inside its content
    cut_env = _queued(inst, 'a@remote.test', [user], 'cut in the envelope')
    cut_body = _queued(inst, 'a@remote.test', [user], 'cut in the body', body='x' * 5000 + '\n')
    good = _queued(inst, 'a@remote.test', [user], 'intact')
    _truncate(inst.path('queue', 'incoming', cut_env), lambda n: 20)
    _truncate(inst.path('queue', 'incoming', cut_body), lambda n: n - 100)
    _truncate(inst.path('queue', 'deferred', deferred), lambda n: n // 2)
    since = len(inst.log_lines())
    inst.start()
    for qid in (cut_env, cut_body, deferred):
        inst.wait_log(rf'{qid}: corrupt queue file', timeout=20, since=since)
        _wait(lambda: inst.path('queue', 'corrupt', qid).exists(), what=f'{qid} in corrupt/', inst=inst)
    inst.wait_log(rf'{good}: to=<{re.escape(user)}>, relay=local, .*status=sent', timeout=20, since=since)
    subjects = [re.search(r'^Subject: (.*)$', f.read_text(), re.M).group(1) for f in _maildir_files(maildir)]
    assert 'intact' in subjects
    assert 'cut in the envelope' not in subjects and 'cut in the body' not in subjects
    # nothing of the corrupt ones is left in the queue or its state; the listing shows them as corrupt
    inst.wait_log(rf'{deferred}: state without a queue file dropped', timeout=10, since=since)
    for d in ('incoming', 'active', 'deferred'):
        _wait(lambda: not list(inst.path('queue', d).iterdir()), what=f'an empty {d}/', inst=inst)
    listing = inst.cli('queue', 'list', check=True).stdout
    assert sorted(re.findall(r'^(\S+) +corrupt$', listing, re.M)) == sorted([cut_env, cut_body, deferred]), listing
    assert listing.startswith('Mail queue is empty\n'), listing     # corrupt files are listed apart, not counted


def test_full_queue_filesystem(relay_inst):
    """The queue on a small filesystem that fills up: new mail gets 452 at MAIL, mail already queued stays
    intact (no corrupt file, nothing left in tmp/), and once there is room again mail flows as before."""
    inst = relay_inst
    if os.geteuid() != 0:
        pytest.skip('needs root to mount a small tmpfs as the queue')
    # queue_minfree is then 1.5 x 200 kB
    inst.cli('config', 'set', 'message_size_limit=200000', 'minimal_backoff_time=1h', check=True)
    q = inst.path('queue')
    orig = q.with_name('queue.orig')
    os.rename(q, orig)
    q.mkdir()
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'postern-test-queue', str(q)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        q.rmdir()
        os.rename(orig, q)
        pytest.skip(f'cannot mount a tmpfs here: {mounted.stderr.strip()}')
    try:
        subprocess.run(['cp', '-a', f'{orig}/.', str(q)], check=True)
        st = orig.stat()
        os.chown(q, st.st_uid, st.st_gid)
        os.chmod(q, st.st_mode & 0o7777)
        inst.start()
        user, maildir = _demo(inst)
        # one message that stays queued (its next hop is down), one delivered
        waiting = _queued(inst, user, ['later@remote.test'], 'waits through it all')
        inst.wait_log(rf'{waiting}: to=<later@remote\.test>, .*status=deferred', timeout=20)
        with smtplib.SMTP('127.0.0.1', inst.port('smtp'), timeout=10) as s:
            s.sendmail('a@client.test', [user], 'Subject: before\r\n\r\nroom enough\r\n')
        inst.wait_log(rf'to=<{re.escape(user)}>, relay=local, .*status=sent', timeout=20)

        # fill it up to less than queue_minfree
        sv = os.statvfs(q)
        with open(q / 'filler', 'wb') as f:
            f.write(b'\0' * (sv.f_bavail * sv.f_frsize - 100000))
        with smtplib.SMTP('127.0.0.1', inst.port('smtp'), timeout=10) as s:
            s.ehlo('client.test')
            code, text = s.mail('a@client.test')
            assert code == 452 and b'4.3.1' in text, (code, text)
        inst.wait_log(r'NOQUEUE: reject: MAIL from .*: 452 4\.3\.1 Insufficient system storage', timeout=10)
        assert not list((q / 'tmp').iterdir())
        assert not list((q / 'corrupt').iterdir())
        listing = inst.cli('queue', 'list', check=True).stdout
        assert waiting in listing and 'corrupt' not in listing, listing

        # room again: accepted and delivered, and the waiting message is still there, intact
        os.unlink(q / 'filler')
        with smtplib.SMTP('127.0.0.1', inst.port('smtp'), timeout=10) as s:
            s.sendmail('a@client.test', [user], 'Subject: after\r\n\r\nroom again\r\n')
        _wait(lambda: any('Subject: after' in f.read_text() for f in _maildir_files(maildir)),
              what='the message sent after the disk had room again', inst=inst)
        since = len(inst.log_lines())
        inst.cli('queue', 'flush', check=True)
        inst.wait_log(rf'{waiting}: to=<later@remote\.test>, .*status=deferred', timeout=20, since=since)
        assert waiting in inst.cli('queue', 'list', check=True).stdout
        assert not list((q / 'corrupt').iterdir())
    finally:
        inst.stop()
        subprocess.run(['umount', str(q)], check=False)
        if not subprocess.run(['mountpoint', '-q', str(q)]).returncode == 0:
            q.rmdir()
            os.rename(orig, q)


def test_relay_receipts(relay_inst):
    """A relayed recipient with a receipt (the next hop took it, then smtp or qmgr died before qmgr recorded it)
    is reported delivered without a second transaction; a pending mark without a receipt (cut off somewhere in
    the transaction) is sent again, with a warning that it may be a duplicate."""
    inst = relay_inst
    inst.sink.open()
    done = _queued(inst, 'a@client.test', ['far@remote.test'], 'sent before the crash')
    cut = _queued(inst, 'a@client.test', ['far@remote.test'], 'cut off in the crash')
    for qid, name in ((done, '0-smtp'), (cut, '0-smtp.pending')):
        d = inst.path('queue', 'receipts', qid)
        d.mkdir(parents=True, mode=0o700)
        (d / name).touch()
    inst.start()
    inst.wait_log(rf'{done}: to=<far@remote\.test>, relay=smtp, .*dsn=2\.0\.0, status=sent \(sent before a restart '
                  r'\(receipt\)\)', timeout=20)
    inst.wait_log(rf'{cut}: to=<far@remote\.test>: an earlier attempt was cut off after it began; sending again',
                  timeout=20)
    inst.wait_log(rf'{cut}: to=<far@remote\.test>, relay=smtp, .*status=sent \(250 ', timeout=20)
    for qid in (done, cut):
        inst.wait_log(rf'{qid}: removed', timeout=10)
        assert not inst.path('queue', 'receipts', qid).exists()
    subjects = inst.sink.subjects(r'^Subject: (.*?)\r?$')
    assert subjects == {'cut off in the crash': 1}, subjects
