"""DKIM signing in the smtp delivery daemon: a key made with `postern dkim keygen`, listed in the dkim_keys table,
signs mail whose From domain (or a parent) is listed; the body hash in the signature matches the relaxed body
as the server received it; mail from other domains goes unsigned. Reuses the scripted-server harness of
test_smtp_client.py (its fixtures and helpers)."""
import base64
import hashlib
import re
import subprocess

from test_smtp_client import build_dir, compile_map, env, pytestmark  # noqa: F401 (fixture and skip marks)


def relaxed_body_hash(body):
    lines = body.split(b'\r\n')
    if lines and lines[-1] == b'':
        lines.pop()
    out = [re.sub(rb'[ \t]+', b' ', ln).rstrip(b' ') for ln in lines]
    while out and out[-1] == b'':
        out.pop()
    data = b''.join(x + b'\r\n' for x in out)
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_dkim_signing_by_from_domain(env):
    r = subprocess.run([str(build_dir() / 'bin' / 'postern'), 'dkim', 'keygen', 'origin.test', 'sel', '--ed25519',
                        '-c', str(env.tmp)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert 'sel._domainkey.origin.test. IN TXT ( "v=DKIM1; k=ed25519; p=' in r.stdout
    key = env.tmp / 'data' / 'dkim' / 'origin.test.sel.key'
    assert key.stat().st_mode & 0o077 == 0 or key.stat().st_mode & 0o037 == 0
    keys = compile_map(env, 'dkim_keys', 'origin.test sel:%s\n' % key)
    srv = env.server('127.0.0.6', name='mx.b.test')
    env.start('dkim_keys=%s' % keys)
    content = 'From: Ann <ann@news.origin.test>\nTo: x@b.test\nSubject: signed  here\n\nhello   world \n\n\n'
    assert env.deliver(['x@b.test'], content=content)[0][0] == 2
    data = srv.messages[0]['data']
    assert data.startswith(b'DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=origin.test; s=sel;')
    head, body = data.split(b'\r\n\r\n', 1)
    sig = re.sub(rb'\r\n[ \t]', b' ', head.split(b'\r\nFrom:')[0]).decode()
    assert 'h=from:from:subject:to;' in sig.replace(' ', '')
    bh = re.search(r'bh=([A-Za-z0-9+/=]+)', sig).group(1)
    assert bh == relaxed_body_hash(body)
    assert ' l=' not in sig

    # a From domain without a key: sent unsigned
    assert env.deliver(['x@b.test'], content='From: a@elsewhere.test\n\nhi\n')[0][0] == 2
    assert not srv.messages[1]['data'].startswith(b'DKIM-Signature')
