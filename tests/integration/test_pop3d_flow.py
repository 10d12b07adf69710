"""pop3d flow control: a session must never stall with replies in its output buffer while it waits for the
client, nor lose or stop output when the client reads slowly. Raw sockets (plain and implicit TLS) so that the
client decides exactly how its bytes are cut and how fast it reads; instances come from test_pop3d (mail_owner
services) and test_sysusers (a system user behind the privilege-separated login and its TLS proxy; root only)."""
import os
import re
import socket
import ssl
import time

import pytest

from test_pop3d import deliver, inst  # noqa: F401 (inst is a fixture)
from test_sysusers import PASSWORD as SYS_PASSWORD, sysinst  # noqa: F401 (sysinst is a fixture)

# Short enough that a stall fails fast, long enough for a loaded machine: a reply is due at once either way.
REPLY_TIMEOUT = 20


def connect(inst, tls, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        # before connect(), so that the window the server sees is small from the start
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(REPLY_TIMEOUT)
    s.connect(("127.0.0.1", inst.tls_port if tls else inst.port))
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    return s


class Reader:
    """Reads replies off a socket, a little at a time when asked to."""

    def __init__(self, sock, chunk=65536):
        self.sock, self.chunk, self.data = sock, chunk, b""

    def line(self):
        while b"\r\n" not in self.data:
            self._more()
        line, self.data = self.data.split(b"\r\n", 1)
        return line

    def multiline(self):
        """The body of a multi-line reply, dot-unstuffed, CRLF line ends."""
        lines = []
        while True:
            line = self.line()
            if line == b".":
                return b"".join(l + b"\r\n" for l in lines)
            lines.append(line[1:] if line.startswith(b".") else line)

    def _more(self):
        try:
            d = self.sock.recv(self.chunk)
        except socket.timeout:
            pytest.fail("no reply within %d s; received so far: %r" % (REPLY_TIMEOUT, self.data[-300:]))
        assert d, "connection closed; received so far: %r" % self.data[-300:]
        self.data += d


def login(s, r, user=b"alice", password=b"secret pw"):
    assert r.line().startswith(b"+OK")
    s.sendall(b"USER %s\r\nPASS %s\r\n" % (user, password))
    assert r.line() == b"+OK"
    assert r.line().startswith(b"+OK maildrop has")


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_replies_flushed_while_next_command_is_incomplete(inst, tls):
    """A client that sent one command and the first part of the next one gets the first reply before it sends
    the rest (pop3d used to keep the reply buffered while it waited for the rest of the line)."""
    s = connect(inst, tls)
    r = Reader(s)
    login(s, r)
    s.sendall(b"NOOP\r\nNO")    # one write, one TLS record: both parts reach pop3d together
    assert r.line() == b"+OK"
    s.sendall(b"OP\r\nSTAT\r\nQU")
    assert r.line() == b"+OK"
    assert r.line() == b"+OK 0 0"
    s.sendall(b"IT\r\n")
    assert re.match(rb"\+OK .*signing off", r.line())
    s.close()


def fill_large(maildir, owner=None):
    """64 messages, 6 MiB in all: more output than the kernel buffers on both sides of a loopback connection
    hold (the server's send buffer grows to 4 MiB). Returns {number: wire bytes}."""
    bodies = {}
    for n in range(1, 65):
        lines = ["line %d of message %d %s" % (i, n, "x" * ((n * 13 + i) % 120)) for i in range(1200 + n)]
        if n % 5 == 0:
            lines.insert(3, ".a dot to stuff")
        body = "Subject: flow %d\nFrom: a@b\n\n%s\n" % (n, "\n".join(lines))
        bodies[n] = body.replace("\n", "\r\n").encode()
        name = deliver(maildir, body, n)
        if owner:
            os.chown(os.path.join(maildir, "new", name), owner.pw_uid, owner.pw_gid)
    assert sum(len(b) for b in bodies.values()) > 6 << 20
    return bodies


def retr_all_slowly(s, bodies, **login_args):
    """Every RETR sent in one go, replies read in small pieces through a tiny receive window, with pauses, so
    that pop3d's writes hit a full socket (EAGAIN, or SSL_ERROR_WANT_WRITE under TLS) and must resume where
    they stopped until every byte of every message has arrived."""
    r = Reader(s, chunk=16384)
    login(s, r, **login_args)
    s.sendall(b"".join(b"RETR %d\r\n" % n for n in bodies) + b"QUIT\r\n")
    time.sleep(1)               # pop3d fills every buffer on the way and waits for room
    for n in bodies:
        status = r.line()
        assert status == b"+OK %d octets" % len(bodies[n]), (n, status)
        assert r.multiline() == bodies[n], n
        if n % 16 == 0:
            time.sleep(0.3)     # and again, with more commands still to answer
    assert re.match(rb"\+OK .*signing off", r.line())
    s.close()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_pipelined_retrs_to_a_slow_reader(inst, tls):
    bodies = fill_large(inst.maildir)
    retr_all_slowly(connect(inst, tls, rcvbuf=4096), bodies)


def test_pipelined_retrs_to_a_slow_reader_through_the_login_proxy(sysinst):
    """The same for a system user over implicit TLS, where an unprivileged proxy process relays between the
    TLS connection and the session running as the user: neither direction may stall in the relay."""
    su = sysinst.sys
    md = os.path.join(su.pw_dir, "Maildir")
    for sub in ("", "tmp", "new", "cur"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
        os.chown(os.path.join(md, sub), su.pw_uid, su.pw_gid)
    bodies = fill_large(md, owner=su)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(REPLY_TIMEOUT)
    s.connect(("127.0.0.1", sysinst.port("pop3s")))
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    retr_all_slowly(ctx.wrap_socket(s), bodies, user=su.pw_name.encode(), password=SYS_PASSWORD.encode())
