"""imapd LIST with CHILDREN (RFC 3348), LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819), checked line by line
on the wire, and RENAME of the selected folder and of a hierarchy that cannot move as a whole. The instance is
test_imapd.py's fixture. Where the RFCs leave a choice the expected answers are Dovecot 2.3's for the same
folders (\\Noselect for a prefix-only parent in a basic LIST, \\NonExistent in an extended one).
"""
import imaplib
import socket

import pytest

from test_imapd import inst  # noqa: F401  (the instance fixture)
from test_imapd_selected import USER, PASS, login, maildir


class Raw:
    """One IMAP connection speaking raw lines, so the tests see the exact responses and their order."""

    def __init__(self, port):
        self.s = socket.create_connection(('127.0.0.1', port), timeout=10)
        self.f = self.s.makefile('rb')
        self.n = 0
        assert self.f.readline().startswith(b'* OK')
        status, _ = self.cmd('LOGIN "%s" "%s"' % (USER, PASS))
        assert status.startswith(b'OK')

    def cmd(self, text):
        self.n += 1
        tag = b'x%d' % self.n
        self.s.sendall(tag + b' ' + text.encode() + b'\r\n')
        lines = []
        while True:
            line = self.f.readline()
            assert line, 'connection closed'
            line = line.rstrip(b'\r\n')
            if line.startswith(tag + b' '):
                return line[len(tag) + 1:], lines
            lines.append(line.decode())

    def ok(self, text):
        status, lines = self.cmd(text)
        assert status.startswith(b'OK'), (text, status, lines)
        return lines

    def close(self):
        self.cmd('LOGOUT')
        self.s.close()


SPECIAL = ['Archive', 'Drafts', 'Junk', 'Sent', 'Trash']


def prepare(inst):
    m = login(inst)
    for name in ('a/b', 'c', 'd/e/f'):
        assert m.create(name)[0] == 'OK'
    for name in ('a/b', 'c', 'd/e/f'):
        assert m.subscribe(name)[0] == 'OK'
    assert m.delete('c')[0] == 'OK'          # still subscribed: a subscription outlives its folder
    assert m.append('INBOX', None, None, b'Subject: one\r\n\r\nx\r\n')[0] == 'OK'
    m.logout()
    return Raw(inst.imap)


def test_capabilities(inst):
    r = Raw(inst.imap)
    caps = r.ok('CAPABILITY')[0].split()
    for c in ('CHILDREN', 'LIST-EXTENDED', 'LIST-STATUS', 'SPECIAL-USE'):
        assert c in caps
    r.close()


def test_basic_list_and_lsub(inst):
    r = prepare(inst)
    assert r.ok('LIST "" %') == [
        '* LIST (\\HasNoChildren) "/" "INBOX"',
        *['* LIST (\\HasNoChildren \\%s) "/" "%s"' % (n, n) for n in SPECIAL],
        '* LIST (\\Noselect \\HasChildren) "/" "a"',
        '* LIST (\\Noselect \\HasChildren) "/" "d"',
    ]
    assert r.ok('LIST "" "d/*"') == [
        '* LIST (\\Noselect \\HasChildren) "/" "d/e"',
        '* LIST (\\HasNoChildren) "/" "d/e/f"',
    ]
    assert r.ok('LIST "" ""') == ['* LIST (\\Noselect) "/" ""']
    assert r.ok('LSUB "" %') == [
        '* LSUB () "/" "INBOX"',
        *['* LSUB (\\%s) "/" "%s"' % (n, n) for n in SPECIAL],
        '* LSUB (\\Noselect) "/" "a"',
        '* LSUB () "/" "c"',
        '* LSUB (\\Noselect) "/" "d"',
    ]
    r.close()


def test_list_extended_selection(inst):
    r = prepare(inst)
    assert r.ok('LIST (SUBSCRIBED) "" *') == [
        '* LIST (\\Subscribed) "/" "INBOX"',
        *['* LIST (\\Subscribed) "/" "%s"' % n for n in SPECIAL],
        '* LIST (\\Subscribed) "/" "a/b"',
        '* LIST (\\Subscribed \\NonExistent) "/" "c"',
        '* LIST (\\Subscribed) "/" "d/e/f"',
    ]
    assert r.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" %') == [
        '* LIST (\\Subscribed) "/" "INBOX"',
        *['* LIST (\\Subscribed) "/" "%s"' % n for n in SPECIAL],
        '* LIST (\\NonExistent) "/" "a" (CHILDINFO ("SUBSCRIBED"))',
        '* LIST (\\Subscribed \\NonExistent) "/" "c"',
        '* LIST (\\NonExistent) "/" "d" (CHILDINFO ("SUBSCRIBED"))',
    ]
    # the children shown by "*" need no CHILDINFO
    assert r.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "d*"') == ['* LIST (\\Subscribed) "/" "d/e/f"']
    assert r.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "d/%"') == [
        '* LIST (\\NonExistent) "/" "d/e" (CHILDINFO ("SUBSCRIBED"))']
    assert r.ok('LIST (SPECIAL-USE) "" *') == ['* LIST (\\%s) "/" "%s"' % (n, n) for n in SPECIAL]
    assert r.ok('LIST (REMOTE) "" %') == r.ok('LIST () "" %') == [
        '* LIST () "/" "INBOX"',
        *['* LIST () "/" "%s"' % n for n in SPECIAL],
        '* LIST (\\NonExistent) "/" "a"',
        '* LIST (\\NonExistent) "/" "d"',
    ]
    r.close()


def test_list_extended_return(inst):
    r = prepare(inst)
    assert r.ok('LIST "" % RETURN (CHILDREN)') == [
        '* LIST (\\HasNoChildren) "/" "INBOX"',
        *['* LIST (\\HasNoChildren) "/" "%s"' % n for n in SPECIAL],
        '* LIST (\\NonExistent \\HasChildren) "/" "a"',
        '* LIST (\\NonExistent \\HasChildren) "/" "d"',
    ]
    assert r.ok('LIST "" (INBOX "d/%" Sent) RETURN (SUBSCRIBED SPECIAL-USE)') == [
        '* LIST (\\Subscribed) "/" "INBOX"',
        '* LIST (\\Subscribed \\Sent) "/" "Sent"',
        '* LIST (\\NonExistent) "/" "d/e"',
    ]
    assert r.ok('LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN)')[-3:] == [
        '* LIST (\\Subscribed \\HasNoChildren) "/" "a/b"',
        '* LIST (\\Subscribed \\NonExistent \\HasNoChildren) "/" "c"',
        '* LIST (\\Subscribed \\HasNoChildren) "/" "d/e/f"',
    ]
    # LIST-STATUS: each selectable folder's STATUS right after its LIST line
    assert r.ok('LIST "" (INBOX Trash a) RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))') == [
        '* LIST () "/" "INBOX"',
        '* STATUS "INBOX" (MESSAGES 1 UNSEEN 1 UIDNEXT 2)',
        '* LIST () "/" "Trash"',
        '* STATUS "Trash" (MESSAGES 0 UNSEEN 0 UIDNEXT 1)',
        '* LIST (\\NonExistent) "/" "a"',
    ]
    r.close()


def test_list_extended_errors(inst):
    r = prepare(inst)
    for bad in ('LIST (RECURSIVEMATCH) "" %', 'LIST (BOGUS) "" %', 'LIST "" % RETURN (BOGUS)',
                'LIST "" % RETURN (STATUS (BOGUS))', 'LIST "" % RETURN (STATUS)', 'LIST "" () ',
                'LIST "" % RETURNS (CHILDREN)', 'LSUB (SUBSCRIBED) "" %', 'LIST "" % RETURN CHILDREN'):
        status, lines = r.cmd(bad)
        assert status.startswith(b'BAD') and lines == [], (bad, status, lines)
    # still usable afterwards
    assert r.ok('LIST "" INBOX') == ['* LIST (\\HasNoChildren) "/" "INBOX"']
    r.close()


def test_rename_selected(inst):
    m = login(inst)
    m.create('Proj/old')
    for i in range(2):
        m.append('Proj/old', None, None, b'Subject: %d\r\n\r\nx\r\n' % i)
    m.select('Proj/old')
    uv = m.untagged_responses['UIDVALIDITY'][0]
    m.store('1', '+FLAGS', r'(\Flagged)')
    assert m.rename('Proj/old', 'Proj/new')[0] == 'OK'
    # still selected, same UIDs and flags, and the index follows the folder
    typ, data = m.fetch('1:*', '(UID FLAGS)')
    assert typ == 'OK' and data == [b'1 (UID 1 FLAGS (\\Flagged \\Recent))', b'2 (UID 2 FLAGS (\\Recent))']
    assert 'EXPUNGE' not in m.untagged_responses
    m.append('Proj/new', None, None, b'Subject: 3\r\n\r\nx\r\n')
    m.noop()
    assert m.untagged_responses['EXISTS'][-1] == b'3'
    # a parent of the selected folder
    assert m.rename('Proj', 'Done')[0] == 'OK'
    assert m.store('2', '+FLAGS', r'(\Seen)')[0] == 'OK'
    assert m.status('Done/new', '(MESSAGES UIDVALIDITY)')[1] == [
        b'"Done/new" (MESSAGES 3 UIDVALIDITY ' + uv + b')']
    typ, data = m.list('""', '*')
    assert not any(b'Proj' in d for d in data)
    m.close()
    m.select('Done/new')
    assert m.untagged_responses['UIDVALIDITY'][0] == uv
    assert m.fetch('2', 'FLAGS')[1] == [b'2 (FLAGS (\\Seen))']
    m.logout()


def test_rename_hierarchy_all_or_nothing(inst):
    m = login(inst)
    child = 'c' * 60
    assert m.create('A/' + child)[0] == 'OK'
    assert m.append('A', None, None, b'Subject: kept\r\n\r\nx\r\n')[0] == 'NO'   # A is only a prefix
    assert m.create('A')[0] == 'OK'
    # ".BBB...B" fits in a directory name, ".BBB...B.ccc...c" does not: the second rename fails and the first
    # is undone
    typ, data = m.rename('A', 'B' * 200)
    assert typ == 'NO' and b'[CANNOT]' in data[0]
    typ, data = m.list('""', '*')
    names = sorted(d.rsplit(b' ', 1)[1].strip(b'"').decode() for d in data)
    assert names == sorted(['INBOX', 'A', 'A/' + child, *SPECIAL])
    assert sorted(p.name for p in maildir(inst).glob('.[AB]*') if p.name != '.Archive') == ['.A', '.A.' + child]
    # a target that exists below the new name stops it before anything moves
    assert m.create('Z/' + child)[0] == 'OK'
    typ, data = m.rename('A', 'Z')
    assert typ == 'NO' and b'ALREADYEXISTS' in data[0]
    assert m.status('A', '(MESSAGES)')[0] == 'OK'
    assert m.rename('A', 'Y')[0] == 'OK'
    typ, data = m.list('""', 'Y*')
    assert len(data) == 2
    m.logout()


def test_selected_folder_renamed_by_another_session(inst):
    a, b = login(inst), login(inst)
    a.create('Shared')
    a.append('Shared', None, None, b'Subject: s\r\n\r\nx\r\n')
    a.select('Shared')
    assert b.rename('Shared', 'Moved')[0] == 'OK'
    # a cannot follow a rename it did not make: it is told and disconnected, as Dovecot does
    with pytest.raises(imaplib.IMAP4.abort, match='renamed or deleted'):
        a.noop()
    assert b.select('Moved')[1] == [b'1']
    b.logout()
