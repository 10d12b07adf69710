/* DKIM signing policy on top of dkim_sign(): From domain -> key table -> key file, keys cached per process. */
#include <string.h>

#include "addr.h"
#include "alloc.h"
#include "buf.h"
#include "dkim.h"
#include "dkim_signer.h"
#include "str.h"
#include "table.h"

#define SIGNER_MAX_KEYS 1024

struct cached_key {
	char *path;
	struct dkim_key *key;
};

struct dkim_signer {
	struct table *t;
	struct cached_key keys[SIGNER_MAX_KEYS];
	size_t nkeys;
};

struct dkim_signer *dkim_signer_open(const char *table_path, struct buf *err)
{
	struct table *t = table_open(table_path, err);
	if (!t)
		return NULL;
	struct dkim_signer *s = xcalloc(1, sizeof(*s));
	s->t = t;
	return s;
}

void dkim_signer_free(struct dkim_signer **sp)
{
	struct dkim_signer *s = *sp;
	if (!s)
		return;
	for (size_t i = 0; i < s->nkeys; i++) {
		free(s->keys[i].path);
		dkim_key_free(&s->keys[i].key);
	}
	table_close(&s->t);
	xfree(sp);
}

char *dkim_from_domain(const char *msg, size_t len)
{
	struct dkim_field *f;
	size_t body, nf = dkim_split_header(msg, len, &f, &body), nfrom = 0;
	const struct dkim_field *from = NULL;
	char *dom = NULL;

	for (size_t i = 0; i < nf; i++) {
		if (f[i].nlen == 4 && str_eqn_ci(f[i].p, "From", 4)) {
			from = &f[i];
			nfrom++;
		}
	}
	if (nfrom == 1) {
		const char *v = memchr(from->p, ':', from->len) + 1;
		struct addr_list l = ADDR_LIST_INIT;
		if (addr_parse_header(v, from->len - (size_t)(v - from->p), ADDR_F_SMTPUTF8, &l, NULL) == ADDR_OK &&
		    l.n == 1 && !l.v[0].nodomain && l.v[0].a.domain && *l.v[0].a.domain && !l.v[0].a.literal) {
			dom = xstrdup(l.v[0].a.domain);
			str_lower(dom);
		}
		addr_list_free(&l);
	}
	free(f);
	return dom;
}

static struct dkim_key *get_key(struct dkim_signer *s, const char *path, struct buf *err)
{
	for (size_t i = 0; i < s->nkeys; i++)
		if (strcmp(s->keys[i].path, path) == 0)
			return s->keys[i].key;
	struct dkim_key *k = dkim_key_load(path, err);
	if (!k)
		return NULL;
	if (s->nkeys == SIGNER_MAX_KEYS) {
		/* a table with very many keys: drop the oldest (keys are small and quick to reload) */
		free(s->keys[0].path);
		dkim_key_free(&s->keys[0].key);
		memmove(s->keys, s->keys + 1, (SIGNER_MAX_KEYS - 1) * sizeof(s->keys[0]));
		s->nkeys--;
	}
	s->keys[s->nkeys].path = xstrdup(path);
	s->keys[s->nkeys].key = k;
	s->nkeys++;
	return k;
}

struct preload {
	struct dkim_signer *s;
	struct buf *err;
	size_t loaded, failed;
};

static void preload_one(const char *key, size_t keylen, const char *value, size_t vallen, unsigned line, void *arg)
{
	struct preload *p = arg;
	const char *colon = memchr(value, ':', vallen);

	(void)keylen;
	(void)line;
	if (!colon || colon == value || !colon[1]) {
		if (!p->failed++)
			buf_printf(p->err, "dkim_keys: value for %s is not SELECTOR:KEYFILE", key);
		return;
	}
	struct buf e = BUF_INIT(1024);
	if (get_key(p->s, colon + 1, &e))
		p->loaded++;
	else if (!p->failed++)
		buf_printf(p->err, "dkim_keys: %s: %s", key, buf_cstr(&e));
	buf_free(&e);
}

long dkim_signer_preload(struct dkim_signer *s, struct buf *err)
{
	struct preload p = { s, err, 0, 0 };

	if (!table_foreach(s->t, preload_one, &p)) {
		buf_printf(err, "dkim_keys: %s", table_error(s->t));
		return -1;
	}
	return p.failed ? -1 : (long)p.loaded;
}

int dkim_signer_sign(struct dkim_signer *s, const char *head, size_t hlen, const char *more, size_t mlen,
                     struct buf *out, struct buf *err)
{
	char *dom = dkim_from_domain(head, hlen);
	struct buf val = BUF_INIT(4096);
	const char *d = dom;
	int rc = 0;

	if (!dom)
		return 0;	/* nothing to decide by: unsigned */
	/* the domain itself, then each parent (a key for example.org signs mail from news.example.org) */
	enum table_result tr = TABLE_NOTFOUND;
	while (d && *d) {
		tr = table_lookup(s->t, d, &val);
		if (tr != TABLE_NOTFOUND)
			break;
		d = strchr(d, '.');
		if (d)
			d++;
	}
	if (tr == TABLE_ERROR) {
		buf_printf(err, "dkim_keys: %s", table_error(s->t));
		rc = -1;
	} else if (tr == TABLE_FOUND) {
		char *colon = strchr(val.data, ':');
		if (!colon || colon == val.data || !colon[1]) {
			buf_printf(err, "dkim_keys: value for %s is not SELECTOR:KEYFILE", d);
			rc = -1;
		} else {
			*colon = '\0';
			struct dkim_key *k = get_key(s, colon + 1, err);
			struct dkim_sign_options o = { d, val.data, k, 0, 0, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED };
			rc = k && dkim_sign_parts(&o, head, hlen, more, mlen, out, err) ? 1 : -1;
		}
	}
	buf_free(&val);
	free(dom);
	return rc;
}
