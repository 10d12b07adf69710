"""imapd through master and Python's imaplib: greeting and CAPABILITY, STARTTLS on the plain port, implicit TLS
on the other, BAD recovery, literals, LOGIN through the auth daemon, and the mailbox commands (LIST, CREATE,
RENAME, DELETE, SUBSCRIBE/LSUB, SELECT/EXAMINE counts, APPEND, STATUS) on a real account.

Each test builds its own small instance in a temporary directory on free loopback ports (master, imapd, auth, one
account and a self-signed certificate), like test_master.py does for the echo daemon.
"""
import imaplib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SOURCE_ROOT = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0


def build_dir():
    return Path(os.environ.get('POSTERN_BUILD') or SOURCE_ROOT / 'build').resolve()


def free_ports(n):
    held, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(('127.0.0.1', 0))
            held.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in held:
            s.close()
    return ports


def pids_of(path):
    pat = re.compile(re.escape(os.fsencode(str(path))) + rb'(?=/|\0|$)')
    found = []
    for e in os.listdir('/proc'):
        if not e.isdigit() or int(e) == os.getpid():
            continue
        try:
            with open(f'/proc/{e}/cmdline', 'rb') as f:
                cmd = f.read()
            with open(f'/proc/{e}/stat') as f:
                if f.read().split(') ', 1)[1][:1] == 'Z':
                    continue
        except (OSError, IndexError):
            continue
        if pat.search(cmd):
            found.append(int(e))
    return found


def wait_for(cond, timeout=10, what='condition'):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f'timed out waiting for {what}')


class ImapInstance:
    def __init__(self, root):
        self.dir = Path(root)
        self.dir.mkdir(mode=0o755)
        for d in ('etc', 'etc/tls', 'bin', 'log', 'pid', 'queue', 'private'):
            (self.dir / d).mkdir()
            os.chmod(self.dir / d, 0o700 if d == 'private' else 0o755)
        for prog in ('master', 'imapd', 'auth'):
            os.symlink(build_dir() / 'bin' / prog, self.dir / 'bin' / prog)
        (self.dir / 'mail').mkdir()
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj',
                        '/CN=localhost', '-keyout', str(self.dir / 'etc/tls/key.pem'),
                        '-out', str(self.dir / 'etc/tls/cert.pem')],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        owner = 'nobody' if IS_ROOT else 'root'
        if IS_ROOT:
            os.chown(self.dir / 'private', 65534, 65534)
            os.chown(self.dir / 'queue', 65534, 65534)
            os.chown(self.dir / 'mail', 65534, 65534)
        (self.dir / 'etc' / 'main.cf').write_text(
            f'daemon_directory = {self.dir}/bin\n'
            f'mail_owner = {owner}\n'
            f'log_destination = {self.dir}/log/postern.log\n'
            'master_stop_timeout = 5s\n'
            'imapd_preauth_literal_limit = 1k\n')
        self.imap, self.imaps = free_ports(2)
        (self.dir / 'etc' / 'master.cf').write_text(
            f'imap  inet 127.0.0.1:{self.imap} starttls - - 5 100 60s imapd\n'
            f'imaps inet 127.0.0.1:{self.imaps} implicit - - 5 100 60s imapd\n'
            'auth  unix auth - - - 1 0 0 auth\n')

    def cli(self, *args, timeout=60):
        return subprocess.run([str(build_dir() / 'bin' / 'postern'), *map(str, args), '-c', str(self.dir)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)

    def add_user(self, address, password):
        r = subprocess.run([str(build_dir() / 'bin' / 'postern'), 'user', '-c', str(self.dir), 'add', address,
                            '--password-stdin'], input=password + '\n', stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        assert r.returncode == 0, r.stderr

    def log(self):
        try:
            return (self.dir / 'log' / 'postern.log').read_text(errors='replace')
        except FileNotFoundError:
            return ''

    def start(self):
        r = self.cli('start')
        assert r.returncode == 0, f'start failed: {r.stdout}\n{r.stderr}\n{self.log()}'

    def cleanup(self):
        self.cli('stop', timeout=30)
        for pid in pids_of(self.dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def inst():
    if not (build_dir() / 'bin' / 'imapd').exists():
        pytest.skip('imapd not built')
    # not pytest's tmp_path: its parents are private to us, and the daemons run as mail_owner when we are root
    top = Path(tempfile.mkdtemp(prefix='postern-imapd-'))
    os.chmod(top, 0o755)
    try:
        i = ImapInstance(top / 'inst')
        i.add_user('fred@example.test', 'se cret')
        i.start()
        yield i
        i.cleanup()
        assert pids_of(i.dir) == [], 'processes left behind'
    finally:
        shutil.rmtree(top, ignore_errors=True)


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_capability_noop_logout(inst):
    m = imaplib.IMAP4('127.0.0.1', inst.imap, timeout=10)
    assert 'IMAP4REV1' in m.capabilities
    assert 'STARTTLS' in m.capabilities
    assert 'LITERAL+' in m.capabilities
    # loopback: passwords are allowed without TLS
    assert 'AUTH=PLAIN' in m.capabilities
    typ, _ = m.noop()
    assert typ == 'OK'
    typ, data = m.capability()
    assert typ == 'OK' and b'IMAP4rev1' in data[0]
    typ, data = m.logout()
    assert typ == 'BYE'


def test_starttls_then_login(inst):
    m = imaplib.IMAP4('127.0.0.1', inst.imap, timeout=10)
    m.starttls(ssl_context=client_ctx())
    typ, data = m.capability()
    assert b'STARTTLS' not in data[0]
    with pytest.raises(imaplib.IMAP4.error, match='AUTHENTICATIONFAILED'):
        m.login('fred@example.test', 'wrong')
    typ, _ = m.login('fred@example.test', 'se cret')
    assert typ == 'OK'
    m.logout()


def test_mailboxes_end_to_end(inst):
    m = imaplib.IMAP4('127.0.0.1', inst.imap, timeout=10)
    m.login('fred@example.test', 'se cret')
    typ, data = m.list()
    assert typ == 'OK'
    listing = b'\n'.join(data)
    for name in (b'"INBOX"', b'"Sent"', b'"Drafts"', b'"Trash"', b'"Junk"', b'"Archive"'):
        assert name in listing
    assert b'\\Sent' in listing
    assert m.create('Lists/postern')[0] == 'OK'
    assert m.create('Lists/postern')[0] == 'NO'
    typ, data = m.list('""', '%')
    assert any(b'\\Noselect' in d and b'"Lists"' in d for d in data)
    assert m.rename('Lists/postern', 'Work/postern')[0] == 'OK'
    assert m.subscribe('Work/postern')[0] == 'OK'
    typ, data = m.lsub('""', 'Work*')
    assert data == [b'() "/" "Work/postern"']          # "*" shows it: no \\Noselect "Work" needed
    assert m.delete('Work/postern')[0] == 'OK'
    typ, data = m.list('""', 'Work*')
    assert data == [None]
    # modified UTF-7 names
    assert m.create('Entw&APw-rfe')[0] == 'OK'
    typ, data = m.list('""', 'Entw*')
    assert data[0].endswith(b'"Entw&APw-rfe"')
    # SELECT counts, APPEND, STATUS
    typ, data = m.select('INBOX')
    assert typ == 'OK' and data == [b'0']
    typ, data = m.append('INBOX', r'(\Seen)', None, b'Subject: hi\r\n\r\nbody\r\n')
    assert typ == 'OK'
    typ, data = m.select('INBOX')
    assert data == [b'1']
    typ, data = m.status('INBOX', '(MESSAGES UNSEEN)')
    assert data[0] == b'"INBOX" (MESSAGES 1 UNSEEN 0)'
    typ, data = m.select('Sent', readonly=True)  # EXAMINE
    assert typ == 'OK'
    m.logout()
    # the messages live in the account's Maildir, as Maildir++ folders beside it
    maildir = inst.dir / 'mail' / 'example.test' / 'fred'
    if not maildir.exists():
        maildir = next(p for p in (inst.dir / 'mail').rglob('cur')).parent
    assert len(list((maildir / 'cur').iterdir())) == 1
    assert (maildir / '.Sent' / 'cur').is_dir()
    assert (maildir / '.Entwürfe' / 'cur').is_dir()


def test_implicit_tls(inst):
    m = imaplib.IMAP4_SSL('127.0.0.1', inst.imaps, ssl_context=client_ctx(), timeout=10)
    assert 'IMAP4REV1' in m.capabilities
    assert 'STARTTLS' not in m.capabilities
    assert m.noop()[0] == 'OK'
    m.logout()


def raw(port):
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    f = s.makefile('rb')
    greeting = f.readline()
    assert greeting.startswith(b'* OK [CAPABILITY IMAP4rev1')
    return s, f


def test_bad_commands_and_literals(inst):
    s, f = raw(inst.imap)
    s.sendall(b'a1 FROB\r\n')
    assert f.readline().startswith(b'a1 BAD')
    s.sendall(b'a2 SELECT INBOX\r\n')
    assert f.readline().startswith(b'a2 BAD')
    s.sendall(b'a3 NOOP (x\r\n')
    assert f.readline() == b'a3 BAD unclosed list\r\n'
    # a synchronising literal gets "+ " before its data; LITERAL+ does not
    s.sendall(b'a4 ID ({4}\r\n')
    assert f.readline().startswith(b'+ ')
    s.sendall(b'name {3+}\r\nx y)\r\n')
    assert f.readline().startswith(b'* ID ')
    assert f.readline().startswith(b'a4 OK')
    # over the pre-login literal limit: BAD [TOOBIG] and no continuation; the session goes on
    s.sendall(b'a5 LOGIN {5000}\r\n')
    assert f.readline().startswith(b'a5 BAD [TOOBIG]')
    s.sendall(b'a6 NOOP\r\n')
    assert f.readline().startswith(b'a6 OK')
    # an oversized LITERAL+ cannot be skipped safely: BYE
    s.sendall(b'a7 LOGIN {5000+}\r\n')
    assert f.readline().startswith(b'* BYE')
    assert f.readline() == b''
    s.close()


def test_starttls_injection_refused(inst):
    s, f = raw(inst.imap)
    # a command pipelined after STARTTLS must not be run inside the TLS session
    s.sendall(b'a1 STARTTLS\r\na2 NOOP\r\n')
    assert f.readline().startswith(b'a1 OK')
    assert f.readline() == b''
    s.close()


def test_stop_does_not_wait_for_an_idle_client(inst):
    """`postern stop` with a client idle in the selected state returns at once (not after master_stop_timeout)
    and the client gets an untagged BYE saying why."""
    c = imaplib.IMAP4('127.0.0.1', inst.imap, timeout=30)
    c.login('fred@example.test', 'se cret')
    c.select('INBOX')
    t0 = time.monotonic()
    r = inst.cli('stop', timeout=30)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert took < 2.5, f'postern stop took {took:.1f}s with an idle IMAP client'
    assert c.readline().startswith(b'* BYE Server shutting down')
    c.shutdown()
