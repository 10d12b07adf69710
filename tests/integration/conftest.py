"""Fixtures for Postern's integration tests: each test gets its own instance in a temporary directory, on free
loopback ports, created with `postern init` and run with `postern start`.

    def test_greeting(instance):                 # an initialised and started instance
        with smtplib.SMTP('127.0.0.1', instance.port('smtp')) as s: ...
        instance.wait_log(r'connect from')

    def test_layout(make_instance):              # initialise only (or several instances)
        inst = make_instance(hostname='mx.example.test')

The build to test is $POSTERN_BUILD (build/ or build-asan/; default build/). Nothing is left running after a test,
even a failing one: teardown runs `postern stop -c DIR`, then kills any process whose command line names the
instance directory. When a test fails, the tail of each of its instances' logs is added to the report.
Only the standard library and pytest are used; every socket is on 127.0.0.1.
"""
import os
import re
import signal
import socket
import subprocess
import time
import warnings
from pathlib import Path

import pytest

SOURCE_ROOT = Path(__file__).resolve().parents[2]
# Public services in the order `postern init --port NAME=PORT` knows them.
SERVICES = ('smtp', 'submission', 'smtps', 'pop3', 'pop3s', 'imap', 'imaps')
SERVICE_PROGRAMS = {'smtp': 'smtpd', 'submission': 'smtpd', 'smtps': 'smtpd', 'pop3': 'pop3d', 'pop3s': 'pop3d',
                    'imap': 'imapd', 'imaps': 'imapd'}
LOOPBACK = '127.0.0.1'
START_TIMEOUT = float(os.environ.get('POSTERN_START_TIMEOUT', '30'))
STOP_TIMEOUT = 20

_handed_out = set()   # ports given to this session's instances, so two instances never get the same one


def build_dir():
    """The build under test: $POSTERN_BUILD, else build/ in the source tree."""
    return Path(os.environ.get('POSTERN_BUILD') or SOURCE_ROOT / 'build').resolve()


def asan_build():
    """True when the build under test is the ASan+UBSan one (about 3x slower)."""
    return build_dir().name == 'build-asan'


# Long interoperability and volume tests (thousands of messages through third-party clients) run on the normal
# build only: under ASan they would take most of CI's time and find nothing the shorter tests there do not.
heavy = pytest.mark.skipif(asan_build(), reason='volume test: runs on the normal build only, not under ASan')


def postern_bin():
    return build_dir() / 'bin' / 'postern'


def free_port(host=LOOPBACK):
    """A TCP port on host that nothing listens on now (the kernel's choice for port 0)."""
    return free_ports(1, host)[0]


# ---- dnsmasq on loopback, for tests that need DNS answers ----
DNSMASQ = next((p for p in ('/usr/sbin/dnsmasq', '/usr/bin/dnsmasq') if os.path.exists(p)), None)


def _dns_port():
    """A port free for both UDP and TCP a moment ago (dnsmasq binds both)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            u.bind((LOOPBACK, 0))
            port = u.getsockname()[1]
            try:
                t.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    raise RuntimeError('no port free for both UDP and TCP')


def _dns_answers(proc, port, name, timeout=10):
    """True once the server on port answers a query for NAME (type A); False if it exits or after timeout."""
    import struct
    qname = b''.join(bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\x00'
    q = struct.pack('>HHHHHH', 0x1234, 0x100, 1, 0, 0, 0) + qname + struct.pack('>HH', 1, 1)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(q, (LOOPBACK, port))
                if s.recv(512)[:2] == b'\x12\x34':
                    return True
            except OSError:
                time.sleep(0.05)
    return False


def start_dnsmasq(logdir, zone, probe_name, local=('/test/',)):
    """dnsmasq serving zone (a list of --mx-host=/--host-record=/... options) on a free loopback port, started
    again on another port when the chosen one was taken meanwhile. Returns (process, port); the caller
    terminates the process."""
    if not DNSMASQ:
        pytest.skip('dnsmasq is not installed')
    for _ in range(3):
        port = _dns_port()
        proc = subprocess.Popen([DNSMASQ, '-k', '--port=%d' % port, '--listen-address=127.0.0.1',
                                 '--bind-interfaces', '--no-resolv', '--no-hosts', '--user=root', '--pid-file=',
                                 '--log-facility=%s' % (Path(logdir) / 'dnsmasq.log')]
                                + ['--local=%s' % d for d in local] + list(zone),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if _dns_answers(proc, port, probe_name):
            return proc, port
        proc.terminate()
        proc.wait(5)
    raise RuntimeError('dnsmasq did not start; see %s' % (Path(logdir) / 'dnsmasq.log'))


def free_ports(count, host=LOOPBACK):
    """count distinct free ports. The sockets stay bound until all are chosen so the kernel cannot hand the same
    port out twice, and ports already given to another instance of this session are skipped."""
    held, ports = [], []
    try:
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(s)
            s.bind((host, 0))
            port = s.getsockname()[1]
            if port not in _handed_out:
                ports.append(port)
                _handed_out.add(port)
    finally:
        for s in held:
            s.close()
    return ports


def port_accepts(port, host=LOOPBACK, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def processes_mentioning(path):
    """pids of processes (other than this one) with path as a whole component anywhere on their command line:
    every Postern daemon gets `-c DIR`. "/x/inst1" must not match "/x/inst10"."""
    pattern = re.compile(re.escape(os.fsencode(str(path))) + rb'(?=/|\0|\s|$)')
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f'/proc/{entry}/cmdline', 'rb') as f:
                cmdline = f.read()
        except OSError:
            continue
        if pattern.search(cmdline):
            found.append(int(entry))
    return found


def _alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(') ', 1)[1][:1] != 'Z'   # a zombie is dead, only not yet reaped
    except (OSError, IndexError):
        return False


class Instance:
    """One Postern instance under DIR: its ports, CLI, log, and lifecycle."""

    def __init__(self, directory, ports, domain, hostname):
        self.dir = Path(directory)
        self.ports = dict(ports)
        self.domain = domain
        self.hostname = hostname
        self.init_result = None
        self.demo_user = None
        self.demo_password = None
        self.started = False

    # ---- paths and configuration
    @property
    def log_path(self):
        return self.dir / 'log' / 'postern.log'

    def path(self, *parts):
        return self.dir.joinpath(*parts)

    def port(self, service):
        """The port of a public service by master.cf name: smtp, submission, smtps, pop3, pop3s, imap, imaps."""
        return self.ports[service]

    def main_cf(self):
        """main.cf as a dict (continuation lines joined; later assignments win)."""
        values, last = {}, None
        for line in self.path('etc', 'main.cf').read_text().splitlines():
            if not line.strip() or line.lstrip().startswith('#'):
                continue
            if line[0].isspace() and last:
                values[last] += ' ' + line.strip()
                continue
            name, _, value = line.partition('=')
            last = name.strip()
            values[last] = value.strip()
        return values

    # ---- running commands
    def env(self):
        env = dict(os.environ)
        env['POSTERN_DIR'] = str(self.dir)
        return env

    def run(self, *args, check=False, timeout=60, input=None):
        """Run `postern ARGS...` against this instance ($POSTERN_DIR is set); returns CompletedProcess (text)."""
        result = subprocess.run([str(postern_bin()), *map(str, args)], env=self.env(), input=input,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f'postern {" ".join(map(str, args))} exited {result.returncode}\n'
                                 f'stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n'
                                 f'log tail:\n{self.log_tail()}')
        return result

    def cli(self, *args, check=False, timeout=60, input=None):
        """`instance.cli('status')`: a CLI command with `-c DIR` appended."""
        return self.run(*args, '-c', self.dir, check=check, timeout=timeout, input=input)

    def init(self, *extra):
        args = ['init', self.dir, '--dev', '--domain', self.domain, '--hostname', self.hostname]
        for name, port in self.ports.items():
            args += ['--port', f'{name}={port}']
        if os.environ.get('POSTERN_TEST_USER'):
            args += ['--user', os.environ['POSTERN_TEST_USER']]
        self.init_result = self.run(*args, *extra, check=True)
        m = re.search(r'^demo account: (\S+) password: (\S+)$', self.init_result.stdout, re.M)
        if m:
            self.demo_user, self.demo_password = m.group(1), m.group(2)
        return self.init_result

    # ---- the log
    def log_lines(self):
        try:
            return self.log_path.read_text(errors='replace').splitlines()
        except FileNotFoundError:
            return []

    def log_tail(self, n=60):
        lines = self.log_lines()
        return '\n'.join(lines[-n:]) if lines else f'(no log at {self.log_path})'

    def wait_log(self, regex, timeout=10, since=0):
        """Wait until a log line (from line index `since` on) matches regex; returns the re.Match. On timeout
        the assertion message carries the log tail."""
        pattern = re.compile(regex)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_lines()[since:]:
                m = pattern.search(line)
                if m:
                    return m
            if time.monotonic() >= deadline:
                raise AssertionError(f'no log line matched {regex!r} within {timeout}s; log tail:\n'
                                     f'{self.log_tail()}')
            time.sleep(0.05)

    # ---- lifecycle
    def start(self):
        """`postern start -c DIR` (which returns once master has bound every listener), then wait until each
        public service whose program this build has accepts connections. Skips the test when the build has no
        master program yet."""
        if not (build_dir() / 'bin' / 'master').exists():
            pytest.skip(f'{build_dir()}/bin/master does not exist yet: the instance cannot be started')
        result = self.run('start', '-c', self.dir, timeout=START_TIMEOUT)
        self.started = True     # stop and kill at teardown even if start half worked
        if result.returncode != 0:
            raise AssertionError(f'postern start exited {result.returncode}\nstdout:\n{result.stdout}\n'
                                 f'stderr:\n{result.stderr}\nlog tail:\n{self.log_tail()}')
        deadline = time.monotonic() + START_TIMEOUT
        for service in self.available_services():
            while not port_accepts(self.port(service)):
                if time.monotonic() >= deadline:
                    raise AssertionError(f'{service} port {self.port(service)} did not accept within '
                                         f'{START_TIMEOUT}s; log tail:\n{self.log_tail()}')
                time.sleep(0.05)

    def available_services(self):
        """Public services whose daemon exists in this build (master skips the others)."""
        return [s for s in SERVICES if (build_dir() / 'bin' / SERVICE_PROGRAMS[s]).exists()]

    def require(self, *services):
        """Skip the test unless this build has the daemons behind services."""
        missing = sorted({SERVICE_PROGRAMS[s] for s in services} - {SERVICE_PROGRAMS[s] for s in
                                                                   self.available_services()})
        if missing:
            pytest.skip(f'not built yet: {", ".join(missing)}')

    def stop(self):
        """`postern stop -c DIR`, then the last resort: kill whatever still names the instance directory.
        Returns the pids that had to be killed (a bug in stop, reported as a warning)."""
        if self.started:
            try:
                self.run('stop', '-c', self.dir, timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
            self.started = False
        return self.kill_leftovers()

    def kill_leftovers(self, grace=3.0):
        pids = processes_mentioning(self.dir)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while any(_alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not any(_alive(p) for p in pids):
                break
        return pids


@pytest.fixture(scope='session')
def postern_build():
    """The build directory under test; fails clearly when it has not been built."""
    if not postern_bin().exists():
        pytest.fail(f'{postern_bin()} does not exist: run make (or make asan) first')
    return build_dir()


@pytest.fixture
def make_instance(postern_build, tmp_path_factory, request):
    """Factory: make_instance(domain=..., hostname=..., start=False, extra_args=()) -> an initialised Instance
    (started when start=True). Every instance made is stopped at teardown."""
    made = []
    request.node._postern_instances = made

    def factory(domain='example.test', hostname='mail.example.test', start=False, extra_args=()):
        directory = tmp_path_factory.mktemp('inst') / 'postern'
        inst = Instance(directory, zip(SERVICES, free_ports(len(SERVICES))), domain, hostname)
        made.append(inst)
        inst.init(*extra_args)
        if start:
            inst.start()
        return inst

    yield factory
    leaked = []
    for inst in made:
        killed = inst.stop()
        if killed:
            leaked.append(f'{inst.dir}: {killed}')
    if leaked:
        warnings.warn('processes still running after postern stop were killed: ' + '; '.join(leaked))


@pytest.fixture
def instance(make_instance):
    """An initialised and started instance."""
    return make_instance(start=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for inst in getattr(item, '_postern_instances', []):
            report.sections.append((f'postern log ({inst.log_path})', inst.log_tail()))
