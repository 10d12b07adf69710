"""`postern check` and `postern status` on real instances: a fresh instance passes; each kind of damage an
administrator can cause (a key that is not the certificate's, an expired or soon expiring certificate, a table
source edited after compiling, a missing, open or foreign-owned queue directory) is reported on its own line
naming the file, and the exit status says whether anything is wrong. status counts the queue directories."""
import datetime
import os
import re
import subprocess

import pytest

IS_ROOT = os.geteuid() == 0
NOBODY = 65534


def check(inst):
    r = inst.cli('check')
    return r.returncode, r.stdout + r.stderr


def problems(output):
    return [line for line in output.splitlines() if line.startswith('problem: ')]


def make_cert(path, key_path, not_before, not_after):
    """A self-signed EC certificate with the given validity; the key goes to key_path (mode 0600)."""
    pytest.importorskip('cryptography')     # python3-cryptography
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'mail.example.test')])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)


def test_fresh_instance_passes(make_instance):
    inst = make_instance()
    rc, out = check(inst)
    assert rc == 0, out
    assert problems(out) == [], out
    assert 'no problems found' in out
    assert 'warning:' not in out


def test_key_does_not_match_certificate(make_instance):
    inst = make_instance()
    key = inst.path('etc', 'tls', 'key.pem')
    other = inst.path('other.pem')
    subprocess.run(['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out',
                    str(other)], check=True, capture_output=True)
    key.write_bytes(other.read_bytes())
    os.chmod(key, 0o600)
    rc, out = check(inst)
    assert rc == 1, out
    bad = [p for p in problems(out) if 'does not belong' in p]
    assert len(bad) == 1, out
    assert str(key) in bad[0] and str(inst.path('etc', 'tls', 'cert.pem')) in bad[0]


def test_expired_certificate(make_instance):
    inst = make_instance()
    now = datetime.datetime.utcnow()
    cert = inst.path('etc', 'tls', 'cert.pem')
    make_cert(cert, inst.path('etc', 'tls', 'key.pem'), now - datetime.timedelta(days=400),
              now - datetime.timedelta(days=3))
    rc, out = check(inst)
    assert rc == 1, out
    expired = [p for p in problems(out) if 'expired' in p]
    assert len(expired) == 1 and str(cert) in expired[0], out
    assert re.search(r'expired [23] days ago', expired[0]), out
    assert 'does not belong' not in out      # a matching key of its own


def test_certificate_expiring_soon_is_a_warning(make_instance):
    inst = make_instance()
    now = datetime.datetime.utcnow()
    cert = inst.path('etc', 'tls', 'cert.pem')
    make_cert(cert, inst.path('etc', 'tls', 'key.pem'), now - datetime.timedelta(days=1),
              now + datetime.timedelta(days=10, hours=1))
    rc, out = check(inst)
    warnings = [line for line in out.splitlines() if line.startswith('warning: ')]
    assert len(warnings) == 1 and str(cert) in warnings[0] and 'expires in 10 days' in warnings[0], out
    assert problems(out) == [] and rc == 0, out     # a warning alone does not fail the check

    # 40 days left is no warning at all
    make_cert(cert, inst.path('etc', 'tls', 'key.pem'), now - datetime.timedelta(days=1),
              now + datetime.timedelta(days=40))
    rc, out = check(inst)
    assert rc == 0 and 'warning:' not in out, out


def make_stale(source, compiled, seconds=5):
    """Date the compiled table back before its source's last change (a later compile dates it now again)."""
    st = os.stat(source)
    os.utime(compiled, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def test_aliases_changed_after_compiling(make_instance):
    inst = make_instance()
    aliases = inst.path('etc', 'aliases')
    with open(aliases, 'a') as f:
        f.write('abuse: postmaster\n')
    make_stale(aliases, inst.path('etc', 'aliases.lmdb'))
    rc, out = check(inst)
    assert rc == 1, out
    stale = problems(out)
    assert len(stale) == 1, out      # alias_maps and the aliases file are the same table: reported once
    assert str(aliases) in stale[0] and 'newaliases' in stale[0], out

    inst.run('map', 'compile', aliases, '--aliases', check=True)
    rc, out = check(inst)
    assert rc == 0, out


def test_aliases_not_compiled(make_instance):
    inst = make_instance()
    os.unlink(inst.path('etc', 'aliases.lmdb'))
    rc, out = check(inst)
    assert rc == 1, out
    assert any('not compiled' in p and str(inst.path('etc', 'aliases')) in p for p in problems(out)), out


def test_map_changed_after_compiling(make_instance):
    inst = make_instance()
    transport = inst.path('etc', 'transport')
    access = inst.path('etc', 'tls_policy')
    transport.write_text('example.org smtp:[127.0.0.1]:2525\n')
    access.write_text('example.org encrypt\n')
    inst.run('map', 'compile', transport, check=True)
    inst.run('map', 'compile', access, check=True)
    # one parameter names the source (with a variable), the other the compiled file
    with open(inst.path('etc', 'main.cf'), 'a') as f:
        f.write('transport_maps = $config_directory/transport\n')
        f.write(f'smtp_tls_policy_maps = {access}.lmdb\n')
    rc, out = check(inst)
    assert rc == 0, out

    with open(transport, 'a') as f:
        f.write('example.net smtp:[127.0.0.1]:2526\n')
    make_stale(transport, str(transport) + '.lmdb')
    make_stale(access, str(access) + '.lmdb')
    rc, out = check(inst)
    assert rc == 1, out
    for src, param in ((transport, 'transport_maps'), (access, 'smtp_tls_policy_maps')):
        hits = [p for p in problems(out) if f' {src} ' in p]
        assert len(hits) == 1, out
        assert hits[0].startswith(f'problem: {param}:') and 'postern map compile' in hits[0], out
        assert 'newaliases' not in hits[0]

    inst.run('map', 'compile', transport, check=True)
    rc, out = check(inst)
    assert not any(str(transport) in p for p in problems(out)), out
    assert any(str(access) in p for p in problems(out)), out


def test_queue_directories(make_instance):
    inst = make_instance()
    hold, deferred, active = (inst.path('queue', d) for d in ('hold', 'deferred', 'active'))
    os.rmdir(hold)
    os.chmod(deferred, 0o755)
    if IS_ROOT:
        os.chown(active, NOBODY, NOBODY)
    rc, out = check(inst)
    assert rc == 1, out
    found = problems(out)
    assert any(str(hold) in p and 'No such file' in p and 'mkdir' in p for p in found), out
    assert any(str(deferred) in p and '0755' in p and 'chmod 0700' in p for p in found), out
    if IS_ROOT:
        assert any(str(active) in p and 'owned by uid 65534' in p and 'chown' in p for p in found), out
    assert len([p for p in found if 'queue directory' in p]) == (3 if IS_ROOT else 2), out

    # the repairs check suggests make it pass again
    owner = os.stat(inst.path('queue'))
    os.mkdir(hold, 0o700)
    os.chown(hold, owner.st_uid, owner.st_gid)
    os.chmod(deferred, 0o700)
    if IS_ROOT:
        os.chown(active, owner.st_uid, owner.st_gid)
    rc, out = check(inst)
    assert rc == 0, out


def queue_line(output):
    m = re.search(r'^queue: incoming (\d+) active (\d+) deferred (\d+) hold (\d+) corrupt (\d+)$', output, re.M)
    assert m, output
    return tuple(int(x) for x in m.groups())


def test_status_counts_queue(make_instance):
    inst = make_instance()
    r = inst.cli('status')
    assert r.returncode == 3 and 'not running' in r.stdout, r.stdout + r.stderr
    assert queue_line(r.stdout) == (0, 0, 0, 0, 0)

    # names only: status never opens the files, so placeholders are enough; dot files are not messages
    for d, n in (('deferred', 3), ('hold', 2), ('corrupt', 1)):
        for i in range(n):
            inst.path('queue', d, f'4F{d[:2].upper()}{i:04d}').write_bytes(b'')
    inst.path('queue', 'deferred', '.tmpfile').write_bytes(b'')
    # hold and deferred are only read by qmgr when it starts: stopped, the counts are exact
    assert queue_line(inst.cli('status').stdout) == (0, 0, 3, 2, 1)

    inst.start()
    r = inst.cli('status', check=True)
    assert re.search(r'^SERVICE\s+TYPE', r.stdout, re.M), r.stdout
    assert re.search(r'^smtp\s', r.stdout, re.M), r.stdout
    counts = queue_line(r.stdout)
    assert counts[4] >= 1 and sum(counts) >= 1, r.stdout    # qmgr may move the bogus files, never invent any
