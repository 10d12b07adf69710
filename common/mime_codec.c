/* Streaming base64 and quoted-printable coders (RFC 2045 §6.7, §6.8). Each keeps only a few bytes of state
 * between calls, so a 50 MB attachment is converted chunk by chunk. Decoders are forgiving the way RFC 2045
 * asks (junk skipped or passed through, counted) and never fail on bad input. See mime_codec.h. */
#include "mime_codec.h"

#include <string.h>

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* -1: not in the alphabet; -2: white space */
static signed char b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (signed char)(c - 'A');
	if (c >= 'a' && c <= 'z')
		return (signed char)(c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (signed char)(c - '0' + 52);
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
		return -2;
	return -1;
}

void mime_b64_dec_init(struct mime_b64_dec *d)
{
	memset(d, 0, sizeof(*d));
}

bool mime_b64_decode(struct mime_b64_dec *d, const void *in, size_t n, struct buf *out)
{
	const unsigned char *p = in;
	unsigned char chunk[256];
	size_t nc = 0;
	for (size_t i = 0; i < n; i++) {
		if (d->ended)
			break;
		signed char v = b64val(p[i]);
		if (v == -2)
			continue;
		if (p[i] == '=') {
			d->ended = true;
			break;
		}
		if (v < 0) {
			d->invalid++;
			continue;
		}
		d->acc = (d->acc << 6) | (unsigned)v;
		d->bits += 6;
		if (d->bits >= 8) {
			d->bits -= 8;
			chunk[nc++] = (unsigned char)(d->acc >> d->bits);
			d->acc &= (1u << d->bits) - 1;
			if (nc == sizeof(chunk)) {
				if (!buf_append(out, chunk, nc))
					return false;
				nc = 0;
			}
		}
	}
	return nc == 0 || buf_append(out, chunk, nc);
}

bool mime_b64_dec_final(struct mime_b64_dec *d)
{
	/* 6 pending bits: a lone character in the last quantum, a byte's worth of data lost */
	return d->bits != 6 && d->invalid == 0;
}

void mime_b64_enc_init(struct mime_b64_enc *e, int linelen)
{
	memset(e, 0, sizeof(*e));
	e->linelen = linelen > 0 ? (linelen / 4) * 4 : 0;
	if (linelen > 0 && e->linelen == 0)
		e->linelen = 4;
}

static bool b64_quad(struct mime_b64_enc *e, const unsigned char *s, int n, struct buf *out)
{
	char q[5];
	unsigned v = (unsigned)s[0] << 16 | (n > 1 ? (unsigned)s[1] << 8 : 0) | (n > 2 ? s[2] : 0);
	q[0] = b64chars[(v >> 18) & 63];
	q[1] = b64chars[(v >> 12) & 63];
	q[2] = n > 1 ? b64chars[(v >> 6) & 63] : '=';
	q[3] = n > 2 ? b64chars[v & 63] : '=';
	if (e->linelen && e->col >= e->linelen) {
		if (!buf_putc(out, '\n'))
			return false;
		e->col = 0;
	}
	e->col += 4;
	return buf_append(out, q, 4);
}

bool mime_b64_encode(struct mime_b64_enc *e, const void *in, size_t n, struct buf *out)
{
	const unsigned char *p = in;
	size_t i = 0;
	while (e->npend > 0 && e->npend < 3 && i < n)
		e->pend[e->npend++] = p[i++];
	if (e->npend == 3) {
		if (!b64_quad(e, e->pend, 3, out))
			return false;
		e->npend = 0;
	}
	for (; i + 3 <= n; i += 3)
		if (!b64_quad(e, p + i, 3, out))
			return false;
	while (i < n)
		e->pend[e->npend++] = p[i++];
	return true;
}

bool mime_b64_enc_final(struct mime_b64_enc *e, struct buf *out)
{
	if (e->npend > 0 && !b64_quad(e, e->pend, e->npend, out))
		return false;
	e->npend = 0;
	if (e->linelen && e->col > 0) {
		e->col = 0;
		return buf_putc(out, '\n');
	}
	return true;
}

/* ---- quoted-printable ---- */

static int hexv(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

void mime_qp_dec_init(struct mime_qp_dec *d)
{
	memset(d, 0, sizeof(*d));
}

bool mime_qp_decode(struct mime_qp_dec *d, const void *in, size_t n, struct buf *out)
{
	const unsigned char *p = in;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (d->nhold > 0 && d->hold[0] == '=') {
			if (d->nhold == 1) {
				if (hexv(c) >= 0) {
					d->hold[d->nhold++] = (char)c;
					continue;
				}
				if (c == '\n') {          /* soft line break */
					d->nhold = 0;
					continue;
				}
				if (c == '\r' || c == ' ' || c == '\t')
					continue;         /* "=  \r\n": white space after a soft break marker */
				d->invalid++;
				if (!buf_putc(out, '='))
					return false;
				d->nhold = 0;
			} else {
				int h = hexv((unsigned char)d->hold[1]), l = hexv(c);
				d->nhold = 0;
				if (l >= 0) {
					if (!buf_putc(out, h * 16 + l))
						return false;
					continue;
				}
				d->invalid++;
				if (!buf_append(out, d->hold, 2))
					return false;
			}
		}
		if (c == ' ' || c == '\t' || c == '\r') {
			if (d->nhold == sizeof(d->hold)) {
				if (!buf_append(out, d->hold, d->nhold))
					return false;
				d->nhold = 0;
			}
			d->hold[d->nhold++] = (char)c;
			continue;
		}
		if (c == '\n') {
			d->nhold = 0;   /* trailing white space is padding added in transport */
			if (!buf_putc(out, '\n'))
				return false;
			continue;
		}
		if (d->nhold > 0) {
			if (!buf_append(out, d->hold, d->nhold))
				return false;
			d->nhold = 0;
		}
		if (c == '=') {
			d->hold[0] = '=';
			d->nhold = 1;
			continue;
		}
		if (!buf_putc(out, c))
			return false;
	}
	return true;
}

bool mime_qp_dec_final(struct mime_qp_dec *d, struct buf *out)
{
	bool ok = true;
	if (d->nhold == 2 && d->hold[0] == '=') {
		d->invalid++;
		ok = buf_append(out, d->hold, 2);
	}
	d->nhold = 0;    /* a lone '=' is a soft break at the end; white space at the end is trailing */
	return ok;
}

void mime_qp_enc_init(struct mime_qp_enc *e, bool binary)
{
	memset(e, 0, sizeof(*e));
	e->binary = binary;
}

#define QP_MAXCOL 75   /* 76 with the '=' of a soft break */

static bool qp_put(struct mime_qp_enc *e, unsigned char c, bool force, struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	bool enc = force || c < 32 || c > 126 || c == '=';
	int len = enc ? 3 : 1;
	if (e->col + len > QP_MAXCOL) {
		if (!buf_append(out, "=\n", 2))
			return false;
		e->col = 0;
	}
	/* "." and "From " at a line start get mangled in transit; "-" so that no line (after a soft break either)
	 * can look like a MIME boundary */
	if (e->col == 0 && (c == '.' || c == 'F' || c == '-')) {
		enc = true;
		len = 3;
	}
	e->col += len;
	if (!enc)
		return buf_putc(out, c);
	char q[3] = { '=', hex[c >> 4], hex[c & 15] };
	return buf_append(out, q, 3);
}

bool mime_qp_encode(struct mime_qp_enc *e, const void *in, size_t n, struct buf *out)
{
	const unsigned char *p = in;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (!e->binary) {
			if (e->cr && c != '\n') {
				if (e->ws && !qp_put(e, (unsigned char)e->ws, false, out))
					return false;
				e->ws = 0;
				if (!qp_put(e, '\r', true, out))
					return false;
			}
			e->cr = false;
			if (c == '\r') {
				e->cr = true;
				continue;
			}
			if (c == '\n') {
				if (e->ws && !qp_put(e, (unsigned char)e->ws, true, out))
					return false;
				e->ws = 0;
				if (!buf_putc(out, '\n'))
					return false;
				e->col = 0;
				continue;
			}
		}
		if (e->ws) {
			if (!qp_put(e, (unsigned char)e->ws, false, out))
				return false;
			e->ws = 0;
		}
		if (c == ' ' || c == '\t') {
			e->ws = (char)c;
			continue;
		}
		if (!qp_put(e, c, false, out))
			return false;
	}
	return true;
}

bool mime_qp_enc_final(struct mime_qp_enc *e, struct buf *out)
{
	if (e->ws && !qp_put(e, (unsigned char)e->ws, true, out))
		return false;
	e->ws = 0;
	if (e->cr && !qp_put(e, '\r', true, out))
		return false;
	e->cr = false;
	return true;
}

bool mime_b64_decode_all(const void *in, size_t n, struct buf *out)
{
	struct mime_b64_dec d;
	mime_b64_dec_init(&d);
	if (!mime_b64_decode(&d, in, n, out))
		return false;
	return mime_b64_dec_final(&d);
}

bool mime_b64_encode_all(const void *in, size_t n, int linelen, struct buf *out)
{
	struct mime_b64_enc e;
	mime_b64_enc_init(&e, linelen);
	return mime_b64_encode(&e, in, n, out) && mime_b64_enc_final(&e, out);
}

bool mime_qp_decode_all(const void *in, size_t n, struct buf *out)
{
	struct mime_qp_dec d;
	mime_qp_dec_init(&d);
	return mime_qp_decode(&d, in, n, out) && mime_qp_dec_final(&d, out);
}

bool mime_qp_encode_all(const void *in, size_t n, bool binary, struct buf *out)
{
	struct mime_qp_enc e;
	mime_qp_enc_init(&e, binary);
	return mime_qp_encode(&e, in, n, out) && mime_qp_enc_final(&e, out);
}
