"""Plaintext passwords from a client that is not on loopback: refused by SMTP (no AUTH offered), POP3 (-ERR [AUTH])
and IMAP (LOGINDISABLED) by default, and accepted by each once its own switch (smtpd_auth_plaintext,
pop3d_plaintext_login, imapd_plaintext_login) says so; the auth daemon follows the service's policy rather than
refusing on its own. Loopback is recognised by address, so the instance runs in a network namespace made by the
test, listening on 192.0.2.1 (TEST-NET-1) on a veth interface, and the clients connect from that address. Needs
root and iproute2 (skipped otherwise)."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from conftest import SERVICES, Instance, free_ports

ADDR = '192.0.2.1'

CLIENT = textwrap.dedent('''
    import imaplib, json, poplib, smtplib, sys
    addr, imap, pop3, sub, user, pw = sys.argv[1:7]
    out = {}
    m = imaplib.IMAP4(addr, int(imap), timeout=30)
    out['imap_caps'] = list(m.capabilities)
    try:
        out['imap_login'] = m.login(user, pw)[0]
    except imaplib.IMAP4.error as e:
        out['imap_login'] = str(e)
    m.logout()
    p = poplib.POP3(addr, int(pop3), timeout=30)
    try:
        p.user(user)
        out['pop3_login'] = p.pass_(pw).decode()
    except poplib.error_proto as e:
        out['pop3_login'] = e.args[0].decode()
    p.quit()
    s = smtplib.SMTP(addr, int(sub), timeout=30)
    s.ehlo('client.test')
    out['smtp_auth_offered'] = s.has_extn('auth')
    try:
        out['smtp_login'] = s.login(user, pw)[0]
    except (smtplib.SMTPException) as e:
        out['smtp_login'] = type(e).__name__
    s.quit()
    print(json.dumps(out))
''')


def _ip(*args, check=True):
    return subprocess.run(['ip', *args], capture_output=True, text=True, check=check)


@pytest.fixture
def nsinst(postern_build):
    if os.geteuid() != 0:
        pytest.skip('needs root: makes a network namespace')
    if not shutil.which('ip'):
        pytest.skip('iproute2 is not installed')
    ns = f'postern-pt{os.getpid()}'
    r = _ip('netns', 'add', ns, check=False)
    if r.returncode != 0:
        pytest.skip(f'cannot make a network namespace: {r.stderr.strip()}')
    top = Path(tempfile.mkdtemp(prefix='postern-plaintext-'))
    os.chmod(top, 0o711)
    inst = Instance(top / 'postern', zip(SERVICES, free_ports(len(SERVICES))), 'example.test', 'mail.example.test')
    try:
        _ip('-n', ns, 'link', 'set', 'lo', 'up')
        _ip('-n', ns, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1')
        _ip('-n', ns, 'addr', 'add', f'{ADDR}/24', 'dev', 'v0')
        for dev in ('v0', 'v1'):
            _ip('-n', ns, 'link', 'set', dev, 'up')
        inst.init('--user', 'nobody')
        inst.require('submission', 'pop3', 'imap')
        cf = inst.path('etc', 'master.cf')
        cf.write_text(cf.read_text().replace('127.0.0.1:', f'{ADDR}:'))
        inst.ns = ns
        yield inst
    finally:
        inst.stop()
        _ip('netns', 'del', ns, check=False)
        shutil.rmtree(top, ignore_errors=True)


def _start(inst):
    r = subprocess.run(['ip', 'netns', 'exec', inst.ns, str(postern_bin(inst)), 'start', '-c', str(inst.dir)],
                       capture_output=True, text=True, timeout=60, env=inst.env())
    assert r.returncode == 0, f'{r.stdout}{r.stderr}{inst.log_tail()}'
    inst.started = True


def postern_bin(inst):
    return Path(os.environ.get('POSTERN_BUILD') or Path(__file__).resolve().parents[2] / 'build').resolve() / \
        'bin' / 'postern'


def _client(inst):
    deadline = time.monotonic() + 20
    while True:
        r = subprocess.run(['ip', 'netns', 'exec', inst.ns, sys.executable, '-c', CLIENT, ADDR,
                            str(inst.port('imap')), str(inst.port('pop3')), str(inst.port('submission')),
                            inst.demo_user, inst.demo_password], capture_output=True, text=True, timeout=120)
        if r.returncode == 0:
            return json.loads(r.stdout)
        if 'ConnectionRefused' not in r.stderr or time.monotonic() > deadline:
            raise AssertionError(f'client failed: {r.stderr}\n{inst.log_tail()}')
        time.sleep(0.2)


def test_plaintext_policy_per_service(nsinst):
    inst = nsinst
    _start(inst)
    out = _client(inst)
    assert 'LOGINDISABLED' in out['imap_caps'], out
    assert 'PRIVACYREQUIRED' in out['imap_login'], out
    assert out['pop3_login'].startswith('-ERR [AUTH]'), out
    assert out['smtp_auth_offered'] is False and out['smtp_login'] == 'SMTPNotSupportedError', out

    inst.stop()
    inst.cli('config', 'set', 'imapd_plaintext_login=yes', 'pop3d_plaintext_login=yes', 'smtpd_auth_plaintext=yes',
             check=True)
    since = len(inst.log_lines())
    _start(inst)
    out = _client(inst)
    assert 'LOGINDISABLED' not in out['imap_caps'] and 'AUTH=PLAIN' in out['imap_caps'], out
    assert out['imap_login'] == 'OK', (out, inst.log_tail())
    assert out['pop3_login'].startswith('+OK'), (out, inst.log_tail())
    assert out['smtp_auth_offered'] is True and out['smtp_login'] == 235, (out, inst.log_tail())
    for service in ('imapd', 'pop3d', 'smtpd'):
        inst.wait_log(rf'auth ok: user=<{re.escape(inst.demo_user)}> rip={re.escape(ADDR)} mech=\S+ '
                      rf'service={service}', since=since)
