/* imapd COMPRESS=DEFLATE (RFC 4978): raw deflate (zlib, window 2^15, no header) in both directions, as a codec
 * on the session's stream, so it sits inside TLS when TLS is on. The output is flushed with Z_SYNC_FLUSH where
 * the stream flushes, and with Z_FULL_FLUSH after every tagged response (session.c): the dictionary is reset
 * there, so what one command returned cannot shape how well the next one compresses (CRIME-style guessing of
 * secrets from compressed sizes needs shared history). */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "alloc.h"
#include "cmdtab.h"
#include "log.h"
#include "str.h"

#define DEFLATE_LEVEL 6
#define DEFLATE_WBITS (-15)	/* raw deflate, 32 KiB window */
#define DEFLATE_CHUNK 16384

struct zcodec {
	z_stream in, out;
};

static bool z_decode(void *ctx, const unsigned char **in, size_t *inlen, void *out, size_t outcap, size_t *outlen,
		     struct buf *err)
{
	struct zcodec *z = ctx;
	uInt take = *inlen > UINT32_MAX ? UINT32_MAX : (uInt)*inlen;

	z->in.next_in = (Bytef *)*in;
	z->in.avail_in = take;
	z->in.next_out = out;
	z->in.avail_out = outcap > UINT32_MAX ? UINT32_MAX : (uInt)outcap;
	int rc = inflate(&z->in, Z_SYNC_FLUSH);
	*outlen = (size_t)((unsigned char *)z->in.next_out - (unsigned char *)out);
	*inlen -= take - z->in.avail_in;
	*in = z->in.next_in;
	if (rc == Z_OK || rc == Z_BUF_ERROR)	/* BUF_ERROR: no progress possible without more input */
		return true;
	buf_printf(err, "COMPRESS: %s", rc == Z_STREAM_END ? "the client ended its deflate stream" :
		   z->in.msg ? z->in.msg : "corrupt deflate data");
	return false;
}

static bool z_encode(void *ctx, const void *in, size_t n, enum stream_codec_flush fl, struct buf *out)
{
	struct zcodec *z = ctx;
	int flush = fl == STREAM_CODEC_FULL ? Z_FULL_FLUSH : fl == STREAM_CODEC_SYNC ? Z_SYNC_FLUSH : Z_NO_FLUSH;
	const unsigned char *p = in;

	do {
		uInt take = n > UINT32_MAX ? UINT32_MAX : (uInt)n;
		z->out.next_in = (Bytef *)p;
		z->out.avail_in = take;
		int f = take == n ? flush : Z_NO_FLUSH;
		do {
			if (!buf_reserve(out, DEFLATE_CHUNK))
				return false;
			z->out.next_out = (Bytef *)out->data + out->len;
			z->out.avail_out = DEFLATE_CHUNK;
			int rc = deflate(&z->out, f);
			if (rc == Z_STREAM_ERROR)
				return false;
			out->len += DEFLATE_CHUNK - z->out.avail_out;
		} while (z->out.avail_out == 0);
		p += take;
		n -= take;
	} while (n > 0);
	return true;
}

static void z_free(void *ctx)
{
	struct zcodec *z = ctx;

	inflateEnd(&z->in);
	deflateEnd(&z->out);
	free(z);
}

void imapd_cmd_compress(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	const char *mech;

	(void)uid;
	if (nargs != 1 || !imap_arg_atom(&args[0], &mech)) {
		imapd_bad(sess, "COMPRESS needs a mechanism");
		return;
	}
	if (!str_eq_ci(mech, "DEFLATE")) {
		imapd_bad(sess, "COMPRESS offers DEFLATE only");
		return;
	}
	if (stream_has_codec(sess->s)) {
		imapd_no(sess, "[COMPRESSIONACTIVE] DEFLATE is on already");
		return;
	}
	struct zcodec *z = xcalloc(1, sizeof(*z));
	if (inflateInit2(&z->in, DEFLATE_WBITS) != Z_OK) {
		free(z);
		imapd_no(sess, "[SERVERBUG] cannot start compression");
		return;
	}
	if (deflateInit2(&z->out, DEFLATE_LEVEL, Z_DEFLATED, DEFLATE_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		inflateEnd(&z->in);
		free(z);
		imapd_no(sess, "[SERVERBUG] cannot start compression");
		return;
	}
	/* the OK goes out uncompressed; everything after it, both ways, is compressed */
	imapd_ok(sess, "DEFLATE active");
	if (stream_flush(sess->s) != STREAM_OK) {
		z_free(z);
		return;
	}
	struct stream_codec c = { .decode = z_decode, .encode = z_encode, .free = z_free, .ctx = z };
	stream_set_codec(sess->s, &c);
}
