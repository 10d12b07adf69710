/* imapd LIST and LSUB: RFC 3501's basic forms with CHILDREN (RFC 3348) attributes, and the extended form of
 * LIST-EXTENDED (RFC 5258: selection options SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE; return options
 * SUBSCRIBED, CHILDREN, SPECIAL-USE; several patterns; \NonExistent; CHILDINFO) and LIST-STATUS (RFC 5819).
 * Where the RFCs leave a choice the answers are Dovecot's: a basic LIST says \Noselect and the children
 * attributes for a parent that exists only as a prefix, an extended LIST says \NonExistent and reports only what
 * was asked for. */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cmdtab.h"
#include "listmatch.h"
#include "mailboxes.h"
#include "str.h"
#include "utf7imap.h"

#define NAME_MAX_BYTES 1024
#define PATTERNS_MAX 64

enum {
	SEL_SUBSCRIBED = 1 << 0,
	SEL_RECURSIVE = 1 << 1,
	SEL_SPECIAL = 1 << 2,
	RET_SUBSCRIBED = 1 << 3,
	RET_CHILDREN = 1 << 4,
	RET_SPECIAL = 1 << 5,
	RET_STATUS = 1 << 6,
};

struct listreq {
	bool lsub, extended;
	unsigned opts;
	const struct imap_arg *status_items;	/* RETURN (STATUS (...)) */
	struct imapd_names patterns;		/* joined with the reference, UTF-8 */
	struct imapd_names existing;		/* folders on disk */
	struct imapd_names subs;		/* subscriptions */
	struct imapd_names all;			/* the candidates: the above and every parent of them */
};

static bool has_child_in(const struct imapd_names *names, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < names->count; i++)
		if (strncmp(names->v[i], name, n) == 0 && names->v[i][n] == IMAPD_HIER_SEP)
			return true;
	return false;
}

/* Add the parents of every name that are not in the list: "%" must show "a" for "a/b". */
static void add_parents(struct imapd_names *all)
{
	size_t n = all->count;
	for (size_t i = 0; i < n; i++) {
		char *copy = xstrdup(all->v[i]);
		char *slash;
		while ((slash = strrchr(copy, IMAPD_HIER_SEP)) != NULL) {
			*slash = '\0';
			if (*copy && !imapd_names_has(all, copy))
				imapd_names_add(all, copy);
		}
		free(copy);
	}
}

static int cmp_name(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	/* INBOX first, as the folder list has it */
	if (strcmp(x, "INBOX") == 0 || strcmp(y, "INBOX") == 0)
		return strcmp(y, "INBOX") == 0 ? (strcmp(x, "INBOX") != 0) : -1;
	return strcmp(x, y);
}

static bool matches(const struct listreq *rq, const char *name)
{
	for (size_t i = 0; i < rq->patterns.count; i++)
		if (imap_list_match(rq->patterns.v[i], name, IMAPD_HIER_SEP))
			return true;
	return false;
}

/* A subscribed descendant the patterns do not show themselves (so the client learns of it): CHILDINFO for
 * RECURSIVEMATCH, the \Noselect parent of LSUB "%". */
static bool childinfo(const struct listreq *rq, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < rq->subs.count; i++) {
		const char *s = rq->subs.v[i];
		if (strncmp(s, name, n) == 0 && s[n] == IMAPD_HIER_SEP && !matches(rq, s))
			return true;
	}
	return false;
}

static bool option_words(const struct imap_arg *list, bool ret, unsigned *opts, const struct imap_arg **status)
{
	for (size_t i = 0; i < list->count; i++) {
		const char *w;
		if (!imap_arg_atom(&list->list[i], &w))
			return false;
		if (str_eq_ci(w, "SUBSCRIBED"))
			*opts |= ret ? RET_SUBSCRIBED : SEL_SUBSCRIBED;
		else if (str_eq_ci(w, "SPECIAL-USE"))
			*opts |= ret ? RET_SPECIAL : SEL_SPECIAL;
		else if (!ret && str_eq_ci(w, "REMOTE"))
			;	/* no remote mailboxes here */
		else if (!ret && str_eq_ci(w, "RECURSIVEMATCH"))
			*opts |= SEL_RECURSIVE;
		else if (ret && str_eq_ci(w, "CHILDREN"))
			*opts |= RET_CHILDREN;
		else if (ret && str_eq_ci(w, "STATUS") && i + 1 < list->count &&
			 imapd_status_items_ok(&list->list[i + 1])) {
			*opts |= RET_STATUS;
			*status = &list->list[++i];
		} else
			return false;
	}
	return true;
}

static bool add_pattern(struct imapd_session *sess, struct listreq *rq, const char *ref, const struct imap_arg *a)
{
	const char *mbox;
	struct buf patd = BUF_INIT(NAME_MAX_BYTES), pat = BUF_INIT(2 * NAME_MAX_BYTES + 8);
	bool ok = false;

	if (!imap_arg_astring(a, &mbox)) {
		imapd_bad(sess, "mailbox pattern expected");
	} else if (!utf7imap_decode(mbox, strlen(mbox), &patd)) {
		imapd_no(sess, "[CANNOT] name is not valid modified UTF-7");
	} else if (!imap_list_pattern(ref, buf_cstr(&patd), IMAPD_HIER_SEP, &pat)) {
		imapd_no(sess, "[CANNOT] pattern too long");
	} else {
		/* an empty pattern asks for the separator: only the basic LIST answers that */
		if (patd.len)
			imapd_names_add(&rq->patterns, buf_cstr(&pat));
		ok = true;
	}
	buf_free(&patd);
	buf_free(&pat);
	return ok;
}

/* The arguments into rq; false after answering BAD/NO. */
static bool parse(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, struct listreq *rq,
		  bool *empty_pattern)
{
	const char *what = rq->lsub ? "LSUB" : "LIST", *ref;
	struct buf refd = BUF_INIT(NAME_MAX_BYTES);
	size_t i = 0;
	bool ok = false;

	if (!rq->lsub && nargs && args[0].type == IMAP_ARG_LIST) {
		rq->extended = true;
		if (!option_words(&args[0], false, &rq->opts, &rq->status_items)) {
			imapd_bad(sess, "unknown LIST selection option");
			goto out;
		}
		if ((rq->opts & SEL_RECURSIVE) && !(rq->opts & (SEL_SUBSCRIBED | SEL_SPECIAL))) {
			imapd_bad(sess, "RECURSIVEMATCH needs another selection option");
			goto out;
		}
		i = 1;
	}
	if (nargs < i + 2 || !imap_arg_astring(&args[i], &ref)) {
		imapd_bad(sess, "%s needs a reference and a mailbox pattern", what);
		goto out;
	}
	if (nargs > i + 2) {
		const char *w;
		if (rq->lsub || nargs != i + 4 || !imap_arg_atom(&args[i + 2], &w) || !str_eq_ci(w, "RETURN") ||
		    args[i + 3].type != IMAP_ARG_LIST) {
			imapd_bad(sess, "%s: unexpected arguments after the pattern", what);
			goto out;
		}
		rq->extended = true;
		if (!option_words(&args[i + 3], true, &rq->opts, &rq->status_items)) {
			imapd_bad(sess, "unknown LIST return option");
			goto out;
		}
	}
	if (!utf7imap_decode(ref, strlen(ref), &refd)) {
		imapd_no(sess, "[CANNOT] name is not valid modified UTF-7");
		goto out;
	}
	const struct imap_arg *pats = &args[i + 1];
	if (pats->type == IMAP_ARG_LIST) {
		if (rq->lsub || pats->count == 0 || pats->count > PATTERNS_MAX) {
			imapd_bad(sess, "%s: a list of 1 to %d patterns expected", what, PATTERNS_MAX);
			goto out;
		}
		rq->extended = true;
		for (size_t p = 0; p < pats->count; p++)
			if (!add_pattern(sess, rq, buf_cstr(&refd), &pats->list[p]))
				goto out;
	} else if (!add_pattern(sess, rq, buf_cstr(&refd), pats)) {
		goto out;
	}
	*empty_pattern = rq->patterns.count == 0;
	if (rq->opts & SEL_SUBSCRIBED)
		rq->opts |= RET_SUBSCRIBED;	/* RFC 5258 3.1 */
	ok = true;
out:
	buf_free(&refd);
	return ok;
}

/* One attribute into the list that starts at start. */
static void attr(struct buf *line, size_t start, const char *word)
{
	buf_printf(line, "%s%s", line->len > start ? " " : "", word);
}

/* One LIST/LSUB line (and the STATUS after it); false when the name is not to be shown. */
static bool list_one(struct imapd_session *sess, const struct listreq *rq, const char *n, struct buf *line)
{
	bool exists = imapd_names_has(&rq->existing, n), sub = imapd_names_has(&rq->subs, n);
	const char *use = exists ? imapd_special_use(n) : NULL;
	bool info = false;

	if ((rq->opts & SEL_RECURSIVE) && (rq->opts & SEL_SUBSCRIBED))
		info = childinfo(rq, n);
	if ((rq->opts & SEL_SUBSCRIBED) && !sub && !info)
		return false;
	/* LSUB shows a parent that is not subscribed itself only for a subscribed name the pattern hides ("%"),
	 * RFC 3501 6.3.9 */
	if (rq->lsub && !sub && !childinfo(rq, n))
		return false;
	if ((rq->opts & SEL_SPECIAL) && !use)
		return false;
	buf_reset(line);
	buf_printf(line, "%s (", rq->lsub ? "LSUB" : "LIST");
	size_t start = line->len;
	if (rq->lsub) {
		if (!sub)	/* a parent that is only a prefix; a subscribed name that is gone stays as it is */
			attr(line, start, "\\Noselect");
		if (use)
			attr(line, start, use);
	} else if (!rq->extended) {
		if (!exists)
			attr(line, start, "\\Noselect");
		attr(line, start, has_child_in(&rq->all, n) ? "\\HasChildren" : "\\HasNoChildren");
		if (use)
			attr(line, start, use);
	} else {
		if ((rq->opts & RET_SUBSCRIBED) && sub)
			attr(line, start, "\\Subscribed");
		if (!exists)
			attr(line, start, "\\NonExistent");
		if (rq->opts & RET_CHILDREN)
			attr(line, start, has_child_in(&rq->existing, n) ? "\\HasChildren" : "\\HasNoChildren");
		if (use && (rq->opts & (SEL_SPECIAL | RET_SPECIAL)))
			attr(line, start, use);
	}
	buf_printf(line, ") \"%c\" ", IMAPD_HIER_SEP);
	imapd_put_mailbox(sess, line, n);
	if (info)
		buf_puts(line, " (CHILDINFO (\"SUBSCRIBED\"))");
	imapd_untagged(sess, "%s", buf_cstr(line));
	if ((rq->opts & RET_STATUS) && exists)
		imapd_status_send(sess, n, rq->status_items, false);
	return true;
}

static void do_list(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool lsub)
{
	struct listreq rq = { .lsub = lsub };
	struct buf line = BUF_INIT(BUF_NOLIMIT);
	bool empty = false;

	if (!parse(sess, args, nargs, &rq, &empty))
		goto out;
	if (empty && !lsub && !rq.extended) {
		/* LIST "" "": the hierarchy separator and root */
		imapd_untagged(sess, "LIST (\\Noselect) \"%c\" \"\"", IMAPD_HIER_SEP);
		imapd_ok(sess, "LIST completed");
		goto out;
	}
	imapd_mailboxes_list(sess->login.maildir, &rq.existing);
	imapd_subscriptions_read(sess->login.maildir, &rq.subs);
	/* the candidates: LSUB and SUBSCRIBED look at subscriptions (a subscribed name need not exist), the
	 * rest at the folders; parents of either are there for "%" and RECURSIVEMATCH */
	const struct imapd_names *base = lsub || (rq.opts & SEL_SUBSCRIBED) ? &rq.subs : &rq.existing;
	for (size_t i = 0; i < base->count; i++)
		imapd_names_add(&rq.all, base->v[i]);
	add_parents(&rq.all);
	if (rq.all.count)
		qsort(rq.all.v, rq.all.count, sizeof(*rq.all.v), cmp_name);
	for (size_t i = 0; i < rq.all.count; i++)
		if (matches(&rq, rq.all.v[i]))
			list_one(sess, &rq, rq.all.v[i], &line);
	imapd_ok(sess, "%s completed", lsub ? "LSUB" : "LIST");
out:
	imapd_names_free(&rq.patterns);
	imapd_names_free(&rq.existing);
	imapd_names_free(&rq.subs);
	imapd_names_free(&rq.all);
	buf_free(&line);
}

void imapd_cmd_list(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	(void)uid;
	do_list(sess, args, nargs, false);
}

void imapd_cmd_lsub(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	(void)uid;
	do_list(sess, args, nargs, true);
}
