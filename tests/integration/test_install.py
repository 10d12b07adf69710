"""make install / make uninstall and `postern init --system`: the file list of an install into DESTDIR, and (as
root) a whole installation into the real paths inside private namespaces, so the host is untouched: overlays
over /etc, /usr and /var, a private network with only loopback, a private PID namespace whose end kills
whatever is left."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SOURCE_ROOT, build_dir

DAEMONS = ['master', 'smtpd', 'qmgr', 'smtp', 'local', 'pop3d', 'imapd', 'auth']
SYSLINKS = ['usr/sbin/sendmail', 'usr/sbin/mailq', 'usr/sbin/newaliases', 'usr/bin/mailq', 'usr/bin/newaliases']


def make(*args, timeout=300):
    return subprocess.run(['make', '-s', '-C', str(SOURCE_ROOT), f'BUILD={build_dir()}', *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob('*') if not p.is_dir() or p.is_symlink())


def test_destdir_install_file_list_and_uninstall(tmp_path):
    dest = tmp_path / 'root'
    r = make('install', f'DESTDIR={dest}', 'PREFIX=/usr/local')
    assert r.returncode == 0, r.stdout + r.stderr
    files = set(tree(dest))
    want = {'usr/local/sbin/postern', 'usr/local/sbin/sendmail', 'usr/local/sbin/mailq', 'usr/local/sbin/newaliases',
            'usr/local/share/postern/main.cf', 'usr/local/share/postern/master.cf',
            'usr/local/share/man/man1/postern.1', 'usr/local/share/man/man5/postern.conf.5',
            'usr/local/share/man/man8/sendmail.8', 'lib/systemd/system/postern.service',
            *(f'usr/local/libexec/postern/{d}' for d in DAEMONS), *SYSLINKS}
    assert want <= files, sorted(want - files)
    # nothing for the host's configuration or spool: a package leaves that to `postern init --system`
    assert not any(f.startswith(('etc/', 'var/')) for f in files), files
    for link in SYSLINKS:
        assert os.readlink(dest / link) == '/usr/local/sbin/postern'
    assert os.readlink(dest / 'usr/local/sbin/sendmail') == 'postern'
    assert os.access(dest / 'usr/local/libexec/postern/master', os.X_OK)
    unit = (dest / 'lib/systemd/system/postern.service').read_text()
    assert 'ExecStartPre=/usr/local/sbin/postern init --system\n' in unit
    assert 'ExecStart=/usr/local/sbin/postern start --foreground -c /etc/postern\n' in unit
    assert '@PREFIX@' not in unit

    r = make('uninstall', f'DESTDIR={dest}', 'PREFIX=/usr/local')
    assert r.returncode == 0, r.stdout + r.stderr
    assert tree(dest) == []


def test_destdir_install_keeps_another_mail_systems_sendmail(tmp_path):
    dest = tmp_path / 'root'
    (dest / 'usr/sbin').mkdir(parents=True)
    (dest / 'usr/sbin/sendmail').write_text('#!/bin/sh\n')
    r = make('install', f'DESTDIR={dest}', 'PREFIX=/usr/local')
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'usr/sbin/sendmail belongs to another mail system' in r.stderr
    assert (dest / 'usr/sbin/sendmail').read_text() == '#!/bin/sh\n'
    r = make('uninstall', f'DESTDIR={dest}', 'PREFIX=/usr/local')
    assert r.returncode == 0, r.stdout + r.stderr
    assert tree(dest) == ['usr/sbin/sendmail']


# Runs as PID 1 of fresh mount, network and PID namespaces; every check is an assert, its failure the exit status.
SCENARIO = r'''
import imaplib, os, pwd, grp, smtplib, ssl, stat, subprocess, sys, time
from pathlib import Path
src, build, work = sys.argv[1:4]

def run(*cmd, ok=True, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120, **kw)
    print('$', ' '.join(cmd), '->', r.returncode, '\n' + r.stdout, flush=True)
    assert not ok or r.returncode == 0, f'{cmd} failed'
    return r

run('mount', '-t', 'tmpfs', 'tmpfs', work)
for d in ('etc', 'usr', 'var'):
    os.makedirs(f'{work}/{d}.u'); os.makedirs(f'{work}/{d}.w')
    run('mount', '-t', 'overlay', 'overlay', '-o', f'lowerdir=/{d},upperdir={work}/{d}.u,workdir={work}/{d}.w', f'/{d}')
run('ip', 'link', 'set', 'lo', 'up')
for f in ('/usr/sbin/sendmail', '/usr/sbin/mailq', '/usr/sbin/newaliases', '/usr/bin/mailq', '/usr/bin/newaliases'):
    if os.path.lexists(f):
        os.unlink(f)   # another mail system's, removed as its package would be
assert not os.path.exists('/etc/postern') and not os.path.exists('/var/spool/postern')
home = '/var/lib/install-test-home'   # in the /var overlay; the pytest directory above work is private to root
os.makedirs(home, mode=0o755)
run('useradd', '-m', '-d', f'{home}/alice', '-s', '/bin/sh', 'alice')
run('chpasswd', input='alice:secret-alice\n')

ports = dict(smtp=2525, submission=2587, smtps=2465, pop3=1110, pop3s=1995, imap=1143, imaps=1993)
flags = '--hostname mail.example.test ' + ' '.join(f'--port {k}={v}' for k, v in ports.items())
r = run('make', '-s', '-C', src, f'BUILD={build}', 'PREFIX=/usr/local', 'install', f'INIT_FLAGS={flags}')
assert 'created /etc/postern/main.cf' in r.stdout

pw = pwd.getpwnam('postern')
def owner_mode(p):
    st = os.stat(p)
    return pwd.getpwuid(st.st_uid).pw_name, stat.S_IMODE(st.st_mode)
assert owner_mode('/etc/postern') == ('root', 0o755)
assert owner_mode('/etc/postern/main.cf') == ('root', 0o644)
assert owner_mode('/etc/postern/tls/key.pem') == ('root', 0o640)
assert os.stat('/etc/postern/tls/key.pem').st_gid == pw.pw_gid
assert os.path.exists('/etc/postern/aliases.lmdb')
for d, m in (('queue', 0o700), ('queue/incoming', 0o700), ('private', 0o700), ('public', 0o711),
             ('data', 0o700), ('mail', 0o700), ('log', 0o750)):
    assert owner_mode(f'/var/spool/postern/{d}') == ('postern', m), d
assert owner_mode('/var/spool/postern/pid') == ('root', 0o755)
assert owner_mode('/var/spool/postern/data/accounts.lmdb')[0] == 'postern'
main_cf = Path('/etc/postern/main.cf').read_text()
assert 'instance_directory = /var/spool/postern\n' in main_cf
assert 'daemon_directory = /usr/local/libexec/postern\n' in main_cf
assert 'auth_system_users = yes\n' in main_cf
assert any(l.split()[:5] == ['imap', 'inet', '*:1143', 'starttls', 'root']
           for l in Path('/etc/postern/master.cf').read_text().splitlines()), 'imap must run as root'
assert os.readlink('/usr/sbin/sendmail') == '/usr/local/sbin/postern'
assert os.readlink('/usr/bin/newaliases') == '/usr/local/sbin/postern'

# a second run completes nothing and rewrites nothing, even with other flags
Path('/etc/postern/main.cf').write_text(main_cf + '# the administrator was here\n')
r = run('/usr/local/sbin/postern', 'init', '--system', '--hostname', 'other.example.test')
assert 'nothing was changed' in r.stdout
assert Path('/etc/postern/main.cf').read_text().endswith('# the administrator was here\n')
# a missing piece is put back
os.rmdir('/var/spool/postern/queue/hold')
r = run('/usr/local/sbin/postern', 'init', '--system')
assert r.stdout.count('created') == 1 and 'created /var/spool/postern/queue/hold' in r.stdout

run('/usr/local/sbin/postern', 'check')
run('/usr/local/sbin/postern', 'user', 'add', 'bob@example.test', '--password-stdin', input='secret-bob\n')
run('/usr/local/sbin/postern', 'start')
try:
    run('/usr/local/sbin/postern', 'status')
    with smtplib.SMTP('127.0.0.1', ports['smtp'], timeout=30) as s:
        s.sendmail('someone@remote.test', ['alice@mail.example.test', 'bob@example.test'],
                   'From: someone@remote.test\r\nSubject: installed\r\n\r\nhello from the install test\r\n')
    # sendmail through the /usr/sbin link
    run('/usr/sbin/sendmail', 'alice@mail.example.test',
        input='Subject: via sendmail\n\nlocal submission\n')
    new = Path(home, 'alice', 'Maildir', 'new')
    deadline = time.time() + 30
    while time.time() < deadline and len(list(new.glob('*')) if new.is_dir() else []) < 2:
        time.sleep(0.2)
    got = sorted(p.read_text() for p in new.glob('*'))
    assert len(got) == 2, got
    assert any('Subject: installed' in g for g in got) and any('Subject: via sendmail' in g for g in got)
    assert all(pwd.getpwuid(p.stat().st_uid).pw_name == 'alice' for p in new.glob('*'))

    # the system user reads ~/Maildir with her login password, the virtual account its own mailbox
    for user, password, count in (('alice', 'secret-alice', 2), ('bob@example.test', 'secret-bob', 1)):
        m = imaplib.IMAP4('127.0.0.1', ports['imap'], timeout=30)
        ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
        m.starttls(ssl_context=ctx)
        m.login(user, password)
        deadline = time.time() + 30
        while True:
            typ, data = m.select('INBOX')
            if int(data[0]) >= count or time.time() > deadline:
                break
            time.sleep(0.2)
        assert typ == 'OK' and int(data[0]) == count, (user, data)
        typ, data = m.fetch('1:*', '(BODY[])')
        bodies = b''.join(part[1] for part in data if isinstance(part, tuple))
        assert b'hello from the install test' in bodies, (user, bodies)
        m.logout()
finally:
    run('/usr/local/sbin/postern', 'stop', ok=False)
    log = Path('/var/spool/postern/log/postern.log')
    print('--- postern.log\n' + ''.join(log.read_text(errors='replace').splitlines(True)[-80:]) if log.exists() else
          'no postern.log', flush=True)
r = run('/usr/local/sbin/postern', 'status', ok=False)
assert r.returncode == 3

run('make', '-s', '-C', src, f'BUILD={build}', 'PREFIX=/usr/local', 'uninstall')
for gone in ('/usr/local/sbin/postern', '/usr/local/libexec/postern', '/usr/sbin/sendmail', '/usr/bin/mailq',
             '/lib/systemd/system/postern.service'):
    assert not os.path.lexists(gone), gone
for kept in ('/etc/postern/main.cf', '/var/spool/postern/queue', '/var/spool/postern/data/accounts.lmdb'):
    assert os.path.exists(kept), kept
print('SCENARIO OK')
'''


def test_system_install_end_to_end(tmp_path):
    if os.geteuid() != 0:
        pytest.skip('needs root: installs into the real paths inside private mount, network and PID namespaces')
    if not shutil.which('unshare') or not shutil.which('useradd'):
        pytest.skip('unshare (util-linux) and useradd are needed')
    probe = subprocess.run(['unshare', '-m', '-n', '-p', '--fork', 'true'], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f'namespaces are not available here: {probe.stderr.decode(errors="replace").strip()}')
    work = tmp_path / 'ns'
    work.mkdir()
    script = tmp_path / 'scenario.py'
    script.write_text(SCENARIO)
    # /proc of the new PID namespace, so `postern stop` and the daemons see only their own processes
    r = subprocess.run(['unshare', '-m', '-n', '-p', '--fork', '--mount-proc', '--propagation', 'private',
                        sys.executable, str(script), str(SOURCE_ROOT), str(build_dir()), str(work)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=240)
    assert r.returncode == 0 and 'SCENARIO OK' in r.stdout, r.stdout[-12000:]
    # the host is untouched
    assert not os.path.exists('/etc/postern/main.cf') or 'mail.example.test' not in Path('/etc/postern/main.cf').read_text()
    assert subprocess.run(['getent', 'passwd', 'alice'], capture_output=True).returncode != 0


def test_init_system_refusals(tmp_path):
    postern = str(build_dir() / 'bin' / 'postern')
    r = subprocess.run([postern, 'init', '--system', str(tmp_path / 'x')], capture_output=True, text=True)
    assert r.returncode == 64 and '--system takes no DIR' in r.stderr
    assert not (tmp_path / 'x').exists()
    if os.geteuid() == 0 and shutil.which('runuser'):
        r = subprocess.run(['runuser', '-u', 'nobody', '--', postern, 'init', '--system'], capture_output=True,
                           text=True)
        assert r.returncode == 64 and 'must be run as root' in r.stderr
