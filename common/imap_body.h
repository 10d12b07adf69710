/* IMAP views of a parsed message (RFC 3501): the ENVELOPE, BODY and BODYSTRUCTURE strings, and BODY[section]
 * addressing turned into bytes of the stored message. Called by imapd's FETCH and SEARCH; the strings follow the
 * RFC 3501 grammar exactly (NIL for absent values, quoted strings only for safe text, literals otherwise). */
#ifndef POSTERN_IMAP_BODY_H
#define POSTERN_IMAP_BODY_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "mime.h"

/* ---- strings (imap_envelope.c) ---- */

/* Append an IMAP string: a quoted string when the bytes are short printable ASCII, else a literal
 * "{n}\r\n" followed by the bytes (8-bit text, CR, LF, or very long values). NUL bytes cannot be sent in a
 * string, so each becomes U+FFFD (as Dovecot does). */
bool imap_append_string(struct buf *out, const char *s, size_t n);
/* As imap_append_string, NIL when s is NULL. */
bool imap_append_nstring(struct buf *out, const char *s);

/* ENVELOPE of the header block h (RFC 3501 §7.4.2): (date subject from sender reply-to to cc bcc in-reply-to
 * message-id). Sender and Reply-To default to From. Address lists use the RFC 5322 parser of addr.h; groups
 * become (NIL NIL "name" NIL) ... (NIL NIL NIL NIL); an unparsable list is reduced to the entries that parse. */
bool imap_envelope(const struct mime_header *h, struct buf *out);

/* ---- BODY / BODYSTRUCTURE (imap_bodystructure.c) ---- */

/* BODYSTRUCTURE (extended = true) or BODY (false) of the tree, without the enclosing parentheses of the FETCH
 * item: callers write "BODYSTRUCTURE (" + this + ")". Sizes are CRLF-counted. */
bool imap_bodystructure(const struct mime_message *m, bool extended, struct buf *out);
/* The same for one part (its own parenthesised form without the outer parentheses). */
bool imap_bodystructure_part(const struct mime_message *m, const struct mime_part *p, bool extended,
                             struct buf *out);

/* ---- sections (imap_section.c) ---- */

enum imap_section_kind {
	IMAP_SECTION_ALL,            /* BODY[] or BODY[1.2]: the whole message / the part's body */
	IMAP_SECTION_HEADER,
	IMAP_SECTION_HEADER_FIELDS,
	IMAP_SECTION_HEADER_FIELDS_NOT,
	IMAP_SECTION_TEXT,
	IMAP_SECTION_MIME,
};

#define IMAP_SECTION_MAX_PATH 64
#define IMAP_SECTION_MAX_FIELDS 128

struct imap_section {
	unsigned path[IMAP_SECTION_MAX_PATH];
	size_t npath;
	enum imap_section_kind kind;
	char **fields;               /* HEADER.FIELDS (...) names, as given */
	size_t nfields;
};

/* Parse the text between "BODY[" and "]", e.g. "", "1.2", "1.2.HEADER", "TEXT", "3.MIME",
 * "HEADER.FIELDS (From To)", "1.HEADER.FIELDS.NOT (Received)". Keywords are case-insensitive; part numbers
 * are non-zero. Returns false on a syntax error (the caller answers BAD). */
bool imap_section_parse(const char *s, size_t n, struct imap_section *sec);
void imap_section_free(struct imap_section *sec);

/* What a section selects: one range of the stored message (off, len), or for HEADER.FIELDS[.NOT] a built copy
 * of the chosen fields followed by the blank line. Stored bytes use LF; the caller converts to CRLF on output. */
struct imap_section_data {
	size_t off, len;             /* valid when !built */
	bool built;
	struct buf data;             /* valid when built */
};

/* Resolve sec in m. False when the part does not exist (IMAP then returns an empty string for it, as other
 * servers do); HEADER/TEXT/HEADER.FIELDS on a part that is not message/rfc822 is also false. */
bool imap_section_fetch(const struct mime_message *m, const struct imap_section *sec,
                        struct imap_section_data *out);
void imap_section_data_free(struct imap_section_data *d);

#endif
