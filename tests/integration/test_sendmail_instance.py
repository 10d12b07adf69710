"""sendmail, mailq and newaliases against a real instance (the conftest fixtures): a stopped system refuses
loudly, mailq lists what the queue holds, newaliases compiles the instance's aliases, and -- once master.cf has
the local submission service (smtpd in local mode on public/submit) -- mail from an ordinary user lands in the
demo account's Maildir with the user's uid recorded."""
import os
import pwd
import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from conftest import build_dir

EX_TEMPFAIL = 75


def _sendmail(inst, args, data, user=None):
    cmd = [str(build_dir() / 'bin' / 'postern'), 'sendmail', '-C', str(inst.dir)] + list(args)
    if user:
        cmd = ['setpriv', f'--reuid={user.pw_uid}', f'--regid={user.pw_gid}', '--clear-groups', '--'] + cmd
    return subprocess.run(cmd, input=data, capture_output=True, timeout=60, env={'PATH': '/usr/bin:/bin'})


def test_stopped_system_refuses(make_instance):
    inst = make_instance(start=False)
    r = _sendmail(inst, ['-t'], b'To: someone@example.org\nSubject: x\n\nimportant\n')
    assert r.returncode == EX_TEMPFAIL
    assert b'the mail system is not running' in r.stderr and b'not sent' in r.stderr
    # nothing was queued behind the caller's back
    queued = [p for p in inst.path('queue').rglob('*') if p.is_file() and re.fullmatch(r'[0-9A-Z]+', p.name)]
    assert queued == []


def test_mailq_lists_the_queue(make_instance):
    inst = make_instance(start=False)
    r = inst.run('mailq', '-C', inst.dir)
    assert r.returncode == 0 and r.stdout == 'Mail queue is empty\n', r.stderr
    msg = 'Subject: q\n\nhello\n'
    qid = inst.cli('queue', 'inject', '-f', 'alice@example.org', 'bob@example.net', 'carol@example.net',
                   input=msg, check=True).stdout.strip()
    r = inst.run('sendmail', '-C', inst.dir, '-bp')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith('-Queue ID-')
    assert re.match(rf'^{qid}\s+\d+ \w{{3}} \w{{3}} [ \d]\d \d\d:\d\d:\d\d\s+alice@example.org$', lines[1])
    assert lines[2].strip() == 'bob@example.net' and lines[3].strip() == 'carol@example.net'
    assert lines[-1] == '-- 1 Kbytes in 1 Request.'


def test_newaliases_compiles_instance_aliases(make_instance):
    inst = make_instance(start=False)
    aliases = inst.path('etc', 'aliases')     # $config_directory of an instance made by postern init
    aliases.write_text('postmaster: root\nabuse: postmaster\n')
    r = inst.run('newaliases', '-C', inst.dir)
    assert r.returncode == 0, r.stderr
    assert Path(str(aliases) + '.lmdb').exists()
    assert inst.run('map', 'get', aliases, 'abuse').stdout.strip() == 'postmaster'


@pytest.fixture
def local_user():
    if os.geteuid() != 0:
        pytest.skip('needs root to create a temporary user')
    name = 'pst' + secrets.token_hex(4)
    subprocess.run(['useradd', '-M', '-N', '-d', '/nonexistent', '-s', '/usr/sbin/nologin', name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(['userdel', name], check=False)


def test_local_user_mail_reaches_maildir(make_instance, local_user):
    inst = make_instance(start=False)
    mastercf = inst.path('etc', 'master.cf')
    if not mastercf.exists() or not re.search(r'^submit\s+unix\s+public/submit\s', mastercf.read_text(), re.M):
        pytest.skip('master.cf has no local submission service (submit unix public/submit ... smtpd) yet')
    for prog in ('smtpd', 'qmgr', 'local'):
        if not (build_dir() / 'bin' / prog).exists():
            pytest.skip(f'not built yet: {prog}')
    # the ordinary user must be able to reach public/ (test directories are private by default)
    for p in [inst.dir, *inst.dir.parents]:
        if p == Path('/'):
            break
        os.chmod(p, os.stat(p).st_mode | 0o005)
    inst.start()
    user = inst.demo_user or f'demo@{inst.domain}'
    local, domain = user.split('@')
    maildir = inst.path('mail', domain, local, 'new')
    since = len(inst.log_lines())
    r = _sendmail(inst, ['-t'], f'To: {user}\nBcc: {user}\nSubject: from sendmail\n\nhello\n'.encode(),
                  user=local_user)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (maildir.exists() and any(maildir.iterdir())):
        time.sleep(0.1)
    files = sorted(maildir.iterdir()) if maildir.exists() else []
    assert files, f'nothing delivered; log tail:\n{inst.log_tail()}'
    text = files[0].read_bytes()
    assert b'Subject: from sendmail' in text and b'Bcc' not in text
    assert f'From: {local_user.pw_name}@'.encode() in text
    inst.wait_log(rf'uid={local_user.pw_uid}\b', since=since)


def test_bs_session_reaches_maildir(make_instance):
    """sendmail -bs: an SMTP dialog on standard input, through the instance's local submission, into a Maildir;
    postern trace then tells the message's story from the uid that submitted it to its removal."""
    inst = make_instance(start=False)
    mastercf = inst.path('etc', 'master.cf')
    if not mastercf.exists() or not re.search(r'^submit\s+unix\s+public/submit\s', mastercf.read_text(), re.M):
        pytest.skip('master.cf has no local submission service yet')
    inst.start()
    user = inst.demo_user or f'demo@{inst.domain}'
    local, domain = user.split('@')
    maildir = inst.path('mail', domain, local, 'new')
    dialog = (f'EHLO client.test\r\nMAIL FROM:<root@{inst.domain}>\r\nRCPT TO:<{user}>\r\nDATA\r\n'
              'Subject: via -bs\r\n\r\nbs body\r\n.\r\nQUIT\r\n').encode()
    r = _sendmail(inst, ['-bs'], dialog)
    assert r.returncode == 0, r.stderr
    m = re.search(rb'^250 [^\r\n]*queued as ([0-9A-Z]+)', r.stdout, re.M)
    assert m and r.stdout.rstrip().split(b'\r\n')[-1].startswith(b'221'), r.stdout
    qid = m.group(1).decode()
    inst.wait_log(rf'{qid}: removed', timeout=30)
    files = sorted(maildir.iterdir())
    assert len(files) == 1 and b'Subject: via -bs' in files[0].read_bytes()
    trace = inst.cli('trace', qid, check=True).stdout
    assert re.search(rf': {qid}: client=local, uid=0\b', trace), trace
    assert re.search(rf': {qid}: to=<{re.escape(user)}>.*status=sent', trace), trace
