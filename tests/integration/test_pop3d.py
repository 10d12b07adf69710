"""pop3d through real clients (poplib, curl) under master: listing, retrieval, TOP, pipelining, deletion
semantics, IN-USE, bad commands, wrong passwords, STLS and implicit TLS, the switch to the mailbox owner.
Logins use the temporary pop3d_test_passwd_file until the auth daemon is on main. Each test gets its own
instance directory (world-searchable, since the daemons run as mail_owner) and free loopback ports."""
import os
import poplib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

BUILD = os.path.abspath(os.environ.get("POSTERN_BUILD") or
                        os.path.join(os.path.dirname(__file__), "..", "..", "build"))
IS_ROOT = os.geteuid() == 0
NOBODY = 65534


def free_ports(n):
    held, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in held:
            s.close()
    return ports


def pids_of(path):
    """Processes whose command line names the instance directory (master gives every child -c DIR)."""
    pat = re.compile(re.escape(os.fsencode(str(path))) + rb"(?=/|\0|$)")
    found = []
    for e in os.listdir("/proc"):
        if not e.isdigit() or int(e) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % e, "rb") as f:
                cmd = f.read()
            with open("/proc/%s/stat" % e) as f:
                if f.read().split(") ", 1)[1][:1] == "Z":
                    continue
        except (OSError, IndexError):
            continue
        if pat.search(cmd):
            found.append(int(e))
    return found


def deliver(maildir, body, n=0):
    """A Maildir delivery as local does it: LF line ends, S= and W= in the name, tmp/ then new/."""
    data = body.encode() if isinstance(body, str) else body
    w = len(data) + data.count(b"\n") - data.count(b"\r\n")
    name = "%d.M%06dP%dQ%d.test,S=%d,W=%d" % (time.time(), n % 1000000, os.getpid(), n, len(data), w)
    tmp = os.path.join(maildir, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(maildir, "new", name))
    return name


def make_maildir(path):
    for sub in ("", "tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
        if IS_ROOT:
            os.chown(os.path.join(path, sub), NOBODY, NOBODY)


class Pop3Instance:
    def __init__(self, auth=False):
        self.top = tempfile.mkdtemp(prefix="postern-pop3d-")
        os.chmod(self.top, 0o755)
        self.dir = os.path.join(self.top, "inst")
        base = self.dir
        for sub in ("etc/tls", "bin", "log", "pid", "queue", "private", "mail", "data"):
            os.makedirs(os.path.join(base, sub))
            os.chmod(os.path.join(base, sub), 0o700 if sub == "private" else 0o755)
        if IS_ROOT:
            for sub in ("private", "queue", "mail", "data"):
                os.chown(os.path.join(base, sub), NOBODY, NOBODY)
        os.chmod(base, 0o755)
        for prog in ("master", "pop3d", "auth"):
            os.symlink(os.path.join(BUILD, "bin", prog), os.path.join(base, "bin", prog))
        self.maildir = os.path.join(base, "mail", "alice")
        make_maildir(self.maildir)
        with open(os.path.join(base, "etc", "passwd"), "w") as f:
            f.write("# test accounts\nalice:secret pw:alice\nbob:bobpw:bob\n")
        os.chmod(os.path.join(base, "etc", "passwd"), 0o644)
        cert = os.path.join(base, "etc", "tls", "cert.pem")
        key = os.path.join(base, "etc", "tls", "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
        with open(os.path.join(base, "etc", "main.cf"), "w") as f:
            f.write("daemon_directory = %s/bin\n" % base)
            f.write("mail_owner = %s\n" % ("nobody" if IS_ROOT else "root"))
            f.write("log_destination = %s/log/postern.log\n" % base)
            f.write("myhostname = pop.test\n")
            if not auth:
                f.write("pop3d_test_passwd_file = $config_directory/passwd\n")
            f.write("pop3d_apop = yes\n")
        self.port, self.tls_port, self.root_port = free_ports(3)
        with open(os.path.join(base, "etc", "master.cf"), "w") as f:
            f.write("pop3  inet 127.0.0.1:%d starttls - - 10 100 60s pop3d\n" % self.port)
            f.write("pop3s inet 127.0.0.1:%d implicit - - 10 100 60s pop3d\n" % self.tls_port)
            if auth:
                f.write("auth  unix auth - - - 1 0 0 auth\n")
            if IS_ROOT:   # a service that stays root until login, then becomes the mailbox owner
                f.write("pop3r inet 127.0.0.1:%d starttls root - 10 100 60s pop3d\n" % self.root_port)
        os.makedirs(os.path.join(base, "asan"))
        os.chmod(os.path.join(base, "asan"), 0o1777)   # sanitizer reports of daemons running as mail_owner
        self.asan_log = os.path.join(base, "asan", "report")
        if auth:
            for addr, pw in (("alice@example.test", "secret pw"), ("bob@example.test", "bobpw")):
                r = subprocess.run([os.path.join(BUILD, "bin", "postern"), "user", "-c", base, "add", addr,
                                    "--password-stdin"], input=pw + "\n", capture_output=True, text=True, timeout=60)
                assert r.returncode == 0, r.stderr
            if IS_ROOT:
                for f in os.listdir(os.path.join(base, "data")):
                    os.chown(os.path.join(base, "data", f), NOBODY, NOBODY)
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":log_path=" + self.asan_log
        r = subprocess.run([os.path.join(BUILD, "bin", "postern"), "start", "-c", base], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, "start failed: %s %s %s" % (r.stdout, r.stderr, self.log())
        deadline = time.time() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.settimeout(5)
                    if s.recv(3) == b"+OK":
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("pop3d did not answer: %s" % self.log())
            time.sleep(0.05)

    def client(self, user="alice", password="secret pw", port=None):
        """A logged-in client; waits while a session that just ended still holds the mailbox ([IN-USE])."""
        deadline = time.time() + 10
        while True:
            p = poplib.POP3("127.0.0.1", port or self.port, timeout=30)
            if not user:
                return p
            p.user(user)
            try:
                p.pass_(password)
                return p
            except poplib.error_proto as e:
                p.close()
                if b"[IN-USE]" not in e.args[0] or time.time() > deadline:
                    raise
                time.sleep(0.1)

    def log(self):
        try:
            with open(os.path.join(self.dir, "log", "postern.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        subprocess.run([os.path.join(BUILD, "bin", "postern"), "stop", "-c", self.dir], capture_output=True,
                       timeout=60)
        for pid in pids_of(self.dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reports = os.listdir(os.path.join(self.dir, "asan"))
        text = ""
        for f in reports:
            with open(os.path.join(self.dir, "asan", f), errors="replace") as fh:
                text += fh.read()
        shutil.rmtree(self.top, ignore_errors=True)
        assert not reports, text


@pytest.fixture
def inst():
    if not os.access(os.path.join(BUILD, "bin", "pop3d"), os.X_OK):
        pytest.skip("pop3d not built")
    i = Pop3Instance()
    yield i
    i.stop()


@pytest.fixture
def ainst():
    """An instance whose logins go through the auth daemon and its account database."""
    if not os.access(os.path.join(BUILD, "bin", "auth"), os.X_OK):
        pytest.skip("auth not built")
    i = Pop3Instance(auth=True)
    yield i
    i.stop()


def raw(inst, lines, port=None, expect_close=True):
    """Send raw bytes at once (pipelined) and read until the server closes."""
    s = socket.create_connection(("127.0.0.1", port or inst.port), timeout=30)
    s.sendall(lines)
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
    s.close()
    return out


def test_1000_messages_list_uidl_retr(inst):
    bodies = {}
    for n in range(1000):
        body = "Subject: m%d\nFrom: a@b\n\nline one of %d\n.starts with a dot\n" % (n, n)
        bodies[n + 1] = body
        deliver(inst.maildir, body, n)
    p = inst.client()
    count, size = p.stat()
    assert count == 1000
    resp, listing, _ = p.list()
    assert len(listing) == 1000
    total = 0
    for line in listing:
        num, octets = line.split()
        wire = bodies[int(num)].replace("\n", "\r\n").encode()
        assert int(octets) == len(wire)
        total += int(octets)
    assert total == size
    resp, uidls, _ = p.uidl()
    ids = [u.split()[1] for u in uidls]
    assert len(set(ids)) == 1000
    uv = {i.split(b"-")[0] for i in ids}
    assert len(uv) == 1
    # UIDs in arrival order
    uids = [int(i.split(b"-")[1]) for i in ids]
    assert uids == sorted(uids)
    for n in (1, 500, 1000):
        resp, lines, octets = p.retr(n)
        assert resp.startswith(b"+OK")
        assert b"\r\n".join(lines) + b"\r\n" == bodies[n].replace("\n", "\r\n").encode()
        assert lines[-1] == b".starts with a dot"   # poplib removed the stuffing dot
    assert p.uidl(7).split()[2] == ids[6]
    p.quit()
    # stable across sessions
    p = inst.client()
    assert [u.split()[1] for u in p.uidl()[1]] == ids
    p.quit()


def test_top_zero_and_n(inst):
    deliver(inst.maildir, "Subject: t\nX: y\n\nb1\nb2\nb3\n")
    p = inst.client()
    resp, lines, _ = p.top(1, 0)
    assert lines == [b"Subject: t", b"X: y", b""]
    resp, lines, _ = p.top(1, 2)
    assert lines == [b"Subject: t", b"X: y", b"", b"b1", b"b2"]
    resp, lines, _ = p.top(1, 100)
    assert lines == [b"Subject: t", b"X: y", b"", b"b1", b"b2", b"b3"]
    p.quit()


def test_crlf_storage_and_foreign_files(inst):
    """A file another tool put into cur/ with CRLF line ends and no S=/W=: sizes are still wire octets."""
    body = b"Subject: crlf\r\n\r\n.line\r\nbare lf\nend\r\n"
    with open(os.path.join(inst.maildir, "cur", "1600000000.other.host:2,S"), "wb") as f:
        f.write(body)
    p = inst.client()
    assert p.stat() == (1, len(body) + 1)
    resp, lines, octets = p.retr(1)
    assert resp == b"+OK %d octets" % (len(body) + 1)
    assert lines == [b"Subject: crlf", b"", b".line", b"bare lf", b"end"]
    p.quit()
    assert os.listdir(os.path.join(inst.maildir, "cur")) == ["1600000000.other.host,U=1:2,S"]


def test_new_mail_during_session(inst):
    deliver(inst.maildir, "Subject: 1\n\n1\n", 1)
    p = inst.client()
    deliver(inst.maildir, "Subject: 2\n\n2\n", 2)
    assert p.stat()[0] == 1          # the maildrop is fixed at login (RFC 1939)
    p.dele(1)
    p.quit()
    p = inst.client()
    assert p.stat()[0] == 1
    assert p.uidl(1).split()[2].endswith(b"-2")
    p.quit()


def test_pipelined_commands(inst):
    deliver(inst.maildir, "Subject: a\n\nA\n", 1)
    deliver(inst.maildir, "Subject: b\n\nB\n", 2)
    out = raw(inst, b"USER alice\r\nPASS secret pw\r\nSTAT\r\nLIST\r\nRETR 2\r\nNOOP\r\nQUIT\r\n")
    lines = out.split(b"\r\n")
    oks = [l for l in lines if l.startswith(b"+OK") or l.startswith(b"-ERR")]
    assert len(oks) == 8, out
    assert all(l.startswith(b"+OK") for l in oks), out
    assert oks[3] == b"+OK 2 34"
    assert b"+OK 17 octets\r\nSubject: b\r\n\r\nB\r\n.\r\n" in out
    assert lines[-2].startswith(b"+OK") and b"signing off" in lines[-2]


def test_disconnect_before_quit_deletes_nothing(inst):
    for n in range(3):
        deliver(inst.maildir, "Subject: %d\n\nx\n" % n, n)
    s = socket.create_connection(("127.0.0.1", inst.port), timeout=30)
    s.sendall(b"USER alice\r\nPASS secret pw\r\nDELE 1\r\nDELE 2\r\n")
    buf = b""
    while buf.count(b"\r\n") < 5:
        buf += s.recv(4096)
    assert b"deleted" in buf
    s.close()
    time.sleep(0.3)
    p = inst.client()
    assert p.stat()[0] == 3
    # RSET undoes, QUIT commits
    p.dele(1)
    p.rset()
    p.dele(3)
    assert p.stat()[0] == 2
    with pytest.raises(poplib.error_proto):
        p.retr(3)
    p.quit()
    p = inst.client()
    assert p.stat()[0] == 2
    assert len(os.listdir(os.path.join(inst.maildir, "cur"))) == 2
    p.quit()


def test_in_use(inst):
    p = inst.client()
    q = poplib.POP3("127.0.0.1", inst.port, timeout=30)
    q.user("alice")
    with pytest.raises(poplib.error_proto) as e:
        q.pass_("secret pw")
    assert b"[IN-USE]" in e.value.args[0]
    q.quit()
    p.quit()
    q = inst.client()
    q.quit()


def test_bad_commands_continue(inst):
    deliver(inst.maildir, "Subject: a\n\nA\n")
    out = raw(inst, b"FOO\r\nSTAT\r\nUSER\r\nLIST 1\r\nUSER alice\r\nPASS secret pw\r\nRETR 0\r\nRETR 2\r\n"
                    b"RETR x\r\nTOP 1\r\nLIST 1 2\r\nUSER bob\r\n" + b"X" * 2000 + b"\r\nSTAT\r\nQUIT\r\n")
    lines = [l for l in out.split(b"\r\n") if l]
    assert lines[0].startswith(b"+OK")
    replies = lines[1:]
    want = [b"-ERR", b"-ERR", b"-ERR", b"-ERR", b"+OK", b"+OK", b"-ERR", b"-ERR", b"-ERR", b"-ERR", b"-ERR",
            b"-ERR", b"-ERR", b"+OK 1 ", b"+OK"]
    assert len(replies) == len(want), replies
    for r, w in zip(replies, want):
        assert r.startswith(w), (r, w)


def test_too_many_bad_commands_hang_up(inst):
    out = raw(inst, b"BAD\r\n" * 30)
    assert out.count(b"-ERR") == 21
    assert b"too many bad commands" in out


def test_wrong_password(inst):
    p = poplib.POP3("127.0.0.1", inst.port, timeout=30)
    p.user("alice")
    with pytest.raises(poplib.error_proto) as e:
        p.pass_("nope")
    assert e.value.args[0].startswith(b"-ERR [AUTH]")
    p.user("nobody")
    with pytest.raises(poplib.error_proto):
        p.pass_("secret pw")
    p.user("alice")
    assert p.pass_("secret pw").startswith(b"+OK")
    p.quit()


def test_capa_and_auth(inst):
    p = poplib.POP3("127.0.0.1", inst.port, timeout=30)
    caps = p.capa()
    for c in ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "STLS", "IMPLEMENTATION"):
        assert c in caps
    assert caps["SASL"] == ["PLAIN", "LOGIN"]
    import base64
    resp = p._shortcmd("AUTH PLAIN " + base64.b64encode(b"\0alice\0secret pw").decode())
    assert resp.startswith(b"+OK")
    assert "STLS" not in p.capa()
    p.quit()
    # LOGIN with challenges, and a wrong password over AUTH
    s = socket.create_connection(("127.0.0.1", inst.port), timeout=30)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"AUTH LOGIN\r\n")
    assert f.readline() == b"+ VXNlcm5hbWU6\r\n"
    s.sendall(base64.b64encode(b"alice") + b"\r\n")
    assert f.readline() == b"+ UGFzc3dvcmQ6\r\n"
    s.sendall(base64.b64encode(b"wrong") + b"\r\n")
    assert f.readline().startswith(b"-ERR [AUTH]")
    s.sendall(b"AUTH PLAIN\r\n")
    assert f.readline() == b"+ \r\n"
    s.sendall(b"*\r\n")
    assert f.readline().startswith(b"-ERR")
    s.sendall(b"QUIT\r\n")
    assert f.readline().startswith(b"+OK")
    s.close()


def test_apop(inst):
    import hashlib
    p = poplib.POP3("127.0.0.1", inst.port, timeout=30)
    assert p.timestamp.search(p.welcome)
    assert p.apop("bob", "bobpw").startswith(b"+OK")
    p.quit()
    p = poplib.POP3("127.0.0.1", inst.port, timeout=30)
    with pytest.raises(poplib.error_proto):
        p.apop("bob", "wrong")
    p.quit()


def test_stls_and_implicit_tls(inst):
    deliver(inst.maildir, "Subject: tls\n\nsecret body\n")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    p = poplib.POP3("127.0.0.1", inst.port, timeout=30)
    p.stls(ctx)
    caps = p.capa()
    assert "USER" in caps and "STLS" not in caps
    p.user("alice")
    p.pass_("secret pw")
    assert p.retr(1)[1][-1] == b"secret body"
    p.quit()
    p = poplib.POP3_SSL("127.0.0.1", inst.tls_port, context=ctx, timeout=30)
    assert "STLS" not in p.capa()
    p.user("alice")
    p.pass_("secret pw")
    assert p.stat()[0] == 1
    p.quit()


def test_stls_injection_refused(inst):
    out = raw(inst, b"STLS\r\nUSER alice\r\n")
    assert out.count(b"\r\n") == 2   # greeting and +OK; the injected command is never answered


@pytest.mark.skipif(not IS_ROOT, reason="needs root to switch users")
def test_switch_to_mailbox_owner(inst):
    """A service left root by master.cf switches to the owner the login names before it touches the mailbox,
    and that process serves nobody else afterwards."""
    md = os.path.join(inst.dir, "mail", "owned")
    make_maildir(md)
    with open(os.path.join(inst.dir, "etc", "passwd"), "a") as f:
        f.write("owned:pw:owned:%d:%d\n" % (NOBODY, NOBODY))
    deliver(md, "Subject: o\n\nx\n")
    p = inst.client("owned", "pw", port=inst.root_port)
    assert p.stat()[0] == 1
    p.quit()
    for name in ("postern-index.lmdb", "postern-uidlist", "postern-pop3.lock"):
        assert os.stat(os.path.join(md, name)).st_uid == NOBODY, name
    # the mail_owner services run as nobody already
    p = inst.client()
    p.quit()


def test_curl(inst):
    if not shutil.which("curl"):
        pytest.skip("curl not installed")
    deliver(inst.maildir, "Subject: c\n\nvia curl\n", 1)
    deliver(inst.maildir, "Subject: d\n\nsecond\n", 2)
    url = "pop3://127.0.0.1:%d/" % inst.port
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "-u", "alice:secret pw", url], capture_output=True, check=True)
    assert r.stdout.split(b"\r\n")[:2] == [b"1 24", b"2 22"]
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "-u", "alice:secret pw", url + "2"], capture_output=True,
                       check=True)
    assert r.stdout == b"Subject: d\r\n\r\nsecond\r\n"
    r = subprocess.run(["curl", "-sS", "-k", "--max-time", "20", "-u", "alice:secret pw",
                        "pop3s://127.0.0.1:%d/1" % inst.tls_port], capture_output=True, check=True)
    assert r.stdout == b"Subject: c\r\n\r\nvia curl\r\n"
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "-u", "alice:wrong", url], capture_output=True)
    assert r.returncode != 0


def test_login_through_auth_daemon(ainst):
    md = os.path.join(ainst.dir, "mail", "example.test", "alice")
    p = ainst.client("alice@example.test", "secret pw")
    assert p.stat()[0] == 0            # the Maildir is created at the first login
    p.quit()
    deliver(md, "Subject: via auth\n\nhello\n")
    p = ainst.client("alice@example.test", "secret pw")
    assert p.retr(1)[1][-1] == b"hello"
    p.quit()
    p = poplib.POP3("127.0.0.1", ainst.port, timeout=60)
    p.user("alice@example.test")
    with pytest.raises(poplib.error_proto) as e:
        p.pass_("wrong")
    assert e.value.args[0].startswith(b"-ERR [AUTH]")
    p.quit()
    import base64
    p = poplib.POP3("127.0.0.1", ainst.port, timeout=60)
    resp = p._shortcmd("AUTH PLAIN " + base64.b64encode(b"\0bob@example.test\0bobpw").decode())
    assert resp.startswith(b"+OK")
    p.quit()


def test_stop_does_not_wait_for_an_idle_client(inst):
    """`postern stop` with a logged-in client idle between commands returns at once (not after
    master_stop_timeout); the client is told why, and its DELE is not applied (no UPDATE state)."""
    deliver(inst.maildir, "Subject: kept\n\nbody\n")
    p = inst.client()
    assert p.stat()[0] == 1
    p.dele(1)
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(BUILD, "bin", "postern"), "stop", "-c", inst.dir], capture_output=True,
                       timeout=60)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert took < 2.5, "postern stop took %.1fs with an idle POP3 client" % took
    assert p.sock.recv(1024).startswith(b"-ERR Server shutting down")
    p.close()
    assert len(os.listdir(os.path.join(inst.maildir, "new")) + os.listdir(os.path.join(inst.maildir, "cur"))) == 1
