/* spf: record syntax, the RFC 7208 section 7.4 macro examples (IPv4 and IPv6), and check_host() against a
 * real dnsmasq on a free loopback port (skipped when dnsmasq is missing): every mechanism with CIDR lengths,
 * include/redirect/exp, the DNS-mechanism, MX-name and void-lookup limits, none/neutral/softfail/temperror/
 * permerror, the HELO identity, the null sender, IPv4-mapped clients, the async API, Received-SPF text, and the
 * appendix A examples on their own DNS data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
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
#include <unistd.h>

#include "buf.h"
#include "dns.h"
#include "spf.h"

static void test_record_syntax(void **state)
{
	(void)state;
	struct spf_record r;
	struct buf err = BUF_INIT(300);
	const char *good = "v=spf1 +a -mx:%{d}/24 ~ptr ?include:_spf.example.com ip4:192.0.2.0/24 "
	                   "ip6:2001:db8::/32 a:example.com/24//64 mx//48 exists:%{ir}.%{l1r+-}._spf.%{d} "
	                   "redirect=_spf.example.org exp=explain._spf.%{d} unknown-mod=foo  -all";
	assert_true(spf_record_parse(good, strlen(good), &r, &err));
	assert_int_equal(r.n, 13);
	assert_true(r.has_all);
	assert_non_null(r.redirect);
	assert_string_equal(r.redirect->value, "_spf.example.org");
	assert_string_equal(r.exp->value, "explain._spf.%{d}");
	assert_int_equal(r.terms[1].mech, SPF_MX);
	assert_int_equal(r.terms[1].qualifier, '-');
	assert_string_equal(r.terms[1].spec, "%{d}");
	assert_int_equal(r.terms[1].cidr4, 24);
	assert_int_equal(r.terms[6].cidr4, 24);
	assert_int_equal(r.terms[6].cidr6, 64);
	assert_string_equal(r.terms[6].spec, "example.com");
	assert_null(r.terms[7].spec);
	assert_int_equal(r.terms[7].cidr4, 32);
	assert_int_equal(r.terms[7].cidr6, 48);
	assert_int_equal(r.terms[4].cidr4, 24);
	assert_int_equal(r.terms[5].cidr6, 32);
	spf_record_clear(&r);
	assert_true(spf_record_parse("v=spf1", 6, &r, &err));
	assert_int_equal(r.n, 0);
	spf_record_clear(&r);
	assert_true(spf_record_parse("V=SPF1 ALL", 10, &r, &err));
	spf_record_clear(&r);

	static const char *const bad[] = {
		"v=spf10 -all", "v=spf1 -all:x", "v=spf1 foo", "v=spf1 include", "v=spf1 include:", "v=spf1 a:",
		"v=spf1 ip4:192.0.2.0/33", "v=spf1 ip4:192.0.2", "v=spf1 ip6:2001:db8::/129", "v=spf1 ip6:zz::",
		"v=spf1 a/", "v=spf1 a/024", "v=spf1 mx:example", "v=spf1 a:example.123", "v=spf1 exists:%{x}.com",
		"v=spf1 exists:%{d0}.com", "v=spf1 exists:%{d", "v=spf1 redirect=a.com redirect=b.com",
		"v=spf1 exp=a.com exp=b.com", "v=spf1 include:%{c}.example.com", "v=spf1 a:%.com", "v=spf1 =foo",
		"v=spf1 ip4:192.0.2.0/24/", "v=spf1 ip4", "v=spf1 mx///4",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_reset(&err);
		if (spf_record_parse(bad[i], strlen(bad[i]), &r, &err))
			fail_msg("accepted: %s", bad[i]);
		assert_true(err.len > 0);
	}
	buf_free(&err);
}

static void expect_macro(const struct spf_macro_ctx *m, const char *spec, bool exp, const char *want)
{
	struct buf b = BUF_INIT(2000);
	if (!spf_macro_expand(spec, m, exp, &b))
		fail_msg("expansion failed: %s", spec);
	if (strcmp(buf_cstr(&b), want) != 0)
		fail_msg("%s -> %s, expected %s", spec, buf_cstr(&b), want);
	buf_free(&b);
}

static void test_macros(void **state)
{
	(void)state;
	struct spf_macro_ctx m = { "strong-bad@email.example.com", "email.example.com", "192.0.2.3", false,
		                   "mx.example.org", "mx.example.org", "rx.example.net", 1700000000 };
	expect_macro(&m, "%{s}", false, "strong-bad@email.example.com");
	expect_macro(&m, "%{o}", false, "email.example.com");
	expect_macro(&m, "%{d}", false, "email.example.com");
	expect_macro(&m, "%{d4}", false, "email.example.com");
	expect_macro(&m, "%{d3}", false, "email.example.com");
	expect_macro(&m, "%{d2}", false, "example.com");
	expect_macro(&m, "%{d1}", false, "com");
	expect_macro(&m, "%{dr}", false, "com.example.email");
	expect_macro(&m, "%{d2r}", false, "example.email");
	expect_macro(&m, "%{l}", false, "strong-bad");
	expect_macro(&m, "%{l-}", false, "strong.bad");
	expect_macro(&m, "%{lr}", false, "strong-bad");
	expect_macro(&m, "%{lr-}", false, "bad.strong");
	expect_macro(&m, "%{l1r-}", false, "strong");
	expect_macro(&m, "%{ir}.%{v}._spf.%{d2}", false, "3.2.0.192.in-addr._spf.example.com");
	expect_macro(&m, "%{lr-}.lp._spf.%{d2}", false, "bad.strong.lp._spf.example.com");
	expect_macro(&m, "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", false, "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
	expect_macro(&m, "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", false, "3.2.0.192.in-addr.strong.lp._spf.example.com");
	expect_macro(&m, "%{d2}.trusted-domains.example.net", false, "example.com.trusted-domains.example.net");
	expect_macro(&m, "%{h}.%{p}", false, "mx.example.org.mx.example.org");
	expect_macro(&m, "%%%_%-", false, "% %20");
	expect_macro(&m, "%{S}", false, "strong-bad%40email.example.com");
	expect_macro(&m, "%{c} %{r} %{t}", true, "192.0.2.3 rx.example.net 1700000000");
	expect_macro(&m, "%{l+-}", false, "strong.bad");
	struct buf b = BUF_INIT(100);
	assert_false(spf_macro_expand("%{c}", &m, false, &b));
	assert_false(spf_macro_expand("%{t}", &m, false, &b));
	assert_false(spf_macro_expand("%x", &m, false, &b));
	assert_false(spf_macro_expand("%{d", &m, false, &b));
	buf_free(&b);

	struct spf_macro_ctx m6 = { "strong-bad@email.example.com", "email.example.com", "2001:db8::cb01", true,
		                    "h", NULL, NULL, 0 };
	expect_macro(&m6, "%{ir}.%{v}._spf.%{d2}", false,
	             "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
	expect_macro(&m6, "%{p}", false, "unknown");
	assert_true(spf_macro_uses_p("a.%{p2}.b"));
	assert_true(spf_macro_uses_p("%{P}"));
	assert_false(spf_macro_uses_p("%%{p}"));
	assert_false(spf_macro_uses_p(NULL));

	struct buf d = BUF_INIT(1000);
	for (int i = 0; i < 30; i++)
		buf_puts(&d, "abcdefghi.");
	buf_puts(&d, "com");
	spf_domain_truncate(&d);
	assert_true(d.len <= 253);
	assert_true(d.len > 240);
	assert_string_equal(d.data + d.len - 4, ".com");
	assert_true(d.data[0] == 'a');
	buf_free(&d);
}

/* ---- dnsmasq ---- */
static const char *const dnsmasq_paths[] = { "/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq", NULL };
static pid_t dnsmasq_pid = -1;
static char servers[64], logpath[64];

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

static const char *const zone[] = {
	"--txt-record=pass.test,v=spf1 ip4:192.0.2.0/24 -all",
	"--txt-record=pass.test,unrelated text",
	"--txt-record=soft.test,v=spf1 ~all",
	"--txt-record=neutral.test,v=spf1 ?all",
	"--txt-record=nomatch.test,v=spf1 ip4:10.0.0.1",
	"--host-record=none.test,192.0.2.99",
	"--txt-record=two.test,v=spf1 -all",
	"--txt-record=two.test,v=spf1 +all",
	"--txt-record=syntax.test,v=spf1 foo:bar -all",
	"--txt-record=a.test,v=spf1 a -all",
	"--host-record=a.test,192.0.2.10,2001:db8::10",
	"--txt-record=a24.test,v=spf1 a:a.test/24 -all",
	"--txt-record=a6.test,v=spf1 a:a.test//64 -all",
	"--txt-record=mx.test,v=spf1 mx/28 -all",
	"--mx-host=mx.test,mx1.mx.test,10",
	"--mx-host=mx.test,mx2.mx.test,20",
	"--host-record=mx1.mx.test,198.51.100.1",
	"--host-record=mx2.mx.test,198.51.100.20",
	"--txt-record=incl.test,v=spf1 include:pass.test -all",
	"--txt-record=inclnone.test,v=spf1 include:none.test -all",
	"--txt-record=inclfail.test,v=spf1 include:soft.test ?all",
	"--txt-record=redir.test,v=spf1 redirect=pass.test",
	"--txt-record=redirall.test,v=spf1 ?all redirect=pass.test",
	"--txt-record=redirnone.test,v=spf1 redirect=none.test",
	"--txt-record=exists.test,v=spf1 exists:%{ir}.bl.test -all",
	"--host-record=5.2.0.192.bl.test,127.0.0.2",
	"--txt-record=ptr.test,v=spf1 ptr -all",
	"--txt-record=ptrother.test,v=spf1 ptr:elsewhere.test -all",
	"--ptr-record=30.2.0.192.in-addr.arpa,host.ptr.test",
	"--ptr-record=31.2.0.192.in-addr.arpa,liar.ptr.test",
	"--host-record=host.ptr.test,192.0.2.30",
	"--host-record=liar.ptr.test,192.0.2.99",
	"--txt-record=pmacro.test,v=spf1 exists:%{p}.ok.test -all",
	"--host-record=host.ptr.test.ok.test,127.0.0.2",
	"--txt-record=predir.test,v=spf1 redirect=%{p}.ok.test",
	"--txt-record=host.ptr.test.ok.test,v=spf1 ip4:192.0.2.30 -all",
	"--txt-record=ip6.test,v=spf1 ip6:2001:db8::/32 -all",
	"--txt-record=loop.test,v=spf1 include:loop.test",
	"--txt-record=many.test,v=spf1 a:n1.test a:n2.test a:n3.test a:n4.test a:n5.test a:n6.test a:n7.test "
	"a:n8.test a:n9.test a:n10.test a:n11.test -all",
	"--host-record=n1.test,10.0.0.1", "--host-record=n2.test,10.0.0.1", "--host-record=n3.test,10.0.0.1",
	"--host-record=n4.test,10.0.0.1", "--host-record=n5.test,10.0.0.1", "--host-record=n6.test,10.0.0.1",
	"--host-record=n7.test,10.0.0.1", "--host-record=n8.test,10.0.0.1", "--host-record=n9.test,10.0.0.1",
	"--host-record=n10.test,10.0.0.1", "--host-record=n11.test,10.0.0.1",
	"--txt-record=ten.test,v=spf1 a:n1.test a:n2.test a:n3.test a:n4.test a:n5.test a:n6.test a:n7.test "
	"a:n8.test a:n9.test a:n10.test -all",
	"--txt-record=mx11.test,v=spf1 mx -all",
	"--mx-host=mx11.test,n1.test,1", "--mx-host=mx11.test,n2.test,2", "--mx-host=mx11.test,n3.test,3",
	"--mx-host=mx11.test,n4.test,4", "--mx-host=mx11.test,n5.test,5", "--mx-host=mx11.test,n6.test,6",
	"--mx-host=mx11.test,n7.test,7", "--mx-host=mx11.test,n8.test,8", "--mx-host=mx11.test,n9.test,9",
	"--mx-host=mx11.test,n10.test,10", "--mx-host=mx11.test,n11.test,11",
	"--txt-record=nodata.test,not an address",
	"--txt-record=voidmix.test,v=spf1 a:v1.void.test a:nodata.test mx:v3.void.test -all",
	"--txt-record=redir10.test,v=spf1 a:n1.test a:n2.test a:n3.test a:n4.test a:n5.test a:n6.test "
	"a:n7.test a:n8.test a:n9.test redirect=pass.test",
	"--txt-record=redir11.test,v=spf1 a:n1.test a:n2.test a:n3.test a:n4.test a:n5.test a:n6.test "
	"a:n7.test a:n8.test a:n9.test a:n10.test redirect=pass.test",
	"--txt-record=void2.test,v=spf1 a:v1.void.test a:v2.void.test -all",
	"--txt-record=void3.test,v=spf1 a:v1.void.test a:v2.void.test a:v3.void.test -all",
	"--txt-record=exp.test,v=spf1 -all exp=explain.exp.test",
	"--txt-record=explain.exp.test,%{i} is not one of %{d}'s designated mail servers.",
	"--txt-record=temp.test,v=spf1 include:elsewhere.invalid -all",
	"--txt-record=helo.test,v=spf1 a -all",
	"--host-record=helo.test,192.0.2.50",
	NULL
};

/* dnsmasq answering for the names in local (NULL-terminated --local= options) from the records in zone and
 * extra (each NULL-terminated, extra may be NULL); its pid, "127.0.0.1:PORT" into srv and its log path into log.
 * -1 when it cannot be started (a missing dnsmasq is not an error: *pid stays -1 and the tests skip). */
static int dnsmasq_run(const char *const *local, const char *const *zone_recs, const char *const *extra,
                       pid_t *pid, char *srv, size_t srvlen, char *log, size_t loglen)
{
	const char *bin = NULL;
	char portarg[32];
	int port;
	static unsigned serial;
	*pid = -1;
	for (int i = 0; dnsmasq_paths[i]; i++)
		if (access(dnsmasq_paths[i], X_OK) == 0)
			bin = dnsmasq_paths[i];
	if (!bin || (port = free_port()) < 0)
		return 0;
	snprintf(portarg, sizeof(portarg), "--port=%d", port);
	snprintf(srv, srvlen, "127.0.0.1:%d", port);
	snprintf(log, loglen, "/tmp/test_spf.%d.%u.log", (int)getpid(), serial++);
	const char *argv[200] = { bin, "-k", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=",
		                  portarg, "--listen-address=127.0.0.1", "--bind-interfaces", "--log-facility=-" };
	size_t n = 10;
	for (size_t i = 0; local[i]; i++)
		argv[n++] = local[i];
	for (size_t i = 0; zone_recs[i]; i++)
		argv[n++] = zone_recs[i];
	for (size_t i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	if (geteuid() == 0)
		argv[n++] = "--user=root";
	argv[n] = NULL;
	*pid = fork();
	if (*pid < 0)
		return -1;
	if (*pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
			                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int s = socket(AF_INET, SOCK_STREAM, 0), ok = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(s);
		if (ok)
			return 0;
		if (waitpid(*pid, NULL, WNOHANG) == *pid) {
			fprintf(stderr, "dnsmasq exited at start; its log is %s\n", log);
			*pid = -1;
			return -1;
		}
		usleep(50000);
	}
	return -1;
}

static void dnsmasq_stop(pid_t *pid, const char *log)
{
	if (*pid > 0) {
		kill(*pid, SIGTERM);
		waitpid(*pid, NULL, 0);
		*pid = -1;
		unlink(log);
	}
}

static int start_dnsmasq(void **state)
{
	static const char *const local[] = { "--local=/test/", "--local=/2.0.192.in-addr.arpa/", NULL };
	(void)state;
	return dnsmasq_run(local, zone, NULL, &dnsmasq_pid, servers, sizeof(servers), logpath, sizeof(logpath));
}

static int stop_dnsmasq(void **state)
{
	(void)state;
	dnsmasq_stop(&dnsmasq_pid, logpath);
	return 0;
}

static enum spf_result check_full(const char *ip, const char *sender, const char *helo, bool helo_id,
                                  struct spf_answer *ans)
{
	struct dns_options opt = { servers, 3000, 1 };
	struct spf_request req = { ip, sender, helo, "rx.example.net", helo_id, 1700000000 };
	spf_check_blocking(&opt, &req, ans);
	return ans->result;
}

static void expect(const char *ip, const char *domain, enum spf_result want)
{
	struct spf_answer a;
	char sender[300];
	snprintf(sender, sizeof(sender), "user@%s", domain);
	enum spf_result got = check_full(ip, sender, "helo.example", false, &a);
	if (got != want)
		fail_msg("%s from %s: %s (%s), expected %s", domain, ip, spf_result_str(got), a.reason,
		         spf_result_str(want));
	spf_answer_clear(&a);
}

#define NEED_DNS() do { if (dnsmasq_pid <= 0) skip(); } while (0)

static void test_basic_results(void **state)
{
	(void)state;
	NEED_DNS();
	expect("192.0.2.5", "pass.test", SPF_PASS);
	expect("198.51.100.1", "pass.test", SPF_FAIL);
	expect("192.0.2.5", "soft.test", SPF_SOFTFAIL);
	expect("192.0.2.5", "neutral.test", SPF_NEUTRAL);
	expect("192.0.2.5", "nomatch.test", SPF_NEUTRAL);
	expect("192.0.2.5", "none.test", SPF_NONE);
	expect("192.0.2.5", "nonexistent.test", SPF_NONE);
	expect("192.0.2.5", "two.test", SPF_PERMERROR);
	expect("192.0.2.5", "syntax.test", SPF_PERMERROR);
	expect("192.0.2.5", "nodot", SPF_NONE);
	expect("192.0.2.5", "temp.test", SPF_TEMPERROR);
	expect("::ffff:192.0.2.5", "pass.test", SPF_PASS);
	expect("2001:db8::1", "pass.test", SPF_FAIL);
	expect("2001:db8::1", "ip6.test", SPF_PASS);
	expect("2001:db9::1", "ip6.test", SPF_FAIL);
	expect("192.0.2.5", "ip6.test", SPF_FAIL);
}

static void test_mechanisms(void **state)
{
	(void)state;
	NEED_DNS();
	expect("192.0.2.10", "a.test", SPF_PASS);
	expect("192.0.2.11", "a.test", SPF_FAIL);
	expect("2001:db8::10", "a.test", SPF_PASS);
	expect("192.0.2.11", "a24.test", SPF_PASS);
	expect("192.0.3.11", "a24.test", SPF_FAIL);
	expect("2001:db8::ffff", "a6.test", SPF_PASS);
	expect("2001:db8:1::10", "a6.test", SPF_FAIL);
	expect("198.51.100.1", "mx.test", SPF_PASS);
	expect("198.51.100.31", "mx.test", SPF_PASS);	/* mx2 /28: .16-.31 */
	expect("198.51.100.40", "mx.test", SPF_FAIL);
	expect("192.0.2.5", "exists.test", SPF_PASS);
	expect("192.0.2.6", "exists.test", SPF_FAIL);
	expect("192.0.2.30", "ptr.test", SPF_PASS);
	expect("192.0.2.31", "ptr.test", SPF_FAIL);	/* the PTR name does not resolve back */
	expect("192.0.2.30", "ptrother.test", SPF_FAIL);
	expect("192.0.2.30", "pmacro.test", SPF_PASS);
	expect("192.0.2.31", "pmacro.test", SPF_FAIL);
	expect("192.0.2.30", "predir.test", SPF_PASS);	/* %{p} in redirect= */
	expect("192.0.2.31", "predir.test", SPF_PERMERROR);	/* unknown.ok.test has no record */
}

static void test_include_redirect(void **state)
{
	(void)state;
	NEED_DNS();
	expect("192.0.2.5", "incl.test", SPF_PASS);
	expect("198.51.100.1", "incl.test", SPF_FAIL);
	expect("192.0.2.5", "inclnone.test", SPF_PERMERROR);
	expect("192.0.2.5", "inclfail.test", SPF_NEUTRAL);	/* softfail inside include: no match */
	expect("192.0.2.5", "redir.test", SPF_PASS);
	expect("198.51.100.1", "redir.test", SPF_FAIL);
	expect("198.51.100.1", "redirall.test", SPF_NEUTRAL);	/* redirect ignored with all */
	expect("192.0.2.5", "redirnone.test", SPF_PERMERROR);
}

static void test_limits(void **state)
{
	(void)state;
	NEED_DNS();
	struct spf_answer a;
	assert_int_equal(check_full("192.0.2.5", "x@loop.test", "h", false, &a), SPF_PERMERROR);
	assert_non_null(strstr(a.reason, "10 DNS"));
	spf_answer_clear(&a);
	assert_int_equal(check_full("192.0.2.5", "x@many.test", "h", false, &a), SPF_PERMERROR);
	spf_answer_clear(&a);
	/* exactly 10 DNS mechanisms is allowed; the 11th, even a redirect, is a permerror */
	expect("192.0.2.5", "ten.test", SPF_FAIL);
	expect("10.0.0.1", "ten.test", SPF_PASS);
	expect("192.0.2.5", "redir10.test", SPF_PASS);
	expect("192.0.2.5", "redir11.test", SPF_PERMERROR);
	/* more than 10 MX names for one mx mechanism: permerror (section 4.6.4) */
	assert_int_equal(check_full("10.0.0.1", "x@mx11.test", "h", false, &a), SPF_PERMERROR);
	spf_answer_clear(&a);
	/* NODATA counts as a void lookup as well as NXDOMAIN */
	expect("192.0.2.5", "voidmix.test", SPF_PERMERROR);
	expect("192.0.2.5", "void2.test", SPF_FAIL);
	assert_int_equal(check_full("192.0.2.5", "x@void3.test", "h", false, &a), SPF_PERMERROR);
	assert_non_null(strstr(a.reason, "void"));
	spf_answer_clear(&a);
}

static void test_exp_and_identities(void **state)
{
	(void)state;
	NEED_DNS();
	struct spf_answer a;
	assert_int_equal(check_full("192.0.2.5", "x@exp.test", "h", false, &a), SPF_FAIL);
	assert_string_equal(a.explanation, "192.0.2.5 is not one of exp.test's designated mail servers.");
	spf_answer_clear(&a);
	assert_int_equal(check_full("198.51.100.1", "x@pass.test", "h", false, &a), SPF_FAIL);
	assert_non_null(a.explanation);
	assert_non_null(strstr(a.reason, "-all"));
	spf_answer_clear(&a);
	/* HELO identity */
	assert_int_equal(check_full("192.0.2.50", "x@pass.test", "helo.test", true, &a), SPF_PASS);
	assert_string_equal(a.sender, "postmaster@helo.test");
	assert_string_equal(a.domain, "helo.test");
	spf_answer_clear(&a);
	/* the null sender uses the HELO name */
	assert_int_equal(check_full("192.0.2.51", "", "helo.test", false, &a), SPF_FAIL);
	assert_string_equal(a.domain, "helo.test");
	spf_answer_clear(&a);
	assert_int_equal(check_full("not-an-ip", "x@pass.test", "h", false, &a), SPF_PERMERROR);
	spf_answer_clear(&a);

	struct spf_request req = { "192.0.2.5", "x@pass.test", "mx.\"client\"", "rx.example.net", false, 0 };
	struct buf h = BUF_INIT(2000);
	struct dns_options opt = { servers, 3000, 1 };
	spf_check_blocking(&opt, &req, &a);
	assert_true(spf_received_header(&a, &req, &h));
	assert_non_null(strstr(h.data, "Received-SPF: pass (rx.example.net: mechanism ip4:192.0.2.0/24 matched"));
	assert_non_null(strstr(h.data, "client-ip=192.0.2.5; envelope-from=x@pass.test; helo=\"mx.\\\"client\\\"\";"));
	assert_non_null(strstr(h.data, "identity=mailfrom;\r\n"));
	spf_answer_clear(&a);
	buf_free(&h);
}

/* ---- RFC 7208 appendix A: its DNS data, and each example record published at example.com in turn ---- */
static const char *const appendix_local[] = {
	"--local=/example.com/", "--local=/example.org/", "--local=/example.net/", "--local=/2.0.192.in-addr.arpa/",
	"--local=/10.in-addr.arpa/", "--local=/168.192.in-addr.arpa/", NULL
};
static const char *const appendix_zone[] = {
	/* host-record publishes the PTR too, as the appendix lists it */
	"--mx-host=example.com,mail-a.example.com,10",
	"--mx-host=example.com,mail-b.example.com,20",
	"--host-record=example.com,192.0.2.10",
	"--host-record=example.com,192.0.2.11",
	"--host-record=amy.example.com,192.0.2.65",
	"--host-record=bob.example.com,192.0.2.66",
	"--host-record=mail-a.example.com,192.0.2.129",
	"--host-record=mail-b.example.com,192.0.2.130",
	"--cname=www.example.com,example.com",
	"--mx-host=example.org,mail-c.example.org,10",
	"--host-record=mail-c.example.org,192.0.2.140",
	"--ptr-record=4.0.0.10.in-addr.arpa,bob.example.com",
	/* A.2: example.org includes example.com and example.net (records chosen here: the appendix names none) */
	"--txt-record=example.org,v=spf1 include:example.com include:example.net -all",
	"--txt-record=la.example.org,v=spf1 redirect=example.org",
	"--txt-record=example.net,v=spf1 ip4:198.51.100.0/28 -all",
	/* A.3 */
	"--address=/mary.mobile-users._spf.example.com/127.0.0.2",
	"--address=/fred.mobile-users._spf.example.com/127.0.0.2",
	"--address=/15.15.168.192.joel.remote-users._spf.example.com/127.0.0.2",
	"--address=/16.15.168.192.joel.remote-users._spf.example.com/127.0.0.2",
	"--txt-record=mobile-users._spf.example.com,v=spf1 exists:%{l1r+}.%{d}",
	"--txt-record=remote-users._spf.example.com,v=spf1 exists:%{ir}.%{l1r+}.%{d}",
	/* A.4 */
	"--txt-record=ip4._spf.example.com,v=spf1 -ip4:192.0.2.0/24 +all",
	"--txt-record=ptr._spf.example.com,v=spf1 -ptr:example.com +all",
	NULL
};

struct appendix_case {
	const char *ip, *sender;
	enum spf_result want;
};

/* Publish record at example.com and check every case against it. */
static void appendix(const char *record, const struct appendix_case *c)
{
	char txt[300], srv[64], log[64];
	pid_t pid;
	snprintf(txt, sizeof(txt), "--txt-record=example.com,%s", record);
	const char *const extra[] = { txt, NULL };
	if (dnsmasq_run(appendix_local, appendix_zone, extra, &pid, srv, sizeof(srv), log, sizeof(log)) < 0 ||
	    pid < 0)
		fail_msg("dnsmasq did not start for %s", record);
	for (; c->ip; c++) {
		struct dns_options opt = { srv, 3000, 1 };
		struct spf_request req = { c->ip, c->sender, "helo.example", "rx.example.net", false, 1700000000 };
		struct spf_answer a;
		spf_check_blocking(&opt, &req, &a);
		if (a.result != c->want) {
			dnsmasq_stop(&pid, log);
			fail_msg("\"%s\": %s from %s: %s (%s), expected %s", record, c->sender, c->ip,
			         spf_result_str(a.result), a.reason, spf_result_str(c->want));
		}
		spf_answer_clear(&a);
	}
	dnsmasq_stop(&pid, log);
}

#define U "user@example.com"
static void test_rfc7208_appendix(void **state)
{
	(void)state;
	NEED_DNS();
	/* A.1 */
	appendix("v=spf1 +all", (const struct appendix_case[]){
		{ "192.0.2.10", U, SPF_PASS }, { "203.0.113.9", U, SPF_PASS }, { NULL, NULL, 0 } });
	appendix("v=spf1 a -all", (const struct appendix_case[]){
		{ "192.0.2.10", U, SPF_PASS }, { "192.0.2.11", U, SPF_PASS }, { "192.0.2.65", U, SPF_FAIL },
		{ NULL, NULL, 0 } });
	appendix("v=spf1 a:example.org -all", (const struct appendix_case[]){
		{ "192.0.2.10", U, SPF_FAIL }, { "192.0.2.140", U, SPF_FAIL }, { NULL, NULL, 0 } });
	appendix("v=spf1 mx -all", (const struct appendix_case[]){
		{ "192.0.2.129", U, SPF_PASS }, { "192.0.2.130", U, SPF_PASS }, { "192.0.2.10", U, SPF_FAIL },
		{ NULL, NULL, 0 } });
	appendix("v=spf1 mx:example.org -all", (const struct appendix_case[]){
		{ "192.0.2.140", U, SPF_PASS }, { "192.0.2.129", U, SPF_FAIL }, { NULL, NULL, 0 } });
	appendix("v=spf1 mx mx:example.org -all", (const struct appendix_case[]){
		{ "192.0.2.129", U, SPF_PASS }, { "192.0.2.130", U, SPF_PASS }, { "192.0.2.140", U, SPF_PASS },
		{ "192.0.2.141", U, SPF_FAIL }, { NULL, NULL, 0 } });
	appendix("v=spf1 mx/30 mx:example.org/30 -all", (const struct appendix_case[]){
		{ "192.0.2.131", U, SPF_PASS }, { "192.0.2.128", U, SPF_PASS }, { "192.0.2.143", U, SPF_PASS },
		{ "192.0.2.132", U, SPF_FAIL }, { "192.0.2.144", U, SPF_FAIL }, { NULL, NULL, 0 } });
	appendix("v=spf1 ptr -all", (const struct appendix_case[]){
		{ "192.0.2.65", U, SPF_PASS }, { "192.0.2.10", U, SPF_PASS }, { "192.0.2.129", U, SPF_PASS },
		{ "192.0.2.140", U, SPF_FAIL },	/* mail-c.example.org */
		{ "10.0.0.4", U, SPF_FAIL },	/* bob.example.com does not resolve back to it */
		{ NULL, NULL, 0 } });
	appendix("v=spf1 ip4:192.0.2.128/28 -all", (const struct appendix_case[]){
		{ "192.0.2.129", U, SPF_PASS }, { "192.0.2.143", U, SPF_PASS }, { "192.0.2.65", U, SPF_FAIL },
		{ NULL, NULL, 0 } });
	/* A.2: example.org includes example.com (here "mx -all") and example.net; la.example.org redirects */
	appendix("v=spf1 mx -all", (const struct appendix_case[]){
		{ "192.0.2.129", "u@example.org", SPF_PASS }, { "198.51.100.3", "u@example.org", SPF_PASS },
		{ "192.0.2.10", "u@example.org", SPF_FAIL }, { "192.0.2.130", "u@la.example.org", SPF_PASS },
		{ "198.51.100.99", "u@la.example.org", SPF_FAIL }, { NULL, NULL, 0 } });
	/* A.3: DNSBL-style per-user and per-address lists through exists: and macros */
	appendix("v=spf1 mx include:mobile-users._spf.%{d} include:remote-users._spf.%{d} -all",
	         (const struct appendix_case[]){
		{ "203.0.113.1", "mary@example.com", SPF_PASS }, { "203.0.113.1", "fred@example.com", SPF_PASS },
		{ "192.168.15.15", "joel@example.com", SPF_PASS }, { "192.168.15.16", "joel@example.com", SPF_PASS },
		{ "192.168.15.17", "joel@example.com", SPF_FAIL }, { "192.0.2.129", "bob@example.com", SPF_PASS },
		{ "203.0.113.1", "bob@example.com", SPF_FAIL }, { NULL, NULL, 0 } });
	/* A.4: both requirements, the address in 192.0.2.0/24 and a PTR name in example.com */
	appendix("v=spf1 -include:ip4._spf.%{d} -include:ptr._spf.%{d} +all", (const struct appendix_case[]){
		{ "192.0.2.65", U, SPF_PASS }, { "192.0.2.140", U, SPF_FAIL }, { "10.0.0.4", U, SPF_FAIL },
		{ NULL, NULL, 0 } });
}
#undef U

struct async_state {
	int calls;
	enum spf_result result;
	struct event_base *base;
	struct spf_check *check;
};

static void async_cb(const struct spf_answer *ans, void *arg)
{
	struct async_state *s = arg;
	s->calls++;
	s->result = ans->result;
	spf_check_cancel(&s->check);	/* freeing from inside the callback is allowed */
	event_base_loopbreak(s->base);
}

static void test_async(void **state)
{
	(void)state;
	NEED_DNS();
	struct event_base *base = event_base_new();
	struct dns_options opt = { servers, 3000, 1 };
	struct buf err = BUF_INIT(200);
	struct dns *d = dns_new(base, &opt, &err);
	assert_non_null(d);
	struct spf_request req = { "198.51.100.1", "u@mx.test", "h", "rx", false, 0 };
	struct async_state s = { 0, SPF_NONE, base, NULL };
	s.check = spf_check_start(d, base, &req, async_cb, &s);
	assert_int_equal(s.calls, 0);	/* never from inside start */
	event_base_dispatch(base);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.result, SPF_PASS);
	assert_null(s.check);
	/* cancelled before any answer: no callback, nothing leaks */
	s.check = spf_check_start(d, base, &req, async_cb, &s);
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	spf_check_cancel(&s.check);
	assert_null(s.check);
	assert_int_equal(s.calls, 1);
	dns_free(&d);
	event_base_free(base);
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_syntax),
		cmocka_unit_test(test_macros),
		cmocka_unit_test(test_basic_results),
		cmocka_unit_test(test_mechanisms),
		cmocka_unit_test(test_include_redirect),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_exp_and_identities),
		cmocka_unit_test(test_async),
		cmocka_unit_test(test_rfc7208_appendix),
	};
	return cmocka_run_group_tests(tests, start_dnsmasq, stop_dnsmasq);
}
