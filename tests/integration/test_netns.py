"""Two Postern instances on two hosts, end to end: the test creates two network namespaces joined by a veth pair
(192.0.2.1 and 192.0.2.2, TEST-NET-1, which never leaves the pair), runs dnsmasq in the first one answering MX
and A records for both mail domains, and starts one instance in each namespace (`ip netns exec NS postern
start`). A user of a.test submits a message for a user of b.test; a.test's smtp finds b.test's MX through DNS
and hands it over the veth; it is read back over IMAP on b.test. The reply goes the other way and is read back
over POP3 on a.test. Clients run inside the namespaces (ip netns exec python3). Needs root; the namespaces are
deleted even when the test fails."""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import DNSMASQ, SERVICES, Instance, build_dir

IP = shutil.which('ip') or '/usr/sbin/ip'
PY = '/usr/bin/python3' if os.path.exists('/usr/bin/python3') else sys.executable
SMTP_PORT = 2525        # inside the namespaces every port is free: both instances use the dev defaults
DNS_PORT = 5353
DEV_PORTS = dict(zip(SERVICES, (2525, 2587, 2465, 1110, 1995, 1143, 1993)))
TIMEOUT = 30

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: creates network namespaces'),
    pytest.mark.skipif(not os.path.exists(IP), reason='iproute2 (ip) is not installed'),
    pytest.mark.skipif(not DNSMASQ, reason='dnsmasq is not installed'),
]

SUBMIT = r'''
import smtplib, ssl, sys
port, user, password, rcpt, subject = sys.argv[1:]
with smtplib.SMTP('127.0.0.1', int(port), timeout=30) as s:
    s.ehlo('client.test')
    s.starttls(context=ssl._create_unverified_context())
    s.ehlo('client.test')
    s.login(user, password)
    s.sendmail(user, [rcpt], 'From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nbody of %s\r\n'
               % (user, rcpt, subject, subject))
'''

IMAP_READ = r'''
import imaplib, ssl, sys
port, user, password, subject = sys.argv[1:]
m = imaplib.IMAP4('127.0.0.1', int(port), timeout=30)
m.starttls(ssl._create_unverified_context())
m.login(user, password)
m.select('INBOX')
typ, data = m.search(None, 'SUBJECT', '"%s"' % subject)
nums = data[0].split()
if not nums:
    sys.exit('no message with subject %s' % subject)
typ, msg = m.fetch(nums[0], '(RFC822)')
sys.stdout.buffer.write(msg[0][1])
m.logout()
'''

POP3_READ = r'''
import poplib, sys
port, user, password, subject = sys.argv[1:]
p = poplib.POP3('127.0.0.1', int(port), timeout=30)
p.user(user)
p.pass_(password)
for n in range(1, len(p.list()[1]) + 1):
    raw = b'\n'.join(p.retr(n)[1])
    if ('Subject: %s' % subject).encode() in raw:
        sys.stdout.buffer.write(raw)
        break
else:
    sys.exit('no message with subject %s' % subject)
p.quit()
'''


def ip(*args, check=True):
    return subprocess.run([IP, *args], capture_output=True, text=True, check=check, timeout=20)


def in_ns(ns, *argv, check=True, input=None):
    r = subprocess.run([IP, 'netns', 'exec', ns, *map(str, argv)], capture_output=True, timeout=60, input=input)
    if check and r.returncode != 0:
        raise AssertionError(f'in {ns}: {" ".join(map(str, argv))[:200]} exited {r.returncode}\n'
                             f'{r.stdout.decode(errors="replace")}\n{r.stderr.decode(errors="replace")}')
    return r


class Host:
    """One namespace with one Postern instance (daemons as nobody: pop3d and imapd never serve as root)."""

    def __init__(self, ns, addr, domain, top):
        self.ns, self.addr, self.domain = ns, addr, domain
        self.inst = Instance(top / domain / 'postern', DEV_PORTS, domain, f'mx.{domain}')
        self.inst.dir.parent.mkdir()
        os.chmod(self.inst.dir.parent, 0o711)

    def setup(self, dns):
        inst = self.inst
        inst.init('--user', 'nobody')
        # smtpd also listens on the namespace's veth address, where the other host's MX lookup points
        mcf = inst.path('etc', 'master.cf')
        own = f'127.0.0.1:{SMTP_PORT}'
        mcf.write_text(mcf.read_text().replace(own, f'{own},{self.addr}:{SMTP_PORT}', 1))
        inst.cli('config', 'set', f'dns_nameservers={dns}:{DNS_PORT}', 'dns_timeout=3s', f'smtp_port={SMTP_PORT}',
                 'smtpd_peername_lookup=no', 'queue_scan_interval=1s', 'smtp_connect_timeout=3s',
                 # a connection kept for reuse holds the other side's smtpd session, and its stop, for 10 s
                 'smtp_connection_reuse_time=0', check=True)

    def start(self):
        r = in_ns(self.ns, build_dir() / 'bin' / 'postern', 'start', '-c', self.inst.dir, check=False)
        self.inst.started = True        # stopped (and leftovers killed) at teardown either way
        assert r.returncode == 0, r.stderr.decode(errors='replace') + self.inst.log_tail()

    def client(self, script, *args):
        return in_ns(self.ns, PY, '-c', script, *args).stdout


@pytest.fixture
def hosts(postern_build):
    tag = str(os.getpid() % 100000)
    nsa, nsb = f'pstA{tag}', f'pstB{tag}'
    top = Path(tempfile.mkdtemp(prefix='postern-netns-'))
    os.chmod(top, 0o711)
    dns = None
    made, started = [], []
    try:
        for ns in (nsa, nsb):
            r = ip('netns', 'add', ns, check=False)
            if r.returncode != 0:
                pytest.skip(f'cannot create a network namespace: {r.stderr.strip()}')
            made.append(ns)
        ip('link', 'add', f'pva{tag}', 'type', 'veth', 'peer', 'name', f'pvb{tag}')
        for ns, dev, addr in ((nsa, f'pva{tag}', '192.0.2.1'), (nsb, f'pvb{tag}', '192.0.2.2')):
            ip('link', 'set', dev, 'netns', ns)
            ip('-n', ns, 'addr', 'add', f'{addr}/24', 'dev', dev)
            ip('-n', ns, 'link', 'set', dev, 'up')
            ip('-n', ns, 'link', 'set', 'lo', 'up')
        zone = ['--mx-host=a.test,mx.a.test,10', '--host-record=mx.a.test,192.0.2.1',
                '--mx-host=b.test,mx.b.test,10', '--host-record=mx.b.test,192.0.2.2']
        dns = subprocess.Popen([IP, 'netns', 'exec', nsa, DNSMASQ, '-k', f'--port={DNS_PORT}',
                                '--listen-address=192.0.2.1', '--bind-interfaces', '--no-resolv', '--no-hosts',
                                '--user=root', '--pid-file=', '--local=/test/', f'--log-facility={top}/dnsmasq.log',
                                *zone], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        a = Host(nsa, '192.0.2.1', 'a.test', top)
        b = Host(nsb, '192.0.2.2', 'b.test', top)
        for h in (a, b):
            h.setup('192.0.2.1')
            started.append(h)
            h.start()
        yield a, b
    finally:
        for h in started:
            h.inst.stop()
        if dns:
            dns.terminate()
            dns.wait(5)
        for ns in made:
            ip('netns', 'del', ns, check=False)
        shutil.rmtree(top, ignore_errors=True)


def test_two_hosts_exchange_mail(hosts):
    a, b = hosts
    ua, pa = a.inst.demo_user, a.inst.demo_password
    ub, pb = b.inst.demo_user, b.inst.demo_password
    assert ua == 'demo@a.test' and ub == 'demo@b.test'

    # a.test -> b.test, read over IMAP on b.test
    a.client(SUBMIT, DEV_PORTS['submission'], ua, pa, ub, 'hello from a')
    a.inst.wait_log(rf'to=<{ub}>, relay=mx\.b\.test\[192\.0\.2\.2\]:{SMTP_PORT}, .*status=sent', timeout=TIMEOUT)
    b.inst.wait_log(rf'to=<{ub}>, relay=local, .*status=sent', timeout=TIMEOUT)
    msg = b.client(IMAP_READ, DEV_PORTS['imap'], ub, pb, 'hello from a')
    assert b'body of hello from a' in msg
    assert b'from mx.a.test' in msg          # the Received line b's smtpd added names a's HELO
    a.inst.wait_log(r'TLS connection established to mx\.b\.test\[192\.0\.2\.2\]', timeout=TIMEOUT)

    # the reply, b.test -> a.test, read over POP3 on a.test
    b.client(SUBMIT, DEV_PORTS['submission'], ub, pb, ua, 're: hello from a')
    b.inst.wait_log(rf'to=<{ua}>, relay=mx\.a\.test\[192\.0\.2\.1\]:{SMTP_PORT}, .*status=sent', timeout=TIMEOUT)
    a.inst.wait_log(rf'to=<{ua}>, relay=local, .*status=sent', timeout=TIMEOUT)
    msg = a.client(POP3_READ, DEV_PORTS['pop3'], ua, pa, 're: hello from a')
    assert b'body of re: hello from a' in msg
    assert b'from mx.b.test' in msg
