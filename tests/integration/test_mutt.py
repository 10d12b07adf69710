"""mutt against imapd: a scripted mutt (keys pushed with -e, under a pseudo-terminal since mutt is a curses
program) opens INBOX over IMAP, reads the second message, deletes the first and syncs the mailbox; imaplib then
checks that exactly that message is gone and the other is still there, now seen. The instance is test_imapd.py's.
"""
import os
import pty
import select
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from test_imapd import inst  # noqa: F401  (the instance fixture)
from test_imapd_selected import PASS, USER, login

MUTT = shutil.which('mutt')

VICTIM = (b'From: Alice <alice@example.org>\r\nTo: fred@example.test\r\nSubject: victim\r\n'
          b'Date: Tue, 1 Dec 2026 08:00:00 +0000\r\nMessage-ID: <v@example.org>\r\n\r\nread me, then delete me\r\n')
KEEPER = (b'From: Bob <bob@example.org>\r\nTo: fred@example.test\r\nSubject: keeper\r\n'
          b'Date: Wed, 2 Dec 2026 08:00:00 +0000\r\nMessage-ID: <k@example.org>\r\n\r\nstay\r\n')


def run_mutt(args, home, timeout=30):
    """mutt under a pty: (exit status, everything it drew)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(HOME=str(home), TERM='xterm', LC_ALL='C.UTF-8', MAIL='/dev/null')
        os.environ.pop('MAILDIR', None)
        try:
            os.execv(MUTT, [MUTT, *args])
        finally:
            os._exit(127)
    out, deadline = b'', time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            chunk = b''
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:         # EIO: the child has closed the terminal
                    chunk = b''
                out += chunk
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), out
            if r and not chunk:
                time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail('mutt did not finish; its screen:\n' + out[-3000:].decode(errors='replace'))
    finally:
        os.close(fd)


def test_mutt_reads_and_deletes(inst):
    if not MUTT:
        pytest.skip('mutt is not installed')
    m = login(inst)
    assert m.append('INBOX', None, None, VICTIM)[0] == 'OK'
    assert m.append('INBOX', None, None, KEEPER)[0] == 'OK'
    m.logout()
    home = Path(tempfile.mkdtemp(prefix='postern-mutt-'))
    try:
        (home / 'muttrc').write_text(
            f'set imap_user="{USER}"\n'
            f'set imap_pass="{PASS}"\n'
            f'set folder="imap://127.0.0.1:{inst.imap}/"\n'
            'set spoolfile="+INBOX"\n'
            'set ssl_starttls=no\n'          # the test certificate is self-signed: no prompt to accept it
            'set ssl_force_tls=no\n'
            'set sort=mailbox-order\n'       # the victim (UID 1) is where the cursor starts
            'set delete=yes\n'
            'set quit=yes\n'
            'set move=no\n'
            'set mark_old=no\n'
            'set imap_passive=yes\n'
            'set record=""\n'
            'set header_cache=""\n'
            'set message_cachedir=""\n'
            'set pager_stop=yes\n'
            'set wait_key=no\n')
        status, screen = run_mutt(
            ['-n', '-F', str(home / 'muttrc'), '-f', f'imap://127.0.0.1:{inst.imap}/INBOX',
             '-e', 'push <next-entry><display-message><exit><previous-entry><delete-message><sync-mailbox><quit>'], home)
        assert status == 0, screen[-3000:].decode(errors='replace')
    finally:
        shutil.rmtree(home, ignore_errors=True)
    m = login(inst)
    typ, data = m.select('INBOX')
    assert data == [b'1']
    typ, data = m.fetch('1', '(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
    assert data[0][0].startswith(b'1 (UID 2 FLAGS (\\Seen) ')     # read in mutt's pager
    assert data[0][1] == b'Subject: keeper\r\n\r\n'
    m.logout()
