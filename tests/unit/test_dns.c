/* dns: queries a real dnsmasq started on a free loopback port (skipped when dnsmasq is not installed): MX order,
 * TXT strings, A/AAAA, PTR, NXDOMAIN vs NODATA, a server that never answers, bad names, the async API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "dns.h"

static const char *const dnsmasq_paths[] = { "/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq", NULL };
static pid_t dnsmasq_pid = -1;
static const char *dnsmasq_bin;
static char servers[64];	/* "127.0.0.1:PORT" */
static char logpath[64];

/* A port that was free a moment ago, for both UDP and TCP (dnsmasq binds both). */
static int free_port(void)
{
	for (int attempt = 0; attempt < 20; attempt++) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t len = sizeof(a);
		int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0), port = -1;
		if (bind(u, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(u, (struct sockaddr *)&a, &len) == 0 &&
		    bind(t, (struct sockaddr *)&a, sizeof(a)) == 0)
			port = ntohs(a.sin_port);
		close(u);
		close(t);
		if (port > 0)
			return port;
	}
	return -1;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int start_dnsmasq(void **state)
{
	(void)state;
	char portarg[32], big[1800];
	int port;

	if ((port = free_port()) < 0)
		return -1;
	snprintf(portarg, sizeof(portarg), "--port=%d", port);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", port);
	snprintf(logpath, sizeof(logpath), "/tmp/test_dns.%d.log", (int)getpid());
	/* one TXT record longer than the EDNS size we announce: the answer comes back truncated over UDP and
	 * c-ares must retry over TCP */
	snprintf(big, sizeof(big), "--txt-record=big.test");
	for (int i = 0; i < 8; i++) {
		size_t n = strlen(big);
		big[n] = ',';
		memset(big + n + 1, 'a' + i, 200);
		big[n + 201] = '\0';
	}
	const char *argv[] = {
		dnsmasq_bin, "-k", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=", portarg,
		"--listen-address=127.0.0.1", "--bind-interfaces", "--log-facility=-",
		/* authoritative for these, so unknown names are NXDOMAIN rather than REFUSED */
		"--local=/test/", "--local=/2.0.192.in-addr.arpa/",
		"--mx-host=mx.test,mx20.test,20", "--mx-host=mx.test,mx10a.test,10", "--mx-host=mx.test,mx5.test,5",
		"--mx-host=mx.test,mx10b.test,10", "--mx-host=mx.test,mx10c.test,10",
		"--txt-record=txt.test,v=spf1 ,ip4:192.0.2.0/24 ,-all", "--txt-record=txt.test,second record",
		"--txt-record=one.test,single",
		big,
		"--host-record=host.test,192.0.2.1,2001:db8::1", "--host-record=host.test,192.0.2.2",
		"--host-record=xn--bcher-kva.test,192.0.2.9",
		"--host-record=v4only.test,192.0.2.7",
		"--ptr-record=9.2.0.192.in-addr.arpa,ptr-a.test", "--ptr-record=9.2.0.192.in-addr.arpa,ptr-b.test",
		geteuid() == 0 ? "--user=root" : NULL,	/* keeps root, so the parent-death signal survives */
		NULL
	};
	dnsmasq_pid = fork();
	if (dnsmasq_pid < 0)
		return -1;
	if (dnsmasq_pid == 0) {
		int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		prctl(PR_SET_PDEATHSIG, SIGKILL);	/* never outlive a crashed test */
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(dnsmasq_bin, (char *const *)argv);
		_exit(127);
	}
	/* ready when it accepts TCP on the port */
	for (int i = 0; i < 100; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
			                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int s = socket(AF_INET, SOCK_STREAM, 0), ok = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(s);
		if (ok)
			return 0;
		if (waitpid(dnsmasq_pid, NULL, WNOHANG) == dnsmasq_pid) {
			fprintf(stderr, "dnsmasq exited at start; its log is %s\n", logpath);
			dnsmasq_pid = -1;
			return -1;
		}
		usleep(50000);
	}
	fprintf(stderr, "dnsmasq did not come up; its log is %s\n", logpath);
	return -1;
}

static int stop_dnsmasq(void **state)
{
	(void)state;
	if (dnsmasq_pid > 0) {
		kill(dnsmasq_pid, SIGTERM);
		waitpid(dnsmasq_pid, NULL, 0);
		dnsmasq_pid = -1;
		unlink(logpath);
	}
	return 0;
}

static void need_server(void)
{
	assert_true(dnsmasq_pid > 0);
}

static struct dns_result *ask(enum dns_type type, const char *name)
{
	struct dns_options opt = { servers, 3000, 1 };
	struct dns_result *r = dns_lookup(&opt, type, name);
	assert_non_null(r);
	assert_int_equal(r->type, type);
	assert_string_equal(r->name, name);
	if (r->status == DNS_OK)
		assert_null(r->error);
	else
		assert_non_null(r->error);
	return r;
}

static void test_mx_order(void **state)
{
	(void)state;
	need_server();
	int first10[3] = { 0 };
	/* equal preferences are shuffled: over many lookups each of the three comes first at least once */
	for (int round = 0; round < 40; round++) {
		struct dns_result *r = ask(DNS_MX, "mx.test");
		assert_int_equal(r->status, DNS_OK);
		assert_int_equal(r->n, 5);
		assert_string_equal(r->mx[0].host, "mx5.test");
		assert_int_equal(r->mx[0].pref, 5);
		for (int i = 1; i <= 3; i++) {
			assert_int_equal(r->mx[i].pref, 10);
			assert_non_null(strstr("mx10a.test mx10b.test mx10c.test", r->mx[i].host));
		}
		assert_string_not_equal(r->mx[1].host, r->mx[2].host);
		assert_string_not_equal(r->mx[2].host, r->mx[3].host);
		assert_string_not_equal(r->mx[1].host, r->mx[3].host);
		first10[r->mx[1].host[4] - 'a']++;
		assert_string_equal(r->mx[4].host, "mx20.test");
		assert_int_equal(r->mx[4].pref, 20);
		dns_result_free(&r);
		assert_null(r);
		if (first10[0] && first10[1] && first10[2])
			break;
	}
	assert_true(first10[0] && first10[1] && first10[2]);
}

static void test_txt(void **state)
{
	(void)state;
	need_server();
	struct dns_result *r = ask(DNS_TXT, "txt.test");
	assert_int_equal(r->status, DNS_OK);
	assert_int_equal(r->n, 2);
	/* record order is the server's: find the SPF one */
	struct dns_txt *spf = r->txt[0].nstrings == 3 ? &r->txt[0] : &r->txt[1];
	struct dns_txt *other = spf == &r->txt[0] ? &r->txt[1] : &r->txt[0];
	assert_int_equal(spf->nstrings, 3);
	assert_string_equal(spf->strings[0], "v=spf1 ");
	assert_string_equal(spf->strings[1], "ip4:192.0.2.0/24 ");
	assert_string_equal(spf->strings[2], "-all");
	assert_int_equal(spf->lens[2], 4);
	assert_string_equal(spf->text, "v=spf1 ip4:192.0.2.0/24 -all");
	assert_int_equal(spf->len, strlen(spf->text));
	assert_int_equal(other->nstrings, 1);
	assert_string_equal(other->text, "second record");
	dns_result_free(&r);

	r = ask(DNS_TXT, "one.test");
	assert_int_equal(r->status, DNS_OK);
	assert_int_equal(r->n, 1);
	assert_string_equal(r->txt[0].text, "single");
	dns_result_free(&r);
}

static void test_txt_over_tcp(void **state)
{
	(void)state;
	need_server();
	struct dns_result *r = ask(DNS_TXT, "big.test");
	assert_int_equal(r->status, DNS_OK);
	assert_int_equal(r->n, 1);
	assert_int_equal(r->txt[0].nstrings, 8);
	assert_int_equal(r->txt[0].len, 1600);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(r->txt[0].lens[i], 200);
		assert_int_equal(r->txt[0].strings[i][0], 'a' + i);
		assert_int_equal(r->txt[0].text[i * 200 + 199], 'a' + i);
	}
	dns_result_free(&r);
}

static void test_addresses(void **state)
{
	(void)state;
	need_server();
	char s[INET6_ADDRSTRLEN];
	struct dns_result *r = ask(DNS_A, "host.test");
	assert_int_equal(r->status, DNS_OK);
	assert_int_equal(r->n, 2);
	int seen1 = 0, seen2 = 0;
	for (size_t i = 0; i < r->n; i++) {
		assert_int_equal(r->addr[i].family, AF_INET);
		inet_ntop(AF_INET, &r->addr[i].u.v4, s, sizeof(s));
		seen1 |= strcmp(s, "192.0.2.1") == 0;
		seen2 |= strcmp(s, "192.0.2.2") == 0;
	}
	assert_true(seen1 && seen2);
	dns_result_free(&r);

	r = ask(DNS_AAAA, "HOST.test.");	/* case and a final dot do not matter */
	assert_int_equal(r->status, DNS_OK);
	assert_int_equal(r->n, 1);
	assert_int_equal(r->addr[0].family, AF_INET6);
	inet_ntop(AF_INET6, &r->addr[0].u.v6, s, sizeof(s));
	assert_string_equal(s, "2001:db8::1");
	dns_result_free(&r);
}

static void test_idn_names(void **state)
{
	(void)state;
	need_server();
	/* a UTF-8 name is asked for as A-labels (case folded first); the result keeps the name as given */
	struct dns_result *r = ask(DNS_A, "B\xc3\xbc" "cher.test");
	assert_int_equal(r->status, DNS_OK);
	assert_int_equal(r->n, 1);
	assert_string_equal(r->name, "B\xc3\xbc" "cher.test");
	dns_result_free(&r);
	struct buf b = BUF_INIT(256);
	assert_true(dns_name_ascii("b\xc3\xbc" "cher.test", &b, NULL));
	assert_string_equal(buf_cstr(&b), "xn--bcher-kva.test");
	buf_reset(&b);
	assert_true(dns_name_ascii("plain.TEST", &b, NULL));
	assert_string_equal(buf_cstr(&b), "plain.TEST");
	struct buf err = BUF_INIT(256);
	buf_reset(&b);
	assert_false(dns_name_ascii("\xff\xfe.test", &b, &err));	/* not UTF-8 */
	assert_true(err.len > 0);
	r = ask(DNS_A, "\xff\xfe.test");
	assert_int_equal(r->status, DNS_BADNAME);
	dns_result_free(&r);
	buf_free(&b);
	buf_free(&err);
}

static void test_ptr(void **state)
{
	(void)state;
	need_server();
	struct dns_result *r = ask(DNS_PTR, "192.0.2.9");
	assert_int_equal(r->status, DNS_OK);
	assert_int_equal(r->n, 2);
	assert_true((strcmp(r->ptr[0], "ptr-a.test") == 0 && strcmp(r->ptr[1], "ptr-b.test") == 0) ||
	            (strcmp(r->ptr[0], "ptr-b.test") == 0 && strcmp(r->ptr[1], "ptr-a.test") == 0));
	dns_result_free(&r);

	/* host-record also publishes the reverse names, for IPv6 too */
	r = ask(DNS_PTR, "2001:db8::1");
	assert_int_equal(r->status, DNS_OK);
	assert_int_equal(r->n, 1);
	assert_string_equal(r->ptr[0], "host.test");
	dns_result_free(&r);

	r = ask(DNS_PTR, "192.0.2.200");
	assert_int_equal(r->status, DNS_NXDOMAIN);
	dns_result_free(&r);

	r = ask(DNS_PTR, "not-an-address");
	assert_int_equal(r->status, DNS_BADNAME);
	assert_false(dns_status_temporary(r->status));
	dns_result_free(&r);
}

static void test_nxdomain_nodata(void **state)
{
	(void)state;
	need_server();
	struct dns_result *r = ask(DNS_A, "nosuchname.test");
	assert_int_equal(r->status, DNS_NXDOMAIN);
	assert_int_equal(r->n, 0);
	assert_false(dns_status_temporary(r->status));
	assert_non_null(strstr(r->error, "nosuchname.test"));
	dns_result_free(&r);

	r = ask(DNS_MX, "nosuchname.test");
	assert_int_equal(r->status, DNS_NXDOMAIN);
	dns_result_free(&r);

	/* the name exists, the type does not */
	r = ask(DNS_AAAA, "v4only.test");
	assert_int_equal(r->status, DNS_NODATA);
	assert_false(dns_status_temporary(r->status));
	dns_result_free(&r);

	r = ask(DNS_MX, "host.test");
	assert_int_equal(r->status, DNS_NODATA);
	assert_null(r->mx);
	dns_result_free(&r);

	r = ask(DNS_TXT, "host.test");
	assert_int_equal(r->status, DNS_NODATA);
	dns_result_free(&r);
}

/* The first nameserver never answers: the lookup moves on to the second within the deadline. */
static void test_failover(void **state)
{
	(void)state;
	need_server();
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	char list[128];
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	snprintf(list, sizeof(list), "127.0.0.1:%d, %s", ntohs(a.sin_port), servers);
	struct dns_options opt = { list, 3000, 1 };
	double t0 = now();
	struct dns_result *r = dns_lookup(&opt, DNS_MX, "mx.test");
	assert_int_equal(r->status, DNS_OK);
	assert_int_equal(r->n, 5);
	assert_true(now() - t0 < 2.9);
	dns_result_free(&r);
	close(s);
}

static void test_timeout(void **state)
{
	(void)state;
	/* a UDP socket that receives queries and never answers: needs no dnsmasq */
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	char silent[64];
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	snprintf(silent, sizeof(silent), "127.0.0.1:%d", ntohs(a.sin_port));

	struct dns_options opt = { silent, 400, 2 };
	double t0 = now();
	struct dns_result *r = dns_lookup(&opt, DNS_MX, "example.test");
	double took = now() - t0;
	assert_int_equal(r->status, DNS_TIMEOUT);
	assert_true(dns_status_temporary(r->status));
	assert_true(took >= 0.35 && took < 2.5);	/* the deadline, not c-ares's own slower schedule */
	dns_result_free(&r);
	close(s);

	/* nothing listening at all: refused or timed out, but always temporary, and quick */
	snprintf(silent, sizeof(silent), "127.0.0.1:%d", free_port());
	opt.nameservers = silent;
	t0 = now();
	r = dns_lookup(&opt, DNS_A, "example.test");
	assert_true(dns_status_temporary(r->status));
	assert_true(now() - t0 < 2.5);
	dns_result_free(&r);
}

struct counter {
	int calls;
	int in_submit;
	int called_during_submit;
	enum dns_status last;
	struct event_base *base;
	int expect;
};

static void count_cb(struct dns_result *res, void *arg)
{
	struct counter *c = arg;
	if (c->in_submit)
		c->called_during_submit = 1;
	c->calls++;
	c->last = res->status;
	dns_result_free(&res);
	if (c->calls == c->expect)
		event_base_loopbreak(c->base);
}

static void test_async_and_cancel(void **state)
{
	(void)state;
	need_server();
	struct event_base *base = event_base_new();
	struct dns_options opt = { servers, 3000, 1 };
	struct buf err = BUF_INIT(1024);
	struct dns *d = dns_new(base, &opt, &err);
	struct counter c = { .base = base, .expect = 4 };
	assert_non_null(d);

	c.in_submit = 1;
	dns_query(d, DNS_A, "host.test", count_cb, &c);
	dns_query(d, DNS_MX, "mx.test", count_cb, &c);
	dns_query(d, DNS_A, "bad..name", count_cb, &c);	/* fails at once, but still from the loop */
	struct dns_query *cancelled = dns_query(d, DNS_TXT, "txt.test", count_cb, &c);
	struct dns_query *cancelled_bad = dns_query(d, DNS_PTR, "x", count_cb, &c);
	dns_query(d, DNS_AAAA, "host.test", count_cb, &c);
	c.in_submit = 0;
	dns_cancel(&cancelled);
	dns_cancel(&cancelled_bad);
	assert_null(cancelled);
	event_base_dispatch(base);
	assert_int_equal(c.calls, 4);
	assert_false(c.called_during_submit);

	/* queries still outstanding when the resolver is freed are dropped without callbacks (ASan: no leak) */
	c.expect = 100;
	dns_query(d, DNS_A, "host.test", count_cb, &c);
	dns_query(d, DNS_A, "bad..name", count_cb, &c);
	dns_free(&d);
	assert_null(d);
	assert_int_equal(c.calls, 4);
	event_base_free(base);
	buf_free(&err);
}

static void test_bad_names_and_options(void **state)
{
	(void)state;
	struct dns_options opt = { "127.0.0.1:9", 500, 0 };	/* never contacted */
	const char *bad[] = { "", ".", "a..b", "with space.test", "ctl\x01.test", ".lead.test",
		              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct dns_result *r = dns_lookup(&opt, DNS_A, bad[i]);
		if (r->status != DNS_BADNAME)
			fail_msg("\"%s\": %s", bad[i], dns_status_str(r->status));
		dns_result_free(&r);
	}

	struct event_base *base = event_base_new();
	struct buf err = BUF_INIT(1024);
	opt.nameservers = "not-an-ip";
	assert_null(dns_new(base, &opt, &err));
	assert_non_null(strstr(buf_cstr(&err), "dns_nameservers"));
	/* commas and white space, ports, IPv6 in brackets */
	opt.nameservers = "127.0.0.1:5353, [::1]:5353 127.0.0.2";
	struct dns *d = dns_new(base, &opt, &err);
	assert_non_null(d);
	dns_free(&d);
	event_base_free(base);
	buf_free(&err);

	/* a configuration error is temporary: mail waits for the fix instead of bouncing */
	opt.nameservers = "256.1.1.1";
	struct dns_result *r = dns_lookup(&opt, DNS_A, "host.test");
	assert_int_equal(r->status, DNS_TEMPFAIL);
	dns_result_free(&r);
}

static void test_ptr_name(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(256);
	assert_true(dns_ptr_name("192.0.2.1", &b));
	assert_string_equal(buf_cstr(&b), "1.2.0.192.in-addr.arpa");
	assert_true(dns_ptr_name("2001:db8::567:89ab", &b));
	assert_string_equal(buf_cstr(&b),
	                    "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	assert_false(dns_ptr_name("192.0.2", &b));
	assert_false(dns_ptr_name("example.com", &b));
	assert_string_equal(dns_status_str(DNS_NODATA), "nodata");
	assert_string_equal(dns_type_str(DNS_AAAA), "AAAA");
	buf_free(&b);
}

/* ---- replies built by hand: cases a dnsmasq cannot be made to produce ---- */

struct msg {
	unsigned char b[1024];
	size_t len;
};

static void put(struct msg *m, const void *p, size_t n)
{
	assert_true(m->len + n <= sizeof(m->b));
	memcpy(m->b + m->len, p, n);
	m->len += n;
}

static void put16(struct msg *m, unsigned v)
{
	unsigned char x[2] = { (unsigned char)(v >> 8), (unsigned char)v };
	put(m, x, 2);
}

static void put_name(struct msg *m, const char *name)
{
	while (*name) {
		size_t n = strcspn(name, ".");
		unsigned char l = (unsigned char)n;
		put(m, &l, 1);
		put(m, name, n);
		name += n + (name[n] == '.');
	}
	put(m, "", 1);
}

/* header and question; answers follow with add_rr() */
static void begin(struct msg *m, const char *qname, unsigned qtype, unsigned rcode, unsigned ancount)
{
	m->len = 0;
	put16(m, 0x1234);
	put16(m, 0x8180 | rcode);
	put16(m, 1);
	put16(m, ancount);
	put16(m, 0);
	put16(m, 0);
	put_name(m, qname);
	put16(m, qtype);
	put16(m, 1);
}

static void add_rr(struct msg *m, unsigned type, const void *rdata, size_t n)
{
	put16(m, 0xc00c);	/* the question's name */
	put16(m, type);
	put16(m, 1);
	put16(m, 0);
	put16(m, 300);
	put16(m, (unsigned)n);
	put(m, rdata, n);
}

static void test_reply_parsing(void **state)
{
	(void)state;
	struct msg m;
	struct dns_result *r;

	/* null MX (RFC 7505): one record, preference 0, root name */
	begin(&m, "nomail.test", 15, 0, 1);
	add_rr(&m, 15, "\0\0\0", 3);
	r = dns_result_from_reply(DNS_MX, "nomail.test", m.b, m.len);
	assert_int_equal(r->status, DNS_OK);
	assert_int_equal(r->n, 1);
	assert_string_equal(r->mx[0].host, "");
	assert_int_equal(r->mx[0].pref, 0);
	dns_result_free(&r);

	/* TXT: an empty string, a NUL inside a string, and several strings in one record */
	begin(&m, "t.test", 16, 0, 3);
	add_rr(&m, 16, "\0", 1);
	add_rr(&m, 16, "\3a\0b", 4);
	add_rr(&m, 16, "\2ab\0\1c", 6);
	r = dns_result_from_reply(DNS_TXT, "t.test", m.b, m.len);
	assert_int_equal(r->status, DNS_OK);
	assert_int_equal(r->n, 3);
	assert_int_equal(r->txt[0].len, 0);
	assert_string_equal(r->txt[0].text, "");
	assert_int_equal(r->txt[0].nstrings, 1);
	assert_int_equal(r->txt[1].len, 3);
	assert_memory_equal(r->txt[1].text, "a\0b", 4);
	assert_int_equal(r->txt[2].nstrings, 3);
	assert_int_equal(r->txt[2].lens[1], 0);
	assert_string_equal(r->txt[2].text, "abc");
	dns_result_free(&r);

	/* an A query answered with only a CNAME: the name exists, the type not */
	begin(&m, "alias.test", 1, 0, 1);
	add_rr(&m, 5, "\6target\4test\0", 13);
	r = dns_result_from_reply(DNS_A, "alias.test", m.b, m.len);
	assert_int_equal(r->status, DNS_NODATA);
	dns_result_free(&r);

	/* rcodes */
	static const struct { unsigned rcode; enum dns_status st; } rc[] = {
		{ 3, DNS_NXDOMAIN }, { 2, DNS_TEMPFAIL }, { 5, DNS_TEMPFAIL }, { 4, DNS_TEMPFAIL }, { 1, DNS_TEMPFAIL },
	};
	for (size_t i = 0; i < sizeof(rc) / sizeof(rc[0]); i++) {
		begin(&m, "x.test", 15, rc[i].rcode, 0);
		r = dns_result_from_reply(DNS_MX, "x.test", m.b, m.len);
		assert_int_equal(r->status, rc[i].st);
		assert_int_equal(r->n, 0);
		dns_result_free(&r);
	}
	begin(&m, "x.test", 15, 0, 0);
	r = dns_result_from_reply(DNS_MX, "x.test", m.b, m.len);
	assert_int_equal(r->status, DNS_NODATA);
	dns_result_free(&r);

	/* garbage and truncation are temporary: the next reply may be fine */
	begin(&m, "x.test", 1, 0, 1);
	add_rr(&m, 1, "\1\2\3\4", 4);
	for (size_t cut = 0; cut < m.len; cut++) {
		r = dns_result_from_reply(DNS_A, "x.test", m.b, cut);
		assert_true(dns_status_temporary(r->status));
		dns_result_free(&r);
	}
	r = dns_result_from_reply(DNS_A, "x.test", m.b, m.len);
	assert_int_equal(r->status, DNS_OK);
	assert_int_equal(r->addr[0].u.v4.s_addr, htonl(0x01020304));
	dns_result_free(&r);
}

int main(void)
{
	const struct CMUnitTest with_server[] = {
		cmocka_unit_test(test_mx_order),
		cmocka_unit_test(test_txt),
		cmocka_unit_test(test_txt_over_tcp),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_idn_names),
		cmocka_unit_test(test_ptr),
		cmocka_unit_test(test_nxdomain_nodata),
		cmocka_unit_test(test_async_and_cancel),
		cmocka_unit_test(test_failover),
	};
	const struct CMUnitTest standalone[] = {
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_bad_names_and_options),
		cmocka_unit_test(test_ptr_name),
		cmocka_unit_test(test_reply_parsing),
	};
	int failed = 0;

	for (int i = 0; dnsmasq_paths[i]; i++)
		if (access(dnsmasq_paths[i], X_OK) == 0)
			dnsmasq_bin = dnsmasq_paths[i];
	/* Not cmocka's skip(): its TAP output says "not ok ... # SKIP", which runners count as a failure. */
	if (dnsmasq_bin)
		failed += cmocka_run_group_tests_name("dns (dnsmasq)", with_server, start_dnsmasq, stop_dnsmasq);
	else
		fprintf(stderr, "dnsmasq is not installed: SKIPPING %zu DNS tests that need a server "
		                "(apt-get install dnsmasq-base)\n", sizeof(with_server) / sizeof(with_server[0]));
	failed += cmocka_run_group_tests_name("dns", standalone, NULL, NULL);
	return failed;
}
