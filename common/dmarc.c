/* DMARC record parsing, alignment and the verdict. The lookup is two TXT queries at most, done blocking from
 * smtpd's per-session process after the data phase. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "dmarc.h"
#include "dns.h"
#include "log.h"
#include "psl.h"
#include "str.h"

#define DMARC_TAG_MAX 1024

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool parse_policy(const char *v, enum dmarc_policy *out)
{
	if (str_eq_ci(v, "none"))
		*out = DMARC_POLICY_NONE;
	else if (str_eq_ci(v, "quarantine"))
		*out = DMARC_POLICY_QUARANTINE;
	else if (str_eq_ci(v, "reject"))
		*out = DMARC_POLICY_REJECT;
	else
		return false;
	return true;
}

static bool parse_align(const char *v, bool *strict)
{
	if (str_eq_ci(v, "r"))
		*strict = false;
	else if (str_eq_ci(v, "s"))
		*strict = true;
	else
		return false;
	return true;
}

void dmarc_record_clear(struct dmarc_record *r)
{
	xfree(&r->rua);
	xfree(&r->ruf);
	xfree(&r->fo);
}

bool dmarc_record_parse(const char *text, size_t len, struct dmarc_record *r, struct buf *err)
{
	enum { T_V = 1, T_P = 2, T_SP = 4, T_ADKIM = 8, T_ASPF = 16, T_PCT = 32, T_RUA = 64, T_RUF = 128,
	       T_FO = 256, T_RI = 512, T_RF = 1024 };
	unsigned seen = 0;
	size_t i = 0, ntag = 0;
	bool ok = true;

	memset(r, 0, sizeof(*r));
	r->p = r->sp = DMARC_POLICY_UNSET;
	r->pct = 100;
	r->ri = 86400;
	if (memchr(text, '\0', len)) {
		buf_puts(err, "NUL in record");
		return false;
	}
	while (i < len && ok) {
		size_t start = i, end;
		while (i < len && text[i] != ';')
			i++;
		end = i++;
		while (start < end && is_wsp(text[start]))
			start++;
		while (end > start && is_wsp(text[end - 1]))
			end--;
		if (start == end) {
			if (ntag == 0) {
				buf_puts(err, "record does not start with v=DMARC1");
				ok = false;
			}
			continue;	/* an empty tag after a ';' (trailing ';') */
		}
		if (end - start > DMARC_TAG_MAX) {
			buf_puts(err, "tag too long");
			ok = false;
			break;
		}
		const char *eq = memchr(text + start, '=', end - start);
		if (!eq) {
			buf_puts(err, "tag without '='");
			ok = false;
			break;
		}
		size_t nlen = (size_t)(eq - (text + start));
		while (nlen && is_wsp(text[start + nlen - 1]))
			nlen--;
		const char *vs = eq + 1;
		while (vs < text + end && is_wsp(*vs))
			vs++;
		char *name = xstrndup(text + start, nlen), *val = xstrndup(vs, (size_t)(text + end - vs));
		unsigned bit = 0;
		bool good = true;
		ntag++;
		if (ntag == 1) {
			if (strcmp(name, "v") != 0 || strcmp(val, "DMARC1") != 0) {
				buf_puts(err, "record does not start with v=DMARC1");
				good = false;
			}
			bit = T_V;
		} else if (str_eq_ci(name, "v")) {
			bit = T_V;	/* twice: rejected below */
		} else if (str_eq_ci(name, "p")) {
			bit = T_P;
			good = parse_policy(val, &r->p);
		} else if (str_eq_ci(name, "sp")) {
			bit = T_SP;
			good = parse_policy(val, &r->sp);
		} else if (str_eq_ci(name, "adkim")) {
			bit = T_ADKIM;
			good = parse_align(val, &r->adkim_strict);
		} else if (str_eq_ci(name, "aspf")) {
			bit = T_ASPF;
			good = parse_align(val, &r->aspf_strict);
		} else if (str_eq_ci(name, "pct")) {
			uint64_t n;
			bit = T_PCT;
			good = str_to_u64(val, 100, &n);
			r->pct = (unsigned)n;
		} else if (str_eq_ci(name, "ri")) {
			uint64_t n;
			bit = T_RI;
			good = str_to_u64(val, 0xffffffffu, &n);
			r->ri = (unsigned)n;
		} else if (str_eq_ci(name, "rua")) {
			bit = T_RUA;
			if (!(seen & bit))	/* given twice: refused below, without leaking the first */
				r->rua = xstrdup(val);
		} else if (str_eq_ci(name, "ruf")) {
			bit = T_RUF;
			if (!(seen & bit))	/* given twice: refused below, without leaking the first */
				r->ruf = xstrdup(val);
		} else if (str_eq_ci(name, "fo")) {
			bit = T_FO;
			if (!(seen & bit))	/* given twice: refused below, without leaking the first */
				r->fo = xstrdup(val);
		} else if (str_eq_ci(name, "rf")) {
			bit = T_RF;
		}
		if (good && bit && (seen & bit)) {
			buf_printf(err, "tag %s given twice", log_safe(name, strlen(name), 32));
			good = false;
		}
		if (!good && !err->len)
			buf_printf(err, "bad value for tag %s", log_safe(name, strlen(name), 32));
		seen |= bit;
		free(name);
		free(val);
		ok = good;
	}
	if (ok && !(seen & T_V)) {
		buf_puts(err, "record does not start with v=DMARC1");
		ok = false;
	}
	/* section 6.6.3: a missing or bad p= with a valid rua= is treated as p=none; without rua, no record */
	if (ok && r->p == DMARC_POLICY_UNSET) {
		if (r->rua) {
			r->p = DMARC_POLICY_NONE;
		} else {
			buf_puts(err, "no p= tag");
			ok = false;
		}
	}
	if (ok && !r->fo)
		r->fo = xstrdup("0");
	if (!ok)
		dmarc_record_clear(r);
	return ok;
}

static bool strip_dot_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la && a[la - 1] == '.')
		la--;
	if (lb && b[lb - 1] == '.')
		lb--;
	return la == lb && str_eqn_ci(a, b, la);
}

bool dmarc_aligned(const struct psl *psl, const char *a, const char *b, bool strict)
{
	if (!a || !b || !*a || !*b)
		return false;
	if (strip_dot_eq(a, b))
		return true;
	if (strict)
		return false;
	const char *oa = psl_org_domain(psl, a), *ob = psl_org_domain(psl, b);
	return oa && ob && str_eq_ci(oa, ob);
}

void dmarc_evaluate(const struct psl *psl, const struct dmarc_input *in, const struct dmarc_record *r,
                    const char *record_domain, unsigned roll, struct dmarc_verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->policy = DMARC_POLICY_NONE;
	v->published = DMARC_POLICY_UNSET;
	if (!r) {
		v->result = DMARC_NONE;
		snprintf(v->reason, sizeof(v->reason), "no DMARC record");
		return;
	}
	v->record_domain = record_domain;
	v->spf_aligned = in->spf_pass && dmarc_aligned(psl, in->from_domain, in->spf_domain, r->aspf_strict);
	for (size_t i = 0; i < in->n_dkim && !v->dkim_aligned; i++)
		v->dkim_aligned = dmarc_aligned(psl, in->from_domain, in->dkim_pass_domains[i], r->adkim_strict);
	/* sp= applies when the record came from the organisational domain, not the From domain itself */
	bool sub = record_domain && !strip_dot_eq(record_domain, in->from_domain);
	v->published = sub && r->sp != DMARC_POLICY_UNSET ? r->sp : r->p;
	if (v->spf_aligned || v->dkim_aligned) {
		v->result = DMARC_PASS;
		snprintf(v->reason, sizeof(v->reason), "%s%s%s aligned", v->spf_aligned ? "spf" : "",
		         v->spf_aligned && v->dkim_aligned ? " and " : "", v->dkim_aligned ? "dkim" : "");
		return;
	}
	v->result = DMARC_FAIL;
	/* section 6.6.4: outside pct, quarantine becomes none and reject becomes quarantine */
	if (roll < r->pct)
		v->policy = v->published;
	else
		v->policy = v->published == DMARC_POLICY_REJECT ? DMARC_POLICY_QUARANTINE : DMARC_POLICY_NONE;
	snprintf(v->reason, sizeof(v->reason), "neither spf nor dkim aligned");
}

int dmarc_record_from_txt(const struct dns_result *res, struct dmarc_record *r)
{
	int found = 0;
	size_t which = 0;

	if (!res || res->status != DNS_OK)
		return 0;
	for (size_t i = 0; i < res->n; i++) {
		const struct dns_txt *t = &res->txt[i];
		if (t->len >= 8 && memcmp(t->text, "v=DMARC1", 8) == 0 &&
		    (t->len == 8 || t->text[8] == ';' || is_wsp(t->text[8]))) {
			found++;
			which = i;
		}
	}
	if (found > 1)
		return -1;
	if (found == 0)
		return 0;
	struct buf err = BUF_INIT(256);
	bool ok = dmarc_record_parse(res->txt[which].text, res->txt[which].len, r, &err);
	buf_free(&err);
	return ok ? 1 : 0;
}

/* 1 record found, 0 none, -1 temporary DNS failure */
static int fetch(dmarc_lookup_fn *lookup, void *arg, const char *domain, struct dmarc_record *r)
{
	struct buf name = BUF_INIT(300);
	if (!buf_printf(&name, "_dmarc.%s", domain)) {
		buf_free(&name);
		return 0;
	}
	struct dns_result *res = lookup(buf_cstr(&name), arg);
	buf_free(&name);
	int rc = dns_status_temporary(res->status) ? -1 : dmarc_record_from_txt(res, r) == 1;
	dns_result_free(&res);
	return rc;
}

void dmarc_check_with(dmarc_lookup_fn *lookup, void *arg, const struct psl *psl, const struct dmarc_input *in,
                      unsigned roll, struct dmarc_verdict *v)
{
	struct dmarc_record r;
	const char *where = in->from_domain;
	int rc = fetch(lookup, arg, where, &r);

	if (rc == 0) {
		const char *org = psl_org_domain(psl, in->from_domain);
		if (org && !str_eq_ci(org, in->from_domain)) {
			where = org;
			rc = fetch(lookup, arg, where, &r);
		}
	}
	if (rc < 0) {
		memset(v, 0, sizeof(*v));
		v->result = DMARC_TEMPERROR;
		v->policy = DMARC_POLICY_NONE;
		v->published = DMARC_POLICY_UNSET;
		snprintf(v->reason, sizeof(v->reason), "DNS temporary failure looking up the DMARC record");
		return;
	}
	dmarc_evaluate(psl, in, rc == 1 ? &r : NULL, where, roll, v);
	if (rc == 1)
		dmarc_record_clear(&r);
}

static struct dns_result *blocking_lookup(const char *name, void *arg)
{
	return dns_lookup(arg, DNS_TXT, name);
}

void dmarc_check(const struct dns_options *opt, const struct psl *psl, const struct dmarc_input *in,
                 unsigned roll, struct dmarc_verdict *v)
{
	dmarc_check_with(blocking_lookup, (void *)opt, psl, in, roll, v);
}

const char *dmarc_result_str(enum dmarc_result r)
{
	switch (r) {
	case DMARC_PASS: return "pass";
	case DMARC_FAIL: return "fail";
	case DMARC_TEMPERROR: return "temperror";
	case DMARC_PERMERROR: return "permerror";
	case DMARC_NONE: break;
	}
	return "none";
}

const char *dmarc_policy_str(enum dmarc_policy p)
{
	switch (p) {
	case DMARC_POLICY_NONE: return "none";
	case DMARC_POLICY_QUARANTINE: return "quarantine";
	case DMARC_POLICY_REJECT: return "reject";
	case DMARC_POLICY_UNSET: break;
	}
	return "";
}
