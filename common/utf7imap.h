/* Modified UTF-7 (RFC 3501 section 5.1.3), the encoding of IMAP4rev1 mailbox names on the wire, to and from the
 * UTF-8 we store on disk. imapd converts every name a client sends or receives; the decoder is strict (only the
 * one canonical encoding of a name is accepted) so two wire spellings can never reach the same folder. */
#ifndef POSTERN_UTF7IMAP_H
#define POSTERN_UTF7IMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Append the UTF-8 form of a modified UTF-7 name to out. false (out may hold a partial result) when the input is
 * not canonical modified UTF-7: 8-bit or control bytes, a '&' run that is unterminated, has bad base64 or non-zero
 * padding bits, encodes printable ASCII or a broken surrogate pair, directly follows another run, or when out's
 * cap is reached. */
bool utf7imap_decode(const char *in, size_t len, struct buf *out);
/* Append the modified UTF-7 form of a UTF-8 name to out. false on invalid UTF-8 (overlong forms, surrogates,
 * values past U+10FFFF, NUL) or when out's cap is reached. */
bool utf7imap_encode(const char *in, size_t len, struct buf *out);
/* Does s need converting at all? (pure printable ASCII without '&' is the same in both) */
bool utf7imap_is_plain(const char *s, size_t len);

#endif
