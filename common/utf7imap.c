/* Modified UTF-7 <-> UTF-8; see utf7imap.h. Base64 here uses ',' instead of '/' and no '=' padding. */
#include <stdint.h>

#include "utf7imap.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static bool is_printable(unsigned char c) { return c >= 0x20 && c <= 0x7e; }

static bool put_utf8(struct buf *out, uint32_t cp)
{
	char t[4];
	size_t n;

	if (cp < 0x80) {
		t[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		t[0] = (char)(0xc0 | (cp >> 6));
		t[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		t[0] = (char)(0xe0 | (cp >> 12));
		t[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		t[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		t[0] = (char)(0xf0 | (cp >> 18));
		t[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		t[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		t[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return buf_append(out, t, n);
}

/* Decode one '&...-' run starting after the '&'; *ip ends after the '-'. */
static bool decode_run(const char *in, size_t len, size_t *ip, struct buf *out)
{
	size_t i = *ip;
	uint32_t bits = 0, hi_surrogate = 0;
	unsigned nbits = 0;
	size_t units = 0;

	for (;; i++) {
		if (i == len)
			return false;	/* unterminated */
		unsigned char c = (unsigned char)in[i];
		if (c == '-')
			break;
		int v = b64_value(c);
		if (v < 0)
			return false;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		uint32_t u = (bits >> nbits) & 0xffff;
		bits &= (1u << nbits) - 1;
		units++;
		if (hi_surrogate) {
			if (u < 0xdc00 || u > 0xdfff)
				return false;
			if (!put_utf8(out, 0x10000 + ((hi_surrogate - 0xd800) << 10) + (u - 0xdc00)))
				return false;
			hi_surrogate = 0;
		} else if (u >= 0xd800 && u <= 0xdbff) {
			hi_surrogate = u;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			return false;
		} else if (u == 0 || (u < 0x80 && is_printable((unsigned char)u))) {
			return false;	/* printable ASCII must stand for itself; NUL never */
		} else if (!put_utf8(out, u)) {
			return false;
		}
	}
	/* leftover bits: fewer than a base64 digit, all zero; at least one unit; no dangling high surrogate */
	if (units == 0 || nbits >= 6 || bits != 0 || hi_surrogate)
		return false;
	*ip = i + 1;
	return true;
}

bool utf7imap_decode(const char *in, size_t len, struct buf *out)
{
	size_t i = 0;
	bool after_run = false;

	while (i < len) {
		unsigned char c = (unsigned char)in[i];
		if (!is_printable(c))
			return false;
		if (c != '&') {
			if (!buf_putc(out, c))
				return false;
			i++;
			after_run = false;
			continue;
		}
		i++;
		if (i < len && in[i] == '-') {
			if (!buf_putc(out, '&'))
				return false;
			i++;
			after_run = false;
			continue;
		}
		if (after_run)
			return false;	/* two adjacent runs: the canonical form is one */
		if (!decode_run(in, len, &i, out))
			return false;
		after_run = true;
	}
	return true;
}

/* Next code point of valid UTF-8 at s[*ip]; false when invalid. */
static bool next_utf8(const unsigned char *s, size_t len, size_t *ip, uint32_t *cp)
{
	size_t i = *ip;
	unsigned char c = s[i];
	uint32_t v, min;
	size_t n;

	if (c < 0x80) {
		*cp = c;
		*ip = i + 1;
		return c != 0;
	}
	if ((c & 0xe0) == 0xc0) {
		v = c & 0x1f;
		n = 1;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		v = c & 0x0f;
		n = 2;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		v = c & 0x07;
		n = 3;
		min = 0x10000;
	} else {
		return false;
	}
	if (len - i - 1 < n)
		return false;
	for (size_t k = 1; k <= n; k++) {
		if ((s[i + k] & 0xc0) != 0x80)
			return false;
		v = (v << 6) | (s[i + k] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return false;
	*cp = v;
	*ip = i + n + 1;
	return true;
}

static bool put_b64_unit(struct buf *out, uint32_t u, uint32_t *bits, unsigned *nbits)
{
	*bits = (*bits << 16) | u;
	*nbits += 16;
	while (*nbits >= 6) {
		*nbits -= 6;
		if (!buf_putc(out, b64[(*bits >> *nbits) & 0x3f]))
			return false;
	}
	*bits &= (1u << *nbits) - 1;
	return true;
}

bool utf7imap_encode(const char *in, size_t len, struct buf *out)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0;
	bool in_run = false;
	uint32_t bits = 0;
	unsigned nbits = 0;

	while (i < len) {
		uint32_t cp;
		if (!next_utf8(s, len, &i, &cp))
			return false;
		if (cp < 0x80 && is_printable((unsigned char)cp)) {
			if (in_run) {
				if (nbits && !buf_putc(out, b64[(bits << (6 - nbits)) & 0x3f]))
					return false;
				if (!buf_putc(out, '-'))
					return false;
				in_run = false;
				bits = nbits = 0;
			}
			if (!buf_putc(out, (int)cp) || (cp == '&' && !buf_putc(out, '-')))
				return false;
			continue;
		}
		if (!in_run) {
			if (!buf_putc(out, '&'))
				return false;
			in_run = true;
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			if (!put_b64_unit(out, 0xd800 + (cp >> 10), &bits, &nbits) ||
			    !put_b64_unit(out, 0xdc00 + (cp & 0x3ff), &bits, &nbits))
				return false;
		} else if (!put_b64_unit(out, cp, &bits, &nbits)) {
			return false;
		}
	}
	if (in_run) {
		if (nbits && !buf_putc(out, b64[(bits << (6 - nbits)) & 0x3f]))
			return false;
		if (!buf_putc(out, '-'))
			return false;
	}
	return true;
}

bool utf7imap_is_plain(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!is_printable((unsigned char)s[i]) || s[i] == '&')
			return false;
	return true;
}
