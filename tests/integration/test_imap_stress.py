"""50 IMAP sessions on one mailbox at once (heavy): each FETCHes, STOREs, APPENDs and now and then EXPUNGEs, while
smtplib delivers through smtpd, qmgr and local, for a bounded time. No command may fail, no response may be
malformed, no imapd may crash, and at the end every session's view (UIDs in sequence order, flags) is the same
as a fresh session's.
"""
import imaplib
import random
import re
import smtplib
import threading
import time

import pytest

from conftest import heavy

SESSIONS = 50
DURATION = 15.0
PASSWORD = 'stress-pw'
FLAGS = (r'\Seen', r'\Flagged', r'\Answered', r'\Draft')


def view(m, strict=False):
    """[(uid, frozenset(flags))] in sequence order, UIDs ascending. FETCH responses without UID are other sessions'
    flag changes announced before the tagged OK: they override. Messages expunged by others but not announced yet
    (FETCH may not announce expunges) are left out, so sequence numbers may have gaps unless strict."""
    m.untagged_responses.pop('FETCH', None)
    typ, data = m.uid('FETCH', '1:*', '(FLAGS)')
    assert typ == 'OK', data
    byseq, later = {}, []
    for d in data:
        if not d:
            continue
        mm = re.fullmatch(rb'(\d+) \((.*)\)', d)
        assert mm, d
        seq, items = int(mm.group(1)), mm.group(2)
        flags = re.search(rb'FLAGS \(([^)]*)\)', items)
        assert flags, d
        flags = frozenset(f for f in flags.group(1).split() if f != b'\\Recent')
        uid = re.search(rb'UID (\d+)', items)
        if uid:
            byseq[seq] = [int(uid.group(1)), flags]
        else:
            later.append((seq, flags))
    for seq, flags in later:
        if seq in byseq:
            byseq[seq][1] = flags
    if strict:
        assert sorted(byseq) == list(range(1, len(byseq) + 1)), sorted(byseq)
    out = [tuple(byseq[k]) for k in sorted(byseq)]
    assert [u for u, _ in out] == sorted(u for u, _ in out)
    return out


@heavy
def test_fifty_sessions_with_deliveries(make_instance):
    inst = make_instance()
    inst.require('imap', 'smtp')
    user = f'stress@{inst.domain}'
    inst.cli('user', 'add', user, '--password-stdin', input=PASSWORD + '\n', check=True)
    inst.start()
    m0 = imaplib.IMAP4('127.0.0.1', inst.port('imap'), timeout=30)
    m0.login(user, PASSWORD)
    for k in range(30):
        m0.append('INBOX', None, None, b'Subject: seed %d\r\n\r\nseed\r\n' % k)
    m0.logout()

    stop = threading.Event()
    errors = []
    sessions = []
    counts = {'ops': 0, 'delivered': 0}

    def worker(n):
        rnd = random.Random(n)
        try:
            m = imaplib.IMAP4('127.0.0.1', inst.port('imap'), timeout=60)
            m.login(user, PASSWORD)
            assert m.select('INBOX')[0] == 'OK'
            sessions.append(m)
            while not stop.is_set():
                op = rnd.random()
                uids = [u for u, _ in view(m)]
                if op < 0.35 and uids:
                    u = rnd.choice(uids)
                    typ, data = m.uid('STORE', str(u), rnd.choice(('+FLAGS', '-FLAGS')), rnd.choice(FLAGS))
                elif op < 0.5:
                    typ, data = m.append('INBOX', None, None, b'Subject: s%d\r\n\r\nfrom session %d\r\n' % (n, n))
                elif op < 0.55 and uids:
                    typ, data = m.uid('STORE', str(rnd.choice(uids)), '+FLAGS', r'(\Deleted)')
                    assert typ == 'OK', data
                    typ, data = m.expunge()
                elif op < 0.75 and uids:
                    typ, data = m.uid('FETCH', str(rnd.choice(uids)), '(UID RFC822.SIZE BODY.PEEK[HEADER])')
                else:
                    typ, data = m.noop()
                assert typ == 'OK', (typ, data)
                counts['ops'] += 1
                time.sleep(rnd.random() * 0.05)
        except Exception as e:      # noqa: BLE001 -- any failure of any session fails the test
            errors.append(f'session {n}: {e!r}')

    def deliverer():
        try:
            k = 0
            while not stop.is_set():
                with smtplib.SMTP('127.0.0.1', inst.port('smtp'), timeout=30) as s:
                    s.sendmail('someone@example.org', [user],
                               f'From: someone@example.org\r\nTo: {user}\r\nSubject: smtp {k}\r\n\r\nhi\r\n')
                k += 1
                counts['delivered'] = k
                time.sleep(0.1)
        except Exception as e:      # noqa: BLE001
            errors.append(f'smtp: {e!r}')

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(SESSIONS)]
    threads.append(threading.Thread(target=deliverer))
    for t in threads:
        t.start()
    time.sleep(DURATION)
    stop.set()
    for t in threads:
        t.join(90)
    assert not errors, errors[:10]
    assert len(sessions) == SESSIONS
    assert counts['ops'] > SESSIONS * 5 and counts['delivered'] > 10, counts

    # let the queue drain into the mailbox
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = [p for d in ('incoming', 'active', 'deferred') for p in inst.path('queue', d).glob('*')]
        if not left:
            break
        time.sleep(0.2)
    assert not left, left
    time.sleep(0.5)
    fresh = imaplib.IMAP4('127.0.0.1', inst.port('imap'), timeout=60)
    fresh.login(user, PASSWORD)
    fresh.select('INBOX')
    truth = view(fresh, strict=True)
    typ, data = fresh.uid('SEARCH', 'SUBJECT', 'smtp')
    assert len(data[0].split()) > 0
    for n, m in enumerate(sessions):
        assert m.noop()[0] == 'OK'
        assert view(m, strict=True) == truth, f'session {n} disagrees'
        m.logout()
    fresh.logout()
    bad = [ln for ln in inst.log_lines() if re.search(r'imapd.*(killed by signal|exited with status)|panic', ln)]
    assert not bad, bad
