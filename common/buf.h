/* Length-tracked byte buffer with capped, overflow-checked growth. Everything read from a peer lands in one of
 * these, never in a raw char[]: the cap turns "too long" into an error the caller reports, not an overflow.
 * data is always NUL-terminated (one spare byte past len) so text can be passed to C string functions. */
#ifndef POSTERN_BUF_H
#define POSTERN_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define BUF_NOLIMIT ((size_t)-1)

struct buf {
	char *data;   /* NULL until the first append; use buf_cstr() for a "" when empty */
	size_t len;   /* bytes in use */
	size_t cap;   /* bytes allocated, excluding the NUL spare */
	size_t max;   /* growth limit for len; BUF_NOLIMIT for none */
};

#define BUF_INIT(maxlen) { NULL, 0, 0, (maxlen) }

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
/* buf_free after overwriting the contents (frames and lines that may carry a password). */
void buf_free_wipe(struct buf *b);
void buf_reset(struct buf *b);                 /* len = 0, memory kept */
/* Make room for extra more bytes; false (nothing changed) if that would pass max or overflow size_t. */
bool buf_reserve(struct buf *b, size_t extra);
bool buf_append(struct buf *b, const void *p, size_t n);
bool buf_puts(struct buf *b, const char *s);
bool buf_putc(struct buf *b, int c);
bool buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Append untrusted bytes for logs or replies: control and non-ASCII bytes become \xHH (or \r, \n, \t),
 * at most cap source bytes are taken and "..." marks a cut. */
bool buf_append_printable(struct buf *b, const void *p, size_t n, size_t cap);
void buf_consume(struct buf *b, size_t n);     /* drop n bytes from the front */
void buf_truncate(struct buf *b, size_t len);  /* shorten to len (no-op when already shorter) */
const char *buf_cstr(const struct buf *b);     /* NUL-terminated view, "" when empty */
/* Hand the storage to the caller (NUL-terminated, free() it) and leave b empty. */
char *buf_steal(struct buf *b, size_t *lenp);

#endif
