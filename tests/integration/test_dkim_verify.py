"""Sender authentication on port 25 against an independent signer: messages signed by dkimpy (Debian's
python3-dkim; rsa-sha256 and ed25519-sha256) arrive from a client outside mynetworks, DNS comes from dnsmasq on
loopback, and the Authentication-Results smtpd writes must say dkim=pass, or dkim=fail once one body byte is
changed. DMARC: aligned (strict and relaxed) passes, unaligned fails and p=reject is refused, p=quarantine is
delivered to the recipient's Junk folder, a domain without a record is none. A DNS server that never answers
cannot hold the session: within smtpd_sender_auth_timeout everything unanswered is temperror."""
import base64
import smtplib
import socket
import time

import pytest

from conftest import start_dnsmasq
from test_dkim_sign import dnsfunc, txt_option, wait_maildir
from test_smtpd import LOOPBACK

dkim = pytest.importorskip('dkim', reason='python3-dkim (dkimpy) is not installed')
nacl_signing = pytest.importorskip('nacl.signing', reason='python3-nacl is not installed')
from cryptography.hazmat.primitives import serialization  # noqa: E402 (python3-cryptography, a dkimpy need)
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

CLIENT = '127.0.0.2'


def rsa_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, 'v=DKIM1; k=rsa; p=' + base64.b64encode(pub).decode()


def ed_key():
    sk = nacl_signing.SigningKey.generate()
    return base64.b64encode(bytes(sk)), 'v=DKIM1; k=ed25519; p=' + base64.b64encode(bytes(sk.verify_key)).decode()


RSA_PRIV, RSA_REC = rsa_key()
ED_PRIV, ED_REC = ed_key()

ZONE = [
    txt_option('rsa._domainkey.signer.test', RSA_REC),
    txt_option('ed._domainkey.signer.test', ED_REC),
    txt_option('rsa._domainkey.other.test', RSA_REC),
    '--txt-record=signer.test,v=spf1 -all',
    '--txt-record=_dmarc.signer.test,v=DMARC1; p=reject; adkim=r',
    '--txt-record=quar.test,v=spf1 -all',
    '--txt-record=_dmarc.quar.test,v=DMARC1; p=quarantine',
    '--txt-record=spfok.test,v=spf1 ip4:127.0.0.2 -all',
    '--txt-record=_dmarc.spfok.test,v=DMARC1; p=reject; aspf=s',
    '--txt-record=bounces.spfok.test,v=spf1 ip4:127.0.0.2 -all',
    '--host-record=probe.test,127.0.0.1',
]


def sign(msg, domain, selector='rsa', alg=b'rsa-sha256'):
    key = ED_PRIV if alg == b'ed25519-sha256' else RSA_PRIV
    sig = dkim.sign(msg, selector.encode(), domain.encode(), key, canonicalize=(b'relaxed', b'relaxed'),
                    signature_algorithm=alg, include_headers=[b'from', b'to', b'subject'])
    return sig + msg


def message(frm, subject, body=b'Hello, this is the body.\r\nSecond line.\r\n'):
    return (b'From: <' + frm.encode() + b'>\r\nTo: <demo@example.test>\r\nSubject: ' + subject.encode() +
            b'\r\n\r\n' + body)


def send(inst, msg, sender='bounce@signer.test', options=()):
    with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=30, source_address=(CLIENT, 0)) as s:
        s.ehlo('client.test')
        assert s.mail(sender, options)[0] == 250
        assert s.rcpt(inst.demo_user)[0] == 250
        return s.data(msg)


def authres(msg):
    """The first header field, unfolded: our Authentication-Results."""
    first = msg.split(b'\n')[0]
    assert first.startswith(b'Authentication-Results: mail.example.test;'), msg[:300]
    rest = msg.split(b'\n')[1:]
    for line in rest:
        if not line[:1].isspace():
            break
        first += b' ' + line.strip()
    return first.decode()


@pytest.fixture
def verify_instance(make_instance, tmp_path):
    inst = make_instance()
    if not inst.demo_user:
        pytest.skip('no demo account')
    proc, port = start_dnsmasq(tmp_path, ZONE, 'probe.test')
    try:
        for setting in ('mynetworks=127.0.0.1/32', f'dns_nameservers=127.0.0.1:{port}', 'smtpd_peername_lookup=no',
                        'smtpd_dmarc_enforce=yes'):
            inst.cli('config', 'set', setting, check=True)
        inst.start()
        yield inst, port
    finally:
        proc.terminate()
        proc.wait(5)


def test_independent_signatures_and_dmarc(verify_instance):
    inst, port = verify_instance
    cases = {
        # subject: (message, expected fragments of Authentication-Results)
        'rsa aligned': (sign(message('a@signer.test', 'rsa aligned'), 'signer.test'),
                        ['spf=fail', 'dkim=pass', 'header.d=signer.test', 'dmarc=pass', 'header.from=signer.test']),
        'ed25519 relaxed': (sign(message('a@news.signer.test', 'ed25519 relaxed'), 'signer.test', 'ed',
                                 b'ed25519-sha256'),
                            ['dkim=pass', 'header.d=signer.test', 'dmarc=pass', 'header.from=news.signer.test']),
        'no dmarc record': (sign(message('a@other.test', 'no dmarc record'), 'other.test'),
                            ['dkim=pass', 'header.d=other.test', 'dmarc=none']),
    }
    for subject, (msg, want) in list(cases.items()):
        assert dkim.verify(msg, dnsfunc=dnsfunc(port))      # the signer's own verifier agrees
        assert send(inst, msg)[0] == 250, subject
    # no signature, SPF passes for the From domain itself: aligned through SPF
    assert send(inst, message('a@spfok.test', 'spf aligned'), sender='b@spfok.test')[0] == 250
    cases['spf aligned'] = (None, ['spf=pass', 'dkim=none', 'dmarc=pass', 'header.from=spfok.test'])
    # SPF passes for a subdomain, but aspf=s wants the exact From domain: refused (p=reject)
    assert send(inst, message('a@spfok.test', 'spf strict'), sender='b@bounces.spfok.test')[0] == 550
    # an internationalised From domain (SMTPUTF8) is evaluated as A-labels
    utf8 = sign(message('a@bücher.signer.test', 'idn from'), 'signer.test')
    assert send(inst, utf8, options=['SMTPUTF8'])[0] == 250
    cases['idn from'] = (None, ['dkim=pass', 'dmarc=pass', 'header.from=xn--bcher-kva.signer.test'])
    # one body byte changed after signing: dkim=fail; the domain has no DMARC record, so it is delivered
    tampered = sign(message('a@other.test', 'tampered'), 'other.test').replace(b'Hello,', b'Jello,')
    assert send(inst, tampered)[0] == 250
    cases['tampered'] = (None, ['dkim=fail', 'header.d=other.test', 'dmarc=none'])
    # unaligned: a good signature of other.test on mail From signer.test (p=reject): refused
    code, reply = send(inst, sign(message('a@signer.test', 'unaligned'), 'other.test'))
    assert (code, reply) == (550, b'5.7.1 Email rejected per DMARC policy for signer.test')
    # a changed body with an aligned signature fails DMARC too
    code, _ = send(inst, sign(message('a@signer.test', 'broken'), 'signer.test').replace(b'Second', b'Sekond'))
    assert code == 550
    # p=quarantine: accepted, delivered to Junk
    assert send(inst, sign(message('a@quar.test', 'quarantined'), 'other.test'), sender='x@quar.test')[0] == 250

    local, domain = inst.demo_user.split('@')
    inbox = wait_maildir(inst.path('mail', domain, local, 'new'), len(cases), inst)
    junk = wait_maildir(inst.path('mail', domain, local, '.Junk', 'new'), 1, inst)
    assert b'Subject: quarantined' in junk[0]
    ar = authres(junk[0].split(b'\n', 2)[2])     # after local's Return-Path and Delivered-To
    assert 'dmarc=fail' in ar and 'policy.dmarc=quarantine' in ar, ar
    for subject, (_, want) in cases.items():
        found = [m for m in inbox if b'Subject: ' + subject.encode() + b'\n' in m]
        assert len(found) == 1, subject
        ar = authres(found[0].split(b'\n', 2)[2])
        for w in want:
            assert w in ar, (subject, w, ar)
        assert 'policy.dmarc' not in ar
    inst.wait_log(r'delivered to maildir folder Junk \(DMARC quarantine\)')


def test_forged_quarantine_verdict_is_not_obeyed(verify_instance):
    """A sender's own Authentication-Results claiming our quarantine is removed, never obeyed."""
    inst, _ = verify_instance
    msg = (b'Authentication-Results: mail.example.test; dmarc=fail policy.dmarc=quarantine header.from=x\r\n' +
           sign(message('a@other.test', 'forged verdict'), 'other.test'))
    assert send(inst, msg)[0] == 250
    local, domain = inst.demo_user.split('@')
    got = wait_maildir(inst.path('mail', domain, local, 'new'), 1, inst)[0]
    assert got.count(b'Authentication-Results:') == 1 and b'policy.dmarc' not in got
    assert not inst.path('mail', domain, local, '.Junk', 'new').exists() or \
        not any(inst.path('mail', domain, local, '.Junk', 'new').iterdir())


def test_silent_dns_server_bounded(make_instance):
    """A resolver that swallows every query: the end of DATA is answered within smtpd_sender_auth_timeout (2 s)
    plus a little, with spf, dkim and dmarc all temperror."""
    inst = make_instance()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind((LOOPBACK, 0))
        for setting in ('mynetworks=127.0.0.1/32', f'dns_nameservers=127.0.0.1:{sink.getsockname()[1]}',
                        'smtpd_peername_lookup=no', 'smtpd_sender_auth_timeout=2s', 'dns_timeout=20s'):
            inst.cli('config', 'set', setting, check=True)
        inst.start()
        msg = sign(message('a@signer.test', 'slow dns'), 'signer.test')
        with smtplib.SMTP(LOOPBACK, inst.port('smtp'), timeout=30, source_address=(CLIENT, 0)) as s:
            s.ehlo('client.test')
            s.mail('bounce@signer.test')
            s.rcpt(f'postmaster@{inst.domain}')
            start = time.monotonic()
            code, _ = s.data(msg)
            took = time.monotonic() - start
        assert code == 250
        assert 1.5 < took < 6, took
    m = inst.wait_log(r'[0-9A-Z]+: sender authentication from unknown\[127\.0\.0\.2\]: '
                      r'spf=(\S+) dkim=(\S+) dmarc=(\S+)')
    assert m.groups() == ('temperror', 'temperror', 'temperror')


def test_spf_fail_refused_unless_dmarc_passes(make_instance, tmp_path):
    """smtpd_spf_reject: MAIL FROM failing SPF is refused (550 5.7.23 with the domain's explanation), but not
    when an aligned DKIM signature makes DMARC pass (what a forwarder's copy looks like)."""
    inst = make_instance()
    proc, port = start_dnsmasq(tmp_path, ZONE + ['--txt-record=exp.test,v=spf1 -all exp=why.exp.test',
                                                 '--txt-record=why.exp.test,%{i} may not send for %{d}'],
                               'probe.test')
    try:
        for setting in ('mynetworks=127.0.0.1/32', f'dns_nameservers=127.0.0.1:{port}', 'smtpd_peername_lookup=no',
                        'smtpd_spf_reject=yes'):
            inst.cli('config', 'set', setting, check=True)
        inst.start()
        code, reply = send(inst, message('a@exp.test', 'spf fail'), sender='a@exp.test')
        assert (code, reply) == (550, b'5.7.23 Message rejected due to the SPF policy of exp.test: '
                                      b'127.0.0.2 may not send for exp.test')
        # SPF fails (signer.test is -all) but the aligned signature passes DMARC: accepted
        assert send(inst, sign(message('a@signer.test', 'forwarded'), 'signer.test'))[0] == 250
        # fail without DMARC help (unaligned signature): refused
        assert send(inst, sign(message('a@signer.test', 'unaligned'), 'other.test'))[0] == 550
        # softfail and none are never refused
        assert send(inst, message('a@nothing.test', 'none'), sender='a@nothing.test')[0] == 250
    finally:
        proc.terminate()
        proc.wait(5)
    inst.wait_log(r'reject: DATA from unknown\[127\.0\.0\.2\]: 550 5\.7\.23')
