"""Local delivery end to end (queue -> qmgr -> local): system users and accounts, aliases that fan out, loops,
:include: lists, |command and /file targets with their exit codes, ~/.forward back to qmgr, extension folders,
quotas (defer and bounce), parallel deliveries into one Maildir, ownership and modes of delivered files."""
import grp
import os
import pwd
import re
import shutil
import smtplib
import subprocess
import tempfile
import signal
import threading
import time
from pathlib import Path

import pytest

from conftest import free_port
from test_imapd import inst as imap_inst  # noqa: F401  (the imapd instance fixture)
from test_queue import _add_alias, _demo, _maildir_files, _queued, _require_queue, _wait

TIMEOUT = 30


def _make_inst(make_instance, *settings):
    inst = make_instance(start=False)
    _require_queue(inst)
    # fast retries; remote mail goes to a closed loopback port, so it is deferred at once
    inst.cli('config', 'set', 'queue_scan_interval=1s', 'queue_time_scale=600',
             f'relayhost=[127.0.0.1]:{free_port()}', *settings, check=True)
    inst.start()
    return inst


@pytest.fixture
def linst(make_instance):
    return _make_inst(make_instance)


@pytest.fixture
def shared_dir():
    """A directory outside the (root-only) pytest tree that default_privs and test users can write."""
    d = tempfile.mkdtemp(prefix='postern-local-')
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _root():
    if os.geteuid() != 0:
        pytest.skip('needs root: creates a system user and checks ownership')


@pytest.fixture
def sysuser():
    """A system user with a home directory outside the pytest tree; removed afterwards."""
    _root()
    if not shutil.which('useradd'):
        pytest.skip('useradd is not installed')
    name = f'pstl{os.getpid() % 100000}'
    base = tempfile.mkdtemp(prefix='postern-home-')
    os.chmod(base, 0o755)
    home = os.path.join(base, name)
    subprocess.run(['useradd', '-m', '-d', home, '-s', '/bin/sh', name], check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(['userdel', name], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _log_status(inst, qid, rcpt, dsn, status):
    return inst.wait_log(rf'{qid}: to=<{re.escape(rcpt)}>, .*dsn={re.escape(dsn)}, status={status}', timeout=TIMEOUT)


def _default_privs():
    return pwd.getpwnam('nobody').pw_uid


def test_system_user_and_account_modes(linst, sysuser):
    user, maildir = _demo(linst)
    qid = _queued(linst, 'sender@remote.test', [f'{sysuser.pw_name}@{linst.domain}', user], 'to both')
    _log_status(linst, qid, f'{sysuser.pw_name}@{linst.domain}', '2.0.0', 'sent')
    _log_status(linst, qid, user, '2.0.0', 'sent')
    files = _maildir_files(Path(sysuser.pw_dir) / 'Maildir')
    assert len(files) == 1
    st = os.stat(files[0])
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (sysuser.pw_uid, sysuser.pw_gid, 0o600)
    assert files[0].read_text().startswith(f'Return-Path: <sender@remote.test>\n'
                                           f'Delivered-To: {sysuser.pw_name}@{linst.domain}\n')
    acct = [f for f in _maildir_files(maildir) if 'Subject: to both' in f.read_text()]
    assert len(acct) == 1
    st = os.stat(acct[0])
    assert st.st_mode & 0o7777 == 0o600
    assert st.st_uid == os.stat(maildir).st_uid     # the account's owner (the virtual-mail user), never another
    # nothing left behind in tmp/
    assert not list((maildir / 'tmp').iterdir())


def test_alias_fans_out_to_100(linst, shared_dir):
    user, maildir = _demo(linst)
    targets = ', '.join(f'{shared_dir}/f{i:03d}' for i in range(99))
    _add_alias(linst, f'fan: {user}, {targets}')
    qid = _queued(linst, 'sender@remote.test', [f'fan@{linst.domain}'], 'fan out')
    linst.wait_log(rf'{qid}: to=<fan@{re.escape(linst.domain)}>, relay=local, .*status=sent '
                   r'\(delivered to 100 mailboxes\)', timeout=TIMEOUT)
    names = sorted(os.listdir(shared_dir))
    assert names == [f'f{i:03d}' for i in range(99)]
    for n in names:
        text = open(os.path.join(shared_dir, n)).read()
        assert text.count('Subject: fan out') == 1
    assert any('Subject: fan out' in f.read_text() for f in _maildir_files(maildir))


def test_alias_loop_and_delivered_to_loop(linst):
    user, maildir = _demo(linst)
    _add_alias(linst, 'la: lb')
    _add_alias(linst, 'lb: lc')
    _add_alias(linst, 'lc: la')
    qid = _queued(linst, user, [f'la@{linst.domain}'], 'alias loop')
    _log_status(linst, qid, f'la@{linst.domain}', '5.4.6', 'bounced')
    # through an alias to a mailbox that the message already passed: Delivered-To loop
    _add_alias(linst, f'again: {user}')
    qid = _queued(linst, 'sender@remote.test', [f'again@{linst.domain}'], 'looped', extra=f'Delivered-To: {user}\n')
    _log_status(linst, qid, f'again@{linst.domain}', '5.4.6', 'bounced')


def test_include_list(linst, shared_dir):
    user, maildir = _demo(linst)
    lst = os.path.join(shared_dir, 'staff.list')
    mbox = os.path.join(shared_dir, 'staff.mbox')
    with open(lst, 'w') as f:
        f.write(f'# staff\n\n  {user}\n{mbox}, "|exit 0"\n')
    os.chmod(lst, 0o644)
    _add_alias(linst, f'staff: :include:{lst}')
    _add_alias(linst, f'owner-staff: {user}')
    qid = _queued(linst, 'sender@remote.test', [f'staff@{linst.domain}'], 'to staff')
    linst.wait_log(rf'{qid}: to=<staff@{re.escape(linst.domain)}>, relay=local, .*status=sent '
                   r'\(delivered to 3 mailboxes\)', timeout=TIMEOUT)
    text = open(mbox).read()
    # owner-staff exists: the list's members see it as the envelope sender
    assert text.startswith(f'From owner-staff@{linst.domain} ')
    assert f'Return-Path: <owner-staff@{linst.domain}>\nDelivered-To: staff@{linst.domain}\n' in text
    got = [f.read_text() for f in _maildir_files(maildir) if 'Subject: to staff' in f.read_text()]
    assert len(got) == 1 and got[0].startswith(f'Return-Path: <owner-staff@{linst.domain}>\n')
    # a list anyone may write is refused
    os.chmod(lst, 0o666)
    qid = _queued(linst, 'sender@remote.test', [f'staff@{linst.domain}'], 'unsafe list')
    _log_status(linst, qid, f'staff@{linst.domain}', '5.3.5', 'bounced')


def test_pipe_exit_codes(linst, shared_dir):
    user, maildir = _demo(linst)
    out = os.path.join(shared_dir, 'p0.out')
    _add_alias(linst, f'p0: "|{{ echo $SENDER $RECIPIENT $LOCAL $EXTENSION $DOMAIN; id -u; cat; }} > {out}"')
    _add_alias(linst, 'p75: "|echo busy; exit 75"')
    _add_alias(linst, 'p67: "|echo no such list member >&2; exit 67"')
    _add_alias(linst, 'p1: "|echo it broke; exit 1"')
    qid = _queued(linst, user, [f'p0+ext@{linst.domain}'], 'to a pipe', body='From here\nbody\n')
    _log_status(linst, qid, f'p0+ext@{linst.domain}', '2.0.0', 'sent')
    lines = open(out).read().split('\n')
    assert lines[0] == f'{user} p0+ext@{linst.domain} p0 ext {linst.domain}'
    if os.geteuid() == 0:
        assert int(lines[1]) == _default_privs()        # root owns the aliases: default_privs runs it
    assert lines[2] == f'Return-Path: <{user}>'
    assert lines[3] == f'Delivered-To: p0+ext@{linst.domain}'
    assert 'From here' in lines     # no quoting for commands

    qid = _queued(linst, user, [f'p75@{linst.domain}'], 'to p75')
    _log_status(linst, qid, f'p75@{linst.domain}', '4.3.0', 'deferred')
    listing = linst.cli('queue', 'list', check=True).stdout
    assert qid in listing and f'p75@{linst.domain}' in listing

    qid = _queued(linst, user, [f'p67@{linst.domain}', f'p1@{linst.domain}'], 'to p67')
    _log_status(linst, qid, f'p67@{linst.domain}', '5.1.1', 'bounced')
    _log_status(linst, qid, f'p1@{linst.domain}', '5.3.0', 'bounced')

    def bounce():
        for f in _maildir_files(maildir):
            t = f.read_text()
            if 'multipart/report' in t and 'Subject: to p67' in t:
                return t
        return None
    report = _wait(bounce, what='the bounce for p67 and p1', inst=linst)
    assert 'Status: 5.1.1' in report and 'Status: 5.3.0' in report
    assert 'it broke' in report
    # our own reason, not an SMTP reply
    assert re.search(r'\nStatus: 5\.3\.0\nDiagnostic-Code: X-Postern; [^\n]*it broke', report), report


def test_file_alias(linst, shared_dir):
    user, maildir = _demo(linst)
    mbox = os.path.join(shared_dir, 'archive.mbox')
    _add_alias(linst, f'archive: {mbox}')
    for i in range(2):
        qid = _queued(linst, 'sender@remote.test', [f'archive@{linst.domain}'], f'archived {i}',
                      body='first\nFrom the start of a line\n')
        _log_status(linst, qid, f'archive@{linst.domain}', '2.0.0', 'sent')
    text = open(mbox).read()
    assert text.count('\nFrom sender@remote.test ') == 1 and text.startswith('From sender@remote.test ')
    assert text.count('\n>From the start of a line\n') == 2
    assert text.endswith('\n\n')
    st = os.stat(mbox)
    assert st.st_mode & 0o7777 == 0o600
    if os.geteuid() == 0:
        assert st.st_uid == _default_privs()


def test_forward_to_remote(linst, sysuser):
    fwd = os.path.join(sysuser.pw_dir, '.forward')
    with open(fwd, 'w') as f:
        f.write('# to the other address\nelsewhere@remote.test\n')
    os.chown(fwd, sysuser.pw_uid, sysuser.pw_gid)
    os.chmod(fwd, 0o644)
    rcpt = f'{sysuser.pw_name}@{linst.domain}'
    qid = _queued(linst, 'sender@remote.test', [rcpt], 'forwarded')
    _log_status(linst, qid, rcpt, '2.0.0', 'sent')
    # the remote address goes back to qmgr as a new recipient; with no smtp peer it is deferred
    linst.wait_log(rf'{qid}: to=<elsewhere@remote\.test>, .*status=deferred', timeout=TIMEOUT)
    assert 'elsewhere@remote.test' in linst.cli('queue', 'list', check=True).stdout
    assert not _maildir_files(Path(sysuser.pw_dir) / 'Maildir')
    # a group-writable .forward is ignored: mail goes to the mailbox
    os.chmod(fwd, 0o664)
    qid = _queued(linst, 'sender@remote.test', [rcpt], 'not forwarded')
    _log_status(linst, qid, rcpt, '2.0.0', 'sent')
    assert len(_maildir_files(Path(sysuser.pw_dir) / 'Maildir')) == 1


def test_forward_pipe_runs_as_user(linst, sysuser):
    out = os.path.join(sysuser.pw_dir, 'pipe.out')
    fwd = os.path.join(sysuser.pw_dir, '.forward')
    with open(fwd, 'w') as f:
        f.write(f'"|{{ id -u; echo $HOME $USER; }} > {out}"\n')
    os.chown(fwd, sysuser.pw_uid, sysuser.pw_gid)
    rcpt = f'{sysuser.pw_name}@{linst.domain}'
    qid = _queued(linst, 'sender@remote.test', [rcpt], 'piped')
    _log_status(linst, qid, rcpt, '2.0.0', 'sent')
    lines = open(out).read().split('\n')
    assert int(lines[0]) == sysuser.pw_uid
    assert lines[1] == f'{sysuser.pw_dir} {sysuser.pw_name}'
    # a list the user could not read itself is not read for it (local reads as root)
    secret = os.path.join(os.path.dirname(sysuser.pw_dir), 'secret')
    with open(secret, 'w') as f:
        f.write('hidden-address@remote.test\n')
    os.chmod(secret, 0o600)
    with open(fwd, 'w') as f:
        f.write(f':include:{secret}\n')
    qid = _queued(linst, 'sender@remote.test', [rcpt], 'include secret')
    m = _log_status(linst, qid, rcpt, '5.3.5', 'bounced')
    assert 'not readable' in m.string and 'hidden-address' not in linst.log_path.read_text()


def test_extension_folder(linst):
    user, maildir = _demo(linst)
    local, domain = user.split('@')
    qid = _queued(linst, 'sender@remote.test', [f'{local}+lists@{domain}'], 'no folder yet')
    _log_status(linst, qid, f'{local}+lists@{domain}', '2.0.0', r'sent \(delivered to maildir\)')
    folder = maildir / '.lists'
    for sub in ('', 'tmp', 'new', 'cur'):
        (folder / sub).mkdir(exist_ok=True)
    shutil.chown(folder, os.stat(maildir).st_uid, os.stat(maildir).st_gid)
    for sub in ('tmp', 'new', 'cur'):
        shutil.chown(folder / sub, os.stat(maildir).st_uid, os.stat(maildir).st_gid)
    qid = _queued(linst, 'sender@remote.test', [f'{local}+lists@{domain}'], 'into the folder')
    _log_status(linst, qid, f'{local}+lists@{domain}', '2.0.0', r'sent \(delivered to maildir folder lists\)')
    got = _maildir_files(folder)
    assert len(got) == 1 and 'Subject: into the folder' in got[0].read_text()


@pytest.mark.parametrize('action,dsn,status', [('defer', '4.2.2', 'deferred'), ('bounce', '5.2.2', 'bounced')])
def test_quota(make_instance, action, dsn, status):
    inst = _make_inst(make_instance, f'quota_exceeded_action={action}')
    _demo(inst)
    user = f'small@{inst.domain}'
    r = inst.cli('user', 'add', user, '--password-stdin', '--quota', '4k', input='pw-small\n')
    if r.returncode != 0:
        pytest.skip(f'cannot create an account with a quota: {r.stderr.strip()}')
    qid = _queued(inst, 'sender@remote.test', [user], 'fits', body='x' * 1000 + '\n')
    _log_status(inst, qid, user, '2.0.0', 'sent')
    qid = _queued(inst, 'sender@remote.test', [user], 'too big', body='y' * 4000 + '\n')
    _log_status(inst, qid, user, dsn, status)
    inst.wait_log(rf'{qid}: to=<{re.escape(user)}>, .*mailbox full', timeout=TIMEOUT)
    maildir = inst.path('mail', inst.domain, 'small')
    assert len(_maildir_files(maildir)) == 1


def test_parallel_deliveries_unique(linst):
    user, maildir = _demo(linst)
    before = set(_maildir_files(maildir))
    linst.stop()
    ids = []

    def inject(i):
        ids.append(_queued(linst, 'sender@remote.test', [user], f'parallel {i}'))
    threads = [threading.Thread(target=inject, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # all queued while stopped: qmgr hands them to several local processes at once
    linst.start()
    for qid in ids:
        _log_status(linst, qid, user, '2.0.0', 'sent')
    new = [f for f in _maildir_files(maildir) if f not in before]
    assert len(new) == 10
    assert len({f.name for f in new}) == 10
    subjects = sorted(re.search(r'Subject: (parallel \d+)', f.read_text()).group(1) for f in new)
    assert subjects == sorted(f'parallel {i}' for i in range(10))
    assert not list((maildir / 'tmp').iterdir())


def test_list_owner_resubmits_remote_members(linst):
    user, maildir = _demo(linst)
    _add_alias(linst, f'rlist: far@remote.test, {user}, second@remote.test')
    _add_alias(linst, f'owner-rlist: {user}')
    qid = _queued(linst, 'sender@remote.test', [f'rlist@{linst.domain}'], 'to rlist')
    # the remote member leaves in a new message from the list owner, so its bounces go there
    m = linst.wait_log(rf'{qid}: to=<far@remote\.test>, orig_to=<rlist@{re.escape(linst.domain)}>, relay=local, '
                       rf'dsn=2\.0\.0, status=sent \(resubmitted from owner-rlist@{re.escape(linst.domain)} as '
                       r'([0-9A-Z]+)\)', timeout=TIMEOUT)
    new_id = m.group(1)
    # every remote member is named in the log with the new message's queue ID, not only the first
    linst.wait_log(rf'{qid}: to=<second@remote\.test>, orig_to=<rlist@{re.escape(linst.domain)}>, relay=local, '
                   rf'dsn=2\.0\.0, status=sent \(resubmitted from owner-rlist@{re.escape(linst.domain)} as {new_id}\)',
                   timeout=TIMEOUT)
    _log_status(linst, qid, f'rlist@{linst.domain}', '2.0.0', 'sent')
    linst.wait_log(rf'{new_id}: to=<far@remote\.test>, .*status=deferred', timeout=TIMEOUT)
    listing = linst.cli('queue', 'list', check=True).stdout
    assert new_id in listing and f'owner-rlist@{linst.domain}' in listing, listing
    got = [f.read_text() for f in _maildir_files(maildir) if 'Subject: to rlist' in f.read_text()]
    assert len(got) == 1 and got[0].startswith(f'Return-Path: <owner-rlist@{linst.domain}>\n')
    # qmgr did not add the remote member to the original message
    assert not re.search(rf'{qid}: to=<far@remote\.test>, .*status=expanded', linst.log_path.read_text())


def test_failed_target_bounced_others_kept(linst, shared_dir):
    """One target of an alias fails for good (a command exiting 67) while the other is delivered: the sender gets a
    bounce that names the failed target, and the delivered one is not delivered again."""
    user, maildir = _demo(linst)
    mbox = os.path.join(shared_dir, 'kept.mbox')
    _add_alias(linst, f'mixed: {mbox}, "|echo no such member >&2; exit 67"')
    with smtplib.SMTP('127.0.0.1', linst.port('smtp'), timeout=TIMEOUT) as s:
        s.ehlo('client.test')
        s.sendmail(user, [f'mixed@{linst.domain}'],
                   f'From: <{user}>\nTo: <mixed@{linst.domain}>\nSubject: half delivered\n\nbody\n')
    m = linst.wait_log(rf'([0-9A-Z]+): to=<mixed@{re.escape(linst.domain)}>, relay=local, .*dsn=2\.0\.0, '
                       r'status=sent \(delivered to 1 mailbox, 1 failed\)', timeout=TIMEOUT)
    qid = m.group(1)
    linst.wait_log(rf'{qid}: to=<\|echo no such member >&2; exit 67>, orig_to=<mixed@{re.escape(linst.domain)}>, '
                   r'.*dsn=5\.1\.1, status=bounced', timeout=TIMEOUT)

    def bounce():
        for f in _maildir_files(maildir):
            t = f.read_text()
            if 'multipart/report' in t and 'Subject: half delivered' in t:
                return t
        return None
    report = _wait(bounce, what='the bounce for the failed command', inst=linst)
    # a command is no address: the alias is the Final-Recipient and the command is named beside it
    assert f'Final-Recipient: rfc822; mixed@{linst.domain}\n' in report, report
    assert 'X-Postern-Target: |echo no such member >&2; exit 67\n' in report, report
    assert f'<mixed@{linst.domain}> (delivery to |echo no such member >&2; exit 67): failed: ' in report, report
    assert re.search(r'\nDiagnostic-Code: X-Postern; [^\n]*no such member', report), report
    assert 'Status: 5.1.1' in report and 'no such member' in report
    assert f'expanded from <mixed@{linst.domain}>' in report
    assert _mbox_copies(mbox) == 1
    # the message is finished: nothing left to retry, so the mbox copy stays the only one
    _wait(lambda: qid not in linst.cli('queue', 'list', check=True).stdout, what='the message to leave the queue',
          inst=linst)
    assert _mbox_copies(mbox) == 1


def _mbox_copies(path):
    return open(path).read().count('Subject: half delivered')


def _maildirsize_usage(path):
    lines = path.read_text().splitlines()
    return lines[0], sum(int(line.split()[0]) for line in lines[1:]), sum(int(line.split()[1]) for line in lines[1:])


def test_quota_maildirsize_parallel(make_instance):
    """The Maildir++ maildirsize file: written with the quota, rebuilt when deleted, and with it ten parallel
    deliveries never take the mailbox over its quota."""
    inst = _make_inst(make_instance, 'quota_exceeded_action=bounce')
    _demo(inst)
    user = f'par@{inst.domain}'
    r = inst.cli('user', 'add', user, '--password-stdin', '--quota', '4k', input='pw-par\n')
    if r.returncode != 0:
        pytest.skip(f'cannot create an account with a quota: {r.stderr.strip()}')
    maildir = inst.path('mail', inst.domain, 'par')
    size_file = maildir / 'maildirsize'

    def on_disk():
        files = _maildir_files(maildir)
        return sum(f.stat().st_size for f in files), len(files)
    for i in range(2):
        qid = _queued(inst, 'sender@remote.test', [user], f'small {i}', body='s' * 100 + '\n')
        _log_status(inst, qid, user, '2.0.0', 'sent')
        assert _maildirsize_usage(size_file) == ('4096S', *on_disk())
        size_file.unlink()      # rebuilt from the files by the next delivery
    inst.stop()
    ids = [_queued(inst, 'sender@remote.test', [user], f'big {i}', body='b' * 1000 + '\n') for i in range(10)]
    inst.start()
    sent = 0
    for qid in ids:
        m = inst.wait_log(rf'{qid}: to=<{re.escape(user)}>, .*status=(sent|bounced)', timeout=TIMEOUT)
        sent += m.group(1) == 'sent'
    used, count = on_disk()
    assert used <= 4096 and count == 2 + sent
    assert 1 <= sent <= 3
    assert _maildirsize_usage(size_file) == ('4096S', used, count)


def test_file_alias_killed_mid_append(linst, shared_dir):
    """local (and its writer child) killed while a large message is being appended to an mbox file: the retry
    cuts the half-written copy off and appends the message once, so the file ends up with exactly one copy."""
    from test_queue import _pids
    mbox = os.path.join(shared_dir, 'big.mbox')
    _add_alias(linst, f'big: {mbox}')
    line = 'y' * 99 + '\n'
    body = line * 200000 + 'the last line\n'          # 20 MB
    qid = _queued(linst, 'sender@remote.test', [f'big@{linst.domain}'], 'killed mid-append', body=body)
    killed = 0
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and not killed:
        size = os.path.getsize(mbox) if os.path.exists(mbox) else 0
        if 0 < size < len(body):
            for pid in _pids(linst, 'local'):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
        time.sleep(0.001)
    _log_status(linst, qid, f'big@{linst.domain}', '2.0.0', 'sent')
    text = open(mbox).read()
    assert text.count('Subject: killed mid-append') == 1
    assert text.startswith('From sender@remote.test ') and text.count('\nFrom sender@remote.test ') == 0
    assert text.endswith('the last line\n\n') and text.count(line) == 200000
    if not killed:
        pytest.skip('the append finished before it could be killed (nothing to check beyond one copy)')
    # the killed attempt was deferred, then the retry delivered
    assert re.search(rf'{qid}: to=<big@{re.escape(linst.domain)}>, .*status=deferred', linst.log_path.read_text())


def _scan_usage(root):
    """What maildirsize must add up to: the S= sizes and number of the files in new/ and cur/ of every folder."""
    total = count = 0
    for folder in [root] + [p for p in root.iterdir() if p.is_dir() and p.name.startswith('.')]:
        for sub in ('new', 'cur'):
            d = folder / sub
            for f in (d.iterdir() if d.is_dir() else []):
                total += int(re.search(r',S=(\d+)', f.name).group(1))
                count += 1
    return total, count


def test_maildirsize_kept_by_imapd(imap_inst):
    """imapd keeps a Maildir's maildirsize current: APPEND and COPY add lines, MOVE adds and takes back,
    EXPUNGE takes back, so the file's sum stays what the folders hold."""
    from test_imapd_selected import MSG1, maildir, setup_two
    m = setup_two(imap_inst)
    root = maildir(imap_inst)
    size_file = root / 'maildirsize'
    size_file.write_text('1000000S\n%d %d\n' % _scan_usage(root))
    if os.geteuid() == 0:
        st = os.stat(root)
        os.chown(size_file, st.st_uid, st.st_gid)
    assert m.copy('1:2', 'Archive')[0] == 'OK'
    assert m._simple_command('MOVE', '2', 'Trash')[0] == 'OK'
    assert m.append('Archive', None, None, MSG1)[0] == 'OK'
    m.select('Archive')
    m.store('1', '+FLAGS', r'(\Deleted)')
    assert m.expunge()[0] == 'OK'
    m.logout()
    lines = size_file.read_text().splitlines()
    assert lines[0] == '1000000S' and len(lines) > 2
    assert any(line.startswith('-') for line in lines[2:])
    assert (sum(int(x.split()[0]) for x in lines[1:]), sum(int(x.split()[1]) for x in lines[1:])) == \
        _scan_usage(root)
