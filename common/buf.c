/* Byte buffers: see buf.h. Growth doubles, is capped at max, and every size computation is overflow-checked. */
#include "buf.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "log.h"

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->max = max;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void buf_free_wipe(struct buf *b)
{
	if (b->data)
		explicit_bzero(b->data, b->len);
	buf_free(b);
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

bool buf_reserve(struct buf *b, size_t extra)
{
	size_t need, newcap, alloc;

	if (!size_add(b->len, extra, &need) || need > b->max)
		return false;
	if (need <= b->cap && b->data != NULL)
		return true;
	newcap = b->cap ? b->cap : 64;
	while (newcap < need) {
		if (!size_mul(newcap, 2, &newcap)) {
			newcap = need;
			break;
		}
	}
	if (newcap > b->max && b->max != BUF_NOLIMIT)
		newcap = b->max;
	if (newcap < need)
		newcap = need;
	if (!size_add(newcap, 1, &alloc))
		return false;
	b->data = xrealloc(b->data, alloc);
	b->cap = newcap;
	b->data[b->len] = '\0';
	return true;
}

bool buf_append(struct buf *b, const void *p, size_t n)
{
	if (!buf_reserve(b, n))
		return false;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return true;
}

bool buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

bool buf_putc(struct buf *b, int c)
{
	char ch = (char)c;
	return buf_append(b, &ch, 1);
}

bool buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return false;
	if (!buf_reserve(b, (size_t)n))
		return false;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return true;
}

bool buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	bool ok;

	va_start(ap, fmt);
	ok = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return ok;
}

bool buf_append_printable(struct buf *b, const void *p, size_t n, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = p;
	size_t take = n < cap ? n : cap;

	for (size_t i = 0; i < take; i++) {
		unsigned char c = s[i];
		char esc[4] = { '\\', 0, 0, 0 };
		size_t elen = 2;

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			if (!buf_putc(b, c))
				return false;
			continue;
		}
		switch (c) {
		case '\r': esc[1] = 'r'; break;
		case '\n': esc[1] = 'n'; break;
		case '\t': esc[1] = 't'; break;
		case '\\': esc[1] = '\\'; break;
		default:
			esc[1] = 'x';
			esc[2] = hex[c >> 4];
			esc[3] = hex[c & 15];
			elen = 4;
		}
		if (!buf_append(b, esc, elen))
			return false;
	}
	if (take < n)
		return buf_puts(b, "...");
	return true;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

void buf_truncate(struct buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->data[len] = '\0';
	}
}

const char *buf_cstr(const struct buf *b)
{
	return b->data ? b->data : "";
}

char *buf_steal(struct buf *b, size_t *lenp)
{
	char *p;

	if (b->data == NULL && !buf_reserve(b, 0))
		panic("buf_steal: cannot allocate");
	if (b->data == NULL)
		b->data = xcalloc(1, 1);
	p = b->data;
	if (lenp)
		*lenp = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}
