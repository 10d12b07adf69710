/* Allocation that never hands NULL to callers: on exhaustion the process logs and exits.
 * Sizes are overflow-checked (xcalloc, xreallocarray) so callers need not multiply. */
#ifndef POSTERN_ALLOC_H
#define POSTERN_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
/* Frees *pp and sets it to NULL (Dovecot habit: destructors take ** and clear the pointer). */
#define xfree(pp) do { free(*(pp)); *(pp) = NULL; } while (0)

/* size_t arithmetic that reports overflow instead of wrapping: true when the result fits. */
static inline int size_add(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }
static inline int size_mul(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }

#include <stdlib.h>
#endif
