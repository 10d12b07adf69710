/* DNS through c-ares on libevent; see dns.h.
 * c-ares tells us which sockets it wants watched (sock_state_cb) and when its next timeout is (ares_timeout);
 * we mirror that into libevent events and feed readiness back with ares_process_fd(). On top of c-ares's
 * per-try timeouts every query has its own deadline, so a lookup never takes longer than timeout_ms. */
#include "dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <idn2.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "log.h"

#define DNS_NAME_MAX 253
#define DNS_MIN_TRY_MS 50

struct dns_sock {
	struct dns_sock *next;
	struct dns *dns;
	ares_socket_t fd;
	struct event *ev;
};

struct dns {
	struct event_base *base;
	ares_channel channel;
	struct event *timer;		/* c-ares's own retransmission timeouts */
	struct dns_sock *socks;
	struct dns_query *queries;	/* every live query, so dns_free() can drop them */
	unsigned timeout_ms;
	bool destroying;
};

struct dns_query {
	struct dns_query *prev, *next;
	struct dns *dns;
	enum dns_type type;
	char *name;
	dns_callback *cb;
	void *arg;
	struct event *timer;		/* the deadline; also used to deliver a result from the event loop */
	struct dns_result *pending;	/* result waiting for that delivery */
	bool ares_done;			/* c-ares holds no pointer to us any more */
	bool delivered;			/* the callback was called, or the query cancelled */
	int family;			/* PTR: the address asked about */
	unsigned char addr[16];
};

static void ares_timer_schedule(struct dns *d);

/* ================================================================ results */

const char *dns_status_str(enum dns_status st)
{
	switch (st) {
	case DNS_OK: return "ok";
	case DNS_NXDOMAIN: return "nxdomain";
	case DNS_NODATA: return "nodata";
	case DNS_TEMPFAIL: return "tempfail";
	case DNS_TIMEOUT: return "timeout";
	case DNS_BADNAME: return "badname";
	}
	return "unknown";
}

const char *dns_type_str(enum dns_type t)
{
	switch (t) {
	case DNS_A: return "A";
	case DNS_AAAA: return "AAAA";
	case DNS_MX: return "MX";
	case DNS_TXT: return "TXT";
	case DNS_PTR: return "PTR";
	}
	return "?";
}

bool dns_status_temporary(enum dns_status st)
{
	return st == DNS_TEMPFAIL || st == DNS_TIMEOUT;
}

void dns_result_free(struct dns_result **resp)
{
	struct dns_result *r = *resp;
	if (!r)
		return;
	for (size_t i = 0; r->mx && i < r->n; i++)
		free(r->mx[i].host);
	for (size_t i = 0; r->txt && i < r->n; i++) {
		for (size_t j = 0; j < r->txt[i].nstrings; j++)
			free(r->txt[i].strings[j]);
		free(r->txt[i].strings);
		free(r->txt[i].lens);
		free(r->txt[i].text);
	}
	for (size_t i = 0; r->ptr && i < r->n; i++)
		free(r->ptr[i]);
	free(r->mx);
	free(r->addr);
	free(r->txt);
	free(r->ptr);
	free(r->name);
	free(r->error);
	free(r);
	*resp = NULL;
}

static struct dns_result *result_new(enum dns_type type, const char *name)
{
	struct dns_result *r = xcalloc(1, sizeof(*r));
	r->type = type;
	r->name = xstrdup(name);
	return r;
}

static void result_fail(struct dns_result *r, enum dns_status st, const char *what)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	r->status = st;
	buf_printf(&b, "%s %s: %s", dns_type_str(r->type), log_safe(r->name, strlen(r->name), 255), what);
	free(r->error);
	r->error = buf_steal(&b, NULL);
}

static enum dns_status status_of(int ares_status)
{
	switch (ares_status) {
	case ARES_SUCCESS: return DNS_OK;
	case ARES_ENODATA: return DNS_NODATA;
	case ARES_ENOTFOUND: return DNS_NXDOMAIN;
	case ARES_ETIMEOUT: return DNS_TIMEOUT;
	case ARES_EBADNAME: return DNS_BADNAME;
	default: return DNS_TEMPFAIL;
	}
}

struct mx_sort {
	struct dns_mx mx;
	uint32_t rnd;
};

static int mx_cmp(const void *a, const void *b)
{
	const struct mx_sort *x = a, *y = b;
	if (x->mx.pref != y->mx.pref)
		return x->mx.pref < y->mx.pref ? -1 : 1;
	return x->rnd < y->rnd ? -1 : x->rnd > y->rnd;
}

/* RFC 5321 section 5.1: equal preferences are tried in random order, spreading load over the hosts. */
static int parse_mx(struct dns_result *r, const unsigned char *abuf, int alen)
{
	struct ares_mx_reply *mx = NULL;
	struct mx_sort *v;
	size_t n = 0, i = 0;
	int rc = ares_parse_mx_reply(abuf, alen, &mx);

	if (rc != ARES_SUCCESS)
		return rc;
	for (struct ares_mx_reply *p = mx; p; p = p->next)
		n++;
	if (n == 0) {
		ares_free_data(mx);
		return ARES_ENODATA;
	}
	v = xcalloc(n, sizeof(*v));
	for (struct ares_mx_reply *p = mx; p; p = p->next, i++) {
		v[i].mx.host = xstrdup(p->host ? p->host : "");
		v[i].mx.pref = p->priority;
		if (getrandom(&v[i].rnd, sizeof(v[i].rnd), GRND_NONBLOCK) != sizeof(v[i].rnd))
			v[i].rnd = (uint32_t)random();
	}
	ares_free_data(mx);
	qsort(v, n, sizeof(*v), mx_cmp);
	r->mx = xcalloc(n, sizeof(*r->mx));
	for (i = 0; i < n; i++)
		r->mx[i] = v[i].mx;
	free(v);
	r->n = n;
	return ARES_SUCCESS;
}

static int parse_addr(struct dns_result *r, const unsigned char *abuf, int alen)
{
	struct hostent *h = NULL;
	size_t n = 0;
	int family = r->type == DNS_A ? AF_INET : AF_INET6;
	int rc = family == AF_INET ? ares_parse_a_reply(abuf, alen, &h, NULL, NULL)
	                           : ares_parse_aaaa_reply(abuf, alen, &h, NULL, NULL);

	if (rc != ARES_SUCCESS)
		return rc;
	for (char **a = h->h_addr_list; a && *a; a++)
		n++;
	if (n == 0 || h->h_addrtype != family) {
		ares_free_hostent(h);
		return ARES_ENODATA;
	}
	r->addr = xcalloc(n, sizeof(*r->addr));
	for (size_t i = 0; i < n; i++) {
		r->addr[i].family = family;
		if (family == AF_INET)
			memcpy(&r->addr[i].u.v4, h->h_addr_list[i], sizeof(r->addr[i].u.v4));
		else
			memcpy(&r->addr[i].u.v6, h->h_addr_list[i], sizeof(r->addr[i].u.v6));
	}
	r->n = n;
	ares_free_hostent(h);
	return ARES_SUCCESS;
}

static void txt_add_string(struct dns_txt *t, const unsigned char *s, size_t len)
{
	size_t total;
	t->strings = xreallocarray(t->strings, t->nstrings + 1, sizeof(*t->strings));
	t->lens = xreallocarray(t->lens, t->nstrings + 1, sizeof(*t->lens));
	t->strings[t->nstrings] = xmalloc(len + 1);
	memcpy(t->strings[t->nstrings], s, len);
	t->strings[t->nstrings][len] = '\0';
	t->lens[t->nstrings++] = len;
	if (!size_add(t->len, len, &total) || !size_add(total, 1, &total))
		panic("dns: TXT record size overflow");
	t->text = xrealloc(t->text, total);
	memcpy(t->text + t->len, s, len);
	t->len += len;
	t->text[t->len] = '\0';
}

static int parse_txt(struct dns_result *r, const unsigned char *abuf, int alen)
{
	struct ares_txt_ext *txt = NULL;
	size_t n = 0, i = 0;
	int rc = ares_parse_txt_reply_ext(abuf, alen, &txt);

	if (rc != ARES_SUCCESS)
		return rc;
	for (struct ares_txt_ext *p = txt; p; p = p->next)
		if (p->record_start || n == 0)
			n++;
	if (n == 0) {
		ares_free_data(txt);
		return ARES_ENODATA;
	}
	r->txt = xcalloc(n, sizeof(*r->txt));
	for (struct ares_txt_ext *p = txt; p; p = p->next) {
		if (p->record_start && p != txt)
			i++;
		txt_add_string(&r->txt[i], p->txt, p->length);
	}
	for (i = 0; i < n; i++)	/* a record of one empty string still has a text */
		if (!r->txt[i].text)
			r->txt[i].text = xcalloc(1, 1);
	r->n = n;
	ares_free_data(txt);
	return ARES_SUCCESS;
}

static int parse_ptr(struct dns_result *r, const struct dns_query *q, const unsigned char *abuf, int alen)
{
	struct hostent *h = NULL;
	size_t n = 0;
	int rc = ares_parse_ptr_reply(abuf, alen, q->addr, q->family == AF_INET ? 4 : 16, q->family, &h);

	if (rc != ARES_SUCCESS)
		return rc;
	/* c-ares lists every PTR name in h_aliases (h_name is one of them) */
	for (char **a = h->h_aliases; a && *a; a++)
		n++;
	if (n > 0) {
		r->ptr = xcalloc(n, sizeof(*r->ptr));
		for (size_t i = 0; i < n; i++)
			r->ptr[i] = xstrdup(h->h_aliases[i]);
	} else if (h->h_name && *h->h_name) {
		r->ptr = xcalloc(1, sizeof(*r->ptr));
		r->ptr[0] = xstrdup(h->h_name);
		n = 1;
	}
	ares_free_hostent(h);
	if (n == 0)
		return ARES_ENODATA;
	r->n = n;
	return ARES_SUCCESS;
}

static struct dns_result *build_result(const struct dns_query *q, int status, const unsigned char *abuf, int alen)
{
	struct dns_result *r = result_new(q->type, q->name);

	if (status == ARES_SUCCESS && (abuf == NULL || alen <= 0))
		status = ARES_EBADRESP;
	if (status == ARES_SUCCESS) {
		switch (q->type) {
		case DNS_MX: status = parse_mx(r, abuf, alen); break;
		case DNS_A:
		case DNS_AAAA: status = parse_addr(r, abuf, alen); break;
		case DNS_TXT: status = parse_txt(r, abuf, alen); break;
		case DNS_PTR: status = parse_ptr(r, q, abuf, alen); break;
		}
		/* A reply we cannot parse is the server's problem, possibly passing: not a reason to bounce. */
		if (status == ARES_EBADNAME)
			status = ARES_EBADRESP;
	}
	if (status == ARES_SUCCESS)
		r->status = DNS_OK;
	else
		result_fail(r, status_of(status), ares_strerror(status));
	return r;
}

struct dns_result *dns_result_from_reply(enum dns_type type, const char *name, const unsigned char *reply,
                                         size_t len)
{
	struct dns_query q = { .type = type, .name = (char *)name };
	int rcode;

	if (type == DNS_PTR) {
		if (inet_pton(AF_INET, name, q.addr) == 1)
			q.family = AF_INET;
		else if (inet_pton(AF_INET6, name, q.addr) == 1)
			q.family = AF_INET6;
		else
			q.family = AF_INET;	/* parse anyway; the address only fills a hostent field */
	}
	if (len < 12 || len > 65535)
		return build_result(&q, ARES_EBADRESP, NULL, 0);
	/* what c-ares does with the header before handing a reply to ares_query's callback */
	rcode = reply[3] & 0x0f;
	switch (rcode) {
	case 0: return build_result(&q, ((reply[6] << 8) | reply[7]) ? ARES_SUCCESS : ARES_ENODATA, reply, (int)len);
	case 2: return build_result(&q, ARES_ESERVFAIL, NULL, 0);
	case 3: return build_result(&q, ARES_ENOTFOUND, NULL, 0);
	case 4: return build_result(&q, ARES_ENOTIMP, NULL, 0);
	case 5: return build_result(&q, ARES_EREFUSED, NULL, 0);
	default: return build_result(&q, ARES_EFORMERR, NULL, 0);
	}
}

/* ================================================================ query life cycle */

static void query_free(struct dns_query *q)
{
	struct dns *d = q->dns;
	if (q->prev)
		q->prev->next = q->next;
	else
		d->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	if (q->timer)
		event_free(q->timer);
	dns_result_free(&q->pending);
	free(q->name);
	free(q);
}

static void deliver(struct dns_query *q, struct dns_result *r)
{
	dns_callback *cb = q->cb;
	q->delivered = true;
	q->cb = NULL;
	event_del(q->timer);
	if (cb)
		cb(r, q->arg);
	else
		dns_result_free(&r);
}

/* The deadline passed, or a result is waiting to be delivered from the event loop. */
static void query_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	struct dns_result *r;
	(void)fd;
	(void)what;

	if (q->pending) {
		r = q->pending;
		q->pending = NULL;
	} else {
		char msg[64];
		snprintf(msg, sizeof(msg), "no answer within %u ms", q->dns->timeout_ms);
		r = result_new(q->type, q->name);
		result_fail(r, DNS_TIMEOUT, msg);
	}
	if (!q->delivered)
		deliver(q, r);
	else
		dns_result_free(&r);
	if (q->ares_done)
		query_free(q);
}

/* Run q's callback from the event loop rather than from the caller's stack. */
static void defer(struct dns_query *q, struct dns_result *r)
{
	q->pending = r;
	event_del(q->timer);
	event_active(q->timer, EV_TIMEOUT, 0);
}

static void ares_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	(void)timeouts;

	q->ares_done = true;
	if (q->delivered || status == ARES_EDESTRUCTION || q->dns->destroying) {
		query_free(q);
		return;
	}
	defer(q, build_result(q, status, abuf, alen));
}

void dns_cancel(struct dns_query **qp)
{
	struct dns_query *q = *qp;
	if (!q)
		return;
	*qp = NULL;
	q->cb = NULL;
	q->delivered = true;
	event_del(q->timer);
	if (q->ares_done)
		query_free(q);	/* only a pending delivery was left */
}

/* ================================================================ names */

bool dns_ptr_name(const char *addr, struct buf *out)
{
	unsigned char a[16];
	buf_reset(out);
	if (inet_pton(AF_INET, addr, a) == 1)
		return buf_printf(out, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
	if (inet_pton(AF_INET6, addr, a) == 1) {
		static const char hex[] = "0123456789abcdef";
		for (int i = 15; i >= 0; i--) {
			buf_putc(out, hex[a[i] & 0xf]);
			buf_putc(out, '.');
			buf_putc(out, hex[a[i] >> 4]);
			buf_putc(out, '.');
		}
		return buf_puts(out, "ip6.arpa");
	}
	return false;
}

/* Host names as they may be asked for: letters, digits, '-', '_' (SRV, DKIM), and others short of white space
 * and controls, labels of 1-63 bytes, at most 253 bytes without the optional final dot. */
static bool name_ok(const char *name)
{
	size_t n = strlen(name), label = 0;
	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n == 0 || n > DNS_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= ' ' || c >= 0x7f || c == '\\')
			return false;
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (++label > 63) {
			return false;
		}
	}
	return label > 0;
}

bool dns_name_ascii(const char *name, struct buf *out, struct buf *err)
{
	bool ascii = true;
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p >= 0x80)
			ascii = false;
	if (ascii)
		return buf_puts(out, name);
	/* IDNA2008 with the UTS #46 mapping browsers use (case folding, NFC): a domain typed with capitals or in
	 * decomposed form reaches the same zone as its canonical spelling */
	char *alabel = NULL;
	int rc = idn2_lookup_u8((const uint8_t *)name, (uint8_t **)&alabel, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK) {
		if (err)
			buf_printf(err, "not a valid internationalized domain name: %s", idn2_strerror(rc));
		return false;
	}
	bool ok = buf_puts(out, alabel);
	idn2_free(alabel);
	return ok;
}

struct dns_query *dns_query(struct dns *d, enum dns_type type, const char *name, dns_callback *cb, void *arg)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));
	struct buf qname = BUF_INIT(BUF_NOLIMIT);
	struct timeval tv = { d->timeout_ms / 1000, (d->timeout_ms % 1000) * 1000 };
	int qtype = 0;

	q->dns = d;
	q->type = type;
	q->name = xstrdup(name);
	q->cb = cb;
	q->arg = arg;
	if ((q->timer = evtimer_new(d->base, query_timer_cb, q)) == NULL)
		fatalx("dns: cannot create a timer event");
	q->next = d->queries;
	if (d->queries)
		d->queries->prev = q;
	d->queries = q;

	switch (type) {
	case DNS_A: qtype = ns_t_a; break;
	case DNS_AAAA: qtype = ns_t_aaaa; break;
	case DNS_MX: qtype = ns_t_mx; break;
	case DNS_TXT: qtype = ns_t_txt; break;
	case DNS_PTR: qtype = ns_t_ptr; break;
	}
	if (type == DNS_PTR) {
		if (inet_pton(AF_INET, name, q->addr) == 1)
			q->family = AF_INET;
		else if (inet_pton(AF_INET6, name, q->addr) == 1)
			q->family = AF_INET6;
		if (q->family == 0 || !dns_ptr_name(name, &qname)) {
			struct dns_result *r = result_new(type, name);
			result_fail(r, DNS_BADNAME, "not an IPv4 or IPv6 address");
			q->ares_done = true;
			defer(q, r);
			buf_free(&qname);
			return q;
		}
	} else {
		struct buf why = BUF_INIT(256);
		if (!dns_name_ascii(name, &qname, &why) || !name_ok(buf_cstr(&qname))) {
			struct dns_result *r = result_new(type, name);
			result_fail(r, DNS_BADNAME, why.len ? buf_cstr(&why) : "not a valid domain name");
			q->ares_done = true;
			defer(q, r);
			buf_free(&why);
			buf_free(&qname);
			return q;
		}
		buf_free(&why);
	}
	evtimer_add(q->timer, &tv);
	/* c-ares may call ares_cb before returning (e.g. no usable server); ares_cb defers delivery in all cases,
	 * so our caller never sees its callback run inside this call. */
	ares_query(d->channel, buf_cstr(&qname), ns_c_in, qtype, ares_cb, q);
	buf_free(&qname);
	ares_timer_schedule(d);
	return q;
}

/* ================================================================ c-ares <-> libevent */

static void ares_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;
	(void)fd;
	(void)what;
	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	ares_timer_schedule(d);
}

static void ares_timer_schedule(struct dns *d)
{
	struct timeval tv, *tvp;
	if (d->destroying)
		return;
	tvp = ares_timeout(d->channel, NULL, &tv);
	if (tvp)
		evtimer_add(d->timer, tvp);
	else
		evtimer_del(d->timer);
}

static void sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;
	/* The socket entry may be freed inside ares_process_fd (c-ares closes sockets it is done with). */
	ares_process_fd(d->channel, (what & EV_READ) ? (ares_socket_t)fd : ARES_SOCKET_BAD,
	                (what & EV_WRITE) ? (ares_socket_t)fd : ARES_SOCKET_BAD);
	ares_timer_schedule(d);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct dns_sock **pp, *s;

	for (pp = &d->socks; *pp && (*pp)->fd != fd; pp = &(*pp)->next)
		;
	s = *pp;
	if (s) {
		event_free(s->ev);
		s->ev = NULL;
	}
	if (!readable && !writable) {
		if (s) {
			*pp = s->next;
			free(s);
		}
		return;
	}
	if (!s) {
		s = xcalloc(1, sizeof(*s));
		s->dns = d;
		s->fd = fd;
		s->next = d->socks;
		d->socks = s;
	}
	s->ev = event_new(d->base, fd, (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0) | EV_PERSIST),
	                  sock_cb, d);
	if (!s->ev || event_add(s->ev, NULL) != 0)
		fatalx("dns: cannot watch a resolver socket");
}

/* Resolver sockets must not leak into children (local runs commands). */
static int sock_config_cb(ares_socket_t fd, int type, void *data)
{
	(void)type;
	(void)data;
	int fl = fcntl(fd, F_GETFD);
	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return -1;
	return 0;
}

/* "a, b c" -> "a,b,c": our lists allow commas and white space, c-ares wants commas only. */
static char *servers_csv(const char *list, size_t *count)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	const char *p = list;
	*count = 0;
	while (*p) {
		size_t n;
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, ", \t");
		if (n == 0)
			break;
		if (b.len)
			buf_putc(&b, ',');
		buf_append(&b, p, n);
		(*count)++;
		p += n;
	}
	return buf_steal(&b, NULL);
}

struct dns *dns_new(struct event_base *base, const struct dns_options *opt, struct buf *err)
{
	static const struct dns_options defaults = DNS_OPTIONS_DEFAULT;
	struct dns *d;
	struct ares_options ao;
	size_t nservers = 1;
	unsigned tries, try_ms, rounds;
	int rc;

	if (!opt)
		opt = &defaults;
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		buf_printf(err, "c-ares: %s", ares_strerror(rc));
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
	d->base = base;
	d->timeout_ms = opt->timeout_ms ? opt->timeout_ms : 5000;
	tries = opt->retries > 15 ? 16 : opt->retries + 1;

	char *csv = NULL;
	if (opt->nameservers && *opt->nameservers) {
		csv = servers_csv(opt->nameservers, &nservers);
		if (nservers == 0)
			nservers = 1;
	}
	/* c-ares doubles the per-try timeout after each round over all servers: pick the first try's timeout so
	 * every try fits into the deadline (t * nservers * (2^tries - 1) <= timeout). */
	rounds = (1u << tries) - 1;
	try_ms = (unsigned)(d->timeout_ms / (rounds * nservers));
	if (try_ms < DNS_MIN_TRY_MS)
		try_ms = DNS_MIN_TRY_MS;

	memset(&ao, 0, sizeof(ao));
	ao.flags = ARES_FLAG_EDNS | ARES_FLAG_NOSEARCH;
	ao.ednspsz = 1232;	/* the DNS flag day 2020 size: avoids fragmented UDP, larger answers go to TCP */
	ao.tries = (int)tries;
	ao.timeout = (int)try_ms;
	ao.sock_state_cb = sock_state_cb;
	ao.sock_state_cb_data = d;
	rc = ares_init_options(&d->channel, &ao,
	                       ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ | ARES_OPT_TRIES | ARES_OPT_TIMEOUTMS |
	                       ARES_OPT_SOCK_STATE_CB);
	if (rc != ARES_SUCCESS) {
		buf_printf(err, "c-ares: %s", ares_strerror(rc));
		free(csv);
		free(d);
		ares_library_cleanup();
		return NULL;
	}
	if (csv && (rc = ares_set_servers_ports_csv(d->channel, csv)) != ARES_SUCCESS) {
		buf_printf(err, "dns_nameservers: \"%s\": %s (expected IP addresses, with :port or [IPv6]:port)",
		           log_safe(opt->nameservers, strlen(opt->nameservers), 200), ares_strerror(rc));
		free(csv);
		ares_destroy(d->channel);
		free(d);
		ares_library_cleanup();
		return NULL;
	}
	free(csv);
	ares_set_socket_configure_callback(d->channel, sock_config_cb, NULL);
	if ((d->timer = evtimer_new(base, ares_timer_cb, d)) == NULL)
		fatalx("dns: cannot create a timer event");
	return d;
}

void dns_free(struct dns **dp)
{
	struct dns *d = *dp;
	if (!d)
		return;
	d->destroying = true;
	ares_destroy(d->channel);	/* calls ares_cb with ARES_EDESTRUCTION for every outstanding query */
	while (d->queries)
		query_free(d->queries);
	while (d->socks) {
		struct dns_sock *s = d->socks;
		d->socks = s->next;
		if (s->ev)
			event_free(s->ev);
		free(s);
	}
	event_free(d->timer);
	free(d);
	ares_library_cleanup();
	*dp = NULL;
}

/* ================================================================ blocking wrapper */

struct lookup_state {
	struct dns_result *res;
	struct event_base *base;
};

static void lookup_done(struct dns_result *res, void *arg)
{
	struct lookup_state *st = arg;
	st->res = res;
	event_base_loopbreak(st->base);
}

struct dns_result *dns_lookup(const struct dns_options *opt, enum dns_type type, const char *name)
{
	struct lookup_state st = { NULL, event_base_new() };
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	struct dns *d;

	if (!st.base)
		fatalx("dns: cannot create an event base");
	if ((d = dns_new(st.base, opt, &err)) == NULL) {
		st.res = result_new(type, name);
		result_fail(st.res, DNS_TEMPFAIL, buf_cstr(&err));	/* a configuration error: do not bounce */
	} else {
		dns_query(d, type, name, lookup_done, &st);
		while (!st.res)
			if (event_base_loop(st.base, EVLOOP_ONCE) < 0)
				fatalx("dns: event loop failed");
		dns_free(&d);
	}
	event_base_free(st.base);
	buf_free(&err);
	return st.res;
}
