/* SPF (RFC 7208): check_host() for the MAIL FROM and HELO identities, asynchronous on the dns module (one
 * evaluation is a state machine driven by DNS callbacks) with a blocking wrapper, plus the Received-SPF text.
 * smtpd starts a check at MAIL FROM (and for HELO when MAIL FROM is empty) and reads the result before DATA. */
#ifndef POSTERN_SPF_H
#define POSTERN_SPF_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct buf;
struct dns;
struct dns_options;
struct event_base;

enum spf_result { SPF_NONE, SPF_NEUTRAL, SPF_PASS, SPF_FAIL, SPF_SOFTFAIL, SPF_TEMPERROR, SPF_PERMERROR };

/* Limits of section 4.6.4 */
#define SPF_MAX_DNS_MECHS 10
#define SPF_MAX_NAMES 10	/* MX names of one mx mechanism, PTR names considered */
#define SPF_MAX_VOID 2

/* ---- records (spf_record.c) ---- */
enum spf_mech { SPF_ALL, SPF_INCLUDE, SPF_A, SPF_MX, SPF_PTR, SPF_IP4, SPF_IP6, SPF_EXISTS };

struct spf_term {
	bool modifier;
	/* mechanism */
	char qualifier;		/* '+', '-', '~', '?' */
	enum spf_mech mech;
	char *spec;		/* domain-spec as published (macros unexpanded); NULL when absent */
	unsigned cidr4, cidr6;	/* prefix lengths (32 and 128 when absent) */
	struct in_addr ip4;
	struct in6_addr ip6;
	/* modifier */
	char *name, *value;
};

struct spf_record {
	size_t n;
	struct spf_term *terms;
	const struct spf_term *redirect, *exp;	/* point into terms; NULL when absent */
	bool has_all;
};

/* Parse the text after selection (it starts "v=spf1"). False with the reason in err: that is a permerror. */
bool spf_record_parse(const char *text, size_t len, struct spf_record *r, struct buf *err);
void spf_record_clear(struct spf_record *r);

/* Macro context (section 7). Strings must outlive the expansion. */
struct spf_macro_ctx {
	const char *sender;	/* s: local-part@domain ("postmaster@helo" when MAIL FROM was empty) */
	const char *domain;	/* d: the current domain */
	const char *ip;		/* i: the client address as text (IPv4-mapped IPv6 already turned into IPv4) */
	bool ipv6;
	const char *helo;	/* h */
	const char *validated;	/* p: validated domain name of the client, "unknown" when none */
	const char *receiver;	/* r (exp only) */
	time_t now;		/* t (exp only) */
};
/* Expand a macro-string; exp allows c, r and t. False (permerror) on a syntax error or when out is full. */
bool spf_macro_expand(const char *spec, const struct spf_macro_ctx *m, bool exp, struct buf *out);
/* Syntax check of a macro-string without expanding (for the parser). */
bool spf_macro_valid(const char *spec, size_t len, bool exp);
/* True when spec uses the p macro (which needs PTR lookups before it can be expanded). */
bool spf_macro_uses_p(const char *spec);
/* Cut an expanded domain to at most 253 characters by dropping labels on the left (section 7.3). */
void spf_domain_truncate(struct buf *d);

/* ---- evaluation (spf.c) ---- */
struct spf_request {
	const char *ip;		/* client address, IPv4 or IPv6 text */
	const char *sender;	/* MAIL FROM address, "" for the null sender (then postmaster@helo is used) */
	const char *helo;	/* HELO/EHLO argument */
	const char *receiver;	/* our host name (myhostname), for %{r} and the texts */
	bool helo_identity;	/* check the HELO identity (domain = helo) instead of MAIL FROM */
	time_t now;		/* for %{t}; 0: the current time */
};

struct spf_answer {
	enum spf_result result;
	char *domain;		/* the domain checked */
	char *explanation;	/* fail only: the exp= text, or a default; NULL otherwise */
	char *reason;		/* what decided: "mechanism ip4:192.0.2.0/24 matched", "too many DNS lookups", ... */
	char *sender;		/* the identity checked (postmaster@helo for the null sender or HELO) */
};

struct spf_check;
/* The callback gets the answer (valid only during the call) and is always called from the event loop, at
 * most once. The check must still be freed with spf_check_cancel(), which the callback itself may do. */
typedef void spf_callback(const struct spf_answer *ans, void *arg);

/* Start check_host() for req (strings are copied). base must be the one the resolver runs on. */
struct spf_check *spf_check_start(struct dns *d, struct event_base *base, const struct spf_request *req,
                                  spf_callback *cb, void *arg);
/* Free a check; if it is still running it stops and its callback will not be called. Clears the handle. */
void spf_check_cancel(struct spf_check **c);

/* Blocking: runs its own event loop and resolver. ans must be freed with spf_answer_clear(). */
void spf_check_blocking(const struct dns_options *opt, const struct spf_request *req, struct spf_answer *ans);
void spf_answer_copy(struct spf_answer *dst, const struct spf_answer *src);
void spf_answer_clear(struct spf_answer *ans);

const char *spf_result_str(enum spf_result r);	/* "pass", "softfail", ... */

/* "Received-SPF: pass (host: reason) client-ip=...; envelope-from=...; helo=...; receiver=...; identity=...;"
 * with its final CRLF (RFC 7208 section 9.1), values quoted when needed. */
bool spf_received_header(const struct spf_answer *ans, const struct spf_request *req, struct buf *out);

#endif
