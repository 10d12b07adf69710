"""The CLI's smaller promises: postern.conf(5) documents every parameter of common/params.c (the page is built
from the table, and a parameter the table holds but the page lacks fails here); postern map -c DIR resolves
bare map names in the instance's configuration directory while paths keep working."""
import re
import subprocess
from pathlib import Path

from conftest import build_dir, postern_bin

ROOT = Path(__file__).resolve().parents[2]


def test_conf_man_page_lists_every_parameter():
    page = build_dir() / 'man' / 'postern.conf.5'
    assert page.exists(), f'{page} is built by make'
    text = page.read_text()
    documented = re.findall(r'^\.BR (\S+) " \(default: ', text, re.M)
    # the table as the source has it (entries may span lines), independent of the program that printed it
    source = re.findall(r'^\t\{ "([A-Za-z0-9_]+)",', (ROOT / 'common' / 'params.c').read_text(), re.M)
    assert len(source) > 50
    names = [n.replace('\\-', '-') for n in documented]
    missing = sorted(set(source) - set(names))
    assert not missing, f'parameters missing from postern.conf(5): {missing}'
    printed = subprocess.run([str(postern_bin()), 'config', 'params'], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    assert [l.split('\t')[0] for l in printed] == source
    assert all(len(l.split('\t')) == 3 and l.split('\t')[2] for l in printed)
    # and the page is well-formed roff
    r = subprocess.run(['groff', '-man', '-ww', '-z', str(page)], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr, r.stderr


def test_map_relative_to_instance(make_instance, tmp_path, monkeypatch):
    inst = make_instance(start=False)
    etc = inst.path('etc')
    (etc / 'virtual').write_text('info@example.test  demo@example.test\n')
    r = inst.run('map', 'compile', 'virtual', '-c', inst.dir)
    assert r.returncode == 0, r.stderr
    assert (etc / 'virtual.lmdb').exists()
    assert inst.run('map', 'get', 'virtual', 'info@example.test', '-c', inst.dir).stdout == 'demo@example.test\n'
    assert inst.run('map', 'get', '-c', inst.dir, 'virtual', 'nobody@example.test').returncode == 1
    # a path is a path, with -c or without; a bare name without -c is relative to the working directory
    (tmp_path / 'local').write_text('a  b\n')
    assert inst.run('map', 'compile', tmp_path / 'local', '-c', inst.dir).returncode == 0
    assert inst.run('map', 'get', tmp_path / 'local', 'a').stdout == 'b\n'
    monkeypatch.chdir(tmp_path)
    assert inst.run('map', 'get', 'local', 'a').stdout == 'b\n'
    assert inst.run('map', 'get', './local', 'a', '-c', inst.dir).stdout == 'b\n'
    r = inst.run('map', 'get', 'local', 'a', '-c', inst.dir)       # not in etc/
    assert r.returncode != 0 and str(etc / 'local') in r.stderr


def test_trace_reads_rotated_log_and_follows_notifications(make_instance, tmp_path):
    inst = make_instance(start=False)
    log = tmp_path / 'mail.log'
    (tmp_path / 'mail.log.1').write_text(
        'T1 h postern/smtpd[1]: info: AAAAAAAAAAA1: client=x[192.0.2.1]\n'
        'T2 h postern/smtpd[1]: info: AAAAAAAAAAAAAAAAAA12: client=other[192.0.2.2]\n')
    log.write_text(
        'T3 h postern/qmgr[2]: info: AAAAAAAAAAA1: to=<a@b>, relay=smtp, delay=1, dsn=5.1.1, status=bounced (no)\n'
        'T4 h postern/qmgr[2]: info: connect from AAAAAAAAAAA1: not about it\n'
        'T5 h postern/qmgr[2]: info: AAAAAAAAAAA1: sender non-delivery notification: BBBBBBBBBBB2\n'
        'T6 h postern/qmgr[2]: info: BBBBBBBBBBB2: to=<s@b>, relay=local, dsn=2.0.0, status=sent (ok)\n'
        'T7 h postern/qmgr[2]: info: CCCCCCCCCCC3: removed\n')
    r = inst.cli('trace', 'AAAAAAAAAAA1', '--log', log, check=True)
    assert [l.split()[0] for l in r.stdout.splitlines()] == ['T1', 'T3', 'T5', 'T6']
    r = inst.cli('trace', 'DDDDDDDDDDD4', '--log', log)
    assert r.returncode == 1 and 'no log lines about DDDDDDDDDDD4' in r.stderr
    assert inst.cli('trace', 'not/an/id', '--log', log).returncode == 64
    assert inst.cli('trace', 'AAAAAAAAAAA1', '--log', tmp_path / 'missing').returncode == 66
