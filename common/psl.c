/* Public Suffix List: rules kept lower-case in one sorted array and found with bsearch, one probe per label
 * of the domain asked about (a domain has few labels, the list has ~9000 rules). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#include "alloc.h"
#include "buf.h"
#include "psl.h"
#include "str.h"

#define PSL_MAX_FILE (16u * 1024 * 1024)
#define PSL_MAX_LABELS 127

enum psl_kind { PSL_NORMAL, PSL_WILDCARD, PSL_EXCEPTION };

struct psl_rule {
	char *name;		/* without "*." or "!" */
	enum psl_kind kind;
};

struct psl {
	struct psl_rule *rules;
	size_t n;
};

static int rule_cmp(const void *a, const void *b)
{
	const struct psl_rule *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : (int)x->kind - (int)y->kind;
}

/* The list writes internationalised rules in Unicode (UTF-8), but the names we look up are A-labels (DNS and
 * DMARC work on xn-- forms): such rules are stored converted, so "公司.cn" matches "xn--55qx5d.cn". A rule
 * that does not convert is kept as written (it can then match nothing, which is what it matched before). */
static char *rule_name(const char *s, size_t n)
{
	char *name = xstrndup(s, n);
	bool ascii = true;

	for (size_t i = 0; i < n && ascii; i++)
		ascii = (unsigned char)s[i] < 0x80;
	if (!ascii) {
		char *a = NULL;
		if (idn2_to_ascii_8z(name, &a, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) == IDN2_OK && a) {
			free(name);
			name = xstrdup(a);
		}
		idn2_free(a);
	}
	str_lower(name);
	return name;
}

struct psl *psl_parse(const char *text, size_t len)
{
	struct psl *p = xcalloc(1, sizeof(*p));
	size_t cap = 0, i = 0;

	while (i < len) {
		size_t start = i, end;
		while (i < len && text[i] != '\n')
			i++;
		end = i++;
		/* a rule is the first white-space-delimited word of a line */
		while (start < end && (text[start] == ' ' || text[start] == '\t'))
			start++;
		size_t w = start;
		while (w < end && text[w] != ' ' && text[w] != '\t' && text[w] != '\r')
			w++;
		if (w == start || (w - start >= 2 && text[start] == '/' && text[start + 1] == '/'))
			continue;
		enum psl_kind kind = PSL_NORMAL;
		if (text[start] == '!') {
			kind = PSL_EXCEPTION;
			start++;
		} else if (w - start >= 2 && text[start] == '*' && text[start + 1] == '.') {
			kind = PSL_WILDCARD;
			start += 2;
		}
		if (start >= w || memchr(text + start, '\0', w - start) || text[start] == '.')
			continue;
		if (p->n == cap) {
			cap = cap ? cap * 2 : 1024;
			p->rules = xreallocarray(p->rules, cap, sizeof(*p->rules));
		}
		p->rules[p->n].name = rule_name(text + start, w - start);
		p->rules[p->n].kind = kind;
		p->n++;
	}
	if (p->n)
		qsort(p->rules, p->n, sizeof(*p->rules), rule_cmp);
	return p;
}

struct psl *psl_load(const char *path)
{
	FILE *f = fopen(path, "r");
	struct buf b = BUF_INIT(PSL_MAX_FILE);
	char chunk[8192];
	size_t n;

	if (!f)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (!buf_append(&b, chunk, n)) {
			fclose(f);
			buf_free(&b);
			errno = EFBIG;
			return NULL;
		}
	}
	if (ferror(f)) {
		int e = errno;
		fclose(f);
		buf_free(&b);
		errno = e ? e : EIO;
		return NULL;
	}
	fclose(f);
	struct psl *p = psl_parse(buf_cstr(&b), b.len);
	buf_free(&b);
	return p;
}

void psl_free(struct psl **pp)
{
	struct psl *p = *pp;
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->rules[i].name);
	free(p->rules);
	xfree(pp);
}

size_t psl_count(const struct psl *p)
{
	return p ? p->n : 0;
}

static bool has_rule(const struct psl *p, const char *name, enum psl_kind kind)
{
	struct psl_rule key = { (char *)name, kind };
	return p && p->n && bsearch(&key, p->rules, p->n, sizeof(*p->rules), rule_cmp) != NULL;
}

/* Number of labels of the public suffix of the lower-cased name, whose label starts are in starts[0..n). */
static size_t suffix_labels(const struct psl *p, const char *name, const size_t *starts, size_t n)
{
	size_t best = 1;	/* the implicit "*" rule */

	/* from the shortest suffix up: the longest matching rule wins, an exception beats everything */
	for (size_t k = 1; k <= n; k++) {
		const char *suf = name + starts[n - k];
		if (has_rule(p, suf, PSL_EXCEPTION))
			return k - 1;
		if (has_rule(p, suf, PSL_NORMAL) && k > best)
			best = k;
		if (k < n && has_rule(p, suf, PSL_WILDCARD) && k + 1 > best)
			best = k + 1;
	}
	/* an exception rule deeper than the name was probed above only up to n labels; fine */
	return best;
}

static const char *suffix_start(const struct psl *p, const char *domain, size_t extra)
{
	size_t len = domain ? strlen(domain) : 0, starts[PSL_MAX_LABELS + 1], n = 0;

	if (len == 0 || len > 253 || domain[0] == '.' || domain[len - 1] == '.')
		return NULL;
	char *lc = xstrdup(domain);
	str_lower(lc);
	starts[n++] = 0;
	for (size_t i = 0; i < len; i++) {
		if (lc[i] != '.')
			continue;
		if (lc[i + 1] == '.' || n == PSL_MAX_LABELS) {
			free(lc);
			return NULL;
		}
		starts[n++] = i + 1;
	}
	size_t k = suffix_labels(p, lc, starts, n) + extra;
	free(lc);
	if (k > n)
		return NULL;
	return domain + starts[n - k];
}

const char *psl_public_suffix(const struct psl *p, const char *domain)
{
	return suffix_start(p, domain, 0);
}

const char *psl_org_domain(const struct psl *p, const char *domain)
{
	return suffix_start(p, domain, 1);
}
