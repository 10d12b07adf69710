/* JSON string writer (see json.h). */
#include <stdint.h>
#include <string.h>

#include "json.h"

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 when it is not one (overlong, surrogate,
 * past U+10FFFF or truncated). */
static size_t utf8_len(const unsigned char *p, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t c, min;
	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	} else if ((p[0] & 0xe0) == 0xc0) {
		len = 2, c = p[0] & 0x1f, min = 0x80;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3, c = p[0] & 0x0f, min = 0x800;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4, c = p[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

void json_put_strn(struct buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	buf_putc(b, '"');
	for (size_t i = 0; i < n;) {
		uint32_t c;
		size_t k = utf8_len(p + i, n - i, &c);
		if (k == 0) {
			buf_puts(b, "\\ufffd");
			i++;
			continue;
		}
		switch (c) {
		case '"': buf_puts(b, "\\\""); break;
		case '\\': buf_puts(b, "\\\\"); break;
		case '\n': buf_puts(b, "\\n"); break;
		case '\r': buf_puts(b, "\\r"); break;
		case '\t': buf_puts(b, "\\t"); break;
		default:
			/* U+2028/9 are valid JSON but end lines in JavaScript and some line-based readers */
			if (c < 0x20 || c == 0x7f || c == 0x2028 || c == 0x2029)
				buf_printf(b, "\\u%04x", (unsigned)c);
			else
				buf_append(b, p + i, k);
		}
		i += k;
	}
	buf_putc(b, '"');
}

void json_put_str(struct buf *b, const char *s)
{
	if (s)
		json_put_strn(b, s, strlen(s));
	else
		buf_puts(b, "null");
}

void json_put_key(struct buf *b, const char *name, int first)
{
	if (!first)
		buf_putc(b, ',');
	json_put_str(b, name);
	buf_putc(b, ':');
}
