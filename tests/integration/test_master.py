"""master and the daemon skeleton, end to end: start/stop/reload/status/check through the CLI, privilege drop,
restarts, crash-loop throttling, reload with a changed port, and no process left behind.

These tests do not need the real daemons: master runs a built-in test daemon when invoked as "echo" (a link in
the instance's own daemon_directory), which greets with its service, pid and uid and echoes lines. Each test
builds its own small instance in a temporary directory on free loopback ports.
"""
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

SOURCE_ROOT = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0


def build_dir():
    return Path(os.environ.get('POSTERN_BUILD') or SOURCE_ROOT / 'build').resolve()


def free_ports(n):
    held, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(('127.0.0.1', 0))
            held.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in held:
            s.close()
    return ports


def pids_of(path):
    """Processes whose command line names the instance directory (every child gets -c DIR)."""
    pat = re.compile(re.escape(os.fsencode(str(path))) + rb'(?=/|\0|$)')
    found = []
    for e in os.listdir('/proc'):
        if not e.isdigit() or int(e) == os.getpid():
            continue
        try:
            with open(f'/proc/{e}/cmdline', 'rb') as f:
                cmd = f.read()
            with open(f'/proc/{e}/stat') as f:
                if f.read().split(') ', 1)[1][:1] == 'Z':
                    continue
        except (OSError, IndexError):
            continue
        if pat.search(cmd):
            found.append(int(e))
    return found


def proc_uid(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('Uid:'):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError(f'no Uid line for {pid}')


def wait_for(cond, timeout=10, what='condition'):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f'timed out waiting for {what}')


class Session:
    """A line-based client of the echo daemon."""

    def __init__(self, port, host='127.0.0.1', timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.f = self.sock.makefile('rwb')
        self.greeting = self.f.readline().decode()
        m = re.match(r'220 echo service=(\S+) pid=(\d+) uid=(\d+) tls=(\S+) host=(\S+)', self.greeting)
        assert m, f'bad greeting {self.greeting!r}'
        self.service, self.pid, self.uid = m.group(1), int(m.group(2)), int(m.group(3))
        self.tls, self.host = m.group(4), m.group(5)

    def echo(self, text):
        self.f.write(text.encode() + b'\r\n')
        self.f.flush()
        return self.f.readline().decode().rstrip('\r\n')

    def close(self):
        try:
            self.f.write(b'QUIT\r\n')
            self.f.flush()
            self.f.readline()
        except OSError:
            pass
        self.f.close()
        self.sock.close()


def refused(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=2) as s:
            s.settimeout(2)
            # a listener held only by the kernel backlog would accept but never greet
            return s.recv(1) == b''
    except OSError:
        return True


class MasterInstance:
    def __init__(self, root):
        self.dir = Path(root)
        self.ports = {}
        self.dir.mkdir(mode=0o755)
        os.chmod(self.dir, 0o755)
        for d in ('etc', 'bin', 'log', 'pid', 'queue', 'private'):
            (self.dir / d).mkdir()
            os.chmod(self.dir / d, 0o700 if d == 'private' else 0o755)
        os.symlink(build_dir() / 'bin' / 'master', self.dir / 'bin' / 'master')
        os.symlink(build_dir() / 'bin' / 'master', self.dir / 'bin' / 'echo')
        os.symlink('/bin/false', self.dir / 'bin' / 'false')
        os.symlink('/bin/true', self.dir / 'bin' / 'true')
        owner = 'nobody' if IS_ROOT else 'root'
        if IS_ROOT:
            os.chown(self.dir / 'private', 65534, 65534)
            os.chown(self.dir / 'queue', 65534, 65534)
        (self.dir / 'etc' / 'main.cf').write_text(
            f'daemon_directory = {self.dir}/bin\n'
            f'mail_owner = {owner}\n'
            f'log_destination = {self.dir}/log/postern.log\n'
            'master_throttle_time = 60s\n'
            'master_stop_timeout = 5s\n')
        self.write_master_cf()

    def write_master_cf(self, extra=''):
        if not self.ports:
            a, b, c = free_ports(3)
            self.ports = {'e1': a, 'e2': b, 'spare': c}
        (self.dir / 'etc' / 'master.cf').write_text(
            '# test services\n'
            f'e1   inet 127.0.0.1:{self.ports["e1"]} - - - 3 100 60s echo\n'
            f'e2   inet 127.0.0.1:{self.ports["e2"]} - - - 2 2 60s echo\n'
            '    -o myhostname=e2.example.test\n'
            'res  unix res - - - 1 0 0 echo event\n'
            'gone inet 127.0.0.1:1 - - - 1 1 1s not-installed\n' + extra)

    def cli(self, *args, timeout=60):
        return subprocess.run([str(build_dir() / 'bin' / 'postern'), *map(str, args), '-c', str(self.dir)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)

    def start(self):
        r = self.cli('start')
        assert r.returncode == 0, f'start failed: {r.stdout}\n{r.stderr}\n{self.log()}'
        return r

    def log(self):
        try:
            return (self.dir / 'log' / 'postern.log').read_text(errors='replace')
        except FileNotFoundError:
            return ''

    def wait_log(self, regex, timeout=10):
        return wait_for(lambda: re.search(regex, self.log()), timeout, f'log line {regex!r}:\n{self.log()}')

    def master_pid(self):
        return int((self.dir / 'pid' / 'master.pid').read_text())

    def status(self):
        r = self.cli('status')
        assert r.returncode == 0, r.stderr
        return r.stdout

    def raw_status(self):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(self.dir / 'pid' / 'master.sock'))
        data = b''
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        out = {}
        for line in data.decode().splitlines():
            kind, *fields = line.split()
            kv = dict(f.split('=', 1) for f in fields)
            out[kv.get('name', kind)] = kv
        return out

    def cleanup(self):
        self.cli('stop', timeout=30)
        for pid in pids_of(self.dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def mi(tmp_path):
    inst = MasterInstance(tmp_path / 'inst')
    yield inst
    inst.cleanup()
    assert pids_of(inst.dir) == [], 'processes left behind'


def test_start_status_and_echo(mi):
    mi.start()
    assert (mi.dir / 'pid' / 'master.pid').exists()
    s = Session(mi.ports['e1'])
    assert s.service == 'e1' and s.tls == 'none' and s.host == 'localhost'
    assert s.echo('hello') == '250 hello'
    # -o in master.cf overrides main.cf for that service only
    s2 = Session(mi.ports['e2'])
    assert s2.host == 'e2.example.test'
    s2.close()
    st = mi.raw_status()
    assert st['e1']['procs'] == '1' and st['e1']['busy'] == '1'
    assert st['res']['resident'] == 'yes' and st['res']['procs'] == '1'
    assert 'gone' not in st
    s.close()
    wait_for(lambda: mi.raw_status()['e1']['idle'] == '1', what='idle report')
    text = mi.status()
    assert re.search(r'^e1\s+inet\s+running\s+1\s+0\s+1\s+0\s+127\.0\.0\.1:', text, re.M), text
    # the missing program is reported once, with its service
    mi.wait_log(r'warning: skipping services whose program is not in daemon_directory .*gone/inet \(not-installed\)')
    assert mi.log().count('skipping services') == 1


def test_resident_service_answers_on_unix_socket(mi):
    mi.start()
    path = str(mi.dir / 'private' / 'res')
    wait_for(lambda: os.path.exists(path), what='resident socket')
    c = socket.socket(socket.AF_UNIX)
    c.settimeout(5)
    c.connect(path)
    assert c.recv(200).startswith(b'220 echo service=res')
    c.close()


def test_busy_children_spawn_more_up_to_maxproc(mi):
    mi.start()
    sessions = [Session(mi.ports['e1']) for _ in range(3)]
    assert len({s.pid for s in sessions}) == 3
    st = mi.raw_status()['e1']
    assert st['procs'] == '3' and st['busy'] == '3'
    # maxproc 3: a fourth client waits in the kernel backlog until one process is free
    c = socket.create_connection(('127.0.0.1', mi.ports['e1']), timeout=10)
    c.settimeout(0.5)
    with pytest.raises(socket.timeout):
        c.recv(10)
    sessions[0].close()
    c.settimeout(10)
    assert c.recv(200).startswith(b'220 echo')
    c.close()
    for s in sessions[1:]:
        s.close()


def test_maxuse_ends_process(mi):
    mi.start()
    pids = []
    for _ in range(3):
        s = Session(mi.ports['e2'])
        pids.append(s.pid)
        s.close()
        # wait until master has the process back as idle (or gone after its last use)
        wait_for(lambda: mi.raw_status()['e2']['busy'] == '0', what='e2 idle')
    # e2 has maxuse 2: the first process served two sessions, then a new one took over
    assert pids[0] == pids[1] and pids[2] != pids[0]


@pytest.mark.skipif(not IS_ROOT, reason='privilege drop needs root (runs as root in CI)')
def test_daemons_run_unprivileged_master_as_root(mi):
    mi.start()
    s = Session(mi.ports['e1'])
    assert s.uid != 0
    wait_for(lambda: len(pids_of(mi.dir)) >= 3, what='children')
    master = mi.master_pid()
    for pid in pids_of(mi.dir):
        uids = proc_uid(pid)
        if pid == master:
            assert uids[0] == 0
        else:
            assert all(u != 0 for u in uids), f'child {pid} has uids {uids}'
    s.close()


def test_kill9_child_is_logged_and_service_still_answers(mi):
    mi.start()
    s = Session(mi.ports['e1'])
    victim = s.pid
    os.kill(victim, signal.SIGKILL)
    mi.wait_log(rf'service e1/inet: process {victim} killed by signal 9')
    s2 = Session(mi.ports['e1'])
    assert s2.pid != victim and s2.echo('x') == '250 x'
    s2.close()
    # a resident service comes back too
    res = int(mi.raw_status()['res']['procs'])
    assert res == 1
    rpid = [p for p in pids_of(mi.dir) if b'-s\0res' in Path(f'/proc/{p}/cmdline').read_bytes()][0]
    os.kill(rpid, signal.SIGKILL)
    mi.wait_log(rf'service res/unix: process {rpid} killed by signal 9')
    wait_for(lambda: [p for p in pids_of(mi.dir) if p != rpid and
                      b'-s\0res' in Path(f'/proc/{p}/cmdline').read_bytes()], what='resident restart')
    assert mi.raw_status()['res']['state'] == 'running'


def test_crashing_service_is_throttled(mi):
    bad = mi.ports['spare']
    quick = free_ports(1)[0]
    mi.write_master_cf(f'bad inet 127.0.0.1:{bad} - - - 5 100 60s false\n'
                       'badres unix badres - - - 1 0 0 false\n'
                       f'quick inet 127.0.0.1:{quick} - - - 5 100 60s true\n')
    mi.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for port in (bad, quick):
            try:
                with socket.create_connection(('127.0.0.1', port), timeout=1) as c:
                    c.settimeout(0.2)
                    c.recv(10)
            except OSError:
                pass
        time.sleep(0.2)
    log = mi.log()
    bad_exits = len(re.findall(r'service bad/inet: process \d+ exited with status 1', log))
    res_exits = len(re.findall(r'service badres/unix: process \d+ exited with status 1', log))
    assert 1 <= bad_exits <= 4, log
    assert 1 <= res_exits <= 4, log
    assert re.search(r'service bad/inet: 3 consecutive start-up failures; no new processes for 60 s', log)
    assert re.search(r'service badres/unix: 3 consecutive start-up failures', log)
    # a program that exits cleanly at once is not restarted for the same waiting client forever
    assert re.search(r'service quick/inet: 3 consecutive start-up failures', log)
    st = mi.raw_status()
    assert st['bad']['state'] == 'throttled' and st['badres']['state'] == 'throttled'
    assert st['quick']['state'] == 'throttled' and int(st['quick']['forks']) <= 4
    # the healthy services are not affected
    s = Session(mi.ports['e1'])
    s.close()


def test_reload_with_changed_port(mi):
    mi.start()
    old = mi.ports['e1']
    session = Session(old)
    assert session.echo('before') == '250 before'
    new = free_ports(1)[0]
    text = (mi.dir / 'etc' / 'master.cf').read_text().replace(f':{old} ', f':{new} ')
    (mi.dir / 'etc' / 'master.cf').write_text(text)
    r = mi.cli('reload')
    assert r.returncode == 0, r.stderr
    mi.wait_log(r'info: reloading configuration')
    wait_for(lambda: not refused(new), what='new port answering')
    s2 = Session(new)
    assert s2.echo('new') == '250 new'
    s2.close()
    wait_for(lambda: refused(old), what='old port closed')
    # the session opened before the reload still completes
    assert session.echo('after') == '250 after'
    session.close()
    st = mi.raw_status()
    assert st['e1']['listen'] == f'127.0.0.1:{new}'


def test_reload_with_broken_table_keeps_running(mi):
    mi.start()
    (mi.dir / 'etc' / 'master.cf').write_text('broken line\n')
    assert mi.cli('reload').returncode == 0
    mi.wait_log(r'error: reload failed, keeping the running configuration: .*master\.cf:1: ')
    s = Session(mi.ports['e1'])
    s.close()


def test_stop_leaves_no_process(mi):
    mi.start()
    sessions = [Session(mi.ports['e1']), Session(mi.ports['e2'])]
    assert len(pids_of(mi.dir)) >= 4
    # a session in progress finishes its work after SIGTERM
    r = subprocess.Popen([str(build_dir() / 'bin' / 'postern'), 'stop', '-c', str(mi.dir)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mi.wait_log(r'stopping')
    assert sessions[0].echo('still here') == '250 still here'
    for s in sessions:
        s.close()
    out, err = r.communicate(timeout=30)
    assert r.returncode == 0, err
    assert pids_of(mi.dir) == []
    assert not (mi.dir / 'pid' / 'master.pid').exists()
    assert refused(mi.ports['e1'])
    assert mi.cli('status').returncode == 3


def test_stop_kills_sessions_after_deadline(mi):
    mi.start()
    s = Session(mi.ports['e1'])
    t0 = time.monotonic()
    r = mi.cli('stop')
    assert r.returncode == 0
    # master_stop_timeout is 5 s; the idle client never ends its session, so it was killed
    assert 4 <= time.monotonic() - t0 < 15
    assert pids_of(mi.dir) == []
    assert re.search(r'still running 5 s after SIGTERM: killing them', mi.log())
    s.sock.close()


def test_second_start_refused(mi):
    mi.start()
    pid = mi.master_pid()
    r = mi.cli('start')
    assert r.returncode != 0
    assert 'already running' in r.stderr
    # master itself refuses too (the lock, not only the CLI's check)
    r = subprocess.run([str(build_dir() / 'bin' / 'master'), '-c', str(mi.dir)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    assert r.returncode != 0
    assert f'master is already running for {mi.dir} (pid {pid}' in r.stderr
    assert mi.master_pid() == pid


def test_check_reports_broken_line(mi):
    r = mi.cli('check')
    assert r.returncode == 0, r.stdout + r.stderr
    text = (mi.dir / 'etc' / 'master.cf').read_text().splitlines()
    text.insert(2, 'oops inet 127.0.0.1:99999 - - - 1 1 1 echo')
    (mi.dir / 'etc' / 'master.cf').write_text('\n'.join(text) + '\n')
    r = mi.cli('check')
    assert r.returncode == 1
    assert re.search(r'^problem: \S*master\.cf:3: service oops: bad port', r.stdout, re.M), r.stdout
    # start refuses with the same message
    r = mi.cli('start')
    assert r.returncode != 0
    assert 'master.cf:3: service oops: bad port' in r.stderr
    assert pids_of(mi.dir) == []


def test_check_reports_port_in_use_and_modes(mi):
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(('127.0.0.1', mi.ports['e2']))
    blocker.listen(1)
    os.chmod(mi.dir / 'private', 0o755)
    r = mi.cli('check')
    blocker.close()
    assert r.returncode == 1
    assert re.search(rf'^problem: .*service e2: port {mi.ports["e2"]} is in use by another program', r.stdout,
                     re.M), r.stdout
    assert re.search(r'^problem: private_directory .* has mode 0755; run: chmod 0700', r.stdout, re.M), r.stdout
    os.chmod(mi.dir / 'private', 0o700)
    # ports held by our own running master are fine
    mi.start()
    r = mi.cli('check')
    assert r.returncode == 0, r.stdout


def test_start_fails_when_port_taken(mi):
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(('127.0.0.1', mi.ports['e1']))
    blocker.listen(1)
    try:
        r = mi.cli('start')
    finally:
        blocker.close()
    assert r.returncode != 0
    assert 'cannot bind' in r.stderr and 'start failed' in r.stderr
    assert pids_of(mi.dir) == []


def test_foreground_logs_to_stderr(mi):
    p = subprocess.Popen([str(build_dir() / 'bin' / 'postern'), 'start', '--foreground', '-c', str(mi.dir)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (mi.dir / 'pid' / 'master.pid').exists(), what='pid file')
        s = Session(mi.ports['e1'])
        s.close()
        assert p.poll() is None
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0
    assert 'postern/master' in err and 'started for' in err
    assert 'postern/echo' in err and 'connect from 127.0.0.1' in err


def _have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(('::1', 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _have_ipv6_loopback(), reason='no IPv6 loopback on this host')
def test_wildcard_listens_on_ipv4_and_ipv6(mi):
    port = mi.ports['spare']
    mi.write_master_cf(f'dual inet *:{port} - - - 2 10 60s echo\n')
    mi.start()
    s4 = Session(port, '127.0.0.1')
    s6 = Session(port, '::1')
    assert s4.service == s6.service == 'dual'
    assert s6.echo('v6') == '250 v6'
    s4.close()
    s6.close()
    mi.wait_log(r'connect from ::1 port \d+')


def test_idle_process_exits_and_is_not_counted(mi):
    port = mi.ports['spare']
    mi.write_master_cf(f'short inet 127.0.0.1:{port} - - - 2 10 1s echo\n')
    mi.start()
    s = Session(port)
    s.close()
    wait_for(lambda: mi.raw_status()['short']['procs'] == '0', timeout=10, what='idle exit')
    st = mi.raw_status()['short']
    assert st['restarts'] == '0' and st['forks'] == '1'
    # and the next client gets a fresh process
    s = Session(port)
    s.close()
    assert mi.raw_status()['short']['forks'] == '2'
