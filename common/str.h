/* Small string helpers on C strings and length-delimited slices. ASCII-only case rules: mail protocols
 * compare keywords and domains case-insensitively in ASCII, never by locale. */
#ifndef POSTERN_STR_H
#define POSTERN_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline int str_ascii_lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }
bool str_eq_ci(const char *a, const char *b);                       /* ASCII case-insensitive equality */
bool str_eqn_ci(const char *a, const char *b, size_t n);            /* first n bytes, ASCII case-insensitive */
bool str_has_prefix_ci(const char *s, const char *prefix);
void str_lower(char *s);                                            /* in place, ASCII only */
char *str_trim(char *s);                                            /* strips ASCII white space both ends, in place */
/* Strict unsigned decimal: digits only, no sign, no white space, no overflow past max. */
bool str_to_u64(const char *s, uint64_t max, uint64_t *out);
bool str_to_u64n(const char *s, size_t n, uint64_t max, uint64_t *out);
/* Copy at most dstsize-1 bytes and NUL-terminate; returns false when src was cut. */
bool str_copy(char *dst, size_t dstsize, const char *src);
/* Split s in place at any byte of seps, skipping empty fields; stores up to max pointers; returns the count
 * found (may exceed max: the extra fields are not stored). */
size_t str_split(char *s, const char *seps, char **fields, size_t max);

#endif
