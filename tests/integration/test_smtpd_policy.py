"""smtpd's policy through smtplib on a running instance: access maps (compiled with `postern map compile`) with and
without smtpd_delay_reject, forward-confirmed reverse DNS, and SPF/DMARC headers and enforcement, with dnsmasq on
loopback as the resolver. Clients connect from 127.0.0.2-4 so that they are outside mynetworks (127.0.0.1/32)."""
import os
import shutil
import smtplib
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import start_dnsmasq
from test_smtpd import LOOPBACK, edit_master_cf, queue_files, queued_message, rcpt

DNSMASQ = shutil.which('dnsmasq') or ('/usr/sbin/dnsmasq' if os.path.exists('/usr/sbin/dnsmasq') else None)


ZONE = [
    '--ptr-record=2.0.0.127.in-addr.arpa,client.test', '--host-record=client.test,127.0.0.2',
    '--ptr-record=3.0.0.127.in-addr.arpa,liar.test', '--host-record=liar.test,127.0.0.99',
    '--txt-record=spf.test,v=spf1 ip4:127.0.0.2 -all',
    '--txt-record=_dmarc.spf.test,v=DMARC1; p=reject',
    '--txt-record=fail.test,v=spf1 -all',
    '--txt-record=_dmarc.fail.test,v=DMARC1; p=reject',
]


@pytest.fixture
def dns(tmp_path):
    """dnsmasq on a free loopback port: 127.0.0.2 is client.test (confirmed), 127.0.0.3 claims liar.test."""
    proc, port = start_dnsmasq(tmp_path, ZONE, 'client.test', local=('/test/', '/0.0.127.in-addr.arpa/'))
    try:
        yield f'127.0.0.1:{port}'
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture
def policy_instance(make_instance):
    """factory(main_cf={}, maps={'client': 'text'}) -> a started instance without qmgr whose smtpd_NAME_access
    parameters name the compiled maps."""
    def factory(main_cf=None, maps=None):
        inst = make_instance()
        edit_master_cf(inst)
        settings = {'mynetworks': '127.0.0.1/32', 'smtpd_peername_lookup': 'no'}
        for name, text in (maps or {}).items():
            src = inst.path('etc', f'{name}_access')
            Path(src).write_text(text)
            inst.run('map', 'compile', str(src), check=True)
            settings[f'smtpd_{name}_access'] = str(src)
        settings.update(main_cf or {})
        for name, value in settings.items():
            inst.cli('config', 'set', f'{name}={value}', check=True)
        inst.start()
        return inst
    return factory


MAPS = {
    'client': '127.0.0.3 REJECT go away\n127.0.0 DUNNO\n',
    'helo': 'evil.test DEFER come back later\n',
    'sender': 'bad.test REJECT\nfriend@bad.test OK\n',
    'recipient': 'abuse@example.test 550 5.7.1 not here\n',
}


def test_access_maps_delayed_to_rcpt(policy_instance):
    inst = policy_instance(maps=MAPS)
    with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=10, source_address=('127.0.0.3', 0)) as s:
        assert s.ehlo('client.test')[0] == 250
        assert s.mail('a@remote.test')[0] == 250
        code, msg = s.rcpt(rcpt(inst))
        assert code == 554 and b'Client host rejected: go away' in msg
    with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=10, source_address=('127.0.0.2', 0)) as s:
        s.ehlo('evil.test')
        s.mail('a@remote.test')
        code, msg = s.rcpt(rcpt(inst))
        assert code == 450 and b'Helo command rejected: come back later' in msg
        s.rset()
        s.ehlo('client.test')
        s.mail('x@bad.test')
        code, msg = s.rcpt(rcpt(inst))
        assert code == 554 and b'<x@bad.test>: Sender address rejected' in msg
        s.rset()
        s.mail('friend@bad.test')
        assert s.rcpt(rcpt(inst))[0] == 250
        code, msg = s.rcpt(f'abuse@{inst.domain}')
        assert (code, msg) == (550, b'5.7.1 not here')
        # the access maps never open a relay
        assert s.rcpt('someone@elsewhere.test')[0] == 554
        s.data(b'Subject: ok\r\n\r\nhello\r\n')
    inst.wait_log(r'NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.3\]: 554 5\.7\.1')
    assert len(queue_files(inst, 'incoming')) == 1


def test_access_maps_immediate(policy_instance):
    inst = policy_instance(maps=MAPS, main_cf={'smtpd_delay_reject': 'no'})
    with pytest.raises(smtplib.SMTPConnectError) as e:
        smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=10, source_address=('127.0.0.3', 0))
    assert e.value.smtp_code == 554
    with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=10, source_address=('127.0.0.2', 0)) as s:
        assert s.ehlo('evil.test')[0] == 450
        assert s.ehlo('client.test')[0] == 250
        code, msg = s.mail('x@bad.test')
        assert code == 554 and b'Sender address rejected' in msg
        assert s.mail('a@remote.test')[0] == 250


def test_reverse_dns_forward_confirmed(policy_instance, dns):
    inst = policy_instance(main_cf={'dns_nameservers': dns, 'smtpd_peername_lookup': 'yes',
                                    'smtpd_sender_authentication': 'no'})
    replies = []
    for source in ('127.0.0.2', '127.0.0.3'):
        with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=10, source_address=(source, 0)) as s:
            s.ehlo('helo.test')
            s.mail('a@remote.test')
            s.rcpt(rcpt(inst))
            replies.append(s.data(b'Subject: x\r\n\r\nhi\r\n')[1])
    _, c2 = queued_message(inst, replies[0])
    _, c3 = queued_message(inst, replies[1])
    assert b'Received: from helo.test (client.test [127.0.0.2])' in c2
    assert b'Received: from helo.test (unknown [127.0.0.3])' in c3      # liar.test points elsewhere
    inst.wait_log(r'connect from client\.test\[127\.0\.0\.2\]')


def test_spf_dmarc_headers_and_enforcement(policy_instance, dns):
    inst = policy_instance(main_cf={'dns_nameservers': dns, 'smtpd_dmarc_enforce': 'yes'})
    with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=10, source_address=('127.0.0.2', 0)) as s:
        s.ehlo('client.test')
        s.mail('a@spf.test')
        s.rcpt(rcpt(inst))
        code, reply = s.data(b'From: <a@spf.test>\r\n'
                             b'Authentication-Results: mail.example.test; spf=pass smtp.mailfrom=forged.test\r\n'
                             b'Subject: x\r\n\r\nhi\r\n')
        assert code == 250
        s.mail('b@fail.test')
        s.rcpt(rcpt(inst))
        code, msg = s.data(b'From: <b@fail.test>\r\nSubject: y\r\n\r\nhi\r\n')
        assert code == 550 and msg.startswith(b'5.7.1') and b'DMARC' in msg
    _, content = queued_message(inst, reply)
    head = content.split(b'\n\n')[0]
    assert head.startswith(b'Authentication-Results: mail.example.test;')
    assert b'spf=pass' in head and b'smtp.mailfrom=a@spf.test' in head
    assert b'dmarc=pass' in head and b'header.from=spf.test' in head
    assert b'\nReceived-SPF: pass' in head
    assert b'forged.test' not in head
    assert len(queue_files(inst, 'incoming')) == 1
