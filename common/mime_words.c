/* Charset conversion to UTF-8 (iconv, with our own checks for the common cases) and RFC 2047 encoded-words in
 * unstructured header text. Output is always valid UTF-8: whatever cannot be converted becomes U+FFFD, so
 * callers can hand it to IMAP clients and logs without further checks. See mime_codec.h. */
#include "mime_codec.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "str.h"

#define REPLACEMENT "\xEF\xBF\xBD"
#define WORD_MAX 1024          /* longest encoded-word looked at (RFC 2047 says 75; real mail is sloppier) */

/* Length of the valid UTF-8 sequence at p, 0 when invalid (RFC 3629: no overlongs, surrogates, > U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	if (c < 0x80)
		return 1;
	size_t len;
	unsigned min;
	unsigned cp;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2; min = 0x80; cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3; min = 0x800; cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4; min = 0x10000; cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

static bool utf8_copy(const unsigned char *p, size_t n, bool ascii_only, struct buf *out)
{
	size_t i = 0;
	while (i < n) {
		size_t run = i;
		while (run < n && p[run] < 0x80)
			run++;
		if (run > i && !buf_append(out, p + i, run - i))
			return false;
		i = run;
		if (i >= n)
			break;
		size_t l = ascii_only ? 0 : utf8_seq(p + i, n - i);
		if (l == 0) {
			if (!buf_puts(out, REPLACEMENT))
				return false;
			i++;
		} else {
			if (!buf_append(out, p + i, l))
				return false;
			i += l;
		}
	}
	return true;
}

bool mime_charset_to_utf8(const char *charset, const void *in, size_t n, struct buf *out)
{
	const unsigned char *p = in;
	if (str_eq_ci(charset, "utf-8") || str_eq_ci(charset, "utf8"))
		return utf8_copy(p, n, false, out);
	if (str_eq_ci(charset, "us-ascii") || str_eq_ci(charset, "ascii"))
		return utf8_copy(p, n, true, out);
	/* a charset name is a token: refuse anything else before giving it to iconv */
	size_t cl = strlen(charset);
	bool sane = cl > 0 && cl < 64;
	for (size_t i = 0; sane && i < cl; i++) {
		unsigned char c = (unsigned char)charset[i];
		sane = c > 32 && c < 127 && c != '/' && c != ',';
	}
	iconv_t cd = sane ? iconv_open("UTF-8", charset) : (iconv_t)-1;
	if (cd == (iconv_t)-1)
		return utf8_copy(p, n, false, out);   /* unknown: keep what already is UTF-8 */
	/* glibc's decoders pass some invalid sequences through (UTF-8 aliases let code points above U+10FFFF by),
	 * so what iconv writes is checked like UTF-8 input before it reaches out */
	struct buf conv = BUF_INIT(BUF_NOLIMIT);
	bool ok = true;
	char tmp[1024];
	char *ip = (char *)(uintptr_t)p;
	size_t il = n;
	while (il > 0 && ok) {
		char *op = tmp;
		size_t ol = sizeof(tmp);
		size_t r = iconv(cd, &ip, &il, &op, &ol);
		int err = errno;
		if (op > tmp && !buf_append(&conv, tmp, (size_t)(op - tmp)))
			ok = false;
		if (r == (size_t)-1 && ok) {
			if (err == E2BIG)
				continue;
			/* EILSEQ or EINVAL (truncated at the end): replace one byte and go on */
			if (!buf_puts(&conv, REPLACEMENT))
				ok = false;
			ip++;
			il--;
			iconv(cd, NULL, NULL, NULL, NULL);
		}
	}
	if (ok) {
		char *op = tmp;
		size_t ol = sizeof(tmp);
		iconv(cd, NULL, NULL, &op, &ol);
		if (op > tmp && !buf_append(&conv, tmp, (size_t)(op - tmp)))
			ok = false;
	}
	iconv_close(cd);
	if (ok)
		ok = utf8_copy((const unsigned char *)(conv.data ? conv.data : ""), conv.len, false, out);
	buf_free(&conv);
	return ok;
}

/* ---- RFC 2047 ---- */

struct word {
	size_t len;            /* bytes of the whole "=?...?=" */
	char charset[64];
	char enc;              /* 'B' or 'Q' */
	size_t text_off, text_len;
};

/* Recognise an encoded-word at s[0..n). */
static bool word_parse(const char *s, size_t n, struct word *w)
{
	if (n < 8 || s[0] != '=' || s[1] != '?')
		return false;
	size_t i = 2;
	size_t cs = i;
	while (i < n && i - cs < sizeof(w->charset) && s[i] != '?' && (unsigned char)s[i] > 32 &&
	       (unsigned char)s[i] < 127)
		i++;
	if (i >= n || s[i] != '?' || i == cs || i - cs >= sizeof(w->charset))
		return false;
	memcpy(w->charset, s + cs, i - cs);
	w->charset[i - cs] = '\0';
	char *star = strchr(w->charset, '*');   /* RFC 2231 §5: charset*language */
	if (star)
		*star = '\0';
	i++;
	if (i + 1 >= n || s[i + 1] != '?')
		return false;
	w->enc = (char)(s[i] & ~0x20);
	if (w->enc != 'B' && w->enc != 'Q')
		return false;
	i += 2;
	w->text_off = i;
	while (i + 1 < n && i < WORD_MAX && !(s[i] == '?' && s[i + 1] == '=')) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 32 || c >= 127)
			return false;
		i++;
	}
	if (i + 1 >= n || s[i] != '?' || s[i + 1] != '=')
		return false;
	w->text_len = i - w->text_off;
	w->len = i + 2;
	return true;
}

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

static void q_decode(const char *s, size_t n, struct buf *raw)
{
	for (size_t i = 0; i < n; i++) {
		int h, l;
		if (s[i] == '_') {
			buf_putc(raw, ' ');
		} else if (s[i] == '=' && i + 2 < n &&
		           (h = hexv((unsigned char)s[i + 1])) >= 0 && (l = hexv((unsigned char)s[i + 2])) >= 0) {
			buf_putc(raw, h * 16 + l);
			i += 2;
		} else {
			buf_putc(raw, s[i]);
		}
	}
}

/* Adjacent words in one charset are converted together: a multi-byte character may be split between them. */
struct pending {
	struct buf raw;
	char charset[64];
};

static bool pending_flush(struct pending *pd, struct buf *out)
{
	bool ok = true;
	if (pd->raw.len > 0)
		ok = mime_charset_to_utf8(pd->charset, pd->raw.data, pd->raw.len, out);
	buf_reset(&pd->raw);
	pd->charset[0] = '\0';
	return ok;
}

bool mime_words_decode(const char *s, size_t n, struct buf *out)
{
	struct pending pd = { BUF_INIT(BUF_NOLIMIT), "" };
	bool ok = true;
	bool prev_word = false;     /* the last thing emitted was an encoded-word */
	size_t i = 0;
	while (i < n && ok) {
		struct word w;
		if (s[i] == '=' && word_parse(s + i, n - i, &w)) {
			if (pd.raw.len > 0 && !str_eq_ci(pd.charset, w.charset))
				ok = pending_flush(&pd, out);
			str_copy(pd.charset, sizeof(pd.charset), w.charset);
			const char *t = s + i + w.text_off;
			if (w.enc == 'B')
				(void)mime_b64_decode_all(t, w.text_len, &pd.raw);
			else
				q_decode(t, w.text_len, &pd.raw);
			i += w.len;
			prev_word = true;
			continue;
		}
		if (prev_word) {
			/* white space (and folding) between two encoded-words is dropped */
			size_t j = i;
			while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r' || s[j] == '\n'))
				j++;
			struct word w2;
			if (j > i && j < n && s[j] == '=' && word_parse(s + j, n - j, &w2)) {
				i = j;
				continue;
			}
			prev_word = false;
		}
		ok = pending_flush(&pd, out);
		/* plain text up to the next possible word, folding removed */
		size_t j = i + 1;
		while (j < n && s[j] != '=')
			j++;
		for (size_t k = i; k < j && ok;) {
			size_t e = k;
			while (e < j && s[e] != '\r' && s[e] != '\n')
				e++;
			ok = utf8_copy((const unsigned char *)s + k, e - k, false, out);
			while (e < j && (s[e] == '\r' || s[e] == '\n'))
				e++;
			k = e;
		}
		i = j;
	}
	if (ok)
		ok = pending_flush(&pd, out);
	buf_free(&pd.raw);
	return ok;
}

bool mime_words_encode(const char *s, size_t n, struct buf *out)
{
	bool plain = true;
	for (size_t i = 0; i < n && plain; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 127 || (c < 32 && c != '\t') || (c == '=' && i + 1 < n && s[i + 1] == '?'))
			plain = false;
	}
	if (plain)
		return buf_append(out, s, n);
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s;
	size_t wlen = 0;   /* payload bytes in the current word */
	bool open = false;
	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq(p + i, n - i);
		char enc[16];
		size_t el = 0;
		const unsigned char *ch = p + i;
		size_t cl = l ? l : 1;
		for (size_t k = 0; k < cl; k++) {
			unsigned char c = l ? ch[k] : 0;
			if (!l) {      /* invalid byte: encode U+FFFD */
				el = 0;
				for (const char *r = REPLACEMENT; *r; r++) {
					enc[el++] = '=';
					enc[el++] = hex[(unsigned char)*r >> 4];
					enc[el++] = hex[*r & 15];
				}
				break;
			}
			if (c == ' ')
				enc[el++] = '_';
			else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			         strchr("!*+-/", c))
				enc[el++] = (char)c;
			else {
				enc[el++] = '=';
				enc[el++] = hex[c >> 4];
				enc[el++] = hex[c & 15];
			}
		}
		if (open && wlen + el > 63) {
			if (!buf_puts(out, "?=\n "))
				return false;
			open = false;
		}
		if (!open) {
			if (!buf_puts(out, "=?utf-8?q?"))
				return false;
			open = true;
			wlen = 0;
		}
		if (!buf_append(out, enc, el))
			return false;
		wlen += el;
		i += cl;
	}
	return !open || buf_puts(out, "?=");
}
