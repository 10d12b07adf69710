"""The smtp delivery daemon against scripted SMTP servers on loopback, with dnsmasq on loopback serving the MX and
A records of the test domains (all under .test, pointing at 127.0.0.x). Delivery requests are sent to the daemon's
socket the way qmgr sends them (LP_DELIVER of the local/smtp delivery protocol, IPC wire format of
docs/ARCHITECTURE.md), so these tests need neither qmgr nor smtpd. Every test starts its own daemon, servers and
resolver on free ports and stops them at the end.
"""
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from pathlib import Path

from conftest import start_dnsmasq

import pytest

SOURCE_ROOT = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0
DNSMASQ = shutil.which('dnsmasq') or ('/usr/sbin/dnsmasq' if os.path.exists('/usr/sbin/dnsmasq') else None)

pytestmark = [
    pytest.mark.skipif(not DNSMASQ, reason='dnsmasq is not installed'),
    pytest.mark.skipif(not IS_ROOT, reason='the daemon is started as root with -u root (no mail_owner needed)'),
]


def have_v6():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(('::1', 0))
        s.close()
        return True
    except OSError:
        return False


HAVE_V6 = have_v6()


def build_dir():
    return Path(os.environ.get('POSTERN_BUILD') or SOURCE_ROOT / 'build').resolve()


def free_port(hosts):
    """A TCP port free on every one of hosts."""
    for _ in range(50):
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
        s.close()
        ok = True
        for h in hosts:
            t = socket.socket(socket.AF_INET6 if ':' in h else socket.AF_INET)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                t.bind((h, port))
            except OSError:
                ok = False
            t.close()
        if ok:
            return port
    raise RuntimeError('no free port')


# ---- IPC wire format and the delivery protocol (common/qproto.h) ----
LP_DELIVER, LP_RESULT = 0x4c000001, 0x4c000081
F_QUEUE_ID, F_DIR, F_SENDER, F_IDX, F_RCPT = 1, 2, 3, 4, 5
F_R_IDX, F_R_CODE, F_R_DSN, F_R_TEXT = 10, 11, 12, 13
T_U32, T_STR = 1, 3


def ipc_frame(mtype, fields, rid):
    payload = b''
    for tag, ftype, val in fields:
        data = struct.pack('<I', val) if ftype == T_U32 else val.encode()
        payload += struct.pack('<HBBI', tag, ftype, 0, len(data)) + data
    return struct.pack('<2sHHHIIQ', b'PI', 1, 0, 0, mtype, len(payload), rid) + payload


def recv_exact(sock, n):
    out = b''
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError('connection closed')
        out += chunk
    return out


def ipc_decode(sock):
    magic, ver, flags, _, mtype, plen, rid = struct.unpack('<2sHHHIIQ', recv_exact(sock, 24))
    assert magic == b'PI' and ver == 1
    payload = recv_exact(sock, plen)
    fields, off = [], 0
    while off < len(payload):
        tag, ftype, _, ln = struct.unpack('<HBBI', payload[off:off + 8])
        data = payload[off + 8:off + 8 + ln]
        off += 8 + ln
        fields.append((tag, struct.unpack('<I', data)[0] if ftype == T_U32 else data.decode()))
    return mtype, fields


def queue_file(sender, rcpts, content, body=None, envid=None, ret=None, smtputf8=False):
    """A queue file in the format of common/qfile.h; rcpts are (addr, notify, orcpt)."""
    def rec(t, data):
        if isinstance(data, str):
            data = data.encode()
        return t.encode() + struct.pack('>I', len(data)) + data
    out = b'PQF1' + rec('T', '%.6f' % time.time()) + rec('S', sender)
    for addr, notify, orcpt in rcpts:
        out += rec('R', addr.encode() + b'\0' + str(notify).encode() + b'\0' + (orcpt or '').encode())
    if envid:
        out += rec('E', envid)
    if ret:
        out += rec('r', ret)
    if body:
        out += rec('B', body)
    if smtputf8:
        out += rec('U', '')
    content = content.encode() if isinstance(content, str) else content
    return out + rec('X', str(len(content))) + content


# ---- scripted SMTP servers ----
class FakeSMTP:
    """One SMTP server on host:port. behaviour keys: greeting, name, ehlo (None: refuse EHLO), rcpt (function
    addr -> reply), mail, data, data_end, tls (cert, key). Records every session's commands and message."""

    def __init__(self, host, port, **behaviour):
        self.host, self.port, self.b = host, port, behaviour
        self.sessions, self.messages = [], []
        self.ended = 0          # sessions whose connection the server has closed
        self.sock = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(5)
        self.stop = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def close(self):
        self.stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)

    def loop(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                self.session(conn)
            except (OSError, EOFError, ssl.SSLError):
                pass
            finally:
                conn.close()
                self.ended += 1

    def wait_ended(self, n, timeout=5):
        """Wait until n sessions are over: the daemon reports results before the server has read its QUIT."""
        deadline = time.time() + timeout
        while self.ended < n and time.time() < deadline:
            time.sleep(0.02)
        assert self.ended >= n, (self.ended, self.sessions)

    def session(self, conn):
        b = self.b
        cmds = []
        self.sessions.append(cmds)
        f = conn.makefile('rwb')

        def say(text):
            f.write(text.encode() + b'\r\n')
            f.flush()
        say(b.get('greeting', '220 %s ESMTP fake' % b.get('name', 'fake.test')))
        if not b.get('greeting', '220').startswith('220'):
            return
        tls_done = False
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.decode('utf-8', 'replace').rstrip('\r\n')
            cmds.append(cmd)
            verb = cmd.split(' ', 1)[0].upper()
            if verb == 'EHLO':
                if b.get('ehlo', []) is None:
                    say('502 5.5.2 no EHLO here')
                    continue
                exts = list(b.get('ehlo', ['PIPELINING', '8BITMIME']))
                if b.get('tls') and not tls_done:
                    exts.append('STARTTLS')
                lines = [b.get('name', 'fake.test')] + exts
                for i, l in enumerate(lines):
                    say('250%s%s' % ('-' if i < len(lines) - 1 else ' ', l))
            elif verb == 'HELO':
                say('250 %s' % b.get('name', 'fake.test'))
            elif verb == 'STARTTLS' and b.get('tls'):
                say('220 2.0.0 go ahead')
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(*b['tls'])
                conn = ctx.wrap_socket(conn, server_side=True)
                f = conn.makefile('rwb')
                tls_done = True
                cmds.append('<TLS %s>' % conn.version())
            elif verb == 'MAIL':
                say(b.get('mail', '250 2.1.0 ok'))
            elif verb == 'RCPT':
                addr = re.search(r'<([^>]*)>', cmd).group(1)
                say(b.get('rcpt', lambda a: '250 2.1.5 ok')(addr))
            elif verb == 'DATA':
                d = b.get('data', '354 go')
                say(d)
                if not d.startswith('354'):
                    continue
                data = b''
                while True:
                    l = f.readline()
                    if not l or l == b'.\r\n':
                        break
                    data += l
                self.messages.append({'cmds': list(cmds), 'data': data})
                say(b.get('data_end', '250 2.0.0 queued as FAKE1'))
            elif verb == 'BDAT':
                size, last = int(cmd.split()[1]), cmd.upper().endswith(' LAST')
                chunks = getattr(self, 'chunks', b'') + f.read(size)
                self.chunks = chunks
                if not last:
                    say('250 2.0.0 %d octets received' % size)
                    continue
                self.chunks = b''
                self.messages.append({'cmds': list(cmds), 'data': chunks})
                say(b.get('data_end', '250 2.0.0 queued as FAKE1'))
            elif verb == 'AUTH':
                import base64
                parts = cmd.split(' ')
                if parts[1].upper() == 'PLAIN':
                    cred = base64.b64decode(parts[2]).split(b'\0')
                    self.auth = ('PLAIN', cred[1].decode(), cred[2].decode())
                else:
                    say('334 VXNlcm5hbWU6')
                    u = base64.b64decode(f.readline().strip()).decode()
                    say('334 UGFzc3dvcmQ6')
                    p = base64.b64decode(f.readline().strip()).decode()
                    self.auth = ('LOGIN', u, p)
                say(b.get('auth_reply', '235 2.7.0 ok'))
            elif verb == 'RSET':
                say(b.get('rset', '250 2.0.0 ok'))
                if b.get('close_after_rset'):
                    return
            elif verb == 'QUIT':
                say('221 bye')
                return
            else:
                say('502 5.5.2 what')


# ---- fixtures ----
@pytest.fixture
def env(tmp_path):
    hosts = ['127.0.0.%d' % i for i in range(2, 9)] + (['::1'] if HAVE_V6 else [])
    port = free_port(hosts)
    zone = [
        '--mx-host=a.test,mx1.a.test,10', '--mx-host=a.test,mx2.a.test,20',
        '--host-record=mx1.a.test,127.0.0.2', '--host-record=mx2.a.test,127.0.0.3',
        '--mx-host=null.test,.,0',
        '--host-record=nomx.test,127.0.0.4',
        '--mx-host=tls.test,mx.tls.test,10', '--host-record=mx.tls.test,127.0.0.5',
        '--mx-host=loop.test,postern.test,10',
        '--mx-host=b.test,mx.b.test,10', '--host-record=mx.b.test,127.0.0.6',
        '--mx-host=v6.test,mx.v6.test,10', '--host-record=mx.v6.test,::1',
        '--mx-host=dual.test,mx.dual.test,10', '--host-record=mx.dual.test,127.0.0.8,::1',
        '--mx-host=xn--bcher-kva.test,mx.b.test,10',
    ]
    dns, dns_port = start_dnsmasq(tmp_path, zone, 'mx1.a.test')
    e = Env(tmp_path, port, dns_port)
    try:
        yield e
    finally:
        e.stop()
        for s in e.servers:
            s.close()
        dns.terminate()
        dns.wait(5)


class Env:
    def __init__(self, tmp, port, dns_port):
        self.tmp, self.port, self.dns_port = tmp, port, dns_port
        self.servers, self.proc, self.sock_path = [], None, None
        self.n = 0
        for d in ('etc', 'queue/active', 'log'):
            (tmp / d).mkdir(parents=True, exist_ok=True)
        self.log = tmp / 'log' / 'smtp.log'
        (tmp / 'etc' / 'main.cf').write_text('\n'.join([
            'instance_directory = %s' % tmp,
            'queue_directory = %s/queue' % tmp,
            'log_destination = %s' % self.log,
            'myhostname = postern.test',
            'dns_nameservers = 127.0.0.1:%d' % dns_port,
            'dns_timeout = 3s',
            'smtp_port = %d' % port,
            'smtp_connect_timeout = 3s',
            'smtp_helo_timeout = 5s', 'smtp_mail_timeout = 5s', 'smtp_rcpt_timeout = 5s',
            'smtp_data_init_timeout = 5s', 'smtp_data_done_timeout = 5s', 'smtp_quit_timeout = 2s',
            'smtp_starttls_timeout = 5s',
        ]) + '\n')

    def server(self, host, **b):
        s = FakeSMTP(host, self.port, **b)
        self.servers.append(s)
        return s

    def start(self, *overrides):
        self.stop()
        self.sock_path = str(self.tmp / 'smtp.sock')
        if os.path.exists(self.sock_path):
            os.unlink(self.sock_path)
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(self.sock_path)
        lsock.listen(5)
        rpipe, wpipe = os.pipe()
        lfd = lsock.fileno()

        def child():
            os.dup2(wpipe, 3)
            os.dup2(lfd, 4)
        args = [str(build_dir() / 'bin' / 'smtp'), '-c', str(self.tmp), '-s', 'smtp', '-n', '1', '-u', 'root']
        for o in overrides:
            args += ['-o', o]
        self.proc = subprocess.Popen(args, preexec_fn=child, pass_fds=(3, 4))  # kept open: the dup2 targets
        os.close(wpipe)
        self.status = rpipe
        lsock.close()

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            os.close(self.status)
            self.proc = None

    def deliver(self, rcpts, sender='sender@origin.test', content='Subject: hi\n\nhello\n', **kw):
        """rcpts: addresses or (addr, notify, orcpt). Returns [(code, dsn, text)] in recipient order."""
        if self.proc is None:
            self.start()
        rcpts = [(r, 0, None) if isinstance(r, str) else r for r in rcpts]
        self.n += 1
        qid = 'TESTQUEUEID%04d' % self.n
        (self.tmp / 'queue' / 'active' / qid).write_bytes(queue_file(sender, rcpts, content, **kw))
        fields = [(F_QUEUE_ID, T_STR, qid), (F_DIR, T_STR, 'active'), (F_SENDER, T_STR, sender)]
        for i, (addr, _, _) in enumerate(rcpts):
            fields += [(F_IDX, T_U32, i), (F_RCPT, T_STR, addr)]
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(self.sock_path)
        s.sendall(ipc_frame(LP_DELIVER, fields, self.n))
        mtype, fl = ipc_decode(s)
        s.close()
        assert mtype == LP_RESULT, hex(mtype)
        res = {}
        cur = None
        for tag, v in fl:
            if tag == F_R_IDX:
                cur = res.setdefault(v, {})
            elif tag == F_R_CODE:
                cur['code'] = v
            elif tag == F_R_DSN:
                cur['dsn'] = v
            elif tag == F_R_TEXT:
                cur['text'] = v
        self.last_qid = qid
        return [(res[i]['code'], res[i]['dsn'], res[i]['text']) for i in range(len(rcpts))]

    def logtext(self):
        return self.log.read_text() if self.log.exists() else ''


def make_cert(tmp, name):
    cert, key = tmp / ('%s.crt' % name), tmp / ('%s.key' % name)
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
                    '-nodes', '-days', '2', '-subj', '/CN=%s' % name, '-addext', 'subjectAltName=DNS:%s' % name,
                    '-keyout', str(key), '-out', str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


# ---- tests ----
def test_mx_order_and_failover_when_first_mx_is_down(env):
    # mx1 (127.0.0.2) has nothing listening: refused, so the preference-20 MX takes it
    mx2 = env.server('127.0.0.3', name='mx2.a.test')
    r = env.deliver(['user@a.test'])
    assert r[0][0] == 2, r
    assert r[0][2].startswith('250 '), r
    assert len(mx2.messages) == 1
    assert b'hello' in mx2.messages[0]['data']
    log = env.logtext()
    assert re.search(r'connect to mx1\.a\.test\[127\.0\.0\.2\]:%d: Connection refused' % env.port, log), log
    assert re.search(r'TESTQUEUEID\d+: to=<user@a\.test>, relay=mx2\.a\.test\[127\.0\.0\.3\]:%d, delay=[0-9.]+, '
                     r'dsn=2\.0\.0, status=sent \(250 2\.0\.0 queued as FAKE1\)' % env.port, log), log


def test_first_mx_preferred_and_4xx_greeting_moves_on(env):
    mx1 = env.server('127.0.0.2', name='mx1.a.test')
    mx2 = env.server('127.0.0.3', name='mx2.a.test')
    env.start('smtp_connection_reuse_time=0')   # every delivery greets anew
    assert env.deliver(['user@a.test'])[0][0] == 2
    assert len(mx1.messages) == 1 and not mx2.messages
    mx1.b['greeting'] = '421 4.3.2 busy'
    assert env.deliver(['user@a.test'])[0][0] == 2
    assert len(mx1.messages) == 1 and len(mx2.messages) == 1


def test_all_mx_down_defers(env):
    r = env.deliver(['user@a.test'])
    assert r[0][0] == 4 and r[0][1] == '4.4.1', r
    assert 'status=deferred' in env.logtext()


def test_null_mx_bounces(env):
    r = env.deliver(['user@null.test'])
    assert r[0][:2] == (5, '5.1.10'), r
    assert 'nullMX' in r[0][2]


def test_no_mx_falls_back_to_address_and_unknown_domain_bounces(env):
    srv = env.server('127.0.0.4', name='nomx.test')
    assert env.deliver(['user@nomx.test'])[0][0] == 2
    assert len(srv.messages) == 1
    r = env.deliver(['user@nosuch.test'])
    assert r[0][0] == 5 and r[0][1] == '5.1.2', r


def test_mx_pointing_at_ourselves_is_a_loop(env):
    r = env.deliver(['user@loop.test'])
    assert r[0][:2] == (5, '5.4.6'), r
    # a server that greets with our own name is us too
    env.server('127.0.0.6', name='postern.test')
    r = env.deliver(['user@b.test'])
    assert r[0][:2] == (5, '5.4.6'), r
    assert 'loops back to myself' in r[0][2]


def test_4xx_then_success_on_retry(env):
    state = {'n': 0}

    def rcpt(addr):
        state['n'] += 1
        return '450 4.2.0 try later' if state['n'] == 1 else '250 2.1.5 ok'
    srv = env.server('127.0.0.6', name='mx.b.test', rcpt=rcpt)
    r = env.deliver(['user@b.test'])
    assert r[0][:2] == (4, '4.2.0'), r
    assert 'said: 450 4.2.0 try later (in reply to RCPT TO command)' in r[0][2]
    assert not srv.messages
    r = env.deliver(['user@b.test'])
    assert r[0][0] == 2, r
    assert len(srv.messages) == 1


def test_5xx_bounces_and_results_are_per_recipient(env):
    srv = env.server('127.0.0.6', name='mx.b.test',
                     rcpt=lambda a: '550 5.1.1 no such user' if a.startswith('bad') else '250 2.1.5 ok')
    r = env.deliver(['good@b.test', 'bad@b.test', 'good2@b.test'])
    assert r[0][0] == 2 and r[2][0] == 2, r
    assert r[1][:2] == (5, '5.1.1'), r
    assert 'host mx.b.test[127.0.0.6] said: 550 5.1.1 no such user (in reply to RCPT TO command)' == r[1][2]
    assert len(srv.messages) == 1
    cmds = srv.messages[0]['cmds']
    assert [c for c in cmds if c.startswith('RCPT')] == ['RCPT TO:<good@b.test>', 'RCPT TO:<bad@b.test>',
                                                         'RCPT TO:<good2@b.test>']
    log = env.logtext()
    assert 'to=<bad@b.test>' in log and 'status=bounced' in log


def test_data_failure_applies_to_all_accepted(env):
    env.server('127.0.0.6', name='mx.b.test', data_end='554 5.6.0 content rejected',
               rcpt=lambda a: '550 5.1.1 no' if a.startswith('bad') else '250 ok')
    r = env.deliver(['a@b.test', 'bad@b.test', 'c@b.test'])
    assert r[0][:2] == (5, '5.6.0') and r[2][:2] == (5, '5.6.0'), r
    assert 'in reply to end of DATA command' in r[0][2]
    assert r[1][:2] == (5, '5.1.1'), r


def test_mail_from_4xx_defers_everyone(env):
    srv = env.server('127.0.0.6', name='mx.b.test', mail='451 4.3.0 local problem')
    r = env.deliver(['a@b.test', 'c@b.test'])
    assert all(x[:2] == (4, '4.3.0') for x in r), r
    # the pipelined RCPT replies were never read: that connection is not kept for the next message
    srv.wait_ended(1)
    assert srv.sessions[0][-1] == 'QUIT' and 'RSET' not in srv.sessions[0]


def test_dot_stuffing_and_crlf(env):
    srv = env.server('127.0.0.6', name='mx.b.test')
    env.deliver(['a@b.test'], content='Subject: x\n\n.leading dot\n..two\nlast line without newline')
    data = srv.messages[0]['data']
    assert data == b'Subject: x\r\n\r\n..leading dot\r\n...two\r\nlast line without newline\r\n', data


def test_size_limit_bounces_without_sending(env):
    srv = env.server('127.0.0.6', name='mx.b.test', ehlo=['PIPELINING', 'SIZE 100'])
    r = env.deliver(['a@b.test'], content='Subject: big\n\n' + 'x' * 200 + '\n')
    assert r[0][:2] == (5, '5.3.4'), r
    assert not any(c.startswith('MAIL') for c in srv.sessions[0])
    r = env.deliver(['a@b.test'], content='Subject: small\n\nok\n')
    assert r[0][0] == 2
    assert re.match(r'MAIL FROM:<sender@origin\.test> SIZE=\d+$', srv.messages[0]['cmds'][1])


def test_size_declares_the_wire_size(env):
    srv = env.server('127.0.0.6', name='mx.b.test', ehlo=['PIPELINING', 'SIZE 1000000'])
    content = 'Subject: lines\n\n' + 'line\n' * 50 + 'bare\rcr and no final newline'
    assert env.deliver(['a@b.test'], content=content)[0][0] == 2
    msg = srv.messages[0]
    declared = int(re.search(r' SIZE=(\d+)', msg['cmds'][1]).group(1))
    # what DATA carried, with the dot-stuffing undone: CR LF line ends, one added at the end
    assert declared == len(msg['data']) == len(content) + 52 + 1 + 2, (declared, len(msg['data']))
    # a limit between the stored (LF) size and the wire size: refused without sending
    srv.b['ehlo'] = ['PIPELINING', 'SIZE %d' % (len(content) + 10)]
    env.start('smtp_connection_reuse_time=0')
    r = env.deliver(['a@b.test'], content=content)
    assert r[0][:2] == (5, '5.3.4'), r
    assert len(srv.messages) == 1


def test_chunking_sends_bdat(env):
    srv = env.server('127.0.0.6', name='mx.b.test', ehlo=['PIPELINING', 'CHUNKING', 'SIZE 10000000', '8BITMIME'])
    body = ''.join('.line %d with a leading dot\n' % i for i in range(4000))   # > 64 KiB: several chunks
    content = 'Subject: big\n\n' + body + 'x\r\nend'
    r = env.deliver(['a@b.test', 'c@b.test'], content=content)
    assert [x[0] for x in r] == [2, 2], r
    cmds = srv.messages[0]['cmds']
    bdats = [c for c in cmds if c.startswith('BDAT')]
    assert len(bdats) >= 2 and bdats[-1].endswith(' LAST') and not any(c.endswith('LAST') for c in bdats[:-1])
    assert 'DATA' not in cmds
    data = srv.messages[0]['data']
    # no dot-stuffing, every line end CR LF, the octet counts add up to SIZE=
    assert data == content.replace('\r\n', '\n').replace('\n', '\r\n').encode() + b'\r\n'
    assert sum(int(c.split()[1]) for c in bdats) == len(data)
    assert int(re.search(r' SIZE=(\d+)', cmds[1]).group(1)) == len(data)
    # a refused chunk fails the message for every recipient, quoting the BDAT reply
    srv.b['data_end'] = '554 5.6.0 content refused'
    r = env.deliver(['a@b.test'], content='Subject: small\n\nx\n')
    assert r[0][:2] == (5, '5.6.0'), r
    assert '(in reply to BDAT command)' in r[0][2]


def test_helo_fallback_without_pipelining(env):
    srv = env.server('127.0.0.6', name='mx.b.test', ehlo=None)
    r = env.deliver(['a@b.test', 'c@b.test'])
    assert [x[0] for x in r] == [2, 2], r
    cmds = srv.messages[0]['cmds']
    assert cmds[0].startswith('EHLO ') and cmds[1].startswith('HELO ')
    assert cmds[2] == 'MAIL FROM:<sender@origin.test>'   # no parameters without ESMTP


def test_dsn_parameters_passed_on(env):
    srv = env.server('127.0.0.6', name='mx.b.test', ehlo=['PIPELINING', 'DSN', '8BITMIME'])
    r = env.deliver([('a@b.test', 2 | 4, 'rfc822;orig+1@x.test'), ('c@b.test', 1, None)],
                    envid='ENV=1', ret='HDRS', body='8BITMIME', content='Subject: x\n\ncaf\xe9\n')
    assert [x[0] for x in r] == [2, 2], r
    cmds = srv.messages[0]['cmds']
    assert cmds[1] == 'MAIL FROM:<sender@origin.test> BODY=8BITMIME RET=HDRS ENVID=ENV+3D1', cmds
    assert cmds[2] == 'RCPT TO:<a@b.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig+2B1@x.test', cmds
    assert cmds[3] == 'RCPT TO:<c@b.test> NOTIFY=NEVER', cmds


def test_smtputf8_required_but_missing(env):
    env.server('127.0.0.6', name='mx.b.test', ehlo=['PIPELINING', '8BITMIME'])
    r = env.deliver(['j\u00f6rg@b.test'], smtputf8=True, body='8BITMIME')
    assert r[0][:2] == (5, '5.6.7'), r
    # SMTPUTF8 requested but only ASCII addresses: sent without it
    r = env.deliver(['jorg@b.test'], smtputf8=True)
    assert r[0][0] == 2, r


def test_idn_domain_as_a_labels_without_smtputf8(env):
    srv = env.server('127.0.0.6', name='mx.b.test', ehlo=['PIPELINING', '8BITMIME'])
    # the MX of b\u00fccher.test is found under its A-labels; without SMTPUTF8 the domain goes as A-labels too,
    # while a non-ASCII local part cannot go at all
    r = env.deliver(['a@b\u00fccher.test', 'j\u00f6rg@b\u00fccher.test'], smtputf8=True, body='8BITMIME')
    assert r[0][0] == 2, r
    assert r[1][:2] == (5, '5.6.7'), r
    cmds = srv.messages[0]['cmds']
    assert [c for c in cmds if c.startswith('RCPT')] == ['RCPT TO:<a@xn--bcher-kva.test>']
    assert 'SMTPUTF8' not in cmds[1]
    # a server with SMTPUTF8 gets the addresses as written
    srv.b['ehlo'] = ['PIPELINING', '8BITMIME', 'SMTPUTF8']
    env.start('smtp_connection_reuse_time=0')
    r = env.deliver(['j\u00f6rg@b\u00fccher.test'], smtputf8=True, body='8BITMIME')
    assert r[0][0] == 2, r
    cmds = srv.messages[1]['cmds']
    assert cmds[1].endswith(' SMTPUTF8'), cmds
    assert 'RCPT TO:<j\u00f6rg@b\u00fccher.test>' in cmds


def test_8bit_message_to_server_without_8bitmime(env):
    srv = env.server('127.0.0.6', name='mx.b.test', ehlo=['PIPELINING'])
    r = env.deliver(['a@b.test'], body='8BITMIME',
                    content='Subject: x\nContent-Type: text/plain; charset=utf-8\n\ncaf\u00e9\n'.encode())
    assert r[0][0] == 2, r
    # converted: what arrived is 7-bit and says how it was encoded
    data = srv.messages[0]['data']
    assert all(b < 0x80 for b in data), data
    assert b'Content-Transfer-Encoding: quoted-printable' in data
    assert b'caf=C3=A9' in data
    assert 'BODY=8BITMIME' not in srv.messages[0]['cmds'][1]
    # 8-bit in a header field cannot be encoded by the conversion: bounced, never sent as 8-bit
    r = env.deliver(['a@b.test'], body='8BITMIME', content='Subject: caf\u00e9\n\nbody\n'.encode())
    assert r[0][:2] == (5, '5.6.3'), r
    assert len(srv.messages) == 1


def test_relayhost_skips_mx(env):
    relay = env.server('127.0.0.7', name='relay.test')
    env.start('relayhost=[127.0.0.7]:%d' % env.port)
    r = env.deliver(['x@a.test', 'y@null.test'])
    assert [x[0] for x in r] == [2, 2], r
    assert len(relay.messages) == 2   # one transaction per domain


def test_starttls_may_uses_tls_when_offered(env):
    cert = make_cert(env.tmp, 'mx.tls.test')
    srv = env.server('127.0.0.5', name='mx.tls.test', tls=cert)
    r = env.deliver(['a@tls.test'])
    assert r[0][0] == 2, r
    assert any(c.startswith('<TLS TLSv1.') for c in srv.messages[0]['cmds'])
    # EHLO again after the handshake
    cmds = srv.messages[0]['cmds']
    i = [n for n, c in enumerate(cmds) if c.startswith('<TLS')][0]
    assert cmds[i + 1].startswith('EHLO ')
    assert re.search(r'Untrusted TLS connection established to mx\.tls\.test\[127\.0\.0\.5\]:\d+: TLSv1\.[23] '
                     r'with cipher \S+', env.logtext())


def test_starttls_verify(env):
    cert = make_cert(env.tmp, 'mx.tls.test')
    srv = env.server('127.0.0.5', name='mx.tls.test', tls=cert)
    # verify without the peer's CA: not delivered, deferred
    env.start('smtp_tls_security_level=verify')
    r = env.deliver(['a@tls.test'])
    assert r[0][:2] == (4, '4.7.5'), r
    assert not srv.messages
    # with the self-signed certificate as trusted root: verified against the MX name
    env.start('smtp_tls_security_level=verify', 'smtp_tls_CAfile=%s' % cert[0])
    r = env.deliver(['a@tls.test'])
    assert r[0][0] == 2, r
    assert 'Verified TLS connection established to mx.tls.test' in env.logtext()
    # a certificate for another name fails verification even when trusted
    other = make_cert(env.tmp, 'other.test')
    srv.b['tls'] = other
    env.start('smtp_tls_security_level=verify', 'smtp_tls_CAfile=%s' % other[0])
    r = env.deliver(['a@tls.test'])
    assert r[0][:2] == (4, '4.7.5'), r


def test_encrypt_requires_starttls(env):
    env.server('127.0.0.6', name='mx.b.test')
    env.start('smtp_tls_security_level=encrypt')
    r = env.deliver(['a@b.test'])
    assert r[0][:2] == (4, '4.7.4'), r
    assert 'TLS is required, but was not offered' in r[0][2]


def compile_map(env, name, text):
    path = env.tmp / 'etc' / name
    path.write_text(text)
    subprocess.run([str(build_dir() / 'bin' / 'postern'), 'map', 'compile', str(path)], check=True,
                   capture_output=True)
    return path


def test_transport_map_overrides_relayhost_and_mx(env):
    relay = env.server('127.0.0.7', name='relay.test')
    other = env.server('127.0.0.8', name='other.test')
    tmap = compile_map(env, 'transport', 'a.test smtp:[127.0.0.8]:%d\n.sub.test smtp:[127.0.0.8]:%d\n'
                       % (env.port, env.port))
    env.start('relayhost=[127.0.0.7]:%d' % env.port, 'transport_maps=%s' % tmap)
    r = env.deliver(['x@a.test', 'y@deep.sub.test', 'z@b.test'])
    assert [x[0] for x in r] == [2, 2, 2], r
    assert len(other.messages) == 2     # a.test exactly, deep.sub.test through ".sub.test"
    assert len(relay.messages) == 1     # b.test is not in the map: relayhost
    # a table that cannot be read defers, never falls through to another route
    env.start('transport_maps=%s' % (env.tmp / 'etc' / 'missing'))
    r = env.deliver(['x@a.test'])
    assert r[0][:2] == (4, '4.3.0'), r


def test_tls_policy_map(env):
    cert = make_cert(env.tmp, 'mx.tls.test')
    env.server('127.0.0.5', name='mx.tls.test', tls=cert)
    plain = env.server('127.0.0.6', name='mx.b.test')
    pmap = compile_map(env, 'tls_policy', 'tls.test verify\nb.test encrypt\n')
    env.start('smtp_tls_policy_maps=%s' % pmap, 'smtp_tls_CAfile=%s' % cert[0])
    r = env.deliver(['x@tls.test', 'y@b.test'])
    assert r[0][0] == 2, r
    assert r[1][:2] == (4, '4.7.4'), r
    assert not plain.messages
    assert 'Verified TLS connection established to mx.tls.test' in env.logtext()


def test_stalled_server_times_out_and_defers(env):
    # a server that accepts and then never greets
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.6', env.port))
    s.listen(5)
    try:
        env.start('smtp_helo_timeout=1s')
        t0 = time.time()
        r = env.deliver(['x@b.test'])
        assert time.time() - t0 < 10
        assert r[0][:2] == (4, '4.4.2'), r
        assert 'timed out while receiving the initial server greeting' in r[0][2]
    finally:
        s.close()


def test_bad_requests_are_answered(env):
    env.start()
    # a queue file that is not there: every recipient deferred with the reason
    fields = [(F_QUEUE_ID, T_STR, 'NOSUCHFILE0001'), (F_DIR, T_STR, 'active'), (F_SENDER, T_STR, ''),
              (F_IDX, T_U32, 3), (F_RCPT, T_STR, 'a@b.test')]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(env.sock_path)
    s.sendall(ipc_frame(LP_DELIVER, fields, 7))
    mtype, fl = ipc_decode(s)
    assert mtype == LP_RESULT
    d = dict(fl)
    assert d[F_R_IDX] == 3 and d[F_R_CODE] == 4 and 'open queue file' in d[F_R_TEXT]
    # a path escape attempt in the directory name
    fields[1] = (F_DIR, T_STR, '../etc')
    s.sendall(ipc_frame(LP_DELIVER, fields, 8))
    mtype, fl = ipc_decode(s)
    assert dict(fl)[F_R_TEXT] == 'bad queue file name in request'
    s.close()
    # a recipient without a domain bounces
    r = env.deliver(['nodomain'])
    assert r[0][:2] == (5, '5.1.3'), r


def test_may_falls_back_to_plaintext_when_the_handshake_fails(env):
    bad = env.tmp / 'bad.crt'
    bad.write_text('not a certificate\n')
    # STARTTLS is offered but the server cannot do TLS (its certificate will not load): "may" delivers in clear
    srv = env.server('127.0.0.6', name='mx.b.test', tls=(str(bad), str(bad)))
    r = env.deliver(['x@b.test'])
    assert r[0][0] == 2, r
    assert not any(c.startswith('<TLS') for c in srv.messages[0]['cmds'])
    assert len(srv.sessions) == 2


def test_addresses_cannot_inject_commands(env):
    srv = env.server('127.0.0.6', name='mx.b.test')
    r = env.deliver(['a@b.test\r\nRSET', 'ok@b.test', 'x>@b.test'])
    assert r[0][:2] == (5, '5.1.3') and r[2][:2] == (5, '5.1.3'), r
    assert r[1][0] == 2, r
    assert [c for c in srv.messages[0]['cmds'] if c.startswith('RCPT')] == ['RCPT TO:<ok@b.test>']
    assert not any('a@b.test' in c for s in srv.sessions for c in s)
    r = env.deliver(['ok@b.test'], sender='evil@x.test>\r\nRCPT TO:<victim@b.test')
    assert r[0][:2] == (5, '5.1.7'), r
    assert len(srv.sessions) == 1


@pytest.mark.skipif(not HAVE_V6, reason='no IPv6 loopback')
def test_ipv6_mx_and_fallback_between_families(env):
    srv = env.server('::1', name='mx.v6.test')
    r = env.deliver(['a@v6.test'])
    assert r[0][0] == 2, r
    assert len(srv.messages) == 1
    assert re.search(r'relay=mx\.v6\.test\[::1\]:\d+, .*status=sent', env.logtext())
    # IPv4 first (smtp_address_preference): its address refuses, the same host's IPv6 address takes it
    env.start('smtp_address_preference=ipv4')
    r = env.deliver(['b@dual.test'])
    assert r[0][0] == 2, r
    assert len(srv.messages) == 2
    assert 'connect to mx.dual.test[127.0.0.8]' in env.logtext()
    # IPv6 first: delivered without trying IPv4 at all
    env.start('smtp_address_preference=ipv6')
    r = env.deliver(['c@dual.test'])
    assert r[0][0] == 2, r
    assert env.logtext().count('connect to mx.dual.test[127.0.0.8]') == 1


def test_connection_lost_after_rcpt_defers(env):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.6', env.port))
    s.listen(5)

    def serve():
        c, _ = s.accept()
        f = c.makefile('rwb')
        f.write(b'220-mx.b.test multi-line\r\n220 greeting\r\n')
        f.flush()
        f.readline()
        f.write(b'250-mx.b.test\r\n250 PIPELINING\r\n')
        f.flush()
        f.readline()
        f.readline()
        f.write(b'250 ok\r\n250 ok\r\n')
        f.flush()
        f.readline()   # DATA
        c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        r = env.deliver(['a@b.test'])
        assert r[0][:2] == (4, '4.4.2'), r
        assert 'lost connection with mx.b.test[127.0.0.6] while receiving the DATA reply' in r[0][2]
    finally:
        t.join(5)
        s.close()


def test_connection_reuse(env):
    srv = env.server('127.0.0.6', name='mx.b.test')
    assert env.deliver(['a@b.test'])[0][0] == 2
    assert env.deliver(['c@b.test'])[0][0] == 2
    # one connection, two transactions separated by RSET
    assert len(srv.sessions) == 1 and len(srv.messages) == 2
    assert 'RSET' in srv.sessions[0]
    # a server that refuses RSET is not reused
    srv.b['rset'] = '502 no'
    assert env.deliver(['d@b.test'])[0][0] == 2
    assert env.deliver(['e@b.test'])[0][0] == 2
    assert len(srv.sessions) == 2 and len(srv.messages) == 4


def test_reused_connection_closed_by_server_is_replaced(env):
    srv = env.server('127.0.0.6', name='mx.b.test', close_after_rset=True)
    assert env.deliver(['a@b.test'])[0][0] == 2
    time.sleep(0.2)
    r = env.deliver(['c@b.test'])
    assert r[0][0] == 2, r
    assert len(srv.sessions) == 2 and len(srv.messages) == 2


def test_reuse_time_limits_idle_connection(env):
    srv = env.server('127.0.0.6', name='mx.b.test')
    env.start('smtp_connection_reuse_time=1s')
    assert env.deliver(['a@b.test'])[0][0] == 2
    time.sleep(1.5)
    # too old: closed with QUIT before the next delivery opens a new one
    assert env.deliver(['c@b.test'])[0][0] == 2
    assert len(srv.sessions) == 2
    srv.wait_ended(1)
    assert srv.sessions[0][-1] == 'QUIT'
    # the daemon says QUIT to a kept connection when it exits
    env.stop()
    srv.wait_ended(2)
    assert srv.sessions[1][-1] == 'QUIT'
    env.start('smtp_connection_reuse_time=0')
    assert env.deliver(['d@b.test'])[0][0] == 2
    assert env.deliver(['e@b.test'])[0][0] == 2
    assert len(srv.sessions) == 4
    assert all('RSET' not in s for s in srv.sessions[2:])


def test_client_auth_from_password_map(env):
    cert = make_cert(env.tmp, 'relay.test')
    relay = env.server('127.0.0.7', name='relay.test', tls=cert, ehlo=['PIPELINING', 'AUTH PLAIN LOGIN'])
    relay.auth = None
    pw = compile_map(env, 'sasl_passwd', '[127.0.0.7]:%d user@x.test:s3cret:with:colons\n' % env.port)
    os.chmod(pw, 0o600)
    os.chmod(str(pw) + '.lmdb', 0o600)
    env.start('relayhost=[127.0.0.7]:%d' % env.port, 'smtp_sasl_password_maps=%s' % pw)
    r = env.deliver(['a@b.test'])
    assert r[0][0] == 2, r
    assert relay.auth == ('PLAIN', 'user@x.test', 's3cret:with:colons')
    assert 's3cret' not in env.logtext()
    # LOGIN when PLAIN is not offered; a refused AUTH defers with the server's words
    relay.b['ehlo'] = ['AUTH LOGIN']
    relay.b['auth_reply'] = '535 5.7.8 bad credentials'
    env.start('relayhost=[127.0.0.7]:%d' % env.port, 'smtp_sasl_password_maps=%s' % pw)
    r = env.deliver(['a@b.test'])
    assert relay.auth == ('LOGIN', 'user@x.test', 's3cret:with:colons')
    assert r[0][:2] == (4, '4.7.0'), r
    assert '535 5.7.8 bad credentials' in r[0][2] and 'SASL authentication failed' in r[0][2]
    # no credentials over a connection without TLS
    relay.b['tls'] = None
    relay.b['auth_reply'] = '235 ok'
    relay.auth = None
    env.start('relayhost=[127.0.0.7]:%d' % env.port, 'smtp_sasl_password_maps=%s' % pw)
    r = env.deliver(['a@b.test'])
    assert r[0][:2] == (4, '4.7.0'), r
    assert relay.auth is None
