"""sendmail/mailq/newaliases: the client side of local submission, end to end through the real binary.

The submit socket is served here by a small scripted SMTP server (a thread) that records what arrives and the
peer's uid from SO_PEERCRED, the same credential smtpd's local mode records in the queue file. So these tests
pin down the sendmail side (options, -t, Bcc removal, added headers, dot handling, -bs, exit codes, running as
an ordinary user, mailx on top) without needing the rest of the system running.
"""
import os
import pwd
import re
import secrets
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

SOURCE_ROOT = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0
EX_NOUSER, EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE = 67, 75, 69, 64


def build_dir():
    return Path(os.environ.get('POSTERN_BUILD') or SOURCE_ROOT / 'build').resolve()


class SubmitServer:
    """A scripted SMTP server on DIR/public/submit. rcpt_reply maps an address to the RCPT reply to give."""

    def __init__(self, path):
        self.path = str(path)
        self.sessions = []
        self.rcpt_reply = {}
        self.data_reply = b'250 2.0.0 Ok: queued as TEST\r\n'
        self.ehlo_reply = b'250-test\r\n250-8BITMIME\r\n250-DSN\r\n250 SMTPUTF8\r\n'
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with c:
                self.session(c)

    def session(self, c):
        c.settimeout(10)
        pid, uid, gid = struct.unpack('3i', c.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        s = {'uid': uid, 'cmds': [], 'mail': None, 'rcpts': [], 'data': None}
        self.sessions.append(s)
        f = c.makefile('rb')
        c.sendall(b'220 test ESMTP\r\n')
        while True:
            line = f.readline()
            if not line:
                return
            s['cmds'].append(line)
            u = line.upper()
            if u.startswith(b'EHLO'):
                c.sendall(self.ehlo_reply)
            elif u.startswith(b'MAIL FROM:'):
                s['mail'] = line[10:].strip().decode()
                c.sendall(b'250 2.1.0 Ok\r\n')
            elif u.startswith(b'RCPT TO:'):
                arg = line[8:].strip().decode()
                addr = arg.split('>')[0].lstrip('<')
                reply = self.rcpt_reply.get(addr, b'250 2.1.5 Ok\r\n')
                if reply.startswith(b'250'):
                    s['rcpts'].append(arg)
                c.sendall(reply)
            elif u.startswith(b'DATA'):
                c.sendall(b'354 End data with <CR><LF>.<CR><LF>\r\n')
                data = b''
                while True:
                    ln = f.readline()
                    if not ln:
                        return
                    if ln == b'.\r\n':
                        break
                    data += ln
                s['data'] = data
                c.sendall(self.data_reply)
            elif u.startswith(b'QUIT'):
                c.sendall(b'221 2.0.0 Bye\r\n')
                return
            else:
                c.sendall(b'250 2.0.0 Ok\r\n')

    def close(self):
        self.stop = True
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def inst():
    """A world-readable instance directory (so an ordinary user can reach it) with its own copy of the binary."""
    d = Path(tempfile.mkdtemp(prefix='postern-sendmail-'))
    os.chmod(d, 0o755)
    for sub in ('etc', 'public', 'queue', 'bin'):
        (d / sub).mkdir()
        os.chmod(d / sub, 0o755)
    (d / 'etc' / 'main.cf').write_text('myhostname = mx.example.test\nmyorigin = example.test\n')
    os.chmod(d / 'etc' / 'main.cf', 0o644)
    shutil.copy(build_dir() / 'bin' / 'postern', d / 'bin' / 'postern')
    os.chmod(d / 'bin' / 'postern', 0o755)
    for name in ('sendmail', 'mailq', 'newaliases'):
        os.symlink('postern', d / 'bin' / name)
    srv = SubmitServer(d / 'public' / 'submit')
    yield d, srv
    srv.close()
    shutil.rmtree(d, ignore_errors=True)


def sendmail(d, args, data, user=None, prog='sendmail', env=None):
    cmd = [str(d / 'bin' / prog)] + args
    if user:
        cmd = ['setpriv', f'--reuid={user.pw_uid}', f'--regid={user.pw_gid}', '--clear-groups', '--'] + cmd
    e = {'PATH': '/usr/bin:/bin', 'POSTERN_DIR': str(d)}
    e.update(env or {})
    return subprocess.run(cmd, input=data, capture_output=True, timeout=30, env=e)


@pytest.fixture
def local_user():
    if not IS_ROOT:
        pytest.skip('needs root to create a temporary user')
    name = 'pst' + secrets.token_hex(4)
    subprocess.run(['useradd', '-M', '-N', '-d', '/nonexistent', '-s', '/usr/sbin/nologin', '-c', 'Sam Sender',
                    name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(['userdel', name], check=False)


def test_t_as_ordinary_user(inst, local_user):
    d, srv = inst
    msg = (b'To: Alice <alice@example.org>, bob\n'
           b'Cc: "Doe, Carol" <carol@example.net>\n'
           b'Bcc: dave@example.com,\n\terin@example.com\n'
           b'Subject: hello\n'
           b'\n'
           b'.leading dot\n'
           b'body\n')
    r = sendmail(d, ['-t', '-F', 'Sam Sender'], msg, user=local_user)
    assert r.returncode == 0, r.stderr
    s = srv.sessions[-1]
    assert s['uid'] == local_user.pw_uid          # the uid smtpd records comes from the kernel
    assert s['mail'].startswith(f'<{local_user.pw_name}@example.test>')
    got = [a.split('>')[0].lstrip('<') for a in s['rcpts']]
    assert got == ['alice@example.org', 'bob@example.test', 'carol@example.net', 'dave@example.com',
                   'erin@example.com']
    data = s['data']
    assert b'Bcc' not in data and b'dave@' not in data and b'erin@' not in data
    assert b'\r\n' in data and b'\n' not in data.replace(b'\r\n', b'')
    assert f'From: Sam Sender <{local_user.pw_name}@example.test>\r\n'.encode() in data
    assert b'\r\nDate: ' in data and b'\r\nMessage-ID: <' in data and b'@mx.example.test>\r\n' in data
    assert b'\r\n\r\n..leading dot\r\nbody\r\n' in data   # dot-stuffed on the wire


def test_t_resent_headers(inst):
    """A resent message (Resent- fields present) goes to its Resent-To/Cc/Bcc only, as with sendmail."""
    d, srv = inst
    msg = (b'From: orig@example.org\nTo: first@example.org\nCc: old@example.org\n'
           b'Resent-From: fwd@example.test\nResent-To: again@example.net\nResent-Cc: also@example.net\n'
           b'Resent-Bcc: hidden@example.net\nSubject: resent\n\nbody\n')
    r = sendmail(d, ['-t'], msg)
    assert r.returncode == 0, r.stderr
    s = srv.sessions[-1]
    assert [a.split('>')[0].lstrip('<') for a in s['rcpts']] == ['again@example.net', 'also@example.net',
                                                                 'hidden@example.net']
    assert b'hidden@' not in s['data'] and b'To: first@example.org\r\n' in s['data']


def test_uid_cannot_be_forged(inst, local_user):
    """Whatever the caller claims (-f, environment), the submit server sees its real uid."""
    d, srv = inst
    r = sendmail(d, ['-f', 'root@example.test', 'x@example.org'], b'Subject: forged\n\nhi\n', user=local_user,
                 env={'USER': 'root', 'LOGNAME': 'root'})
    assert r.returncode == 0, r.stderr
    s = srv.sessions[-1]
    assert s['uid'] == local_user.pw_uid != 0
    assert s['mail'].startswith('<root@example.test>')   # trusted like Postfix; smtpd logs it with the uid
    # the default From is the login name of the real uid, not $USER
    r = sendmail(d, ['x@example.org'], b'Subject: x\n\nhi\n', user=local_user, env={'USER': 'root'})
    assert r.returncode == 0, r.stderr
    assert f'From: {local_user.pw_name}@example.test'.encode() in srv.sessions[-1]['data']


def test_lone_dot_and_i(inst):
    d, srv = inst
    r = sendmail(d, ['a@example.org'], b'Subject: x\r\n\r\nkept\r\n.\r\nlost\r\n')
    assert r.returncode == 0, r.stderr
    assert srv.sessions[-1]['data'].endswith(b'\r\n\r\nkept\r\n')
    r = sendmail(d, ['-oi', 'a@example.org'], b'Subject: x\n\nkept\n.\nalso kept')
    assert r.returncode == 0, r.stderr
    assert srv.sessions[-1]['data'].endswith(b'kept\r\n..\r\nalso kept\r\n')


def test_large_message_streams(inst):
    """A body far larger than one read, with dot lines and CRLF pairs across read boundaries, arrives exact."""
    d, srv = inst
    lines = [(b'.' if i % 3 == 0 else b'') + b'line %d ' % i + b'x' * (i % 97) for i in range(20000)]
    body = b'\r\n'.join(lines) + b'\r\nno newline at the end'
    r = sendmail(d, ['-i', 'a@example.org'], b'Subject: big\r\n\r\n' + body)
    assert r.returncode == 0, r.stderr
    data = srv.sessions[-1]['data']
    want = b'\r\n'.join((b'.' + ln if ln.startswith(b'.') else ln) for ln in lines)
    assert data.endswith(b'\r\n\r\n' + want + b'\r\nno newline at the end\r\n')
    assert len(data) > 1000000


def test_header_section_too_long(inst):
    d, srv = inst
    msg = b''.join(b'X-Filler-%d: %s\n' % (i, b'y' * 100) for i in range(12000)) + b'\nbody\n'
    r = sendmail(d, ['a@example.org'], msg)
    assert r.returncode == 65 and b'header section is longer' in r.stderr
    assert srv.sessions == []


def test_existing_headers_kept_and_no_header_section(inst):
    d, srv = inst
    msg = b'From: me@example.org\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <x@y>\n\nhi\n'
    assert sendmail(d, ['a@example.org'], msg).returncode == 0
    data = srv.sessions[-1]['data']
    assert data.count(b'From:') == 1 and data.count(b'Date:') == 1 and data.count(b'Message-ID:') == 1
    # a message that starts with body text gets our headers and an empty line before it
    assert sendmail(d, ['a@example.org'], b'just text\n').returncode == 0
    data = srv.sessions[-1]['data']
    assert b'\r\n\r\njust text\r\n' in data and data.startswith(b'From: ')


def test_command_line_addresses(inst):
    d, srv = inst
    r = sendmail(d, ['-v', '--', 'Alice <alice@example.org>, bob', '<carol@example.net>'], b'\nx\n')
    assert r.returncode == 0, r.stderr
    got = [a.split('>')[0].lstrip('<') for a in srv.sessions[-1]['rcpts']]
    assert got == ['alice@example.org', 'bob@example.test', 'carol@example.net']
    assert b'>>> RCPT TO:<bob@example.test>' in r.stderr and b'<<< 250 2.0.0 Ok: queued' in r.stderr   # -v
    n = len(srv.sessions)
    r = sendmail(d, ['good@example.org', 'bad@@x'], b'\nx\n')
    assert r.returncode == 65 and b"bad recipient address 'bad@@x'" in r.stderr
    r = sendmail(d, ['-f', 'me@x\r\nRCPT TO:<evil@x>', 'a@example.org'], b'\nx\n')
    assert r.returncode == EX_USAGE and b'bad sender address' in r.stderr
    assert len(srv.sessions) == n    # neither connected


def test_dsn_options(inst):
    d, srv = inst
    r = sendmail(d, ['-N', 'success,delay', '-V', 'env+1', '-f', '<>', 'a@example.org'], b'\n')
    assert r.returncode == 0, r.stderr
    cmds = b''.join(srv.sessions[-1]['cmds'])
    assert b'MAIL FROM:<> BODY=8BITMIME ENVID=env+2B1\r\n' in cmds
    assert b'RCPT TO:<a@example.org> NOTIFY=SUCCESS,DELAY\r\n' in cmds


def test_minimal_server_replies(inst):
    """A server without 8BITMIME/DSN (and a bare "250" line) gets no BODY, ENVID or NOTIFY parameters."""
    d, srv = inst
    srv.ehlo_reply = b'250-test\r\n250\r\n'
    r = sendmail(d, ['-N', 'never', '-V', 'e1', 'a@example.org'], b'\nx\n')
    assert r.returncode == 0, r.stderr
    cmds = b''.join(srv.sessions[-1]['cmds'])
    assert re.search(rb'^MAIL FROM:<[^>]*>\r\n', cmds, re.M)     # no BODY=8BITMIME either
    assert b'ENVID' not in cmds and b'NOTIFY' not in cmds


def test_refusals_and_exit_codes(inst):
    d, srv = inst
    srv.rcpt_reply['nobody@example.org'] = b'550 5.1.1 unknown user\r\n'
    srv.rcpt_reply['later@example.org'] = b'450 4.2.0 try later\r\n'
    r = sendmail(d, ['nobody@example.org'], b'\nx\n')
    assert r.returncode == EX_NOUSER and b'unknown user' in r.stderr and b'not sent' in r.stderr
    r = sendmail(d, ['later@example.org'], b'\nx\n')
    assert r.returncode == EX_TEMPFAIL
    # one good recipient: the message goes there, the refusal is reported, and a retry would duplicate it
    r = sendmail(d, ['nobody@example.org', 'ok@example.org'], b'\nx\n')
    assert r.returncode == 0 and b'nobody@example.org: recipient refused' in r.stderr
    srv.data_reply = b'554 5.7.1 no thanks\r\n'
    r = sendmail(d, ['ok@example.org'], b'\nx\n')
    assert r.returncode == EX_UNAVAILABLE and b'no thanks' in r.stderr
    r = sendmail(d, ['-t'], b'Subject: nobody\n\nx\n')
    assert r.returncode == EX_NOUSER and b'no recipients' in r.stderr
    r = sendmail(d, [], b'x\n')
    assert r.returncode == EX_USAGE


def test_system_down(inst):
    d, srv = inst
    srv.close()
    os.unlink(d / 'public' / 'submit')
    r = sendmail(d, ['a@example.org'], b'Subject: x\n\nimportant\n')
    assert r.returncode == EX_TEMPFAIL
    assert b'mail system is not running' in r.stderr and b'not sent' in r.stderr
    r = sendmail(d, ['-bs'], b'QUIT\r\n')
    assert r.returncode == EX_TEMPFAIL and r.stdout.startswith(b'421 ')
    # a socket nobody listens on (a crashed system) is the same
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(d / 'public' / 'submit'))
    s.close()
    assert sendmail(d, ['a@example.org'], b'\nx\n').returncode == EX_TEMPFAIL


def test_bs_proxies_smtp(inst):
    d, srv = inst
    dialog = (b'EHLO client\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n'
              b'Subject: bs\r\n\r\nvia -bs\r\n.\r\nQUIT\r\n')
    r = sendmail(d, ['-bs'], dialog)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b'220 ') and b'354 ' in r.stdout and r.stdout.endswith(b'221 2.0.0 Bye\r\n')
    assert srv.sessions[-1]['data'] == b'Subject: bs\r\n\r\nvia -bs\r\n'


def test_mailx_through_sendmail(inst, local_user):
    mailx = shutil.which('bsd-mailx') or shutil.which('mailx')
    if not mailx:
        pytest.skip('bsd-mailx not installed (tests/deps installs it)')
    d, srv = inst
    rc = d / 'mailrc'
    rc.write_text(f'set sendmail={d}/bin/sendmail\n')
    os.chmod(rc, 0o644)
    r = subprocess.run(['setpriv', f'--reuid={local_user.pw_uid}', f'--regid={local_user.pw_gid}',
                        '--clear-groups', '--', mailx, '-s', 'from mailx', 'alice@example.org'],
                       input=b'hello from mailx\n', capture_output=True, timeout=30,
                       env={'PATH': '/usr/bin:/bin', 'POSTERN_DIR': str(d), 'MAILRC': str(rc),
                            'HOME': str(d)})
    assert r.returncode == 0, r.stderr
    s = srv.sessions[-1]
    assert s['uid'] == local_user.pw_uid
    assert s['rcpts'][0].startswith('<alice@example.org>')
    assert b'Subject: from mailx\r\n' in s['data'] and b'hello from mailx\r\n' in s['data']


def test_mailq_and_newaliases(inst):
    d, srv = inst
    r = sendmail(d, [], b'', prog='mailq')
    assert r.returncode == 0 and r.stdout == b'Mail queue is empty\n'
    r = sendmail(d, ['-bp'], b'')
    assert r.stdout == b'Mail queue is empty\n'
    (d / 'etc' / 'aliases').write_text('postmaster: root\nroot: admin@example.org\n')
    r = sendmail(d, [], b'', prog='newaliases')
    assert r.returncode == 0, r.stderr
    assert (d / 'etc' / 'aliases.lmdb').exists() and b'2 aliases' in r.stdout
    r = subprocess.run([str(d / 'bin' / 'postern'), 'map', 'get', str(d / 'etc' / 'aliases'), 'root'],
                       capture_output=True, timeout=30)
    assert r.stdout.strip() == b'admin@example.org'
    # -q asks qmgr for a flush; with no qmgr running that fails loudly, as Postfix's does (postqueue -f)
    r = sendmail(d, ['-q'], b'')
    assert r.returncode == EX_UNAVAILABLE and b'Cannot flush mail queue - mail system is down' in r.stderr
