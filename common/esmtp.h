/* ESMTP parameters of MAIL FROM / RCPT TO ("SIZE=123 BODY=8BITMIME", RFC 5321 §4.1.2) and the xtext encoding of
 * RFC 3461 §4. smtpd parses the text after the path (addr_parse_cmd() gives its offset) with esmtp_parse(),
 * then esmtp_mail_params() / esmtp_rcpt_params() check the values it knows; the smtp client uses the xtext
 * encoder for ENVID, ORCPT and AUTH=. */
#ifndef POSTERN_ESMTP_H
#define POSTERN_ESMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* More parameters than any real client sends on one command (SIZE BODY SMTPUTF8 RET ENVID AUTH REQUIRETLS...). */
#define ESMTP_MAX_PARAMS 16
/* RFC 3461 §4.4 / §4.2: encoded ENVID at most 100 characters, ORCPT at most 500. */
#define ESMTP_ENVID_MAX 100
#define ESMTP_ORCPT_MAX 500

/* esmtp_parse flags */
#define ESMTP_F_UTF8 0x01	/* values may hold UTF-8 (RFC 6531 §3.3: the server advertises SMTPUTF8) */

enum esmtp_err {
	ESMTP_OK = 0,
	ESMTP_ERR_SYNTAX,       /* not KEYWORD[=VALUE] separated by spaces: 501 5.5.4 */
	ESMTP_ERR_TOO_MANY,     /* more than ESMTP_MAX_PARAMS: 501 5.5.4 */
	ESMTP_ERR_DUPLICATE,    /* keyword given twice (case-insensitive): 501 5.5.4 */
	ESMTP_ERR_UNKNOWN,      /* keyword not known for this command: 555 5.5.4 (RFC 5321 §4.1.1.11) */
	ESMTP_ERR_NEED_VALUE,   /* keyword requires "=value": 501 5.5.4 */
	ESMTP_ERR_NO_VALUE,     /* keyword takes no value (SMTPUTF8=x): 501 5.5.4 */
	ESMTP_ERR_VALUE,        /* value not allowed for the keyword: 501 5.5.4 */
	ESMTP_ERR_XTEXT,        /* malformed xtext, or decodes to forbidden bytes: 501 5.5.4 */
	ESMTP_ERR_TOO_LONG,     /* ENVID / ORCPT over the RFC 3461 limits: 501 5.5.4 */
	ESMTP_ERR_SIZE_OVERFLOW,/* SIZE beyond 2^64-1: 552 5.3.4, as for a size over the limit (RFC 1870) */
	ESMTP_ERR_COUNT
};

struct esmtp_param {
	char *keyword;   /* as sent (compare with str_eq_ci) */
	char *value;     /* raw, still xtext-encoded where that applies; NULL when there was no '=' */
};

struct esmtp_params {
	struct esmtp_param v[ESMTP_MAX_PARAMS];
	size_t n;
};

/* Parse "KW[=VAL] KW[=VAL] ..." (exactly len bytes; leading/trailing and repeated spaces tolerated). On error,
 * *out is empty and *err_off (if not NULL) is the offset of the offending parameter. */
enum esmtp_err esmtp_parse(const char *s, size_t len, unsigned flags, struct esmtp_params *out, size_t *err_off);
void esmtp_params_free(struct esmtp_params *p);
/* The parameter with this keyword (ASCII case-insensitive), or NULL. */
const struct esmtp_param *esmtp_find(const struct esmtp_params *p, const char *keyword);

/* Value checkers. Each takes the raw value (NULL when the keyword had no '='). */
enum esmtp_body { ESMTP_BODY_UNSET = 0, ESMTP_BODY_7BIT, ESMTP_BODY_8BITMIME, ESMTP_BODY_BINARYMIME };
enum esmtp_ret { ESMTP_RET_UNSET = 0, ESMTP_RET_FULL, ESMTP_RET_HDRS };
#define ESMTP_NOTIFY_NEVER 0x01u
#define ESMTP_NOTIFY_SUCCESS 0x02u
#define ESMTP_NOTIFY_FAILURE 0x04u
#define ESMTP_NOTIFY_DELAY 0x08u

enum esmtp_err esmtp_size(const char *value, uint64_t *out);          /* strict decimal, no sign, no spaces */
enum esmtp_err esmtp_body(const char *value, enum esmtp_body *out);   /* 7BIT / 8BITMIME / BINARYMIME */
enum esmtp_err esmtp_ret(const char *value, enum esmtp_ret *out);     /* FULL / HDRS */
/* NEVER alone, or a comma list of SUCCESS, FAILURE, DELAY (each at most once). */
enum esmtp_err esmtp_notify(const char *value, unsigned *out);
/* ENVID: xtext, at most ESMTP_ENVID_MAX encoded, decodes to graphic ASCII. *out is xmalloc'd. */
enum esmtp_err esmtp_envid(const char *value, char **out);
/* ORCPT: addr-type ";" xtext ("rfc822;user+2Bx@example.org"); for the RFC 6533 type "utf-8" the value uses
 * "\x{HEX}" escapes and may carry raw UTF-8 instead ("utf-8;j\x{F6}rg@x"). *type and *addr are xmalloc'd; the
 * address is decoded (to UTF-8 for "utf-8") but not parsed: it is only echoed back in DSNs. */
enum esmtp_err esmtp_orcpt(const char *value, char **type, char **addr);
/* AUTH= (RFC 4954 §5): "<>" gives an empty string, otherwise the decoded xtext. *out is xmalloc'd. */
enum esmtp_err esmtp_auth(const char *value, char **out);

/* xtext (RFC 3461 §4): xchar = "!".."~" except "+" and "="; "+XX" for anything else. The decoder also takes
 * lowercase hex digits (some clients send them); it refuses a decoded NUL, since callers use C strings. */
bool esmtp_xtext_decode(const char *s, size_t n, struct buf *out);
bool esmtp_xtext_valid(const char *s, size_t n);
/* Always uppercase hex; false only when out's cap is reached. */
bool esmtp_xtext_encode(const void *p, size_t n, struct buf *out);

/* The known parameters of MAIL FROM, checked. smtpd refuses those it did not advertise (e.g. DSN off). */
struct esmtp_mail {
	bool has_size;
	uint64_t size;
	enum esmtp_body body;
	bool smtputf8;
	enum esmtp_ret ret;
	char *envid;     /* decoded, or NULL */
	char *auth;      /* decoded, "" for AUTH=<>, NULL when absent */
	bool requiretls; /* RFC 8689 */
};
/* The known parameters of RCPT TO, checked. */
struct esmtp_rcpt {
	unsigned notify;     /* ESMTP_NOTIFY_* mask, 0 when absent */
	char *orcpt_type;    /* e.g. "rfc822", NULL when absent */
	char *orcpt_addr;    /* decoded */
};

/* On error, *bad (if not NULL) points to the offending parameter inside p. Unknown keywords are errors. */
enum esmtp_err esmtp_mail_params(const struct esmtp_params *p, struct esmtp_mail *out,
                                 const struct esmtp_param **bad);
enum esmtp_err esmtp_rcpt_params(const struct esmtp_params *p, struct esmtp_rcpt *out,
                                 const struct esmtp_param **bad);
void esmtp_mail_free(struct esmtp_mail *m);
void esmtp_rcpt_free(struct esmtp_rcpt *r);

const char *esmtp_strerror(enum esmtp_err e);
/* Reply for smtpd: "501 5.5.4 ...", "555 5.5.4 ..." or "552 5.3.4 ..." as listed in the enum. */
const char *esmtp_reply(enum esmtp_err e);
/* Just the "501 5.5.4" part of esmtp_reply(). */
const char *esmtp_status(enum esmtp_err e);

#endif
