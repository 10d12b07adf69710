/* Next-hop parsing and MX/address resolution (see nexthop.h). */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "alloc.h"
#include "nexthop.h"
#include "str.h"

static bool host_ok(const char *h, size_t n)
{
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)h[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '.' || c == '_' || c == ':'))
			return false;
	}
	return true;
}

bool smtp_nexthop_parse(const char *spec, struct smtp_nexthop *nh, struct buf *err)
{
	memset(nh, 0, sizeof(*nh));
	const char *s = spec;
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	/* "transport:nexthop"; a colon inside brackets or after the host is a port, so look at the prefix only */
	const char *colon = memchr(s, ':', n);
	if (colon && s[0] != '[' && str_has_prefix_ci(s, "smtp:")) {
		s += 5;
		n -= 5;
	} else if (colon && s[0] != '[') {
		size_t pre = (size_t)(colon - s);
		bool alpha = pre > 0;
		for (size_t i = 0; i < pre; i++)
			if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
				alpha = false;
		/* "host:25" has a numeric part after the colon; "local:" or "relay:x" is a transport */
		const char *after = colon + 1;
		bool numeric = (size_t)(after - s) < n;
		for (const char *p = after; p < s + n; p++)
			if (*p < '0' || *p > '9')
				numeric = false;
		if (alpha && !numeric) {
			buf_puts(err, "transport is not smtp: ");
			buf_append_printable(err, s, pre, 64);
			return false;
		}
	}
	if (n == 0)
		return true;	/* the recipient's domain */
	const char *hs = s, *he, *rest;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close) {
			buf_puts(err, "missing ] in next hop");
			return false;
		}
		hs = s + 1;
		he = close;
		rest = close + 1;
		nh->no_mx = true;
		if ((size_t)(he - hs) > 5 && str_eqn_ci(hs, "ipv6:", 5))
			hs += 5;
	} else {
		const char *c = memchr(s, ':', n);
		he = c ? c : s + n;
		rest = he;
	}
	if (!host_ok(hs, (size_t)(he - hs)) || (!nh->no_mx && memchr(hs, ':', (size_t)(he - hs)))) {
		buf_puts(err, "bad host in next hop: ");
		buf_append_printable(err, s, n, 128);
		return false;
	}
	if (rest < s + n) {
		uint64_t port;
		if (*rest != ':' || !str_to_u64n(rest + 1, (size_t)(s + n - rest - 1), 65535, &port) || port == 0) {
			buf_puts(err, "bad port in next hop: ");
			buf_append_printable(err, s, n, 128);
			return false;
		}
		nh->port = (unsigned)port;
	}
	nh->host = xmalloc((size_t)(he - hs) + 1);
	memcpy(nh->host, hs, (size_t)(he - hs));
	nh->host[he - hs] = '\0';
	return true;
}

void smtp_nexthop_free(struct smtp_nexthop *nh)
{
	free(nh->host);
	nh->host = NULL;
}

void smtp_targets_free(struct smtp_targets *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].host);
	free(t->v);
	t->v = NULL;
	t->n = 0;
	buf_free(&t->why);
}

static void fail(struct smtp_targets *t, int code, const char *dsn, const char *fmt, const char *name,
                 const char *detail)
{
	if (t->n)
		return;
	t->code = code;
	str_copy(t->dsn, sizeof(t->dsn), dsn);
	buf_reset(&t->why);
	buf_printf(&t->why, fmt, name, detail ? detail : "");
}

/* Addresses gathered before ordering and the address limit: enough for every MX of a large provider, bounded so a
 * hostile zone cannot make us collect without end. */
#define SMTP_ADDR_COLLECT_MAX 2000

static void add(struct smtp_targets *t, const char *host, const struct dns_addr *a, unsigned port, unsigned pref)
{
	if (t->n >= SMTP_ADDR_COLLECT_MAX)
		return;
	for (size_t i = 0; i < t->n; i++)	/* two MX names for one address: try it once, at its best preference */
		if (t->v[i].addr.family == a->family && t->v[i].port == port &&
		    memcmp(&t->v[i].addr.u, &a->u, a->family == AF_INET ? 4 : 16) == 0)
			return;
	t->v = xreallocarray(t->v, t->n + 1, sizeof(*t->v));
	t->v[t->n].host = xstrdup(host);
	t->v[t->n].addr = *a;
	t->v[t->n].port = port;
	t->v[t->n].pref = pref;
	t->n++;
}

/* Addresses of one host: numeric, or A and AAAA. Returns the DNS status that counts (OK when any). */
static enum dns_status host_addrs(const struct smtp_resolve_opts *o, const char *host, unsigned port,
                                  unsigned pref, struct smtp_targets *t, struct buf *why)
{
	struct dns_addr a;
	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, host, &a.u.v4) == 1) {
		a.family = AF_INET;
		add(t, host, &a, port, pref);
		return DNS_OK;
	}
	if (inet_pton(AF_INET6, host, &a.u.v6) == 1) {
		a.family = AF_INET6;
		add(t, host, &a, port, pref);
		return DNS_OK;
	}
	enum dns_status st[2];
	static const enum dns_type types[2] = { DNS_A, DNS_AAAA };
	bool any = false;
	for (int i = 0; i < 2; i++) {
		struct dns_result *r = o->dns(types[i], host, o->dns_arg);
		st[i] = r->status;
		if (r->status == DNS_OK) {
			for (size_t j = 0; j < r->n; j++)
				add(t, host, &r->addr[j], port, pref);
			any = any || r->n > 0;
		} else if (dns_status_temporary(r->status) || !why->len) {
			buf_reset(why);
			buf_puts(why, r->error ? r->error : dns_status_str(r->status));
		}
		dns_result_free(&r);
	}
	if (any)
		return DNS_OK;
	if (dns_status_temporary(st[0]) || dns_status_temporary(st[1]))
		return DNS_TEMPFAIL;
	return st[0] == DNS_NXDOMAIN || st[1] == DNS_NXDOMAIN ? DNS_NXDOMAIN : DNS_NODATA;
}

bool smtp_addr_pref_parse(const char *s, enum smtp_addr_pref *out)
{
	static const char *const names[] = { "any", "ipv4", "ipv6" };
	for (int i = 0; i < 3; i++)
		if (str_eq_ci(s, names[i])) {
			*out = (enum smtp_addr_pref)i;
			return true;
		}
	return false;
}

/* Within each run of equal MX preference, the preferred family first (stable, so MX and DNS order stay); ANY
 * picks the first family at random per run. */
static void order_families(struct smtp_targets *t, enum smtp_addr_pref pref)
{
	struct smtp_target *tmp = xcalloc(t->n ? t->n : 1, sizeof(*tmp));
	for (size_t i = 0; i < t->n;) {
		size_t j = i;
		while (j < t->n && t->v[j].pref == t->v[i].pref)
			j++;
		int first = AF_INET;
		if (pref == SMTP_ADDR_IPV6) {
			first = AF_INET6;
		} else if (pref == SMTP_ADDR_ANY) {
			unsigned char coin = 0;
			if (getrandom(&coin, 1, 0) != 1)
				coin = (unsigned char)(time(NULL) & 1);
			first = coin & 1 ? AF_INET6 : AF_INET;
		}
		size_t k = 0;
		for (size_t x = i; x < j; x++)
			if (t->v[x].addr.family == first)
				tmp[k++] = t->v[x];
		for (size_t x = i; x < j; x++)
			if (t->v[x].addr.family != first)
				tmp[k++] = t->v[x];
		memcpy(&t->v[i], tmp, (j - i) * sizeof(*tmp));
		i = j;
	}
	free(tmp);
}

/* Cut the list to max addresses, keeping one address of the other family when the cut would drop it entirely
 * (Postfix's smtp_balance_inet_proto): an outage of one family must not leave nothing to try. */
static void limit(struct smtp_targets *t, size_t max)
{
	if (t->n <= max)
		return;
	bool v4 = false, v6 = false;
	for (size_t i = 0; i < max; i++)
		*(t->v[i].addr.family == AF_INET ? &v4 : &v6) = true;
	if (max >= 2 && !(v4 && v6)) {
		for (size_t i = max; i < t->n; i++)
			if ((t->v[i].addr.family == AF_INET) != v4) {
				struct smtp_target keep = t->v[i];
				free(t->v[max - 1].host);
				t->v[max - 1] = keep;
				memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(*t->v));
				t->n--;
				break;
			}
	}
	for (size_t i = max; i < t->n; i++)
		free(t->v[i].host);
	t->n = max;
}

static bool is_me(const struct smtp_resolve_opts *o, const char *host)
{
	if (!o->myhostname || !*o->myhostname)
		return false;
	size_t a = strlen(host), b = strlen(o->myhostname);
	if (a && host[a - 1] == '.')
		a--;
	if (b && o->myhostname[b - 1] == '.')
		b--;
	return a == b && str_eqn_ci(host, o->myhostname, a);
}

static void resolve_name(const struct smtp_resolve_opts *o, const char *name, bool no_mx, unsigned port,
                         size_t max, struct smtp_targets *t)
{
	struct buf why = BUF_INIT(512);
	if (no_mx) {
		enum dns_status st = host_addrs(o, name, port, 0, t, &why);
		if (st == DNS_TEMPFAIL)
			fail(t, 4, "4.4.3", "Host or domain name lookup failed for %s: %s", name, buf_cstr(&why));
		else if (st != DNS_OK)
			fail(t, 5, "5.4.4", "Host or domain name not found. Name service error for %s: %s", name,
			     buf_cstr(&why));
		buf_free(&why);
		return;
	}
	struct dns_result *mx = o->dns(DNS_MX, name, o->dns_arg);
	if (mx->status == DNS_OK && mx->n == 1 && mx->mx[0].host[0] == '\0') {
		fail(t, 5, "5.1.10", "Domain %s does not accept mail (nullMX)%s", name, NULL);
	} else if (mx->status == DNS_OK) {
		bool temp = false, me = false;
		/* twice the limit leaves room for the family order and balance without asking DNS about every MX */
		for (size_t i = 0; i < mx->n && t->n < 2 * max; i++) {
			const char *h = mx->mx[i].host;
			if (!*h)
				continue;
			if (is_me(o, h)) {
				/* we are one of the MX hosts: only better-preference ones may take it (RFC 5321 5.1) */
				me = true;
				break;
			}
			buf_reset(&why);
			if (host_addrs(o, h, port, mx->mx[i].pref, t, &why) == DNS_TEMPFAIL)
				temp = true;
		}
		if (t->n == 0 && me)
			fail(t, 5, "5.4.6", "mail for %s loops back to myself%s", name, NULL);
		else if (t->n == 0 && temp)
			fail(t, 4, "4.4.3", "Host or domain name lookup failed for the MX hosts of %s%s", name, NULL);
		else if (t->n == 0)
			fail(t, 5, "5.4.4", "no address found for the MX hosts of %s%s", name, NULL);
	} else if (mx->status == DNS_NODATA) {
		/* no MX: the domain's own address is the implicit MX (RFC 5321 5.1) */
		enum dns_status st = host_addrs(o, name, port, 0, t, &why);
		if (st == DNS_TEMPFAIL)
			fail(t, 4, "4.4.3", "Host or domain name lookup failed for %s: %s", name, buf_cstr(&why));
		else if (st != DNS_OK)
			fail(t, 5, "5.4.4", "Host or domain name not found. Name service error for %s: %s", name,
			     buf_cstr(&why));
	} else if (dns_status_temporary(mx->status)) {
		fail(t, 4, "4.4.3", "Host or domain name lookup failed for %s: %s", name,
		     mx->error ? mx->error : dns_status_str(mx->status));
	} else {
		fail(t, 5, mx->status == DNS_NXDOMAIN ? "5.1.2" : "5.4.4",
		     "Host or domain name not found. Name service error for name=%s: %s", name,
		     mx->error ? mx->error : dns_status_str(mx->status));
	}
	dns_result_free(&mx);
	buf_free(&why);
}

void smtp_resolve(const struct smtp_resolve_opts *o, const struct smtp_nexthop *nh, struct smtp_targets *t)
{
	memset(t, 0, sizeof(*t));
	buf_init(&t->why, 1024);
	size_t max = o->max_addrs ? o->max_addrs : 10;
	unsigned port = nh->port ? nh->port : o->default_port ? o->default_port : SMTP_DEFAULT_PORT;

	if (!nh->host) {
		fail(t, 4, "4.3.5", "no next hop for %s%s", "(none)", NULL);
		return;
	}
	/* an internationalized domain is asked for, and its MX certificate names matched, as A-labels */
	struct buf name = BUF_INIT(1024), err = BUF_INIT(256);
	if (!dns_name_ascii(nh->host, &name, &err)) {
		struct buf safe = BUF_INIT(600);
		buf_append_printable(&safe, nh->host, strlen(nh->host), 255);
		fail(t, 5, "5.1.2", "Host or domain name not found: %s: %s", buf_cstr(&safe), buf_cstr(&err));
		buf_free(&safe);
	} else {
		resolve_name(o, buf_cstr(&name), nh->no_mx, port, max, t);
		order_families(t, o->addr_pref);
		limit(t, max);
	}
	buf_free(&name);
	buf_free(&err);
}

void smtp_target_name(const struct smtp_target *t, struct buf *out)
{
	char a[INET6_ADDRSTRLEN];
	inet_ntop(t->addr.family, &t->addr.u, a, sizeof(a));
	buf_printf(out, "%s[%s]:%u", t->host, a, t->port);
}
