/* DMARC (RFC 7489): the policy record at _dmarc.<From domain> (or its organisational domain), its tags, and
 * the verdict from identifier alignment of the SPF and DKIM results. Called by smtpd after the message data
 * has been received, SPF checked and DKIM signatures verified; the result goes into Authentication-Results. */
#ifndef POSTERN_DMARC_H
#define POSTERN_DMARC_H

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct psl;
struct dns_options;
struct dns_result;

enum dmarc_policy { DMARC_POLICY_UNSET = -1, DMARC_POLICY_NONE, DMARC_POLICY_QUARANTINE, DMARC_POLICY_REJECT };
enum dmarc_result { DMARC_NONE, DMARC_PASS, DMARC_FAIL, DMARC_TEMPERROR, DMARC_PERMERROR };

struct dmarc_record {
	enum dmarc_policy p;
	enum dmarc_policy sp;	/* DMARC_POLICY_UNSET when absent: p applies to subdomains */
	bool adkim_strict;
	bool aspf_strict;
	unsigned pct;		/* 0..100 */
	char *rua;		/* kept as published (NULL when absent); reports are not sent yet */
	char *ruf;
	char *fo;		/* "0" by default */
	unsigned ri;		/* report interval, 86400 by default */
};

/* Parse a record ("v=DMARC1; p=reject; ..."): false with a reason in err when it is not a valid DMARC record
 * (v=DMARC1 not first, no valid p=, a tag with a bad value or given twice). Unknown tags are ignored (section
 * 6.3). On success r owns its strings: dmarc_record_clear() them. */
bool dmarc_record_parse(const char *text, size_t len, struct dmarc_record *r, struct buf *err);
void dmarc_record_clear(struct dmarc_record *r);

/* Alignment of two domains: strict means equal (ASCII case-insensitive); relaxed means equal organisational
 * domains. */
bool dmarc_aligned(const struct psl *psl, const char *a, const char *b, bool strict);

struct dmarc_input {
	const char *from_domain;	/* RFC5322.From domain (exactly one) */
	bool spf_pass;			/* SPF result for MAIL FROM was "pass" */
	const char *spf_domain;		/* the domain SPF checked (MAIL FROM, or HELO when MAIL FROM was empty) */
	const char *const *dkim_pass_domains;	/* d= of every DKIM signature that passed */
	size_t n_dkim;
};

struct dmarc_verdict {
	enum dmarc_result result;
	enum dmarc_policy policy;	/* to apply: DMARC_POLICY_NONE unless the result is fail (after pct) */
	enum dmarc_policy published;	/* p= or sp= that the record set for this domain (UNSET when no record) */
	const char *record_domain;	/* where the record was found (points into from_domain); NULL when none */
	bool spf_aligned, dkim_aligned;
	char reason[128];		/* for logs and Authentication-Results comments */
};

/* Evaluate with a record already fetched (r may be NULL: result none). roll is a number 0..99 chosen by the
 * caller (random in production) compared against pct, so tests are repeatable. record_domain is where r was
 * found: the From domain itself or its organisational domain (then sp= applies). */
void dmarc_evaluate(const struct psl *psl, const struct dmarc_input *in, const struct dmarc_record *r,
                    const char *record_domain, unsigned roll, struct dmarc_verdict *v);

/* Choose the one DMARC record among TXT answers: 0 none, 1 found (parsed into r), -1 when several records
 * start with v=DMARC1 (section 6.6.3: then there is no policy). */
int dmarc_record_from_txt(const struct dns_result *res, struct dmarc_record *r);

/* Blocking lookup and evaluation: _dmarc.<from>, then _dmarc.<organisational domain>. DNS temporary errors
 * give DMARC_TEMPERROR. */
void dmarc_check(const struct dns_options *opt, const struct psl *psl, const struct dmarc_input *in,
                 unsigned roll, struct dmarc_verdict *v);

/* The same with the TXT lookups done by the caller (smtpd runs them on its own event loop under one deadline):
 * lookup returns a result (never NULL) that dmarc_check_with() frees. */
typedef struct dns_result *dmarc_lookup_fn(const char *name, void *arg);
void dmarc_check_with(dmarc_lookup_fn *lookup, void *arg, const struct psl *psl, const struct dmarc_input *in,
                      unsigned roll, struct dmarc_verdict *v);

const char *dmarc_result_str(enum dmarc_result r);	/* "pass", "fail", "none", "temperror", "permerror" */
const char *dmarc_policy_str(enum dmarc_policy p);	/* "none", "quarantine", "reject" ("" when unset) */

#endif
