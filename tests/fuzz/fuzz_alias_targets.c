/* Fuzz local's alias handling: the target splitter on any value, the .forward / :include: file parser, then a
 * whole resolution where every alias lookup and every :include: file answers with the fuzz input (so expansion
 * recurses through it): never a crash, a hang or a leak, and the expansion stays within its depth and size
 * limits. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../local/resolve.h"
#include "alloc.h"
#include "buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *value;
static size_t count;

static bool count_target(const char *t, void *arg)
{
	(void)arg;
	if (strchr(t, ',') && !strchr(value, '"'))
		__builtin_trap();	/* without quotes, a comma always separates */
	count++;
	return true;
}

static int alias(const char *addr, struct buf *out, void *arg, struct buf *err)
{
	(void)arg;
	(void)err;
	/* names starting with 'x' are not aliases, so expansion ends */
	if (addr[0] == 'x')
		return 0;
	buf_reset(out);
	return buf_puts(out, value) ? 1 : -1;
}

static int account(const char *addr, char **maildir, uint32_t *uid, uint32_t *gid, uint64_t *quota, void *arg,
                   struct buf *err)
{
	*quota = 0;
	(void)arg;
	(void)err;
	if (addr[0] != 'x')
		return 0;
	*maildir = xstrdup("/mail/x/");
	*uid = *gid = 0;
	return 1;
}

static const char *raw;	/* the input as a list file (may hold NUL bytes) */
static size_t raw_len;

static int include(const char *path, uid_t owner, struct buf *out, uid_t *fu, gid_t *fg, void *arg,
                   struct buf *err)
{
	(void)arg;
	(void)owner;
	if (path[0] != '/')
		__builtin_trap();	/* the resolver refuses relative paths itself */
	if (strstr(path, "tmp")) {
		buf_puts(err, "temporary");
		return -1;
	}
	*fu = path[1] == 'u' ? 1000 : 0;
	*fg = *fu;
	if (!lres_list_parse(raw, raw_len, out)) {
		buf_puts(err, "bad list");
		return 0;
	}
	return 1;
}

static bool is_local(const char *domain, void *arg)
{
	(void)arg;
	return strcmp(domain, "local.test") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	/* the list-file parser takes any bytes: NUL means invalid, else no comment or newline survives */
	struct buf lp = BUF_INIT(2048);
	bool ok = lres_list_parse((const char *)data, size, &lp);
	if (ok && memchr(data, 0, size))
		__builtin_trap();
	if (ok && (strchr(buf_cstr(&lp), '\n') || buf_cstr(&lp)[0] == '#'))
		__builtin_trap();
	buf_free(&lp);
	raw = (const char *)data;
	raw_len = size;
	if (memchr(data, 0, size))
		return 0;
	char *v = xstrndup((const char *)data, size);
	value = v;
	count = 0;
	lres_split_targets(v, count_target, NULL);

	struct lres_ops ops = { .account = account, .alias = alias, .include = include, .is_local_domain = is_local,
		                .myhostname = "local.test", .postmaster_maildir = "/mail/pm/", .delims = "+",
		                .max_depth = 5, .max_targets = 200,
		                .alias_uid = 7, .alias_gid = 7, .extension_folders = true };
	struct lres_result res;
	struct buf dsn = BUF_INIT(64), text = BUF_INIT(8192);
	enum lres_status st = lres_resolve(&ops, "list@local.test", &res, &dsn, &text);
	if (st == LRES_OK && res.n == 0)
		__builtin_trap();
	if (st != LRES_OK && (res.n != 0 || dsn.len == 0))
		__builtin_trap();
	if (res.n > 200)
		__builtin_trap();
	for (size_t i = 0; i < res.n; i++) {
		const struct lres_target *t = &res.v[i];
		/* commands and files never run as root: the alias owner here is uid 7 or an include owner */
		if ((t->kind == LRES_PIPE || t->kind == LRES_FILE) && (!t->switch_user || t->uid == 0))
			__builtin_trap();
		if ((t->kind == LRES_PIPE || t->kind == LRES_FILE) && !t->maildir[0])
			__builtin_trap();
	}
	lres_result_free(&res);
	buf_free(&dsn);
	buf_free(&text);
	free(v);
	return 0;
}
