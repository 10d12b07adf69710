"""imapd's read-path shortcuts through imaplib on a real instance (the fixture of test_imapd.py): header SEARCH
answered from the header cache (same answers the second time, after a flag change and after an expunge), BODY[]
and RFC822 sent without a MIME parse (CRLF bytes matching RFC822.SIZE, partials, a message with mixed line ends),
and one FETCH over more messages than fit in the output buffer.
"""
import re

from test_imapd import inst  # noqa: F401  (the instance fixture)
from test_imapd_selected import deliver, flat, login


def fresh(inst):
    """A session with INBOX selected: the first login creates the Maildir deliver() writes into."""
    m = login(inst)
    m.select('INBOX')
    return m


def msg(i, tag=False, body='plain body line\n'):
    hdr = f'From: S{i} <s{i}@example.org>\nTo: fred@example.test\nSubject: read path {i}\n'
    if tag:
        hdr += 'X-Tag: needle\n  folded\n'
    return (hdr + '\n' + body).encode()


def test_header_search_cached(inst):
    m = fresh(inst)
    deliver(inst, '1.M1.t', msg(1, tag=True))
    deliver(inst, '2.M2.t', msg(2, body='X-Tag: needle\n'))   # only in the body: no header hit
    deliver(inst, '3.M3.t', msg(3, tag=True))
    m.select('INBOX')
    for _ in range(2):   # the second answer comes from the cached headers
        assert m.uid('SEARCH', None, 'HEADER', 'X-Tag', 'needle')[1] == [b'1 3']
        assert m.uid('SEARCH', None, 'HEADER', 'X-Tag', 'folded')[1] == [b'1 3']
        assert m.uid('SEARCH', None, 'BODY', 'needle')[1] == [b'2']
        assert m.uid('SEARCH', None, 'TEXT', 'needle')[1] == [b'1 2 3']
    m.uid('STORE', '1', '+FLAGS', r'(\Deleted)')
    assert m.uid('SEARCH', None, 'HEADER', 'X-Tag', 'needle')[1] == [b'1 3']
    m.expunge()
    assert m.uid('SEARCH', None, 'HEADER', 'X-Tag', 'needle')[1] == [b'3']
    m.logout()
    m = login(inst)   # a new session reads the same cache file
    m.select('INBOX')
    assert m.uid('SEARCH', None, 'HEADER', 'Subject', '"read path 3"')[1] == [b'3']
    m.logout()


def test_whole_message_fetch(inst):
    m = fresh(inst)
    raw = b'Subject: mixed\r\nFrom: a@example.org\n\nline one\r\nline two\n\nend'
    deliver(inst, '1.M1.t', raw)
    want = raw.replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')
    m.select('INBOX')
    typ, data = m.fetch('1', '(RFC822.SIZE BODY.PEEK[])')
    assert typ == 'OK'
    assert int(re.search(rb'RFC822.SIZE (\d+)', data[0][0]).group(1)) == len(want)
    assert data[0][1] == want
    assert m.fetch('1', '(RFC822)')[1][0][1] == want
    assert m.fetch('1', '(BODY.PEEK[]<5.12>)')[1][0][1] == want[5:17]
    assert m.fetch('1', '(BODY.PEEK[TEXT])')[1][0][1] == want[want.index(b'\r\n\r\n') + 4:]
    m.logout()


def test_fetch_beyond_one_buffer(inst):
    m = fresh(inst)
    n = 400
    for i in range(1, n + 1):
        deliver(inst, f'{i}.M{i}.t', msg(i, body='x' * 100 + '\n'))
    m.select('INBOX')
    for _ in range(2):   # parsed, then from the cache
        typ, data = m.fetch('1:*', '(UID ENVELOPE BODY.PEEK[])')
        got = flat(data)
        assert typ == 'OK' and len(got) == n
        assert all(b'read path' in g for g in got)
    m.logout()
