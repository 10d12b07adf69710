"""imapd flags that outlive one folder or one session, through imaplib on a real instance (the fixture of
test_imapd.py): keywords carried by COPY, MOVE and APPEND into a folder whose keyword letters differ, a folder
whose 26 keyword letters are taken (PERMANENTFLAGS without \\*, NO [LIMIT] for a new keyword, copies keep the
message), and \\Recent as Dovecot has it (messages first seen by a session, not everything at the first SELECT).
"""
import imaplib
import os
import re
import shutil

import pytest

from test_imapd import IS_ROOT, inst  # noqa: F401  (the instance fixture)
from test_imapd_selected import deliver, login, maildir

MSG = b'From: a@example.org\r\nSubject: kw\r\n\r\nbody\r\n'


def folder(inst, name):
    return maildir(inst) / ('.' + name)


def flags_of(m, seq):
    typ, data = m.fetch(seq, 'FLAGS')
    assert typ == 'OK'
    return [re.search(rb'FLAGS \(([^)]*)\)', d).group(1).decode() for d in data]


def test_copy_move_keep_keywords(inst):
    m = login(inst)
    m.create('Other')
    # Other names its letters in another order: Zeta is 'a' there
    assert m.append('Other', '(Zeta)', None, MSG)[0] == 'OK'
    assert m.append('INBOX', r'($Label1 \Seen Work)', None, MSG)[0] == 'OK'
    assert m.append('INBOX', r'(Work \Flagged)', None, MSG)[0] == 'OK'
    m.select('INBOX')
    assert flags_of(m, '1:2') == [r'\Seen \Recent $Label1 Work', r'\Flagged \Recent Work']
    typ, data = m.copy('1', 'Other')
    assert typ == 'OK' and b'COPYUID' in data[0]
    typ, data = m._simple_command('MOVE', '2', 'Other')
    assert typ == 'OK'
    m.select('Other')
    assert flags_of(m, '1:3') == [r'\Recent Zeta', r'\Seen \Recent $Label1 Work', r'\Flagged \Recent Work']
    assert (folder(inst, 'Other') / 'postern-keywords').read_text() == 'Zeta\n$Label1\nWork\n'
    names = sorted(p.name.rsplit(',', 1)[1] for p in (folder(inst, 'Other') / 'cur').iterdir())
    assert names == ['Fc', 'Sbc', 'a']
    # COPY within the same folder keeps them too
    m.copy('2', 'Other')
    m.noop()
    assert flags_of(m, '4') == [r'\Seen \Recent $Label1 Work']
    m.logout()


def test_full_keyword_list(inst):
    m = login(inst)
    m.create('Full')
    many = ['k%02d' % i for i in range(26)]
    assert m.append('Full', '(%s)' % ' '.join(many), None, MSG)[0] == 'OK'
    assert m.append('INBOX', r'(\Seen k03 Extra)', None, MSG)[0] == 'OK'
    m.select('Full')
    perm = m.untagged_responses['PERMANENTFLAGS'][0]
    assert b'\\*' not in perm and b'k25' in perm
    assert flags_of(m, '1') == ['\\Recent ' + ' '.join(many)]
    # a new keyword has no letter left: NO [LIMIT]; a known one still works
    typ, data = m._simple_command('STORE', '1', '+FLAGS', '(Another)')
    assert typ == 'NO' and b'[LIMIT]' in data[0]
    assert m.store('1', '-FLAGS', '(k00)')[0] == 'OK'
    # APPEND and COPY keep the message and the keywords that have a letter, drop the others (logged)
    assert m.append('Full', r'(\Draft k01 Extra)', None, MSG)[0] == 'OK'
    m.select('INBOX')
    assert m.copy('1', 'Full')[0] == 'OK'
    m.select('Full')
    # (the APPEND arrived while Full was selected: that session took its \Recent; the copy is new here)
    assert flags_of(m, '2:3') == [r'\Draft k01', r'\Seen \Recent k03']
    assert 'not kept' in inst.log()
    m.logout()


def test_recent_only_for_new_messages(inst):
    m = login(inst)
    m.append('INBOX', None, None, MSG)
    m.logout()
    # a folder another tool made: one message already read (cur/), one just delivered (new/); no mark yet
    md = maildir(inst)
    old = md / '.Imported'
    for sub in ('cur', 'new', 'tmp'):
        (old / sub).mkdir(parents=True)
    (old / 'cur' / '1700000000.M1P1.host:2,S').write_bytes(b'Subject: old\n\nx\n')
    (old / 'new' / '1700000100.M2P1.host').write_bytes(b'Subject: new\n\nx\n')
    if IS_ROOT:
        st = os.stat(md)
        for p in [old, *old.rglob('*')]:
            os.chown(p, st.st_uid, st.st_gid)
    m = login(inst)
    typ, data = m.status('Imported', '(MESSAGES RECENT)')
    assert data == [b'"Imported" (MESSAGES 2 RECENT 1)']
    m.select('Imported')
    assert m.untagged_responses['RECENT'] == [b'1']
    seq = m.search(None, 'RECENT')[1][0]
    typ, data = m.fetch(seq, 'BODY.PEEK[HEADER.FIELDS (SUBJECT)]')
    assert data[0][1] == b'Subject: new\r\n\r\n'
    m.logout()
    # the next session: nothing is recent any more; a delivery is, once
    m = login(inst)
    m.select('Imported')
    assert m.untagged_responses['RECENT'] == [b'0']
    deliver_to = folder(inst, 'Imported')
    (deliver_to / 'tmp' / 'x').write_bytes(b'Subject: third\n\nx\n')
    if IS_ROOT:
        st = os.stat(md)
        os.chown(deliver_to / 'tmp' / 'x', st.st_uid, st.st_gid)
    os.rename(deliver_to / 'tmp' / 'x', deliver_to / 'new' / '1800000000.M3P1.host')
    m.noop()
    assert m.search(None, 'RECENT')[1] == [b'3']
    m.logout()
    # INBOX had its message APPENDed after the first login: recent for the first SELECT, then not
    m = login(inst)
    assert m.select('INBOX')[0] == 'OK' and m.untagged_responses['RECENT'] == [b'1']
    m.logout()
    m = login(inst)
    m.select('INBOX', readonly=True)
    assert m.untagged_responses['RECENT'] == [b'0']
    m.logout()
