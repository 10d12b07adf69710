/* DKIM verification: every DKIM-Signature field is checked on its own (section 6.1) and gets its own result;
 * the key record is fetched through a callback so smtpd uses the resolver and tests use a fixed answer. */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "dkim.h"
#include "dkim_int.h"
#include "dns.h"
#include "log.h"
#include "str.h"

#define DKIM_MAX_RECORD 8192

struct sigctx {
	const char *msg;
	size_t len, body_off;
	struct dkim_field *f;
	size_t nf;
	time_t now;
	dkim_key_fetch *fetch;
	void *arg;
};

static char *tag_dup(const struct dkim_tag *t)
{
	return t ? xstrndup(t->value, t->vlen) : NULL;
}

static bool tag_is(const struct dkim_tag *t, const char *s)
{
	return t && t->vlen == strlen(s) && memcmp(t->value, s, t->vlen) == 0;
}

/* A tag value with every FWS removed (base64 values may be folded). */
static char *tag_nows(const struct dkim_tag *t)
{
	char *s = xmalloc(t->vlen + 1);
	size_t n = 0;
	for (size_t i = 0; i < t->vlen; i++)
		if (t->value[i] != ' ' && t->value[i] != '\t' && t->value[i] != '\r' && t->value[i] != '\n')
			s[n++] = t->value[i];
	s[n] = '\0';
	return s;
}

static enum dkim_result done(struct dkim_sig_result *r, enum dkim_result res, const char *why)
{
	r->result = res;
	snprintf(r->reason, sizeof(r->reason), "%s", why);
	return res;
}

static bool parse_u64(const struct dkim_tag *t, uint64_t *v)
{
	return t && t->vlen && t->vlen <= 20 && str_to_u64n(t->value, t->vlen, UINT64_MAX, v);
}

/* i= must be the d= domain or a subdomain of it */
static bool identity_ok(const char *i, const char *d)
{
	const char *at = strrchr(i, '@');
	if (!at)
		return false;
	const char *dom = at + 1;
	size_t dl = strlen(dom), l = strlen(d);
	if (dl == l)
		return str_eq_ci(dom, d);
	return dl > l && dom[dl - l - 1] == '.' && str_eq_ci(dom + dl - l, d);
}

static bool list_has(const struct dkim_tag *t, const char *word)
{
	size_t wl = strlen(word), i = 0;
	while (i < t->vlen) {
		while (i < t->vlen && (t->value[i] == ':' || t->value[i] == ' ' || t->value[i] == '\t' ||
		                       t->value[i] == '\r' || t->value[i] == '\n'))
			i++;
		size_t s = i;
		while (i < t->vlen && t->value[i] != ':' && t->value[i] != ' ' && t->value[i] != '\t' &&
		       t->value[i] != '\r' && t->value[i] != '\n')
			i++;
		if (i - s == wl && str_eqn_ci(t->value + s, word, wl))
			return true;
	}
	return false;
}

static EVP_PKEY *get_key(struct sigctx *c, struct dkim_sig_result *r, enum dkim_result *res)
{
	struct buf name = BUF_INIT(600), rec = BUF_INIT(DKIM_MAX_RECORD), err = BUF_INIT(200);
	EVP_PKEY *pk = NULL;
	struct dkim_taglist tl;

	int st = buf_printf(&name, "%s._domainkey.%s", r->selector, r->domain) ? c->fetch(name.data, &rec, c->arg)
	                                                                          : DNS_BADNAME;
	if (dns_status_temporary((enum dns_status)st)) {
		*res = done(r, DKIM_TEMPERROR, "key lookup failed temporarily");
	} else if (st != DNS_OK) {
		*res = done(r, DKIM_PERMERROR, "no key record");
	} else if (!dkim_taglist_parse(rec.data ? rec.data : "", rec.len, &tl, &err)) {
		*res = done(r, DKIM_PERMERROR, "key record syntax error");
	} else {
		const struct dkim_tag *v = dkim_taglist_get(&tl, "v"), *k = dkim_taglist_get(&tl, "k"),
		                      *p = dkim_taglist_get(&tl, "p"), *h = dkim_taglist_get(&tl, "h"),
		                      *s = dkim_taglist_get(&tl, "s");
		enum dkim_alg kalg = DKIM_RSA_SHA256;
		struct buf der = BUF_INIT(DKIM_MAX_RECORD);
		if (v && (v != &tl.tags[0] || !tag_is(v, "DKIM1")))
			*res = done(r, DKIM_PERMERROR, "key record v= is not DKIM1 first");
		else if (!p)
			*res = done(r, DKIM_PERMERROR, "key record without p=");
		else if (p->vlen == 0)
			*res = done(r, DKIM_PERMERROR, "key revoked");
		else if (k && !tag_is(k, "rsa") && !tag_is(k, "ed25519"))
			*res = done(r, DKIM_PERMERROR, "unknown key type");
		else if ((kalg = tag_is(k, "ed25519") ? DKIM_ED25519_SHA256 : DKIM_RSA_SHA256) != r->alg)
			*res = done(r, DKIM_PERMERROR, "key type does not match a=");
		else if (h && !list_has(h, "sha256"))
			*res = done(r, DKIM_PERMERROR, "key does not allow sha256");
		else if (s && !list_has(s, "*") && !list_has(s, "email"))
			*res = done(r, DKIM_PERMERROR, "key not for email");
		else if (!dkim_b64_decode(p->value, p->vlen, &der) || der.len == 0)
			*res = done(r, DKIM_PERMERROR, "key p= is not base64");
		else if (kalg == DKIM_ED25519_SHA256) {
			if (der.len == 32)
				pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, (unsigned char *)der.data, 32);
			if (!pk)
				*res = done(r, DKIM_PERMERROR, "bad Ed25519 key");
		} else {
			const unsigned char *q = (unsigned char *)der.data;
			pk = d2i_PUBKEY(NULL, &q, (long)der.len);
			if (!pk) {
				q = (unsigned char *)der.data;
				pk = d2i_PublicKey(EVP_PKEY_RSA, NULL, &q, (long)der.len);
			}
			if (pk && (EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA || EVP_PKEY_get_bits(pk) < 1024)) {
				EVP_PKEY_free(pk);
				pk = NULL;
			}
			if (!pk)
				*res = done(r, DKIM_PERMERROR, "bad RSA key (or shorter than 1024 bits)");
		}
		buf_free(&der);
	}
	buf_free(&name);
	buf_free(&rec);
	buf_free(&err);
	return pk;
}

static enum dkim_result verify_one(struct sigctx *c, const struct dkim_field *sf, struct dkim_sig_result *r)
{
	struct dkim_taglist tl;
	struct buf err = BUF_INIT(200);
	size_t vlen = sf->len;
	const char *val = memchr(sf->p, ':', sf->len) + 1;

	/* the tag list is the field value without its final line end */
	vlen = sf->len - (size_t)(val - sf->p);
	if (vlen && val[vlen - 1] == '\n')
		vlen--;
	if (vlen && val[vlen - 1] == '\r')
		vlen--;
	bool parsed = dkim_taglist_parse(val, vlen, &tl, &err);
	buf_free(&err);
	if (!parsed)
		return done(r, DKIM_PERMERROR, "signature syntax error");
	const struct dkim_tag *v = dkim_taglist_get(&tl, "v"), *a = dkim_taglist_get(&tl, "a"),
	                      *b = dkim_taglist_get(&tl, "b"), *bh = dkim_taglist_get(&tl, "bh"),
	                      *cc = dkim_taglist_get(&tl, "c"), *d = dkim_taglist_get(&tl, "d"),
	                      *h = dkim_taglist_get(&tl, "h"), *i = dkim_taglist_get(&tl, "i"),
	                      *l = dkim_taglist_get(&tl, "l"), *q = dkim_taglist_get(&tl, "q"),
	                      *s = dkim_taglist_get(&tl, "s"), *t = dkim_taglist_get(&tl, "t"),
	                      *x = dkim_taglist_get(&tl, "x");
	r->domain = tag_dup(d);
	r->selector = tag_dup(s);
	if (b) {
		char *bb = tag_nows(b);
		r->b_prefix = xstrndup(bb, 8);
		free(bb);
	}
	if (!v || !a || !b || !bh || !d || !h || !s)
		return done(r, DKIM_PERMERROR, "signature lacks a required tag");
	if (!tag_is(v, "1"))
		return done(r, DKIM_PERMERROR, "unsupported signature version");
	if (tag_is(a, "rsa-sha256"))
		r->alg = DKIM_RSA_SHA256;
	else if (tag_is(a, "ed25519-sha256"))
		r->alg = DKIM_ED25519_SHA256;
	else
		return done(r, DKIM_PERMERROR, "unsupported algorithm");
	if (d->vlen == 0 || s->vlen == 0 || memchr(d->value, '\0', d->vlen) || memchr(s->value, '\0', s->vlen))
		return done(r, DKIM_PERMERROR, "empty d= or s=");
	enum dkim_canon hc = DKIM_CANON_SIMPLE, bc = DKIM_CANON_SIMPLE;
	if (cc) {
		char *cv = tag_dup(cc), *slash = strchr(cv, '/');
		if (slash)
			*slash++ = '\0';
		bool ok = true;
		if (strcmp(cv, "relaxed") == 0)
			hc = DKIM_CANON_RELAXED;
		else if (strcmp(cv, "simple") != 0)
			ok = false;
		if (slash && strcmp(slash, "relaxed") == 0)
			bc = DKIM_CANON_RELAXED;
		else if (slash && strcmp(slash, "simple") != 0)
			ok = false;
		free(cv);
		if (!ok)
			return done(r, DKIM_PERMERROR, "unknown canonicalisation");
	}
	if (q && !list_has(q, "dns/txt"))
		return done(r, DKIM_PERMERROR, "unsupported query method");
	if (!list_has(h, "from"))
		return done(r, DKIM_PERMERROR, "From not signed");
	if (i) {
		r->identity = tag_dup(i);
		if (!identity_ok(r->identity, r->domain))
			return done(r, DKIM_PERMERROR, "i= not within d=");
	} else {
		size_t n = strlen(r->domain) + 2;
		r->identity = xmalloc(n);
		snprintf(r->identity, n, "@%s", r->domain);
	}
	uint64_t lv = UINT64_MAX, tv = 0, xv = 0;
	if (l && !parse_u64(l, &lv))
		return done(r, DKIM_PERMERROR, "bad l=");
	if (t && !parse_u64(t, &tv))
		return done(r, DKIM_PERMERROR, "bad t=");
	if (x && !parse_u64(x, &xv))
		return done(r, DKIM_PERMERROR, "bad x=");
	if (t && x && xv < tv)
		return done(r, DKIM_PERMERROR, "x= before t=");
	if (x && (uint64_t)c->now > xv)
		return done(r, DKIM_PERMERROR, "signature expired");
	/* a signature from the future beyond clock skew is suspicious but not invalid; accepted */

	struct buf bhv = BUF_INIT(64), sig = BUF_INIT(1024);
	enum dkim_result res = DKIM_NONE;
	EVP_PKEY *pk = NULL;
	if (!dkim_b64_decode(bh->value, bh->vlen, &bhv) || bhv.len != 32) {
		res = done(r, DKIM_PERMERROR, "bad bh=");
	} else if (!dkim_b64_decode(b->value, b->vlen, &sig) || sig.len == 0) {
		res = done(r, DKIM_PERMERROR, "bad b=");
	} else if ((pk = get_key(c, r, &res)) != NULL) {
		unsigned char hash[32];
		uint64_t total;
		struct dkim_body *body = dkim_body_new(bc, lv);
		dkim_body_update(body, c->msg + c->body_off, c->len - c->body_off);
		dkim_body_final(body, hash, &total);
		dkim_body_free(&body);
		if (l && lv > total) {
			res = done(r, DKIM_PERMERROR, "l= longer than the body");
		} else if (memcmp(hash, bhv.data, 32) != 0) {
			res = done(r, DKIM_FAIL, "body hash mismatch");
		} else {
			/* the signature field with the b= value (and the white space around it) cut out */
			struct buf sf2 = BUF_INIT(BUF_NOLIMIT);
			const char *bend = b->value + b->vlen;
			while (bend < val + vlen && *bend != ';')
				bend++;
			const char *eq = b->value;
			while (eq > val && eq[-1] != '=')
				eq--;
			buf_append(&sf2, sf->p, (size_t)(eq - sf->p));
			buf_append(&sf2, bend, (size_t)(val + vlen - bend));
			if (!dkim_header_hash(c->f, c->nf, h->value, h->vlen, hc, sf2.data, sf2.len, hash))
				res = done(r, DKIM_PERMERROR, "header too large");
			else if (!dkim_pkey_verify(pk, r->alg, hash, (unsigned char *)sig.data, sig.len))
				res = done(r, DKIM_FAIL, "signature did not verify");
			else {
				r->body_limited = l && total > lv;
				res = done(r, DKIM_PASS, r->body_limited ? "good signature, but the body has content "
				                                          "beyond l=" : "good signature");
			}
			buf_free(&sf2);
		}
		EVP_PKEY_free(pk);
	}
	buf_free(&bhv);
	buf_free(&sig);
	return res;
}

struct dkim_sig_result *dkim_verify(const char *msg, size_t len, dkim_key_fetch *fetch, void *arg, time_t now,
                                    size_t max_sigs, size_t *n)
{
	struct sigctx c = { msg, len, 0, NULL, 0, now ? now : time(NULL), fetch, arg };
	struct dkim_sig_result *res = NULL;
	size_t count = 0;

	c.nf = dkim_split_header(msg, len, &c.f, &c.body_off);
	for (size_t k = 0; k < c.nf && count < max_sigs; k++) {
		if (c.f[k].nlen != 14 || !str_eqn_ci(c.f[k].p, "DKIM-Signature", 14))
			continue;
		res = xreallocarray(res, count + 1, sizeof(*res));
		memset(&res[count], 0, sizeof(*res));
		verify_one(&c, &c.f[k], &res[count]);
		count++;
	}
	free(c.f);
	*n = count;
	return res;
}

void dkim_results_free(struct dkim_sig_result **rp, size_t n)
{
	struct dkim_sig_result *r = *rp;
	if (!r)
		return;
	for (size_t i = 0; i < n; i++) {
		free(r[i].domain);
		free(r[i].selector);
		free(r[i].identity);
		free(r[i].b_prefix);
	}
	xfree(rp);
}

int dkim_fetch_dns(const char *name, struct buf *rec, void *arg)
{
	return dkim_key_record(dns_lookup(arg, DNS_TXT, name), rec);
}

int dkim_key_record(struct dns_result *res, struct buf *rec)
{
	int st = res->status;
	bool first = true;
	/* only records that look like key records count; several: joined by NUL, invalid as a tag list */
	for (size_t i = 0; st == DNS_OK && i < res->n; i++) {
		const struct dns_txt *t = &res->txt[i];
		if (!first)
			buf_putc(rec, '\0');
		buf_append(rec, t->text, t->len);
		first = false;
	}
	dns_result_free(&res);
	return st;
}

const char *dkim_result_str(enum dkim_result r)
{
	switch (r) {
	case DKIM_PASS: return "pass";
	case DKIM_FAIL: return "fail";
	case DKIM_NEUTRAL: return "neutral";
	case DKIM_TEMPERROR: return "temperror";
	case DKIM_PERMERROR: return "permerror";
	case DKIM_NONE: break;
	}
	return "none";
}
