/* Authentication-Results (RFC 8601): build the one header smtpd adds for its authserv-id (myhostname) from the
 * SPF, DKIM and DMARC results, and find arriving Authentication-Results headers that claim that same
 * authserv-id, which must be removed before delivery so a sender cannot forge our verdicts (section 5). */
#ifndef POSTERN_AUTHRES_H
#define POSTERN_AUTHRES_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

#define AUTHRES_MAX_PROPS 3

/* One method result: "spf=pass (reason) smtp.mailfrom=a@example.com". */
struct authres_entry {
	const char *method;	/* "spf", "dkim", "dmarc", "auth" */
	const char *result;	/* "pass", "fail", "none", ... */
	const char *reason;	/* NULL or free text: becomes a comment (parentheses and backslashes escaped) */
	struct {
		const char *name;	/* "smtp.mailfrom", "smtp.helo", "header.d", "header.i", "header.b", "header.from" */
		const char *value;	/* quoted when it is not a token, address or domain */
	} props[AUTHRES_MAX_PROPS];	/* unused slots have name NULL */
};

/* Append the whole header, "Authentication-Results: " to the final CRLF, folded before each method. With no
 * entries the result is "none" (section 2.2). False when out's cap is reached. */
bool authres_header(struct buf *out, const char *authserv_id, const struct authres_entry *e, size_t n);

struct authres_range {
	size_t off;	/* start of the header's first line */
	size_t len;	/* through the line end of its last continuation line */
};

/* In the header block hdrs (up to the blank line, which may be omitted; lines end in LF or CRLF), find the
 * Authentication-Results headers whose authserv-id equals ours (ASCII case-insensitive). Stores up to max
 * ranges in file order and returns how many headers matched (may exceed max). Headers whose authserv-id
 * cannot be parsed are left alone: they do not claim ours. */
size_t authres_find_ours(const char *hdrs, size_t len, const char *authserv_id, struct authres_range *ranges,
                         size_t max);

/* Is the first header field of hdrs our Authentication-Results (smtpd writes it first, so nobody upstream can
 * have put one before it) recording a DMARC failure whose quarantine smtpd decided to enforce
 * ("dmarc=fail ... policy.dmarc=quarantine")? local delivers such mail to the Junk folder. Comments and quoted
 * strings are skipped, so text inside them never counts. */
bool authres_dmarc_quarantined(const char *hdrs, size_t len, const char *authserv_id);

#endif
