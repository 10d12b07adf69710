"""DKIM signing at submission: keys made with `postern dkim keygen` (RSA and Ed25519), listed in the dkim_keys
table, sign mail that smtpd accepts from a logged-in client (submission port), a mynetworks client (port 25) and
sendmail (local submission). The delivered messages are checked with independent verifiers: dkimpy (Debian's
python3-dkim), whose key lookups go to dnsmasq on loopback serving the records keygen printed, and OpenDKIM's
opendkim-testmsg, which can only use the system resolver, so it runs (as root) in a network and mount namespace
of its own where dnsmasq answers on port 53 and a private resolv.conf points there. A changed body byte fails;
mail from a domain without a key and mail from strangers stays unsigned."""
import os
import re
import shlex
import shutil
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DNSMASQ, build_dir, free_port, start_dnsmasq
from test_smtp_client import FakeSMTP
from test_smtpd import LOOPBACK, need_demo_account, tls_context

dkim = pytest.importorskip('dkim', reason='python3-dkim (dkimpy) is not installed')
dns_resolver = pytest.importorskip('dns.resolver', reason='python3-dnspython is not installed')


def keygen(inst, domain, selector, *extra):
    """`postern dkim keygen`; returns (key path, TXT record text joined from the printed strings)."""
    r = inst.cli('dkim', 'keygen', domain, selector, *extra, check=True)
    m = re.search(r'^%s\._domainkey\.%s\. IN TXT \((.*)\)$' % (re.escape(selector), re.escape(domain)),
                  r.stdout, re.M)
    assert m, r.stdout
    record = ''.join(re.findall(r'"([^"]*)"', m.group(1)))
    return inst.path('data', 'dkim', f'{domain}.{selector}.key'), record


def txt_option(name, text):
    """A dnsmasq --txt-record with the text cut into strings of at most 250 bytes (one TXT string holds 255)."""
    return '--txt-record=%s,%s' % (name, ','.join(text[i:i + 250] for i in range(0, len(text), 250)))


def dnsfunc(port):
    """A dkimpy dnsfunc that asks our dnsmasq (dkimpy's own lookups would go to the system resolver)."""
    res = dns_resolver.Resolver(configure=False)
    res.nameservers = [LOOPBACK]
    res.port = port

    def lookup(name, timeout=5):
        try:
            answer = res.resolve(name.decode().rstrip('.'), 'TXT', lifetime=timeout)
        except Exception:
            return None
        for rr in answer:
            return b''.join(rr.strings)
        return None
    return lookup


def wait_maildir(maildir, count, inst, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(maildir.iterdir()) if maildir.exists() else []
        if len(files) >= count:
            return [f.read_bytes() for f in files]
        time.sleep(0.1)
    raise AssertionError(f'{count} messages not delivered to {maildir}; log tail:\n{inst.log_tail()}')


def by_subject(messages, subject):
    found = [m for m in messages if b'\nSubject: ' + subject.encode() + b'\n' in m]
    assert len(found) == 1, (subject, messages)
    return found[0]


def opendkim_verify(paths, zone, tmp):
    """opendkim-testmsg's exit status for each message file, DNS from a dnsmasq in a private namespace."""
    resolv = tmp / 'resolv.conf'
    resolv.write_text('nameserver 127.0.0.1\n')
    probe = tmp / 'probe.py'
    probe.write_text('import sys\nsys.path.insert(0, %r)\nfrom conftest import _dns_answers\n'
                     'class P:\n    def poll(self):\n        return None\n'
                     'sys.exit(0 if _dns_answers(P(), 53, "probe.test") else 1)\n' % str(Path(__file__).parent))
    checks = ''.join('opendkim-testmsg < %s; echo "rc=$?"\n' % shlex.quote(str(p)) for p in paths)
    script = ('set -e\nip link set lo up\nmount --bind %s /etc/resolv.conf\nset +e\n'
              '%s -k --port=53 --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts --user=root '
              '--pid-file= --local=/test/ %s &\n'
              '%s %s\n%skill $!\n') % (shlex.quote(str(resolv)), DNSMASQ, ' '.join(shlex.quote(z) for z in zone),
                                         sys.executable, shlex.quote(str(probe)), checks)
    r = subprocess.run(['unshare', '--mount', '--net', '--', '/bin/sh', '-c', script], capture_output=True,
                       text=True, timeout=60)
    codes = [int(x) for x in re.findall(r'^rc=(\d+)$', r.stdout, re.M)]
    assert len(codes) == len(paths), (r.stdout, r.stderr)
    return codes, r.stderr


@pytest.fixture
def signing_instance(make_instance, tmp_path):
    """A started instance signing example.test (RSA 2048, selector rsa) and ed.example.test (Ed25519, selector
    ed); dnsmasq publishes both keys. Returns (inst, dnsfunc)."""
    inst = make_instance()
    need_demo_account(inst)
    rsa_key, rsa_rec = keygen(inst, 'example.test', 'rsa')
    ed_key, ed_rec = keygen(inst, 'ed.example.test', 'ed', '--ed25519')
    assert rsa_rec.startswith('v=DKIM1; k=rsa; p=') and ed_rec.startswith('v=DKIM1; k=ed25519; p=')
    for key in (rsa_key, ed_key):
        assert key.stat().st_mode & 0o077 == 0, oct(key.stat().st_mode)
    assert inst.path('data', 'dkim').stat().st_mode & 0o077 == 0
    table = inst.path('etc', 'dkim_keys')
    table.write_text(f'example.test rsa:{rsa_key}\ned.example.test ed:{ed_key}\n')
    inst.run('map', 'compile', table, check=True)
    zone = [txt_option('rsa._domainkey.example.test', rsa_rec), txt_option('ed._domainkey.ed.example.test', ed_rec),
            '--host-record=probe.test,127.0.0.1']
    inst.dkim_zone = zone
    proc, port = start_dnsmasq(tmp_path, zone, 'probe.test')
    relay = FakeSMTP('127.0.0.7', free_port('127.0.0.7'), name='relay.test')
    inst.relay = relay
    try:
        inst.cli('config', 'set', f'relayhost=[127.0.0.7]:{relay.port}', check=True)
        inst.cli('config', 'set', f'dkim_keys={table}', check=True)
        inst.cli('config', 'set', f'dns_nameservers=127.0.0.1:{port}', check=True)
        inst.cli('config', 'set', 'mynetworks=127.0.0.1/32', check=True)
        inst.start()
        yield inst, dnsfunc(port)
    finally:
        inst.stop()             # first: smtp keeps its connection to the relay open for reuse
        relay.close()
        proc.terminate()
        proc.wait(5)


def test_submission_mynetworks_and_sendmail_signed(signing_instance):
    inst, lookup = signing_instance
    user = inst.demo_user
    local, domain = user.split('@')
    # 1. logged in on the submission port: RSA
    with smtplib.SMTP(LOOPBACK, inst.port('submission'), timeout=10) as s:
        s.ehlo('client.test')
        s.starttls(context=tls_context())
        s.ehlo('client.test')
        s.login(user, inst.demo_password)
        s.sendmail(user, [user], f'From: Demo <{user}>\r\nTo: {user}\r\nSubject: submitted\r\n\r\n'
                   'hello   there \r\nsecond line\r\n\r\n\r\n'.encode())
    # 2. a mynetworks client on port 25, From a subdomain with its own Ed25519 key
    with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=10) as s:
        s.sendmail('a@ed.example.test', [user], b'From: a@ed.example.test\r\nTo: x\r\nSubject: relayed\r\n\r\nhi\r\n')
        # no key for this From domain: unsigned
        s.sendmail('a@nokey.test', [user], b'From: a@nokey.test\r\nSubject: nokey\r\n\r\nhi\r\n')
    # 3. sendmail (local submission), no Date or Message-ID: the ones smtpd adds are signed as well
    r = subprocess.run([str(build_dir() / 'bin' / 'postern'), 'sendmail', '-C', str(inst.dir), '-t'],
                       input=f'From: b@sub.example.test\nTo: {user}\nSubject: local\n\nfrom sendmail\n'.encode(),
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # 4. a stranger (outside mynetworks) on port 25 is not signed, whatever its From says
    with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=10, source_address=('127.0.0.2', 0)) as s:
        s.sendmail('a@remote.test', [user], f'From: {user}\r\nSubject: stranger\r\n\r\nhi\r\n'.encode())

    msgs = wait_maildir(inst.path('mail', domain, local, 'new'), 5, inst)
    for subject, d, alg in (('submitted', 'example.test', b'rsa-sha256'), ('relayed', 'ed.example.test',
                                                                          b'ed25519-sha256'),
                            ('local', 'example.test', b'rsa-sha256')):
        m = by_subject(msgs, subject)
        assert m.count(b'DKIM-Signature:') == 1, m
        sig = re.search(rb'DKIM-Signature:(.*?)\n(?=\S)', m, re.S).group(1)
        assert b'a=' + alg in sig and (b'd=' + d.encode()) in sig and b'c=relaxed/relaxed' in sig
        assert b' l=' not in sig
        h = re.sub(rb'\s+', b'', re.search(rb'h=([^;]*);', sig).group(1)).split(b':')
        assert h.count(b'from') == 2, h        # oversigned
        assert dkim.verify(m, dnsfunc=lookup), (subject, m)
        # one body byte changed in transit: the body hash no longer matches
        changed = m.replace(b'hi\n', b'ho\n').replace(b'hello', b'hallo').replace(b'from sendmail', b'from sendmall')
        assert changed != m
        assert not dkim.verify(changed, dnsfunc=lookup)
    local_msg = by_subject(msgs, 'local')
    assert b'\nDate: ' in local_msg and b'\nMessage-ID: ' in local_msg
    for subject in ('nokey', 'stranger'):
        assert b'DKIM-Signature:' not in by_subject(msgs, subject)
    inst.wait_log(r'DKIM-signed: DKIM-Signature: v=1; a=ed25519-sha256')


def test_signed_mail_verifies_with_opendkim(signing_instance, tmp_path):
    inst, _ = signing_instance
    if os.geteuid() != 0:
        pytest.skip('needs root for a private network and mount namespace (opendkim-testmsg uses resolv.conf)')
    for tool in ('opendkim-testmsg', 'unshare', 'ip'):
        if not shutil.which(tool):
            pytest.skip(f'{tool} is not installed')
    user = inst.demo_user
    local, domain = user.split('@')
    with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=10) as s:
        for frm, subject in (('a@example.test', 'rsa'), ('b@ed.example.test', 'ed25519')):
            # opendkim-testmsg reports a syntax error for a message without Date
            s.sendmail(frm, [user], (f'From: <{frm}>\r\nTo: <{user}>\r\nSubject: {subject}\r\n'
                                     'Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n'
                                     'Some text,\r\n  spaced   out \r\n\r\n').encode())
    msgs = wait_maildir(inst.path('mail', domain, local, 'new'), 2, inst)
    paths = []
    for subject in ('rsa', 'ed25519'):
        m = by_subject(msgs, subject)
        for name, data in ((subject, m), (subject + '-changed', m.replace(b'Some text', b'Some test'))):
            p = tmp_path / name
            p.write_bytes(data)
            paths.append(p)
    codes, err = opendkim_verify(paths, inst.dkim_zone, tmp_path)
    assert codes[0] == 0 and codes[2] == 0, err       # rsa-sha256 and ed25519-sha256 (OpenDKIM 2.11)
    assert codes[1] != 0 and codes[3] != 0 and 'Bad signature' in err


def test_relayed_mail_signed_once(signing_instance):
    """Signed at submission, relayed by the smtp client unchanged: one signature, and it verifies."""
    inst, lookup = signing_instance
    with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=10) as s:
        s.sendmail('a@example.test', ['someone@remote.test'],
                   b'From: a@example.test\r\nTo: someone@remote.test\r\nSubject: out\r\n\r\nrelayed text\r\n')
    deadline = time.monotonic() + 30
    while not inst.relay.messages and time.monotonic() < deadline:
        time.sleep(0.1)
    assert inst.relay.messages, inst.log_tail()
    data = inst.relay.messages[0]['data']
    assert data.count(b'DKIM-Signature:') == 1
    assert dkim.verify(data, dnsfunc=lookup)


def test_root_only_keys_signed_by_unprivileged_smtpd(make_instance):
    """On an instance whose daemons run as nobody, keygen leaves the key root's alone (0600), and smtpd, running
    as nobody, still signs: it loaded the key before it dropped privileges. nobody itself cannot read it."""
    if os.geteuid() != 0:
        pytest.skip('needs root: the key belongs to root, the daemons to nobody')
    import pwd
    nobody = pwd.getpwnam('nobody')
    inst = make_instance(extra_args=('--user', 'nobody'))
    for p in [inst.dir, *inst.dir.parents]:     # nobody must reach the instance (test directories are private)
        if p == Path('/'):
            break
        os.chmod(p, os.stat(p).st_mode | 0o005)
    key, _ = keygen(inst, 'example.test', 'rsa')
    st = key.stat()
    assert st.st_uid == 0 and st.st_mode & 0o777 == 0o600
    r = subprocess.run(['setpriv', f'--reuid={nobody.pw_uid}', f'--regid={nobody.pw_gid}', '--clear-groups', '--',
                        'cat', str(key)], capture_output=True)
    assert r.returncode != 0 and not r.stdout
    table = inst.path('etc', 'dkim_keys')
    table.write_text(f'example.test rsa:{key}\n')
    inst.run('map', 'compile', table, check=True)
    os.chmod(str(table) + '.lmdb', 0o644)
    inst.cli('config', 'set', f'dkim_keys={table}', check=True)
    inst.start()
    with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=10) as s:
        s.sendmail('a@example.test', [f'postmaster@{inst.domain}'],
                   b'From: a@example.test\r\nSubject: signed by nobody\r\n\r\nhi\r\n')
    m = inst.wait_log(r'postern/smtpd\[(\d+)\]: info: [0-9A-Z]+: DKIM-signed: DKIM-Signature: v=1; a=rsa-sha256')
    status = Path(f'/proc/{m.group(1)}/status').read_text()
    assert re.search(r'^Uid:\s+%d\s' % nobody.pw_uid, status, re.M), status
