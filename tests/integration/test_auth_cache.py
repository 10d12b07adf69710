"""The auth daemon's verification cache, through imaplib and poplib: a repeated login with the same password is
answered without a password hash (the log says cached=yes), a password change, a disabled or deleted account
and a wrong password are never answered from it, and auth_cache_ttl = 0 turns it off."""
import imaplib
import os
import poplib
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from conftest import SERVICES, Instance, free_ports

PASSWORD = 'first secret'


def imap_login(inst, user, password):
    m = imaplib.IMAP4('127.0.0.1', inst.port('imap'), timeout=30)
    try:
        m.login(user, password)
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        try:
            m.logout()
        except (imaplib.IMAP4.abort, OSError):
            pass


def pop_login(inst, user, password):
    p = poplib.POP3('127.0.0.1', inst.port('pop3'), timeout=30)
    try:
        p.user(user)
        p.pass_(password)
        return True
    except poplib.error_proto:
        return False
    finally:
        try:
            p.quit()
        except (poplib.error_proto, OSError):
            pass


def auth_lines(inst, since):
    return [ln for ln in inst.log_lines()[since:] if 'auth ok:' in ln or 'auth failed:' in ln]


def login_logged(inst, since, user, cached):
    """The one auth line for a login made after log line `since`."""
    lines = auth_lines(inst, since)
    assert len(lines) == 1, lines
    assert f'auth ok: user=<{user}>' in lines[0], lines
    assert ('cached=yes' in lines[0]) == cached, lines


def new_instance(settings):
    """pop3d and imapd refuse to serve as root: as root the instance runs as nobody, in a directory nobody can
    traverse."""
    top = Path(tempfile.mkdtemp(prefix='postern-authcache-'))
    os.chmod(top, 0o711)
    inst = Instance(top / 'postern', zip(SERVICES, free_ports(len(SERVICES))), 'example.test', 'mail.example.test')
    inst.top = top
    inst.init(*(('--user', 'nobody') if os.geteuid() == 0 else ()))
    inst.require('imap', 'pop3')
    inst.cli('config', 'set', 'auth_throttle_max_delay=0', *settings, check=True)
    return inst


@pytest.fixture
def cinst(postern_build):
    inst = new_instance(())
    try:
        user = f'cache@{inst.domain}'
        inst.cli('user', 'add', user, '--password-stdin', input=PASSWORD + '\n', check=True)
        inst.start()
        yield inst, user
    finally:
        inst.stop()
        shutil.rmtree(inst.top, ignore_errors=True)


def test_repeated_login_cached_until_password_changes(cinst):
    inst, user = cinst
    n = len(inst.log_lines())
    assert imap_login(inst, user, PASSWORD)
    inst.wait_log(r'auth ok: user=<cache@', since=n)
    login_logged(inst, n, user, cached=False)

    for login in (imap_login, pop_login):
        n = len(inst.log_lines())
        assert login(inst, user, PASSWORD)
        inst.wait_log(r'auth ok: user=<cache@', since=n)
        login_logged(inst, n, user, cached=True)

    # a wrong password is checked (and fails) although the account has a cache entry
    n = len(inst.log_lines())
    assert not imap_login(inst, user, 'not it')
    inst.wait_log(r'auth failed: user=<cache@\S+> .*reason=bad password', since=n)

    inst.cli('user', 'passwd', user, '--password-stdin', input='second secret\n', check=True)
    n = len(inst.log_lines())
    assert not imap_login(inst, user, PASSWORD), 'the old password still works after passwd'
    assert not pop_login(inst, user, PASSWORD), 'the old password still works after passwd'
    assert imap_login(inst, user, 'second secret')
    inst.wait_log(r'auth ok: user=<cache@', since=n)
    assert not any('cached=yes' in ln for ln in auth_lines(inst, n))
    n = len(inst.log_lines())
    assert pop_login(inst, user, 'second secret')
    inst.wait_log(r'auth ok: user=<cache@', since=n)
    login_logged(inst, n, user, cached=True)


def test_disabled_and_deleted_accounts_not_served_from_cache(cinst):
    inst, user = cinst
    assert imap_login(inst, user, PASSWORD)
    assert imap_login(inst, user, PASSWORD)
    inst.wait_log(r'auth ok: user=<cache@\S+> .*cached=yes')
    inst.cli('user', 'disable', user, check=True)
    n = len(inst.log_lines())
    assert not imap_login(inst, user, PASSWORD)
    inst.wait_log(r'auth failed: user=<cache@\S+> .*reason=account disabled', since=n)
    inst.cli('user', 'enable', user, check=True)
    assert pop_login(inst, user, PASSWORD)
    inst.cli('user', 'del', user, check=True)
    n = len(inst.log_lines())
    assert not pop_login(inst, user, PASSWORD)
    inst.wait_log(r'auth failed: user=<cache@\S+> .*reason=unknown user', since=n)


def test_cache_off(postern_build):
    inst = new_instance(('auth_cache_ttl=0',))
    try:
        user = f'nocache@{inst.domain}'
        inst.cli('user', 'add', user, '--password-stdin', input=PASSWORD + '\n', check=True)
        inst.start()
        check_uncached(inst, user)
    finally:
        inst.stop()
        shutil.rmtree(inst.top, ignore_errors=True)


def check_uncached(inst, user):
    n = len(inst.log_lines())
    for _ in range(3):
        assert imap_login(inst, user, PASSWORD)
    deadline = time.monotonic() + 10
    while len(auth_lines(inst, n)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = auth_lines(inst, n)
    assert len(lines) == 3 and not any('cached=yes' in ln for ln in lines), lines


def test_wrong_password_throttled_and_never_cached(postern_build):
    """A cached account is still throttled: the delay after failures applies to a cached answer too, and a wrong
    password, even repeated, is checked each time and never answered from the cache."""
    inst = new_instance(())
    try:
        inst.cli('config', 'set', 'auth_throttle_max_delay=30s', check=True)
        user = f'slow@{inst.domain}'
        inst.cli('user', 'add', user, '--password-stdin', input=PASSWORD + '\n', check=True)
        inst.start()
        assert imap_login(inst, user, PASSWORD)
        assert imap_login(inst, user, PASSWORD)
        inst.wait_log(r'auth ok: user=<slow@\S+> .*cached=yes')
        n = len(inst.log_lines())
        times = []
        for _ in range(2):
            start = time.monotonic()
            assert not imap_login(inst, user, 'not it')
            times.append(time.monotonic() - start)
        inst.wait_log(r'auth failed: user=<slow@\S+> .*reason=bad password', since=n)
        # the second failure waits for the first one's delay (1 s, a lower bound only)
        assert times[1] >= 0.9, times
        start = time.monotonic()
        assert imap_login(inst, user, PASSWORD)
        took = time.monotonic() - start
        inst.wait_log(r'auth ok: user=<slow@\S+> .*cached=yes', since=n)
        assert took >= 1.8, f'a cached login skipped the throttle delay ({took:.2f} s)'
        lines = auth_lines(inst, n)
        assert sum('auth failed:' in ln and 'bad password' in ln for ln in lines) == 2, lines
        assert not any('auth failed:' in ln and 'cached=yes' in ln for ln in lines), lines
    finally:
        inst.stop()
        shutil.rmtree(inst.top, ignore_errors=True)
