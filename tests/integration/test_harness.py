"""The harness itself: free ports, log helpers, leftover cleanup, and starting an instance."""
import socket
import subprocess
import sys
import time

import pytest

from conftest import LOOPBACK, free_port, free_ports, port_accepts, processes_mentioning


def test_free_ports_are_distinct_and_bindable():
    ports = free_ports(10)
    assert len(set(ports)) == 10
    assert free_port() not in ports
    for p in ports:
        with socket.socket() as s:
            s.bind((LOOPBACK, p))
    assert not port_accepts(ports[0])


def test_log_helpers(make_instance):
    inst = make_instance()
    assert inst.log_lines() == []
    assert 'no log' in inst.log_tail()
    inst.log_path.write_text('2026-11-23T14:42:50.123Z h postern/smtpd[1]: info: connect from localhost\n')
    m = inst.wait_log(r'connect from (\S+)', timeout=1)
    assert m.group(1) == 'localhost'
    with pytest.raises(AssertionError, match='no log line matched'):
        inst.wait_log(r'never logged', timeout=0.2)
    with pytest.raises(AssertionError):
        inst.wait_log(r'connect from', timeout=0.1, since=1)


def test_kill_leftovers(make_instance, tmp_path):
    inst = make_instance()
    # a stand-in for a daemon that ignored `postern stop`: it names the instance on its command line and
    # ignores SIGTERM, so only the SIGKILL step can end it
    code = 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)'
    stubborn = subprocess.Popen([sys.executable, '-c', code, '-c', str(inst.dir)])
    # a process naming a directory that merely starts with the same text must be left alone
    bystander = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)', str(inst.dir) + '0'])
    try:
        time.sleep(0.3)
        assert stubborn.pid in processes_mentioning(inst.dir)
        assert bystander.pid not in processes_mentioning(inst.dir)
        killed = inst.kill_leftovers(grace=0.5)
        assert stubborn.pid in killed
        assert stubborn.wait(timeout=5) != 0
        assert bystander.poll() is None
    finally:
        for p in (stubborn, bystander):
            p.kill()
            p.wait()


def test_cli_runs_against_the_instance(make_instance):
    inst = make_instance()
    r = inst.run('help')
    assert r.returncode == 0 and 'init' in r.stdout


def test_instance_starts_and_stops(instance):
    # skipped until this build has a master program
    status = instance.cli('status')
    assert status.returncode == 0, status.stderr
    master = instance.wait_log(r'postern/master\[(\d+)\]: info: started')
    assert int(master.group(1)) in processes_mentioning(instance.dir)
    for service in instance.available_services():
        assert port_accepts(instance.port(service)), service
    assert instance.stop() == [], 'postern stop left processes behind'
    assert processes_mentioning(instance.dir) == []
    for service in instance.available_services():
        assert not port_accepts(instance.port(service)), service


def test_second_start_refused(instance):
    r = instance.cli('start')
    assert r.returncode != 0
    assert 'already running' in r.stderr


def test_smtp_greeting(instance):
    instance.require('smtp')
    import smtplib
    with smtplib.SMTP(LOOPBACK, instance.port('smtp'), timeout=10) as s:
        code, _ = s.noop()
        assert code == 250
