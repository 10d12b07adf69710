"""imapd's selected state through Python's imaplib on a real instance (master, imapd, auth; the fixture of
test_imapd.py): FETCH of every item, STORE, SEARCH, COPY/MOVE with UIDPLUS, EXPUNGE, the UID forms, two sessions
on one mailbox seeing each other's changes, a delivery during a session, the index deleted while stopped, and
FETCH BODYSTRUCTURE/BODY/ENVELOPE of the MIME corpus in tests/data/mime against its expectation files.
"""
import imaplib
import os
import re
import socket
import time
from pathlib import Path

import pytest

from test_imapd import IS_ROOT, inst  # noqa: F401  (the instance fixture)

SOURCE_ROOT = Path(__file__).resolve().parents[2]
MIME = SOURCE_ROOT / 'tests' / 'data' / 'mime'
USER, PASS = 'fred@example.test', 'se cret'

MSG1 = (b'From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: Hello world\r\n'
        b'Date: Tue, 1 Dec 2026 08:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\nfirst body line\r\nzwei\r\n')
MSG2 = (b'From: Carol <carol@example.org>\r\nTo: bob@example.net\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n'
        b'Date: Wed, 2 Dec 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n'
        b'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        b'w5xiZXJyYXNjaHVuZyBpbSBLw7ZycGVyCg==\r\n')


def login(inst):
    m = imaplib.IMAP4('127.0.0.1', inst.imap, timeout=20)
    m.login(USER, PASS)
    return m


def maildir(inst):
    return next(p for p in (inst.dir / 'mail').rglob('cur') if p.parent.name != 'mail').parent


def flat(data):
    """imaplib's FETCH data as one bytes string per message, literals put back in their wire form."""
    out, cur = [], b''
    for d in data:
        if isinstance(d, tuple):
            cur += d[0] + b'\r\n' + d[1]
        elif d is not None:
            cur += d
            if d.endswith(b')'):
                out.append(cur)
                cur = b''
    if cur:
        out.append(cur)
    return out


def deliver(inst, name, data):
    """What local delivery does: a file in new/ (owned by the mailbox owner)."""
    md = maildir(inst)
    tmp = md / 'tmp' / name
    tmp.write_bytes(data)
    if IS_ROOT:
        st = os.stat(md)
        os.chown(tmp, st.st_uid, st.st_gid)
    os.rename(tmp, md / 'new' / name)


def setup_two(inst):
    m = login(inst)
    typ, data = m.append('INBOX', None, None, MSG1)
    assert typ == 'OK'
    assert re.match(rb'\[APPENDUID \d+ 1\]', data[0]), data
    typ, data = m.append('INBOX', r'(\Flagged)', '"01-Dec-2026 10:00:00 +0100"', MSG2)
    assert re.match(rb'\[APPENDUID \d+ 2\]', data[0]), data
    typ, data = m.select('INBOX')
    assert typ == 'OK' and data == [b'2']
    return m


def test_select_uidvalidity_uidnext(inst):
    m = setup_two(inst)
    for cap in ('UIDPLUS', 'MOVE', 'ESEARCH'):
        assert cap in m.capabilities
    uv = m.untagged_responses.get('UIDVALIDITY')
    assert uv and int(uv[0]) > 0
    assert m.untagged_responses['UIDNEXT'] == [b'3']
    assert b'\\Flagged' in m.untagged_responses['PERMANENTFLAGS'][0]
    typ, data = m.status('INBOX', '(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)')
    assert data[0] == b'"INBOX" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY ' + uv[0] + b' UNSEEN 2)'
    assert not list(maildir(inst).glob('postern-uidvalidity'))
    m.logout()


def test_fetch_items(inst):
    m = setup_two(inst)
    typ, data = m.fetch('1:2', '(UID FLAGS RFC822.SIZE INTERNALDATE)')
    assert typ == 'OK'
    # \\Recent: both arrived before this session selected INBOX (Dovecot's order: after the system flags)
    assert data[0] == b'1 (UID 1 FLAGS (\\Recent) RFC822.SIZE %d INTERNALDATE "%s")' % (
        len(MSG1), data[0].split(b'INTERNALDATE "')[1][:26])
    assert data[1].startswith(b'2 (UID 2 FLAGS (\\Flagged \\Recent) RFC822.SIZE %d ' % len(MSG2))
    assert b'INTERNALDATE "01-Dec-2026 09:00:00 +0000"' in data[1]
    typ, data = m.fetch('1', '(ENVELOPE)')
    assert data[0] == (b'1 (ENVELOPE ("Tue, 1 Dec 2026 08:00:00 +0000" "Hello world" (("Alice" NIL "alice" '
                       b'"example.org")) (("Alice" NIL "alice" "example.org")) (("Alice" NIL "alice" "example.org"))'
                       b' ((NIL NIL "bob" "example.net")) NIL NIL NIL "<1@example.org>"))')
    typ, data = m.fetch('2', 'BODYSTRUCTURE')
    assert data[0].startswith(b'2 (BODYSTRUCTURE ("text" "plain" ("charset" "utf-8") NIL NIL "base64" ')
    # BODY.PEEK leaves \Seen alone; partials count CRLF bytes
    typ, data = m.fetch('1', '(BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[TEXT]<6.4>)')
    assert data[0][1] == b'Subject: Hello world\r\n\r\n'
    assert data[1][0].endswith(b'BODY[TEXT]<6> {4}') and data[1][1] == b'body'
    typ, data = m.fetch('1', 'FLAGS')
    assert data[0] == b'1 (FLAGS (\\Recent))'
    # BODY[] sets \Seen and says so
    typ, data = m.fetch('1', 'BODY[]')
    assert data[0][1] == MSG1
    assert b'FLAGS (\\Seen \\Recent)' in data[1]
    typ, data = m.fetch('1', '(RFC822.HEADER RFC822.TEXT)')
    assert data[0][1] == MSG1.split(b'\r\n\r\n')[0] + b'\r\n\r\n'
    assert data[1][1] == b'first body line\r\nzwei\r\n'
    typ, data = m.fetch('2', 'RFC822')
    assert data[0][1] == MSG2
    typ, data = m.fetch('2', 'BODY[1]')
    assert data[0][1].startswith(b'w5xiZXJy')
    typ, data = m.fetch('2', 'BODY[5]')     # no such part: empty
    assert data[0] == (b'2 (BODY[5] {0}', b'')
    typ, data = m.uid('FETCH', '2', '(FLAGS)')
    assert data[0] == b'2 (UID 2 FLAGS (\\Flagged \\Seen \\Recent))'
    typ, data = m.uid('FETCH', '3:*', 'UID')      # "n:*" names the highest UID even past it
    assert data[0] == b'2 (UID 2)'
    with pytest.raises(imaplib.IMAP4.error):
        m.fetch('3', 'FLAGS')                    # sequence number past EXISTS
    with pytest.raises(imaplib.IMAP4.error):
        m.fetch('1', '(BOGUS)')
    m.logout()


def test_store(inst):
    m = setup_two(inst)
    typ, data = m.store('1:2', '+FLAGS', r'(\Deleted \Answered)')
    assert typ == 'OK'
    assert sorted(data) == [b'1 (FLAGS (\\Answered \\Deleted \\Recent))',
                            b'2 (FLAGS (\\Flagged \\Answered \\Deleted \\Recent))']
    typ, data = m.store('2', '-FLAGS.SILENT', r'(\Deleted)')
    assert data == [None]
    typ, data = m.uid('STORE', '1', 'FLAGS', r'(\Seen)')
    assert data[0] == b'1 (UID 1 FLAGS (\\Seen \\Recent))'
    names = sorted(p.name for p in (maildir(inst) / 'cur').iterdir())
    assert names[0].endswith(':2,S') and names[1].endswith(':2,FR')
    with pytest.raises(imaplib.IMAP4.error):
        m.store('1', '+FLAGS', r'(\Recent)')
    with pytest.raises(imaplib.IMAP4.error):
        m.store('1', 'FROB', r'(\Seen)')
    m.select('INBOX', readonly=True)
    typ, data = m.store('1', '+FLAGS', r'(\Deleted)')
    assert typ == 'NO' and b'READ-ONLY' in data[0]
    m.logout()


def test_search(inst):
    m = setup_two(inst)
    assert m.search(None, 'ALL')[1] == [b'1 2']
    assert m.search(None, 'FLAGGED')[1] == [b'2']
    assert m.search(None, 'UNFLAGGED')[1] == [b'1']
    assert m.search(None, 'SUBJECT', 'hello')[1] == [b'1']
    assert m.search(None, 'FROM', 'carol')[1] == [b'2']
    assert m.search(None, 'OR', 'FROM', 'carol', 'SUBJECT', 'hello')[1] == [b'1 2']
    assert m.search(None, 'NOT', 'FROM', 'carol')[1] == [b'1']
    assert m.search(None, 'BODY', 'zwei')[1] == [b'1']
    assert m.search(None, 'TEXT', 'example.org')[1] == [b'1 2']
    assert m.search(None, 'HEADER', 'Message-ID', '""')[1] == [b'1']
    assert m.search(None, 'SENTON', '2-Dec-2026')[1] == [b'2']
    assert m.search(None, 'SENTBEFORE', '2-Dec-2026')[1] == [b'1']
    assert m.search(None, 'ON', '1-Dec-2026')[1] == [b'2']
    assert m.search(None, 'LARGER', str(len(MSG1)))[1] == [b'2']
    assert m.search(None, 'SMALLER', str(len(MSG1) + 1))[1] == [b'1']
    assert m.search(None, '2:*')[1] == [b'2']
    assert m.search(None, 'UID', '1')[1] == [b'1']
    assert m.uid('SEARCH', 'ALL')[1] == [b'1 2']
    # UTF-8 with a charset: encoded words and base64 bodies are decoded first
    m.literal = 'grüße'.encode()
    assert m.search('UTF-8', 'SUBJECT')[1] == [b'2']
    m.literal = 'körper'.encode()
    assert m.search('UTF-8', 'BODY')[1] == [b'2']
    typ, data = m.search('KOI8-R', 'ALL')
    assert typ == 'NO' and b'BADCHARSET' in data[0]
    with pytest.raises(imaplib.IMAP4.error):
        m.search(None, 'FROB')
    typ, data = m._simple_command('SEARCH', 'RETURN', '(MIN MAX COUNT ALL)', 'ALL')
    assert typ == 'OK'
    assert m.untagged_responses.pop('ESEARCH')[0].endswith(b'MIN 1 MAX 2 COUNT 2 ALL 1:2')
    m.logout()


def test_copy_move_expunge(inst):
    m = setup_two(inst)
    typ, data = m.copy('1:2', 'Archive')
    assert typ == 'OK'
    assert re.match(rb'\[COPYUID \d+ 1,2 1,2\]', data[0]), data
    typ, data = m.copy('1', 'Nope')
    assert typ == 'NO' and b'TRYCREATE' in data[0]
    typ, data = m.status('Archive', '(MESSAGES)')
    assert data[0] == b'"Archive" (MESSAGES 2)'
    typ, data = m._simple_command('MOVE', '2', 'Trash')
    assert typ == 'OK'
    assert m.untagged_responses.pop('EXPUNGE') == [b'2']
    assert re.match(rb'\[COPYUID \d+ 2 1\]', m.untagged_responses.pop('OK')[-1])
    typ, data = m.uid('MOVE', '1', 'Trash')
    assert typ == 'OK'
    assert m.select('INBOX')[1] == [b'0']
    m.select('Trash')
    typ, data = m.fetch('1:*', '(UID FLAGS)')
    assert data == [b'1 (UID 1 FLAGS (\\Flagged \\Recent))', b'2 (UID 2 FLAGS (\\Recent))']
    m.store('1', '+FLAGS', r'(\Deleted)')
    typ, data = m.expunge()
    assert data == [b'1']
    typ, data = m.uid('FETCH', '1:*', 'UID')
    assert data == [b'1 (UID 2)']
    # UID EXPUNGE only takes the named UIDs; CLOSE expunges silently
    m.select('Archive')
    m.store('1:2', '+FLAGS', r'(\Deleted)')
    m.untagged_responses.pop('EXPUNGE', None)
    typ, data = m.uid('EXPUNGE', '2')
    assert typ == 'OK' and m.untagged_responses.pop('EXPUNGE') == [b'2']
    typ, data = m.close()
    assert typ == 'OK'
    assert m.status('Archive', '(MESSAGES UIDNEXT)')[1][0] == b'"Archive" (MESSAGES 0 UIDNEXT 3)'
    m.logout()


def test_two_sessions(inst):
    a = setup_two(inst)
    assert a.untagged_responses['RECENT'] == [b'2']
    assert a.search(None, 'RECENT')[1] == [b'1 2']
    b = login(inst)
    b.select('INBOX')
    assert b.untagged_responses['RECENT'] == [b'0']     # \Recent goes to one session only
    a.store('1', '+FLAGS', r'(\Seen \Deleted)')
    typ, data = b.noop()
    assert b.untagged_responses.get('FETCH') == [b'1 (FLAGS (\\Seen \\Deleted))']
    b.untagged_responses.pop('FETCH', None)
    a.expunge()
    # not during FETCH/STORE/SEARCH: b keeps the number until NOOP
    typ, data = b.fetch('2', 'UID')
    assert data == [b'2 (UID 2)']
    assert 'EXPUNGE' not in b.untagged_responses
    typ, data = b.noop()
    assert b.untagged_responses.pop('EXPUNGE') == [b'1']
    # a delivery during the session: EXISTS at the next command
    deliver(inst, '1800000000.M1P1.test', b'Subject: delivered\n\nhello\n')
    typ, data = b.noop()
    assert b.untagged_responses.pop('EXISTS')[-1] == b'2'
    typ, data = b.fetch('2', '(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
    assert data[0][0].startswith(b'2 (UID 3 ') and data[0][1] == b'Subject: delivered\r\n\r\n'
    assert b.search(None, 'RECENT')[1] == [b'2']
    assert b.search(None, 'NEW')[1] == [b'2']
    a.logout()
    b.logout()


def test_index_deleted_while_stopped(inst):
    m = setup_two(inst)
    uv = m.untagged_responses['UIDVALIDITY'][0]
    m.expunge()
    m.store('1', '+FLAGS', r'(\Deleted)')
    m.expunge()
    m.logout()
    inst.cli('stop', timeout=30)
    md = maildir(inst)
    (md / 'postern-index.lmdb').unlink()
    for extra in md.glob('postern-index.lmdb-lock'):
        extra.unlink()
    inst.start()
    m = login(inst)
    m.select('INBOX')
    assert m.untagged_responses['UIDVALIDITY'][0] == uv
    # UIDs the uidlist had reserved ahead of the lost index count as used: UIDNEXT may jump, never go back
    assert int(m.untagged_responses['UIDNEXT'][0]) >= 3
    assert m.uid('FETCH', '1:*', 'UID')[1] == [b'1 (UID 2)']
    m.logout()


@pytest.mark.parametrize('name', sorted(p.stem for p in MIME.glob('*.eml')))
def test_mime_corpus(inst, name):
    data = (MIME / (name + '.eml')).read_bytes()
    m = login(inst)
    m.select('INBOX')
    deliver(inst, '1800000001.M%sP1.test' % name, data)
    m.noop()
    typ, resp = m.fetch('1', '(BODYSTRUCTURE)')
    got = flat(resp)[0]
    exp = (MIME / (name + '.bs')).read_bytes().rstrip(b'\n')
    assert got == b'1 (BODYSTRUCTURE (' + exp + b'))'
    typ, resp = m.fetch('1', '(BODY)')
    exp = (MIME / (name + '.body')).read_bytes().rstrip(b'\n')
    assert flat(resp)[0] == b'1 (BODY (' + exp + b'))'
    typ, resp = m.fetch('1', '(ENVELOPE)')
    exp = (MIME / (name + '.env')).read_bytes().rstrip(b'\n')
    assert flat(resp)[0] == b'1 (ENVELOPE ' + exp + b')'
    m.logout()


def test_keywords(inst):
    m = setup_two(inst)
    assert b'\\*' in m.untagged_responses['PERMANENTFLAGS'][0]
    typ, data = m.store('1', '+FLAGS', '($Label1 NonJunk)')
    assert data == [b'1 (FLAGS (\\Recent $Label1 NonJunk))']
    typ, data = m.store('2', '+FLAGS', '(nonjunk \\Seen)')      # keywords are case-insensitive
    assert data == [b'2 (FLAGS (\\Flagged \\Seen \\Recent NonJunk))']
    assert m.search(None, 'KEYWORD', 'NonJunk')[1] == [b'1 2']
    assert m.search(None, 'KEYWORD', '$Label1')[1] == [b'1']
    assert m.search(None, 'UNKEYWORD', '$Label1')[1] == [b'2']
    assert m.search(None, 'KEYWORD', '$Never')[1] == [b'']
    typ, data = m.store('1', '-FLAGS', '($Label1)')
    assert data == [b'1 (FLAGS (\\Recent NonJunk))']
    md = maildir(inst)
    assert (md / 'postern-keywords').read_text() == '$Label1\nNonJunk\n'
    assert sorted(p.name.rsplit(',', 1)[1] for p in (md / 'cur').iterdir()) == ['FSb', 'b']
    # a second session learns the new keyword (FLAGS) and sees it on the message
    b = login(inst)
    b.select('INBOX')
    assert b'NonJunk' in b.untagged_responses['FLAGS'][0]
    m.store('2', '+FLAGS', '($Forwarded)')
    b.noop()
    assert b'$Forwarded' in b.untagged_responses['FLAGS'][-1]
    assert b.untagged_responses['FETCH'][-1] == b'2 (FLAGS (\\Flagged \\Seen NonJunk $Forwarded))'
    # APPEND with keywords
    typ, data = m.append('INBOX', '(\\Seen Work)', None, b'Subject: k\r\n\r\nx\r\n')
    m.noop()
    typ, data = m.fetch('3', 'FLAGS')
    assert data == [b'3 (FLAGS (\\Seen \\Recent Work))']
    with pytest.raises(imaplib.IMAP4.error):
        m.store('1', '+FLAGS', '(bad]kw)')
    b.logout()
    m.logout()


def test_envelope_cache(inst):
    m = setup_two(inst)
    typ, first = m.fetch('1:*', '(ENVELOPE BODYSTRUCTURE)')
    md = maildir(inst)
    assert (md / 'postern-cache.lmdb').exists()
    # the second FETCH does not parse again: a file changed behind our back still shows the cached strings
    for p in (md / 'cur').iterdir():
        with open(p, 'r+b') as f:
            f.write(b'X' * 20)
    typ, again = m.fetch('1:*', '(ENVELOPE BODYSTRUCTURE)')
    assert again == first
    # items that need the text still read the file
    typ, data = m.fetch('1', '(ENVELOPE BODY.PEEK[HEADER])')
    assert data[0][1].startswith(b'X' * 20)
    # an expunged message leaves the cache; a new session uses the same cache file
    m.store('1', '+FLAGS', r'(\Deleted)')
    m.expunge()
    b = login(inst)
    b.select('INBOX')
    typ, data = b.fetch('1', 'ENVELOPE')
    assert data[0] == first[1].replace(b'2 (', b'1 (', 1).split(b' BODYSTRUCTURE')[0] + b')'
    b.logout()
    m.logout()


def test_queue_delivery_during_session(instance):
    """A message through `postern queue inject`, qmgr and local shows up in a selected INBOX at the next NOOP."""
    from conftest import build_dir
    for prog in ('qmgr', 'local', 'imapd'):
        if not (build_dir() / 'bin' / prog).exists():
            pytest.skip(f'not built yet: {prog}')
    user = f'ivy@{instance.domain}'
    r = instance.cli('user', 'add', user, '--password-stdin', input='ivy-password\n')
    if r.returncode != 0:
        pytest.skip(f'cannot create an account: {r.stderr.strip()}')
    m = imaplib.IMAP4('127.0.0.1', instance.port('imap'), timeout=20)
    m.login(user, 'ivy-password')
    assert m.select('INBOX')[1] == [b'0']
    msg = f'From: <a@example.org>\nTo: <{user}>\nSubject: through the queue\n\nhello\n'
    instance.cli('queue', 'inject', '-f', 'a@example.org', user, input=msg, check=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m.noop()
        if m.untagged_responses.get('EXISTS', [b'0'])[-1] == b'1':
            break
        time.sleep(0.2)
    assert m.untagged_responses['EXISTS'][-1] == b'1'
    typ, data = m.fetch('1', '(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
    assert data[0][0].startswith(b'1 (UID 1 FLAGS (\\Recent)') and data[0][1] == b'Subject: through the queue\r\n\r\n'
    assert m.search(None, 'RECENT')[1] == [b'1']
    m.logout()


APPENDED = [
    b'From: Ann <ann@example.org>\r\nTo: bob@example.org, "Carl X" <carl@example.org>\r\nSubject: plain\r\n'
    b'X-Tag: needle one\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n',
    b'From: d@example.org\nSubject: bare LF\n folded line\nX-Tag: hay\n\nline1\nline2\n',
    b'From: e@example.org\r\nSubject: multipart\r\nX-Tag: needle two\r\nMIME-Version: 1.0\r\n'
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n'
    b'--b\r\nContent-Type: application/octet-stream; name=x.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    b'AAAA\r\n--b--\r\n',
]
CACHED_ITEMS = '(ENVELOPE BODY BODYSTRUCTURE)'


def test_append_fills_cache(inst):
    """APPEND leaves ENVELOPE, BODY, BODYSTRUCTURE and the header in the cache: the first FETCH and header SEARCH
    after it open no message file (files changed behind our back do not show), and what they return is what a
    parse of the file gives."""
    m = login(inst)
    for msg in APPENDED:
        assert m.append('INBOX', None, None, msg)[0] == 'OK'
    md = maildir(inst)
    files = sorted((md / 'cur').iterdir())
    saved = {p: p.read_bytes() for p in files}
    for p in files:
        p.write_bytes(b'Subject: changed\n\nchanged\n')
    m.select('INBOX')
    typ, cached = m.fetch('1:*', CACHED_ITEMS)
    assert typ == 'OK' and b'changed' not in b''.join(d if isinstance(d, bytes) else d[0] for d in cached)
    assert m.search(None, 'HEADER', 'X-Tag', 'needle')[1] == [b'1 3']
    m.logout()
    # the truth: the original files, no cache
    for p, data in saved.items():
        p.write_bytes(data)
    (md / 'postern-cache.lmdb').unlink()
    (md / 'postern-cache.lmdb-lock').unlink(missing_ok=True)
    b = login(inst)
    b.select('INBOX')
    assert b.fetch('1:*', CACHED_ITEMS) == ('OK', cached)
    assert b.search(None, 'HEADER', 'X-Tag', 'needle')[1] == [b'1 3']
    assert b.search(None, 'HEADER', 'Subject', 'folded')[1] == [b'2']
    b.logout()


def test_fetch_keeps_header_for_search(inst):
    """After a FETCH ENVELOPE parsed the messages, a header SEARCH on any field is served from the cache."""
    m = login(inst)
    for msg in APPENDED:
        m.append('INBOX', None, None, msg)
    m.logout()
    md = maildir(inst)
    (md / 'postern-cache.lmdb').unlink()
    (md / 'postern-cache.lmdb-lock').unlink(missing_ok=True)
    b = login(inst)
    b.select('INBOX')
    assert b.fetch('1:*', 'ENVELOPE')[0] == 'OK'
    for p in (md / 'cur').iterdir():
        p.write_bytes(b'X-Tag: needle\n\n')
    assert b.search(None, 'HEADER', 'X-Tag', 'needle')[1] == [b'1 3']
    assert b.search(None, 'HEADER', 'Message-ID', '<1@x>')[1] == [b'1']
    b.logout()
