"""imapd for synchronising clients: IDLE (RFC 2177) pushed by inotify, CONDSTORE/QRESYNC (RFC 7162),
COMPRESS=DEFLATE (RFC 4978) and QUOTA (RFC 9208), through imaplib and a small raw-socket client (imaplib has no
IDLE and no COMPRESS) on the instance of test_imapd.py (master, imapd, auth, one account).
"""
import imaplib
import re
import shutil
import socket
import ssl
import tempfile
import time
import zlib
from pathlib import Path

import pytest

from test_imapd import ImapInstance, build_dir, pids_of
from test_imapd_selected import deliver, maildir

USER, PASS = 'fred@example.test', 'se cret'
MSG = b'From: a@example.org\r\nTo: fred@example.test\r\nSubject: %d\r\n\r\nbody %d\r\n'


def make_inst(extra=''):
    if not (build_dir() / 'bin' / 'imapd').exists():
        pytest.skip('imapd not built')
    top = Path(tempfile.mkdtemp(prefix='postern-imapsync-'))
    top.chmod(0o755)
    i = ImapInstance(top / 'inst')
    with open(i.dir / 'etc' / 'main.cf', 'a') as f:
        f.write(extra)
    i.add_user(USER, PASS)
    i.start()
    i.top = top
    return i


def drop_inst(i):
    i.cleanup()
    left = pids_of(i.dir)
    shutil.rmtree(i.top, ignore_errors=True)
    assert left == [], 'processes left behind'


@pytest.fixture
def inst():
    i = make_inst()
    yield i
    drop_inst(i)


@pytest.fixture
def inst_short():
    """imapd_timeout of 3 s stands for RFC 3501's 30 minutes."""
    i = make_inst('imapd_timeout = 3s\n')
    yield i
    drop_inst(i)


class Raw:
    """A line-level IMAP client: sends commands and reads responses with timeouts, for IDLE and COMPRESS."""

    def __init__(self, port, timeout=10, tls=False):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.sock = ctx.wrap_socket(self.sock)
        self.buf = b''
        self.n = 0
        self.inflate = self.deflate = None
        assert self.line().startswith(b'* OK')

    def send(self, data):
        if self.deflate:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError('connection closed')
        if self.inflate:
            chunk = self.inflate.decompress(chunk)
        self.buf += chunk

    def line(self, timeout=10):
        """One response line (without CRLF); raises socket.timeout when none comes in time."""
        deadline = time.monotonic() + timeout
        while b'\r\n' not in self.buf:
            self._fill(max(0.01, deadline - time.monotonic()))
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def cmd(self, text, timeout=10):
        """Send a command; returns (untagged lines, tagged line)."""
        self.n += 1
        tag = b'r%d' % self.n
        self.send(tag + b' ' + text.encode() + b'\r\n')
        untagged = []
        while True:
            ln = self.line(timeout)
            if ln.startswith(tag + b' '):
                return untagged, ln
            untagged.append(ln)

    def login(self):
        _, t = self.cmd(f'LOGIN "{USER}" "{PASS}"')
        assert b' OK' in t, t

    def wait_for(self, pattern, timeout=1.0):
        """Untagged lines until one matches pattern, within timeout seconds (the IDLE push bound)."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f'no {pattern!r} within {timeout} s; got {seen}')
            try:
                ln = self.line(left)
            except socket.timeout:
                continue
            seen.append(ln)
            if re.search(pattern, ln):
                return seen

    def compress(self):
        _, t = self.cmd('COMPRESS DEFLATE')
        assert t.endswith(b'OK DEFLATE active') and self.buf == b'', t
        self.inflate = zlib.decompressobj(-15)
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)

    def close(self):
        self.sock.close()


def client(inst):
    m = imaplib.IMAP4('127.0.0.1', inst.imap, timeout=20)
    m.login(USER, PASS)
    return m


# ---- IDLE ----

def test_idle_pushes_other_sessions_changes(inst):
    other = client(inst)
    other.append('INBOX', None, None, MSG % (1, 1))
    r = Raw(inst.imap)
    r.login()
    r.cmd('SELECT INBOX')
    r.n += 1
    r.send(b'i1 IDLE\r\n')
    assert r.line() == b'+ idling'
    # another session's APPEND
    t0 = time.monotonic()
    other.append('INBOX', None, None, MSG % (2, 2))
    r.wait_for(rb'^\* 2 EXISTS$')
    # another session's STORE
    other.select('INBOX')
    other.store('1', '+FLAGS', r'(\Flagged)')
    r.wait_for(rb'^\* 1 FETCH \(FLAGS \(\\Flagged( \\Recent)?\)\)$')
    # a local delivery straight into new/
    deliver(inst, '1800000000.M9P9.test', b'Subject: delivered\n\nhello\n')
    r.wait_for(rb'^\* 3 EXISTS$')
    # another session's EXPUNGE
    other.store('1', '+FLAGS', r'(\Deleted)')
    other.expunge()
    r.wait_for(rb'^\* 1 EXPUNGE$')
    assert time.monotonic() - t0 < 8
    r.send(b'DONE\r\n')
    assert r.line() == b'i1 OK IDLE terminated'
    _, t = r.cmd('NOOP')
    assert b'OK' in t
    # IDLE without a mailbox only waits for DONE
    r.cmd('UNSELECT')
    r.send(b'i2 IDLE\r\n')
    assert r.line() == b'+ idling'
    r.send(b'done\r\n')
    assert r.line() == b'i2 OK IDLE terminated'
    r.send(b'i3 IDLE\r\n')
    assert r.line() == b'+ idling'
    r.send(b'NOPE\r\n')
    assert r.line().startswith(b'i3 BAD')
    r.close()
    other.logout()


def test_idle_renewed_outlives_the_timeout(inst_short):
    r = Raw(inst_short.imap)
    r.login()
    r.cmd('SELECT INBOX')
    t0 = time.monotonic()
    # twice 2 s of IDLE, each renewed before the 3 s autologout: the session lives on past it
    for n in (1, 2):
        r.send(b'i%d IDLE\r\n' % n)
        assert r.line() == b'+ idling'
        time.sleep(2)
        r.send(b'DONE\r\n')
        assert r.line() == b'i%d OK IDLE terminated' % n
    assert time.monotonic() - t0 > 3.5
    _, t = r.cmd('NOOP')
    assert b'OK' in t
    # an IDLE nobody renews ends like any silence
    r.send(b'i9 IDLE\r\n')
    assert r.line() == b'+ idling'
    assert r.line(timeout=6) == b'* BYE idle for too long'
    r.close()


# ---- CONDSTORE / QRESYNC ----

def modseq_of(line):
    return int(re.search(rb'MODSEQ \((\d+)\)', line).group(1))


def code_value(lines, code):
    for ln in lines:
        m = re.match(rb'\* OK \[' + code + rb' (\d+)\]', ln)
        if m:
            return int(m.group(1))
    raise AssertionError(f'no {code} in {lines}')


def append_n(inst, n):
    c = client(inst)
    for k in range(1, n + 1):
        assert c.append('INBOX', None, None, MSG % (k, k))[0] == 'OK'
    return c


def test_condstore(inst):
    other = append_n(inst, 3)
    other.select('INBOX')       # \Recent goes to this session, so the flag lists below are just the stored ones
    r = Raw(inst.imap)
    r.login()
    assert 'CONDSTORE' in r.cmd('CAPABILITY')[0][0].decode()
    u, t = r.cmd('ENABLE CONDSTORE')
    assert u == [b'* ENABLED CONDSTORE'] and b'OK' in t
    u, t = r.cmd('SELECT INBOX')
    hms0 = code_value(u, b'HIGHESTMODSEQ')
    u, t = r.cmd('FETCH 1:* (FLAGS MODSEQ)')
    assert len(u) == 3 and all(0 < modseq_of(ln) <= hms0 for ln in u), u
    mod2 = modseq_of(u[1])
    # a STORE bumps the modseq and says so
    u, t = r.cmd(r'STORE 1 +FLAGS (\Seen)')
    assert re.fullmatch(rb'\* 1 FETCH \(FLAGS \(\\Seen\) MODSEQ \((\d+)\)\)', u[0]), u
    m1 = modseq_of(u[0])
    assert m1 > hms0
    # UNCHANGEDSINCE passes: .SILENT still reports the new modseq
    u, t = r.cmd(r'UID STORE 2 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\Flagged)' % mod2)
    assert re.fullmatch(rb'\* 2 FETCH \(UID 2 MODSEQ \(\d+\)\)', u[0]), u
    assert t.endswith(b'OK STORE completed')
    m2 = modseq_of(u[0])
    assert m2 > m1
    # ... and fails for a message changed since: MODIFIED, flags left alone
    u, t = r.cmd(r'STORE 1:2 (UNCHANGEDSINCE %d) +FLAGS (\Answered)' % m1)
    assert b'OK [MODIFIED 2]' in t, t
    assert any(ln.startswith(b'* 1 FETCH (FLAGS (\\Answered \\Seen) MODSEQ') for ln in u), u
    u, t = r.cmd('FETCH 2 FLAGS')
    assert u[0].startswith(b'* 2 FETCH (FLAGS (\\Flagged) MODSEQ'), u
    # CHANGEDSINCE: only what changed after hms0
    u, t = r.cmd('FETCH 1:* (UID) (CHANGEDSINCE %d)' % hms0)
    assert [ln.split(b' (')[0] for ln in u] == [b'* 1 FETCH', b'* 2 FETCH'], u
    assert all(b'MODSEQ' in ln for ln in u)
    u, t = r.cmd('UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)' % m2)
    assert [ln.split(b' (')[0] for ln in u] == [b'* 1 FETCH'], u
    # SEARCH MODSEQ with the highest modseq found
    u, t = r.cmd('SEARCH MODSEQ %d' % (m1 + 1))
    hms = modseq_of(r.cmd('FETCH 1 MODSEQ')[0][0])
    assert u == [b'* SEARCH 1 2 (MODSEQ %d)' % hms], u
    u, t = r.cmd('SEARCH MODSEQ "/flags/\\\\draft" all %d' % (hms + 1))
    assert u == [b'* SEARCH'], u
    u, t = r.cmd('STATUS INBOX (HIGHESTMODSEQ MESSAGES)')
    assert u == [b'* STATUS "INBOX" (HIGHESTMODSEQ %d MESSAGES 3)' % hms], u
    # another session's change arrives with its modseq
    other.select('INBOX')
    other.store('3', '+FLAGS', r'(\Deleted)')
    u, t = r.cmd('NOOP')
    assert len(u) == 1 and u[0].startswith(b'* 3 FETCH (FLAGS (\\Deleted) MODSEQ ('), u
    assert modseq_of(u[0]) > hms
    r.close()
    other.logout()


def test_qresync(inst):
    other = append_n(inst, 5)
    r = Raw(inst.imap)
    r.login()
    assert r.cmd('ENABLE QRESYNC')[0] == [b'* ENABLED QRESYNC']
    u, t = r.cmd('SELECT INBOX')
    uv = code_value(u, b'UIDVALIDITY')
    hms0 = code_value(u, b'HIGHESTMODSEQ')
    r.cmd('LOGOUT')
    r.close()
    # changes while the client is away
    other.select('INBOX')
    other.store('2', '+FLAGS', r'(\Seen)')
    other.store('4', '+FLAGS', r'(\Deleted)')
    other.expunge()
    r = Raw(inst.imap)
    r.login()
    _, t = r.cmd('SELECT INBOX (QRESYNC (%d %d 1:5))' % (uv, hms0))
    assert b'BAD' in t       # QRESYNC must be enabled first
    r.cmd('ENABLE QRESYNC')
    u, t = r.cmd('SELECT INBOX (QRESYNC (%d %d 1:5))' % (uv, hms0))
    assert b'OK' in t
    assert b'* VANISHED (EARLIER) 4' in u, u
    fetches = [ln for ln in u if b' FETCH ' in ln]
    assert len(fetches) == 1 and re.fullmatch(rb'\* 2 FETCH \(UID 2 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)', fetches[0])
    hms1 = code_value(u, b'HIGHESTMODSEQ')
    # a stale UIDVALIDITY: nothing to resynchronise
    u, t = r.cmd('SELECT INBOX (QRESYNC (%d %d))' % (uv + 1, hms0))
    assert b'* OK [CLOSED] previous mailbox closed' in u
    assert not any(b'VANISHED' in ln or b'FETCH' in ln for ln in u), u
    # once enabled, expunges by others come as VANISHED
    other.store('1', '+FLAGS', r'(\Deleted)')
    other.expunge()
    u, t = r.cmd('NOOP')
    assert b'* VANISHED 1' in u and not any(b'EXPUNGE' in ln for ln in u), u
    u, t = r.cmd('UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)' % hms0)
    assert u[0] == b'* VANISHED (EARLIER) 1,4', u
    assert [ln for ln in u[1:] if b'FETCH' in ln][0].startswith(b'* 1 FETCH (UID 2 FLAGS (\\Seen) MODSEQ'), u
    u, t = r.cmd('UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)' % hms1)
    assert u[0] == b'* VANISHED (EARLIER) 1', u
    r.cmd('LOGOUT')
    r.close()
    other.logout()
    # the index lost: modseqs restart above the old ones and VANISHED becomes conservative (all missing UIDs)
    time.sleep(0.5)
    for f in maildir(inst).glob('postern-index.lmdb*'):
        f.unlink()
    r = Raw(inst.imap)
    r.login()
    r.cmd('ENABLE QRESYNC')
    u, t = r.cmd('SELECT INBOX (QRESYNC (%d %d 1:5))' % (uv, hms1))
    assert code_value(u, b'UIDVALIDITY') == uv
    assert code_value(u, b'HIGHESTMODSEQ') > hms1
    assert b'* VANISHED (EARLIER) 1,4' in u, u
    assert len([ln for ln in u if b' FETCH ' in ln]) == 3, u
    r.close()


# ---- COMPRESS=DEFLATE ----

def test_compress_deflate(inst):
    body = b'Subject: squeeze\r\n\r\n' + b'all work and no play makes jack a dull boy\r\n' * 400
    other = client(inst)
    other.append('INBOX', None, None, body)
    other.logout()
    r = Raw(inst.imap)
    r.login()
    assert 'COMPRESS=DEFLATE' in r.cmd('CAPABILITY')[0][0].decode()
    r.compress()
    u, t = r.cmd('SELECT INBOX')
    assert b'* 1 EXISTS' in u and b'OK' in t
    # a second COMPRESS is refused, compressed
    _, t = r.cmd('COMPRESS DEFLATE')
    assert b'NO [COMPRESSIONACTIVE]' in t
    u, t = r.cmd('FETCH 1 BODY.PEEK[]')
    assert t.endswith(b'OK FETCH completed')
    # the same FETCH again: its compressed bytes must decode on their own, because the dictionary was reset after
    # the last tagged response (with shared history they would refer back into the first answer)
    r.n += 1
    r.send(b'z1 FETCH 1 BODY.PEEK[]\r\n')
    raw, text, fresh = b'', b'', zlib.decompressobj(-15)
    while b'z1 OK' not in text:
        r.sock.settimeout(10)
        chunk = r.sock.recv(65536)
        assert chunk, 'connection closed'
        raw += chunk
        text += fresh.decompress(chunk)
        r.inflate.decompress(chunk)
    assert body in text
    assert len(raw) < len(body) // 10, (len(raw), len(body))
    # IDLE through the compressed stream: a delivery is pushed, DONE (compressed) ends it
    r.send(b'z2 IDLE\r\n')
    assert r.line() == b'+ idling'
    deliver(inst, '1800000001.M7P7.test', b'Subject: while compressed\n\nhello\n')
    r.wait_for(rb'^\* 2 EXISTS$')
    r.send(b'DONE\r\n')
    assert r.line() == b'z2 OK IDLE terminated'
    _, t = r.cmd('LOGOUT')
    assert b'OK' in t
    r.close()


def test_compress_under_tls(inst):
    r = Raw(inst.imaps, tls=True)
    r.login()
    r.compress()
    u, t = r.cmd('SELECT INBOX')
    assert b'OK' in t
    u, t = r.cmd('APPEND INBOX {%d+}\r\n%s' % (len(MSG % (1, 1)), (MSG % (1, 1)).decode()))
    assert b'OK' in t, t
    u, t = r.cmd('FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
    assert b'Subject: 1' in b'\n'.join(u) + r.buf
    r.close()


# ---- QUOTA ----

def test_quota(inst):
    import subprocess
    r = subprocess.run([str(build_dir() / 'bin' / 'postern'), 'user', '-c', str(inst.dir), 'add', 'quinn@example.test',
                        '--password-stdin', '--quota', '100k'], input='pw\n', capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = imaplib.IMAP4('127.0.0.1', inst.imap, timeout=20)
    m.login('quinn@example.test', 'pw')
    assert 'QUOTA' in m.capabilities and 'QUOTA=RES-STORAGE' in m.capabilities
    big = b'Subject: big\r\n\r\n' + b'x' * 3000 + b'\r\n'
    assert m.append('INBOX', None, None, big)[0] == 'OK'
    assert m.append('Sent', None, None, big)[0] == 'OK'
    root = next(p for p in (inst.dir / 'mail').rglob('cur') if 'quinn' in str(p) and p.parent.name == 'quinn').parent
    used = sum(f.stat().st_size for f in root.rglob('*') if f.is_file() and f.parent.name in ('cur', 'new'))
    assert used > 6000
    typ, data = m.getquotaroot('INBOX')
    assert typ == 'OK'
    assert data == [[b'"INBOX" ""'], [b'"" (STORAGE %d 100)' % ((used + 1023) // 1024)]], data
    typ, data = m.getquota('""')
    assert data == [b'"" (STORAGE %d 100)' % ((used + 1023) // 1024)]
    typ, data = m._simple_command('SETQUOTA', '""', '(STORAGE 500)')
    assert typ == 'NO'
    typ, data = m.getquotaroot('Nope')
    assert typ == 'NO'
    m.logout()
    # an account without a quota has no quota root
    c = client(inst)
    typ, data = c.getquotaroot('INBOX')
    assert typ == 'OK' and data == [[b'"INBOX"'], [None]], data
    typ, data = c.getquota('""')
    assert typ == 'NO'
    c.logout()


def test_idle_ends_on_stop(inst):
    r = Raw(inst.imap)
    r.login()
    r.cmd('SELECT INBOX')
    r.send(b'i1 IDLE\r\n')
    assert r.line() == b'+ idling'
    t0 = time.monotonic()
    inst.cli('stop', timeout=30)
    assert r.line(timeout=10) == b'* BYE Server shutting down'
    assert time.monotonic() - t0 < 5
    r.close()
