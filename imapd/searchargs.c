/* SEARCH key parsing and evaluation; see searchargs.h. */
#include <string.h>

#include "alloc.h"
#include "flags.h"
#include "searchargs.h"
#include "str.h"

#define SEARCH_SET_RANGES 1000

struct pstate {
	const struct imap_arg *args;
	size_t nargs, pos;
	size_t nkeys;
	struct buf *err;
	bool modseq;
};

static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
	"Dec" };

bool imap_search_date(const char *s, uint32_t *ymd)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned d = 0, y = 0, m;
	size_t i = 0;

	while (i < 2 && s[i] >= '0' && s[i] <= '9')
		d = d * 10 + (unsigned)(s[i++] - '0');
	if (i == 0 || s[i] != '-')
		return false;
	s += i + 1;
	for (m = 0; m < 12; m++)
		if (str_eqn_ci(s, months[m], 3))
			break;
	if (m == 12 || s[3] != '-')
		return false;
	s += 4;
	for (i = 0; i < 4; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		y = y * 10 + (unsigned)(s[i] - '0');
	}
	if (s[4] != '\0' || d == 0 || (int)d > mdays[m])
		return false;
	if (m == 1 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return false;
	*ymd = y * 10000 + (m + 1) * 100 + d;
	return true;
}

static void key_free(struct imap_search_key *k)
{
	for (size_t i = 0; i < k->nsub; i++)
		key_free(&k->sub[i]);
	free(k->sub);
	free(k->field);
	free(k->str);
	imap_seqset_free(&k->set);
}

void imap_search_free(struct imap_search *s)
{
	key_free(&s->root);
	memset(s, 0, sizeof(*s));
}

static struct imap_search_key *add_sub(struct imap_search_key *parent)
{
	parent->sub = xreallocarray(parent->sub, parent->nsub + 1, sizeof(*parent->sub));
	struct imap_search_key *k = &parent->sub[parent->nsub++];
	memset(k, 0, sizeof(*k));
	return k;
}

static bool fail(struct pstate *ps, const char *why)
{
	if (ps->err->len == 0)
		buf_puts(ps->err, why);
	return false;
}

static const struct imap_arg *next_arg(struct pstate *ps)
{
	return ps->pos < ps->nargs ? &ps->args[ps->pos++] : NULL;
}

static bool take_string(struct pstate *ps, char **out)
{
	const struct imap_arg *a = next_arg(ps);
	const char *s;
	if (!a || !imap_arg_astring(a, &s))
		return fail(ps, "search key needs a string");
	*out = xstrdup(s);
	return true;
}

static bool take_number(struct pstate *ps, uint64_t *out)
{
	const struct imap_arg *a = next_arg(ps);
	const char *s;
	if (!a || !imap_arg_atom(a, &s) || !str_to_u64(s, UINT32_MAX, out))
		return fail(ps, "search key needs a number");
	return true;
}

static bool take_date(struct pstate *ps, uint64_t *out)
{
	const struct imap_arg *a = next_arg(ps);
	const char *s;
	uint32_t ymd;
	if (!a || !imap_arg_astring(a, &s) || !imap_search_date(s, &ymd))
		return fail(ps, "search key needs a date like 1-Feb-1994");
	*out = ymd;
	return true;
}

static bool parse_key(struct pstate *ps, const struct imap_arg *a, struct imap_search_key *k, unsigned depth);

/* Keys from a list of arguments into parent (an AND). */
static bool parse_list(struct pstate *ps, struct imap_search_key *parent, unsigned depth)
{
	while (ps->pos < ps->nargs) {
		if (!parse_key(ps, &ps->args[ps->pos++], add_sub(parent), depth))
			return false;
	}
	return true;
}

static const struct {
	const char *name;
	enum imap_search_type type;
	unsigned flag;
} simple[] = {
	{ "ALL", IMAP_SK_ALL, 0 },
	{ "ANSWERED", IMAP_SK_FLAG_SET, IMAP_FLAG_ANSWERED },
	{ "DELETED", IMAP_SK_FLAG_SET, IMAP_FLAG_DELETED },
	{ "DRAFT", IMAP_SK_FLAG_SET, IMAP_FLAG_DRAFT },
	{ "FLAGGED", IMAP_SK_FLAG_SET, IMAP_FLAG_FLAGGED },
	{ "SEEN", IMAP_SK_FLAG_SET, IMAP_FLAG_SEEN },
	{ "UNANSWERED", IMAP_SK_FLAG_UNSET, IMAP_FLAG_ANSWERED },
	{ "UNDELETED", IMAP_SK_FLAG_UNSET, IMAP_FLAG_DELETED },
	{ "UNDRAFT", IMAP_SK_FLAG_UNSET, IMAP_FLAG_DRAFT },
	{ "UNFLAGGED", IMAP_SK_FLAG_UNSET, IMAP_FLAG_FLAGGED },
	{ "UNSEEN", IMAP_SK_FLAG_UNSET, IMAP_FLAG_SEEN },
	{ "RECENT", IMAP_SK_RECENT, 0 },
	{ "NEW", IMAP_SK_NEW, 0 },
	{ "OLD", IMAP_SK_OLD, 0 },
};

static const struct {
	const char *name;
	enum imap_search_type type;
} dated[] = {
	{ "BEFORE", IMAP_SK_BEFORE }, { "ON", IMAP_SK_ON }, { "SINCE", IMAP_SK_SINCE },
	{ "SENTBEFORE", IMAP_SK_SENTBEFORE }, { "SENTON", IMAP_SK_SENTON }, { "SENTSINCE", IMAP_SK_SENTSINCE },
};

static bool parse_key(struct pstate *ps, const struct imap_arg *a, struct imap_search_key *k, unsigned depth)
{
	const char *s;

	if (++ps->nkeys > IMAP_SEARCH_MAX_KEYS)
		return fail(ps, "too many search keys");
	if (depth >= IMAP_SEARCH_MAX_DEPTH)
		return fail(ps, "search keys nested too deeply");
	if (a->type == IMAP_ARG_LIST) {
		if (a->count == 0)
			return fail(ps, "empty search key list");
		struct pstate inner = { a->list, a->count, 0, ps->nkeys, ps->err, ps->modseq };
		k->type = IMAP_SK_AND;
		bool ok = parse_list(&inner, k, depth + 1);
		ps->nkeys = inner.nkeys;
		ps->modseq = inner.modseq;
		return ok;
	}
	if (!imap_arg_atom(a, &s))
		return fail(ps, "search key expected");
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++)
		if (str_eq_ci(s, simple[i].name)) {
			k->type = simple[i].type;
			k->num = simple[i].flag;
			return true;
		}
	for (size_t i = 0; i < sizeof(dated) / sizeof(dated[0]); i++)
		if (str_eq_ci(s, dated[i].name)) {
			k->type = dated[i].type;
			return take_date(ps, &k->num);
		}
	static const char *const hdrs[] = { "FROM", "TO", "CC", "BCC", "SUBJECT" };
	for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++)
		if (str_eq_ci(s, hdrs[i])) {
			k->type = IMAP_SK_HEADER;
			k->field = xstrdup(hdrs[i]);
			return take_string(ps, &k->str);
		}
	if (str_eq_ci(s, "HEADER")) {
		k->type = IMAP_SK_HEADER;
		if (!take_string(ps, &k->field) || !take_string(ps, &k->str))
			return false;
		for (char *p = k->field; *p; p++) {
			if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == ':')
				return fail(ps, "invalid header field name");
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 32);
		}
		return *k->field ? true : fail(ps, "invalid header field name");
	}
	if (str_eq_ci(s, "BODY") || str_eq_ci(s, "TEXT")) {
		k->type = str_eq_ci(s, "BODY") ? IMAP_SK_BODY : IMAP_SK_TEXT;
		return take_string(ps, &k->str);
	}
	if (str_eq_ci(s, "KEYWORD") || str_eq_ci(s, "UNKEYWORD")) {
		k->type = str_eq_ci(s, "KEYWORD") ? IMAP_SK_KEYWORD : IMAP_SK_UNKEYWORD;
		const struct imap_arg *f = next_arg(ps);
		const char *kw;
		if (!f || !imap_arg_atom(f, &kw) || kw[0] == '\\')
			return fail(ps, "KEYWORD needs a keyword");
		k->str = xstrdup(kw);
		return true;
	}
	if (str_eq_ci(s, "LARGER") || str_eq_ci(s, "SMALLER")) {
		k->type = str_eq_ci(s, "LARGER") ? IMAP_SK_LARGER : IMAP_SK_SMALLER;
		return take_number(ps, &k->num);
	}
	if (str_eq_ci(s, "MODSEQ")) {
		/* RFC 7162: MODSEQ ["/flags/NAME" priv|shared|all] n; we keep one modseq per message, so the
		 * entry is checked for syntax and the message's modseq is compared */
		const struct imap_arg *x = next_arg(ps);
		const char *v;
		if (x && (x->type == IMAP_ARG_QUOTED || x->type == IMAP_ARG_LITERAL)) {
			x = next_arg(ps);
			if (!x || !imap_arg_atom(x, &v) || !(str_eq_ci(v, "priv") || str_eq_ci(v, "shared") ||
							   str_eq_ci(v, "all")))
				return fail(ps, "MODSEQ entry type must be priv, shared or all");
			x = next_arg(ps);
		}
		k->type = IMAP_SK_MODSEQ;
		ps->modseq = true;
		if (!x || !imap_arg_atom(x, &v) || !str_to_u64(v, INT64_MAX, &k->num))
			return fail(ps, "MODSEQ needs a mod-sequence");
		return true;
	}
	if (str_eq_ci(s, "NOT")) {
		const struct imap_arg *x = next_arg(ps);
		k->type = IMAP_SK_NOT;
		return x ? parse_key(ps, x, add_sub(k), depth + 1) : fail(ps, "NOT needs a search key");
	}
	if (str_eq_ci(s, "OR")) {
		k->type = IMAP_SK_OR;
		for (int i = 0; i < 2; i++) {
			const struct imap_arg *x = next_arg(ps);
			if (!x)
				return fail(ps, "OR needs two search keys");
			if (!parse_key(ps, x, add_sub(k), depth + 1))
				return false;
		}
		return true;
	}
	if (str_eq_ci(s, "UID")) {
		const struct imap_arg *x = next_arg(ps);
		const char *set;
		k->type = IMAP_SK_UIDSET;
		if (!x || !imap_arg_atom(x, &set) || !imap_seqset_parse(set, &k->set, SEARCH_SET_RANGES))
			return fail(ps, "UID needs a UID set");
		return true;
	}
	k->type = IMAP_SK_SEQSET;
	if (imap_seqset_parse(s, &k->set, SEARCH_SET_RANGES))
		return true;
	return fail(ps, "unknown search key");
}

bool imap_search_parse(const struct imap_arg *args, size_t nargs, struct imap_search *out, struct buf *err,
		       bool *badcharset)
{
	const char *s;

	memset(out, 0, sizeof(*out));
	out->root.type = IMAP_SK_AND;
	*badcharset = false;
	if (nargs >= 2 && imap_arg_atom(&args[0], &s) && str_eq_ci(s, "CHARSET")) {
		const char *cs;
		if (!imap_arg_astring(&args[1], &cs)) {
			buf_puts(err, "CHARSET needs a name");
			return false;
		}
		if (!str_eq_ci(cs, "UTF-8") && !str_eq_ci(cs, "US-ASCII")) {
			*badcharset = true;
			buf_puts(err, "unsupported charset");
			return false;
		}
		args += 2;
		nargs -= 2;
	}
	if (nargs == 0) {
		buf_puts(err, "SEARCH needs search keys");
		return false;
	}
	struct pstate ps = { args, nargs, 0, 0, err, false };
	bool ok = parse_list(&ps, &out->root, 0);
	out->nkeys = ps.nkeys;
	out->modseq = ps.modseq;
	return ok;
}

static void resolve_key(struct imap_search_key *k, uint32_t max_seq, uint32_t max_uid)
{
	if (k->type == IMAP_SK_SEQSET)
		imap_seqset_resolve(&k->set, max_seq);
	else if (k->type == IMAP_SK_UIDSET)
		imap_seqset_resolve(&k->set, max_uid);
	for (size_t i = 0; i < k->nsub; i++)
		resolve_key(&k->sub[i], max_seq, max_uid);
}

void imap_search_resolve(struct imap_search *s, uint32_t max_seq, uint32_t max_uid)
{
	resolve_key(&s->root, max_seq, max_uid);
}

static bool match_key(const struct imap_search_key *k, const struct imap_search_msg *m)
{
	switch (k->type) {
	case IMAP_SK_AND:
		for (size_t i = 0; i < k->nsub; i++)
			if (!match_key(&k->sub[i], m))
				return false;
		return true;
	case IMAP_SK_OR:
		return match_key(&k->sub[0], m) || match_key(&k->sub[1], m);
	case IMAP_SK_NOT:
		return !match_key(&k->sub[0], m);
	case IMAP_SK_ALL:
		return true;
	case IMAP_SK_FLAG_SET:
		return (m->flags & k->num) == k->num;
	case IMAP_SK_FLAG_UNSET:
		return (m->flags & k->num) == 0;
	case IMAP_SK_RECENT:
		return m->recent;
	case IMAP_SK_NEW:
		return m->recent && !(m->flags & IMAP_FLAG_SEEN);
	case IMAP_SK_OLD:
		return !m->recent;
	case IMAP_SK_KEYWORD:
		return m->text && m->text(m->ctx, k);
	case IMAP_SK_UNKEYWORD:
		return !(m->text && m->text(m->ctx, k));
	case IMAP_SK_MODSEQ:
		return m->modseq >= k->num;
	case IMAP_SK_LARGER:
		return m->size > k->num;
	case IMAP_SK_SMALLER:
		return m->size < k->num;
	case IMAP_SK_BEFORE:
		return m->internal_ymd < k->num;
	case IMAP_SK_ON:
		return m->internal_ymd == k->num;
	case IMAP_SK_SINCE:
		return m->internal_ymd >= k->num;
	case IMAP_SK_SEQSET:
		return imap_seqset_contains(&k->set, m->seq);
	case IMAP_SK_UIDSET:
		return imap_seqset_contains(&k->set, m->uid);
	case IMAP_SK_SENTBEFORE:
	case IMAP_SK_SENTON:
	case IMAP_SK_SENTSINCE:
	case IMAP_SK_HEADER:
	case IMAP_SK_BODY:
	case IMAP_SK_TEXT:
		return m->text && m->text(m->ctx, k);
	}
	return false;
}

bool imap_search_match(const struct imap_search *s, const struct imap_search_msg *m)
{
	return match_key(&s->root, m);
}
