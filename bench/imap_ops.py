#!/usr/bin/env python3
"""imap_ops.py BENCH_SCRIPT HOST IMAP_PORT POP3_PORT USER PASS

Runs the shared imap-bench.py (its path is BENCH_SCRIPT) operation by operation for bench/run, so that an
operation the server does not support yet ends the IMAP part with the rest marked "n/a" instead of failing the
whole run, and POP3 is still measured. Prints one line per operation: "op<TAB>LABEL<TAB>MS" or
"op<TAB>LABEL<TAB>n/a", and "error<TAB>TEXT" for the first failure of each part.

    imap_ops.py BENCH_SCRIPT idle HOST IMAP_PORT USER PASS
holds one logged-in IMAP session with INBOX selected, prints "ready" and waits for a line on stdin, so that
bench/run can read the resident memory of the server process serving an idle session.
"""
import importlib.util
import imaplib
import os
import poplib
import sys
import time

# The operations imap-bench.py times, in order, as "{}"-templates of its labels (filled with N, SIZE...).
IMAP_OPS = [
    "APPEND {N} x {SIZE} B (one per command)",
    "LOGIN + SELECT INBOX",
    "FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE) 1st",
    "FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE) 2nd",
    "UID SEARCH HEADER X-Bench-Tag needle",
    "FETCH {BODIES} full bodies (BODY.PEEK[], one command)",
    "STORE 1:* +FLAGS.SILENT (\\Seen)",
    "STORE 1:{EXPUNGE} +FLAGS.SILENT (\\Deleted) + EXPUNGE",
]
POP3_OPS = ["POP3 USER + PASS", "POP3 STAT", "POP3 LIST", "POP3 UIDL", "POP3 RETR {BODIES} messages"]


def load(path):
    spec = importlib.util.spec_from_file_location("imap_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_part(mod, ops, fn):
    labels = [op.format(N=mod.N, SIZE=mod.SIZE, BODIES=mod.BODIES, EXPUNGE=mod.EXPUNGE) for op in ops]
    done = {}
    real_timed = mod.timed

    def timed(label, f, count=None):
        t = time.perf_counter()
        r = f()
        done[label] = (time.perf_counter() - t) * 1000
        return r

    mod.timed = timed
    try:
        fn()
    except (SystemExit, AssertionError, imaplib.IMAP4.error, poplib.error_proto, OSError, EOFError) as e:
        print(f"error\t{type(e).__name__}: {str(e)[:200]}", flush=True)
    finally:
        mod.timed = real_timed
    for label in labels:
        ms = done.get(label)
        print(f"op\t{label}\t{ms:.1f}" if ms is not None else f"op\t{label}\tn/a", flush=True)


def pop3_count(host, port, user, pw):
    p = poplib.POP3(host, port, timeout=30)
    p.user(user)
    p.pass_(pw)
    count = p.stat()[0]
    p.quit()
    return count


def idle(host, port, user, pw):
    m = imaplib.IMAP4(host, port)
    m.login(user, pw)
    m.select("INBOX")
    print("ready", flush=True)
    sys.stdin.readline()
    m.logout()


def main():
    if len(sys.argv) == 7 and sys.argv[2] == "idle":
        idle(sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6])
        return
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    script, host, iport, pport, user, pw = sys.argv[1:]
    if not host.startswith("127."):
        sys.exit(f"refusing non-loopback host {host}")
    mod = load(script)
    run_part(mod, IMAP_OPS, lambda: mod.imap_bench(host, int(iport), user, pw))
    sys.stdout.flush()

    def pop3():
        # imap-bench.py expects N - EXPUNGE messages; when the IMAP part stopped early the box holds another
        # count, so tell it what is there (its check is about the server agreeing with itself).
        mod.EXPUNGE = mod.N - pop3_count(host, int(pport), user, pw)
        mod.pop3_bench(host, int(pport), user, pw)
    run_part(mod, POP3_OPS, pop3)


if __name__ == "__main__":
    sys.stdout = os.fdopen(sys.stdout.fileno(), "w", buffering=1)
    main()
