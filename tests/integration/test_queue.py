"""The queue path end to end: messages put into the queue (`postern queue inject`, the same queue files smtpd
writes) are delivered by qmgr and local into Maildirs; unknown recipients bounce as RFC 3464 reports; corrupt
files go to corrupt/; a lost state.lmdb is rebuilt; kill -9 of qmgr and local loses no mail; a failed bounce
goes to the postmaster, never to the null sender; NOTIFY=SUCCESS over SMTP brings a "delivered" report."""
import email
import email.policy
import os
import re
import signal
import time

import pytest

from conftest import build_dir

DELIVERY_TIMEOUT = 30


def _require_queue(inst):
    for prog in ('qmgr', 'local'):
        if not (build_dir() / 'bin' / prog).exists():
            pytest.skip(f'not built yet: {prog}')


def _demo(inst):
    """The demo account's address and Maildir; created here when this build's init does not make it."""
    user = inst.demo_user or f'demo@{inst.domain}'
    if not re.search(r'^\s+user\s', inst.run('help').stdout, re.M):
        pytest.skip('postern user is not in this build')
    if user not in inst.cli('user', 'list').stdout:
        added = inst.cli('user', 'add', user, '--password-stdin', input='demo-password\n')
        if added.returncode != 0:
            pytest.skip(f'cannot create the demo account: {added.stderr.strip()}')
    local, domain = user.split('@')
    return user, inst.path('mail', domain, local)


def _queued(inst, sender, rcpts, subject, body='hello\n', extra=''):
    msg = f'From: <{sender}>\nTo: <{rcpts[0]}>\nSubject: {subject}\n{extra}\n{body}'
    r = inst.cli('queue', 'inject', '-f', sender, *rcpts, input=msg, check=True)
    qid = r.stdout.strip()
    assert re.fullmatch(r'[0-9A-Z]+', qid), r.stdout
    return qid


def _maildir_files(maildir):
    new = maildir / 'new'
    return sorted(new.iterdir()) if new.exists() else []


def _wait(pred, timeout=DELIVERY_TIMEOUT, what='condition', inst=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f'timed out waiting for {what}' + (f'; log tail:\n{inst.log_tail()}' if inst else ''))


@pytest.fixture
def qinst(make_instance):
    inst = make_instance(start=False)
    _require_queue(inst)
    # fast retries and scans so a test never waits for the production schedule
    inst.cli('config', 'set', 'queue_scan_interval=1s', 'queue_time_scale=600', check=True)
    inst.start()
    return inst


def test_delivered_with_headers(qinst):
    user, maildir = _demo(qinst)
    before = set(_maildir_files(maildir))
    qid = _queued(qinst, 'sender@remote.test', [user], 'first')
    qinst.wait_log(rf'{qid}: to=<{re.escape(user)}>, relay=local, delay=[0-9.]+, dsn=2\.0\.0, status=sent '
                   r'\(delivered to maildir\)', timeout=DELIVERY_TIMEOUT)
    qinst.wait_log(rf'{qid}: removed')
    new = [f for f in _maildir_files(maildir) if f not in before]
    assert len(new) == 1
    text = new[0].read_text()
    assert text.startswith(f'Return-Path: <sender@remote.test>\nDelivered-To: {user}\n'), text
    assert 'Subject: first\n' in text
    assert not list(qinst.path('queue', 'active').iterdir())
    assert 'Mail queue is empty' in qinst.cli('queue', 'list', check=True).stdout


def test_unknown_recipient_bounced(qinst):
    user, maildir = _demo(qinst)
    bad = f'nosuchuser@{qinst.domain}'
    qid = _queued(qinst, user, [bad], 'to nobody', body='original body line\n')
    qinst.wait_log(rf'{qid}: to=<{re.escape(bad)}>, relay=local, .*dsn=5\.1\.1, status=bounced')
    m = qinst.wait_log(rf'{qid}: sender non-delivery notification: ([0-9A-Z]+)')
    bounce_id = m.group(1)
    qinst.wait_log(rf'{bounce_id}: to=<{re.escape(user)}>, .*status=sent')

    def report():
        for f in _maildir_files(maildir):
            if 'multipart/report' in f.read_text():
                return f
        return None
    f = _wait(report, what='the bounce in the Maildir', inst=qinst)
    raw = f.read_text()
    assert raw.startswith('Return-Path: <>\n'), raw[:200]
    msg = email.message_from_string(raw, policy=email.policy.compat32)
    assert msg.get_content_type() == 'multipart/report'
    assert msg.get_param('report-type') == 'delivery-status'
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == ['text/plain', 'message/delivery-status', 'message/rfc822']
    status = parts[1].as_string()
    assert f'Final-Recipient: rfc822; {bad}' in status
    assert 'Action: failed' in status
    assert 'Status: 5.1.1' in status
    assert 'original body line' in parts[2].as_string()


def test_corrupt_file_set_aside(qinst):
    user, maildir = _demo(qinst)
    bogus = '0AAAAAAAAAAZZ'
    tmp = qinst.path('queue', 'tmp', 'bogus')
    tmp.write_bytes(b'PQF1\x53\x00\x00\xff\xffnot a queue file')
    os.rename(tmp, qinst.path('queue', 'incoming', bogus))
    qinst.wait_log(rf'{bogus}: corrupt queue file')
    _wait(lambda: qinst.path('queue', 'corrupt', bogus).exists(), what='the file in corrupt/', inst=qinst)
    # qmgr keeps running and delivering
    qid = _queued(qinst, 'sender@remote.test', [user], 'after corrupt')
    qinst.wait_log(rf'{qid}: to=<{re.escape(user)}>, .*status=sent')


def _add_alias(inst, line):
    aliases = inst.path('etc', 'aliases')
    with open(aliases, 'a') as f:
        f.write(line + '\n')
    inst.run('map', 'compile', aliases, '--aliases', check=True)


def test_state_rebuilt_after_deletion(qinst):
    user, maildir = _demo(qinst)
    # a message that stays queued, so that it has state: its alias is a command that always fails
    # temporarily (EX_TEMPFAIL)
    _add_alias(qinst, 'stays: "|exit 75"')
    held = _queued(qinst, user, [f'stays@{qinst.domain}'], 'stays')
    qinst.wait_log(rf'{held}: to=<stays@{re.escape(qinst.domain)}>, .*dsn=4\.3\.0, status=deferred')
    qinst.stop()
    for name in ('state.lmdb', 'state.lmdb-lock'):
        p = qinst.path('queue', name)
        if p.exists():
            p.unlink()
    qid = _queued(qinst, 'sender@remote.test', [user], 'while stopped')
    since = len(qinst.log_lines())
    qinst.start()
    qinst.wait_log(rf'{qid}: to=<{re.escape(user)}>, .*status=sent', since=since)
    # the kept message got fresh state from its envelope and was tried again
    qinst.wait_log(rf'{held}: to=<stays@{re.escape(qinst.domain)}>, .*status=deferred', since=since)
    listing = qinst.cli('queue', 'list', check=True).stdout
    assert held in listing and f'stays@{qinst.domain}' in listing, listing
    assert qinst.path('queue', 'state.lmdb').exists()


def test_alias_loop_and_delivered_to_loop(qinst):
    user, maildir = _demo(qinst)
    _add_alias(qinst, 'loopa: loopb')
    _add_alias(qinst, 'loopb: loopa')
    qid = _queued(qinst, user, [f'loopa@{qinst.domain}'], 'alias loop')
    qinst.wait_log(rf'{qid}: to=<loopa@{re.escape(qinst.domain)}>, .*dsn=5\.4\.6, status=bounced')
    # a message that already passed through the mailbox comes back: Delivered-To loop
    qid = _queued(qinst, 'sender@remote.test', [user], 'looped', extra=f'Delivered-To: {user}\n')
    qinst.wait_log(rf'{qid}: to=<{re.escape(user)}>, .*dsn=5\.4\.6, status=bounced \(mail forwarding loop')


def _pids(inst, prog):
    pids = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                argv = f.read().split(b'\0')
        except OSError:
            continue
        if argv and os.path.basename(argv[0].decode(errors='replace')) == prog and \
                str(inst.dir).encode() in argv:
            pids.append(int(pid))
    return pids


def test_kill9_during_delivery_loses_nothing(qinst):
    user, maildir = _demo(qinst)
    n = 200
    # queued while stopped, so that all of the delivery happens under the kills
    qinst.stop()
    ids = [_queued(qinst, 'sender@remote.test', [user], f'bulk {i}') for i in range(n)]
    qinst.start()
    killed = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and killed < 12:
        for prog in ('qmgr', 'local'):
            for pid in _pids(qinst, prog):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
        time.sleep(0.15)

    def all_delivered():
        seen = {}
        for f in _maildir_files(maildir):
            m = re.search(r'^Subject: bulk (\d+)$', f.read_text(errors='replace'), re.M)
            if m:
                seen[int(m.group(1))] = seen.get(int(m.group(1)), 0) + 1
        return seen if len(seen) == n else None
    seen = _wait(all_delivered, timeout=120, what=f'all {n} messages delivered', inst=qinst)
    duplicates = sum(c - 1 for c in seen.values())
    print(f'kill -9 x{killed}: {n} messages delivered, {duplicates} duplicates')
    _wait(lambda: 'Mail queue is empty' in qinst.cli('queue', 'list').stdout, what='an empty queue', inst=qinst)
    assert killed > 0
    assert len(ids) == n
    # a kill between the Maildir rename and qmgr's commit is covered by local's pending mark and receipt
    assert duplicates == 0


def test_postmaster_always_resolves(qinst):
    # whatever the aliases say (or the accounts that exist), postmaster mail is delivered somewhere
    qid = _queued(qinst, 'sender@remote.test', [f'postmaster@{qinst.domain}', 'MAILER-DAEMON'], 'to postmaster')
    qinst.wait_log(rf'{qid}: to=<postmaster@{re.escape(qinst.domain)}>, relay=local, .*status=sent')
    qinst.wait_log(rf'{qid}: to=<MAILER-DAEMON>, relay=local, .*status=sent')
    qinst.wait_log(rf'{qid}: removed')
    found = [f for f in qinst.path('mail').rglob('*') if f.is_file() and '/new/' in str(f)
             and 'Subject: to postmaster' in f.read_text(errors='replace')]
    assert found


def test_account_domain_is_local(qinst):
    _demo(qinst)     # skips when this build has no accounts
    user = 'someone@accounts-only.test'     # a domain in neither mydestination nor virtual_mailbox_domains
    qinst.cli('user', 'add', user, '--password-stdin', input='pw-for-someone\n', check=True)
    qid = _queued(qinst, 'sender@remote.test', [user], 'account domain')
    qinst.wait_log(rf'{qid}: to=<{re.escape(user)}>, relay=local, .*status=sent')
    maildir = qinst.path('mail', 'accounts-only.test', 'someone')
    assert any('Subject: account domain' in f.read_text() for f in _maildir_files(maildir))


def _mail_files(inst):
    return [f for f in inst.path('mail').rglob('*') if f.is_file() and '/new/' in str(f)]


def test_failed_bounce_goes_to_postmaster_never_to_null_sender(qinst):
    _demo(qinst)
    gone, nobody = f'gone@{qinst.domain}', f'nobody-here@{qinst.domain}'
    # the sender does not exist either: its bounce (from <>) fails, and that goes to the postmaster
    qid = _queued(qinst, gone, [nobody], 'double trouble')
    b1 = qinst.wait_log(rf'{qid}: sender non-delivery notification: ([0-9A-Z]+)').group(1)
    qinst.wait_log(rf'{b1}: to=<{re.escape(gone)}>, .*dsn=5\.1\.1, status=bounced')
    b2 = qinst.wait_log(rf'{b1}: sender non-delivery notification: ([0-9A-Z]+)').group(1)
    m = qinst.wait_log(rf'{b2}: to=<(postmaster@[^>]+)>, relay=local, .*status=sent')
    qinst.wait_log(rf'{b2}: removed')

    def report():
        return [f for f in _mail_files(qinst)
                if f'Final-Recipient: rfc822; {gone}' in f.read_text(errors='replace')]
    found = _wait(report, what="the postmaster's copy", inst=qinst)
    assert found[0].read_text().startswith('Return-Path: <>\n')
    # a message from the null sender that fails is reported to the postmaster too, never to <>
    qid = _queued(qinst, '', [nobody], 'from nobody')
    b3 = qinst.wait_log(rf'{qid}: sender non-delivery notification: ([0-9A-Z]+)').group(1)
    qinst.wait_log(rf'{b3}: to=<{re.escape(m.group(1))}>, relay=local, .*status=sent')
    assert not [line for line in qinst.log_lines() if re.search(r': to=<>', line)]


def test_notify_success_over_smtp(qinst):
    import smtplib
    user, maildir = _demo(qinst)
    other = f'postmaster@{qinst.domain}'
    msg = f'From: <{user}>\r\nTo: <{other}>\r\nSubject: tell me\r\n\r\nbody\r\n'
    with smtplib.SMTP('127.0.0.1', qinst.port('smtp'), timeout=10) as s:
        s.ehlo('client.test')
        assert s.has_extn('dsn')
        s.sendmail(user, [other], msg, mail_options=['RET=HDRS', 'ENVID=track-42'],
                   rcpt_options=[f'NOTIFY=SUCCESS ORCPT=rfc822;{other}'])
    qid = qinst.wait_log(rf'([0-9A-Z]+): to=<{re.escape(other)}>, relay=local, .*status=sent').group(1)
    nid = qinst.wait_log(rf'{qid}: sender delivery status notification: ([0-9A-Z]+)').group(1)
    qinst.wait_log(rf'{nid}: to=<{re.escape(user)}>, relay=local, .*status=sent')

    def report():
        for f in _maildir_files(maildir):
            text = f.read_text(errors='replace')
            if 'Original-Envelope-Id: track-42' in text:
                return text
        return None
    text = _wait(report, what='the success report', inst=qinst)
    msg = email.message_from_string(text, policy=email.policy.compat32)
    assert msg['Subject'] == 'Successful Mail Delivery Report'
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == ['text/plain', 'message/delivery-status', 'text/rfc822-headers']
    status = parts[1].as_string()
    assert f'Final-Recipient: rfc822; {other}' in status and 'Action: delivered' in status
    assert f'Original-Recipient: rfc822;{other}' in status
    assert 'Subject: tell me' in parts[2].as_string() and 'body' not in parts[2].get_payload()
