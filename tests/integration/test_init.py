"""postern init: the instance layout, the generated configuration, the certificate, refusals."""
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import SERVICES, Instance, build_dir, free_ports, postern_bin

DIR_MODES = {
    '.': 0o755,
    'etc': 0o755,
    'etc/tls': 0o755,
    'queue': 0o700,
    'queue/tmp': 0o700,
    'queue/incoming': 0o700,
    'queue/active': 0o700,
    'queue/deferred': 0o700,
    'queue/hold': 0o700,
    'queue/corrupt': 0o700,
    'private': 0o700,
    'public': 0o711,
    'data': 0o700,
    'mail': 0o700,
    'log': 0o750,
    'pid': 0o755,
}


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def postern(*args, cwd=None):
    return subprocess.run([str(postern_bin()), *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60)


def master_cf_services(inst):
    """{(service, type): [columns..., continuation words...]} of etc/master.cf."""
    rows, last = {}, None
    for line in inst.path('etc', 'master.cf').read_text().splitlines():
        if not line.strip() or line.startswith('#'):
            continue
        if line[0].isspace():
            rows[last] += line.split()
            continue
        fields = line.split()
        last = (fields[0], fields[1])
        assert last not in rows, f'duplicate service {last}'
        rows[last] = fields
    return rows


def inet(rows, name):
    return rows[(name, 'inet')]


def test_layout_and_modes(make_instance):
    inst = make_instance()
    for rel, want in DIR_MODES.items():
        p = inst.path(rel)
        assert p.is_dir() and not p.is_symlink(), rel
        assert mode(p) == want, f'{rel}: {oct(mode(p))} != {oct(want)}'
    for rel in ('etc/main.cf', 'etc/master.cf', 'etc/aliases', 'etc/aliases.lmdb', 'etc/tls/cert.pem'):
        assert inst.path(rel).is_file(), rel
        assert mode(inst.path(rel)) == 0o644, rel
    assert mode(inst.path('etc/tls/key.pem')) == 0o600
    # no temporary files left behind by the crash-safe writes
    leftovers = [str(p) for p in inst.dir.rglob('*') if '.tmp' in p.name]
    assert leftovers == []


def test_main_cf(make_instance):
    inst = make_instance(domain='example.org', hostname='mx1.example.org')
    cf = inst.main_cf()
    assert cf['instance_directory'] == str(inst.dir)
    assert cf['myhostname'] == 'mx1.example.org'
    assert cf['mydomain'] == 'example.org'
    assert '$mydomain' in cf['mydestination'] and '$myhostname' in cf['mydestination']
    # never an open relay: loopback only
    assert [n.strip() for n in cf['mynetworks'].split(',')] == ['127.0.0.0/8', '[::1]/128']
    assert cf['log_destination'] == '$instance_directory/log/postern.log'
    assert cf['tls_cert_file'] == '$config_directory/tls/cert.pem'
    assert cf['tls_key_file'] == '$config_directory/tls/key.pem'
    # the daemons of the build that ran init
    assert Path(cf['daemon_directory']) == build_dir() / 'bin'
    expected_owner = os.environ.get('POSTERN_TEST_USER') or __import__('pwd').getpwuid(os.geteuid()).pw_name
    assert cf['mail_owner'] == expected_owner


def test_master_cf_ports(make_instance):
    inst = make_instance()
    rows = master_cf_services(inst)
    for name in SERVICES:
        assert inet(rows, name)[2] == f'127.0.0.1:{inst.port(name)}', inet(rows, name)
    assert [inet(rows, n)[3] for n in ('smtps', 'pop3s', 'imaps')] == ['implicit'] * 3
    assert [inet(rows, n)[3] for n in ('smtp', 'submission', 'pop3', 'imap')] == ['starttls'] * 4
    assert inet(rows, 'submission')[-2:] == ['-o', 'smtpd_auth_required=yes']
    assert inet(rows, 'smtps')[-2:] == ['-o', 'smtpd_auth_required=yes']
    assert inet(rows, 'smtp')[-1] == 'smtpd'
    for internal in ('qmgr', 'auth', 'local', 'smtp'):
        row = rows[(internal, 'unix')]
        assert row[2] == internal and row[9] == internal, row
        assert row[4] == '-', 'a development instance runs every daemon as one user'
    # ten columns each; no chroot in a generated instance
    assert all(len(f) >= 10 and f[5] == '-' for f in rows.values())


def test_default_dev_ports(tmp_path):
    d = tmp_path / 'inst'
    r = postern('init', d, '--dev')
    assert r.returncode == 0, r.stderr
    rows = master_cf_services(Instance(d, {}, '', ''))
    want = {'smtp': 2525, 'submission': 2587, 'smtps': 2465, 'pop3': 1110, 'pop3s': 1995, 'imap': 1143,
            'imaps': 1993}
    for name, port in want.items():
        assert inet(rows, name)[2] == f'127.0.0.1:{port}'


def test_certificate_names(make_instance):
    inst = make_instance(hostname='mx.example.net', domain='example.net')
    cert = inst.path('etc/tls/cert.pem')
    r = subprocess.run(['openssl', 'x509', '-in', str(cert), '-noout', '-subject', '-ext', 'subjectAltName',
                        '-enddate'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
    assert re.search(r'subject=.*CN ?= ?mx\.example\.net', r.stdout), r.stdout
    assert 'DNS:mx.example.net' in r.stdout
    assert 'DNS:localhost' in r.stdout
    assert 'IP Address:127.0.0.1' in r.stdout
    # still valid in 800 days, no longer in 830
    assert subprocess.run(['openssl', 'x509', '-in', str(cert), '-noout', '-checkend', str(800 * 86400)]).returncode == 0
    assert subprocess.run(['openssl', 'x509', '-in', str(cert), '-noout', '-checkend', str(830 * 86400)],
                          stdout=subprocess.DEVNULL).returncode != 0


def test_key_matches_certificate(make_instance):
    inst = make_instance()
    pub_from_cert = subprocess.run(['openssl', 'x509', '-in', str(inst.path('etc/tls/cert.pem')), '-noout',
                                    '-pubkey'], stdout=subprocess.PIPE, check=True).stdout
    pub_from_key = subprocess.run(['openssl', 'pkey', '-in', str(inst.path('etc/tls/key.pem')), '-pubout'],
                                  stdout=subprocess.PIPE, check=True).stdout
    assert pub_from_cert == pub_from_key


def test_demo_maildir(make_instance):
    inst = make_instance(domain='example.com', hostname='mail.example.com')
    for rel in ('mail/example.com', 'mail/example.com/demo', 'mail/example.com/demo/new',
                'mail/example.com/demo/cur', 'mail/example.com/demo/tmp'):
        assert inst.path(rel).is_dir(), rel
        assert mode(inst.path(rel)) == 0o700, rel


def test_aliases_postmaster(make_instance):
    inst = make_instance(domain='example.com', hostname='mail.example.com')
    text = inst.path('etc/aliases').read_text()
    assert re.search(r'^postmaster:\s*demo@example\.com$', text, re.M)
    # compiled by init, so local delivery can resolve postmaster at once
    assert inst.path('etc/aliases.lmdb').is_file()
    r = inst.run('map', 'get', inst.path('etc/aliases'), 'postmaster')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'demo@example.com'


def test_demo_password_printed(make_instance):
    a = make_instance()
    assert a.demo_user == 'demo@example.test'
    assert re.fullmatch(r'[A-Za-z0-9]{16}', a.demo_password)
    b = make_instance()
    assert a.demo_password != b.demo_password
    # the password is printed, never stored in clear text in the configuration
    for f in a.dir.rglob('*'):
        if f.is_file():
            assert a.demo_password.encode() not in f.read_bytes(), f


def test_refuses_non_empty_dir(tmp_path):
    d = tmp_path / 'inst'
    d.mkdir()
    (d / 'precious').write_text('keep me\n')
    r = postern('init', d)
    assert r.returncode != 0
    assert 'not empty' in r.stderr
    assert sorted(p.name for p in d.iterdir()) == ['precious']
    assert (d / 'precious').read_text() == 'keep me\n'


def test_refuses_existing_instance(make_instance):
    inst = make_instance()
    before = inst.path('etc/main.cf').read_text()
    r = postern('init', inst.dir, '--dev')
    assert r.returncode != 0 and 'not empty' in r.stderr
    assert inst.path('etc/main.cf').read_text() == before


def test_refuses_a_file(tmp_path):
    f = tmp_path / 'file'
    f.write_text('x')
    r = postern('init', f)
    assert r.returncode != 0 and 'not a directory' in r.stderr


def test_empty_existing_dir_accepted(tmp_path):
    d = tmp_path / 'empty'
    d.mkdir(mode=0o700)
    r = postern('init', d, '--dev')
    assert r.returncode == 0, r.stderr
    assert mode(d) == 0o755
    assert (d / 'etc/main.cf').is_file()


def test_creates_missing_parents(tmp_path):
    d = tmp_path / 'a' / 'b' / 'inst'
    r = postern('init', d, '--dev')
    assert r.returncode == 0, r.stderr
    assert (d / 'queue/incoming').is_dir()


def test_relative_dir_made_absolute(tmp_path):
    # like `make run`, which passes a directory inside the source tree
    r = postern('init', 'run/', '--dev', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cf = (tmp_path / 'run/etc/main.cf').read_text()
    assert f'instance_directory = {tmp_path}/run\n' in cf


@pytest.mark.parametrize('args,message', [
    (['--port', 'smtp=0'], '1 to 65535'),
    (['--port', 'smtp=65536'], '1 to 65535'),
    (['--port', 'smtp=25x'], '1 to 65535'),
    (['--port', 'bogus=25'], 'NAME one of'),
    (['--port', 'smtp'], 'NAME one of'),
    (['--port', 'smtp=3000', '--port', 'imap=3000'], 'both use port 3000'),
    (['--hostname', 'bad host'], 'not a valid domain name'),
    (['--hostname', 'a,DNS:evil.example'], 'not a valid domain name'),
    (['--domain', '-x.example'], 'not a valid domain name'),
    (['--frobnicate', 'x'], 'unknown option'),
    (['--domain'], 'needs a value'),
])
def test_bad_arguments(tmp_path, args, message):
    d = tmp_path / 'inst'
    r = postern('init', d, '--dev', *args)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert not d.exists()


@pytest.mark.parametrize('name', ['with space', 'dollar$x', 'hash#x', 'comma,x'])
def test_bad_dir_names(tmp_path, name):
    r = postern('init', tmp_path / name, '--dev')
    assert r.returncode != 0
    assert 'must not contain' in r.stderr
    assert not (tmp_path / name).exists()


def test_no_dir_is_a_usage_error():
    r = postern('init')
    assert r.returncode == 64     # EX_USAGE
    assert 'usage: postern init' in r.stderr


def test_port_option_forms(tmp_path):
    d = tmp_path / 'inst'
    p1, p2 = free_ports(2)
    r = postern('init', d, '--dev', f'--port=smtp={p1}', '--port', f'imaps={p2}', '--domain=example.org')
    assert r.returncode == 0, r.stderr
    rows = master_cf_services(Instance(d, {}, '', ''))
    assert inet(rows, 'smtp')[2] == f'127.0.0.1:{p1}'
    assert inet(rows, 'imaps')[2] == f'127.0.0.1:{p2}'
    assert 'mydomain = example.org\n' in (d / 'etc/main.cf').read_text()


def _no_user(name):
    import pwd
    try:
        pwd.getpwnam(name)
        return False
    except KeyError:
        return True


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root')
def test_root_system_instance(tmp_path):
    """root with --user: a system instance (standard ports, syslog), run by that user, key readable by its group."""
    import grp
    import pwd
    d = tmp_path / 'sys'
    r = postern('init', d, '--user', 'nobody', '--domain', 'example.org')
    assert r.returncode == 0, r.stderr
    nobody = pwd.getpwnam('nobody')
    cf = Instance(d, {}, '', '').main_cf()
    assert cf['mail_owner'] == 'nobody'
    assert cf['log_destination'] == 'syslog'
    rows = master_cf_services(Instance(d, {}, '', ''))
    assert [inet(rows, s)[2] for s in SERVICES] == ['*:25', '*:587', '*:465', '*:110', '*:995', '*:143', '*:993']
    assert rows[('local', 'unix')][4] == 'root'
    for rel in ('queue', 'queue/incoming', 'private', 'public', 'data', 'mail', 'log'):
        st = os.stat(d / rel)
        assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid), rel
    for rel in ('.', 'etc', 'etc/tls', 'pid'):
        assert os.stat(d / rel).st_uid == 0, rel
    for rel in ('mail/example.org', 'mail/example.org/demo', 'mail/example.org/demo/new'):
        assert os.stat(d / rel).st_uid == nobody.pw_uid, rel
    # the auth daemon (mail_owner) reads the account database
    for f in (d / 'data').iterdir():
        assert os.stat(f).st_uid == nobody.pw_uid, f
    key = os.stat(d / 'etc/tls/key.pem')
    assert stat.S_IMODE(key.st_mode) == 0o640
    assert (key.st_uid, key.st_gid) == (0, nobody.pw_gid)
    assert grp.getgrgid(key.st_gid)


@pytest.mark.skipif(os.geteuid() != 0 or not _no_user('postern'), reason='needs root and no postern user')
def test_root_without_postern_user_falls_back_to_dev(tmp_path):
    d = tmp_path / 'run'
    r = postern('init', d)
    assert r.returncode == 0, r.stderr
    assert "user 'postern' does not exist" in r.stderr
    rows = master_cf_services(Instance(d, {}, '', ''))
    assert inet(rows, 'smtp')[2] == '127.0.0.1:2525'
    assert Instance(d, {}, '', '').main_cf()['mail_owner'] == 'root'


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to switch to an unprivileged user')
def test_unprivileged_user_gets_dev_instance():
    """Run init as nobody: the instance is run by the invoking user, and --user cannot name another one."""
    import pwd
    import shutil
    import tempfile
    nobody = pwd.getpwnam('nobody')
    top = tempfile.mkdtemp(prefix='postern-unpriv-')
    try:
        os.chmod(top, 0o755)
        os.chown(top, nobody.pw_uid, nobody.pw_gid)

        def drop():
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)

        def run(*args):
            return subprocess.run([str(postern_bin()), *args], preexec_fn=drop, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, timeout=60, cwd=top)

        if run('help').returncode != 0:
            pytest.skip('the build is not executable by nobody')
        r = run('init', f'{top}/inst', '--user', 'root')
        assert r.returncode != 0 and 'only root' in r.stderr
        r = run('init', f'{top}/inst')
        assert r.returncode == 0, r.stderr
        cf = Instance(f'{top}/inst', {}, '', '').main_cf()
        assert cf['mail_owner'] == 'nobody'
        assert cf['log_destination'] == '$instance_directory/log/postern.log'
        assert os.stat(f'{top}/inst/etc/tls/key.pem').st_uid == nobody.pw_uid
        assert mode(f'{top}/inst/etc/tls/key.pem') == 0o600
        rows = master_cf_services(Instance(f'{top}/inst', {}, '', ''))
        assert inet(rows, 'submission')[2] == '127.0.0.1:2587'
    finally:
        shutil.rmtree(top)


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root')
def test_root_dev_instance_for_another_user(tmp_path):
    """root --dev --user nobody: loopback dev ports and file logging, but the daemons (nobody) can read the key."""
    import pwd
    nobody = pwd.getpwnam('nobody')
    d = tmp_path / 'dev'
    r = postern('init', d, '--dev', '--user', 'nobody')
    assert r.returncode == 0, r.stderr
    inst = Instance(d, {}, '', '')
    assert inst.main_cf()['mail_owner'] == 'nobody'
    assert inst.main_cf()['log_destination'] == '$instance_directory/log/postern.log'
    assert inet(master_cf_services(inst), 'smtp')[2] == '127.0.0.1:2525'
    key = os.stat(d / 'etc/tls/key.pem')
    assert stat.S_IMODE(key.st_mode) == 0o640 and key.st_gid == nobody.pw_gid
    assert os.stat(d / 'log').st_uid == nobody.pw_uid


def test_config_module_reads_main_cf(make_instance):
    """The generated main.cf parses without warnings, and its $-references expand to the instance's paths."""
    inst = make_instance(hostname='MX.Example.TEST', domain='Example.TEST')
    r = inst.cli('config', 'show', '--non-default')
    assert r.returncode == 0, r.stderr
    assert r.stderr == ''
    shown = dict(line.split(' = ', 1) for line in r.stdout.splitlines() if ' = ' in line)
    assert shown['myhostname'] == 'mx.example.test'     # lower-cased by init
    assert shown['mydestination'] == 'mx.example.test, example.test, localhost.example.test, localhost'
    assert shown['tls_key_file'] == f'{inst.dir}/etc/tls/key.pem'
    assert shown['log_destination'] == f'{inst.dir}/log/postern.log'


def test_postern_check_accepts_fresh_instance(make_instance):
    inst = make_instance()
    r = inst.cli('check')
    if 'unknown command' in r.stderr:
        pytest.skip('this build has no `postern check` yet')
    assert r.returncode == 0, r.stdout + r.stderr


def test_demo_account_stored(make_instance):
    inst = make_instance(domain='example.net', hostname='mx.example.net')
    r = inst.cli('user', 'list')
    if 'unknown command' in r.stderr:
        pytest.skip('this build has no `postern user` yet')
    assert r.returncode == 0, r.stderr
    row = [line.split() for line in r.stdout.splitlines() if line.startswith('demo@')]
    assert row and row[0][0] == 'demo@example.net' and row[0][1] == 'yes'
    assert row[0][-1] == f'{inst.dir}/mail/example.net/demo/'
    assert mode(inst.path('data/accounts.lmdb')) == 0o600


def test_demo_password_verifies(make_instance):
    """The printed password is the one stored (as a crypt hash, never in clear). The hash is found in the LMDB
    file's bytes and checked with libcrypt through Python's crypt module."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        try:
            import crypt
        except ImportError:
            pytest.skip('no crypt module in this Python')
    inst = make_instance()
    db = inst.path('data/accounts.lmdb')
    if not db.exists():
        pytest.skip('this build stores no accounts yet')
    hashes = re.findall(rb'\$(?:y|6)\$[./A-Za-z0-9$]+', db.read_bytes())
    assert len(hashes) == 1, hashes
    stored = hashes[0].decode()
    assert crypt.crypt(inst.demo_password, stored) == stored
    assert crypt.crypt(inst.demo_password + 'x', stored) != stored


def _small_file_limit():
    """In the child: files may not grow past 1000 bytes, and passing the limit is an error (EFBIG), not a
    signal. main.cf fits, master.cf does not, so init fails half way."""
    import resource
    import signal
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))


@pytest.mark.parametrize('pre_existing', [False, True])
def test_failed_init_leaves_nothing(tmp_path, pre_existing):
    d = tmp_path / 'inst'
    if pre_existing:
        d.mkdir()
    r = subprocess.run([str(postern_bin()), 'init', str(d), '--dev'], preexec_fn=_small_file_limit,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode != 0
    assert 'master.cf' in r.stderr and 'nothing was created' in r.stderr, r.stderr
    assert 'password' not in r.stdout
    assert 'Sanitizer' not in r.stderr      # the cleanup path is leak-free under ASan too
    if pre_existing:
        assert list(d.iterdir()) == []
    else:
        assert not d.exists()
