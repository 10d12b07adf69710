/* Message content in wire form (see content.h). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "content.h"

#define CONTENT_READ_CHUNK 65536

void smtp_crlf_init(struct smtp_crlf *c)
{
	c->bol = true;
	c->cr = false;
}

size_t smtp_crlf_encode(struct smtp_crlf *c, const void *in, size_t n, struct buf *out)
{
	const unsigned char *p = in;
	size_t made = 0, i = 0;
	while (i < n) {
		if (p[i] == '\r' || p[i] == '\n') {
			bool lf_of_cr = p[i] == '\n' && c->cr;
			c->cr = p[i] == '\r';
			i++;
			if (lf_of_cr)
				continue;
			if (out)
				buf_append(out, "\r\n", 2);
			made += 2;
			c->bol = true;
			continue;
		}
		size_t j = i;
		while (j < n && p[j] != '\r' && p[j] != '\n')
			j++;
		if (out)
			buf_append(out, p + i, j - i);
		made += j - i;
		c->bol = false;
		c->cr = false;
		i = j;
	}
	return made;
}

size_t smtp_crlf_finish(struct smtp_crlf *c, struct buf *out)
{
	bool add = !c->bol;
	smtp_crlf_init(c);
	if (!add)
		return 0;
	if (out)
		buf_append(out, "\r\n", 2);
	return 2;
}

uint64_t smtp_content_len(const struct smtp_content *c)
{
	return c->mem ? c->memlen : c->len;
}

ssize_t smtp_content_read(const struct smtp_content *c, uint64_t off, void *dst, size_t n, struct buf *err)
{
	uint64_t len = smtp_content_len(c);
	if (off >= len)
		return 0;
	if (n > len - off)
		n = (size_t)(len - off);
	if (c->mem) {
		memcpy(dst, c->mem + off, n);
		return (ssize_t)n;
	}
	ssize_t r;
	do
		r = pread(c->fd, dst, n, (off_t)(c->offset + off));
	while (r < 0 && errno == EINTR);
	if (r <= 0) {
		buf_printf(err, "error reading queue file: %s", r < 0 ? strerror(errno) : "truncated");
		return -1;
	}
	return r;
}

bool smtp_content_wire_size(const struct smtp_content *c, uint64_t *size, struct buf *err)
{
	struct smtp_crlf st;
	smtp_crlf_init(&st);
	uint64_t total = 0, off = 0, len = smtp_content_len(c);
	if (c->mem) {
		total = smtp_crlf_encode(&st, c->mem, c->memlen, NULL);
	} else {
		char *chunk = xmalloc(CONTENT_READ_CHUNK);
		while (off < len) {
			ssize_t n = smtp_content_read(c, off, chunk, CONTENT_READ_CHUNK, err);
			if (n < 0) {
				free(chunk);
				return false;
			}
			total += smtp_crlf_encode(&st, chunk, (size_t)n, NULL);
			off += (uint64_t)n;
		}
		free(chunk);
	}
	*size = total + smtp_crlf_finish(&st, NULL);
	return true;
}
