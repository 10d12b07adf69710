/* psl + dmarc: Public Suffix List rules (ordinary, wildcard, exception, implicit "*"), the installed list,
 * DMARC record parsing (strict first tag, duplicates, bad values, p= missing with rua=), relaxed/strict
 * alignment, sp= for subdomains, pct sampling, and choosing one record among TXT answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "dmarc.h"
#include "dns.h"
#include "psl.h"

static const char list[] =
	"// comment line\n"
	"com\n"
	"uk\n"
	"co.uk\n"
	"\n"
	"*.ck\n"
	"!www.ck\n"
	"jp\n"
	"*.kawasaki.jp\n"
	"!city.kawasaki.jp\n"
	"  github.io  trailing words ignored\r\n"
	"// ===BEGIN PRIVATE DOMAINS===\n";

static void test_psl_rules(void **state)
{
	(void)state;
	struct psl *p = psl_parse(list, strlen(list));
	assert_int_equal(psl_count(p), 9);
	assert_string_equal(psl_public_suffix(p, "example.com"), "com");
	assert_string_equal(psl_org_domain(p, "example.com"), "example.com");
	assert_string_equal(psl_org_domain(p, "a.b.Example.COM"), "Example.COM");
	assert_null(psl_org_domain(p, "com"));
	assert_string_equal(psl_org_domain(p, "www.bbc.co.uk"), "bbc.co.uk");
	assert_null(psl_org_domain(p, "co.uk"));
	/* wildcard: every name under ck is a suffix... */
	assert_string_equal(psl_public_suffix(p, "foo.ck"), "foo.ck");
	assert_null(psl_org_domain(p, "foo.ck"));
	assert_string_equal(psl_org_domain(p, "a.b.foo.ck"), "b.foo.ck");
	/* ...except www.ck */
	assert_string_equal(psl_public_suffix(p, "www.ck"), "ck");
	assert_string_equal(psl_org_domain(p, "www.ck"), "www.ck");
	assert_string_equal(psl_org_domain(p, "x.www.ck"), "www.ck");
	assert_string_equal(psl_org_domain(p, "x.y.kawasaki.jp"), "x.y.kawasaki.jp");
	assert_string_equal(psl_org_domain(p, "a.city.kawasaki.jp"), "city.kawasaki.jp");
	assert_string_equal(psl_org_domain(p, "user.github.io"), "user.github.io");
	/* unlisted TLD: the implicit "*" rule */
	assert_string_equal(psl_org_domain(p, "a.b.example.test"), "example.test");
	assert_null(psl_org_domain(p, "test"));
	assert_null(psl_org_domain(p, ""));
	assert_null(psl_org_domain(p, "a..com"));
	assert_null(psl_org_domain(p, ".com"));
	psl_free(&p);
	assert_null(p);
}

/* Unicode rules match A-label names (the only form DNS and DMARC see). */
static void test_psl_idn(void **state)
{
	(void)state;
	static const char idn[] = "cn\n\xe5\x85\xac\xe5\x8f\xb8.cn\n"	/* 公司.cn */
	                          "\xe9\xa6\x99\xe6\xb8\xaf\n"		/* 香港 */
	                          "*.\xe5\x85\xac\xe5\x8f\xb8.\xe9\xa6\x99\xe6\xb8\xaf\n"	/* *.公司.香港 */
	                          "!ok.\xe5\x85\xac\xe5\x8f\xb8.\xe9\xa6\x99\xe6\xb8\xaf\n"
	                          "\xff\xfe.bad\n";				/* not convertible: kept, harmless */
	struct psl *p = psl_parse(idn, strlen(idn));
	assert_int_equal(psl_count(p), 6);
	assert_string_equal(psl_public_suffix(p, "shop.xn--55qx5d.cn"), "xn--55qx5d.cn");
	assert_string_equal(psl_org_domain(p, "mail.shop.XN--55QX5D.cn"), "shop.XN--55QX5D.cn");
	assert_null(psl_org_domain(p, "xn--55qx5d.cn"));
	assert_string_equal(psl_org_domain(p, "a.example.xn--j6w193g"), "example.xn--j6w193g");
	assert_null(psl_org_domain(p, "any.xn--55qx5d.xn--j6w193g"));
	assert_string_equal(psl_org_domain(p, "a.b.any.xn--55qx5d.xn--j6w193g"), "b.any.xn--55qx5d.xn--j6w193g");
	assert_string_equal(psl_org_domain(p, "x.ok.xn--55qx5d.xn--j6w193g"), "ok.xn--55qx5d.xn--j6w193g");
	psl_free(&p);
}

static void test_psl_installed(void **state)
{
	(void)state;
	struct psl *p = psl_load(PSL_DEFAULT_FILE);
	if (!p)
		skip();
	assert_true(psl_count(p) > 5000);
	/* 公司.cn is listed in Unicode */
	assert_string_equal(psl_org_domain(p, "mail.shop.xn--55qx5d.cn"), "shop.xn--55qx5d.cn");
	assert_string_equal(psl_org_domain(p, "mail.example.co.uk"), "example.co.uk");
	assert_string_equal(psl_org_domain(p, "foo.bar.example.com"), "example.com");
	psl_free(&p);
	assert_null(psl_load("/nonexistent/psl.dat"));
}

static void parse_ok(const char *text, struct dmarc_record *r)
{
	struct buf err = BUF_INIT(256);
	bool ok = dmarc_record_parse(text, strlen(text), r, &err);
	if (!ok)
		fail_msg("%s: %s", text, buf_cstr(&err));
	buf_free(&err);
}

static void parse_bad(const char *text)
{
	struct buf err = BUF_INIT(256);
	struct dmarc_record r;
	if (dmarc_record_parse(text, strlen(text), &r, &err))
		fail_msg("accepted: %s", text);
	assert_true(err.len > 0);
	buf_free(&err);
}

static void test_record_parse(void **state)
{
	(void)state;
	struct dmarc_record r;
	parse_ok("v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=r; pct=20; rua=mailto:a@example.com; fo=1;", &r);
	assert_int_equal(r.p, DMARC_POLICY_REJECT);
	assert_int_equal(r.sp, DMARC_POLICY_QUARANTINE);
	assert_true(r.adkim_strict);
	assert_false(r.aspf_strict);
	assert_int_equal(r.pct, 20);
	assert_string_equal(r.rua, "mailto:a@example.com");
	assert_null(r.ruf);
	assert_string_equal(r.fo, "1");
	dmarc_record_clear(&r);

	parse_ok("v=DMARC1;p=none", &r);
	assert_int_equal(r.p, DMARC_POLICY_NONE);
	assert_int_equal(r.sp, DMARC_POLICY_UNSET);
	assert_int_equal(r.pct, 100);
	assert_false(r.adkim_strict);
	assert_string_equal(r.fo, "0");
	dmarc_record_clear(&r);

	parse_ok("v=DMARC1 ; p = quarantine ; unknown=whatever", &r);
	assert_int_equal(r.p, DMARC_POLICY_QUARANTINE);
	dmarc_record_clear(&r);

	/* p= missing but rua= given: p=none (section 6.6.3) */
	parse_ok("v=DMARC1; rua=mailto:r@example.com", &r);
	assert_int_equal(r.p, DMARC_POLICY_NONE);
	dmarc_record_clear(&r);

	parse_bad("p=reject; v=DMARC1");
	parse_bad("v=DMARC2; p=reject");
	parse_bad("v=dmarc1; p=reject");
	parse_bad("v=DMARC1");
	parse_bad("v=DMARC1; p=bogus");
	parse_bad("v=DMARC1; p=reject; p=none");
	parse_bad("v=DMARC1; p=reject; fo=; fo=1");	/* found by fuzz_dmarc: leaked the first fo= */
	parse_bad("v=DMARC1; p=reject; rua=a; rua=b");
	parse_bad("v=DMARC1; p=reject; pct=101");
	parse_bad("v=DMARC1; p=reject; pct=-1");
	parse_bad("v=DMARC1; p=reject; adkim=x");
	parse_bad("v=DMARC1; p=reject; garbage");
	parse_bad("");
	parse_bad(";v=DMARC1; p=reject");
	char nul[] = "v=DMARC1; p=reject\0x";
	struct buf err = BUF_INIT(100);
	assert_false(dmarc_record_parse(nul, sizeof(nul) - 1, &r, &err));
	buf_free(&err);
}

static void test_alignment(void **state)
{
	(void)state;
	struct psl *p = psl_parse(list, strlen(list));
	assert_true(dmarc_aligned(p, "example.com", "EXAMPLE.com", true));
	assert_true(dmarc_aligned(p, "example.com", "example.com.", true));
	assert_false(dmarc_aligned(p, "example.com", "mail.example.com", true));
	assert_true(dmarc_aligned(p, "example.com", "mail.example.com", false));
	assert_true(dmarc_aligned(p, "a.example.co.uk", "b.example.co.uk", false));
	assert_false(dmarc_aligned(p, "example.co.uk", "other.co.uk", false));
	assert_false(dmarc_aligned(p, "a.foo.ck", "b.foo.ck", false));
	assert_true(dmarc_aligned(p, "x.a.foo.ck", "a.foo.ck", false));
	assert_false(dmarc_aligned(p, "foo.ck", "bar.ck", false));
	assert_false(dmarc_aligned(p, "example.com", "", false));
	psl_free(&p);
}

static void test_evaluate(void **state)
{
	(void)state;
	struct psl *p = psl_parse(list, strlen(list));
	struct dmarc_record r;
	struct dmarc_verdict v;
	const char *dk[] = { "other.org", "mail.example.com" };
	struct dmarc_input in = { "news.example.com", false, "bounce.example.com", dk, 2 };

	/* no record */
	dmarc_evaluate(p, &in, NULL, NULL, 0, &v);
	assert_int_equal(v.result, DMARC_NONE);

	/* relaxed DKIM alignment passes */
	parse_ok("v=DMARC1; p=reject", &r);
	dmarc_evaluate(p, &in, &r, "news.example.com", 0, &v);
	assert_int_equal(v.result, DMARC_PASS);
	assert_true(v.dkim_aligned);
	assert_false(v.spf_aligned);
	assert_int_equal(v.policy, DMARC_POLICY_NONE);
	dmarc_record_clear(&r);

	/* strict DKIM does not; SPF passed but strict SPF also differs */
	parse_ok("v=DMARC1; p=reject; adkim=s; aspf=s", &r);
	in.spf_pass = true;
	dmarc_evaluate(p, &in, &r, "news.example.com", 0, &v);
	assert_int_equal(v.result, DMARC_FAIL);
	assert_int_equal(v.policy, DMARC_POLICY_REJECT);
	assert_int_equal(v.published, DMARC_POLICY_REJECT);
	dmarc_record_clear(&r);

	/* relaxed SPF passes */
	parse_ok("v=DMARC1; p=reject; adkim=s", &r);
	dmarc_evaluate(p, &in, &r, "news.example.com", 0, &v);
	assert_int_equal(v.result, DMARC_PASS);
	assert_true(v.spf_aligned);
	dmarc_record_clear(&r);

	/* SPF aligned but not pass: fail; record from the org domain: sp= applies; pct sampling */
	in.spf_pass = false;
	in.n_dkim = 1;
	parse_ok("v=DMARC1; p=reject; sp=quarantine; pct=50", &r);
	dmarc_evaluate(p, &in, &r, "example.com", 10, &v);
	assert_int_equal(v.result, DMARC_FAIL);
	assert_int_equal(v.published, DMARC_POLICY_QUARANTINE);
	assert_int_equal(v.policy, DMARC_POLICY_QUARANTINE);
	assert_string_equal(v.record_domain, "example.com");
	dmarc_evaluate(p, &in, &r, "example.com", 60, &v);
	assert_int_equal(v.policy, DMARC_POLICY_NONE);
	dmarc_evaluate(p, &in, &r, "news.example.com", 60, &v);
	assert_int_equal(v.published, DMARC_POLICY_REJECT);
	assert_int_equal(v.policy, DMARC_POLICY_QUARANTINE);	/* reject outside pct becomes quarantine */
	dmarc_record_clear(&r);
	psl_free(&p);
	assert_string_equal(dmarc_result_str(DMARC_FAIL), "fail");
	assert_string_equal(dmarc_policy_str(DMARC_POLICY_QUARANTINE), "quarantine");
}

static void test_from_txt(void **state)
{
	(void)state;
	struct dns_txt t[3] = {
		{ (char *)"v=spf1 -all", 11, 0, NULL, NULL },
		{ (char *)"v=DMARC1; p=quarantine", 22, 0, NULL, NULL },
		{ (char *)"v=DMARC1; p=reject", 18, 0, NULL, NULL },
	};
	struct dns_result res = { .type = DNS_TXT, .status = DNS_OK, .n = 2, .txt = t };
	struct dmarc_record r;
	assert_int_equal(dmarc_record_from_txt(&res, &r), 1);
	assert_int_equal(r.p, DMARC_POLICY_QUARANTINE);
	dmarc_record_clear(&r);
	res.n = 3;
	assert_int_equal(dmarc_record_from_txt(&res, &r), -1);
	res.n = 1;
	assert_int_equal(dmarc_record_from_txt(&res, &r), 0);
	res.status = DNS_NXDOMAIN;
	assert_int_equal(dmarc_record_from_txt(&res, &r), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_psl_rules),
		cmocka_unit_test(test_psl_idn),
		cmocka_unit_test(test_psl_installed),
		cmocka_unit_test(test_record_parse),
		cmocka_unit_test(test_alignment),
		cmocka_unit_test(test_evaluate),
		cmocka_unit_test(test_from_txt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
