/* Fuzz the DATA decoder and encoder: one-shot, random chunking and byte-at-a-time feeding must agree; the end of
 * data must be exactly the first CR LF "." CR LF (with the start of data counting as CR LF), whatever else the
 * input holds; output never has a bare CR or LF; encoder -> decoder gives the normalized text back. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dotstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

struct run {
	enum dot_status st;
	size_t consumed;
	unsigned flags;
	uint64_t out_bytes;
	struct buf out;
};

/* chunk == 0: one shot; chunk == 1: byte at a time; otherwise sizes from a generator seeded by the input. */
static void run_decoder(const uint8_t *in, size_t n, unsigned cfg, size_t chunk, uint32_t seed, struct run *r)
{
	struct dot_decoder d;
	size_t off = 0;

	buf_init(&r->out, BUF_NOLIMIT);
	dot_decoder_init(&d, cfg & 1 ? DOT_BARE_REJECT : DOT_BARE_NORMALIZE, cfg & 2 ? 0 : (cfg >> 2) % 40 + 1,
			 cfg & 0x80 ? 0 : (cfg >> 3) * 7u);
	r->st = DOT_MORE;
	while (off < n && r->st == DOT_MORE) {
		size_t take = n - off, used;

		if (chunk == 1)
			take = 1;
		else if (chunk > 1) {
			seed = seed * 1103515245u + 12345u;
			size_t c = (seed >> 16) % 9;
			if (c < take)
				take = c;	/* zero-length feeds too */
		}
		r->st = dot_decode(&d, in + off, take, &r->out, &used);
		CHECK(used <= take);
		CHECK(r->st == DOT_END || used == take);
		off += used;
	}
	r->consumed = off;
	r->flags = d.flags;
	r->out_bytes = d.out_bytes;
	CHECK(d.in_bytes == off);
	if (d.max_size == 0)
		CHECK(d.out_bytes == r->out.len && !(d.flags & DOT_F_TOO_BIG));
	else
		CHECK(r->out.len == (d.out_bytes < d.max_size ? d.out_bytes : d.max_size));
}

static void same(const struct run *a, const struct run *b)
{
	CHECK(a->st == b->st);
	CHECK(a->consumed == b->consumed);
	CHECK(a->flags == b->flags);
	CHECK(a->out_bytes == b->out_bytes);
	CHECK(a->out.len == b->out.len);
	CHECK(a->out.len == 0 || memcmp(a->out.data, b->out.data, a->out.len) == 0);
}

/* Where the data must end: just after the first "\r\n.\r\n", the start counting as "\r\n"; 0 when nowhere. */
static size_t expected_end(const uint8_t *in, size_t n)
{
	if (n >= 3 && memcmp(in, ".\r\n", 3) == 0)
		return 3;
	for (size_t i = 0; i + 5 <= n; i++)
		if (memcmp(in + i, "\r\n.\r\n", 5) == 0)
			return i + 5;
	return 0;
}

/* Bare CR and bare LF as CR LF, and a final CR LF when the text does not end with a line end. */
static void normalize(const uint8_t *in, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\r') {
			buf_append(out, "\r\n", 2);
			if (i + 1 < n && in[i + 1] == '\n')
				i++;
		} else if (in[i] == '\n')
			buf_append(out, "\r\n", 2);
		else
			buf_putc(out, in[i]);
	}
	if (out->len > 0 && out->data[out->len - 1] != '\n')
		buf_append(out, "\r\n", 2);
}

static void no_bare(const struct buf *b)
{
	for (size_t i = 0; i < b->len; i++) {
		if (b->data[i] == '\r')
			CHECK(i + 1 < b->len && b->data[i + 1] == '\n');
		if (b->data[i] == '\n')
			CHECK(i > 0 && b->data[i - 1] == '\r');
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run one, bytes, rnd;
	unsigned cfg;
	uint32_t seed = 2166136261u;
	size_t end;

	if (size < 1)
		return 0;
	cfg = data[0];
	data++;
	size--;
	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 16777619u;

	run_decoder(data, size, cfg, 0, seed, &one);
	run_decoder(data, size, cfg, 1, seed, &bytes);
	run_decoder(data, size, cfg, 2, seed, &rnd);
	same(&one, &bytes);
	same(&one, &rnd);
	end = expected_end(data, size);
	if (end) {
		CHECK(one.st == DOT_END);
		CHECK(one.consumed == end);
	} else {
		CHECK(one.st == DOT_MORE);
		CHECK(one.consumed == size);
	}
	if (!(one.flags & DOT_F_TOO_BIG))
		no_bare(&one.out);
	buf_free(&one.out);
	buf_free(&bytes.out);
	buf_free(&rnd.out);

	/* encoder -> decoder, the encoder also fed in random pieces */
	struct dot_encoder e;
	struct buf enc = BUF_INIT(BUF_NOLIMIT), want = BUF_INIT(BUF_NOLIMIT), got = BUF_INIT(BUF_NOLIMIT);
	struct dot_decoder d;
	size_t off = 0, used;

	dot_encoder_init(&e);
	while (off < size) {
		seed = seed * 1103515245u + 12345u;
		size_t take = (seed >> 16) % 17;
		if (take > size - off)
			take = size - off;
		CHECK(dot_encode(&e, data + off, take, &enc));
		off += take;
	}
	CHECK(dot_encode_finish(&e, &enc));
	no_bare(&enc);
	normalize(data, size, &want);
	dot_decoder_init(&d, DOT_BARE_REJECT, 0, 0);
	CHECK(dot_decode(&d, enc.data, enc.len, &got, &used) == DOT_END);
	CHECK(used == enc.len);
	CHECK(!dot_decoder_failed(&d));
	CHECK(got.len == want.len);
	CHECK(got.len == 0 || memcmp(got.data, want.data, got.len) == 0);
	buf_free(&enc);
	buf_free(&want);
	buf_free(&got);
	return 0;
}
