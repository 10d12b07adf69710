/* smtp next hop: spec parsing, MX order and fallback, null MX, MX loop, DNS failures, address limits. DNS is a
 * canned table, so every case is exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "../../smtp/nexthop.h"

static void test_parse(void **state)
{
	(void)state;
	struct smtp_nexthop nh;
	struct buf err = BUF_INIT(256);
	assert_true(smtp_nexthop_parse("[relay.example]:2525", &nh, &err));
	assert_string_equal(nh.host, "relay.example");
	assert_int_equal(nh.port, 2525);
	assert_true(nh.no_mx);
	smtp_nexthop_free(&nh);
	assert_true(smtp_nexthop_parse("smtp:[127.0.0.1]:26", &nh, &err));
	assert_string_equal(nh.host, "127.0.0.1");
	assert_int_equal(nh.port, 26);
	smtp_nexthop_free(&nh);
	assert_true(smtp_nexthop_parse(" example.com ", &nh, &err));
	assert_string_equal(nh.host, "example.com");
	assert_false(nh.no_mx);
	assert_int_equal(nh.port, 0);
	smtp_nexthop_free(&nh);
	assert_true(smtp_nexthop_parse("example.com:587", &nh, &err));
	assert_string_equal(nh.host, "example.com");
	assert_int_equal(nh.port, 587);
	smtp_nexthop_free(&nh);
	assert_true(smtp_nexthop_parse("[ipv6:::1]:25", &nh, &err));
	assert_string_equal(nh.host, "::1");
	smtp_nexthop_free(&nh);
	assert_true(smtp_nexthop_parse("[::1]", &nh, &err));
	assert_string_equal(nh.host, "::1");
	smtp_nexthop_free(&nh);
	assert_true(smtp_nexthop_parse("smtp:", &nh, &err));
	assert_null(nh.host);
	assert_true(smtp_nexthop_parse("", &nh, &err));
	assert_null(nh.host);

	static const char *const bad[] = { "local:", "relay:host", "[host", "[host]:0", "[host]:65536", "[host]x",
		                           "host:port", "ho st", "[]", "host:25:26", "h\xc3\xa9" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_reset(&err);
		assert_false(smtp_nexthop_parse(bad[i], &nh, &err));
		assert_true(err.len > 0);
		assert_null(nh.host);
	}
	buf_free(&err);
}

/* canned DNS: "TYPE name" -> status and records */
struct rec {
	enum dns_type type;
	const char *name;
	enum dns_status st;
	const char *data[4];	/* MX: "pref host"; A/AAAA: addresses */
};
static const struct rec *zone;
static int queries;

static struct dns_result *fake(enum dns_type type, const char *name, void *arg)
{
	(void)arg;
	queries++;
	struct dns_result *r = xcalloc(1, sizeof(*r));
	r->type = type;
	r->name = xstrdup(name);
	r->status = DNS_NXDOMAIN;
	for (const struct rec *z = zone; z->name; z++) {
		if (strcmp(z->name, name) != 0)
			continue;
		r->status = DNS_NODATA;
		if (z->type != type)
			continue;
		r->status = z->st;
		for (size_t i = 0; i < 4 && z->data[i]; i++) {
			if (type == DNS_MX) {
				r->mx = xreallocarray(r->mx, r->n + 1, sizeof(*r->mx));
				const char *sp = strchr(z->data[i], ' ');
				r->mx[r->n].pref = (unsigned)atoi(z->data[i]);
				r->mx[r->n].host = xstrdup(sp + 1);
			} else {
				r->addr = xreallocarray(r->addr, r->n + 1, sizeof(*r->addr));
				memset(&r->addr[r->n], 0, sizeof(r->addr[r->n]));
				r->addr[r->n].family = type == DNS_A ? AF_INET : AF_INET6;
				inet_pton(r->addr[r->n].family, z->data[i], &r->addr[r->n].u);
			}
			r->n++;
		}
		break;
	}
	if (r->status != DNS_OK)
		r->error = xstrdup(dns_status_str(r->status));
	return r;
}

static enum smtp_addr_pref addr_pref = SMTP_ADDR_IPV4;

static void resolve(const char *spec, struct smtp_targets *t, size_t max)
{
	struct smtp_nexthop nh;
	struct buf err = BUF_INIT(256);
	assert_true(smtp_nexthop_parse(spec, &nh, &err));
	struct smtp_resolve_opts o = { fake, NULL, "me.example", 25, max, addr_pref };
	smtp_resolve(&o, &nh, t);
	smtp_nexthop_free(&nh);
	buf_free(&err);
}

static void assert_target(const struct smtp_targets *t, size_t i, const char *want)
{
	struct buf b = BUF_INIT(256);
	assert_true(i < t->n);
	smtp_target_name(&t->v[i], &b);
	assert_string_equal(buf_cstr(&b), want);
	buf_free(&b);
}

static const struct rec zone1[] = {
	{ DNS_MX, "a.example", DNS_OK, { "10 mx1.a.example", "20 mx2.a.example" } },
	{ DNS_A, "mx1.a.example", DNS_OK, { "127.0.0.2" } },
	{ DNS_AAAA, "mx1.a.example", DNS_OK, { "::2" } },
	{ DNS_A, "mx2.a.example", DNS_OK, { "127.0.0.3", "127.0.0.2" } },
	{ DNS_A, "nomx.example", DNS_OK, { "127.0.0.4" } },
	{ DNS_MX, "null.example", DNS_OK, { "0 " } },
	{ DNS_MX, "loop.example", DNS_OK, { "10 ME.example." } },
	{ DNS_MX, "backup.example", DNS_OK, { "10 mx1.a.example", "20 me.example", "30 mx2.a.example" } },
	{ DNS_MX, "temp.example", DNS_TEMPFAIL, { NULL } },
	{ DNS_MX, "deadmx.example", DNS_OK, { "10 gone.example" } },
	{ DNS_MX, "tempmx.example", DNS_OK, { "10 slow.example" } },
	{ DNS_A, "slow.example", DNS_TIMEOUT, { NULL } },
	{ DNS_A, "relay.example", DNS_OK, { "127.0.0.9" } },
	{ DNS_MX, "dual.example", DNS_OK, { "10 d1.example", "10 d2.example", "20 d3.example" } },
	{ DNS_A, "d1.example", DNS_OK, { "127.0.1.1" } },
	{ DNS_AAAA, "d1.example", DNS_OK, { "::11" } },
	{ DNS_A, "d2.example", DNS_OK, { "127.0.1.2" } },
	{ DNS_AAAA, "d2.example", DNS_OK, { "::12" } },
	{ DNS_A, "d3.example", DNS_OK, { "127.0.1.3" } },
	{ DNS_AAAA, "d3.example", DNS_OK, { "::13" } },
	{ DNS_MX, "v4many.example", DNS_OK, { "10 many.example" } },
	{ DNS_A, "many.example", DNS_OK, { "127.0.2.1", "127.0.2.2", "127.0.2.3" } },
	{ DNS_AAAA, "many.example", DNS_OK, { "::21" } },
	{ DNS_MX, "xn--bcher-kva.example", DNS_OK, { "10 mx.xn--bcher-kva.example" } },
	{ DNS_A, "mx.xn--bcher-kva.example", DNS_OK, { "127.0.3.1" } },
	{ 0, NULL, 0, { NULL } },
};

static void test_mx_order(void **state)
{
	(void)state;
	zone = zone1;
	struct smtp_targets t;
	resolve("a.example", &t, 0);
	/* preference order, A before AAAA, an address shared by two MX hosts only once */
	assert_int_equal(t.n, 3);
	assert_target(&t, 0, "mx1.a.example[127.0.0.2]:25");
	assert_target(&t, 1, "mx1.a.example[::2]:25");
	assert_target(&t, 2, "mx2.a.example[127.0.0.3]:25");
	smtp_targets_free(&t);
	resolve("a.example", &t, 2);
	assert_int_equal(t.n, 2);
	smtp_targets_free(&t);
	resolve("a.example:2525", &t, 0);
	assert_target(&t, 0, "mx1.a.example[127.0.0.2]:2525");
	smtp_targets_free(&t);
}

static void test_no_mx_fallback(void **state)
{
	(void)state;
	zone = zone1;
	struct smtp_targets t;
	resolve("nomx.example", &t, 0);
	assert_int_equal(t.n, 1);
	assert_target(&t, 0, "nomx.example[127.0.0.4]:25");
	smtp_targets_free(&t);
	/* a bracketed next hop never asks for MX */
	queries = 0;
	resolve("[relay.example]:2526", &t, 0);
	assert_target(&t, 0, "relay.example[127.0.0.9]:2526");
	assert_int_equal(queries, 2);	/* A and AAAA only */
	smtp_targets_free(&t);
	resolve("[127.0.0.7]:26", &t, 0);
	assert_target(&t, 0, "127.0.0.7[127.0.0.7]:26");
	smtp_targets_free(&t);
}

static void assert_fail(const char *spec, int code, const char *dsn)
{
	struct smtp_targets t;
	resolve(spec, &t, 0);
	assert_int_equal(t.n, 0);
	assert_int_equal(t.code, code);
	assert_string_equal(t.dsn, dsn);
	assert_true(t.why.len > 0);
	smtp_targets_free(&t);
}

static void test_failures(void **state)
{
	(void)state;
	zone = zone1;
	assert_fail("null.example", 5, "5.1.10");
	assert_fail("loop.example", 5, "5.4.6");
	assert_fail("temp.example", 4, "4.4.3");
	assert_fail("missing.example", 5, "5.1.2");
	assert_fail("deadmx.example", 5, "5.4.4");
	assert_fail("tempmx.example", 4, "4.4.3");
	assert_fail("[missing.example]", 5, "5.4.4");
	assert_fail("[slow.example]", 4, "4.4.3");
}

static void test_backup_mx_stops_at_self(void **state)
{
	(void)state;
	zone = zone1;
	struct smtp_targets t;
	/* we are a backup MX: only the better MX may be tried, never the worse one (it would send it back) */
	resolve("backup.example", &t, 0);
	assert_int_equal(t.n, 2);
	assert_target(&t, 0, "mx1.a.example[127.0.0.2]:25");
	assert_target(&t, 1, "mx1.a.example[::2]:25");
	smtp_targets_free(&t);
}

static void test_address_preference(void **state)
{
	(void)state;
	zone = zone1;
	struct smtp_targets t;
	/* ipv4: every IPv4 address of the preference-10 hosts before their IPv6 ones, then preference 20 */
	addr_pref = SMTP_ADDR_IPV4;
	resolve("dual.example", &t, 0);
	assert_int_equal(t.n, 6);
	assert_target(&t, 0, "d1.example[127.0.1.1]:25");
	assert_target(&t, 1, "d2.example[127.0.1.2]:25");
	assert_target(&t, 2, "d1.example[::11]:25");
	assert_target(&t, 3, "d2.example[::12]:25");
	assert_target(&t, 4, "d3.example[127.0.1.3]:25");
	assert_target(&t, 5, "d3.example[::13]:25");
	smtp_targets_free(&t);
	addr_pref = SMTP_ADDR_IPV6;
	resolve("dual.example", &t, 0);
	assert_target(&t, 0, "d1.example[::11]:25");
	assert_target(&t, 1, "d2.example[::12]:25");
	assert_target(&t, 2, "d1.example[127.0.1.1]:25");
	assert_target(&t, 4, "d3.example[::13]:25");
	smtp_targets_free(&t);
	/* any: both orders turn up, each family kept together within a preference */
	addr_pref = SMTP_ADDR_ANY;
	bool v4first = false, v6first = false;
	for (int i = 0; i < 200 && !(v4first && v6first); i++) {
		resolve("dual.example", &t, 0);
		assert_int_equal(t.n, 6);
		assert_int_equal(t.v[0].addr.family, t.v[1].addr.family);
		assert_int_not_equal(t.v[1].addr.family, t.v[2].addr.family);
		*(t.v[0].addr.family == AF_INET ? &v4first : &v6first) = true;
		smtp_targets_free(&t);
	}
	assert_true(v4first && v6first);
	/* a limit that would cut off the only IPv6 address keeps it in place of the last IPv4 one */
	addr_pref = SMTP_ADDR_IPV4;
	resolve("v4many.example", &t, 2);
	assert_int_equal(t.n, 2);
	assert_target(&t, 0, "many.example[127.0.2.1]:25");
	assert_target(&t, 1, "many.example[::21]:25");
	smtp_targets_free(&t);
}

static void test_idn_domain(void **state)
{
	(void)state;
	zone = zone1;
	struct smtp_targets t;
	struct smtp_nexthop nh = { xstrdup("B\xc3\xbc" "cher.example"), 0, false };
	struct smtp_resolve_opts o = { fake, NULL, "me.example", 25, 0, SMTP_ADDR_IPV4 };
	smtp_resolve(&o, &nh, &t);
	assert_int_equal(t.n, 1);
	assert_target(&t, 0, "mx.xn--bcher-kva.example[127.0.3.1]:25");
	smtp_targets_free(&t);
	smtp_nexthop_free(&nh);
	/* not valid IDNA (a bare combining mark starts the label): a permanent failure, no DNS query */
	nh.host = xstrdup("\xcc\x81x.example");
	queries = 0;
	smtp_resolve(&o, &nh, &t);
	assert_int_equal(t.n, 0);
	assert_int_equal(t.code, 5);
	assert_int_equal(queries, 0);
	smtp_targets_free(&t);
	smtp_nexthop_free(&nh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse), cmocka_unit_test(test_mx_order), cmocka_unit_test(test_no_mx_fallback),
		cmocka_unit_test(test_failures), cmocka_unit_test(test_backup_mx_stops_at_self),
		cmocka_unit_test(test_address_preference), cmocka_unit_test(test_idn_domain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
