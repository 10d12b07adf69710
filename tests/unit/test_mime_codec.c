/* mime codecs, charsets, RFC 2047 words, RFC 2231 parameters, header fields and dates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "mime.h"
#include "mime_codec.h"

static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

static void test_b64_vectors(void **state)
{
	(void)state;
	static const char *const v[][2] = { { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
	                                    { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" } };
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct buf b = BUF_INIT(BUF_NOLIMIT);
		assert_true(mime_b64_encode_all(v[i][0], strlen(v[i][0]), 0, &b));
		assert_string_equal(buf_cstr(&b), v[i][1]);
		buf_reset(&b);
		assert_true(mime_b64_decode_all(v[i][1], strlen(v[i][1]), &b));
		assert_string_equal(buf_cstr(&b), v[i][0]);
		buf_free(&b);
	}
}

static void test_b64_bad(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	/* junk is skipped and reported; white space is fine */
	assert_false(mime_b64_decode_all("Zm9v!!YmFy", 10, &b));
	assert_string_equal(buf_cstr(&b), "foobar");
	buf_reset(&b);
	assert_true(mime_b64_decode_all("Zm9v\r\n YmFy\n", 12, &b));
	assert_string_equal(buf_cstr(&b), "foobar");
	buf_reset(&b);
	/* data after padding is ignored */
	assert_true(mime_b64_decode_all("Zg==Zm9v", 8, &b));
	assert_string_equal(buf_cstr(&b), "f");
	buf_reset(&b);
	/* a lone trailing character loses bits */
	assert_false(mime_b64_decode_all("Zm9vY", 5, &b));
	assert_string_equal(buf_cstr(&b), "foo");
	buf_reset(&b);
	assert_false(mime_b64_decode_all("\0\0\0\0", 4, &b));
	assert_int_equal(b.len, 0);
	buf_free(&b);
	/* a cap is honoured */
	struct buf small = BUF_INIT(2);
	assert_false(mime_b64_decode_all("Zm9vYmFy", 8, &small));
	buf_free(&small);
}

/* Encode and decode random data in random chunkings: streaming gives the same bytes as one-shot. */
static void test_b64_roundtrip_chunked(void **state)
{
	(void)state;
	for (int round = 0; round < 50; round++) {
		size_t n = rnd() % 3000;
		unsigned char *data = xmalloc(n + 1);
		for (size_t i = 0; i < n; i++)
			data[i] = (unsigned char)rnd();
		struct buf enc = BUF_INIT(BUF_NOLIMIT), dec = BUF_INIT(BUF_NOLIMIT), one = BUF_INIT(BUF_NOLIMIT);
		struct mime_b64_enc e;
		mime_b64_enc_init(&e, 76);
		for (size_t i = 0; i < n;) {
			size_t k = 1 + rnd() % 100;
			if (k > n - i)
				k = n - i;
			assert_true(mime_b64_encode(&e, data + i, k, &enc));
			i += k;
		}
		assert_true(mime_b64_enc_final(&e, &enc));
		assert_true(mime_b64_encode_all(data, n, 76, &one));
		assert_int_equal(enc.len, one.len);
		assert_memory_equal(enc.data ? enc.data : "", one.data ? one.data : "", enc.len);
		/* lines are at most 76 characters */
		size_t col = 0;
		for (size_t i = 0; i < enc.len; i++) {
			col = enc.data[i] == '\n' ? 0 : col + 1;
			assert_true(col <= 76);
		}
		struct mime_b64_dec d;
		mime_b64_dec_init(&d);
		for (size_t i = 0; i < enc.len;) {
			size_t k = 1 + rnd() % 7;
			if (k > enc.len - i)
				k = enc.len - i;
			assert_true(mime_b64_decode(&d, enc.data + i, k, &dec));
			i += k;
		}
		assert_true(mime_b64_dec_final(&d));
		assert_int_equal(dec.len, n);
		if (n)
			assert_memory_equal(dec.data, data, n);
		buf_free(&enc);
		buf_free(&dec);
		buf_free(&one);
		free(data);
	}
}

static void qp_dec(const char *in, const char *want)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(mime_qp_decode_all(in, strlen(in), &b));
	assert_string_equal(buf_cstr(&b), want);
	buf_free(&b);
}

static void qp_enc(const char *in, const char *want)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(mime_qp_encode_all(in, strlen(in), false, &b));
	assert_string_equal(buf_cstr(&b), want);
	buf_free(&b);
}

static void test_qp(void **state)
{
	(void)state;
	qp_dec("Caf=C3=A9", "Caf\xc3\xa9");
	qp_dec("soft=\nbreak", "softbreak");
	qp_dec("soft=\r\nbreak", "softbreak");
	qp_dec("soft=  \nbreak", "softbreak");
	qp_dec("trailing   \nspace\t\n", "trailing\nspace\n");
	qp_dec("lower =c3=a9", "lower \xc3\xa9");
	qp_dec("bad =ZZ and =4", "bad =ZZ and =4");
	qp_dec("end=", "end");
	qp_dec("a=3D=3Db", "a==b");
	qp_enc("plain text", "plain text");
	qp_enc("Caf\xc3\xa9 =", "Caf=C3=A9 =3D");
	qp_enc("trail \nx\t", "trail=20\nx=09");
	qp_enc("crlf\r\nline", "crlf\nline");
	qp_enc(".\nFrom me", "=2E\n=46rom me");
	qp_enc("lone\rcr", "lone=0Dcr");
	qp_enc("-- \nsig\n--boundary", "=2D-=20\nsig\n=2D-boundary");   /* no line can look like a boundary */
	/* long lines get soft breaks at 76 */
	char longl[300];
	memset(longl, 'a', 299);
	longl[299] = '\0';
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(mime_qp_encode_all(longl, 299, false, &b));
	size_t col = 0;
	for (size_t i = 0; i < b.len; i++) {
		col = b.data[i] == '\n' ? 0 : col + 1;
		assert_true(col <= 76);
	}
	struct buf d = BUF_INIT(BUF_NOLIMIT);
	assert_true(mime_qp_decode_all(b.data, b.len, &d));
	assert_string_equal(buf_cstr(&d), longl);
	buf_free(&b);
	buf_free(&d);
}

static void test_qp_roundtrip(void **state)
{
	(void)state;
	for (int round = 0; round < 100; round++) {
		size_t n = rnd() % 2000;
		unsigned char *data = xmalloc(n + 1);
		bool binary = round & 1;
		for (size_t i = 0; i < n; i++) {
			uint32_t r = rnd() % 10;
			data[i] = r < 5 ? (unsigned char)('a' + rnd() % 26) : r < 7 ? ' ' : r < 8 ? '\n' : (unsigned char)rnd();
			if (!binary && data[i] == '\r')
				data[i] = 'r';   /* text mode turns CRLF into LF */
		}
		if (!binary) {
			/* text mode drops white space before a line end on decoding only if it was not encoded: check
			 * the exact round trip anyway, since the encoder encodes trailing white space */
		}
		struct buf enc = BUF_INIT(BUF_NOLIMIT), dec = BUF_INIT(BUF_NOLIMIT);
		struct mime_qp_enc e;
		mime_qp_enc_init(&e, binary);
		for (size_t i = 0; i < n;) {
			size_t k = 1 + rnd() % 50;
			if (k > n - i)
				k = n - i;
			assert_true(mime_qp_encode(&e, data + i, k, &enc));
			i += k;
		}
		assert_true(mime_qp_enc_final(&e, &enc));
		for (size_t i = 0; i < enc.len; i++)
			assert_true((unsigned char)enc.data[i] < 0x80 && enc.data[i] != '\r');
		struct mime_qp_dec dd;
		mime_qp_dec_init(&dd);
		for (size_t i = 0; i < enc.len;) {
			size_t k = 1 + rnd() % 5;
			if (k > enc.len - i)
				k = enc.len - i;
			assert_true(mime_qp_decode(&dd, enc.data + i, k, &dec));
			i += k;
		}
		assert_true(mime_qp_dec_final(&dd, &dec));
		assert_int_equal(dd.invalid, 0);
		assert_int_equal(dec.len, n);
		if (n)
			assert_memory_equal(dec.data, data, n);
		buf_free(&enc);
		buf_free(&dec);
		free(data);
	}
}

/* Decoders fed one byte at a time give what one call gives, for inputs with state at every boundary. */
static void test_decode_byte_at_a_time(void **state)
{
	(void)state;
	static const char *const qp[] = { "a=\r\nb", "x=4", "trail \t\r\nnext", "=3D=3d==41", "end =", "  \n",
	                                  "=\n=\n", "=ZZ=4G", "long                                            spaces" };
	for (size_t i = 0; i < sizeof(qp) / sizeof(qp[0]); i++) {
		struct buf one = BUF_INIT(BUF_NOLIMIT), bytes = BUF_INIT(BUF_NOLIMIT);
		mime_qp_decode_all(qp[i], strlen(qp[i]), &one);
		struct mime_qp_dec d;
		mime_qp_dec_init(&d);
		for (size_t k = 0; qp[i][k]; k++)
			assert_true(mime_qp_decode(&d, qp[i] + k, 1, &bytes));
		assert_true(mime_qp_dec_final(&d, &bytes));
		if (one.len != bytes.len || (one.len && memcmp(one.data, bytes.data, one.len) != 0))
			fail_msg("qp \"%s\": one call \"%s\", byte at a time \"%s\"", qp[i], buf_cstr(&one), buf_cstr(&bytes));
		buf_free(&one);
		buf_free(&bytes);
	}
	static const char *const b64[] = { "Zm9v\r\nYmFy", "Z g = =", "Zm9vY", "!Zm9v!", "Zg==Zm9v" };
	for (size_t i = 0; i < sizeof(b64) / sizeof(b64[0]); i++) {
		struct buf one = BUF_INIT(BUF_NOLIMIT), bytes = BUF_INIT(BUF_NOLIMIT);
		bool r1 = mime_b64_decode_all(b64[i], strlen(b64[i]), &one);
		struct mime_b64_dec d;
		mime_b64_dec_init(&d);
		for (size_t k = 0; b64[i][k]; k++)
			assert_true(mime_b64_decode(&d, b64[i] + k, 1, &bytes));
		assert_int_equal(r1, mime_b64_dec_final(&d));
		assert_int_equal(one.len, bytes.len);
		if (one.len)
			assert_memory_equal(one.data, bytes.data, one.len);
		buf_free(&one);
		buf_free(&bytes);
	}
}

static void words(const char *in, const char *want)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(mime_words_decode(in, strlen(in), &b));
	if (strcmp(buf_cstr(&b), want) != 0)
		fail_msg("decode \"%s\": got \"%s\", want \"%s\"", in, buf_cstr(&b), want);
	buf_free(&b);
}

static void test_rfc2047(void **state)
{
	(void)state;
	words("=?utf-8?q?Gr=C3=BC=C3=9Fe?=", "Gr\xc3\xbc\xc3\x9f" "e");
	words("=?ISO-8859-1?Q?a?= b", "a b");
	words("=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=", "ab");           /* space between words dropped */
	words("=?ISO-8859-1?Q?a?=\n =?ISO-8859-1?Q?b?=", "ab");         /* folded */
	words("=?ISO-8859-1?Q?a_b?=", "a b");
	words("=?iso-8859-1?b?R3L832U=?=", "Gr\xc3\xbc\xc3\x9f" "e");
	words("=?UTF-8*en?Q?x?=", "x");                                   /* RFC 2231 language */
	words("=?utf-8?B?4oKs?=", "\xe2\x82\xac");
	/* a character split between two words of one charset */
	words("=?utf-8?B?4oI=?= =?utf-8?B?rA==?=", "\xe2\x82\xac");
	words("=?koi8-r?B?8NLJ18XU?=", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82");
	/* malformed words stay literal */
	words("=?utf-8?x?abc?=", "=?utf-8?x?abc?=");
	words("=?utf-8?q?no end", "=?utf-8?q?no end");
	words("=??q?a?=", "=??q?a?=");
	/* raw 8-bit text: valid UTF-8 kept, the rest replaced */
	words("caf\xc3\xa9 \xff", "caf\xc3\xa9 \xef\xbf\xbd");
	/* unknown charset: bytes kept when they are UTF-8 */
	words("=?x-unknown?q?ok=C3=A9?=", "ok\xc3\xa9");
	words("=?us-ascii?q?hi=FF?=", "hi\xef\xbf\xbd");
	words("plain", "plain");

	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(mime_words_encode("plain ascii", 11, &b));
	assert_string_equal(buf_cstr(&b), "plain ascii");
	buf_reset(&b);
	const char *u = "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln, a rather long subject line that must be split into words";
	assert_true(mime_words_encode(u, strlen(u), &b));
	for (size_t i = 0, col = 0; i < b.len; i++) {
		col = b.data[i] == '\n' ? 0 : col + 1;
		assert_true(col <= 76);
		assert_true((unsigned char)b.data[i] < 0x80);
	}
	struct buf d = BUF_INIT(BUF_NOLIMIT);
	assert_true(mime_words_decode(b.data, b.len, &d));
	assert_string_equal(buf_cstr(&d), u);
	buf_free(&b);
	buf_free(&d);
}

static void test_charset(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(mime_charset_to_utf8("windows-1252", "\x80 \xe9", 3, &b));
	assert_string_equal(buf_cstr(&b), "\xe2\x82\xac \xc3\xa9");
	buf_reset(&b);
	/* invalid UTF-8: overlong, surrogate, truncated */
	assert_true(mime_charset_to_utf8("UTF-8", "\xc0\xaf|\xed\xa0\x80|\xe2\x82", 10, &b));
	assert_string_equal(buf_cstr(&b), "\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|"
	                                  "\xef\xbf\xbd\xef\xbf\xbd");
	buf_reset(&b);
	/* invalid bytes in a multi-byte charset */
	assert_true(mime_charset_to_utf8("shift_jis", "a\x81", 2, &b));
	assert_string_equal(buf_cstr(&b), "a\xef\xbf\xbd");
	buf_reset(&b);
	/* names that are not tokens never reach iconv */
	assert_true(mime_charset_to_utf8("UTF-8//TRANSLIT", "ok", 2, &b));
	assert_string_equal(buf_cstr(&b), "ok");
	buf_reset(&b);
	/* a name iconv takes for UTF-8 (glibc ignores the '+') must not let a code point above U+10FFFF through,
	 * as glibc's own decoder does (found by fuzz_mime_codec) */
	assert_true(mime_charset_to_utf8("u+tf-8", "a\xf4\x94\x94\xae", 5, &b));
	assert_string_equal(buf_cstr(&b), "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	buf_free(&b);
}

static void ctype(const char *in, const char *type, const char *sub, const char *params)
{
	struct mime_ctype ct;
	mime_ctype_parse(in, strlen(in), true, &ct);
	if (!type) {
		assert_null(ct.type);
		mime_ctype_free(&ct);
		return;
	}
	assert_non_null(ct.type);
	assert_string_equal(ct.type, type);
	assert_string_equal(ct.subtype, sub);
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	for (size_t i = 0; i < ct.nparams; i++)
		buf_printf(&b, "%s%s=%s", i ? "|" : "", ct.params[i].name, ct.params[i].value);
	if (strcmp(buf_cstr(&b), params) != 0)
		fail_msg("ctype \"%s\": params \"%s\", want \"%s\"", in, buf_cstr(&b), params);
	buf_free(&b);
	mime_ctype_free(&ct);
}

static void test_ctype(void **state)
{
	(void)state;
	ctype("text/plain", "text", "plain", "");
	ctype(" Text/HTML ; Charset=\"UTF-8\" (comment)", "Text", "HTML", "Charset=UTF-8");
	ctype("multipart/mixed; boundary=----=_NextPart_000_0001", "multipart", "mixed",
	      "boundary=----=_NextPart_000_0001");
	ctype("text/plain; a=1; a=2; b=\"x;y\"", "text", "plain", "a=1|b=x;y");
	ctype("text", NULL, NULL, NULL);
	ctype("/plain", NULL, NULL, NULL);
	ctype("text/plain;;; junk; c=3", "text", "plain", "c=3");
	/* RFC 2231: continuations in any order, extended sections, charset and language */
	ctype("application/x-stuff; title*1*=%2A%2A%2Afun%2A%2A%2A%20; title*2=\"isn't it!\"; "
	      "title*0*=us-ascii'en'This%20is%20even%20more%20",
	      "application", "x-stuff", "title*=us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn%27t%20it!");
	ctype("message/external-body; URL*0=\"ftp://\"; URL*1=\"cs.utk.edu/pub\"", "message", "external-body",
	      "URL=ftp://cs.utk.edu/pub");
	ctype("text/plain; x*0=a; x*2=c", "text", "plain", "x=a");       /* gap ends the value */
	ctype("text/plain; x*1=b", "text", "plain", "");                 /* no section 0 */
	ctype("a/b; name=\"plain\"; name*=utf-8''%E2%82%AC", "a", "b", "name=plain|name*=utf-8''%E2%82%AC");
	ctype("a/b; x*=us-ascii''a; y=1; z*0=q; w=2", "a", "b", "y=1|w=2|x*=us-ascii''a|z=q");

	struct mime_ctype ct;
	const char *s = "attachment; filename*0*=iso-8859-1''Gr%FC; filename*1=\"sse.txt\"";
	mime_ctype_parse(s, strlen(s), false, &ct);
	assert_string_equal(ct.type, "attachment");
	assert_null(ct.subtype);
	char *fn = mime_ctype_param(&ct, "filename");
	assert_string_equal(fn, "Gr\xc3\xbcsse.txt");
	free(fn);
	assert_null(mime_ctype_param(&ct, "name"));
	mime_ctype_free(&ct);
	s = "attachment; filename=\"=?utf-8?q?caf=C3=A9.txt?=\"";
	mime_ctype_parse(s, strlen(s), false, &ct);
	fn = mime_ctype_param(&ct, "filename");
	assert_string_equal(fn, "caf\xc3\xa9.txt");
	free(fn);
	mime_ctype_free(&ct);
}

static void test_header_fields(void **state)
{
	(void)state;
	const char *h = "From someone\n"
	                "Subject: one\n"
	                "  two\r\n"
	                "\tthree  \n"
	                "X-Empty:\n"
	                "broken line\n"
	                "Key : value\n"
	                "subject: second\n"
	                "\n"
	                "Body: not a header\n";
	struct mime_header mh = MIME_HEADER_INIT;
	mime_header_parse(&mh, h, strlen(h));
	assert_true(mh.has_blank);
	assert_int_equal(mh.n, 4);
	assert_int_equal(mh.size, (size_t)(strstr(h, "Body:") - h));
	char *v = mime_header_get(&mh, "SUBJECT");
	assert_string_equal(v, "one  two\tthree");
	free(v);
	v = mime_header_get(&mh, "x-empty");
	assert_string_equal(v, "");
	free(v);
	v = mime_header_get(&mh, "key");
	assert_string_equal(v, "value");
	free(v);
	assert_null(mime_header_get(&mh, "body"));
	const struct mime_field *f = mime_header_find(&mh, "subject", 1);
	assert_non_null(f);
	assert_int_equal(f->value_len, 6);
	assert_null(mime_header_find(&mh, "subject", 2));
	mime_header_free(&mh);

	/* no blank line: the header runs to the end */
	mime_header_parse(&mh, "A: b\nC: d", 9);
	assert_false(mh.has_blank);
	assert_int_equal(mh.n, 2);
	assert_int_equal(mh.size, 9);
	mime_header_free(&mh);

	/* field cap */
	struct buf big = BUF_INIT(BUF_NOLIMIT);
	for (int i = 0; i < MIME_MAX_FIELDS + 10; i++)
		buf_printf(&big, "X-%d: y\n", i);
	buf_puts(&big, "\nbody");
	mime_header_parse(&mh, big.data, big.len);
	assert_true(mh.truncated);
	assert_int_equal(mh.n, MIME_MAX_FIELDS);
	assert_true(mh.has_blank);
	mime_header_free(&mh);
	buf_free(&big);
}

static void date_ok(const char *s, long long want, int tz)
{
	time_t t;
	int z = 12345;
	if (!mime_date_parse(s, strlen(s), &t, &z))
		fail_msg("date \"%s\" refused", s);
	if ((long long)t != want || z != tz)
		fail_msg("date \"%s\": %lld %d, want %lld %d", s, (long long)t, z, want, tz);
}

static void test_dates(void **state)
{
	(void)state;
	date_ok("Mon, 23 Nov 2026 14:42:50 +0000", 1795444970LL, 0);
	date_ok("23 Nov 2026 15:42:50 +0100", 1795444970LL, 60);
	date_ok("Mon, 23 Nov 2026 09:42:50 -0500 (EST)", 1795444970LL, -300);
	date_ok("Mon, 23 Nov 26 14:42:50 GMT", 1795444970LL, 0);             /* 2-digit year */
	date_ok("Mon, 23 Nov 126 14:42:50 UT", 1795444970LL, 0);             /* 3-digit year: 1900 + 126 */
	date_ok("Mon , 23 Nov 2026 06:42:50 PST", 1795444970LL, -480);
	date_ok("Mon, 23 Nov 2026 14:42 +0000", 1795444920LL, 0);            /* no seconds */
	date_ok("Mon, 23 Nov 2026 14:42:50 A", 1795444970LL, 0);             /* military zone: -0000 */
	date_ok("(c) Mon,(x) 23 (y) Nov 2026 14 : 42 : 50 +0000", 1795444970LL, 0);
	date_ok("Thu, 1 Jan 1970 00:00:00 +0000", 0, 0);
	date_ok("Sat, 24 Mar 2007 23:00:00 +0200", 1174770000LL, 120);
	date_ok("29 Feb 2024 00:00:00 +0000", 1709164800LL, 0);
	date_ok("Mon, 23 Nov 99 00:00:00 +0000", 943315200LL, 0);            /* 99 -> 1999 */
	date_ok("23 Nov 2026 14:42:50", 1795444970LL, 0);                    /* zone missing */
	static const char *const bad[] = { "", "garbage", "32 Jan 2026 00:00 +0000", "1 Foo 2026 00:00 +0000",
	                                   "1 Jan 2026 24:00 +0000", "1 Jan 2026 00:60 +0000", "30 Feb 2026 0:0 +0000",
	                                   "1 Jan 2026 00:00 +00", "1 Jan 2026 00:00 +0099", "1 Jan 2026",
	                                   "1 Jan 20266 00:00 +0000", "(((((((((((((((((((( 1 Jan 2026 00:00" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		time_t t;
		if (mime_date_parse(bad[i], strlen(bad[i]), &t, NULL))
			fail_msg("date \"%s\" accepted", bad[i]);
	}
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(mime_date_format(1795444970, 0, &b));
	assert_string_equal(buf_cstr(&b), "Mon, 23 Nov 2026 14:42:50 +0000");
	buf_reset(&b);
	assert_true(mime_date_format(1795444970, -330, &b));
	assert_string_equal(buf_cstr(&b), "Mon, 23 Nov 2026 09:12:50 -0530");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64_vectors),
		cmocka_unit_test(test_b64_bad),
		cmocka_unit_test(test_b64_roundtrip_chunked),
		cmocka_unit_test(test_qp),
		cmocka_unit_test(test_qp_roundtrip),
		cmocka_unit_test(test_decode_byte_at_a_time),
		cmocka_unit_test(test_rfc2047),
		cmocka_unit_test(test_charset),
		cmocka_unit_test(test_ctype),
		cmocka_unit_test(test_header_fields),
		cmocka_unit_test(test_dates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
