/* The message content as the smtp client puts it on the wire: from the queue file (stored with LF line ends)
 * or from a converted copy in memory, always with CR LF line ends. It gives the exact wire size that MAIL's
 * SIZE= declares (RFC 1870: CR LF pairs counted, dot-stuffing not) and the CR LF form piece by piece for BDAT
 * chunks (RFC 3030: exact octet counts, no dot-stuffing). Used by session.c; no network I/O, so unit-tested
 * on its own. */
#ifndef POSTERN_SMTP_CONTENT_H
#define POSTERN_SMTP_CONTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

struct smtp_content {
	const char *mem;	/* a converted copy, or NULL for the queue file */
	size_t memlen;
	int fd;			/* the queue file, its content at offset */
	uint64_t offset, len;
};

/* Line-end normalisation, in any chunking: CR LF stays, a bare LF or bare CR becomes CR LF (what the DATA
 * encoder in dotstream.c does, minus the dot-stuffing). */
struct smtp_crlf {
	bool bol;	/* the output so far ends with a line end (or is empty) */
	bool cr;	/* the last input byte was a CR, already written as CR LF: an LF next belongs to it */
};
void smtp_crlf_init(struct smtp_crlf *c);
/* Append the CR LF form of in to out (NULL: only count). Returns the number of bytes it makes. */
size_t smtp_crlf_encode(struct smtp_crlf *c, const void *in, size_t n, struct buf *out);
/* At the end of the text: CR LF when it did not end with a line end (as the DATA encoder adds). */
size_t smtp_crlf_finish(struct smtp_crlf *c, struct buf *out);

/* Content length as stored (before normalisation). */
uint64_t smtp_content_len(const struct smtp_content *c);
/* Up to n bytes at off into dst; returns how many (0 at the end), -1 with err on a read error or a file
 * shorter than its envelope says. */
ssize_t smtp_content_read(const struct smtp_content *c, uint64_t off, void *dst, size_t n, struct buf *err);
/* The number of bytes the content takes on the wire with CR LF line ends, without dot-stuffing. */
bool smtp_content_wire_size(const struct smtp_content *c, uint64_t *size, struct buf *err);

#endif
