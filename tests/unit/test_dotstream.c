/* dotstream: DATA decoding (unstuffing, end of data only at CRLF.CRLF, bare CR/LF policy, limits), encoding,
 * round trips, and byte-at-a-time feeding giving exactly the one-shot result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dotstream.h"

struct result {
	enum dot_status st;
	size_t consumed;
	unsigned flags;
	bool failed;
	struct buf out;
	uint64_t out_bytes;
};

static void decode_chunked(const char *in, size_t n, size_t chunk, enum dot_bare_policy pol, size_t line_max,
			   uint64_t max_size, struct result *r)
{
	struct dot_decoder d;
	size_t off = 0;

	buf_init(&r->out, BUF_NOLIMIT);
	dot_decoder_init(&d, pol, line_max, max_size);
	r->st = DOT_MORE;
	while (off < n && r->st == DOT_MORE) {
		size_t take = chunk == 0 || n - off < chunk ? n - off : chunk, used;
		r->st = dot_decode(&d, in + off, take, &r->out, &used);
		assert_true(used <= take);
		if (r->st == DOT_MORE)
			assert_int_equal(used, take);
		off += used;
	}
	r->consumed = off;
	r->flags = d.flags;
	r->failed = dot_decoder_failed(&d);
	r->out_bytes = d.out_bytes;
	assert_int_equal(d.in_bytes, off);
}

/* Decode one-shot and every chunk size 1..7; all must agree. Result in r (one-shot). */
static void decode(const char *in, size_t n, enum dot_bare_policy pol, size_t line_max, uint64_t max_size,
		   struct result *r)
{
	decode_chunked(in, n, 0, pol, line_max, max_size, r);
	for (size_t chunk = 1; chunk <= 7; chunk++) {
		struct result c;
		decode_chunked(in, n, chunk, pol, line_max, max_size, &c);
		assert_int_equal(c.st, r->st);
		assert_int_equal(c.consumed, r->consumed);
		assert_int_equal(c.flags, r->flags);
		assert_int_equal(c.out.len, r->out.len);
		if (r->out.len)
			assert_memory_equal(c.out.data, r->out.data, r->out.len);
		buf_free(&c.out);
	}
}

#define S(lit) lit, sizeof(lit) - 1

static void expect(const char *in, size_t n, enum dot_status st, size_t consumed, const char *out, size_t outlen,
		   unsigned flags)
{
	struct result r;

	decode(in, n, DOT_BARE_NORMALIZE, DOT_LINE_MAX_RFC, 0, &r);
	assert_int_equal(r.st, st);
	assert_int_equal(r.consumed, consumed);
	assert_int_equal(r.flags, flags);
	assert_int_equal(r.out.len, outlen);
	if (outlen)
		assert_memory_equal(r.out.data, out, outlen);
	buf_free(&r.out);
}

static void test_basic(void **state)
{
	(void)state;
	/* empty message: end of data right away */
	expect(S(".\r\n"), DOT_END, 3, S(""), 0);
	expect(S("Subject: x\r\n\r\nbody\r\n.\r\n"), DOT_END, 23, S("Subject: x\r\n\r\nbody\r\n"), 0);
	/* unstuffing: "..\r\n" is a line holding ".", "..." one holding ".." */
	expect(S("..\r\n...\r\n.x\r\n.\r\n"), DOT_END, 16, S(".\r\n..\r\nx\r\n"), 0);
	/* dots not at a line start are data */
	expect(S("a.b.\r\n.\r\n"), DOT_END, 9, S("a.b.\r\n"), 0);
	/* incomplete: no end yet */
	expect(S("line\r\n."), DOT_MORE, 7, S("line\r\n"), 0);
	expect(S("line\r\n.\r"), DOT_MORE, 8, S("line\r\n"), 0);
}

static void test_pipelined_rest_unconsumed(void **state)
{
	(void)state;
	struct result r;
	const char in[] = "hello\r\n.\r\nMAIL FROM:<a@b>\r\n";

	decode(S(in), DOT_BARE_REJECT, DOT_LINE_MAX_RFC, 0, &r);
	assert_int_equal(r.st, DOT_END);
	assert_int_equal(r.consumed, 10);
	assert_string_equal(in + r.consumed, "MAIL FROM:<a@b>\r\n");
	assert_false(r.failed);
	buf_free(&r.out);

	/* After the end, nothing more is consumed. */
	struct dot_decoder d;
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	size_t used;
	dot_decoder_init(&d, DOT_BARE_REJECT, 0, 0);
	assert_int_equal(dot_decode(&d, S(".\r\n"), &out, &used), DOT_END);
	assert_int_equal(dot_decode(&d, S("more\r\n"), &out, &used), DOT_END);
	assert_int_equal(used, 0);
	buf_free(&out);
}

/* Every known smuggling variant: none ends the data; the real CRLF.CRLF after them does, and the fake
 * terminators become content with CR LF line ends. */
static void test_smuggling_variants(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		const char *out;
		unsigned flags;
	} v[] = {
		{ "a\n.\nMAIL FROM:<x>\r\n.\r\n", "a\r\n.\r\nMAIL FROM:<x>\r\n", DOT_F_BARE_LF },	/* LF.LF */
		{ "a\n.\r\nMAIL\r\n.\r\n", "a\r\n.\r\nMAIL\r\n", DOT_F_BARE_LF },			/* LF.CRLF */
		{ "a\r\n.\nMAIL\r\n.\r\n", "a\r\n.\r\nMAIL\r\n", DOT_F_BARE_LF },			/* CRLF.LF */
		{ "a\r.\rMAIL\r\n.\r\n", "a\r\n.\r\nMAIL\r\n", DOT_F_BARE_CR },				/* CR.CR */
		{ "a\r.\r\nMAIL\r\n.\r\n", "a\r\n.\r\nMAIL\r\n", DOT_F_BARE_CR },			/* CR.CRLF */
		{ "a\r\n.\rMAIL\r\n.\r\n", "a\r\n.\r\nMAIL\r\n", DOT_F_BARE_CR },			/* CRLF.CR */
		{ "a\r\n.\r\r\nMAIL\r\n.\r\n", "a\r\n.\r\n\r\nMAIL\r\n", DOT_F_BARE_CR },		/* CRLF.CRCRLF */
		{ "a\n\n.\n\nMAIL\r\n.\r\n", "a\r\n\r\n.\r\n\r\nMAIL\r\n", DOT_F_BARE_LF },
		{ "a\r\r\n.\r\n", "a\r\n\r\n", DOT_F_BARE_CR },	/* the CR LF . CR LF inside is real */
		{ "a\n..\r\nb\r\n.\r\n", "a\r\n..\r\nb\r\n", DOT_F_BARE_LF },	/* no unstuffing after a bare LF */
		{ "\n.\n\r\n.\r\n", "\r\n.\r\n\r\n", DOT_F_BARE_LF },
		{ "a\r\n.\n.\r\n.\r\n", "a\r\n.\r\n.\r\n", DOT_F_BARE_LF },	/* "." after bare LF cannot end it */
		{ "a\r\n\r.\r\n\r\n.\r\n", "a\r\n\r\n.\r\n\r\n", DOT_F_BARE_CR },
		{ "x\n\r\n.\r\n", "x\r\n\r\n", DOT_F_BARE_LF },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct result r;
		size_t n = strlen(v[i].in);

		decode(v[i].in, n, DOT_BARE_REJECT, DOT_LINE_MAX_RFC, 0, &r);
		assert_int_equal(r.st, DOT_END);
		assert_int_equal(r.consumed, n);	/* only the final CRLF.CRLF ended it */
		assert_int_equal(r.flags, v[i].flags);
		assert_true(r.failed);
		assert_int_equal(r.out.len, strlen(v[i].out));
		assert_memory_equal(r.out.data, v[i].out, r.out.len);
		buf_free(&r.out);

		decode(v[i].in, n, DOT_BARE_NORMALIZE, DOT_LINE_MAX_RFC, 0, &r);
		assert_int_equal(r.st, DOT_END);
		assert_int_equal(r.consumed, n);
		assert_false(r.failed);
		buf_free(&r.out);
	}
	/* A lone fake terminator with no real one after it never ends. */
	static const char *const never[] = { "a\n.\n", "a\n.\r\n", "a\r\n.\n", "a\r.\r", "a\r\n.\r\r\n", "a\r.\r\n" };
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
		struct result r;
		decode(never[i], strlen(never[i]), DOT_BARE_NORMALIZE, 0, 0, &r);
		assert_int_equal(r.st, DOT_MORE);
		assert_int_equal(r.consumed, strlen(never[i]));
		buf_free(&r.out);
	}
}

static void test_binary_bytes(void **state)
{
	(void)state;
	const char in[] = "\x00\xff\x01.\x80\r\n.\x00\r\n.\r\n";
	const char want[] = "\x00\xff\x01.\x80\r\n\x00\r\n";
	struct result r;

	decode(in, sizeof(in) - 1, DOT_BARE_REJECT, DOT_LINE_MAX_RFC, 0, &r);
	assert_int_equal(r.st, DOT_END);
	assert_false(r.failed);
	assert_int_equal(r.out.len, sizeof(want) - 1);
	assert_memory_equal(r.out.data, want, r.out.len);
	buf_free(&r.out);
}

static void test_line_limit(void **state)
{
	(void)state;
	struct buf in = BUF_INIT(BUF_NOLIMIT);
	struct result r;

	/* 998 bytes + CR LF = 1000: allowed */
	for (int i = 0; i < 998; i++)
		buf_putc(&in, 'x');
	buf_puts(&in, "\r\n.\r\n");
	decode(in.data, in.len, DOT_BARE_REJECT, DOT_LINE_MAX_RFC, 0, &r);
	assert_int_equal(r.st, DOT_END);
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.out.len, 1000);
	buf_free(&r.out);

	/* a stuffed dot counts: ".", then 997 bytes, CR LF = 1000 is fine; one more is too long */
	buf_reset(&in);
	buf_putc(&in, '.');
	for (int i = 0; i < 998; i++)
		buf_putc(&in, 'y');
	buf_puts(&in, "\r\nnext\r\n.\r\n");
	decode(in.data, in.len, DOT_BARE_REJECT, DOT_LINE_MAX_RFC, 0, &r);
	assert_int_equal(r.st, DOT_END);
	assert_int_equal(r.consumed, in.len);	/* still read to the end of data */
	assert_int_equal(r.flags, DOT_F_LINE_TOO_LONG);
	assert_true(r.failed);
	buf_free(&r.out);

	/* the same with no limit */
	decode(in.data, in.len, DOT_BARE_REJECT, 0, 0, &r);
	assert_int_equal(r.flags, 0);
	assert_false(r.failed);
	buf_free(&r.out);

	/* a bare CR ends a line for counting purposes */
	buf_reset(&in);
	for (int i = 0; i < 600; i++)
		buf_putc(&in, 'z');
	buf_putc(&in, '\r');
	for (int i = 0; i < 600; i++)
		buf_putc(&in, 'z');
	buf_puts(&in, "\r\n.\r\n");
	decode(in.data, in.len, DOT_BARE_NORMALIZE, DOT_LINE_MAX_RFC, 0, &r);
	assert_int_equal(r.flags, DOT_F_BARE_CR);
	buf_free(&r.out);
	buf_free(&in);
}

static void test_size_limit(void **state)
{
	(void)state;
	struct result r;

	/* exactly at the limit */
	decode(S("12345678\r\n.\r\n"), DOT_BARE_REJECT, 0, 10, &r);
	assert_int_equal(r.st, DOT_END);
	assert_false(r.failed);
	assert_int_equal(r.out.len, 10);
	buf_free(&r.out);

	/* one over: flagged, storing stops, reading goes on to the end and counts everything */
	decode(S("123456789\r\nmore\r\n.\r\nQUIT\r\n"), DOT_BARE_REJECT, 0, 10, &r);
	assert_int_equal(r.st, DOT_END);
	assert_int_equal(r.consumed, 20);
	assert_int_equal(r.flags, DOT_F_TOO_BIG);
	assert_true(r.failed);
	assert_int_equal(r.out.len, 10);	/* exactly the first max_size bytes, however it was fed */
	assert_memory_equal(r.out.data, "123456789\r", 10);
	assert_int_equal(r.out_bytes, 17);
	buf_free(&r.out);

	/* the output buffer's own cap acts the same way */
	struct dot_decoder d;
	struct buf small = BUF_INIT(4);
	size_t used;
	dot_decoder_init(&d, DOT_BARE_NORMALIZE, 0, 0);
	assert_int_equal(dot_decode(&d, S("abcdef\r\n.\r\n"), &small, &used), DOT_END);
	assert_true(dot_decoder_failed(&d));
	assert_true(d.flags & DOT_F_TOO_BIG);
	assert_string_equal(buf_cstr(&small), "abcd");
	buf_free(&small);
}

static void encode_all(const char *in, size_t n, size_t chunk, struct buf *out)
{
	struct dot_encoder e;
	size_t off = 0;

	dot_encoder_init(&e);
	while (off < n) {
		size_t take = chunk == 0 || n - off < chunk ? n - off : chunk;
		assert_true(dot_encode(&e, in + off, take, out));
		off += take;
	}
	assert_true(dot_encode_finish(&e, out));
}

static void test_encoder(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} v[] = {
		{ "", ".\r\n" },
		{ ".", "..\r\n.\r\n" },
		{ ".\r\n", "..\r\n.\r\n" },
		{ "a\r\n.b\r\n..\r\n", "a\r\n..b\r\n...\r\n.\r\n" },
		{ "no newline", "no newline\r\n.\r\n" },
		{ "bare\nlf\n.x", "bare\r\nlf\r\n..x\r\n.\r\n" },
		{ "bare\rcr\r.\r", "bare\r\ncr\r\n..\r\n.\r\n" },
		{ "\r\n", "\r\n.\r\n" },
		{ "a.b\r\n", "a.b\r\n.\r\n" },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		for (size_t chunk = 0; chunk <= 3; chunk++) {
			struct buf out = BUF_INIT(BUF_NOLIMIT);
			encode_all(v[i].in, strlen(v[i].in), chunk, &out);
			assert_string_equal(buf_cstr(&out), v[i].out);
			buf_free(&out);
		}
	}
}

/* encode then decode gives the text back with bare CR/LF as CR LF and a final CR LF. */
static void roundtrip(const char *in, size_t n, const char *want, size_t wantlen)
{
	struct buf enc = BUF_INIT(BUF_NOLIMIT);
	struct result r;

	encode_all(in, n, 0, &enc);
	decode(enc.data, enc.len, DOT_BARE_REJECT, 0, 0, &r);
	assert_int_equal(r.st, DOT_END);
	assert_int_equal(r.consumed, enc.len);
	assert_false(r.failed);
	assert_int_equal(r.out.len, wantlen);
	if (wantlen)
		assert_memory_equal(r.out.data, want, wantlen);
	buf_free(&r.out);
	buf_free(&enc);
}

static void test_roundtrip(void **state)
{
	(void)state;
	roundtrip(S(""), S(""));
	roundtrip(S("."), S(".\r\n"));
	roundtrip(S(".\r\n"), S(".\r\n"));
	roundtrip(S("..\r\n.\r\n...x\r\n"), S("..\r\n.\r\n...x\r\n"));
	roundtrip(S("\r\n.\r\n"), S("\r\n.\r\n"));
	roundtrip(S("a\n.\nb"), S("a\r\n.\r\nb\r\n"));
	roundtrip(S("\x00\x01\xfe\xff.\r\n\x00"), S("\x00\x01\xfe\xff.\r\n\x00\r\n"));

	/* all byte values, lines starting with dots */
	struct buf in = BUF_INIT(BUF_NOLIMIT);
	for (int round = 0; round < 3; round++)
		for (int c = 0; c < 256; c++) {
			if (c == '\r' || c == '\n')
				continue;
			buf_putc(&in, c);
			if (c % 17 == 0)
				buf_puts(&in, "\r\n.");
		}
	buf_puts(&in, "\r\n");
	roundtrip(in.data, in.len, in.data, in.len);
	buf_free(&in);
}

static void test_dot_write_stream(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct stream *w = stream_new(sv[0]);
	struct stream *rd = stream_new(sv[1]);
	struct dot_encoder e;
	struct buf got = BUF_INIT(BUF_NOLIMIT);

	stream_set_timeouts(rd, 1000, 1000);
	dot_encoder_init(&e);
	assert_int_equal(dot_write(w, &e, S(".hidden\nline\r\n.")), STREAM_OK);
	assert_int_equal(dot_write_end(w, &e), STREAM_OK);
	assert_int_equal(stream_flush(w), STREAM_OK);
	const char want[] = "..hidden\r\nline\r\n..\r\n.\r\n";
	assert_int_equal(stream_read_exact(rd, &got, sizeof(want) - 1), STREAM_OK);
	assert_string_equal(buf_cstr(&got), want);
	buf_free(&got);
	stream_free(&w);
	stream_free(&rd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_pipelined_rest_unconsumed),
		cmocka_unit_test(test_smuggling_variants),
		cmocka_unit_test(test_binary_bytes),
		cmocka_unit_test(test_line_limit),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_encoder),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_dot_write_stream),
	};
	return cmocka_run_group_tests_name("dotstream", tests, NULL, NULL);
}
