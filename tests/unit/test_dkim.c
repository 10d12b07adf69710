/* dkim: tag-list strictness, the RFC 6376 section 3.4.5 canonicalisation example (header and body, simple and
 * relaxed, streamed a byte at a time), known body hashes, the RFC 8463 Ed25519 test vector, RSA and Ed25519
 * sign->verify round trips, tampered header/body, added From, l= with appended content, expired x=, revoked
 * and missing keys, temporary key failures, PEM and DNS record output. Keys come from a fixed table, not DNS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "dkim.h"
#include "dkim_int.h"
#include "dkim_signer.h"
#include "dns.h"
#include "fsutil.h"
#include "table.h"

/* ---- a fake key fetch: name -> record, or a DNS status ---- */
struct fake_key {
	const char *name;
	const char *record;	/* NULL: status */
	int status;
};
static struct fake_key keys[8];
static size_t nkeys;
static int fetches;

static int fake_fetch(const char *name, struct buf *rec, void *arg)
{
	(void)arg;
	fetches++;
	for (size_t i = 0; i < nkeys; i++) {
		if (strcmp(keys[i].name, name) == 0) {
			if (!keys[i].record)
				return keys[i].status;
			buf_puts(rec, keys[i].record);
			return DNS_OK;
		}
	}
	return DNS_NXDOMAIN;
}

static void set_key(const char *name, const char *record, int status)
{
	for (size_t i = 0; i < nkeys; i++) {
		if (strcmp(keys[i].name, name) == 0) {
			keys[i].record = record;
			keys[i].status = status;
			return;
		}
	}
	keys[nkeys++] = (struct fake_key){ name, record, status };
}

static void test_taglist(void **state)
{
	(void)state;
	struct dkim_taglist tl;
	struct buf err = BUF_INIT(200);
	const char ok1[] = " v=1; a = rsa-sha256 ;\r\n\tb=abc\r\n def ; x_1=;";
	assert_true(dkim_taglist_parse(ok1, strlen(ok1), &tl, &err));
	assert_int_equal(tl.n, 4);
	const struct dkim_tag *b = dkim_taglist_get(&tl, "b");
	assert_non_null(b);
	assert_int_equal(b->vlen, strlen("abc\r\n def"));
	assert_memory_equal(b->value, "abc\r\n def", b->vlen);
	assert_int_equal(dkim_taglist_get(&tl, "x_1")->vlen, 0);
	assert_memory_equal(dkim_taglist_get(&tl, "a")->value, "rsa-sha256", 10);
	assert_null(dkim_taglist_get(&tl, "c"));
	static const char *const bad[] = {
		"", ";", "v=1;;a=2", "v=1; v=2", "1v=1", "v", "v=1; a", "v=a;b", "v=\x01", "v=\xc3\xa9",
		"v=1;\r\na=2", "=1", "v=1; _a=2",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_reset(&err);
		if (dkim_taglist_parse(bad[i], strlen(bad[i]), &tl, &err))
			fail_msg("accepted %zu: %s", i, bad[i]);
		assert_true(err.len > 0);
	}
	buf_free(&err);
}

/* RFC 6376 section 3.4.5 */
static const char ex_hdr1[] = "A: X\r\n", ex_hdr2[] = "B : Y\t\r\n\tZ  \r\n";
static const char ex_body[] = " C \r\nD \t E\r\n\r\n\r\n";

static void test_canon_header(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(1000);
	assert_true(dkim_canon_header(DKIM_CANON_RELAXED, ex_hdr1, strlen(ex_hdr1), true, &b));
	assert_true(dkim_canon_header(DKIM_CANON_RELAXED, ex_hdr2, strlen(ex_hdr2), true, &b));
	assert_string_equal(buf_cstr(&b), "a:X\r\nb:Y Z\r\n");
	buf_reset(&b);
	assert_true(dkim_canon_header(DKIM_CANON_SIMPLE, ex_hdr1, strlen(ex_hdr1), true, &b));
	assert_true(dkim_canon_header(DKIM_CANON_SIMPLE, ex_hdr2, strlen(ex_hdr2), true, &b));
	assert_string_equal(buf_cstr(&b), "A: X\r\nB : Y\t\r\n\tZ  \r\n");
	/* bare LF counts as CRLF; no final CRLF when asked */
	buf_reset(&b);
	assert_true(dkim_canon_header(DKIM_CANON_SIMPLE, "S: a\n b\n", 8, false, &b));
	assert_string_equal(buf_cstr(&b), "S: a\r\n b");
	buf_reset(&b);
	assert_true(dkim_canon_header(DKIM_CANON_RELAXED, "SUBJECT:   \n", 12, true, &b));
	assert_string_equal(buf_cstr(&b), "subject:\r\n");
	buf_free(&b);
}

static void body_hash(enum dkim_canon c, const char *body, size_t len, bool bytewise, uint64_t limit,
                      unsigned char h[32], uint64_t *total)
{
	struct dkim_body *b = dkim_body_new(c, limit);
	if (bytewise)
		for (size_t i = 0; i < len; i++)
			dkim_body_update(b, body + i, 1);
	else
		dkim_body_update(b, body, len);
	dkim_body_final(b, h, total);
	dkim_body_free(&b);
	assert_null(b);
}

static void sha256_of(const char *s, unsigned char h[32])
{
	struct dkim_body *b = dkim_body_new(DKIM_CANON_SIMPLE, UINT64_MAX);
	/* simple canonicalisation of text already ending in one CRLF and without trailing empty lines is
	 * the text itself */
	dkim_body_update(b, s, strlen(s));
	dkim_body_final(b, h, NULL);
	dkim_body_free(&b);
}

static void expect_b64(const unsigned char h[32], const char *b64)
{
	struct buf b = BUF_INIT(100);
	assert_true(dkim_b64_encode(h, 32, &b));
	assert_string_equal(buf_cstr(&b), b64);
	buf_free(&b);
}

static void test_canon_body(void **state)
{
	(void)state;
	unsigned char h[32], want[32];
	uint64_t total;
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		body_hash(DKIM_CANON_RELAXED, ex_body, strlen(ex_body), bytewise, UINT64_MAX, h, &total);
		sha256_of(" C\r\nD E\r\n", want);
		assert_memory_equal(h, want, 32);
		assert_int_equal(total, strlen(" C\r\nD E\r\n"));
		body_hash(DKIM_CANON_SIMPLE, ex_body, strlen(ex_body), bytewise, UINT64_MAX, h, &total);
		sha256_of(" C \r\nD \t E\r\n", want);
		assert_memory_equal(h, want, 32);
		/* bare LF line ends count as CRLF */
		body_hash(DKIM_CANON_SIMPLE, " C \nD \t E\n\n\n", 12, bytewise, UINT64_MAX, h, &total);
		assert_memory_equal(h, want, 32);
	}
	/* the RFC 6376 example body and the empty bodies: well-known hashes */
	const char joe[] = "Hi.\r\n\r\nWe lost the game. Are you hungry yet?\r\n\r\nJoe.\r\n";
	body_hash(DKIM_CANON_SIMPLE, joe, strlen(joe), false, UINT64_MAX, h, &total);
	expect_b64(h, "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
	body_hash(DKIM_CANON_SIMPLE, "", 0, false, UINT64_MAX, h, &total);
	expect_b64(h, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
	assert_int_equal(total, 2);
	body_hash(DKIM_CANON_SIMPLE, "\r\n\r\n", 4, false, UINT64_MAX, h, &total);
	expect_b64(h, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
	body_hash(DKIM_CANON_RELAXED, " \r\n\t\r\n", 6, false, UINT64_MAX, h, &total);
	expect_b64(h, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	assert_int_equal(total, 0);
	/* a last line without a line end gets one; a lone CR is content */
	body_hash(DKIM_CANON_RELAXED, "a  b \r c", 8, true, UINT64_MAX, h, &total);
	sha256_of("a b \r c\r\n", want);
	assert_memory_equal(h, want, 32);
	/* l=: only the first bytes are hashed, all are counted */
	body_hash(DKIM_CANON_SIMPLE, "abc\r\ndef\r\n", 10, true, 5, h, &total);
	assert_int_equal(total, 10);
	struct dkim_body *b5 = dkim_body_new(DKIM_CANON_SIMPLE, UINT64_MAX);
	dkim_body_free(&b5);
}

static void test_b64(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(100);
	assert_true(dkim_b64_decode("aGVs\r\n bG8=", 11, &b));
	assert_string_equal(buf_cstr(&b), "hello");
	buf_reset(&b);
	assert_false(dkim_b64_decode("aGVsbG8", 7, &b));
	assert_false(dkim_b64_decode("aG=Vs", 5, &b));
	assert_false(dkim_b64_decode("a===", 4, &b));
	assert_false(dkim_b64_decode("aGV!", 4, &b));
	buf_free(&b);
}

/* RFC 8463 appendix A */
static const char rfc8463_msg[] =
	"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
	" d=football.example.com; i=@football.example.com;\r\n"
	" q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
	" subject : date : message-id : from : subject : date;\r\n"
	" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
	" b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
	" Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n"
	"From: Joe SixPack <joe@football.example.com>\r\n"
	"To: Suzie Q <suzie@shopping.example.net>\r\n"
	"Subject: Is dinner ready?\r\n"
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
	"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
	"\r\n"
	"Hi.\r\n"
	"\r\n"
	"We lost the game.  Are you hungry yet?\r\n"
	"\r\n"
	"Joe.\r\n";
static const char rfc8463_key[] = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
static const char rfc8463_priv[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
	"-----END PRIVATE KEY-----\n";

static struct dkim_sig_result *verify(const char *msg, size_t len, time_t now, size_t *n)
{
	struct dkim_sig_result *r = dkim_verify(msg, len, fake_fetch, NULL, now, 8, n);
	return r;
}

static void test_rfc8463(void **state)
{
	(void)state;
	size_t n;
	set_key("brisbane._domainkey.football.example.com", rfc8463_key, 0);
	struct dkim_sig_result *r = verify(rfc8463_msg, strlen(rfc8463_msg), 1528637910, &n);
	assert_int_equal(n, 1);
	if (r[0].result != DKIM_PASS)
		fail_msg("RFC 8463 vector: %s", r[0].reason);
	assert_string_equal(r[0].domain, "football.example.com");
	assert_string_equal(r[0].selector, "brisbane");
	assert_string_equal(r[0].identity, "@football.example.com");
	assert_string_equal(r[0].b_prefix, "/gCrinpc");
	assert_int_equal(r[0].alg, DKIM_ED25519_SHA256);
	dkim_results_free(&r, n);
	assert_null(r);

	/* the published private key gives the published public key */
	struct buf err = BUF_INIT(300), rec = BUF_INIT(300);
	struct dkim_key *k = dkim_key_from_pem(rfc8463_priv, strlen(rfc8463_priv), &err);
	assert_non_null(k);
	assert_int_equal(dkim_key_alg(k), DKIM_ED25519_SHA256);
	assert_true(dkim_key_dns_record(k, &rec));
	assert_string_equal(buf_cstr(&rec), rfc8463_key);
	dkim_key_free(&k);

	/* one changed body byte */
	char *m = strdup(rfc8463_msg);
	*strstr(m, "hungry") = 'H';
	r = verify(m, strlen(m), 1528637910, &n);
	assert_int_equal(r[0].result, DKIM_FAIL);
	assert_string_equal(r[0].reason, "body hash mismatch");
	dkim_results_free(&r, n);
	free(m);
	buf_free(&err);
	buf_free(&rec);
}

static char *signed_msg(const struct dkim_key *k, const char *msg, unsigned expire, time_t now)
{
	struct dkim_sign_options o = { "example.org", "sel", k, now, expire, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED };
	struct buf out = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(200);
	if (!dkim_sign(&o, msg, strlen(msg), &out, &err))
		fail_msg("sign: %s", buf_cstr(&err));
	assert_true(buf_puts(&out, msg));
	buf_free(&err);
	return buf_steal(&out, NULL);
}

static const char plain_msg[] =
	"From: Alice <alice@example.org>\r\n"
	"To: bob@example.net\r\n"
	"Subject: round  trip\r\n"
	"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
	"\r\n"
	"Hello Bob.\r\n"
	"\r\n"
	"Second   paragraph.\r\n";

static enum dkim_result verify_one(const char *msg, time_t now, const char **reason)
{
	size_t n;
	static char why[160];
	struct dkim_sig_result *r = verify(msg, strlen(msg), now, &n);
	assert_int_equal(n, 1);
	enum dkim_result res = r[0].result;
	snprintf(why, sizeof(why), "%s", r[0].reason);
	if (reason)
		*reason = why;
	dkim_results_free(&r, n);
	return res;
}

static void round_trip(enum dkim_alg alg)
{
	struct dkim_key *k = dkim_key_generate(alg);
	struct buf rec = BUF_INIT(2000), err = BUF_INIT(200), pem = BUF_INIT(8000);
	const char *why;
	time_t now = 1800000000;

	assert_true(dkim_key_dns_record(k, &rec));
	set_key("sel._domainkey.example.org", rec.data, 0);
	char *s = signed_msg(k, plain_msg, 0, now);
	assert_non_null(strstr(s, "h=from:from:subject:date:to;"));
	assert_null(strstr(s, " l="));
	assert_int_equal(verify_one(s, now, &why), DKIM_PASS);

	/* the PEM round trip gives a key that signs the same way */
	assert_true(dkim_key_pem(k, &pem));
	struct dkim_key *k2 = dkim_key_from_pem(pem.data, pem.len, &err);
	assert_non_null(k2);
	char *s2 = signed_msg(k2, plain_msg, 0, now);
	assert_int_equal(verify_one(s2, now, NULL), DKIM_PASS);
	free(s2);
	dkim_key_free(&k2);

	/* relaxed: folding and white space changes in the header and body still pass */
	struct buf t = BUF_INIT(BUF_NOLIMIT);
	buf_puts(&t, s);
	char *p = strstr(t.data, "Subject: round  trip");
	memcpy(p, "subject:round \t trip", 20);
	p = strstr(t.data, "Second   paragraph.\r\n");
	memcpy(p, "Second paragraph. \t", 19);
	assert_int_equal(verify_one(t.data, now, NULL), DKIM_PASS);

	/* a changed header fails */
	p = strstr(t.data, "round \t trip");
	p[0] = 'R';
	assert_int_equal(verify_one(t.data, now, &why), DKIM_FAIL);
	assert_string_equal(why, "signature did not verify");
	/* a changed body fails */
	buf_reset(&t);
	buf_puts(&t, s);
	strstr(t.data, "Bob.")[0] = 'R';
	assert_int_equal(verify_one(t.data, now, &why), DKIM_FAIL);
	assert_string_equal(why, "body hash mismatch");
	/* a second From added above the first breaks the oversigned From */
	buf_reset(&t);
	buf_puts(&t, "From: mallory@evil.example\r\n");
	buf_puts(&t, s);
	assert_int_equal(verify_one(t.data, now, NULL), DKIM_FAIL);
	/* ...and so does one added below the signed From */
	buf_reset(&t);
	buf_puts(&t, s);
	p = strstr(t.data, "To: bob");
	struct buf t2 = BUF_INIT(BUF_NOLIMIT);
	buf_append(&t2, t.data, (size_t)(p - t.data));
	buf_puts(&t2, "From: mallory@evil.example\r\n");
	buf_puts(&t2, p);
	assert_int_equal(verify_one(t2.data, now, NULL), DKIM_FAIL);
	buf_free(&t2);
	/* an unsigned header added anywhere is fine */
	buf_reset(&t);
	buf_puts(&t, "Received: from somewhere\r\n");
	buf_puts(&t, s);
	assert_int_equal(verify_one(t.data, now, NULL), DKIM_PASS);

	/* revoked key (empty p=), missing key, temporary failure, key type mismatch */
	set_key("sel._domainkey.example.org", "v=DKIM1; p=", 0);
	assert_int_equal(verify_one(s, now, &why), DKIM_PERMERROR);
	assert_string_equal(why, "key revoked");
	set_key("sel._domainkey.example.org", NULL, DNS_NXDOMAIN);
	assert_int_equal(verify_one(s, now, &why), DKIM_PERMERROR);
	set_key("sel._domainkey.example.org", NULL, DNS_TEMPFAIL);
	assert_int_equal(verify_one(s, now, &why), DKIM_TEMPERROR);
	set_key("sel._domainkey.example.org", alg == DKIM_RSA_SHA256 ? rfc8463_key : "v=DKIM1; p=AAAA", 0);
	assert_int_equal(verify_one(s, now, &why), DKIM_PERMERROR);
	set_key("sel._domainkey.example.org", rec.data, 0);
	assert_int_equal(verify_one(s, now, NULL), DKIM_PASS);

	/* x=: good before, expired after */
	char *e = signed_msg(k, plain_msg, 3600, now);
	assert_non_null(strstr(e, " x="));
	assert_int_equal(verify_one(e, now + 3000, NULL), DKIM_PASS);
	assert_int_equal(verify_one(e, now + 4000, &why), DKIM_PERMERROR);
	assert_string_equal(why, "signature expired");
	free(e);

	buf_free(&t);
	free(s);
	buf_free(&rec);
	buf_free(&err);
	buf_free(&pem);
	dkim_key_free(&k);
}

static void test_round_trip_rsa(void **state)
{
	(void)state;
	round_trip(DKIM_RSA_SHA256);
}

static void test_round_trip_ed25519(void **state)
{
	(void)state;
	round_trip(DKIM_ED25519_SHA256);
}

/* A message in two pieces signs exactly like the whole, wherever the body is cut (even mid-line, mid-CRLF). */
static void test_sign_parts(void **state)
{
	(void)state;
	struct dkim_key *k = dkim_key_generate(DKIM_ED25519_SHA256);	/* deterministic signatures */
	struct dkim_sign_options o = { "example.org", "sel", k, 1700000000, 0, DKIM_CANON_RELAXED,
		                       DKIM_CANON_RELAXED };
	struct buf whole = BUF_INIT(BUF_NOLIMIT), part = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(200);
	size_t len = strlen(plain_msg), hlen = (size_t)(strstr(plain_msg, "\r\n\r\n") - plain_msg) + 4;
	assert_true(dkim_sign(&o, plain_msg, len, &whole, &err));
	for (size_t cut = hlen; cut <= len; cut++) {
		buf_reset(&part);
		assert_true(dkim_sign_parts(&o, plain_msg, cut, plain_msg + cut, len - cut, &part, &err));
		assert_int_equal(part.len, whole.len);
		assert_memory_equal(part.data, whole.data, whole.len);
	}
	dkim_key_free(&k);
	buf_free(&whole);
	buf_free(&part);
	buf_free(&err);
}

/* A signature with l= made by hand: sign a message whose signature field we then re-create with l=. Since the
 * signer never writes l=, use simple/simple with the RFC 8463 key and verify limits through body hashes. */
static void test_length_limit(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(300);
	struct dkim_key *k = dkim_key_from_pem(rfc8463_priv, strlen(rfc8463_priv), &err);
	assert_non_null(k);
	set_key("brisbane._domainkey.football.example.com", rfc8463_key, 0);
	/* build a signature with l= through the verifier's own pieces: sign a body of exactly l bytes, then
	 * append content after signing */
	const char base[] = "From: joe@football.example.com\r\n\r\nline one\r\n";
	struct dkim_sign_options o = { "football.example.com", "brisbane", k, 1800000000, 0, DKIM_CANON_SIMPLE,
		                       DKIM_CANON_SIMPLE };
	struct buf sig = BUF_INIT(BUF_NOLIMIT);
	assert_true(dkim_sign(&o, base, strlen(base), &sig, &err));
	/* the signer's b= covers the field without l=, so adding l= afterwards must make it fail... */
	struct buf m = BUF_INIT(BUF_NOLIMIT);
	char *bpos = strstr(sig.data, "\tb=");
	buf_append(&m, sig.data, (size_t)(bpos - sig.data));
	buf_puts(&m, "\tl=10;\r\n");
	buf_puts(&m, bpos);
	buf_puts(&m, base);
	buf_puts(&m, "appended by someone else\r\n");
	size_t n;
	struct dkim_sig_result *r = verify(m.data, m.len, 1800000000, &n);
	assert_int_equal(n, 1);
	/* body hash of the first 10 bytes ("line one\r\n") matches, the header signature does not */
	assert_int_equal(r[0].result, DKIM_FAIL);
	assert_string_equal(r[0].reason, "signature did not verify");
	dkim_results_free(&r, n);
	/* l= longer than the body */
	buf_reset(&m);
	buf_append(&m, sig.data, (size_t)(bpos - sig.data));
	buf_puts(&m, "\tl=1000;\r\n");
	buf_puts(&m, bpos);
	buf_puts(&m, base);
	r = verify(m.data, m.len, 1800000000, &n);
	assert_int_equal(r[0].result, DKIM_PERMERROR);
	assert_string_equal(r[0].reason, "l= longer than the body");
	dkim_results_free(&r, n);
	buf_free(&m);
	buf_free(&sig);
	buf_free(&err);
	dkim_key_free(&k);
}

static void test_bad_signatures(void **state)
{
	(void)state;
	static const char *const sigs[] = {
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; h=to; bh=AAAA; b=AAAA\r\n",
		"DKIM-Signature: v=2; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA\r\n",
		"DKIM-Signature: v=1; a=rsa-sha1; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA; i=a@other.org\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA; c=odd\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA; t=10; x=5\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA; l=-1\r\n",
		"DKIM-Signature: v=1; v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA; q=http\r\n",
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA\r\n",	/* bh len */
	};
	fetches = 0;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct buf m = BUF_INIT(BUF_NOLIMIT);
		buf_puts(&m, sigs[i]);
		buf_puts(&m, "From: a@example.org\r\n\r\nbody\r\n");
		size_t n;
		struct dkim_sig_result *r = verify(m.data, m.len, 100, &n);
		assert_int_equal(n, 1);
		if (r[0].result != DKIM_PERMERROR)
			fail_msg("signature %zu: %s (%s)", i, dkim_result_str(r[0].result), r[0].reason);
		dkim_results_free(&r, n);
		buf_free(&m);
	}
	assert_int_equal(fetches, 0);	/* all refused before any DNS lookup */
	size_t n = 99;
	struct dkim_sig_result *r = verify("From: a\r\n\r\nx\r\n", 14, 100, &n);
	assert_int_equal(n, 0);
	assert_null(r);
}

/* l= that covers only part of the body: content appended later is reported, the signature still passes */
static void test_length_limit_pass(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(300), field = BUF_INIT(4096), sig = BUF_INIT(200), m = BUF_INIT(8192);
	struct dkim_key *k = dkim_key_from_pem(rfc8463_priv, strlen(rfc8463_priv), &err);
	unsigned char bh[32], hh[32];
	const char hdr[] = "From: joe@football.example.com\r\nSubject: x\r\n";
	const char body[] = "line one\r\n";
	struct dkim_body *b = dkim_body_new(DKIM_CANON_SIMPLE, UINT64_MAX);
	dkim_body_update(b, body, strlen(body));
	dkim_body_final(b, bh, NULL);
	dkim_body_free(&b);
	buf_puts(&field, "DKIM-Signature: v=1; a=ed25519-sha256; d=football.example.com; s=brisbane; l=10;\r\n"
	                 "\th=from:subject; bh=");
	dkim_b64_encode(bh, 32, &field);
	buf_puts(&field, "; b=");
	buf_puts(&m, hdr);
	buf_puts(&m, "\r\n");
	struct dkim_field *f;
	size_t boff, nf = dkim_split_header(m.data, m.len, &f, &boff);
	assert_true(dkim_header_hash(f, nf, "from:subject", 12, DKIM_CANON_SIMPLE, field.data, field.len, hh));
	free(f);
	assert_true(dkim_pkey_sign(k->pkey, DKIM_ED25519_SHA256, hh, &sig));
	dkim_b64_encode((unsigned char *)sig.data, sig.len, &field);
	buf_puts(&field, "\r\n");
	buf_reset(&m);
	buf_puts(&m, field.data);
	buf_puts(&m, hdr);
	buf_puts(&m, "\r\n");
	buf_puts(&m, body);
	set_key("brisbane._domainkey.football.example.com", rfc8463_key, 0);
	size_t n;
	struct dkim_sig_result *r = verify(m.data, m.len, 1800000000, &n);
	assert_int_equal(r[0].result, DKIM_PASS);
	assert_false(r[0].body_limited);
	dkim_results_free(&r, n);
	buf_puts(&m, "Click here: http://evil.example/\r\n");
	r = verify(m.data, m.len, 1800000000, &n);
	assert_int_equal(r[0].result, DKIM_PASS);
	assert_true(r[0].body_limited);
	assert_non_null(strstr(r[0].reason, "beyond l="));
	dkim_results_free(&r, n);
	dkim_key_free(&k);
	buf_free(&err);
	buf_free(&field);
	buf_free(&sig);
	buf_free(&m);
}

static void test_signer(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_dkim.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct buf path = BUF_INIT(512), map = BUF_INIT(1024), err = BUF_INIT(1024), warn = BUF_INIT(1024),
	           out = BUF_INIT(8192);
	buf_printf(&path, "%s/key.pem", dir);
	assert_true(fsutil_write_atomic(path.data, rfc8463_priv, strlen(rfc8463_priv), 0600, &err));
	buf_printf(&map, "example.org brisbane:%s\nbroken.example nocolon\nmissing.example s:%s/nofile\n", path.data,
	           dir);
	buf_reset(&path);
	buf_printf(&path, "%s/dkim_keys", dir);
	assert_true(fsutil_write_atomic(path.data, map.data, map.len, 0600, &err));
	size_t count;
	assert_true(table_compile(path.data, NULL, TABLE_POSTMAP, &count, &err, &warn));
	struct dkim_signer *s = dkim_signer_open(path.data, &err);
	assert_non_null(s);
	/* preload (smtpd, before the privilege drop): the good key loads, a bad entry is reported; the loaded key
	 * signs even when its file can no longer be read */
	buf_reset(&err);
	assert_int_equal(dkim_signer_preload(s, &err), -1);
	assert_non_null(strstr(err.data, "dkim_keys: "));
	buf_reset(&err);
	buf_reset(&path);
	buf_printf(&path, "%s/key.pem", dir);
	assert_int_equal(unlink(path.data), 0);

	const char msg[] = "From: \"Ann\" <ann@News.Example.ORG>\r\nTo: b@example.net\r\n\r\nhello\r\n";
	char *dom = dkim_from_domain(msg, strlen(msg));
	assert_string_equal(dom, "news.example.org");
	free(dom);
	assert_int_equal(dkim_signer_sign(s, msg, strlen(msg), NULL, 0, &out, &err), 1);
	assert_non_null(strstr(out.data, "d=example.org; s=brisbane;"));
	buf_puts(&out, msg);
	set_key("brisbane._domainkey.example.org", rfc8463_key, 0);
	size_t n;
	struct dkim_sig_result *r = verify(out.data, out.len, 0, &n);
	assert_int_equal(r[0].result, DKIM_PASS);
	dkim_results_free(&r, n);

	/* no key for the domain, no From, two Froms: unsigned */
	buf_reset(&out);
	assert_int_equal(dkim_signer_sign(s, "From: a@other.net\r\n\r\nx\r\n", 25, NULL, 0, &out, &err), 0);
	assert_int_equal(dkim_signer_sign(s, "To: a@example.org\r\n\r\nx\r\n", 24, NULL, 0, &out, &err), 0);
	const char two[] = "From: a@example.org\r\nFrom: b@example.org\r\n\r\n";
	assert_int_equal(dkim_signer_sign(s, two, strlen(two), NULL, 0, &out, &err), 0);
	assert_int_equal(out.len, 0);
	/* bad table value, missing key file: errors */
	buf_reset(&err);
	assert_int_equal(dkim_signer_sign(s, "From: a@broken.example\r\n\r\n", 28, NULL, 0, &out, &err), -1);
	assert_true(err.len > 0);
	buf_reset(&err);
	assert_int_equal(dkim_signer_sign(s, "From: a@missing.example\r\n\r\n", 29, NULL, 0, &out, &err), -1);
	assert_non_null(strstr(err.data, "nofile"));
	dkim_signer_free(&s);
	assert_null(s);

	buf_reset(&map);
	buf_printf(&map, "rm -rf '%s'", dir);
	assert_int_equal(system(map.data), 0);
	buf_free(&path);
	buf_free(&map);
	buf_free(&err);
	buf_free(&warn);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_taglist),
		cmocka_unit_test(test_canon_header),
		cmocka_unit_test(test_canon_body),
		cmocka_unit_test(test_b64),
		cmocka_unit_test(test_rfc8463),
		cmocka_unit_test(test_round_trip_rsa),
		cmocka_unit_test(test_round_trip_ed25519),
		cmocka_unit_test(test_length_limit),
		cmocka_unit_test(test_bad_signatures),
		cmocka_unit_test(test_length_limit_pass),
		cmocka_unit_test(test_sign_parts),
		cmocka_unit_test(test_signer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
