/* SPF check_host() as a state machine. An evaluation is a stack of frames (the top-level domain, then include
 * and redirect targets); eval_term() runs one term and either decides it or starts one DNS query and returns
 * PENDING, to be called again for the same term when the answer arrives. Only one query is in flight. */
#include <arpa/inet.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "dns.h"
#include "log.h"
#include "spf.h"
#include "str.h"

#define SPF_MAX_DEPTH (SPF_MAX_DNS_MECHS + 2)
#define SPF_MAX_DOMAIN 1024

enum step_rc { T_MATCH, T_NOMATCH, T_PENDING, T_ERROR };

struct frame {
	char *domain;
	struct spf_record rec;
	bool have_record;
	size_t pos;		/* next term */
	int step;		/* progress inside the current term */
	bool redirecting;	/* the child frame is our redirect target */
	bool in_include;	/* this frame was reached through include: its exp= is not used */
	struct dns_result *mx;	/* mx mechanism: the MX answer being walked */
	size_t idx;
	enum spf_result child;	/* include/redirect: the child's result */
};

struct spf_check {
	struct dns *dns;
	struct event_base *base;
	spf_callback *cb;
	void *arg;
	char *ip, *sender, *helo, *receiver;
	bool ipv6;
	struct in_addr ip4;
	struct in6_addr ip6;
	time_t now;

	struct frame stack[SPF_MAX_DEPTH];
	int depth;
	unsigned dns_mechs, voids;
	struct dns_query *q;
	struct dns_result *ans;	/* answer to the pending query, consumed by eval_term() */

	/* validated PTR names (for ptr and %{p}), found once */
	int ptr_state;		/* 0 not started, 1 PTR asked, 2 checking names, 3 done */
	struct dns_result *ptr;
	size_t ptr_idx;
	char *validated[SPF_MAX_NAMES];
	size_t nvalidated;

	enum spf_result result;
	struct buf reason;
	char *exp_spec, *exp_domain;	/* exp= of the record whose mechanism gave fail */
	bool exp_asked;
	struct event *later;
	struct spf_answer answer;
	bool finished;
};

static void run(struct spf_check *c);

static struct frame *top(struct spf_check *c)
{
	return &c->stack[c->depth - 1];
}

static void frame_clear(struct frame *f)
{
	free(f->domain);
	if (f->have_record)
		spf_record_clear(&f->rec);
	dns_result_free(&f->mx);
	memset(f, 0, sizeof(*f));
}

static void on_dns(struct dns_result *res, void *arg)
{
	struct spf_check *c = arg;
	c->q = NULL;
	dns_result_free(&c->ans);
	c->ans = res;
	run(c);
}

static void ask(struct spf_check *c, enum dns_type type, const char *name)
{
	c->q = dns_query(c->dns, type, name, on_dns, c);
}

/* Ask for the client's address family. */
static void ask_addr(struct spf_check *c, const char *name)
{
	ask(c, c->ipv6 ? DNS_AAAA : DNS_A, name);
}

static struct dns_result *take_answer(struct spf_check *c)
{
	struct dns_result *r = c->ans;
	c->ans = NULL;
	return r;
}

static bool set_error(struct spf_check *c, enum spf_result r, const char *fmt, const char *arg)
{
	c->result = r;
	buf_reset(&c->reason);
	buf_printf(&c->reason, fmt, arg ? arg : "");
	return false;
}

static bool domain_ok(const char *d)
{
	size_t len = strlen(d), lab = 0, labels = 0;
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)d[i];
		if (ch == '.') {
			if (lab == 0 && !(i == len - 1 && labels > 0))
				return false;
			lab = 0;
			labels++;
			continue;
		}
		if (ch <= 0x20 || ch >= 0x7f || ++lab > 63)
			return false;
	}
	if (lab)
		labels++;
	return labels >= 2;
}

static bool match_v4(const struct in_addr *a, const struct in_addr *net, unsigned bits)
{
	uint32_t mask = bits == 0 ? 0 : htonl(0xffffffffu << (32 - bits));
	return (a->s_addr & mask) == (net->s_addr & mask);
}

static bool match_v6(const struct in6_addr *a, const struct in6_addr *net, unsigned bits)
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned b = bits > i * 8 ? bits - i * 8 : 0;
		if (b == 0)
			break;
		unsigned char mask = b >= 8 ? 0xff : (unsigned char)(0xff << (8 - b));
		if ((a->s6_addr[i] & mask) != (net->s6_addr[i] & mask))
			return false;
	}
	return true;
}

static bool addr_matches(struct spf_check *c, const struct dns_result *r, unsigned cidr4, unsigned cidr6)
{
	for (size_t i = 0; r->status == DNS_OK && i < r->n; i++) {
		const struct dns_addr *a = &r->addr[i];
		if (!c->ipv6 && a->family == AF_INET && match_v4(&c->ip4, &a->u.v4, cidr4))
			return true;
		if (c->ipv6 && a->family == AF_INET6 && match_v6(&c->ip6, &a->u.v6, cidr6))
			return true;
	}
	return false;
}

static const char *pick_validated(struct spf_check *c, const char *domain)
{
	size_t dl = strlen(domain);
	for (size_t i = 0; i < c->nvalidated; i++) {
		const char *v = c->validated[i];
		size_t vl = strlen(v);
		if (str_eq_ci(v, domain) || (vl > dl && v[vl - dl - 1] == '.' && str_eq_ci(v + vl - dl, domain)))
			return v;
	}
	return c->nvalidated ? c->validated[0] : "unknown";
}

/* Expand a domain-spec for the current frame (spec NULL: the frame's domain). */
static bool expand(struct spf_check *c, const char *spec, bool exp, struct buf *out)
{
	struct frame *f = top(c);
	struct spf_macro_ctx m = { c->sender, f->domain, c->ip, c->ipv6, c->helo,
		                   c->ptr_state == 3 ? pick_validated(c, f->domain) : "unknown", c->receiver, c->now };
	if (!spec)
		return buf_puts(out, f->domain);
	if (!spf_macro_expand(spec, &m, exp, out))
		return false;
	if (!exp) {
		spf_domain_truncate(out);
		/* a trailing dot is the root: same name */
		if (out->len && out->data[out->len - 1] == '.')
			buf_truncate(out, out->len - 1);
	}
	return true;
}

/* Drive the PTR validation (section 5.5): true when done (names in c->validated); false when a query is
 * pending or an error was set (check c->result != SPF_NONE... via return of caller). */
static bool ptr_ready(struct spf_check *c)
{
	for (;;) {
		if (c->ptr_state == 3)
			return true;
		if (c->ptr_state == 0) {
			c->ptr_state = 1;
			ask(c, DNS_PTR, c->ip);
			return false;
		}
		if (c->ptr_state == 1) {
			c->ptr = take_answer(c);
			c->ptr_idx = 0;
			c->ptr_state = 2;
		} else {	/* an address answer for ptr name ptr_idx - 1 */
			struct dns_result *r = take_answer(c);
			if (r && addr_matches(c, r, 32, 128) && c->nvalidated < SPF_MAX_NAMES)
				c->validated[c->nvalidated++] = xstrdup(c->ptr->ptr[c->ptr_idx - 1]);
			dns_result_free(&r);
		}
		/* errors in PTR or its address lookups just mean fewer validated names */
		if (!c->ptr || c->ptr->status != DNS_OK || c->ptr_idx >= c->ptr->n || c->ptr_idx >= SPF_MAX_NAMES) {
			c->ptr_state = 3;
			dns_result_free(&c->ptr);
			continue;
		}
		ask_addr(c, c->ptr->ptr[c->ptr_idx++]);
		return false;
	}
}

static bool count_mech(struct spf_check *c)
{
	if (++c->dns_mechs > SPF_MAX_DNS_MECHS)
		return set_error(c, SPF_PERMERROR, "more than 10 DNS-querying mechanisms%s", NULL);
	return true;
}

/* DNS status of a mechanism's main query: false (error set) on temporary failure or too many void lookups. */
static bool check_dns(struct spf_check *c, const struct dns_result *r, const char *name)
{
	if (dns_status_temporary(r->status))
		return set_error(c, SPF_TEMPERROR, "DNS failure looking up %s", name);
	if (r->status == DNS_NXDOMAIN || r->status == DNS_NODATA || r->n == 0) {
		if (++c->voids > SPF_MAX_VOID)
			return set_error(c, SPF_PERMERROR, "more than 2 void lookups (last: %s)", name);
	}
	return true;
}

static bool push(struct spf_check *c, const char *domain, bool in_include)
{
	if (c->depth == SPF_MAX_DEPTH)
		return set_error(c, SPF_PERMERROR, "nesting too deep%s", NULL);
	struct frame *f = &c->stack[c->depth++];
	memset(f, 0, sizeof(*f));
	f->domain = xstrdup(domain);
	f->in_include = in_include;
	return true;
}

static enum step_rc eval_term(struct spf_check *c, struct frame *f, const struct spf_term *t)
{
	struct buf target = BUF_INIT(SPF_MAX_DOMAIN);
	enum step_rc rc = T_ERROR;
	struct dns_result *r;

	/* the p macro needs validated names before anything can be expanded */
	if (f->step == 0 && spf_macro_uses_p(t->spec) && !ptr_ready(c))
		return c->q ? T_PENDING : T_ERROR;
	switch (t->mech) {
	case SPF_ALL:
		rc = T_MATCH;
		break;
	case SPF_IP4:
		rc = !c->ipv6 && match_v4(&c->ip4, &t->ip4, t->cidr4) ? T_MATCH : T_NOMATCH;
		break;
	case SPF_IP6:
		rc = c->ipv6 && match_v6(&c->ip6, &t->ip6, t->cidr6) ? T_MATCH : T_NOMATCH;
		break;
	case SPF_A:
	case SPF_EXISTS:
		if (f->step == 0) {
			if (!count_mech(c))
				break;
			if (!expand(c, t->spec, false, &target) || !domain_ok(buf_cstr(&target))) {
				/* an invalid target name is treated as no match (a void lookup would follow) */
				rc = T_NOMATCH;
				break;
			}
			f->step = 1;
			if (t->mech == SPF_EXISTS)
				ask(c, DNS_A, buf_cstr(&target));	/* always A, even for IPv6 clients */
			else
				ask_addr(c, buf_cstr(&target));
			rc = T_PENDING;
			break;
		}
		r = take_answer(c);
		if (check_dns(c, r, r->name))
			rc = t->mech == SPF_EXISTS ? (r->status == DNS_OK && r->n ? T_MATCH : T_NOMATCH)
			                           : (addr_matches(c, r, t->cidr4, t->cidr6) ? T_MATCH : T_NOMATCH);
		dns_result_free(&r);
		break;
	case SPF_MX:
		if (f->step == 0) {
			if (!count_mech(c))
				break;
			if (!expand(c, t->spec, false, &target) || !domain_ok(buf_cstr(&target))) {
				rc = T_NOMATCH;
				break;
			}
			f->step = 1;
			ask(c, DNS_MX, buf_cstr(&target));
			rc = T_PENDING;
			break;
		}
		if (f->step == 1) {
			f->mx = take_answer(c);
			if (!check_dns(c, f->mx, f->mx->name))
				break;
			if (f->mx->status == DNS_OK && f->mx->n > SPF_MAX_NAMES) {
				set_error(c, SPF_PERMERROR, "more than 10 MX names for %s", f->mx->name);
				break;
			}
			f->idx = 0;
			f->step = 2;
		} else {
			r = take_answer(c);
			bool tmp = dns_status_temporary(r->status), hit = addr_matches(c, r, t->cidr4, t->cidr6);
			dns_result_free(&r);
			if (tmp) {
				set_error(c, SPF_TEMPERROR, "DNS failure looking up an MX host of %s", f->mx->name);
				break;
			}
			if (hit) {
				rc = T_MATCH;
				break;
			}
		}
		while (f->mx->status == DNS_OK && f->idx < f->mx->n && !*f->mx->mx[f->idx].host)
			f->idx++;	/* null MX */
		if (f->mx->status != DNS_OK || f->idx >= f->mx->n) {
			rc = T_NOMATCH;
			break;
		}
		ask_addr(c, f->mx->mx[f->idx++].host);
		rc = T_PENDING;
		break;
	case SPF_PTR:
		if (f->step == 0) {
			if (!count_mech(c))
				break;
			f->step = 1;
		}
		if (!ptr_ready(c)) {
			rc = c->q ? T_PENDING : T_ERROR;
			break;
		}
		if (!expand(c, t->spec, false, &target)) {
			rc = T_NOMATCH;
			break;
		}
		rc = T_NOMATCH;
		for (size_t i = 0; i < c->nvalidated; i++) {
			const char *v = c->validated[i], *d = buf_cstr(&target);
			size_t vl = strlen(v), dl = strlen(d);
			if (str_eq_ci(v, d) || (vl > dl && v[vl - dl - 1] == '.' && str_eq_ci(v + vl - dl, d)))
				rc = T_MATCH;
		}
		break;
	case SPF_INCLUDE:
		if (f->step == 0) {
			if (!count_mech(c))
				break;
			if (!expand(c, t->spec, false, &target) || !domain_ok(buf_cstr(&target))) {
				set_error(c, SPF_PERMERROR, "include of an invalid domain %s", buf_cstr(&target));
				break;
			}
			f->step = 1;
			if (push(c, buf_cstr(&target), true))
				rc = T_PENDING;
			break;
		}
		switch (f->child) {
		case SPF_PASS:
			rc = T_MATCH;
			break;
		case SPF_FAIL:
		case SPF_SOFTFAIL:
		case SPF_NEUTRAL:
			rc = T_NOMATCH;
			break;
		case SPF_TEMPERROR:
			break;	/* c->result and the reason were set by the child */
		case SPF_PERMERROR:
		case SPF_NONE:
			if (f->child == SPF_NONE)
				set_error(c, SPF_PERMERROR, "included domain has no SPF record%s", NULL);
			c->result = SPF_PERMERROR;
			break;
		}
		break;
	}
	buf_free(&target);
	return rc;
}

static enum spf_result qual_result(char q)
{
	switch (q) {
	case '-': return SPF_FAIL;
	case '~': return SPF_SOFTFAIL;
	case '?': return SPF_NEUTRAL;
	}
	return SPF_PASS;
}

static void term_text(const struct spf_term *t, struct buf *out)
{
	static const char *const names[] = { "all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists" };
	char a[INET6_ADDRSTRLEN];
	buf_printf(out, "%s%s", t->qualifier == '+' ? "" : (char[]){ t->qualifier, 0 }, names[t->mech]);
	if (t->mech == SPF_IP4)
		buf_printf(out, ":%s/%u", inet_ntop(AF_INET, &t->ip4, a, sizeof(a)), t->cidr4);
	else if (t->mech == SPF_IP6)
		buf_printf(out, ":%s/%u", inet_ntop(AF_INET6, &t->ip6, a, sizeof(a)), t->cidr6);
	else if (t->spec)
		buf_printf(out, ":%s", log_safe(t->spec, strlen(t->spec), 100));
}

/* The current frame has a result: pop it and hand the result to its parent (or finish). */
static void frame_done(struct spf_check *c, enum spf_result res)
{
	struct frame *f = top(c);
	frame_clear(f);
	c->depth--;
	if (c->depth == 0) {
		c->result = res;
		return;
	}
	struct frame *p = top(c);
	p->child = res;
	if (p->redirecting) {
		/* section 6.1: the redirect target's result is the result; none becomes permerror */
		if (res == SPF_NONE) {
			set_error(c, SPF_PERMERROR, "redirect target has no SPF record%s", NULL);
			res = SPF_PERMERROR;
		}
		frame_done(c, res);
	}
}

static int choose_record(struct spf_check *c, struct frame *f, struct dns_result *r)
{
	if (dns_status_temporary(r->status)) {
		set_error(c, SPF_TEMPERROR, "DNS failure looking up the SPF record of %s", f->domain);
		return -1;
	}
	const struct dns_txt *found = NULL;
	size_t n = 0;
	for (size_t i = 0; r->status == DNS_OK && i < r->n; i++) {
		const struct dns_txt *t = &r->txt[i];
		if (t->len >= 6 && str_eqn_ci(t->text, "v=spf1", 6) && (t->len == 6 || t->text[6] == ' ')) {
			found = t;
			n++;
		}
	}
	if (n == 0)
		return 0;
	if (n > 1) {
		set_error(c, SPF_PERMERROR, "more than one SPF record at %s", f->domain);
		return -1;
	}
	struct buf err = BUF_INIT(200);
	if (memchr(found->text, '\0', found->len) || !spf_record_parse(found->text, found->len, &f->rec, &err)) {
		set_error(c, SPF_PERMERROR, "SPF record syntax error: %s", buf_cstr(&err));
		buf_free(&err);
		return -1;
	}
	buf_free(&err);
	f->have_record = true;
	return 1;
}

static void finish(struct spf_check *c);

static void run(struct spf_check *c)
{
	while (c->depth > 0) {
		struct frame *f = top(c);
		if (!f->have_record) {
			if (f->step == 0) {
				if (!domain_ok(f->domain)) {
					frame_done(c, c->depth == 1 ? SPF_NONE : SPF_PERMERROR);
					continue;
				}
				f->step = 1;
				ask(c, DNS_TXT, f->domain);
				return;
			}
			struct dns_result *r = take_answer(c);
			int rc = choose_record(c, f, r);
			dns_result_free(&r);
			f->step = 0;
			if (rc < 0)
				goto error;
			if (rc == 0) {
				buf_reset(&c->reason);
				buf_printf(&c->reason, "no SPF record at %s", f->domain);
				frame_done(c, SPF_NONE);
				continue;
			}
		}
		if (f->redirecting) {
			/* the child already finished through frame_done */
			continue;
		}
		while (f->pos < f->rec.n && f->rec.terms[f->pos].modifier)
			f->pos++;
		if (f->pos < f->rec.n) {
			const struct spf_term *t = &f->rec.terms[f->pos];
			enum step_rc rc = eval_term(c, f, t);
			if (rc == T_PENDING) {
				if (c->q)
					return;
				continue;	/* include pushed a frame: evaluate it */
			}
			if (rc == T_ERROR)
				goto error;
			f = top(c);	/* eval_term may have pushed: then rc is PENDING, so f is unchanged here */
			dns_result_free(&f->mx);
			f->step = 0;
			f->pos++;
			if (rc == T_MATCH) {
				enum spf_result res = qual_result(t->qualifier);
				buf_reset(&c->reason);
				buf_printf(&c->reason, "mechanism ");
				term_text(t, &c->reason);
				buf_printf(&c->reason, " matched at %s", f->domain);
				if (res == SPF_FAIL && !f->in_include && f->rec.exp) {
					free(c->exp_spec);
					free(c->exp_domain);
					c->exp_spec = xstrdup(f->rec.exp->value);
					c->exp_domain = xstrdup(f->domain);
				}
				frame_done(c, res);
			}
			continue;
		}
		/* no mechanism matched */
		if (f->rec.redirect && !f->rec.has_all) {
			if (spf_macro_uses_p(f->rec.redirect->value) && !ptr_ready(c))
				return;	/* the PTR lookups are under way */
			struct buf target = BUF_INIT(SPF_MAX_DOMAIN);
			if (!count_mech(c) || !expand(c, f->rec.redirect->value, false, &target) ||
			    !domain_ok(buf_cstr(&target))) {
				if (c->result != SPF_PERMERROR)
					set_error(c, SPF_PERMERROR, "redirect to an invalid domain %s", buf_cstr(&target));
				buf_free(&target);
				goto error;
			}
			f->redirecting = true;
			bool ok = push(c, buf_cstr(&target), f->in_include);
			buf_free(&target);
			if (!ok)
				goto error;
			continue;
		}
		buf_reset(&c->reason);
		buf_printf(&c->reason, "no mechanism matched at %s", f->domain);
		frame_done(c, SPF_NEUTRAL);
	}
	finish(c);
	return;
error:
	/* temperror and permerror end the whole evaluation (an include's error is the including record's) */
	while (c->depth > 0)
		frame_clear(&c->stack[--c->depth]);
	free(c->exp_spec);
	c->exp_spec = NULL;
	finish(c);
}

static void deliver(struct spf_check *c)
{
	c->answer.result = c->result;
	c->answer.reason = buf_steal(&c->reason, NULL);
	c->finished = true;
	c->cb(&c->answer, c->arg);
}

static void exp_answer(struct dns_result *res, void *arg)
{
	struct spf_check *c = arg;
	struct buf text = BUF_INIT(SPF_MAX_DOMAIN);
	c->q = NULL;
	/* section 6.2: exactly one TXT record; any problem means the default explanation */
	if (res->status == DNS_OK && res->n == 1 && !memchr(res->txt[0].text, '\0', res->txt[0].len)) {
		struct spf_macro_ctx m = { c->sender, c->exp_domain, c->ip, c->ipv6, c->helo,
			                   c->ptr_state == 3 ? pick_validated(c, c->exp_domain) : "unknown",
			                   c->receiver, c->now };
		if (spf_macro_expand(res->txt[0].text, &m, true, &text)) {
			free(c->answer.explanation);
			c->answer.explanation = xstrdup(log_safe(text.data ? text.data : "", text.len, 500));
		}
	}
	buf_free(&text);
	dns_result_free(&res);
	deliver(c);
}

static void finish(struct spf_check *c)
{
	if (c->result == SPF_FAIL) {
		struct buf d = BUF_INIT(200);
		buf_printf(&d, "%s is not allowed to send mail from %s", c->ip, c->answer.domain);
		c->answer.explanation = buf_steal(&d, NULL);
		if (c->exp_spec) {
			struct buf target = BUF_INIT(SPF_MAX_DOMAIN);
			struct spf_macro_ctx m = { c->sender, c->exp_domain, c->ip, c->ipv6, c->helo,
				                   c->ptr_state == 3 ? pick_validated(c, c->exp_domain) : "unknown",
				                   c->receiver, c->now };
			bool ok = spf_macro_expand(c->exp_spec, &m, false, &target);
			spf_domain_truncate(&target);
			if (ok && domain_ok(buf_cstr(&target))) {
				c->q = dns_query(c->dns, DNS_TXT, buf_cstr(&target), exp_answer, c);
				buf_free(&target);
				return;
			}
			buf_free(&target);
		}
	}
	deliver(c);
}

static void start_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run(arg);
}

struct spf_check *spf_check_start(struct dns *d, struct event_base *base, const struct spf_request *req,
                                  spf_callback *cb, void *arg)
{
	struct spf_check *c = xcalloc(1, sizeof(*c));
	const char *domain;
	struct buf s = BUF_INIT(SPF_MAX_DOMAIN);

	c->dns = d;
	c->base = base;
	c->cb = cb;
	c->arg = arg;
	c->helo = xstrdup(req->helo ? req->helo : "");
	c->receiver = xstrdup(req->receiver ? req->receiver : "unknown");
	c->now = req->now ? req->now : time(NULL);
	buf_init(&c->reason, 1024);
	/* section 4.3: the null sender and the HELO identity use postmaster@helo */
	if (req->helo_identity || !req->sender || !*req->sender || !strchr(req->sender, '@')) {
		if (!req->helo_identity && req->sender && *req->sender)
			buf_printf(&s, "postmaster@%s", req->sender);	/* a bare domain as sender */
		else
			buf_printf(&s, "postmaster@%s", c->helo);
	} else {
		buf_puts(&s, req->sender);
	}
	c->sender = buf_steal(&s, NULL);
	if (!c->sender)
		c->sender = xstrdup("postmaster@");
	domain = strrchr(c->sender, '@') + 1;
	c->answer.domain = xstrdup(domain);
	c->answer.sender = xstrdup(c->sender);

	/* an IPv4-mapped IPv6 address is checked as IPv4 (section 5) */
	struct in6_addr a6;
	char text[INET6_ADDRSTRLEN];
	if (inet_pton(AF_INET, req->ip, &c->ip4) == 1) {
		c->ip = xstrdup(req->ip);
	} else if (inet_pton(AF_INET6, req->ip, &a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			memcpy(&c->ip4, a6.s6_addr + 12, 4);
			c->ip = xstrdup(inet_ntop(AF_INET, &c->ip4, text, sizeof(text)));
		} else {
			c->ipv6 = true;
			c->ip6 = a6;
			c->ip = xstrdup(inet_ntop(AF_INET6, &a6, text, sizeof(text)));
		}
	} else {
		c->ip = xstrdup(req->ip);
		c->result = SPF_PERMERROR;
		buf_puts(&c->reason, "client address is not an IP address");
		c->depth = 0;
	}
	if (c->result == SPF_NONE) {
		push(c, domain, false);
		/* an empty or malformed domain gives "none" straight away (section 4.3) */
	}
	/* the first step runs from the event loop so the callback never comes before this returns */
	c->later = event_new(base, -1, 0, start_later, c);
	if (!c->later)
		fatalx("spf: cannot create an event");
	event_active(c->later, 0, 0);
	return c;
}

void spf_answer_clear(struct spf_answer *a)
{
	xfree(&a->domain);
	xfree(&a->explanation);
	xfree(&a->reason);
	xfree(&a->sender);
}

void spf_answer_copy(struct spf_answer *dst, const struct spf_answer *src)
{
	dst->result = src->result;
	dst->domain = src->domain ? xstrdup(src->domain) : NULL;
	dst->explanation = src->explanation ? xstrdup(src->explanation) : NULL;
	dst->reason = src->reason ? xstrdup(src->reason) : NULL;
	dst->sender = src->sender ? xstrdup(src->sender) : NULL;
}

void spf_check_cancel(struct spf_check **cp)
{
	struct spf_check *c = *cp;
	if (!c)
		return;
	if (c->q)
		dns_cancel(&c->q);
	if (c->later)
		event_free(c->later);
	while (c->depth > 0)
		frame_clear(&c->stack[--c->depth]);
	dns_result_free(&c->ans);
	dns_result_free(&c->ptr);
	for (size_t i = 0; i < c->nvalidated; i++)
		free(c->validated[i]);
	free(c->ip);
	free(c->sender);
	free(c->helo);
	free(c->receiver);
	free(c->exp_spec);
	free(c->exp_domain);
	buf_free(&c->reason);
	spf_answer_clear(&c->answer);
	xfree(cp);
}

struct blocking {
	struct spf_answer *ans;
	struct event_base *base;
	bool done;
};

static void blocking_cb(const struct spf_answer *a, void *arg)
{
	struct blocking *b = arg;
	spf_answer_copy(b->ans, a);
	b->done = true;
	event_base_loopbreak(b->base);
}

void spf_check_blocking(const struct dns_options *opt, const struct spf_request *req, struct spf_answer *ans)
{
	struct event_base *base = event_base_new();
	struct buf err = BUF_INIT(256);
	memset(ans, 0, sizeof(*ans));
	if (!base)
		fatalx("spf: cannot create an event base");
	struct dns *d = dns_new(base, opt, &err);
	if (!d) {
		ans->result = SPF_TEMPERROR;
		ans->reason = xstrdup(buf_cstr(&err));
		buf_free(&err);
		event_base_free(base);
		return;
	}
	struct blocking b = { ans, base, false };
	struct spf_check *c = spf_check_start(d, base, req, blocking_cb, &b);
	while (!b.done && event_base_dispatch(base) == 0)
		;
	if (!b.done) {
		ans->result = SPF_TEMPERROR;
		ans->reason = xstrdup("event loop ended early");
	}
	spf_check_cancel(&c);
	dns_free(&d);
	event_base_free(base);
	buf_free(&err);
}

const char *spf_result_str(enum spf_result r)
{
	switch (r) {
	case SPF_NEUTRAL: return "neutral";
	case SPF_PASS: return "pass";
	case SPF_FAIL: return "fail";
	case SPF_SOFTFAIL: return "softfail";
	case SPF_TEMPERROR: return "temperror";
	case SPF_PERMERROR: return "permerror";
	case SPF_NONE: break;
	}
	return "none";
}

static bool put_kv(struct buf *out, const char *key, const char *v)
{
	bool plain = *v != '\0';
	for (const char *p = v; *p && plain; p++)
		plain = (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f && !strchr("\"\\;()", *p);
	if (plain)
		return buf_printf(out, " %s=%s;", key, v);
	bool ok = buf_printf(out, " %s=\"", key);
	for (const char *p = v; *p && ok; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '"' || ch == '\\')
			ok = buf_putc(out, '\\');
		if (ok)
			ok = buf_putc(out, ch < 0x20 || ch >= 0x7f ? '?' : ch);
	}
	return ok && buf_puts(out, "\";");
}

bool spf_received_header(const struct spf_answer *ans, const struct spf_request *req, struct buf *out)
{
	bool ok = buf_printf(out, "Received-SPF: %s (", spf_result_str(ans->result));
	const char *why = ans->reason ? ans->reason : "";
	/* the comment: our name and the reason, with parentheses and controls kept out */
	ok = ok && buf_printf(out, "%s: ", req->receiver ? req->receiver : "unknown");
	for (const char *p = why; *p && ok; p++) {
		unsigned char ch = (unsigned char)*p;
		ok = buf_putc(out, ch == '(' || ch == ')' || ch == '\\' || ch < 0x20 || ch >= 0x7f ? ' ' : ch);
	}
	ok = ok && buf_puts(out, ")\r\n\t") && put_kv(out, "client-ip", req->ip) &&
	     put_kv(out, "envelope-from", req->sender ? req->sender : "") &&
	     put_kv(out, "helo", req->helo ? req->helo : "") &&
	     put_kv(out, "receiver", req->receiver ? req->receiver : "unknown") &&
	     put_kv(out, "identity", req->helo_identity ? "helo" : "mailfrom");
	return ok && buf_puts(out, "\r\n");
}
