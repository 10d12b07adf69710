"""POP3 interoperability with the clients people really run: fetchmail (keep mode with UIDL, and delete mode)
and getmail, over plain POP3 and over implicit TLS (certificate checking off: the instance's certificate is
self-signed), against a 1000-message mailbox of the demo account. Each client runs with its own configuration
in a temporary directory and delivers into files there; the test compares what arrived, message by message
(a content hash of the body), with what was in the Maildir, and what the Maildir holds afterwards. Also: failed
POP3 logins are throttled. Needs the Debian packages fetchmail and getmail6 (tests/deps); a client that is not
installed skips its tests."""
import hashlib
import os
import poplib
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import SERVICES, Instance, free_ports

import pytest

COUNT = 1000
IS_ROOT = os.geteuid() == 0
NOBODY = 65534


def demo_maildir(inst):
    return inst.path('mail', inst.domain, 'demo')


def body_hash(data):
    """Hash of the body (after the first empty line), line ends normalised: clients add headers (Received,
    Delivered-To, Return-Path) and may store LF or CRLF, but must not change a byte of the body."""
    data = data.replace(b'\r\n', b'\n')
    _, sep, body = data.partition(b'\n\n')
    assert sep, data[:200]
    return hashlib.sha256(body).hexdigest()


def message_id(data):
    m = re.search(rb'^X-Test-Seq: (\d+)$', data.replace(b'\r\n', b'\n'), re.M)
    assert m, data[:300]
    return int(m.group(1))


def fill(inst, count=COUNT):
    """count messages in the demo Maildir's new/, written as local delivers them (tmp/ then rename, S= and W=
    in the name, owned like the Maildir). Returns {seq: body hash}. Bodies differ in size and content, some
    have a line starting with a dot (byte-stuffing) and long lines."""
    md = demo_maildir(inst)
    owner = os.stat(md)
    expected = {}
    now = int(time.time())
    for n in range(count):
        lines = [f'line {i} of message {n} ' + 'x' * ((n * 7 + i) % 90) for i in range(n % 23 + 1)]
        if n % 10 == 0:
            lines.append('.a line starting with a dot')
            lines.append('.')
            lines.append('y' * 900)
        msg = (f'From: sender{n}@example.org\nTo: demo@{inst.domain}\nSubject: message {n}\n'
               f'Message-ID: <{n}.{now}@example.org>\nX-Test-Seq: {n}\n\n' + '\n'.join(lines) + '\n').encode()
        expected[n] = body_hash(msg)
        w = len(msg) + msg.count(b'\n')
        name = f'{now}.M{n:06d}P{os.getpid()}Q{n}.test,S={len(msg)},W={w}'
        tmp = os.path.join(md, 'tmp', name)
        with open(tmp, 'wb') as f:
            f.write(msg)
        os.chown(tmp, owner.st_uid, owner.st_gid)
        os.rename(tmp, os.path.join(md, 'new', name))
    return expected


def maildir_count(inst):
    md = demo_maildir(inst)
    return sum(len(os.listdir(os.path.join(md, d))) for d in ('new', 'cur'))


def received(outdir):
    """{seq: body hash} of the messages a client wrote into outdir (one file each, any depth)."""
    got = {}
    for root, _, files in os.walk(outdir):
        for name in files:
            with open(os.path.join(root, name), 'rb') as f:
                data = f.read()
            seq = message_id(data)
            assert seq not in got, f'message {seq} delivered twice'
            got[seq] = body_hash(data)
    return got


@pytest.fixture
def pop3_instance(postern_build):
    """A started instance whose demo mailbox pop3d will serve, and inst.work, a directory for the clients.
    pop3d never serves a mailbox as root, so a root run makes the instance for nobody (unless
    POSTERN_TEST_USER names the user). Both live in a world-searchable temporary directory of their own rather
    than under pytest's: pytest makes its base directory private again whenever any pytest session starts."""
    top = Path(tempfile.mkdtemp(prefix='postern-pop3c-'))
    os.chmod(top, 0o711)
    inst = Instance(top / 'postern', zip(SERVICES, free_ports(len(SERVICES))), 'example.test',
                    'mail.example.test')
    try:
        inst.init(*(('--user', 'nobody') if IS_ROOT and not os.environ.get('POSTERN_TEST_USER') else ()))
        inst.require('pop3', 'pop3s')
        inst.start()
        inst.work = top / 'client'
        inst.work.mkdir(mode=0o711)
        yield inst
    finally:
        inst.stop()
        shutil.rmtree(top, ignore_errors=True)


# ---------------------------------------------------------------- fetchmail

def run_fetchmail(inst, work, port, tls, keep):
    """One fetchmail run (not a daemon) with an rc file in work; each message goes through an MDA into its own
    file in work/out. Returns (exit status, output)."""
    if shutil.which('fetchmail') is None:
        pytest.skip('fetchmail is not installed (Debian package fetchmail)')
    out = work / 'out'
    out.mkdir(exist_ok=True)
    # plain means plain: an empty sslproto keeps fetchmail from upgrading with STLS
    tls_opts = 'ssl no sslcertck' if tls else "sslproto ''"
    mode = 'keep' if keep else 'fetchall no keep'
    rc = work / 'fetchmailrc'
    rc.write_text(
        'set no bouncemail\n'
        f'poll 127.0.0.1 service {port} protocol pop3 auth password timeout 60'
        f'{" uidl" if keep else ""}\n'
        f'  user "{inst.demo_user}" there with password "{inst.demo_password}" is "{pwd.getpwuid(os.geteuid()).pw_name}" here\n'
        f'  options {mode} {tls_opts}\n'
        f'  mda "cat > $(mktemp {out}/msg.XXXXXXXXXX)"\n')
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=str(work))
    r = subprocess.run(['fetchmail', '-f', str(rc), '-i', str(work / 'fetchids'), '--pidfile',
                        str(work / 'fetchmail.pid'), '--nosyslog', '-v'],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    return r.returncode, r.stdout


def test_fetchmail_keep_plain_then_uidl(pop3_instance):
    inst = pop3_instance
    tmp_path = inst.work
    expected = fill(inst)
    rc, out = run_fetchmail(inst, tmp_path, inst.port('pop3'), tls=False, keep=True)
    assert rc == 0, out
    assert 'POP3> STLS' not in out and 'POP3> PASS' in out, out[:3000]    # plain POP3 all the way
    assert received(tmp_path / 'out') == expected, out[-3000:]
    assert maildir_count(inst) == COUNT      # keep: nothing deleted

    # the second run knows every UIDL: nothing new (fetchmail exits 1, "no mail")
    shutil.rmtree(tmp_path / 'out')
    rc, out = run_fetchmail(inst, tmp_path, inst.port('pop3'), tls=False, keep=True)
    assert rc == 1, out
    assert received(tmp_path / 'out') == {}, out[-3000:]
    assert maildir_count(inst) == COUNT


def test_fetchmail_delete_pop3s(pop3_instance):
    inst = pop3_instance
    tmp_path = inst.work
    expected = fill(inst)
    rc, out = run_fetchmail(inst, tmp_path, inst.port('pop3s'), tls=True, keep=False)
    assert rc == 0, out
    assert 'POP3> STLS' not in out, out[:3000]     # implicit TLS: the port speaks nothing else
    assert received(tmp_path / 'out') == expected, out[-3000:]
    assert maildir_count(inst) == 0, out[-3000:]


# ---------------------------------------------------------------- getmail

# getmail delivers every message through a forked child and learns of its exit from a SIGCHLD handler that it
# installs only after fork() (getmail6 up to at least 6.18, Debian 12; upstream issues #52, #226, #245). A child
# that exits before the handler is in place is never noticed: getmail then waits out its whole socket timeout
# (180 s) with pop3d idle in the middle of the session, which under load made these tests fail now and then.
# The client is run with that wait replaced by a plain waitpid(); everything it says over POP3 is unchanged.
GETMAIL_CHILD_WAIT_FIX = """
import os, runpy, sys
from getmailcore.baseclasses import ForkingBase
if hasattr(ForkingBase, '_prepare_child') and hasattr(ForkingBase, '_wait_for_child'):
    ForkingBase._prepare_child = lambda self: None
    ForkingBase._wait_for_child = lambda self, pid: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
sys.argv[0] = sys.argv[1]
del sys.argv[1]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def getmail_command():
    """getmail's own interpreter (from its #! line) running getmail with the child-wait fix above."""
    path = shutil.which('getmail')
    if path is None:
        pytest.skip('getmail is not installed (Debian package getmail6)')
    with open(path, 'rb') as f:
        first = f.readline().decode(errors='replace')
    interpreter = first[2:].split() if first.startswith('#!') else []
    if not interpreter or 'python' not in interpreter[-1]:
        pytest.skip(f'getmail at {path} is not a Python script')
    return [*interpreter, '-c', GETMAIL_CHILD_WAIT_FIX, path]


def run_getmail(inst, work, port, tls, delete):
    out = work / 'Maildir'
    for d in ('cur', 'new', 'tmp'):
        (out / d).mkdir(parents=True, exist_ok=True)
    # getmail refuses to write mail as root: its Maildir destination switches to the user named here
    as_user = ''
    if IS_ROOT:
        as_user = 'user = nobody\n'
        for d in (out, *(out / x for x in ('cur', 'new', 'tmp'))):
            os.chown(d, NOBODY, NOBODY)
    rc = work / 'getmailrc'
    rc.write_text(
        '[retriever]\n'
        f'type = {"SimplePOP3SSLRetriever" if tls else "SimplePOP3Retriever"}\n'
        f'server = 127.0.0.1\nport = {port}\n'
        f'username = {inst.demo_user}\npassword = {inst.demo_password}\n'
        '\n[destination]\n'
        f'type = Maildir\npath = {out}/\n{as_user}'
        '\n[options]\n'
        f'delete = {"true" if delete else "false"}\n'
        'read_all = false\n'
        'delivered_to = false\nreceived = false\nverbose = 1\n'
        'message_log_syslog = false\n')
    r = subprocess.run([*getmail_command(), '--getmaildir', str(work), '--rcfile', str(rc)],
                       env=dict(os.environ, HOME=str(work)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=180)
    return r.returncode, r.stdout


def test_getmail_delete_plain(pop3_instance):
    inst = pop3_instance
    tmp_path = inst.work
    expected = fill(inst)
    rc, out = run_getmail(inst, tmp_path, inst.port('pop3'), tls=False, delete=True)
    assert rc == 0, out[-3000:]
    assert received(tmp_path / 'Maildir') == expected, out[-3000:]
    assert maildir_count(inst) == 0, out[-3000:]


def test_getmail_keep_pop3s_then_nothing_new(pop3_instance):
    inst = pop3_instance
    tmp_path = inst.work
    expected = fill(inst)
    rc, out = run_getmail(inst, tmp_path, inst.port('pop3s'), tls=True, delete=False)
    assert rc == 0, out[-3000:]
    assert received(tmp_path / 'Maildir') == expected, out[-3000:]
    assert maildir_count(inst) == COUNT
    # getmail remembers the UIDLs it has seen (its oldmail file): a second run retrieves nothing
    shutil.rmtree(tmp_path / 'Maildir')
    rc, out = run_getmail(inst, tmp_path, inst.port('pop3s'), tls=True, delete=False)
    assert rc == 0, out[-3000:]
    assert received(tmp_path / 'Maildir') == {}, out[-3000:]


# ---------------------------------------------------------------- throttling

def timed_failed_login(port, user):
    p = poplib.POP3('127.0.0.1', port, timeout=60)
    try:
        p.user(user)
        start = time.monotonic()
        with pytest.raises(poplib.error_proto):
            p.pass_('wrong password')
        return time.monotonic() - start
    finally:
        p.close()


def test_wrong_passwords_are_throttled(pop3_instance):
    inst = pop3_instance
    port = inst.port('pop3')
    times = [timed_failed_login(port, inst.demo_user) for _ in range(3)]
    # doubling delay per client and account: 0, 1, 2 s before the answer (a lower bound only: a slow machine
    # may take longer, never shorter)
    assert times[1] >= 0.9, times
    assert times[2] >= 1.8, times
    assert times[2] >= times[0] + 1.5, times
    # the right password still works afterwards (after its own throttle delay) and resets nothing it should not
    p = poplib.POP3('127.0.0.1', port, timeout=60)
    try:
        p.user(inst.demo_user)
        p.pass_(inst.demo_password)
        assert p.stat()[0] == 0
        p.quit()
    finally:
        p.close()
