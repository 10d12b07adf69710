/* JSON output for machine-readable listings (postern queue list --json). Only writing: strings are escaped so
 * any bytes (quotes, backslashes, control characters, bad UTF-8 from a peer's envelope) still give valid JSON. */
#ifndef POSTERN_JSON_H
#define POSTERN_JSON_H

#include <stddef.h>

#include "buf.h"

/* Append "s" as a JSON string literal, quotes included. Valid UTF-8 is kept as is; control characters, DEL and
 * U+2028/U+2029 become \uXXXX (or \n, \t...); every byte of an invalid UTF-8 sequence becomes U+FFFD. */
void json_put_strn(struct buf *b, const char *s, size_t n);
void json_put_str(struct buf *b, const char *s);	/* NULL is written as null */
/* Append "name": (with a leading comma unless first) for building objects by hand. */
void json_put_key(struct buf *b, const char *name, int first);

#endif
