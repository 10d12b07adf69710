"""System users end to end (auth_system_users = yes, pop3/imap services running as root with privilege-separated
logins): a real system user made with useradd and chpasswd logs in over SMTP AUTH, POP3, IMAP and IMAP over
implicit TLS; mail that local delivers as the user is read back; what IMAP writes belongs to the user; before a
login the connection is handled by a process running as the unprivileged mail_owner, after it by one running as
the user (and, for TLS, an unprivileged proxy in between); a virtual account still works on the same instance;
wrong passwords are throttled. Needs root (skipped otherwise)."""
import base64
import imaplib
import os
import poplib
import pwd
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import SERVICES, Instance, free_ports, processes_mentioning

NOBODY = 65534
PASSWORD = 'Sys tem-pw 1'
TIMEOUT = 30


def _tls():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@pytest.fixture(scope='module')
def sysinst(postern_build):
    if os.geteuid() != 0:
        pytest.skip('needs root: creates a system user, and pop3d/imapd switch to it')
    if not shutil.which('useradd') or not shutil.which('chpasswd'):
        pytest.skip('useradd/chpasswd not installed')
    top = Path(tempfile.mkdtemp(prefix='postern-sysusers-'))
    os.chmod(top, 0o711)
    name = f'pstsu{os.getpid() % 100000}'
    home = top / 'home' / name
    (top / 'home').mkdir(mode=0o755)
    subprocess.run(['useradd', '-m', '-d', str(home), '-s', '/bin/sh', name], check=True, capture_output=True)
    inst = Instance(top / 'postern', zip(SERVICES, free_ports(len(SERVICES))), 'example.test', 'mail.example.test')
    try:
        subprocess.run(['chpasswd'], input=f'{name}:{PASSWORD}\n', text=True, check=True, capture_output=True)
        inst.init('--user', 'nobody')
        inst.require('pop3', 'pop3s', 'imap', 'imaps', 'submission')
        inst.cli('config', 'set', 'auth_system_users=yes', 'auth_throttle_max_delay=4s', 'queue_scan_interval=1s', check=True)
        cf = inst.path('etc', 'master.cf')
        # the mailbox servers and local delivery run as root, as for any instance that serves system users
        text = re.sub(r'^((?:pop3|pop3s|imap|imaps|local)\s+(?:inet|unix)\s+\S+\s+\S+\s+)-', r'\1root',
                      cf.read_text(), flags=re.M)
        cf.write_text(text)
        inst.start()
        inst.sys = pwd.getpwnam(name)
        yield inst
    finally:
        inst.stop()
        subprocess.run(['userdel', name], capture_output=True)
        shutil.rmtree(top, ignore_errors=True)


def _procs(inst, prog):
    """(pid, ppid, real/effective/saved/fs uids) of the instance's processes of one program."""
    found = []
    for pid in processes_mentioning(inst.dir):
        try:
            status = Path(f'/proc/{pid}/status').read_text()
            argv0 = Path(f'/proc/{pid}/cmdline').read_bytes().split(b'\0')[0]
        except OSError:
            continue
        if os.path.basename(argv0) != prog.encode():
            continue
        uids = tuple(int(u) for u in re.search(r'^Uid:\s+(.*)$', status, re.M).group(1).split())
        ppid = int(re.search(r'^PPid:\s+(\d+)', status, re.M).group(1))
        found.append((pid, ppid, uids))
    return found


def _wait(cond, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(0.05)


def _maildir_new(home):
    d = Path(home) / 'Maildir' / 'new'
    return sorted(d.iterdir()) if d.is_dir() else []


def _children_as(inst, prog, uid, parent_uid=0):
    """Processes of prog running as uid whose parent is a process of prog running as parent_uid: a pre-login
    child (parent root) or a TLS proxy (parent the mailbox owner)."""
    procs = _procs(inst, prog)
    parents = {p for p, _, u in procs if u == (parent_uid,) * 4}
    return [(p, u) for p, pp, u in procs if pp in parents and u == (uid,) * 4]


def _running_as(inst, prog, uid):
    return [p for p, _, u in _procs(inst, prog) if u == (uid,) * 4]


def test_smtp_auth_delivery_pop3_imap(sysinst):
    inst, su = sysinst, sysinst.sys
    # SMTP AUTH as the system user (loopback: plaintext allowed), mail to the user delivered by local as the user
    with smtplib.SMTP('127.0.0.1', inst.port('submission'), timeout=TIMEOUT) as s:
        s.login(su.pw_name, PASSWORD)
        s.sendmail(f'{su.pw_name}@example.test', [f'{su.pw_name}@example.test'],
                   f'From: {su.pw_name}@example.test\r\nSubject: to myself\r\n\r\nhello me\r\n')
    files = _wait(lambda: _maildir_new(su.pw_dir), 'delivery to the system user\n' + inst.log_tail(30))
    assert os.stat(files[0]).st_uid == su.pw_uid

    # POP3 on the plain port: the login child is nobody, the session the user
    p = poplib.POP3('127.0.0.1', inst.port('pop3'), timeout=TIMEOUT)
    _wait(lambda: _children_as(inst, 'pop3d', NOBODY), 'a pre-login pop3d child running as nobody')
    p.user(su.pw_name)
    p.pass_(PASSWORD)
    assert p.stat()[0] == 1
    assert b'hello me' in p.retr(1)[1]
    assert _running_as(inst, 'pop3d', su.pw_uid), _procs(inst, 'pop3d')
    p.quit()

    # POP3 over implicit TLS, with commands pipelined right behind the login
    with socket.create_connection(('127.0.0.1', inst.port('pop3s')), timeout=TIMEOUT) as raw:
        with _tls().wrap_socket(raw) as t:
            f = t.makefile('rb')
            assert f.readline().startswith(b'+OK')
            t.sendall(f'USER {su.pw_name}\r\nPASS {PASSWORD}\r\nSTAT\r\nQUIT\r\n'.encode())
            lines = [f.readline() for _ in range(4)]
    assert lines[1].startswith(b'+OK maildrop has 1'), lines
    assert lines[2] == b'+OK 1 ' + lines[2][6:] and lines[2].startswith(b'+OK 1 '), lines
    assert lines[3].startswith(b'+OK'), lines

    # POP3 with STLS: the login process upgrades, then stays as the proxy
    p = poplib.POP3('127.0.0.1', inst.port('pop3'), timeout=TIMEOUT)
    p.stls(context=_tls())
    p.user(su.pw_name)
    p.pass_(PASSWORD)
    assert p.stat()[0] == 1
    assert _children_as(inst, 'pop3d', NOBODY, su.pw_uid), ('no unprivileged TLS proxy', _procs(inst, 'pop3d'))
    p.quit()

    # IMAP on the plain port: INBOX and the special-use folders, APPEND and flags written as the user
    m = imaplib.IMAP4('127.0.0.1', inst.port('imap'), timeout=TIMEOUT)
    _wait(lambda: _children_as(inst, 'imapd', NOBODY), 'a pre-login imapd child running as nobody')
    m.login(su.pw_name, PASSWORD)
    assert _running_as(inst, 'imapd', su.pw_uid), _procs(inst, 'imapd')
    typ, boxes = m.list()
    assert typ == 'OK' and any(b'\\Sent' in b for b in boxes), boxes
    typ, data = m.select('INBOX')
    assert typ == 'OK' and data[0] == b'1'
    typ, data = m.fetch('1', '(BODY[TEXT])')
    assert b'hello me' in data[0][1]
    assert m.append('INBOX', '(\\Seen)', None, b'Subject: appended\r\n\r\nby imap\r\n')[0] == 'OK'
    assert m.store('1', '+FLAGS', '(\\Flagged)')[0] == 'OK'
    m.logout()
    md = Path(su.pw_dir) / 'Maildir'
    owned = [p for p in md.rglob('*')]
    assert owned and all(p.lstat().st_uid == su.pw_uid for p in owned), \
        [(str(p), p.lstat().st_uid) for p in owned if p.lstat().st_uid != su.pw_uid]
    cur = [p.name for p in (md / 'cur').iterdir()]
    assert any(n.endswith(':2,FS') for n in cur) and any(n.endswith(':2,S') for n in cur), cur

    # IMAP over implicit TLS (the imaps service): the TLS connection stays in an unprivileged proxy
    m = imaplib.IMAP4_SSL('127.0.0.1', inst.port('imaps'), ssl_context=_tls(), timeout=TIMEOUT)
    m.login(su.pw_name, PASSWORD)
    assert _running_as(inst, 'imapd', su.pw_uid)
    assert _children_as(inst, 'imapd', NOBODY, su.pw_uid), ('no unprivileged TLS proxy', _procs(inst, 'imapd'))
    typ, data = m.select('INBOX')
    assert typ == 'OK' and data[0] == b'2'
    typ, data = m.fetch('2', '(BODY.PEEK[])')
    assert b'by imap' in data[0][1]
    m.logout()


def test_auth_keeps_only_the_shadow_group(sysinst):
    """auth reads /etc/shadow as mail_owner with shadow's group added, not as root."""
    shadow_gid = os.stat('/etc/shadow').st_gid
    procs = _procs(sysinst, 'auth')
    assert procs, 'auth is not running'
    for pid, _, uids in procs:
        assert uids == (NOBODY,) * 4, uids
        status = Path(f'/proc/{pid}/status').read_text()
        groups = {int(g) for g in re.search(r'^Groups:\s*(.*)$', status, re.M).group(1).split()}
        assert shadow_gid in groups and 0 not in groups, groups


def test_imap_pipelined_after_login(sysinst):
    """Commands the client sends right behind LOGIN reach the post-login process (plain and TLS)."""
    inst, su = sysinst, sysinst.sys
    sasl = base64.b64encode(f'\0{su.pw_name}\0{PASSWORD}'.encode()).decode()
    for port, tls, login in ((inst.port('imap'), False, f'LOGIN {su.pw_name} "{PASSWORD}"'),
                             (inst.port('imaps'), True, f'LOGIN {su.pw_name} "{PASSWORD}"'),
                             (inst.port('imap'), False, f'AUTHENTICATE PLAIN {sasl}')):
        raw = socket.create_connection(('127.0.0.1', port), timeout=TIMEOUT)
        s = _tls().wrap_socket(raw) if tls else raw
        f = s.makefile('rb')
        assert f.readline().startswith(b'* OK')
        s.sendall(f'a1 {login}\r\na2 SELECT INBOX\r\na3 LOGOUT\r\n'.encode())
        out = b''
        while b'a3 OK' not in out:
            line = f.readline()
            if not line:
                break
            out += line
        s.close()
        assert re.search(rb'^a1 OK \[CAPABILITY [^\]]*\] logged in', out, re.M), out
        assert re.search(rb'^a2 OK \[READ-WRITE\]', out, re.M), out
        assert b'a3 OK' in out, out


def test_virtual_account_on_the_same_instance(sysinst):
    inst = sysinst
    m = imaplib.IMAP4('127.0.0.1', inst.port('imap'), timeout=TIMEOUT)
    m.login(inst.demo_user, inst.demo_password)
    assert m.select('INBOX')[0] == 'OK'
    assert m.append('INBOX', None, None, b'Subject: v\r\n\r\nvirtual\r\n')[0] == 'OK'
    m.logout()
    md = inst.path('mail', inst.domain, 'demo')
    assert all(p.lstat().st_uid == NOBODY for p in md.rglob('*'))
    p = poplib.POP3_SSL('127.0.0.1', inst.port('pop3s'), context=_tls(), timeout=TIMEOUT)
    p.user(inst.demo_user)
    p.pass_(inst.demo_password)
    assert p.stat()[0] >= 1
    p.quit()


def test_wrong_password_throttled_and_logged(sysinst):
    inst, su = sysinst, sysinst.sys
    since = len(inst.log_lines())
    times = []
    for _ in range(2):
        m = imaplib.IMAP4('127.0.0.1', inst.port('imap'), timeout=TIMEOUT)
        t0 = time.monotonic()
        with pytest.raises(imaplib.IMAP4.error):
            m.login(su.pw_name, 'wrong')
        times.append(time.monotonic() - t0)
        m.logout()
    assert times[1] >= 0.9, times
    inst.wait_log(rf'auth failed: user=<{su.pw_name}> rip=127\.0\.0\.1 mech=PASSWORD service=imapd '
                  r'reason=bad password', since=since)
    # a system user cannot pose as root, and root never logs in
    m = imaplib.IMAP4('127.0.0.1', inst.port('imap'), timeout=TIMEOUT)
    with pytest.raises(imaplib.IMAP4.error):
        m.login('root', 'x')
    m.logout()


def test_check_warns_when_mailbox_servers_cannot_switch(make_instance):
    """postern check: auth_system_users = yes with pop3/imap services that run as mail_owner is a warning."""
    inst = make_instance(extra_args=('--user', 'nobody') if os.geteuid() == 0 else ())
    assert 'system users' not in inst.cli('check').stdout
    inst.cli('config', 'set', 'auth_system_users=yes', check=True)
    out = inst.cli('check').stdout
    for service in ('pop3', 'pop3s', 'imap', 'imaps'):
        assert re.search(rf'warning: \S+master\.cf:\d+: service {service} runs as \S+, so system users', out), out
    cf = inst.path('etc', 'master.cf')
    cf.write_text(re.sub(r'^((?:pop3|pop3s|imap|imaps)\s+inet\s+\S+\s+\S+\s+)-', r'\1root', cf.read_text(),
                         flags=re.M))
    assert 'system users' not in inst.cli('check').stdout


def test_user_add_makes_the_maildir(postern_build):
    """postern user add makes the account's Maildir, owned by the account's user (mail_owner for virtual ones).
    The instance lives in a world-searchable directory: as root the Maildir is made by mail_owner (nobody)."""
    root = os.geteuid() == 0
    top = Path(tempfile.mkdtemp(prefix='postern-useradd-'))
    os.chmod(top, 0o711)
    try:
        inst = Instance(top / 'postern', zip(SERVICES, free_ports(len(SERVICES))), 'example.test',
                        'mail.example.test')
        inst.init(*(('--user', 'nobody') if root else ()))
        r = inst.cli('user', 'add', 'newbie@example.test', '--password-stdin', input='pw 1\n', check=True)
        assert 'warning' not in r.stderr, r.stderr
        md = inst.path('mail', 'example.test', 'newbie')
        for sub in ('', 'cur', 'new', 'tmp'):
            st = os.stat(md / sub)
            assert st.st_mode & 0o777 == 0o700, (sub, oct(st.st_mode))
            assert st.st_uid == (NOBODY if root else os.geteuid()), (sub, st.st_uid)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_login_cache_follows_shadow(sysinst):
    """A system user's repeated login is answered from auth's cache; chpasswd and usermod -L end it at once."""
    inst, su = sysinst, sysinst.sys

    def login(password):
        m = imaplib.IMAP4('127.0.0.1', inst.port('imap'), timeout=TIMEOUT)
        try:
            m.login(su.pw_name, password)
            return True
        except imaplib.IMAP4.error:
            return False
        finally:
            m.logout()

    assert login(PASSWORD)
    since = len(inst.log_lines())
    assert login(PASSWORD)
    inst.wait_log(rf'auth ok: user=<{su.pw_name}> .*cached=yes', since=since)
    subprocess.run(['chpasswd'], input=f'{su.pw_name}:other secret\n', text=True, check=True, capture_output=True)
    assert not login(PASSWORD), 'the old password still works after chpasswd'
    assert login('other secret')
    subprocess.run(['usermod', '-L', su.pw_name], check=True, capture_output=True)
    assert not login('other secret'), 'a locked system account still logs in'
