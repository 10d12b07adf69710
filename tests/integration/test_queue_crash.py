"""The crash test of the queue: many messages through smtpd from concurrent SMTP clients, some for the local
Maildir and some relayed to a fake next hop (relayhost), while smtpd, qmgr, local and smtp are killed with
SIGKILL at random moments (master restarts them). Afterwards every message that got 250 has been delivered,
none is lost, local delivery made no duplicate, and relayed duplicates are no more than the attempts smtp logged
as cut off between the start of a transaction and its receipt (the window SMTP cannot close, RFC 1047).

POSTERN_CRASH_MESSAGES sets the count (default 2000), POSTERN_CRASH_SEED the random seed."""
import os
import random
import re
import signal
import smtplib
import threading
import time

import pytest

from conftest import build_dir, free_port
from queue_sink import Sink
from test_queue import _demo, _maildir_files, _pids, _wait

CLIENTS = 4
KILL_TARGETS = ('smtpd', 'qmgr', 'local', 'smtp')
KILL_AFTER = 4.0   # seconds of kills after the last message was sent


def _client(port, user, numbers, accepted, refused, stop):
    """Send one message per number, one SMTP session at a time: a dropped session reconnects and goes on with
    the next message. A message counts as accepted only when DATA got 250."""
    conn = None
    for i in numbers:
        if stop.is_set():
            break
        rcpt = user if i % 2 == 0 else f'r{i}@relay.test'
        msg = (f'From: <sender@client.test>\r\nTo: <{rcpt}>\r\nSubject: crash {i}\r\n'
               f'Message-ID: <crash{i}@client.test>\r\n\r\nbody of {i}\r\n')
        try:
            if conn is None:
                conn = smtplib.SMTP('127.0.0.1', port, timeout=20)
                conn.ehlo('client.test')
            conn.sendmail('sender@client.test', [rcpt], msg)
            accepted.append(i)
        except (smtplib.SMTPException, OSError) as e:
            # a refusal, or the session died (smtpd killed): the message is not counted as accepted and never
            # sent again (it may have been queued just before the kill); the next one gets a fresh session
            refused.append((i, getattr(e, 'smtp_code', type(e).__name__)))
            try:
                if conn:
                    conn.close()
            except OSError:
                pass
            conn = None
            time.sleep(0.02)
    if conn:
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            pass


def test_kill9_everything_loses_nothing(make_instance):
    n = int(os.environ.get('POSTERN_CRASH_MESSAGES', '2000'))
    rnd = random.Random(int(os.environ.get('POSTERN_CRASH_SEED', '20261123')))
    inst = make_instance(start=False)
    for prog in ('smtpd', 'qmgr', 'local', 'smtp'):
        if not (build_dir() / 'bin' / prog).exists():
            pytest.skip(f'not built yet: {prog}')
    sink = Sink(free_port())
    sink.open()
    inst.cli('config', 'set', 'queue_scan_interval=1s', 'queue_time_scale=600',
             f'relayhost=[127.0.0.1]:{sink.port}', 'smtp_tls_security_level=none', check=True)
    inst.start()
    user, maildir = _demo(inst)

    accepted, refused, stop = [], [], threading.Event()
    numbers = list(range(n))
    threads = [threading.Thread(target=_client, args=(inst.port('smtp'), user, numbers[k::CLIENTS], accepted,
                                                      refused, stop), daemon=True) for k in range(CLIENTS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    kills = {p: 0 for p in KILL_TARGETS}
    try:
        # kill on for a while after the last message went in, so that deliveries are hit too
        sent_at = None
        while sent_at is None or time.monotonic() - sent_at < KILL_AFTER:
            if sent_at is None and not any(t.is_alive() for t in threads):
                sent_at = time.monotonic()
            time.sleep(rnd.uniform(0.1, 0.5))
            prog = rnd.choice(KILL_TARGETS)
            for pid in _pids(inst, prog):
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills[prog] += 1
                except ProcessLookupError:
                    pass
            if time.monotonic() - t0 > 200:
                stop.set()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    send_time = (sent_at or time.monotonic()) - t0

    def counts():
        local = {}
        for f in _maildir_files(maildir):
            try:
                m = re.search(r'^Subject: crash (\d+)$', f.read_text(errors='replace'), re.M)
            except FileNotFoundError:
                continue
            if m:
                local[int(m.group(1))] = local.get(int(m.group(1)), 0) + 1
        remote = {int(k): v for k, v in sink.subjects(r'^Subject: crash (\d+)\r?$').items()}
        return local, remote

    def all_there():
        local, remote = counts()
        return all((local if i % 2 == 0 else remote).get(i) for i in accepted)
    try:
        _wait(all_there, timeout=120, what='every accepted message delivered', inst=inst)
        _wait(lambda: 'Mail queue is empty' in inst.cli('queue', 'list').stdout, timeout=60,
              what='an empty queue', inst=inst)
    finally:
        local, remote = counts()
        missing = [i for i in accepted if not (local if i % 2 == 0 else remote).get(i)]
        dup_local = sum(c - 1 for c in local.values())
        dup_remote = sum(c - 1 for c in remote.values())
        wrong = [i for i in local if i % 2] + [i for i in remote if i % 2 == 0]
        cut_off = sum(1 for line in inst.log_lines() if 'an earlier attempt was cut off' in line)
        by_receipt = sum(1 for line in inst.log_lines() if 'before a restart: receipt' in line)
        print(f'\ncrash test: {n} messages, {len(accepted)} accepted, {len(refused)} not accepted, '
              f'sent in {send_time:.1f}s; kills {kills}; missing {len(missing)}; duplicates: '
              f'{dup_local} in the Maildir, {dup_remote} at the relay; relay retries stopped by a receipt '
              f'{by_receipt}, relay attempts cut off {cut_off}')
        sink.close()
    assert not missing, missing[:20]
    assert not wrong, wrong[:20]
    assert sum(kills.values()) > 0
    # most of the mail must have got through despite the kills
    assert len(accepted) >= n * 0.8, (len(accepted), refused[:20])
    # local deliveries are exactly once (receipts and the Maildir check); a relayed duplicate needs smtp killed
    # after the sink took the message and before the receipt, and every such retry is logged as cut off
    assert dup_local == 0
    assert dup_remote <= cut_off, (dup_remote, cut_off)
