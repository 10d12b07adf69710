/* Message parsing: RFC 5322 header blocks and dates, MIME Content-* fields with RFC 2231 parameters, and the
 * MIME tree of a whole message with the offsets, sizes and line counts IMAP needs. Called by imapd (FETCH,
 * BODYSTRUCTURE), qmgr/smtp (7-bit conversion, DSNs) and local delivery. Messages are held in memory (or mapped)
 * with LF line ends; CRLF is accepted too. Nothing here trusts its input: counts, depth and lengths are capped,
 * and every pass is linear in the message size. */
#ifndef POSTERN_MIME_H
#define POSTERN_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "buf.h"

/* Limits against hostile input. */
#define MIME_MAX_DEPTH 100          /* nesting of multiparts and message/rfc822 (as Dovecot) */
#define MIME_MAX_PARTS 10000        /* nodes in one tree; later parts are folded into their parent's body */
#define MIME_MAX_FIELDS 2000        /* header fields kept per header block; the rest are skipped */
#define MIME_MAX_HEADER (1u << 20)  /* bytes of one header block; past it the rest is treated as body */
#define MIME_MAX_BOUNDARY 200       /* RFC 2046 says 70; longer boundaries are refused (part is not multipart) */
#define MIME_MAX_PARAMS 64          /* Content-Type / Content-Disposition parameters kept */
#define MIME_MAX_VALUE 8192         /* bytes of one unfolded Content-* value or parameter looked at */

/* ---- header blocks (mime_header.c) ---- */

/* One field of a header block, as offsets into the block's base. The raw field runs from off for len bytes
 * (folded lines included, the final line end excluded); the value starts after the colon (and leading white
 * space) and still contains its folding. */
struct mime_field {
	size_t off, len;
	size_t name_len;
	size_t value_off, value_len;
};

struct mime_header {
	const char *base;        /* the bytes parsed (not owned) */
	struct mime_field *v;
	size_t n, cap;
	size_t size;             /* bytes of the block including the blank line that ends it (if any) */
	bool has_blank;          /* the block ended with a blank line (else it ran to the end of input) */
	bool truncated;          /* more than MIME_MAX_FIELDS fields or MIME_MAX_HEADER bytes */
};

#define MIME_HEADER_INIT { NULL, NULL, 0, 0, 0, false, false }

/* Parse the header block at the start of p[0..len). Lines without a colon (broken mail, an mbox "From " line)
 * are skipped but stay inside the block; "Name : value" (obsolete white space before the colon) is accepted.
 * The block ends at the first empty line, at MIME_MAX_HEADER bytes, or at the end of input. */
void mime_header_parse(struct mime_header *h, const char *p, size_t len);
void mime_header_free(struct mime_header *h);
/* The idx-th (0-based) field named name (ASCII case-insensitive), or NULL. */
const struct mime_field *mime_header_find(const struct mime_header *h, const char *name, size_t idx);
bool mime_field_is(const struct mime_header *h, const struct mime_field *f, const char *name);
/* Unfolded value of a field appended to out (line ends that precede white space removed, other bare CR/LF
 * dropped; trailing white space trimmed). False only when out's cap was hit. */
bool mime_field_value(const struct mime_header *h, const struct mime_field *f, struct buf *out);
/* Convenience: unfolded value of the first field named name as a new string, NULL when absent. */
char *mime_header_get(const struct mime_header *h, const char *name);

/* RFC 5322 §3.3 date-time with the §4.3 obsolete forms (two- and three-digit years, alphabetic and military
 * zones, missing seconds, comments anywhere). *t gets UTC seconds, *tz_minutes (may be NULL) the zone offset
 * east of UTC. Unknown zones count as -0000 (UTC). False when the text is not a date. */
bool mime_date_parse(const char *s, size_t len, time_t *t, int *tz_minutes);
/* Append t as an RFC 5322 date in the zone tz_minutes east of UTC: "Mon, 23 Nov 2026 14:42:50 +0000".
 * Day and month names are English whatever the locale. */
bool mime_date_format(time_t t, int tz_minutes, struct buf *out);

/* ---- Content-* values (mime_ctype.c) ---- */

/* A parameter after RFC 2231 reassembly. name keeps the case of its first appearance (IMAP clients see it as
 * written; lookups ignore case). When any section was extended ("name*=" or
 * "name*N*="), name ends in '*' and value is "charset'language'percent-encoded" joined from all sections (the
 * form IMAP sends); otherwise value is the plain joined value. */
struct mime_param {
	char *name;
	char *value;
};

struct mime_ctype {
	char *type;              /* as written (case kept), NULL when unparsable */
	char *subtype;
	struct mime_param *params;
	size_t nparams;
};

/* Parse "type/subtype; a=b; c*0=..." (also a Content-Disposition value: then subtype stays NULL). Comments are
 * dropped; a value may be a token or a quoted-string; sections of an RFC 2231 parameter may come in any order
 * (a gap ends the value). Duplicate parameters: the first wins. Plain parameters come first, then the RFC 2231
 * ones, each group in order of appearance. */
void mime_ctype_parse(const char *s, size_t len, bool with_subtype, struct mime_ctype *ct);
void mime_ctype_free(struct mime_ctype *ct);
/* The value of parameter name (lowercase, without '*'): the plain value, or for an RFC 2231 extended one the
 * percent-decoded bytes converted from its charset to UTF-8; a plain value has RFC 2047 words decoded (some
 * clients send filename="=?utf-8?...?="). Returns a new string (free it), NULL when absent. */
char *mime_ctype_param(const struct mime_ctype *ct, const char *name);
/* The raw parameter (name compared ignoring ASCII case, with '*' when extended). */
const struct mime_param *mime_ctype_find(const struct mime_ctype *ct, const char *name);

/* ---- the MIME tree (mime_parse.c) ---- */

#define MIME_PART_MULTIPART    0x01  /* children are the parts of a multipart */
#define MIME_PART_MESSAGE      0x02  /* message/rfc822 (or global): one child, the encapsulated message */
#define MIME_PART_NO_END       0x04  /* multipart: the closing boundary never came */
#define MIME_PART_TOO_DEEP     0x08  /* structure below this part was not parsed (depth or part limit) */
#define MIME_PART_HDR_TRUNC    0x10  /* header block over the limits */
#define MIME_PART_8BIT         0x20  /* body holds bytes >= 0x80 */
#define MIME_PART_NUL          0x40  /* body holds NUL bytes */
#define MIME_PART_HDR_8BIT     0x80  /* header holds bytes >= 0x80 */

/* One node. Offsets are into the parsed message. Sizes come twice: as stored and as IMAP counts them (every bare
 * LF as CRLF, RFC 3501 "size in octets"). Lines are LF counts. The header of a part includes its blank line;
 * the body of a part inside a multipart excludes the line end before the next boundary (RFC 2046 §5.1.1), except
 * where that line end already ended a header or a close delimiter: then it stays with the part (Dovecot counts
 * the same way, so sizes agree with what clients have seen). Every part lies inside its parent's body. */
struct mime_part {
	struct mime_part *parent, *children, *next;
	struct mime_part *last_child;   /* for appending in constant time */
	size_t nchildren;
	unsigned flags;
	unsigned depth;
	size_t hdr_off, hdr_size, hdr_size_crlf, hdr_lines;
	size_t body_off, body_size, body_size_crlf, body_lines;
	struct mime_ctype ct;       /* type NULL: the default applies (see mime_part_type) */
	bool ct_default_rfc822;     /* inside multipart/digest: the default is message/rfc822 */
	char *encoding;             /* Content-Transfer-Encoding as written, NULL when absent */
	char *id, *description, *md5, *language, *location;
	struct mime_ctype disp;     /* Content-Disposition: type holds the disposition */
	char *boundary;             /* multipart: the boundary in use */
};

struct mime_message {
	const char *data;
	size_t len;
	struct mime_part *root;
	size_t nparts;
};

/* Build the tree of data[0..len) (the bytes are not copied; keep them alive while the tree is used). Never
 * fails: broken structure degrades to opaque bodies, as other servers do. */
void mime_message_parse(struct mime_message *m, const char *data, size_t len);
void mime_message_free(struct mime_message *m);
/* Effective type and subtype (lowercase defaults "text"/"plain", or "message"/"rfc822" in a digest). */
const char *mime_part_type(const struct mime_part *p);
const char *mime_part_subtype(const struct mime_part *p);
bool mime_part_is(const struct mime_part *p, const char *type, const char *subtype);
/* Parse the header block of a part again (for fields the tree does not keep, e.g. ENVELOPE). */
void mime_part_header(const struct mime_message *m, const struct mime_part *p, struct mime_header *h);
/* Bytes in [off, off+len) of m counted with bare LF as CRLF. */
size_t mime_crlf_size(const char *p, size_t len);

/* ---- 7-bit conversion (mime_7bit.c) ---- */

/* Append to out a 7-bit form of the message (RFC 6152 downgrade for a peer without 8BITMIME): each leaf part
 * whose body holds 8-bit bytes (or NULs) and is not already base64 or quoted-printable is re-encoded, as
 * quoted-printable when it is text that is mostly ASCII, as base64 otherwise, with its Content-Transfer-Encoding
 * field replaced; everything else, all other header fields included, is copied byte for byte. A message without
 * MIME-Version that needs converting gets "MIME-Version: 1.0" and a text/plain Content-Type added.
 * Returns false when out's cap was hit. *changed (may be NULL) tells whether anything was converted. Header
 * fields are never changed, so a message with 8-bit header text (or an 8-bit part that may not be encoded:
 * multipart, message) stays 8-bit: check mime_is_7bit() on the result before sending it without 8BITMIME.
 * Parts inside multipart/signed are converted like any other (as Postfix does), which breaks such signatures. */
bool mime_7bit_convert(const char *data, size_t len, struct buf *out, bool *changed);
/* True when the message has no byte >= 0x80 and no NUL (nothing to convert). */
bool mime_is_7bit(const char *data, size_t len);

#endif
