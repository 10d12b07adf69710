"""smtpd through real clients: smtplib, raw sockets (pipelining, BDAT, smuggling, STARTTLS injection) and swaks
when it is installed. Each test gets its own instance (conftest.py); qmgr is left out of the instance's master.cf
so accepted messages stay in queue/incoming where the test reads them back."""
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

LOOPBACK = '127.0.0.1'

if not (Path(__file__).parent / 'conftest.py').exists():
    pytest.skip('the instance fixtures (tests/integration/conftest.py) are not in this tree yet',
                allow_module_level=True)


# ---- helpers --------------------------------------------------------------------------------------------------

def read_qfile(path):
    """Parse a queue file (format version 1, docs/ARCHITECTURE.md "Queue"): (envelope dict, content bytes).
    Recipients are a list under 'R'; other records map their type letter to the raw value."""
    data = Path(path).read_bytes()
    assert data[:4] == b'PQF1', f'{path}: bad magic'
    off, env = 4, {'R': []}
    while True:
        rtype = data[off:off + 1]
        n = int.from_bytes(data[off + 1:off + 5], 'big')
        value = data[off + 5:off + 5 + n]
        off += 5 + n
        if rtype == b'X':
            content = data[off:off + int(value)]
            assert len(data) - off == int(value), f'{path}: content length mismatch'
            return env, content
        if rtype == b'R':
            env['R'].append(value.split(b'\0')[0].decode())
        else:
            env[rtype.decode()] = value


def queue_files(inst, sub):
    d = inst.path('queue', sub)
    return sorted(p.name for p in d.iterdir() if not p.name.startswith('.')) if d.is_dir() else []


def queued_message(inst, reply):
    """reply: the text of a 250 "queued as ID" reply; returns (envelope, content) of that queue file."""
    m = re.search(rb'queued as ([0-9A-Z]+)', reply if isinstance(reply, bytes) else reply.encode())
    assert m, f'no queue ID in {reply!r}'
    qid = m.group(1).decode()
    for sub in ('incoming', 'active', 'deferred', 'hold'):
        p = inst.path('queue', sub, qid)
        if p.exists():
            return read_qfile(p)
    raise AssertionError(f'queue file {qid} not found')


class Raw:
    """A raw SMTP client: send bytes exactly as given, read whole replies."""

    def __init__(self, port, source=None, timeout=10):
        self.sock = socket.create_connection((LOOPBACK, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b''

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def line(self):
        while b'\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f'connection closed; pending {self.buf!r}')
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b'\n')
        return line.rstrip(b'\r')

    def reply(self):
        """All lines of one reply joined by newlines, as bytes."""
        lines = [self.line()]
        while len(lines[-1]) >= 4 and lines[-1][3:4] == b'-':
            lines.append(self.line())
        return b'\n'.join(lines)

    def cmd(self, text, expect=None):
        self.send(text + '\r\n')
        r = self.reply()
        if expect is not None:
            assert r.startswith(expect.encode()), f'{text!r}: expected {expect!r}, got {r!r}'
        return r

    def closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def edit_master_cf(inst, overrides=(), drop=('qmgr',)):
    """Drop services (qmgr: keep messages in incoming) and add -o overrides to the smtp service."""
    path = inst.path('etc', 'master.cf')
    out, skipping = [], False
    for line in path.read_text().splitlines():
        if line[:1].isspace() and skipping:
            continue
        fields = line.split()
        skipping = bool(fields) and not line.startswith('#') and fields[0] in drop and fields[1] == 'unix'
        if skipping:
            continue
        out.append(line)
        if fields[:2] == ['smtp', 'inet']:
            out.extend(f'    -o {o}' for o in overrides)
    path.write_text('\n'.join(out) + '\n')


@pytest.fixture
def smtp_instance(make_instance):
    """factory(overrides=(), main_cf={}) -> a started instance without qmgr."""
    def factory(overrides=(), main_cf=None):
        inst = make_instance()
        edit_master_cf(inst, overrides)
        for name, value in (main_cf or {}).items():
            inst.cli('config', 'set', f'{name}={value}', check=True)
        inst.start()
        return inst
    return factory


def need_demo_account(inst):
    """AUTH tests need the demo account that `postern init` writes into the account database."""
    if not inst.demo_user or not inst.path('data', 'accounts.lmdb').exists():
        pytest.skip('this build of postern init writes no account database: no account to log in with')


def rcpt(inst):
    return f'postmaster@{inst.domain}'


# ---- tests ----------------------------------------------------------------------------------------------------

def test_greeting_and_ehlo(smtp_instance):
    inst = smtp_instance()
    with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=10) as s:
        code, banner = s.ehlo('client.test')
        assert code == 250
        for kw in ('pipelining', 'size', '8bitmime', 'smtputf8', 'enhancedstatuscodes', 'dsn', 'chunking',
                   'starttls', 'auth'):
            assert s.has_extn(kw), kw
        assert s.esmtp_features['auth'].split() == ['PLAIN', 'LOGIN']
        assert s.docmd('FOO') [0] == 500
    inst.wait_log(r'connect from unknown\[127\.0\.0\.1\]')


def test_pipelining_in_one_packet(smtp_instance):
    inst = smtp_instance()
    c = Raw(inst.port('smtp'))
    assert c.reply().startswith(b'220 ')
    c.cmd('EHLO client.test', '250')
    c.send(f'MAIL FROM:<a@remote.test>\r\nRCPT TO:<{rcpt(inst)}>\r\nRCPT TO:<nobody-xyz@{inst.domain}>\r\n'
           f'RCPT TO:<root@remote.test>\r\nDATA\r\n')
    assert c.reply().startswith(b'250 2.1.0')
    assert c.reply().startswith(b'250 2.1.5')
    assert c.reply().startswith(b'550 5.1.1')
    assert c.reply().startswith(b'250 2.1.5')      # 127.0.0.1 is in mynetworks: relaying allowed
    assert c.reply().startswith(b'354 ')
    c.send('Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n')
    r = c.reply()
    assert r.startswith(b'250 2.0.0 Ok: queued as ')
    assert c.reply().startswith(b'221 ')
    env, content = queued_message(inst, r)
    assert env['R'] == [rcpt(inst), 'root@remote.test']
    qid = re.search(rb'queued as (\w+)', r).group(1).decode()
    inst.wait_log(rf'{qid}: client=unknown\[127\.0\.0\.1\]')
    inst.wait_log(rf'{qid}: from=<a@remote\.test> size=\d+ nrcpt=2')


def test_dot_stuffing_round_trip(smtp_instance):
    inst = smtp_instance()
    body = 'Subject: dots\r\n\r\n.\r\n..two\r\n.leading\r\nmiddle . dot\r\n...\r\nend\r\n'
    with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=10) as s:
        s.ehlo('client.test')
        s.mail('a@remote.test')
        s.rcpt(rcpt(inst))
        code, reply = s.data(body)
        assert code == 250, reply
    env, content = queued_message(inst, reply)
    assert content.endswith(body.replace('\r\n', '\n').encode())
    assert content.startswith(b'Received: from client.test (unknown [127.0.0.1])\n')


def test_8bit_and_smtputf8(smtp_instance):
    inst = smtp_instance()
    sender = 'jörg@bücher.test'
    body = 'Subject: Grüße\r\n\r\nÄrger über € — ok\r\n'.encode()
    with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=10) as s:
        s.ehlo('client.test')
        code, _ = s.mail(sender, ['SMTPUTF8', 'BODY=8BITMIME'])
        assert code == 250
        assert s.rcpt(rcpt(inst))[0] == 250
        code, reply = s.data(body)
        assert code == 250
        # without SMTPUTF8 a UTF-8 address is refused
        code, reply2 = s.mail(sender)
        assert code == 553 and reply2.startswith(b'5.6.7')
    env, content = queued_message(inst, reply)
    assert env['S'].decode() == sender
    assert 'U' in env and env['B'] == b'8BITMIME'
    assert body.replace(b'\r\n', b'\n') in content
    assert b' with UTF8SMTP id ' in content


def test_bdat_several_chunks(smtp_instance):
    inst = smtp_instance()
    c = Raw(inst.port('smtp'))
    c.reply()
    c.cmd('EHLO client.test', '250')
    c.cmd('MAIL FROM:<a@remote.test>', '250')
    c.cmd(f'RCPT TO:<{rcpt(inst)}>', '250')
    chunks = [b'Subject: chunks\r\n\r\n', b'line one\r\n.\r\nQUIT\r\n', b'bin\x00ary\r\n']
    c.send(b''.join(b'BDAT %d\r\n' % len(ch) + ch for ch in chunks))
    for ch in chunks:
        assert c.reply() == b'250 2.0.0 Ok: %d bytes' % len(ch)
    c.send('BDAT 0 LAST\r\n')
    r = c.reply()
    assert r.startswith(b'250 2.0.0 Ok: queued as ')
    c.cmd('QUIT', '221')
    env, content = queued_message(inst, r)
    assert content.endswith(b'Subject: chunks\n\nline one\n.\nQUIT\nbin\x00ary\n')


def test_size_limits(smtp_instance):
    inst = smtp_instance(main_cf={'message_size_limit': '10000'})
    with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=10) as s:
        s.ehlo('client.test')
        assert s.esmtp_features['size'] == '10000'
        code, msg = s.mail('a@remote.test', ['SIZE=10001'])
        assert code == 552 and msg.startswith(b'5.3.4')
        assert s.mail('a@remote.test', ['SIZE=100'])[0] == 250      # the client lies about the size
        assert s.rcpt(rcpt(inst))[0] == 250
        code, msg = s.data('Subject: big\r\n\r\n' + ('x' * 70 + '\r\n') * 200)
        assert code == 552 and msg.startswith(b'5.3.4')
        assert s.noop()[0] == 250                                     # still in step
    assert queue_files(inst, 'incoming') == []
    assert queue_files(inst, 'tmp') == []


def test_relay_refused_outside_mynetworks_allowed_after_auth(smtp_instance):
    inst = smtp_instance(main_cf={'mynetworks': '127.0.0.1/32'})
    with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=10, source_address=('127.0.0.2', 0)) as s:
        s.ehlo('client.test')
        s.mail('a@remote.test')
        code, msg = s.rcpt('someone@elsewhere.test')
        assert code == 554 and msg.startswith(b'5.7.1') and b'Relay access denied' in msg
        assert s.rcpt(rcpt(inst))[0] == 250                          # local mail is still welcome
        s.rset()
        need_demo_account(inst)
        s.login(inst.demo_user, inst.demo_password)                  # loopback: AUTH offered without TLS
        s.mail(inst.demo_user)
        assert s.rcpt('someone@elsewhere.test')[0] == 250
    inst.wait_log(r'NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.2\]: 554 5\.7\.1 <someone@elsewhere\.test>')


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_submission_needs_auth_starttls_works(smtp_instance):
    inst = smtp_instance()
    with smtplib.SMTP(LOOPBACK, inst.port('submission'), timeout=10) as s:
        s.ehlo('client.test')
        assert s.has_extn('starttls')
        code, msg = s.mail(f'demo@{inst.domain}')
        assert code == 530 and msg.startswith(b'5.7.0')
        s.starttls(context=tls_context())
        s.ehlo('client.test')
        assert not s.has_extn('starttls')
        assert s.esmtp_features['auth'].split() == ['PLAIN', 'LOGIN']
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(f'demo@{inst.domain}', 'wrong password')
        assert e.value.smtp_code == 535
        code, msg = s.mail(f'demo@{inst.domain}')
        assert code == 530
    inst.wait_log(r'TLS connection established from unknown\[127\.0\.0\.1\]: TLSv1\.[23] with cipher')


def test_submission_auth_after_starttls(smtp_instance):
    inst = smtp_instance()
    need_demo_account(inst)
    with smtplib.SMTP(LOOPBACK, inst.port('submission'), timeout=10) as s:
        s.ehlo('client.test')
        s.starttls(context=tls_context())
        s.ehlo('client.test')
        s.login(inst.demo_user, inst.demo_password)
        code, msg = s.mail(f'someone-else@{inst.domain}')
        assert code == 553 and msg.startswith(b'5.7.1')
        assert s.mail(inst.demo_user)[0] == 250
        assert s.rcpt('friend@elsewhere.test')[0] == 250
        code, reply = s.data('Subject: from submission\r\n\r\nhi\r\n')
        assert code == 250
    env, content = queued_message(inst, reply)
    assert env['A'].decode() == inst.demo_user
    assert env['P'] == b'ESMTPSA'
    assert b'Message-ID: <' in content and b'\nDate: ' in content
    assert b' with ESMTPSA id ' in content
    assert b'(using TLSv1.' in content


def test_smtps_implicit_tls(smtp_instance):
    inst = smtp_instance()
    need_demo_account(inst)
    with smtplib.SMTP_SSL(LOOPBACK, inst.port('smtps'), timeout=10, context=tls_context()) as s:
        s.ehlo('client.test')
        assert not s.has_extn('starttls')
        s.login(inst.demo_user, inst.demo_password)


def test_starttls_injection(smtp_instance):
    inst = smtp_instance()
    c = Raw(inst.port('smtp'))
    c.reply()
    c.cmd('EHLO client.test', '250')
    c.send('STARTTLS\r\nRSET\r\nMAIL FROM:<injected@evil.test>\r\n')
    assert c.reply().startswith(b'220 2.0.0')
    tls = tls_context().wrap_socket(c.sock, server_hostname=None)
    tls.sendall(b'EHLO again.test\r\n')
    data = b''
    while not re.search(rb'(^|\n)250 [^\r\n]*\r\n', data):
        data += tls.recv(65536)
    # the first reply after the handshake answers our EHLO, not the injected commands
    assert data.startswith(b'250-'), data
    tls.sendall(b'MAIL FROM:<a@remote.test>\r\n')
    assert tls.recv(65536).startswith(b'250 2.1.0')          # no "nested MAIL": the injected MAIL was dropped
    tls.close()
    inst.wait_log(r'discarded \d+ bytes pipelined after STARTTLS')


@pytest.mark.parametrize('fake_end', [b'\n.\n', b'\r\n.\n', b'\n.\r\n', b'\r.\r\n', b'\r\n.\r\r\n'])
def test_smuggling_variants(smtp_instance, fake_end):
    inst = smtp_instance()
    c = Raw(inst.port('smtp'))
    c.reply()
    c.cmd('EHLO client.test', '250')
    c.cmd('MAIL FROM:<a@remote.test>', '250')
    c.cmd(f'RCPT TO:<{rcpt(inst)}>', '250')
    c.cmd('DATA', '354')
    smuggled = (b'Subject: outer\r\n\r\nhello' + fake_end +
                b'MAIL FROM:<admin@example.com>\r\nRCPT TO:<victim@elsewhere.test>\r\nDATA\r\n'
                b'Subject: smuggled\r\n\r\nevil\r\n.\r\n')
    c.send(smuggled)
    r = c.reply()
    # exactly one answer for the whole message: the smuggled commands were content, and bare line ends refused
    assert r.startswith(b'550 5.5.2'), r
    c.cmd('NOOP', '250')
    c.cmd('QUIT', '221')
    assert queue_files(inst, 'incoming') == []


def test_overlong_command_line(smtp_instance):
    inst = smtp_instance()
    c = Raw(inst.port('smtp'))
    c.reply()
    c.cmd('EHLO client.test', '250')
    c.cmd('NOOP ' + 'x' * 5000, '500 5.5.2')
    c.cmd('MAIL FROM:<' + 'a' * 3000 + '@remote.test>', '500 5.5.2')
    c.cmd('NOOP', '250')


def test_thousand_recipients(smtp_instance):
    inst = smtp_instance()
    c = Raw(inst.port('smtp'))
    c.reply()
    c.cmd('EHLO client.test', '250')
    c.cmd('MAIL FROM:<a@remote.test>', '250')
    c.send(''.join(f'RCPT TO:<user{i}@remote.test>\r\n' for i in range(1001)))
    replies = [c.reply() for _ in range(1001)]
    assert all(r.startswith(b'250 2.1.5') for r in replies[:1000])
    assert replies[1000].startswith(b'452 4.5.3')
    c.cmd('DATA', '354')
    c.send('Subject: many\r\n\r\nx\r\n.\r\n')
    r = c.reply()
    assert r.startswith(b'250 2.0.0')
    env, _ = queued_message(inst, r)
    assert len(env['R']) == 1000


def test_slow_client_timed_out(smtp_instance):
    inst = smtp_instance(overrides=['smtpd_timeout=2s'])
    c = Raw(inst.port('smtp'))
    c.reply()
    c.send('EHLO cl')          # a partial command, then nothing
    start = time.monotonic()
    assert c.reply().startswith(b'421 4.4.2')
    assert 1.5 <= time.monotonic() - start < 8
    assert c.closed()
    inst.wait_log(r'timeout after CONNECT from unknown\[127\.0\.0\.1\]')


def test_disconnect_mid_data_leaves_no_file(smtp_instance):
    inst = smtp_instance()
    c = Raw(inst.port('smtp'))
    c.reply()
    c.cmd('EHLO client.test', '250')
    c.cmd('MAIL FROM:<a@remote.test>', '250')
    c.cmd(f'RCPT TO:<{rcpt(inst)}>', '250')
    c.cmd('DATA', '354')
    c.send('Subject: cut\r\n\r\n' + 'text\r\n' * 1000)
    time.sleep(0.2)
    c.close()
    inst.wait_log(r'lost connection after DATA content')
    assert queue_files(inst, 'incoming') == []
    assert queue_files(inst, 'tmp') == []


@pytest.mark.skipif(shutil.which('swaks') is None, reason='swaks is not installed')
def test_swaks_pipelining_and_auth(smtp_instance):
    inst = smtp_instance()
    need_demo_account(inst)
    out = subprocess.run(['swaks', '--server', LOOPBACK, '--port', str(inst.port('submission')), '--tls',
                          '--auth', 'PLAIN', '--auth-user', inst.demo_user, '--auth-password', inst.demo_password,
                          '--from', inst.demo_user, '--to', 'friend@elsewhere.test', '--pipeline',
                          '--body', '.leading dot\n..two dots'],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert out.returncode == 0, out.stdout
    m = re.search(r'queued as ([0-9A-Z]+)', out.stdout)
    assert m, out.stdout
    env, content = queued_message(inst, m.group(0))
    assert b'\n.leading dot\n..two dots' in content


def test_delivered_to_maildir_promptly(make_instance):
    """The whole path with qmgr and local running: accepted, qmgr woken at once (well before its periodic scan),
    delivered into the demo account's Maildir with our Received header on top."""
    inst = make_instance()
    inst.cli('config', 'set', 'queue_scan_interval=1h', check=True)    # only the wakeup can be quick
    inst.start()
    need_demo_account(inst)
    with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=10) as s:
        s.ehlo('client.test')
        s.mail('someone@remote.test')
        assert s.rcpt(inst.demo_user)[0] == 250
        code, reply = s.data('Subject: end to end\r\n\r\nhello\r\n')
        assert code == 250
    new = inst.path('mail', inst.domain, 'demo', 'new')
    deadline = time.monotonic() + 10
    while not (new.is_dir() and any(new.iterdir())):
        assert time.monotonic() < deadline, f'nothing delivered into {new}; log:\n{inst.log_tail()}'
        time.sleep(0.1)
    msg = next(new.iterdir()).read_bytes()
    assert re.search(rb'(^|\n)Received: from client\.test \(unknown \[127\.0\.0\.1\]\)\n', msg), msg
    assert b'\nSubject: end to end\n\nhello\n' in msg


def test_connections_per_client_address_limited(smtp_instance):
    inst = smtp_instance(main_cf={'mynetworks': '127.0.0.1/32', 'smtpd_client_connection_limit': '2'})
    port = inst.port('smtp')
    held = [smtplib.SMTP(LOOPBACK, port, timeout=10, source_address=('127.0.0.2', 0)) for _ in range(2)]
    # a third session from the same address is turned away at the greeting
    with socket.create_connection((LOOPBACK, port), timeout=10, source_address=('127.0.0.2', 0)) as s:
        assert s.recv(512).startswith(b'421 4.7.0'), 'third connection was not refused'
    # other addresses, and mynetworks, are not affected
    with smtplib.SMTP(LOOPBACK, port, timeout=10, source_address=('127.0.0.3', 0)) as s:
        assert s.noop()[0] == 250
    extra = [smtplib.SMTP(LOOPBACK, port, timeout=10, source_address=('127.0.0.1', 0)) for _ in range(3)]
    for s in extra:
        s.quit()
    assert inst.wait_log(r'too many connections from \S+\[127\.0\.0\.2\] \(limit 2\)', 10)
    # a session that ends (or a process that is killed) frees its slot
    held.pop().quit()
    deadline = time.time() + 10
    while True:
        with socket.create_connection((LOOPBACK, port), timeout=10, source_address=('127.0.0.2', 0)) as s:
            if s.recv(512).startswith(b'220'):
                break
        assert time.time() < deadline, 'slot not freed after QUIT'
        time.sleep(0.1)
    for s in held:
        s.quit()


def test_stop_does_not_wait_for_idle_clients(smtp_instance):
    """`postern stop` with clients idle between commands (one just greeted, one after EHLO and RSET) returns at
    once instead of after master_stop_timeout, and each client is told 421 4.3.2 before the close."""
    inst = smtp_instance()
    fresh = socket.create_connection(('127.0.0.1', inst.port('smtp')), timeout=10)
    assert fresh.recv(1024).startswith(b'220 ')
    kept = smtplib.SMTP('127.0.0.1', inst.port('smtp'), timeout=10)
    kept.ehlo('client.example')
    assert kept.rset()[0] == 250
    t0 = time.monotonic()
    r = inst.run('stop', '-c', inst.dir, timeout=30)
    took = time.monotonic() - t0
    inst.started = False
    assert r.returncode == 0, r.stderr
    assert took < 3, f'postern stop took {took:.1f}s with idle clients'
    assert fresh.recv(1024).startswith(b'421 4.3.2 ')
    assert kept.sock.recv(1024).startswith(b'421 4.3.2 ')
    fresh.close()
    kept.close()
