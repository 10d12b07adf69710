/* Sender authentication on the public MX port: SPF for MAIL FROM and HELO (started at MAIL, answered by DATA),
 * DKIM verification and DMARC once the whole message is in, and the headers that record them
 * (Authentication-Results for our authserv-id, Received-SPF). Not for submission (465/587), logged-in or
 * mynetworks clients: their mail is ours to vouch for. Called by commands.c (MAIL), data.c and session.c. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <idn2.h>

#include "alloc.h"
#include "authres.h"
#include "dkim.h"
#include "dkim_signer.h"
#include "dmarc.h"
#include "dns.h"
#include "log.h"
#include "smtpd.h"
#include "spf.h"

struct spf_slot {
	struct spf_request req;
	char *sender, *helo, *ip;
	struct spf_check *check;
	struct spf_answer ans;
	bool started, done;
};

struct smtpd_authcheck {
	struct event_base *base;
	struct dns *dns;
	struct spf_slot mailfrom, helo;
	/* From the end of the data, SPF, the DKIM keys and DMARC together get smtpd_sender_auth_timeout; what is
	 * not answered by then is a temperror, so a slow DNS server cannot hold the client. */
	struct event *deadline;
	bool expired;
};

bool smtpd_authcheck_wanted(const struct smtpd_session *ss)
{
	const struct smtpd_settings *set = ss->set;

	return set->sender_auth && set->dns && !set->auth_required && set->tls_mode != SMTPD_TLS_IMPLICIT &&
	       !ss->auth_user && !ss->trusted && strcmp(ss->client_addr, "unknown") != 0;
}

static void spf_done(const struct spf_answer *ans, void *arg)
{
	struct spf_slot *s = arg;

	spf_answer_copy(&s->ans, ans);
	s->done = true;
}

static void slot_start(struct smtpd_authcheck *ac, struct spf_slot *s, const struct smtpd_session *ss,
                       const char *sender, bool helo_identity)
{
	s->sender = xstrdup(sender);
	s->helo = xstrdup(ss->helo ? ss->helo : "");
	s->ip = xstrdup(ss->client_addr);
	s->req.ip = s->ip;
	s->req.sender = s->sender;
	s->req.helo = s->helo;
	s->req.receiver = ss->set->hostname;
	s->req.helo_identity = helo_identity;
	s->check = spf_check_start(ac->dns, ac->base, &s->req, spf_done, s);
	s->started = true;
}

static void slot_clear(struct spf_slot *s)
{
	spf_check_cancel(&s->check);
	if (s->started)
		spf_answer_clear(&s->ans);
	free(s->sender);
	free(s->helo);
	free(s->ip);
	memset(s, 0, sizeof(*s));
}

void smtpd_authcheck_start(struct smtpd_session *ss)
{
	struct buf err = BUF_INIT(512);

	smtpd_authcheck_free(ss);
	if (!smtpd_authcheck_wanted(ss))
		return;
	struct smtpd_authcheck *ac = xcalloc(1, sizeof(*ac));
	ac->base = event_base_new();
	if (!ac->base)
		fatalx("smtpd: cannot create an event base");
	ac->dns = dns_new(ac->base, ss->set->dns, &err);
	if (!ac->dns) {
		/* the answers will say temperror */
		log_warn("SPF: resolver: %s", buf_cstr(&err));
	} else {
		/* Queries go out now and their answers wait in the socket while the client sends its RCPTs. */
		slot_start(ac, &ac->mailfrom, ss, ss->sender ? ss->sender : "", false);
		if (ss->sender && *ss->sender && ss->helo)
			slot_start(ac, &ac->helo, ss, "", true);
	}
	buf_free(&err);
	ss->authcheck = ac;
}

void smtpd_authcheck_free(struct smtpd_session *ss)
{
	struct smtpd_authcheck *ac = ss->authcheck;

	if (!ac)
		return;
	slot_clear(&ac->mailfrom);
	slot_clear(&ac->helo);
	dns_free(&ac->dns);
	if (ac->deadline)
		event_free(ac->deadline);
	if (ac->base)
		event_base_free(ac->base);
	free(ac);
	ss->authcheck = NULL;
}

static void deadline_reached(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_authcheck *ac = arg;

	(void)fd;
	(void)what;
	ac->expired = true;
}

/* The end of the data: the clock for everything still to be looked up starts now. */
static void deadline_start(struct smtpd_authcheck *ac, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	ac->deadline = evtimer_new(ac->base, deadline_reached, ac);
	if (!ac->deadline || evtimer_add(ac->deadline, &tv) != 0)
		fatalx("smtpd: cannot arm the sender authentication timer");
}

struct lookup_wait {
	struct dns_result *res;
};

static void lookup_done(struct dns_result *res, void *arg)
{
	((struct lookup_wait *)arg)->res = res;
}

/* One TXT lookup on the transaction's resolver, answered within the deadline or not at all (DNS_TIMEOUT). */
static struct dns_result *ac_lookup(const char *name, void *arg)
{
	struct smtpd_authcheck *ac = arg;
	struct lookup_wait w = { NULL };

	if (ac->dns && !ac->expired) {
		struct dns_query *q = dns_query(ac->dns, DNS_TXT, name, lookup_done, &w);
		while (!w.res && !ac->expired && event_base_loop(ac->base, EVLOOP_ONCE) == 0)
			;
		if (!w.res)
			dns_cancel(&q);
	}
	if (w.res)
		return w.res;
	struct dns_result *r = xcalloc(1, sizeof(*r));
	r->type = DNS_TXT;
	r->status = DNS_TIMEOUT;
	r->name = xstrdup(name);
	r->error = xstrdup("sender authentication time limit reached");
	return r;
}

static int ac_dkim_fetch(const char *name, struct buf *rec, void *arg)
{
	return dkim_key_record(ac_lookup(name, arg), rec);
}

static void spf_wait(struct smtpd_authcheck *ac)
{
	while ((ac->mailfrom.started && !ac->mailfrom.done) || (ac->helo.started && !ac->helo.done)) {
		if (ac->expired || event_base_loop(ac->base, EVLOOP_ONCE) != 0)
			break;
	}
	struct spf_slot *slots[2] = { &ac->mailfrom, &ac->helo };
	for (int i = 0; i < 2; i++) {
		struct spf_slot *s = slots[i];
		if (s->started && !s->done) {
			spf_check_cancel(&s->check);
			s->ans.result = SPF_TEMPERROR;
			s->ans.reason = xstrdup("SPF evaluation took too long");
			s->ans.domain = xstrdup("");
			s->ans.sender = xstrdup(s->sender);
			s->done = true;
		}
	}
}

/* The domain part of an identity ("postmaster@helo" -> "helo"). */
static const char *domain_of(const char *addr)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;
	return at ? at + 1 : (addr ? addr : "");
}

/* An internationalised From domain (SMTPUTF8 mail) as A-labels, the form DNS, DKIM's d= and the PSL use
 * (RFC 8616 section 4); one that does not convert is dropped (no DMARC verdict rather than a wrong one). */
static char *a_label_domain(char *d)
{
	bool ascii = true;

	for (const char *p = d; p && *p && ascii; p++)
		ascii = (unsigned char)*p < 0x80;
	if (!d || ascii)
		return d;
	char *a = NULL, *out = NULL;
	if (idn2_to_ascii_8z(d, &a, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) == IDN2_OK && a)
		out = xstrdup(a);
	idn2_free(a);
	free(d);
	return out;
}

bool smtpd_authcheck_finish(struct smtpd_session *ss, const char *qid, const char *msg, size_t len, bool complete,
                            struct buf *top, struct buf *reply)
{
	struct smtpd_authcheck *ac = ss->authcheck;
	struct authres_entry e[2 + 8 + 1];
	size_t ne = 0;
	bool ok = true, quarantined = false;

	if (!ac)
		return true;
	deadline_start(ac, ss->set->authcheck_timeout_ms > 0 ? ss->set->authcheck_timeout_ms : 30000);
	spf_wait(ac);
	memset(e, 0, sizeof(e));
	struct spf_slot *mf = &ac->mailfrom;
	bool null_sender = !ss->sender || !*ss->sender;
	if (mf->done) {
		e[ne].method = "spf";
		e[ne].result = spf_result_str(mf->ans.result);
		e[ne].reason = mf->ans.reason;
		e[ne].props[0].name = null_sender ? "smtp.helo" : "smtp.mailfrom";
		e[ne].props[0].value = null_sender ? mf->helo : (mf->ans.sender ? mf->ans.sender : mf->sender);
		ne++;
	}
	if (ac->helo.done) {
		e[ne].method = "spf";
		e[ne].result = spf_result_str(ac->helo.ans.result);
		e[ne].reason = ac->helo.ans.reason;
		e[ne].props[0].name = "smtp.helo";
		e[ne].props[0].value = ac->helo.helo;
		ne++;
	}

	/* DKIM: every signature gets its own entry (at most 8 are verified) */
	size_t nsig = 0;
	struct dkim_sig_result *sigs = NULL;
	if (complete)
		sigs = dkim_verify(msg, len, ac_dkim_fetch, ac, 0, 8, &nsig);
	const char *passed[8];
	size_t npassed = 0;
	for (size_t i = 0; i < nsig && i < 8; i++) {
		e[ne].method = "dkim";
		e[ne].result = dkim_result_str(sigs[i].result);
		e[ne].reason = sigs[i].reason[0] ? sigs[i].reason : NULL;
		size_t p = 0;
		if (sigs[i].domain) {
			e[ne].props[p].name = "header.d";
			e[ne].props[p++].value = sigs[i].domain;
		}
		if (sigs[i].identity) {
			e[ne].props[p].name = "header.i";
			e[ne].props[p++].value = sigs[i].identity;
		}
		if (sigs[i].b_prefix) {
			e[ne].props[p].name = "header.b";
			e[ne].props[p++].value = sigs[i].b_prefix;
		}
		if (sigs[i].result == DKIM_PASS && sigs[i].domain)
			passed[npassed++] = sigs[i].domain;
		ne++;
	}
	if (nsig == 0) {
		e[ne].method = "dkim";
		e[ne].result = "none";
		e[ne].reason = complete ? NULL : "not checked: message too large to hold";
		ne++;
	}

	/* DMARC on the From domain */
	char *from = complete ? a_label_domain(dkim_from_domain(msg, len)) : NULL;
	struct dmarc_verdict v;
	memset(&v, 0, sizeof(v));
	char dmarc_reason[200];
	if (from && ss->set->psl) {
		struct dmarc_input in = {
			.from_domain = from,
			.spf_pass = mf->done && mf->ans.result == SPF_PASS,
			.spf_domain = mf->done && mf->ans.domain && *mf->ans.domain ? mf->ans.domain
			                                                             : domain_of(mf->ans.sender),
			.dkim_pass_domains = passed,
			.n_dkim = npassed,
		};
		dmarc_check_with(ac_lookup, ac, ss->set->psl, &in, arc4random_uniform(100), &v);
		snprintf(dmarc_reason, sizeof(dmarc_reason), "p=%s%s%s", v.published == DMARC_POLICY_UNSET ? "none"
		         : dmarc_policy_str(v.published), v.reason[0] ? "; " : "", v.reason);
		e[ne].method = "dmarc";
		e[ne].result = dmarc_result_str(v.result);
		e[ne].reason = v.result == DMARC_NONE ? NULL : dmarc_reason;
		e[ne].props[0].name = "header.from";
		e[ne].props[0].value = from;
		if (v.result == DMARC_FAIL && v.policy == DMARC_POLICY_QUARANTINE && ss->set->dmarc_enforce) {
			/* the disposition we applied: local reads it and delivers into Junk */
			e[ne].props[1].name = "policy.dmarc";
			e[ne].props[1].value = "quarantine";
			quarantined = true;
		}
		ne++;
		if (v.result == DMARC_FAIL && v.policy == DMARC_POLICY_REJECT && ss->set->dmarc_enforce) {
			buf_reset(reply);
			buf_printf(reply, "550 5.7.1 Email rejected per DMARC policy for %s", from);
			ok = false;
		}
	}
	/* RFC 7208 8.4 allows refusing a fail; RFC 7489 10.1 warns that doing so before DMARC loses mail that
	 * DMARC would pass (a forwarder breaks SPF, not an aligned signature): refused only without a DMARC pass */
	if (ok && ss->set->spf_reject && mf->done && mf->ans.result == SPF_FAIL && v.result != DMARC_PASS) {
		buf_reset(reply);
		buf_printf(reply, "550 5.7.23 Message rejected due to the SPF policy of %s: ",
		           mf->ans.domain && *mf->ans.domain ? mf->ans.domain : domain_of(mf->sender));
		const char *x = mf->ans.explanation ? mf->ans.explanation : "sender not authorised";
		buf_append_printable(reply, x, strlen(x), 200);
		ok = false;
	}
	log_info("%s: sender authentication from %s[%s]: spf=%s dkim=%s dmarc=%s%s%s%s", qid, ss->client_name,
	         ss->client_addr, mf->done ? spf_result_str(mf->ans.result) : "none",
	         nsig ? dkim_result_str(sigs[0].result) : "none", from ? dmarc_result_str(v.result) : "none",
	         from ? " from=" : "", from ? from : "", quarantined ? " (quarantine: to Junk)" : "");
	if (ok) {
		authres_header(top, ss->set->hostname, e, ne);
		if (mf->done)
			spf_received_header(&mf->ans, &mf->req, top);
	}
	free(from);
	dkim_results_free(&sigs, nsig);
	smtpd_authcheck_free(ss);
	return ok;
}
