/* Mail addresses: RFC 5321 envelope paths (MAIL FROM / RCPT TO, strict) and RFC 5322 header address lists
 * (From/To/Cc/Bcc, lenient). Called by smtpd for every MAIL/RCPT, by sendmail -t, and later by IMAP ENVELOPE
 * and DMARC. Parsers never trust their input: every length is capped and every byte checked.
 * The header list parser lives in addr_hdr.c; everything else in addr.c. */
#ifndef POSTERN_ADDR_H
#define POSTERN_ADDR_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 §4.5.3.1 limits, in octets. The path limit counts the angle brackets. A UTF-8 label (U-label) is held
 * to the label limit in its DNS form: the length of its "xn--" Punycode A-label. */
#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255
#define ADDR_LABEL_MAX 63
#define ADDR_PATH_MAX 256
/* Header parser: comment nesting beyond this is refused (a guard against hostile input, not an RFC limit).
 * Header local parts are not held to ADDR_LOCAL_MAX (real mail exceeds it) but to 256 octets. */
#define ADDR_COMMENT_DEPTH 16

/* Parse flags. */
#define ADDR_F_SMTPUTF8 0x01    /* UTF-8 local parts and domains allowed (SMTPUTF8 given, or RFC 6532 header) */
#define ADDR_F_UNBRACKETED 0x02 /* envelope: accept "FROM:a@b" without <> (broken clients; Postfix-like) */
#define ADDR_F_POSTMASTER 0x04  /* envelope: accept the domainless <Postmaster> (RCPT TO, RFC 5321 §4.5.1) */
#define ADDR_F_SKIP_BAD 0x08    /* header lists: drop unparsable entries (counted) instead of failing */
#define ADDR_F_EMPTY_GROUPS 0x10 /* header lists: an empty group ("undisclosed-recipients:;") yields an entry */
#define ADDR_F_COMMENT_NAMES 0x20 /* header lists: a bare address's last comment is its display name
                                   * ("u@h (Real Name)"), as Dovecot reports it in IMAP ENVELOPE */

/* Why a parse failed. addr_strerror() gives a short English text, addr_reply() the SMTP reply to send. */
enum addr_err {
	ADDR_OK = 0,
	ADDR_ERR_CMD_SYNTAX,     /* "FROM:" / "TO:" missing or junk after the path: 501 5.5.4 */
	ADDR_ERR_SYNTAX,         /* path or address malformed (brackets, route, stray characters) */
	ADDR_ERR_UNBRACKETED,    /* address without <> while ADDR_F_UNBRACKETED is not set */
	ADDR_ERR_LOCAL_SYNTAX,   /* local part: bad dot-atom or quoted string */
	ADDR_ERR_NO_DOMAIN,      /* no "@domain" (and not a permitted <Postmaster>) */
	ADDR_ERR_DOMAIN_SYNTAX,  /* domain: bad label, leading/trailing hyphen or dot, empty label */
	ADDR_ERR_LITERAL,        /* address literal: not a valid IPv4 / IPv6 address or unknown tag */
	ADDR_ERR_LOCAL_TOO_LONG, /* local part over ADDR_LOCAL_MAX */
	ADDR_ERR_LABEL_TOO_LONG, /* a domain label over ADDR_LABEL_MAX */
	ADDR_ERR_DOMAIN_TOO_LONG,/* domain over ADDR_DOMAIN_MAX */
	ADDR_ERR_PATH_TOO_LONG,  /* path over ADDR_PATH_MAX */
	ADDR_ERR_BAD_UTF8,       /* malformed UTF-8 (overlong, surrogate, truncated, > U+10FFFF) */
	ADDR_ERR_NEED_SMTPUTF8,  /* valid UTF-8 but ADDR_F_SMTPUTF8 not set: 553 5.6.7 */
	ADDR_ERR_COMMENT_DEPTH,  /* header: comments nested deeper than ADDR_COMMENT_DEPTH */
	ADDR_ERR_UNTERMINATED,   /* header: unclosed quote, comment, literal or angle address */
	ADDR_ERR_COUNT
};

/* Which side of the envelope: selects 5.1.7 (sender) or 5.1.3 (recipient) in replies. */
enum addr_role { ADDR_ROLE_SENDER, ADDR_ROLE_RECIPIENT };

/* A parsed address. local is the decoded local part (quotes and backslashes removed, case kept); domain is as
 * received (a literal keeps its brackets, "" for the null path and <Postmaster>); canon is the form to compare
 * and store: the local part re-quoted only when it is not a dot-atom, "@", the domain lowercased in ASCII (an
 * IPv6 literal also rewritten to the inet_ntop form). The null path has canon "". All strings are xmalloc'd
 * and owned by the struct; addr_free() releases them. */
struct addr {
	char *local;
	char *domain;
	char *canon;
	size_t local_len;
	size_t domain_len;
	bool null;     /* <> */
	bool quoted;   /* local part was written as a quoted-string */
	bool utf8;     /* local part or domain contains non-ASCII (needs SMTPUTF8 to relay) */
	bool literal;  /* domain is an address literal [..] */
};

void addr_free(struct addr *a);
static inline bool addr_is_null(const struct addr *a) { return a->null; }

/* One envelope path, exactly the bytes from '<' to '>' (or the bare address with ADDR_F_UNBRACKETED).
 * Source routes <@a,@b:u@c> are checked and dropped. On error *out is left empty (safe to addr_free). */
enum addr_err addr_parse_path(const char *s, size_t len, unsigned flags, struct addr *out);

/* The argument of MAIL or RCPT: keyword is "FROM" or "TO" (case-insensitive), then ':', optional spaces, the
 * path, then either the end or spaces and the ESMTP parameters. *params_off gets the offset of the parameters
 * in s (== len when there are none), to hand to esmtp_parse(). Example: "FROM:<a@b> SIZE=12" -> a@b, "SIZE=12". */
enum addr_err addr_parse_cmd(const char *s, size_t len, const char *keyword, unsigned flags, struct addr *out,
                             size_t *params_off);

/* Local parts compare byte-wise (RFC 5321 says only the target host may interpret them); case_sensitive=false
 * folds ASCII only. Compares decoded forms, so "ab"@x and ab@x are equal. */
bool addr_localpart_eq(const struct addr *a, const struct addr *b, bool case_sensitive);
/* Canonical forms equal (domain case already folded). */
bool addr_eq(const struct addr *a, const struct addr *b, bool case_sensitive_local);

/* Split "user+tag" at the first byte of delimiters (e.g. "+" or "+-"). *base and *ext are xmalloc'd (free
 * them); *ext is NULL when there is no delimiter, or when the delimiter is the first byte (a local part like
 * "+foo" or "-owner" is kept whole, as Postfix does). Returns true when an extension was split off. */
bool addr_split_extension(const char *local, const char *delimiters, char **base, char **ext);

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF, no truncated sequences. */
bool addr_utf8_valid(const void *p, size_t n);

const char *addr_strerror(enum addr_err e);
/* Full SMTP reply text for an envelope error, "501 5.1.3 Bad recipient address syntax" style. Choices
 * (RFC 3463, RFC 6531):
 *   ADDR_ERR_CMD_SYNTAX                -> 501 5.5.4 (invalid command arguments)
 *   ADDR_ERR_NEED_SMTPUTF8             -> 553 5.6.7 (non-ASCII address without SMTPUTF8, RFC 6531 §3.5)
 *   everything else, too long included -> 501 5.1.7 for the sender, 501 5.1.3 for a recipient (X.1.7 / X.1.3
 *     "bad ... address syntax": RFC 3463 has no separate length code and RFC 5321 §4.5.3.1.10 uses 501). */
const char *addr_reply(enum addr_err e, enum addr_role role);
/* Just the "501 5.1.3" part of addr_reply(), for replies that add their own text (e.g. the address). */
const char *addr_status(enum addr_err e, enum addr_role role);

/* ---- RFC 5322 header address lists (addr_hdr.c) ---- */

/* One mailbox from a header. group is the group's display name when the mailbox was inside "group: ... ;",
 * NULL otherwise. display is the display name with quoted-strings decoded and runs of white space collapsed to
 * one space; comments are dropped; RFC 2047 encoded-words are left undecoded; NULL when there is none. Non-ASCII
 * bytes in display names are kept raw: escape them before logging. A mailbox without "@domain" (e.g. "root",
 * common in sendmail -t input) has an empty domain and nodomain set. */
struct addr_mailbox {
	struct addr a;
	char *display;
	char *group;
	char *route;      /* obsolete source route of "<@a,@b:u@h>" as "@a,@b" (RFC 5322 §4.4), NULL for none */
	bool nodomain;
	bool empty_group; /* only with ADDR_F_EMPTY_GROUPS: no address (local, domain, canon all ""), group set */
};

struct addr_list {
	struct addr_mailbox *v;
	size_t n;
	size_t cap;
	size_t bad;      /* entries skipped under ADDR_F_SKIP_BAD */
	size_t groups;   /* groups seen, including empty ones ("undisclosed-recipients:;") */
};

#define ADDR_LIST_INIT { NULL, 0, 0, 0, 0 }

/* Parse a header field body (after "To:"; folded lines allowed). Tolerates the RFC 5322 §4.4 obsolete forms:
 * empty list elements, routes in angle addresses, CFWS around dots, "." in display names. Results are appended
 * to *out (so From/To/Cc can be collected in one list). On error, entries parsed before the bad one stay in
 * *out; *err_off (if not NULL) gets the offset of the failure. ADDR_F_SMTPUTF8 allows UTF-8 in addresses
 * (RFC 6532); without it non-ASCII bytes are allowed only in display names and comments. */
enum addr_err addr_parse_header(const char *s, size_t len, unsigned flags, struct addr_list *out,
                                size_t *err_off);
void addr_list_free(struct addr_list *l);

#endif
