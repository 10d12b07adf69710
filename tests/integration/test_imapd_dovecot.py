"""imapd against Dovecot, byte for byte: LIST in its basic and extended forms on the same folders, and the MIME corpus (tests/data/mime/*.eml) is APPENDed to a Postern
instance and to a Dovecot 2.3 started here as a peer (its own minimal configuration in a temporary directory, a
free loopback port, passwd-file users, no SSL, no system services), then FETCH ENVELOPE, BODYSTRUCTURE, BODY and
BODY[section] for every part Dovecot reports (HEADER, TEXT, MIME, HEADER.FIELDS, partials) are compared.

Two answers are equal when their bytes are equal. Where they are not, the difference must be listed in
DELIBERATE below with its reason; the one difference that is not about content (a string sent quoted by one
server and as a literal by the other) is accepted when both parse to the same values.
Skipped when Dovecot is not installed. As root Dovecot's mail processes run as nobody (it refuses root).
"""
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from test_imapd import IS_ROOT, free_ports, inst  # noqa: F401  (the instance fixture)
from test_imapd_selected import PASS, USER

SOURCE_ROOT = Path(__file__).resolve().parents[2]
MIME = SOURCE_ROOT / 'tests' / 'data' / 'mime'
DOVECOT = Path('/usr/sbin/dovecot')

# (message, item regexp) -> why our answer differs from Dovecot's on purpose (see common/mime.h, imap_body.h).
DELIBERATE = {
    ('attachment', r'BODY(STRUCTURE)?'):
        'RFC 2231: the non-extended sections of a split value are percent-encoded when joined to extended ones',
    ('deep', r'.*'):
        'beyond our nesting limit a part is an empty text/plain; Dovecot nests further and stops elsewhere',
    ('inbody', r'.*'):
        '"--foox" is not a boundary line for boundary "foo" (RFC 2046 grammar); Dovecot matches prefixes',
    ('broken_header', r'BODY\[HEADER\.FIELDS\.NOT .*'):
        'lines of a header that are not fields (no colon, an mbox "From " line) are not header fields, so '
        'HEADER.FIELDS.NOT leaves them out; Dovecot keeps them',
}

# Messages our APPEND refuses and Dovecot's takes, and why.
REFUSED = {
    'nul': 'a literal may not hold NUL (RFC 3501 CHAR8; that needs BINARY\'s literal8, which we do not offer)',
}

# Section numbers with more parts than this are a BAD request for us (IMAP_SECTION_MAX_PATH in imap_body.h: a
# bound on what a client can make us walk); Dovecot has none. Not asked.
SECTION_MAX_PATH = 64


# ---- an IMAP value reader (enough of RFC 3501's syntax for FETCH answers) ----

def read_value(data, i):
    """(value, next index): lists as Python lists, strings as bytes, NIL as None, atoms as str."""
    c = data[i:i + 1]
    if c == b'(':
        out, i = [], i + 1
        while True:
            while data[i:i + 1] == b' ':
                i += 1
            if data[i:i + 1] == b')':
                return out, i + 1
            v, i = read_value(data, i)
            out.append(v)
    if c == b'"':
        out, i = bytearray(), i + 1
        while data[i:i + 1] != b'"':
            if data[i:i + 1] == b'\\':
                i += 1
            out += data[i:i + 1]
            i += 1
        return bytes(out), i + 1
    if c == b'{':
        j = data.index(b'}', i)
        n = int(data[i + 1:j].rstrip(b'+'))
        start = j + 3
        return data[start:start + n], start + n
    m = re.compile(rb'[^ ()\[\]]+(\[[^\]]*\](<\d+>)?)?').match(data, i)
    word = m.group(0).decode()
    return (None if word.upper() == 'NIL' else word), m.end()


def fetch_items(data):
    """'* n FETCH (NAME value NAME value ...)' -> {NAME: (raw bytes of value, parsed value)}."""
    m = re.match(rb'\* \d+ FETCH \(', data)
    i, items = m.end(), {}
    while data[i:i + 1] != b')':
        name, i = read_value(data, i)
        i += 1
        start = i
        value, i = read_value(data, i)
        items[name.upper()] = (data[start:i], value)
        while data[i:i + 1] == b' ':
            i += 1
    return items


class Client:
    """Raw IMAP client keeping every response as its wire bytes (literals included)."""

    def __init__(self, port, user, password):
        self.s = socket.create_connection(('127.0.0.1', port), timeout=30)
        self.f = self.s.makefile('rb')
        self.n = 0
        self.f.readline()
        status, _ = self.cmd(b'LOGIN "%s" "%s"' % (user.encode(), password.encode()))
        assert status.startswith(b'OK'), status

    def response(self):
        out = b''
        while True:
            line = self.f.readline()
            assert line, 'connection closed'
            out += line
            m = re.search(rb'\{(\d+)\}\r\n$', line)
            if not m:
                return out[:-2]
            out += self.f.read(int(m.group(1)))

    def cmd(self, command, literal=None):
        self.n += 1
        tag = b'c%d' % self.n
        if literal is None:
            self.s.sendall(tag + b' ' + command + b'\r\n')
        else:
            self.s.sendall(tag + b' ' + command + b' {%d+}\r\n' % len(literal) + literal + b'\r\n')
        untagged = []
        while True:
            r = self.response()
            if r.startswith(tag + b' '):
                return r[len(tag) + 1:], untagged
            untagged.append(r)

    def close(self):
        self.cmd(b'LOGOUT')
        self.s.close()


# ---- Dovecot as a peer ----

class Dovecot:
    def __init__(self, top):
        self.dir = top
        self.port = free_ports(1)[0]
        me = pwd.getpwuid(os.geteuid()).pw_name
        mail = pwd.getpwnam('nobody') if IS_ROOT else pwd.getpwuid(os.geteuid())
        login_user = 'dovenull' if IS_ROOT else me
        internal = 'dovecot' if IS_ROOT else me
        (top / 'mail').mkdir()
        (top / 'run').mkdir()
        if IS_ROOT:
            os.chown(top / 'mail', mail.pw_uid, mail.pw_gid)
        (top / 'users').write_text(
            f'{USER}:{{PLAIN}}{PASS}:{mail.pw_uid}:{mail.pw_gid}::{top}/mail::\n')
        # the folders our first login makes, made and subscribed by Dovecot the same way
        special = '\n'.join(f'  mailbox {n} {{\n    special_use = \\{n}\n    auto = subscribe\n  }}'
                            for n in ('Sent', 'Drafts', 'Trash', 'Junk', 'Archive'))
        (top / 'dovecot.conf').write_text(f'''instance_name = postern-test-{self.port}
base_dir = {top}/run
state_dir = {top}/run
log_path = {top}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
default_login_user = {login_user}
default_internal_user = {internal}
default_internal_group = {grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name}
mail_location = maildir:{top}/mail
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {top}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {top}/users
}}
namespace inbox {{
  inbox = yes
  separator = /
{special}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
''')

    def start(self):
        # dovecot forks into the background; its output stays out of our pipes so nothing waits on them
        with open(self.dir / 'start.err', 'wb') as err:
            r = subprocess.run([str(DOVECOT), '-c', str(self.dir / 'dovecot.conf')], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=err, timeout=30)
        if r.returncode != 0:
            return (self.dir / 'start.err').read_text(errors='replace')
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                return None
            except OSError:
                time.sleep(0.05)
        return 'dovecot did not listen on its port: ' + self.log()

    def log(self):
        try:
            return (self.dir / 'dovecot.log').read_text(errors='replace')[-2000:]
        except FileNotFoundError:
            return ''

    def stop(self):
        pidfile = self.dir / 'run' / 'master.pid'
        try:
            pid = int(pidfile.read_text())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def dovecot():
    if not DOVECOT.exists():
        pytest.skip('Dovecot is not installed (/usr/sbin/dovecot): nothing to compare with')
    if IS_ROOT:
        for user in ('dovenull', 'dovecot'):
            try:
                pwd.getpwnam(user)
            except KeyError:
                pytest.skip(f'Dovecot is installed without its system user {user}')
    top = Path(tempfile.mkdtemp(prefix='postern-dovecot-'))
    os.chmod(top, 0o755)
    d = Dovecot(top)
    try:
        err = d.start()
        if err and not IS_ROOT:
            pytest.skip('Dovecot would not start as a normal user: ' + err[-300:])
        assert err is None, err
        yield d
    finally:
        d.stop()
        shutil.rmtree(top, ignore_errors=True)


# ---- what to ask ----

def parts(body, prefix=''):
    """The section numbers of a parsed BODYSTRUCTURE, with whether each is a message/rfc822 part."""
    out = []
    if isinstance(body[0], list):                       # multipart: children, then the subtype
        children = []
        for c in body:
            if not isinstance(c, list):
                break
            children.append(c)
        for n, child in enumerate(children, 1):
            out += parts(child, f'{prefix}{n}.') if isinstance(child[0], list) else leaf(child, f'{prefix}{n}')
        return out
    return leaf(body, f'{prefix}1')


def leaf(body, number):
    is_msg = isinstance(body[0], bytes) and body[0].lower() == b'message' and body[1].lower() == b'rfc822'
    out = [(number, is_msg)]
    if is_msg and len(body) > 8 and isinstance(body[8], list):
        inner = body[8]
        out += parts(inner, number + '.') if isinstance(inner[0], list) else [(number + '.1', False)]
    return out


def sections(bodystructure):
    out = ['', 'HEADER', 'TEXT', 'HEADER.FIELDS (FROM SUBJECT CONTENT-TYPE)', 'HEADER.FIELDS.NOT (SUBJECT)']
    for number, is_msg in parts(bodystructure):
        if number.count('.') >= SECTION_MAX_PATH:
            continue
        out += [number, number + '.MIME']
        if is_msg:
            out += [number + '.HEADER', number + '.TEXT']
    return out


def test_fetch_answers_match_dovecot(inst, dovecot):
    names = sorted(p.stem for p in MIME.glob('*.eml'))
    ours, theirs = Client(inst.imap, USER, PASS), Client(dovecot.port, USER, PASS)
    stored = []
    for n in names:
        data = (MIME / (n + '.eml')).read_bytes()
        mine = ours.cmd(b'APPEND INBOX', data)[0][:2]
        if n in REFUSED:
            assert mine == b'NO', (n, REFUSED[n])
            continue
        # both take the message, or both refuse it (an empty one: APPEND {0} has nothing to store)
        assert theirs.cmd(b'APPEND INBOX', data)[0][:2] == mine, n
        if mine == b'OK':
            stored.append(n)
    for c in (ours, theirs):
        status, _ = c.cmd(b'SELECT INBOX')
        assert status.startswith(b'OK')
    assert len(stored) >= len(names) - 2
    differences, accepted, deliberate = [], 0, set()
    for seq, name in enumerate(stored, 1):
        status, resp = theirs.cmd(b'FETCH %d (BODYSTRUCTURE)' % seq)
        bs = fetch_items(resp[0])['BODYSTRUCTURE'][1]
        items = ['ENVELOPE', 'BODYSTRUCTURE', 'BODY']
        items += ['BODY.PEEK[%s]' % s for s in sections(bs)] + ['BODY.PEEK[TEXT]<2.7>', 'BODY.PEEK[1]<0.5>']
        answers = []
        for c in (ours, theirs):
            got = {}
            for k in range(0, len(items), 50):     # in bites: a FETCH may name only so many items
                status, resp = c.cmd(b'FETCH %d (%s)' % (seq, ' '.join(items[k:k + 50]).encode()))
                assert status.startswith(b'OK'), (name, status)
                got.update(fetch_items(next(r for r in resp if re.match(rb'\* \d+ FETCH', r))))
            answers.append(got)
        ans_ours, ans_theirs = answers
        assert set(ans_ours) == set(ans_theirs), (name, sorted(ans_ours), sorted(ans_theirs))
        for item in sorted(ans_theirs):
            (raw_o, val_o), (raw_t, val_t) = ans_ours[item], ans_theirs[item]
            if raw_o == raw_t:
                continue
            why = next((k for k in DELIBERATE if k[0] == name and re.fullmatch(k[1], item)), None)
            if why:
                deliberate.add(why)
            elif val_o == val_t:
                accepted += 1       # the same strings, quoted by one server and sent as a literal by the other
            else:
                differences.append(f'{name} {item}\n  dovecot: {raw_t[:600]!r}\n  postern: {raw_o[:600]!r}')
    ours.close()
    theirs.close()
    assert not differences, f'{len(differences)} unexplained differences from Dovecot:\n' + '\n'.join(differences)
    # every deliberate difference is still real: a stale entry would hide a future regression
    assert deliberate == set(DELIBERATE), f'no longer different: {set(DELIBERATE) - deliberate}'


# ---- LIST ----

def list_lines(untagged):
    """LIST/LSUB/STATUS lines as comparable tuples: the name parsed (Dovecot sends atoms where we quote)."""
    out = []
    for r in untagged:
        m = re.match(rb'\* (LIST|LSUB) \(([^)]*)\) "/" ', r)
        if m:
            name, i = read_value(r, m.end())
            out.append((m.group(1), m.group(2), name if isinstance(name, bytes) else name.encode(), r[i:]))
            continue
        m = re.match(rb'\* STATUS ', r)
        if m:
            name, i = read_value(r, m.end())
            out.append((b'STATUS', b'', name if isinstance(name, bytes) else name.encode(), r[i:]))
    return sorted(out)


LIST_COMMANDS = [
    'LIST "" *', 'LIST "" %', 'LIST "" ""', 'LIST "" "d/*"', 'LSUB "" *', 'LSUB "" %',
    'LIST (SUBSCRIBED) "" *', 'LIST (SUBSCRIBED RECURSIVEMATCH) "" %', 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "d/%"',
    'LIST (SUBSCRIBED RECURSIVEMATCH) "" *', 'LIST (SPECIAL-USE) "" *', 'LIST (REMOTE) "" %', 'LIST () "" %',
    'LIST "" % RETURN (CHILDREN)', 'LIST "" * RETURN (SUBSCRIBED CHILDREN)', 'LIST "" * RETURN (SPECIAL-USE)',
    'LIST "" (INBOX "d/%" Sent) RETURN (SUBSCRIBED SPECIAL-USE)', 'LIST (SUBSCRIBED) "" * RETURN (CHILDREN)',
    'LIST "" % RETURN (STATUS (MESSAGES UIDNEXT UNSEEN))', 'LIST (SUBSCRIBED) "" * RETURN (STATUS (MESSAGES))',
]


def test_list_matches_dovecot(inst, dovecot):
    answers = []
    for port in (inst.imap, dovecot.port):
        c = Client(port, USER, PASS)
        # (our first login subscribes INBOX too; Dovecot's gets it here)
        for command in ('SUBSCRIBE INBOX', 'CREATE a/b', 'CREATE c', 'CREATE d/e/f', 'SUBSCRIBE a/b', 'SUBSCRIBE c',
                        'SUBSCRIBE d/e/f', 'DELETE c'):
            status, _ = c.cmd(command.encode())
            assert status.startswith(b'OK'), (port, command, status)
        c.cmd(b'APPEND INBOX', b'Subject: one\r\n\r\nx\r\n')
        got = {}
        for command in LIST_COMMANDS:
            status, untagged = c.cmd(command.encode())
            assert status.startswith(b'OK'), (port, command, status)
            got[command] = list_lines(untagged)
        for bad in ('LIST (RECURSIVEMATCH) "" %', 'LIST (BOGUS) "" %', 'LIST "" % RETURN (BOGUS)'):
            assert c.cmd(bad.encode())[0].startswith(b'BAD'), (port, bad)
        c.close()
        answers.append(got)
    ours, theirs = answers
    diffs = [f'{c}\n  dovecot: {theirs[c]}\n  postern: {ours[c]}' for c in LIST_COMMANDS if ours[c] != theirs[c]]
    assert not diffs, 'LIST answers differ from Dovecot\'s:\n' + '\n'.join(diffs)
