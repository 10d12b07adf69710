"""The smtp client against real peers: Postfix's smtp-sink and a second Postern instance, found through MX and A
records that dnsmasq on loopback serves for .test domains (all 127.0.0.x, one SMTP port shared by every peer).
Mail enters the sending instance through `postern queue inject` or SMTP and leaves through qmgr and smtp as in
production; what a peer received is read back from smtp-sink's dump files or the receiving instance's Maildir,
and bounces from the sender's Maildir. Scripted servers (test_smtp_client.py) cover what real peers cannot do:
exact failure injection at every step."""
import email
import email.policy
import os
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import build_dir, start_dnsmasq
from test_queue import _demo, _maildir_files, _wait

SINK = '/usr/sbin/smtp-sink'
IS_ROOT = os.geteuid() == 0
TIMEOUT = 30
HOSTS = ['127.0.0.%d' % i for i in range(2, 10)]

pytestmark = pytest.mark.skipif(not os.path.exists(SINK), reason='smtp-sink (postfix) is not installed')

ZONE = [
    '--mx-host=a.test,mx1.a.test,10', '--mx-host=a.test,mx2.a.test,20',
    '--host-record=mx1.a.test,127.0.0.2', '--host-record=mx2.a.test,127.0.0.3',
    '--mx-host=null.test,.,0',
    '--mx-host=loop.test,mail.example.test,10',
    '--mx-host=b.test,mx.b.test,10', '--host-record=mx.b.test,127.0.0.4',
    '--mx-host=tls.test,mx.tls.test,10', '--host-record=mx.tls.test,127.0.0.5',
    '--mx-host=xn--bcher-kva.test,mx.xn--bcher-kva.test,10', '--host-record=mx.xn--bcher-kva.test,127.0.0.6',
    '--host-record=relay.test,127.0.0.7',
    '--host-record=routed.test,127.0.0.9',
]


def port_free_everywhere(hosts):
    """A TCP port nothing listens on at any of hosts."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        ok = True
        for h in hosts:
            with socket.socket() as t:
                t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    t.bind((h, port))
                except OSError:
                    ok = False
        if ok:
            return port
    raise RuntimeError('no port free on every test address')


def accepts(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Sink:
    """smtp-sink on host:port writing one dump file per transaction; extra options change its behaviour
    (-r RCPT: 450 to every RCPT, -f RCPT: 500, -8: no 8BITMIME, ...)."""

    def __init__(self, host, port, name, dumpdir):
        self.host, self.port, self.name = host, port, name
        self.dir = Path(dumpdir) / host
        self.dir.mkdir(mode=0o777)
        os.chmod(self.dir, 0o777)     # smtp-sink writes as nobody
        self.proc = None

    def start(self, *opts):
        self.stop()
        user = ['-u', 'nobody'] if IS_ROOT else []
        self.proc = subprocess.Popen([SINK, *user, '-h', self.name, '-d', f'{self.dir}/%H%M%S.', *opts,
                                      f'{self.host}:{self.port}', '20'],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not accepts(self.host, self.port):
            assert self.proc.poll() is None, f'smtp-sink on {self.host} exited with {self.proc.returncode}'
            assert time.monotonic() < deadline, f'smtp-sink on {self.host} did not come up'
            time.sleep(0.05)
        return self

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None

    def messages(self):
        """[(envelope dict, message bytes)] in arrival order: X-Mail-Args, X-Rcpt-Args (a list)..."""
        out = []
        for f in sorted(self.dir.iterdir(), key=lambda p: p.stat().st_mtime_ns):
            raw = f.read_bytes()
            # smtp-sink's own header lines end with its three-line Received: header; then the message and an
            # empty line
            lines = raw.split(b'\n')
            env, i = {'X-Rcpt-Args': []}, 0
            while not lines[i].startswith(b'Received:'):
                k, _, v = lines[i].decode().partition(': ')
                if k == 'X-Rcpt-Args':
                    env[k].append(v)
                else:
                    env[k] = v
                i += 1
            i += 3
            body = b'\n'.join(lines[i:])
            assert body.endswith(b'\n\n'), body[-20:]
            out.append((env, body[:-1]))
        return out

    def wait(self, n, inst=None):
        return _wait(lambda: len(self.messages()) >= n and self.messages(), timeout=TIMEOUT,
                     what=f'{n} message(s) at smtp-sink {self.name}', inst=inst)


class Net:
    def __init__(self, make_instance, tmp):
        self.make_instance, self.tmp = make_instance, tmp
        self.port = port_free_everywhere(HOSTS)
        self.dumpdir = tempfile.mkdtemp(prefix='postern-sink-')
        os.chmod(self.dumpdir, 0o755)
        self.sinks, self.dns = [], None
        self.dns, self.dns_port = start_dnsmasq(tmp, ZONE, 'mx1.a.test')

    def sink(self, host, name, *opts):
        s = Sink(host, self.port, name, self.dumpdir)
        self.sinks.append(s)
        return s.start(*opts)

    def sender(self, *settings, **kw):
        """The sending instance: its DNS is our dnsmasq, every MX is on our port, retries come fast."""
        inst = self.make_instance(**kw)
        for prog in ('qmgr', 'smtp', 'local'):
            if not (build_dir() / 'bin' / prog).exists():
                pytest.skip(f'not built yet: {prog}')
        inst.cli('config', 'set', f'dns_nameservers=127.0.0.1:{self.dns_port}', 'dns_timeout=3s',
                 f'smtp_port={self.port}', 'queue_scan_interval=1s', 'queue_time_scale=600',
                 'smtp_connect_timeout=2s', 'smtp_helo_timeout=10s', 'smtpd_peername_lookup=no',
                 *settings, check=True)
        inst.start()
        return inst

    def close(self):
        for s in self.sinks:
            s.stop()
        if self.dns:
            self.dns.terminate()
            self.dns.wait(5)
        shutil.rmtree(self.dumpdir, ignore_errors=True)


@pytest.fixture
def net(make_instance, tmp_path):
    n = Net(make_instance, tmp_path)
    try:
        yield n
    finally:
        n.close()


def inject(inst, sender, rcpts, subject, body='hello\n', extra=''):
    msg = f'From: <{sender}>\nTo: <{rcpts[0]}>\nSubject: {subject}\nMessage-ID: <{subject.replace(" ", ".")}' \
          f'@example.test>\n{extra}\n{body}'
    r = inst.cli('queue', 'inject', '-f', sender, *rcpts, input=msg, check=True)
    return r.stdout.strip()


def submit(inst, sender, rcpts, data, options=()):
    """Hand a message to inst's smtpd (from 127.0.0.1, which may relay); returns its queue ID."""
    with smtplib.SMTP('127.0.0.1', inst.port('smtp'), timeout=30) as s:
        s.ehlo('client.test')
        code, resp = s.mail(sender, list(options))
        assert code == 250, resp
        for r in rcpts:
            code, resp = s.rcpt(r)
            assert code == 250, resp
        code, resp = s.data(data.replace(b'\n', b'\r\n'))
        assert code == 250, resp
        return re.search(rb'queued as (\S+)', resp).group(1).decode()


def status(inst, qid, rcpt, st, dsn=r'[0-9.]+'):
    # the log shows bytes outside ASCII as \xNN
    rcpt = ''.join(c if ord(c) < 128 else ''.join('\\x%02x' % b for b in c.encode()) for c in rcpt)
    return inst.wait_log(rf'{qid}: to=<{re.escape(rcpt)}>, relay=.*, dsn={dsn}, status={st}.*', timeout=TIMEOUT)


def bounce_report(maildir, inst, needle):
    """The delivery status part of the bounce in maildir that mentions needle."""
    def find():
        for f in _maildir_files(maildir):
            raw = f.read_bytes()
            if b'multipart/report' in raw and needle.encode() in raw:
                return raw
        return None
    raw = _wait(find, timeout=TIMEOUT, what=f'a bounce mentioning {needle}', inst=inst)
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert msg.get_content_type() == 'multipart/report'
    return msg.get_payload()[1].as_string()


# ---------------------------------------------------------------- MX order, null MX, loops

def test_mx_preference_order_and_failover(net):
    inst = net.sender('smtp_connection_reuse_time=0')   # a kept connection to mx2 would be preferred
    mx1, mx2 = net.sink('127.0.0.2', 'mx1.a.test'), net.sink('127.0.0.3', 'mx2.a.test')
    qid = inject(inst, 'sender@example.test', ['user@a.test'], 'first')
    status(inst, qid, 'user@a.test', 'sent')
    env, msg = mx1.wait(1, inst)[0]
    assert env['X-Rcpt-Args'] == ['<user@a.test>'] and b'Subject: first' in msg
    assert not mx2.messages()
    # the preferred MX goes down: the next one takes the mail, the refused connection is logged
    mx1.stop()
    qid = inject(inst, 'sender@example.test', ['user@a.test'], 'second')
    m = status(inst, qid, 'user@a.test', 'sent')
    assert f'relay=mx2.a.test[127.0.0.3]:{net.port}' in m.group(0)
    assert b'Subject: second' in mx2.wait(1, inst)[0][1]
    inst.wait_log(rf'{qid}: connect to mx1\.a\.test\[127\.0\.0\.2\]:{net.port}: Connection refused')
    # back, but greeting with 421: the next MX again
    mx1.start('-Q', 'CONNECT')
    qid = inject(inst, 'sender@example.test', ['user@a.test'], 'third')
    m = status(inst, qid, 'user@a.test', 'sent')
    assert f'relay=mx2.a.test[127.0.0.3]:{net.port}' in m.group(0)
    inst.wait_log(rf'{qid}: host mx1\.a\.test\[127\.0\.0\.2\] said: 421 4\.0\.0 .*\(in reply to initial greeting '
                  r'command\)')
    assert len(mx2.wait(2, inst)) == 2 and len(mx1.messages()) == 1


def test_null_mx_and_mx_pointing_at_us_bounce(net):
    inst = net.sender()
    user, maildir = _demo(inst)
    qid = inject(inst, user, ['x@null.test', 'y@loop.test'], 'nowhere')
    status(inst, qid, 'x@null.test', 'bounced', r'5\.1\.10')
    status(inst, qid, 'y@loop.test', 'bounced', r'5\.4\.6')
    report = bounce_report(maildir, inst, 'null.test')
    assert 'Status: 5.1.10' in report and 'Status: 5.4.6' in report
    assert 'loops back to myself' in report


# ---------------------------------------------------------------- temporary and permanent refusals

def test_4xx_deferred_then_delivered_on_retry(net):
    inst = net.sender()
    sink = net.sink('127.0.0.4', 'mx.b.test', '-r', 'RCPT')     # 450 4.3.0 to every RCPT
    qid = inject(inst, 'sender@example.test', ['user@b.test'], 'later')
    m = status(inst, qid, 'user@b.test', 'deferred', r'4\.3\.0')
    assert 'said: 450 4.3.0' in m.group(0) and '(in reply to RCPT TO command)' in m.group(0)
    assert not sink.messages()
    sink.start()                                                 # now it accepts
    inst.cli('queue', 'flush', check=True)
    status(inst, qid, 'user@b.test', 'sent')
    assert b'Subject: later' in sink.wait(1, inst)[0][1]
    inst.wait_log(rf'{qid}: removed')


def test_5xx_becomes_a_bounce_in_the_senders_maildir(net):
    inst = net.sender()
    net.sink('127.0.0.4', 'mx.b.test', '-f', 'RCPT')             # 500 5.3.0 to every RCPT
    user, maildir = _demo(inst)
    qid = inject(inst, user, ['nobody@b.test'], 'refused', body='the original text\n')
    status(inst, qid, 'nobody@b.test', 'bounced', r'5\.3\.0')
    report = bounce_report(maildir, inst, 'nobody@b.test')
    assert 'Final-Recipient: rfc822; nobody@b.test' in report
    assert 'Status: 5.3.0' in report
    # RFC 3464 2.3.5/2.3.6, as Postfix writes them: the server by name, its reply itself as type smtp
    assert re.search(r'\nRemote-MTA: dns; mx\.b\.test\nDiagnostic-Code: smtp; 500 5\.3\.0 [^\n(]*\n', report), report


# ---------------------------------------------------------------- content: SIZE, 8BITMIME, SMTPUTF8

def test_8bit_message_downgraded_for_a_peer_without_8bitmime(net):
    inst = net.sender()
    sink = net.sink('127.0.0.4', 'mx.b.test', '-8')              # no 8BITMIME
    text = 'Gr\u00fc\u00dfe aus K\u00f6ln \u2013 caf\u00e9\n' * 3 + 'a line with = and trailing space \n'
    latin = 'na\u00efve r\u00e9sum\u00e9\n'
    raw = ('From: <sender@example.test>\nTo: <user@b.test>\nSubject: eight bit\nMIME-Version: 1.0\n'
           'Content-Type: multipart/mixed; boundary="b1"\n\n--b1\n'
           'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n' + text +
           '--b1\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\n').encode() \
        + latin.encode('latin-1') + b'--b1--\n'
    qid = submit(inst, 'sender@example.test', ['user@b.test'], raw, ['BODY=8BITMIME'])
    status(inst, qid, 'user@b.test', 'sent')
    env, msg = sink.wait(1, inst)[0]
    assert 'BODY=8BITMIME' not in env['X-Mail-Args']
    assert all(b < 0x80 for b in msg), 'the peer got 8-bit bytes'
    m = email.message_from_bytes(msg, policy=email.policy.default)
    parts = list(m.iter_parts())
    assert parts[0]['Content-Transfer-Encoding'] in ('quoted-printable', 'base64')
    # decoded, each part is exactly what was sent (line ends aside)
    orig = list(email.message_from_bytes(raw, policy=email.policy.default).iter_parts())
    for o, p in zip(orig, parts):
        assert p.get_payload(decode=True).replace(b'\r\n', b'\n') == o.get_payload(decode=True)
    assert parts[0].get_content().startswith(text[:30])
    assert parts[1].get_content_charset() == 'iso-8859-1'


def test_idn_domain_looked_up_as_a_labels(net):
    inst = net.sender()
    sink = net.sink('127.0.0.6', 'mx.xn--bcher-kva.test')        # no SMTPUTF8
    user, maildir = _demo(inst)
    data = 'From: <sender@example.test>\nSubject: idn\n\nhello\n'.encode()
    qid = submit(inst, user, ['leser@b\u00fccher.test', 'j\u00f6rg@b\u00fccher.test'], data, ['SMTPUTF8'])
    status(inst, qid, 'leser@b\u00fccher.test', 'sent')
    # the ASCII local part arrives with the domain as A-labels; the other one cannot go without SMTPUTF8
    env, _ = sink.wait(1, inst)[0]
    assert env['X-Rcpt-Args'] == ['<leser@xn--bcher-kva.test>']
    status(inst, qid, 'j\u00f6rg@b\u00fccher.test', 'bounced', r'5\.6\.7')


def test_helo_fallback_with_a_peer_without_esmtp(net):
    inst = net.sender()
    sink = net.sink('127.0.0.4', 'mx.b.test', '-e')              # no ESMTP: EHLO refused
    qid = inject(inst, 'sender@example.test', ['a@b.test', 'c@b.test'], 'plain smtp')
    status(inst, qid, 'a@b.test', 'sent')
    status(inst, qid, 'c@b.test', 'sent')
    env, msg = sink.wait(1, inst)[0]
    assert env['X-Client-Proto'] == 'SMTP'
    assert env['X-Mail-Args'] == '<sender@example.test>'          # no ESMTP parameters after HELO
    assert env['X-Rcpt-Args'] == ['<a@b.test>', '<c@b.test>']


def test_dsn_parameters_reach_the_peer(net):
    inst = net.sender()
    sink = net.sink('127.0.0.4', 'mx.b.test')                    # offers DSN
    data = b'From: <sender@example.test>\nSubject: dsn\n\nhello\n'
    with smtplib.SMTP('127.0.0.1', inst.port('smtp'), timeout=30) as s:
        s.ehlo('client.test')
        assert s.mail('sender@example.test', ['RET=HDRS', 'ENVID=env+2B1'])[0] == 250
        assert s.rcpt('user@b.test', ['NOTIFY=SUCCESS,DELAY', 'ORCPT=rfc822;orig+2Buser@b.test'])[0] == 250
        assert s.rcpt('other@b.test', ['NOTIFY=NEVER'])[0] == 250
        assert s.data(data.replace(b'\n', b'\r\n'))[0] == 250
    env, _ = sink.wait(1, inst)[0]
    assert 'RET=HDRS' in env['X-Mail-Args'] and 'ENVID=env+2B1' in env['X-Mail-Args'], env
    assert env['X-Rcpt-Args'] == ['<user@b.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;orig+2Buser@b.test',
                                  '<other@b.test> NOTIFY=NEVER'], env


# ---------------------------------------------------------------- routing: relayhost and transport map

def compile_map(path, text):
    path.write_text(text)
    subprocess.run([str(build_dir() / 'bin' / 'postern'), 'map', 'compile', str(path)], check=True,
                   capture_output=True)
    return path


def test_relayhost_and_transport_map(net):
    relay = net.sink('127.0.0.7', 'relay.test')
    routed = net.sink('127.0.0.9', 'routed.test')
    mx = net.sink('127.0.0.4', 'mx.b.test')
    tmap = compile_map(net.tmp / 'transport', f'b.test smtp:[routed.test]:{net.port}\n')
    inst = net.sender(f'relayhost=[relay.test]:{net.port}', f'transport_maps={tmap}')
    qid = inject(inst, 'sender@example.test', ['one@b.test', 'two@a.test'], 'routes')
    status(inst, qid, 'one@b.test', 'sent')
    status(inst, qid, 'two@a.test', 'sent')
    assert routed.wait(1, inst)[0][0]['X-Rcpt-Args'] == ['<one@b.test>']
    assert relay.wait(1, inst)[0][0]['X-Rcpt-Args'] == ['<two@a.test>']
    assert not mx.messages()


# ---------------------------------------------------------------- a second Postern as the peer: TLS, BDAT

def receiver(net, *settings):
    """A Postern instance for tls.test whose smtpd also listens on mx.tls.test (127.0.0.5) at the shared port."""
    b = net.make_instance(domain='tls.test', hostname='mx.tls.test')
    mcf = b.path('etc', 'master.cf')
    own = f'127.0.0.1:{b.port("smtp")}'
    mcf.write_text(mcf.read_text().replace(own, f'{own},127.0.0.5:{net.port}', 1))
    b.cli('config', 'set', 'smtpd_peername_lookup=no', f'dns_nameservers=127.0.0.1:{net.dns_port}',
          'queue_scan_interval=1s', *settings, check=True)
    b.start()
    _wait(lambda: accepts('127.0.0.5', net.port), what='the receiver on 127.0.0.5')
    return b


def test_starttls_may_and_verify_against_postern(net):
    b = receiver(net)
    buser, bmaildir = _demo(b)
    inst = net.sender('smtp_connection_reuse_time=0')
    qid = inject(inst, 'sender@example.test', [buser], 'opportunistic')
    status(inst, qid, buser, 'sent')
    inst.wait_log(rf'{qid}: Untrusted TLS connection established to mx\.tls\.test\[127\.0\.0\.5\]:{net.port}: '
                  r'TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)')
    _wait(lambda: len(_maildir_files(bmaildir)) == 1, what='delivery on the receiver', inst=b)

    # verify for tls.test by the policy map: the self-signed certificate is not trusted, so the mail waits
    pmap = compile_map(net.tmp / 'tls_policy', 'tls.test verify\n')
    inst.cli('config', 'set', f'smtp_tls_policy_maps={pmap}', check=True)
    inst.cli('reload', check=True)
    time.sleep(0.5)
    qid = inject(inst, 'sender@example.test', [buser], 'verified')
    m = status(inst, qid, buser, 'deferred', r'4\.7\.5')
    assert 'Server certificate not verified' in m.group(0)
    assert len(_maildir_files(bmaildir)) == 1
    # with the receiver's certificate as the trusted root it verifies against the MX name and goes out
    inst.cli('config', 'set', f'smtp_tls_CAfile={b.path("etc", "tls", "cert.pem")}', check=True)
    inst.cli('reload', check=True)
    time.sleep(0.5)
    inst.cli('queue', 'flush', check=True)
    status(inst, qid, buser, 'sent')
    inst.wait_log(rf'{qid}: Verified TLS connection established to mx\.tls\.test\[127\.0\.0\.5\]:{net.port}: '
                  r'TLSv1\.[23] with cipher \S+')
    _wait(lambda: len(_maildir_files(bmaildir)) == 2, what='the verified delivery', inst=b)


def test_chunking_to_postern_smtpd(net):
    b = receiver(net)
    buser, bmaildir = _demo(b)
    inst = net.sender('debug=yes', 'smtp_connection_reuse_time=0')   # a kept connection holds b's stop
    body = ''.join(f'.line {i} starts with a dot\n' for i in range(3000)) + 'last\n'   # > 64 KiB: 2 chunks
    qid = inject(inst, 'sender@example.test', [buser], 'chunked', body=body)
    status(inst, qid, buser, 'sent')
    inst.wait_log(rf'{qid}: mx\.tls\.test\[127\.0\.0\.5\]: content in 2 BDAT chunks')
    files = _wait(lambda: _maildir_files(bmaildir), what='delivery on the receiver', inst=b)
    got = files[0].read_bytes()
    # byte for byte after the receiver's own trace headers: no dot-stuffing left, LF line ends as stored
    assert got.endswith(b'Subject: chunked\nMessage-ID: <chunked@example.test>\n\n' + body.encode()), got[-200:]
    b.wait_log(r'from=<sender@example\.test> size=\d+ nrcpt=1')


def test_size_limit_of_the_peer_bounces_without_sending(net):
    b = receiver(net, 'message_size_limit=20k')
    buser, bmaildir = _demo(b)
    inst = net.sender('smtp_connection_reuse_time=0')
    user, maildir = _demo(inst)
    qid = inject(inst, user, [buser], 'too big', body=('y' * 79 + '\n') * 400)
    m = status(inst, qid, buser, 'bounced', r'5\.3\.4')
    assert 'exceeds size limit 20480 of server mx.tls.test[127.0.0.5]' in m.group(0)
    assert 'Status: 5.3.4' in bounce_report(maildir, inst, buser)
    # nothing reached the peer: it never saw MAIL
    assert not re.search(r'from=<demo@example\.test>', '\n'.join(b.log_lines()))
    # under the limit with CR LF line ends too (body 20000 bytes stored, 20250 on the wire): delivered
    body = ('z' * 79 + '\n') * 250
    qid = inject(inst, user, [buser], 'fits', body=body)
    status(inst, qid, buser, 'sent')
    _wait(lambda: _maildir_files(bmaildir), what='delivery on the receiver', inst=b)


# ---------------------------------------------------------------- client AUTH and a changed password map

def test_auth_password_map_reread_when_changed(net, tmp_path):
    """The relay is the submission port of a second Postern (AUTH after STARTTLS). The sending instance runs its
    daemons as nobody, so its smtp processes cannot reopen the root-only password map after their privilege
    drop: a fixed password must still be used without a restart."""
    if not IS_ROOT:
        pytest.skip('needs root: the sending instance runs as nobody with a root-only password map')
    b = receiver(net)
    buser, bmaildir = _demo(b)
    bpass = b.demo_password
    assert bpass

    top = Path(tempfile.mkdtemp(prefix='postern-sasl-'))
    os.chmod(top, 0o711)
    from conftest import Instance, SERVICES, free_ports
    inst = Instance(top / 'postern', zip(SERVICES, free_ports(len(SERVICES))), 'example.test', 'mail.example.test')
    try:
        inst.init('--user', 'nobody')
        pw = inst.path('etc', 'sasl_passwd')
        relay = f'[127.0.0.1]:{b.port("submission")}'
        pw.write_text(f'{relay} {buser}:wrong-password\n')
        os.chmod(pw, 0o600)
        inst.run('map', 'compile', pw, check=True)
        assert (os.stat(str(pw) + '.lmdb').st_mode & 0o077) == 0
        inst.cli('config', 'set', f'dns_nameservers=127.0.0.1:{net.dns_port}', f'relayhost={relay}',
                 f'smtp_sasl_password_maps={pw}', 'queue_scan_interval=1s', 'queue_time_scale=600',
                 'smtpd_peername_lookup=no', check=True)
        inst.start()
        # through smtpd: `postern queue inject` run as root leaves a queue file that qmgr (nobody) cannot open
        qid = submit(inst, buser, [buser], b'Subject: authenticated\n\nhello\n')   # the relay checks the sender
        m = status(inst, qid, buser, 'deferred', r'4\.7\.0')
        assert 'SASL authentication failed' in m.group(0) and 'wrong-password' not in inst.log_path.read_text()
        # the password is fixed in the map; no reload, no restart
        pw.write_text(f'{relay} {buser}:{bpass}\n')
        inst.run('map', 'compile', pw, check=True)
        inst.cli('queue', 'flush', check=True)
        status(inst, qid, buser, 'sent')
        inst.wait_log(r'smtp_sasl_password_maps: \S+ has changed; exiting so a new process reads it')
        _wait(lambda: _maildir_files(bmaildir), what='the relayed message on the receiver', inst=b)
        assert bpass not in inst.log_path.read_text()
    finally:
        inst.stop()
        shutil.rmtree(top, ignore_errors=True)
