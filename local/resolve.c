/* Alias expansion and mailbox lookup. The chain of names being expanded is the loop detector: a name met again
 * is resolved without its alias (so "root: root, admin" delivers to root's own mailbox, as in Postfix), and
 * only when that finds no mailbox is it a loop (5.4.6). Depth and total size of an expansion are bounded.
 * Files and commands run as the owner of what named them: the aliases table's owner, the .forward's user, or
 * a non-root owner of an :include: file. An alias NAME with an alias owner-NAME gets owner-NAME as the
 * envelope sender of its expansion (Return-Path locally, a resubmission for remote members), so errors of
 * list members go to the list owner. */
#include <string.h>

#include "alloc.h"
#include "resolve.h"
#include "str.h"

struct ctx {
	const struct lres_ops *ops;
	struct lres_result *res;
	struct buf *dsn, *text;
	char **chain;
	size_t nchain;
	unsigned depth;
	size_t work;
	enum lres_status status;	/* worst status of a failed branch */
	bool have_fail;
	const char *rcpt;
	uid_t own_uid;			/* owner of the alias, .forward or :include: being expanded */
	gid_t own_gid;
	const char *own_addr;		/* the address being expanded (Delivered-To of its files and commands) */
	const char *sender;		/* owner-LIST@domain of the list being expanded, NULL for none */
};

struct tinfo {
	const char *folder, *sender;
	uint64_t quota;
	bool sw;
	uid_t uid;
	gid_t gid;
};

static void set_fail(struct ctx *c, enum lres_status st, const char *dsn, const char *fmt, const char *arg)
{
	/* Keep the first reason, but a temporary failure outranks a permanent one: retrying may fix it. */
	if (c->have_fail && !(st == LRES_TEMPFAIL && c->status == LRES_FAIL))
		return;
	c->have_fail = true;
	c->status = st;
	buf_reset(c->dsn);
	buf_puts(c->dsn, dsn);
	buf_reset(c->text);
	buf_printf(c->text, fmt, arg);
}

static void add_target(struct ctx *c, enum lres_kind kind, const char *addr, const char *maildir,
                       const struct tinfo *ti)
{
	for (size_t i = 0; i < c->res->n; i++) {
		struct lres_target *t = &c->res->v[i];
		if (t->kind != kind)
			continue;
		if (kind == LRES_REMOTE ? str_eq_ci(t->addr, addr) :
		    strcmp(t->maildir, maildir) == 0 && (kind == LRES_MAILDIR || t->uid == ti->uid))
			return;
	}
	c->res->v = xreallocarray(c->res->v, c->res->n + 1, sizeof(*c->res->v));
	struct lres_target *t = &c->res->v[c->res->n++];
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	t->addr = xstrdup(addr);
	t->maildir = maildir ? xstrdup(maildir) : NULL;
	t->folder = ti->folder ? xstrdup(ti->folder) : NULL;
	t->sender = ti->sender ? xstrdup(ti->sender) : NULL;
	t->quota = ti->quota;
	t->switch_user = ti->sw;
	t->uid = ti->uid;
	t->gid = ti->gid;
}

static void push_chain(struct ctx *c, const char *name)
{
	c->chain = xreallocarray(c->chain, c->nchain + 1, sizeof(*c->chain));
	c->chain[c->nchain++] = xstrdup(name);
	c->depth++;
}

static void pop_chain(struct ctx *c)
{
	c->depth--;
	free(c->chain[--c->nchain]);
}

static bool in_chain(struct ctx *c, const char *addr)
{
	for (size_t i = 0; i < c->nchain; i++)
		if (strcmp(c->chain[i], addr) == 0)
			return true;
	return false;
}

static void resolve(struct ctx *c, const char *addr);

static const char *skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

struct split_arg {
	struct ctx *c;
	const char *domain;
};

static void include(struct ctx *c, const char *path, const char *domain);

static bool one_target(const char *target, void *arg)
{
	struct split_arg *sa = arg;
	struct ctx *c = sa->c;
	struct tinfo ti = { .sender = c->sender, .sw = true, .uid = c->own_uid, .gid = c->own_gid };
	size_t max_targets = c->ops->max_targets ? c->ops->max_targets : LRES_MAX_TARGETS_DEFAULT;

	if (target[0] == '|' || target[0] == '/') {
		if (++c->work > max_targets) {
			set_fail(c, LRES_FAIL, "5.3.4", "alias expansion of %s too large", c->rcpt);
			return true;
		}
		const char *what = skip_ws(target + (target[0] == '|'));
		if (!*what) {
			set_fail(c, LRES_FAIL, "5.3.5", "empty command in the alias or .forward of %s", c->own_addr);
			return true;
		}
		/* "/dir/" is a Maildir, "/file" an mbox file, as in Postfix */
		enum lres_kind k = target[0] == '|' ? LRES_PIPE : what[strlen(what) - 1] == '/' ? LRES_MAILDIR : LRES_FILE;
		add_target(c, k, c->own_addr, what, &ti);
		return true;
	}
	if (str_has_prefix_ci(target, ":include:")) {
		include(c, skip_ws(target + 9), sa->domain);
		return true;
	}
	if (target[0] == '\0')
		return true;
	struct buf a = BUF_INIT(BUF_NOLIMIT);
	if (strchr(target, '@'))
		buf_puts(&a, target);
	else
		buf_printf(&a, "%s@%s", target, sa->domain);
	resolve(c, a.data);
	buf_free(&a);
	return true;
}

/* The Maildir under a home directory. */
static char *home_maildir(const char *home)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	size_t n = strlen(home);
	buf_printf(&b, "%s%sMaildir/", home, n && home[n - 1] == '/' ? "" : "/");
	return buf_steal(&b, NULL);
}

static bool is_postmaster(const char *local)
{
	return str_eq_ci(local, "postmaster") || str_eq_ci(local, "mailer-daemon");
}

/* A system user's ~/.forward replaces delivery to the user's mailbox (a target naming the user itself delivers
 * there: the chain makes it a self-reference). true when the forward file decided. */
static bool forward(struct ctx *c, const char *addr, const char *domain, const char *home, uid_t uid, gid_t gid)
{
	const struct lres_ops *ops = c->ops;
	size_t max_depth = ops->max_depth ? ops->max_depth : LRES_MAX_DEPTH_DEFAULT;
	struct buf val = BUF_INIT(1u << 20), err = BUF_INIT(1024);
	bool decided = false;

	if (!ops->forward || in_chain(c, addr))
		return false;
	int r = ops->forward(home, uid, &val, ops->arg, &err);
	if (r < 0) {
		set_fail(c, LRES_TEMPFAIL, "4.3.0", ".forward: %s", buf_cstr(&err));
		decided = true;
	} else if (r > 0) {
		decided = true;
		if (c->depth >= max_depth) {
			set_fail(c, LRES_FAIL, "5.4.6", "forwarding too deep for %s (a loop?)", addr);
		} else {
			push_chain(c, addr);
			/* files and commands of a .forward run as its user */
			uid_t ou = c->own_uid;
			gid_t og = c->own_gid;
			const char *oa = c->own_addr;
			c->own_uid = uid;
			c->own_gid = gid;
			c->own_addr = addr;
			size_t before = c->res->n;
			struct split_arg sa = { c, domain };
			if (!lres_split_targets(buf_cstr(&val), one_target, &sa))
				set_fail(c, LRES_TEMPFAIL, "4.3.5", "bad .forward of %s (unclosed quote)", addr);
			else if (c->res->n == before && !c->have_fail)
				decided = false;	/* an empty .forward: deliver normally */
			c->own_uid = ou;
			c->own_gid = og;
			c->own_addr = oa;
			pop_chain(c);
		}
	}
	buf_free(&val);
	buf_free(&err);
	return decided;
}

/* An :include: list: its targets, as if they stood in place of the :include:. A list file met again inside
 * itself is a loop. Its commands and files run as its owner unless root owns it. */
static void include(struct ctx *c, const char *path, const char *domain)
{
	const struct lres_ops *ops = c->ops;
	size_t max_depth = ops->max_depth ? ops->max_depth : LRES_MAX_DEPTH_DEFAULT;
	struct buf name = BUF_INIT(BUF_NOLIMIT), val = BUF_INIT(LRES_LIST_FILE_MAX), err = BUF_INIT(1024);
	uid_t fu = 0;
	gid_t fg = 0;

	buf_printf(&name, ":include:%s", path);
	if (!ops->include) {
		set_fail(c, LRES_FAIL, "5.3.5", ":include: lists are not allowed here: %s", path);
	} else if (path[0] != '/') {
		set_fail(c, LRES_FAIL, "5.3.5", ":include: needs an absolute path: %s", path);
	} else if (in_chain(c, name.data)) {
		set_fail(c, LRES_FAIL, "5.4.6", ":include: loop at %s", path);
	} else if (c->depth >= max_depth) {
		set_fail(c, LRES_FAIL, "5.4.6", "alias expansion too deep at :include:%s (a loop?)", path);
	} else {
		int r = ops->include(path, c->own_uid, &val, &fu, &fg, ops->arg, &err);
		if (r < 0) {
			set_fail(c, LRES_TEMPFAIL, "4.3.5", ":include: %s", buf_cstr(&err));
		} else if (r == 0) {
			set_fail(c, LRES_FAIL, "5.3.5", ":include: %s", buf_cstr(&err));
		} else {
			push_chain(c, name.data);
			uid_t ou = c->own_uid;
			gid_t og = c->own_gid;
			if (fu != 0) {
				c->own_uid = fu;
				c->own_gid = fg;
			}
			struct split_arg sa = { c, domain };
			if (!lres_split_targets(buf_cstr(&val), one_target, &sa))
				set_fail(c, LRES_TEMPFAIL, "4.3.5", "bad :include: file %s (unclosed quote)", path);
			c->own_uid = ou;
			c->own_gid = og;
			pop_chain(c);
		}
	}
	buf_free(&name);
	buf_free(&val);
	buf_free(&err);
}

/* Mailboxes for addr itself, aliases not considered: account (full, then without the extension), system
 * user, postmaster. 1 found, 0 not, -1 error (already recorded). */
static int mailbox(struct ctx *c, const char *addr, const char *local, const char *domain)
{
	const struct lres_ops *ops = c->ops;
	struct buf err = BUF_INIT(1024), base = BUF_INIT(BUF_NOLIMIT);
	char *maildir = NULL;
	uint32_t uid = 0, gid = 0;
	uint64_t quota = 0;
	int r = 0;

	/* user+ext@domain: the base address is tried when the full one has no account */
	const char *ext;
	size_t cut = lres_split_extension(local, ops->delims, &ext);
	struct tinfo ti = { .folder = ops->extension_folders ? ext : NULL, .sender = c->sender };
	buf_printf(&base, "%.*s@%s", (int)cut, local, domain);
	const char *names[2] = { addr, base.data };
	for (int i = 0; i < 2 && r == 0 && ops->account; i++) {
		if (i == 1 && strcmp(names[0], names[1]) == 0)
			break;
		r = ops->account(names[i], &maildir, &uid, &gid, &quota, ops->arg, &err);
		if (r > 0 && i == 0)
			ti.folder = NULL;	/* user+ext has an account of its own: its INBOX */
	}
	if (r > 0) {
		ti.sw = uid != 0 || gid != 0;
		ti.uid = uid;
		ti.gid = gid;
		ti.quota = quota;
		add_target(c, LRES_MAILDIR, addr, maildir, &ti);
		goto out;
	}
	if (r < 0) {
		set_fail(c, LRES_TEMPFAIL, "4.3.0", "account lookup failed: %s", buf_cstr(&err));
		goto out;
	}
	if (ops->system_user) {
		char *home = NULL, *name = xstrndup(local, cut);
		uid_t u;
		gid_t g;
		r = ops->system_user(name, &home, &u, &g, ops->arg, &err);
		free(name);
		if (r > 0 && !forward(c, addr, domain, home, u, g)) {
			char *md = home_maildir(home);
			ti.sw = true;
			ti.uid = u;
			ti.gid = g;
			add_target(c, LRES_MAILDIR, addr, md, &ti);
			free(md);
		} else if (r < 0) {
			set_fail(c, LRES_TEMPFAIL, "4.3.0", "user lookup failed: %s", buf_cstr(&err));
		}
		free(home);
		if (r != 0)
			goto out;
	}
	if (is_postmaster(local) && ops->postmaster_maildir) {
		add_target(c, LRES_MAILDIR, addr, ops->postmaster_maildir, &(struct tinfo){ .sender = c->sender });
		r = 1;
	}
out:
	free(maildir);
	buf_free(&err);
	buf_free(&base);
	return r;
}

/* owner-LIST@domain when that alias exists: the envelope sender for LIST's members. */
static char *list_owner(struct ctx *c, const char *local, const char *domain)
{
	struct buf a = BUF_INIT(BUF_NOLIMIT), v = BUF_INIT(1u << 20), err = BUF_INIT(1024);
	char *owner = NULL;

	if (!str_has_prefix_ci(local, "owner-")) {
		buf_printf(&a, "owner-%s@%s", local, domain);
		if (c->ops->alias(a.data, &v, c->ops->arg, &err) > 0)
			owner = buf_steal(&a, NULL);
	}
	buf_free(&a);
	buf_free(&v);
	buf_free(&err);
	return owner;
}

static void resolve(struct ctx *c, const char *addr_in)
{
	const struct lres_ops *ops = c->ops;
	size_t max_depth = ops->max_depth ? ops->max_depth : LRES_MAX_DEPTH_DEFAULT;
	size_t max_targets = ops->max_targets ? ops->max_targets : LRES_MAX_TARGETS_DEFAULT;
	struct buf addr = BUF_INIT(BUF_NOLIMIT), val = BUF_INIT(1u << 20), err = BUF_INIT(1024);

	if (++c->work > max_targets) {
		set_fail(c, LRES_FAIL, "5.3.4", "alias expansion of %s too large", c->rcpt);
		return;
	}
	const char *at = strrchr(addr_in, '@');
	if (at)
		buf_puts(&addr, addr_in);
	else
		buf_printf(&addr, "%s@%s", addr_in, ops->myhostname);
	str_lower(addr.data);
	at = strrchr(addr.data, '@');
	char *local = xstrndup(addr.data, (size_t)(at - addr.data));
	const char *domain = at + 1;

	if (c->depth > 0 && !(ops->is_local_domain && ops->is_local_domain(domain, ops->arg))) {
		add_target(c, LRES_REMOTE, addr_in, NULL, &(struct tinfo){ .sender = c->sender });
		goto out;
	}
	bool seen = in_chain(c, addr.data);
	if (!seen && ops->alias) {
		int r = ops->alias(addr.data, &val, ops->arg, &err);
		if (r < 0) {
			set_fail(c, LRES_TEMPFAIL, "4.3.0", "aliases lookup failed: %s", buf_cstr(&err));
			goto out;
		}
		if (r > 0) {
			if (c->depth >= max_depth) {
				set_fail(c, LRES_FAIL, "5.4.6", "alias expansion too deep for %s (a loop?)", addr.data);
				goto out;
			}
			push_chain(c, addr.data);
			/* an alias's files and commands run as the aliases table's owner */
			uid_t ou = c->own_uid;
			gid_t og = c->own_gid;
			const char *oa = c->own_addr, *os = c->sender;
			c->own_uid = ops->alias_uid;
			c->own_gid = ops->alias_gid;
			c->own_addr = c->chain[c->nchain - 1];
			char *owner = list_owner(c, local, domain);
			if (owner)
				c->sender = owner;
			struct split_arg sa = { c, domain };
			if (!lres_split_targets(buf_cstr(&val), one_target, &sa))
				set_fail(c, LRES_TEMPFAIL, "4.3.5", "bad alias entry for %s (unclosed quote)", addr.data);
			c->own_uid = ou;
			c->own_gid = og;
			c->own_addr = oa;
			c->sender = os;
			free(owner);
			pop_chain(c);
			goto out;
		}
	}
	int r = mailbox(c, addr.data, local, domain);
	if (r == 0) {
		if (seen)
			set_fail(c, LRES_FAIL, "5.4.6", "mail forwarding loop for %s", addr.data);
		else
			set_fail(c, LRES_FAIL, "5.1.1", "unknown user: \"%s\"", addr.data);
	}
out:
	free(local);
	buf_free(&addr);
	buf_free(&val);
	buf_free(&err);
}

enum lres_status lres_resolve(const struct lres_ops *ops, const char *rcpt, struct lres_result *res, struct buf *dsn,
                              struct buf *text)
{
	struct ctx c = { .ops = ops, .res = res, .dsn = dsn, .text = text, .status = LRES_OK, .rcpt = rcpt,
		         .own_uid = ops->alias_uid, .own_gid = ops->alias_gid, .own_addr = rcpt };

	memset(res, 0, sizeof(*res));
	resolve(&c, rcpt);
	for (size_t i = 0; i < c.nchain; i++)
		free(c.chain[i]);
	free(c.chain);
	/* postmaster must always reach someone (RFC 5321 4.5.1): a broken alias chain falls back to the mailbox */
	const char *at = strrchr(rcpt, '@');
	char *local = xstrndup(rcpt, at ? (size_t)(at - rcpt) : strlen(rcpt));
	if (res->n == 0 && c.have_fail && c.status == LRES_FAIL && is_postmaster(local) && ops->postmaster_maildir) {
		c.have_fail = false;
		add_target(&c, LRES_MAILDIR, rcpt, ops->postmaster_maildir, &(struct tinfo){ 0 });
	}
	free(local);
	/* Deliver to what did resolve; fail only when nothing did, or when a retry could change the answer. */
	if (c.have_fail && (res->n == 0 || c.status == LRES_TEMPFAIL)) {
		lres_result_free(res);
		return c.status;
	}
	if (res->n == 0) {
		buf_puts(dsn, "5.1.1");
		buf_puts(text, "alias expands to nothing");
		return LRES_FAIL;
	}
	return LRES_OK;
}

void lres_result_free(struct lres_result *res)
{
	for (size_t i = 0; i < res->n; i++) {
		free(res->v[i].addr);
		free(res->v[i].maildir);
		free(res->v[i].folder);
		free(res->v[i].sender);
	}
	xfree(&res->v);
	res->n = 0;
}

bool lres_split_targets(const char *value, bool (*fn)(const char *target, void *arg), void *arg)
{
	struct buf t = BUF_INIT(BUF_NOLIMIT);
	const char *p = value;
	bool ok = true;

	while (ok && *p) {
		bool quoted = false;
		buf_reset(&t);
		while (*p && (quoted || *p != ',')) {
			if (*p == '"')
				quoted = !quoted;
			else
				buf_putc(&t, *p);
			p++;
		}
		if (quoted) {
			ok = false;
			break;
		}
		if (*p == ',')
			p++;
		if (!t.data)
			continue;
		char *s = str_trim(t.data);
		size_t n = strlen(s);
		if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
			s[n - 1] = '\0';
			s++;
		}
		if (*s)
			ok = fn(s, arg);
	}
	buf_free(&t);
	return ok;
}

bool lres_list_parse(const char *data, size_t len, struct buf *out)
{
	if (memchr(data, '\0', len))
		return false;
	buf_reset(out);
	const char *p = data, *end = data + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		const char *q = e;
		while (q > p && (q[-1] == ' ' || q[-1] == '\t' || q[-1] == '\r'))
			q--;
		if (q > p && *p != '#') {
			if (out->len && !buf_putc(out, ','))
				return false;
			if (!buf_append(out, p, (size_t)(q - p)))
				return false;
		}
		p = nl ? nl + 1 : end;
	}
	return true;
}

size_t lres_split_extension(const char *local, const char *delims, const char **ext)
{
	size_t n = strlen(local);
	size_t cut = delims && *delims ? strcspn(local, delims) : n;
	/* a local part starting with a delimiter has no base: it is all name */
	if (cut == 0 || cut == n) {
		*ext = NULL;
		return n;
	}
	*ext = local[cut + 1] ? local + cut + 1 : NULL;
	return cut;
}
