/* DKIM tag lists, header and body canonicalisation, header splitting and base64: the parsing half of DKIM,
 * shared by signing and verification and covered by fuzz_dkim_sig. */
#include <openssl/evp.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "dkim.h"
#include "log.h"
#include "str.h"

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Skip FWS: white space, and a line end only when white space follows it. */
static size_t skip_fws(const char *s, size_t i, size_t len)
{
	for (;;) {
		if (i < len && is_wsp(s[i])) {
			i++;
		} else if (i + 1 < len && s[i] == '\n' && is_wsp(s[i + 1])) {
			i++;
		} else if (i + 2 < len && s[i] == '\r' && s[i + 1] == '\n' && is_wsp(s[i + 2])) {
			i += 2;
		} else {
			return i;
		}
	}
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_valchar(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != ';';
}

bool dkim_taglist_parse(const char *text, size_t len, struct dkim_taglist *tl, struct buf *err)
{
	size_t i = 0;

	tl->n = 0;
	for (;;) {
		i = skip_fws(text, i, len);
		if (i == len) {
			if (tl->n == 0) {
				buf_puts(err, "empty tag list");
				return false;
			}
			return true;	/* after a final ';' */
		}
		size_t ns = i;
		if (!is_alpha(text[i])) {
			buf_puts(err, "bad tag name");
			return false;
		}
		while (i < len && (is_alpha(text[i]) || (text[i] >= '0' && text[i] <= '9') || text[i] == '_'))
			i++;
		size_t ne = i;
		i = skip_fws(text, i, len);
		if (i == len || text[i] != '=') {
			buf_puts(err, "tag without '='");
			return false;
		}
		i = skip_fws(text, i + 1, len);
		size_t vs = i, ve = i;
		while (i < len && text[i] != ';') {
			if (is_valchar((unsigned char)text[i])) {
				ve = ++i;
				continue;
			}
			size_t j = skip_fws(text, i, len);
			if (j == i) {
				buf_puts(err, "bad character in tag value");
				return false;
			}
			i = j;
		}
		if (tl->n == DKIM_MAX_TAGS) {
			buf_puts(err, "too many tags");
			return false;
		}
		for (size_t k = 0; k < tl->n; k++) {
			if (tl->tags[k].nlen == ne - ns && memcmp(tl->tags[k].name, text + ns, ne - ns) == 0) {
				buf_printf(err, "tag %s given twice", log_safe(text + ns, ne - ns, 16));
				return false;
			}
		}
		tl->tags[tl->n++] = (struct dkim_tag){ text + ns, text + vs, ne - ns, ve - vs };
		if (i == len)
			return true;
		i++;	/* ';' */
	}
}

const struct dkim_tag *dkim_taglist_get(const struct dkim_taglist *tl, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < tl->n; i++)
		if (tl->tags[i].nlen == n && memcmp(tl->tags[i].name, name, n) == 0)
			return &tl->tags[i];
	return NULL;
}

bool dkim_canon_header(enum dkim_canon c, const char *field, size_t len, bool with_crlf, struct buf *out)
{
	/* the field's own final line end is dropped here and added back as CRLF */
	if (len && field[len - 1] == '\n')
		len--;
	if (len && field[len - 1] == '\r')
		len--;
	if (c == DKIM_CANON_SIMPLE) {
		/* bare LF inside a folded field counts as CRLF */
		bool ok = true;
		for (size_t i = 0; i < len && ok; i++) {
			if (field[i] == '\n' && (i == 0 || field[i - 1] != '\r'))
				ok = buf_putc(out, '\r');
			if (ok)
				ok = buf_putc(out, field[i]);
		}
		return ok && (!with_crlf || buf_puts(out, "\r\n"));
	}
	const char *colon = memchr(field, ':', len);
	if (!colon)
		return false;
	size_t nlen = (size_t)(colon - field);
	while (nlen && is_wsp(field[nlen - 1]))
		nlen--;
	bool ok = true;
	for (size_t i = 0; i < nlen && ok; i++)
		ok = buf_putc(out, str_ascii_lower((unsigned char)field[i]));
	ok = ok && buf_putc(out, ':');
	bool wsp = false, any = false;
	for (size_t i = (size_t)(colon - field) + 1; i < len && ok; i++) {
		char ch = field[i];
		if (ch == '\r' || ch == '\n')
			continue;	/* unfold */
		if (is_wsp(ch)) {
			wsp = true;
			continue;
		}
		if (wsp && any)
			ok = buf_putc(out, ' ');
		wsp = false;
		any = true;
		if (ok)
			ok = buf_putc(out, ch);
	}
	return ok && (!with_crlf || buf_puts(out, "\r\n"));
}

struct dkim_body {
	enum dkim_canon canon;
	EVP_MD_CTX *md;
	uint64_t limit, total, hashed;
	uint64_t empty_lines;	/* held back: they only count when text follows */
	bool line_content, wsp, cr;
	unsigned char chunk[4096];
	size_t clen;
};

struct dkim_body *dkim_body_new(enum dkim_canon c, uint64_t limit)
{
	struct dkim_body *b = xcalloc(1, sizeof(*b));
	b->canon = c;
	b->limit = limit;
	if (!(b->md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(b->md, EVP_sha256(), NULL) != 1)
		fatalx("dkim: cannot set up SHA-256");
	return b;
}

static void flush_chunk(struct dkim_body *b)
{
	if (b->clen && EVP_DigestUpdate(b->md, b->chunk, b->clen) != 1)
		fatalx("dkim: SHA-256 update failed");
	b->clen = 0;
}

static void emit(struct dkim_body *b, const char *p, size_t n)
{
	b->total += n;
	for (size_t i = 0; i < n && b->hashed < b->limit; i++) {
		if (b->clen == sizeof(b->chunk))
			flush_chunk(b);
		b->chunk[b->clen++] = (unsigned char)p[i];
		b->hashed++;
	}
}

static void content(struct dkim_body *b, char ch)
{
	if (!b->line_content) {
		for (; b->empty_lines; b->empty_lines--)
			emit(b, "\r\n", 2);
		b->line_content = true;
		if (b->wsp) {	/* leading white space stays as one SP */
			emit(b, " ", 1);
			b->wsp = false;
		}
	} else if (b->wsp) {
		emit(b, " ", 1);
		b->wsp = false;
	}
	emit(b, &ch, 1);
}

static void line_end(struct dkim_body *b)
{
	if (b->line_content)
		emit(b, "\r\n", 2);
	else
		b->empty_lines++;
	b->line_content = b->wsp = false;
}

void dkim_body_update(struct dkim_body *b, const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char ch = p[i];
		if (b->cr) {
			b->cr = false;
			if (ch == '\n') {
				line_end(b);
				continue;
			}
			content(b, '\r');
		}
		if (ch == '\r')
			b->cr = true;
		else if (ch == '\n')
			line_end(b);
		else if (b->canon == DKIM_CANON_RELAXED && is_wsp(ch))
			b->wsp = true;
		else
			content(b, ch);
	}
}

void dkim_body_final(struct dkim_body *b, unsigned char hash[32], uint64_t *total)
{
	unsigned int n = 0;
	if (b->cr) {
		b->cr = false;
		content(b, '\r');
	}
	if (b->line_content)
		line_end(b);
	/* simple: an empty body is one CRLF; relaxed: an empty body is empty */
	if (b->canon == DKIM_CANON_SIMPLE && b->total == 0)
		emit(b, "\r\n", 2);
	flush_chunk(b);
	if (EVP_DigestFinal_ex(b->md, hash, &n) != 1 || n != 32)
		fatalx("dkim: SHA-256 final failed");
	if (total)
		*total = b->total;
}

void dkim_body_free(struct dkim_body **bp)
{
	if (!*bp)
		return;
	EVP_MD_CTX_free((*bp)->md);
	xfree(bp);
}

size_t dkim_split_header(const char *msg, size_t len, struct dkim_field **fields, size_t *body_off)
{
	size_t i = 0, n = 0, cap = 0;
	*fields = NULL;
	while (i < len) {
		if (msg[i] == '\n') {
			i++;
			break;
		}
		if (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n') {
			i += 2;
			break;
		}
		size_t start = i;
		for (;;) {
			while (i < len && msg[i] != '\n')
				i++;
			if (i < len)
				i++;
			if (i >= len || !is_wsp(msg[i]))
				break;
		}
		const char *colon = memchr(msg + start, ':', i - start);
		if (!colon)
			continue;	/* not a header field: ignored, neither signed nor an error */
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			*fields = xreallocarray(*fields, cap, sizeof(**fields));
		}
		size_t nlen = (size_t)(colon - (msg + start));
		while (nlen && is_wsp(msg[start + nlen - 1]))
			nlen--;
		(*fields)[n++] = (struct dkim_field){ msg + start, i - start, nlen, false };
	}
	*body_off = i;
	return n;
}

bool dkim_b64_decode(const char *s, size_t len, struct buf *out)
{
	struct buf clean = BUF_INIT(len + 1);
	size_t pad = 0;
	bool ok = true;

	for (size_t i = 0; i < len && ok; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			pad++;
		} else if (pad || !(is_alpha((char)c) || (c >= '0' && c <= '9') || c == '+' || c == '/')) {
			ok = false;
			break;
		}
		ok = buf_putc(&clean, c);
	}
	if (!ok || clean.len % 4 != 0 || pad > 2) {
		buf_free(&clean);
		return false;
	}
	if (clean.len == 0) {
		buf_free(&clean);
		return true;
	}
	size_t need = clean.len / 4 * 3;
	if (!buf_reserve(out, need)) {
		buf_free(&clean);
		return false;
	}
	int n = EVP_DecodeBlock((unsigned char *)out->data + out->len, (unsigned char *)clean.data, (int)clean.len);
	buf_free(&clean);
	if (n < 0 || (size_t)n != need)
		return false;
	out->len += need - pad;
	out->data[out->len] = '\0';
	return true;
}

bool dkim_b64_encode(const unsigned char *p, size_t len, struct buf *out)
{
	size_t need = (len + 2) / 3 * 4;
	if (len > (size_t)1 << 28 || !buf_reserve(out, need + 1))
		return false;
	int n = EVP_EncodeBlock((unsigned char *)out->data + out->len, p, (int)len);
	out->len += (size_t)n;
	out->data[out->len] = '\0';
	return true;
}
