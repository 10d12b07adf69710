/* 8-bit to 7-bit MIME conversion (RFC 6152 §3 downgrade, as Postfix does for a peer without 8BITMIME): only
 * leaf parts with 8-bit bodies are touched; every other byte is copied. See mime.h. */
#include "mime.h"
#include "mime_codec.h"

#include <string.h>

#include "alloc.h"
#include "str.h"

#define CHUNK 65536

bool mime_is_7bit(const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)data[i] >= 0x80 || data[i] == 0)
			return false;
	return true;
}

static bool needs_conversion(const struct mime_part *p)
{
	if (p->flags & (MIME_PART_MULTIPART | MIME_PART_MESSAGE))
		return false;
	if (!(p->flags & (MIME_PART_8BIT | MIME_PART_NUL)))
		return false;
	/* composite types may not be encoded (RFC 2046 §5); an unparsed one stays as it is */
	if (mime_part_is(p, "multipart", NULL) || mime_part_is(p, "message", NULL))
		return false;
	return !p->encoding || str_eq_ci(p->encoding, "7bit") || str_eq_ci(p->encoding, "8bit") ||
	       str_eq_ci(p->encoding, "binary");
}

struct targets {
	const struct mime_part **v;
	size_t n, cap;
};

static void collect(const struct mime_part *p, struct targets *t)
{
	for (; p; p = p->next) {
		if (needs_conversion(p)) {
			if (t->n == t->cap) {
				t->cap = t->cap ? t->cap * 2 : 16;
				t->v = xreallocarray(t->v, t->cap, sizeof(*t->v));
			}
			t->v[t->n++] = p;
		}
		collect(p->children, t);
	}
}

/* Quoted-printable suits text that is mostly ASCII (at most a third 8-bit bytes: accented Latin text); anything else (or text with many 8-bit bytes) is base64. */
static bool use_qp(const struct mime_part *p, const char *body, size_t n)
{
	if (!mime_part_is(p, "text", NULL) || (p->flags & MIME_PART_NUL))
		return false;
	size_t high = 0;
	for (size_t i = 0; i < n; i++)
		high += (unsigned char)body[i] >= 0x80;
	return high * 3 <= n;
}

static bool encode_body(const struct mime_part *p, const char *body, size_t n, bool qp, struct buf *out)
{
	if (qp) {
		struct mime_qp_enc e;
		mime_qp_enc_init(&e, false);
		for (size_t i = 0; i < n; i += CHUNK)
			if (!mime_qp_encode(&e, body + i, n - i < CHUNK ? n - i : CHUNK, out))
				return false;
		return mime_qp_enc_final(&e, out);
	}
	/* base64 of text is of its canonical form, with CRLF line ends */
	bool text = mime_part_is(p, "text", NULL);
	struct mime_b64_enc e;
	mime_b64_enc_init(&e, 76);
	size_t st = 0;
	for (size_t i = 0; i < n; i++) {
		if (text && body[i] == '\n' && (i == 0 || body[i - 1] != '\r')) {
			if (!mime_b64_encode(&e, body + st, i - st, out) || !mime_b64_encode(&e, "\r\n", 2, out))
				return false;
			st = i + 1;
		} else if (i - st >= CHUNK) {
			if (!mime_b64_encode(&e, body + st, i - st, out))
				return false;
			st = i;
		}
	}
	return mime_b64_encode(&e, body + st, n - st, out) && mime_b64_enc_final(&e, out);
}

/* Copy a part's header, dropping its Content-Transfer-Encoding fields and adding lines before the blank line. */
static bool copy_header(const struct mime_message *m, const struct mime_part *p, bool drop_cte,
                        const char *extra, struct buf *out)
{
	struct mime_header h = MIME_HEADER_INIT;
	mime_part_header(m, p, &h);
	const char *base = m->data + p->hdr_off;
	size_t pos = 0;
	bool ok = true;
	for (size_t i = 0; i < h.n && ok; i++) {
		const struct mime_field *f = &h.v[i];
		if (!drop_cte || !mime_field_is(&h, f, "content-transfer-encoding"))
			continue;
		ok = buf_append(out, base + pos, f->off - pos);
		pos = f->off + f->len;
		if (pos < p->hdr_size && base[pos] == '\r')
			pos++;
		if (pos < p->hdr_size && base[pos] == '\n')
			pos++;
	}
	/* the blank line (LF or CRLF) ends the block when there is one */
	size_t blank = p->hdr_size;
	if (h.has_blank) {
		blank--;
		if (blank > pos && base[blank - 1] == '\r')
			blank--;
	}
	bool crlf = h.n > 0 && h.v[0].off + h.v[0].len < p->hdr_size && base[h.v[0].off + h.v[0].len] == '\r';
	if (blank < pos)
		blank = pos;
	ok = ok && buf_append(out, base + pos, blank - pos);
	for (const char *e = extra; ok && *e; e++)
		ok = (*e == '\n' && crlf) ? buf_append(out, "\r\n", 2) : buf_putc(out, *e);
	ok = ok && buf_append(out, base + blank, p->hdr_size - blank);
	mime_header_free(&h);
	return ok;
}

bool mime_7bit_convert(const char *data, size_t len, struct buf *out, bool *changed)
{
	if (changed)
		*changed = false;
	if (mime_is_7bit(data, len))
		return buf_append(out, data, len);
	struct mime_message m;
	mime_message_parse(&m, data, len);
	struct targets t = { NULL, 0, 0 };
	collect(m.root, &t);
	bool ok = true;
	if (t.n == 0) {
		ok = buf_append(out, data, len);
		goto done;
	}
	if (changed)
		*changed = true;
	struct mime_header rh = MIME_HEADER_INIT;
	mime_part_header(&m, m.root, &rh);
	bool need_version = mime_header_find(&rh, "mime-version", 0) == NULL;
	bool root_target = t.v[0] == m.root;
	bool need_ctype = root_target && mime_header_find(&rh, "content-type", 0) == NULL;
	mime_header_free(&rh);

	size_t pos = 0;
	if (need_version && !root_target) {
		ok = copy_header(&m, m.root, false, "MIME-Version: 1.0\n", out);
		pos = m.root->body_off;
	}
	for (size_t i = 0; i < t.n && ok; i++) {
		const struct mime_part *p = t.v[i];
		const char *body = data + p->body_off;
		bool qp = use_qp(p, body, p->body_size);
		struct buf extra = BUF_INIT(BUF_NOLIMIT);
		if (p == m.root && need_version)
			buf_puts(&extra, "MIME-Version: 1.0\n");
		if (p == m.root && need_ctype) {
			/* a non-MIME message: the charset is unknown unless the bytes are UTF-8 */
			struct buf tmp = BUF_INIT(BUF_NOLIMIT);
			mime_charset_to_utf8("utf-8", body, p->body_size, &tmp);
			bool utf8 = tmp.len == p->body_size && memcmp(buf_cstr(&tmp), body, p->body_size) == 0;
			buf_free(&tmp);
			buf_printf(&extra, "Content-Type: text/plain; charset=%s\n", utf8 ? "utf-8" : "unknown-8bit");
		}
		buf_printf(&extra, "Content-Transfer-Encoding: %s\n", qp ? "quoted-printable" : "base64");
		ok = buf_append(out, data + pos, p->hdr_off - pos) && copy_header(&m, p, true, buf_cstr(&extra), out) &&
		     encode_body(p, body, p->body_size, qp, out);
		buf_free(&extra);
		pos = p->body_off + p->body_size;
	}
	ok = ok && buf_append(out, data + pos, len - pos);
	free(t.v);
done:
	mime_message_free(&m);
	return ok;
}
