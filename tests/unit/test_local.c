/* local: alias expansion (recursion, self-reference, loops, depth, remote targets, unsupported targets),
 * accounts with extensions, system users, postmaster, target splitting; Maildir delivery with Return-Path and
 * Delivered-To, the Delivered-To loop, and delivery as another user when root. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../local/deliver.h"
#include "../../local/resolve.h"
#include "alloc.h"
#include "buf.h"
#include "fsutil.h"

static const char *ALIASES[][2] = {
	{ "root@local.test", "root, admin" },
	{ "team@local.test", "alice, \"bob@local.test\", <carol@remote.test>" },
	{ "loop1@local.test", "loop2" },
	{ "loop2@local.test", "loop1" },
	{ "pipe@local.test", "\"|/bin/cat\"" },
	{ "deep0@local.test", "deep1" },
	{ "mixed@local.test", "alice, nosuchuser" },
	{ "broken@local.test", "\"unclosed" },
	{ "dup@local.test", "alice, alice@local.test, ALICE" },
	{ "err@local.test", NULL },
	{ "postmaster@local.test", "nosuchadmin" },
	{ "staff@local.test", ":include:/lists/staff" },
	{ "owner-staff@local.test", "admin" },
	{ "self@local.test", ":include:/lists/self" },
	{ "nested@local.test", ":include:/lists/nested" },
	{ "userlist@local.test", ":include:/lists/user" },
	{ "cmdlist@local.test", ":include:/lists/cmd" },
	{ "tmplist@local.test", ":include:/lists/tmp" },
	{ "unsafe@local.test", ":include:/lists/unsafe" },
	{ "missing@local.test", ":include:/lists/none" },
	{ "relative@local.test", ":include:lists/staff" },
};

static int alias(const char *addr, struct buf *value, void *arg, struct buf *err)
{
	(void)arg;
	/* deepN -> deepN+1 forever */
	if (strncmp(addr, "deep", 4) == 0) {
		buf_reset(value);
		buf_printf(value, "deep%d", atoi(addr + 4) + 1);
		return 1;
	}
	for (size_t i = 0; i < sizeof(ALIASES) / sizeof(ALIASES[0]); i++)
		if (strcmp(addr, ALIASES[i][0]) == 0) {
			if (!ALIASES[i][1]) {
				buf_puts(err, "table unreadable");
				return -1;
			}
			buf_reset(value);
			buf_puts(value, ALIASES[i][1]);
			return 1;
		}
	return 0;
}

static int account(const char *addr, char **maildir, uint32_t *uid, uint32_t *gid, uint64_t *quota, void *arg,
                   struct buf *err)
{
	(void)arg;
	(void)err;
	const char *known[] = { "alice@local.test", "bob@local.test", "admin@local.test", "virt@virtual.test",
		                "alice+own@local.test" };
	*quota = strcmp(addr, "bob@local.test") == 0 ? 5000 : 0;
	for (size_t i = 0; i < 5; i++)
		if (strcmp(addr, known[i]) == 0) {
			struct buf b = BUF_INIT(BUF_NOLIMIT);
			buf_printf(&b, "/mail/%s/", addr);
			*maildir = buf_steal(&b, NULL);
			*uid = *gid = 0;
			return 1;
		}
	return 0;
}

static int sysuser(const char *name, char **home, uid_t *uid, gid_t *gid, void *arg, struct buf *err)
{
	(void)arg;
	(void)err;
	if (strcmp(name, "sys") != 0)
		return 0;
	*home = xstrdup("/home/sys");
	*uid = 1234;
	*gid = 5678;
	return 1;
}

static const char *fwd_value;	/* NULL: no .forward; "ERR": unreadable */

static int fwd(const char *home, uid_t uid, struct buf *value, void *arg, struct buf *err)
{
	(void)arg;
	assert_string_equal(home, "/home/sys");
	assert_int_equal(uid, 1234);
	if (!fwd_value)
		return 0;
	if (strcmp(fwd_value, "ERR") == 0) {
		buf_puts(err, "group writable");
		return -1;
	}
	buf_free(value);
	buf_init(value, 1u << 20);
	if (*fwd_value)
		buf_puts(value, fwd_value);
	return 1;
}

/* :include: files: "/lists/NAME" with fixed contents; owner 0 (root) unless the name says "user" */
static int include_cb(const char *path, uid_t owner, struct buf *value, uid_t *fu, gid_t *fg, void *arg,
                      struct buf *err)
{
	(void)arg;
	static const char *FILES[][2] = {
		{ "/lists/staff", "alice\n# a comment\n\n  bob@local.test , far@remote.test\n" },
		{ "/lists/self", ":include:/lists/self" },
		{ "/lists/nested", ":include:/lists/staff, admin" },
		{ "/lists/user", "\"|/bin/true\"" },
		{ "/lists/cmd", "|/usr/bin/archive, /var/log/list.mbox" },
	};
	if (strcmp(path, "/lists/tmp") == 0) {
		buf_puts(err, "read failed");
		return -1;
	}
	if (strcmp(path, "/lists/unsafe") == 0) {
		buf_puts(err, "writable by group or others");
		return 0;
	}
	for (size_t i = 0; i < sizeof(FILES) / sizeof(FILES[0]); i++)
		if (strcmp(path, FILES[i][0]) == 0) {
			assert_true(lres_list_parse(FILES[i][1], strlen(FILES[i][1]), value));
			*fu = strcmp(path, "/lists/user") == 0 ? 777 : 0;
			*fg = *fu ? 778 : 0;
			(void)owner;
			return 1;
		}
	buf_puts(err, "No such file or directory");
	return 0;
}

static bool is_local(const char *domain, void *arg)
{
	(void)arg;
	return strcmp(domain, "local.test") == 0 || strcmp(domain, "virtual.test") == 0;
}

static const struct lres_ops OPS = {
	.account = account, .alias = alias, .system_user = sysuser, .forward = fwd, .is_local_domain = is_local,
	.myhostname = "local.test", .postmaster_maildir = "/mail/postmaster/", .delims = "+",
	.alias_uid = 4242, .alias_gid = 4343, .include = include_cb, .extension_folders = true,
};

static enum lres_status res(const char *rcpt, struct lres_result *r, char *dsn, size_t dl)
{
	struct buf d = BUF_INIT(64), t = BUF_INIT(4096);
	enum lres_status st = lres_resolve(&OPS, rcpt, r, &d, &t);
	snprintf(dsn, dl, "%s %s", buf_cstr(&d), buf_cstr(&t));
	buf_free(&d);
	buf_free(&t);
	return st;
}

static void test_resolve_basic(void **state)
{
	(void)state;
	struct lres_result r;
	char d[4200];
	assert_int_equal(res("Alice@Local.Test", &r, d, sizeof(d)), LRES_OK);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.v[0].maildir, "/mail/alice@local.test/");
	assert_false(r.v[0].switch_user);
	lres_result_free(&r);
	/* extension falls back to the base account; Delivered-To keeps the full address */
	assert_int_equal(res("alice+lists@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_string_equal(r.v[0].maildir, "/mail/alice@local.test/");
	assert_string_equal(r.v[0].addr, "alice+lists@local.test");
	lres_result_free(&r);
	assert_int_equal(res("sys@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_string_equal(r.v[0].maildir, "/home/sys/Maildir/");
	assert_true(r.v[0].switch_user);
	assert_int_equal(r.v[0].uid, 1234);
	assert_int_equal(r.v[0].gid, 5678);
	lres_result_free(&r);
	assert_int_equal(res("nobody@local.test", &r, d, sizeof(d)), LRES_FAIL);
	assert_true(strncmp(d, "5.1.1 unknown user", 18) == 0);
	assert_int_equal(r.n, 0);
	/* postmaster and MAILER-DAEMON always resolve, in any local domain */
	assert_int_equal(res("PostMaster@virtual.test", &r, d, sizeof(d)), LRES_OK);
	assert_string_equal(r.v[0].maildir, "/mail/postmaster/");
	lres_result_free(&r);
	assert_int_equal(res("MAILER-DAEMON", &r, d, sizeof(d)), LRES_OK);
	lres_result_free(&r);
	/* postmaster aliased to nobody that exists still reaches the postmaster mailbox */
	assert_int_equal(res("postmaster@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.v[0].maildir, "/mail/postmaster/");
	lres_result_free(&r);
}

static void test_resolve_aliases(void **state)
{
	(void)state;
	struct lres_result r;
	char d[4200];
	assert_int_equal(res("team@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.v[0].kind, LRES_MAILDIR);
	assert_string_equal(r.v[0].addr, "alice@local.test");
	assert_string_equal(r.v[1].addr, "bob@local.test");
	assert_int_equal(r.v[2].kind, LRES_REMOTE);
	assert_string_equal(r.v[2].addr, "carol@remote.test");
	lres_result_free(&r);
	/* root: root, admin -> root has no mailbox (loop for that branch) but admin does: delivered to admin */
	assert_int_equal(res("root@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.v[0].addr, "admin@local.test");
	lres_result_free(&r);
	assert_int_equal(res("loop1@local.test", &r, d, sizeof(d)), LRES_FAIL);
	assert_true(strncmp(d, "5.4.6", 5) == 0);
	assert_int_equal(res("deep0@local.test", &r, d, sizeof(d)), LRES_FAIL);
	assert_true(strncmp(d, "5.4.6 alias expansion too deep", 30) == 0);
	/* a command runs as the aliases' owner (alias_uid in OPS) */
	assert_int_equal(res("pipe@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.v[0].kind, LRES_PIPE);
	assert_string_equal(r.v[0].maildir, "/bin/cat");
	assert_string_equal(r.v[0].addr, "pipe@local.test");
	assert_true(r.v[0].switch_user);
	assert_int_equal(r.v[0].uid, 4242);
	lres_result_free(&r);
	assert_int_equal(res("err@local.test", &r, d, sizeof(d)), LRES_TEMPFAIL);
	assert_true(strncmp(d, "4.3.0", 5) == 0);
	assert_int_equal(res("broken@local.test", &r, d, sizeof(d)), LRES_TEMPFAIL);
	/* one good and one unknown target: the good one is delivered */
	assert_int_equal(res("mixed@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_int_equal(r.n, 1);
	lres_result_free(&r);
	assert_int_equal(res("dup@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_int_equal(r.n, 1);
	lres_result_free(&r);
}

static void test_forward(void **state)
{
	(void)state;
	struct lres_result r;
	char d[4200];
	fwd_value = "alice, far@remote.test";
	assert_int_equal(res("sys@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.v[0].addr, "alice@local.test");
	assert_int_equal(r.v[1].kind, LRES_REMOTE);
	lres_result_free(&r);
	/* keeping a copy: the user itself in its .forward means its own mailbox */
	fwd_value = "sys, alice";
	assert_int_equal(res("sys@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.v[0].maildir, "/home/sys/Maildir/");
	lres_result_free(&r);
	fwd_value = "";	/* the callback leaves value empty (never appended to): deliver normally */
	assert_int_equal(res("sys@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.v[0].maildir, "/home/sys/Maildir/");
	lres_result_free(&r);
	fwd_value = "ERR";
	assert_int_equal(res("sys@local.test", &r, d, sizeof(d)), LRES_TEMPFAIL);
	assert_true(strncmp(d, "4.3.0 .forward: group writable", 30) == 0);
	/* commands and files of a .forward run as its user */
	fwd_value = "\"|/usr/bin/procmail -a x\", /home/sys/mbox, /home/sys/Other/";
	assert_int_equal(res("sys@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.v[0].kind, LRES_PIPE);
	assert_string_equal(r.v[0].maildir, "/usr/bin/procmail -a x");
	assert_int_equal(r.v[0].uid, 1234);
	assert_int_equal(r.v[0].gid, 5678);
	assert_string_equal(r.v[0].addr, "sys@local.test");
	assert_int_equal(r.v[1].kind, LRES_FILE);
	assert_string_equal(r.v[1].maildir, "/home/sys/mbox");
	assert_int_equal(r.v[1].uid, 1234);
	assert_int_equal(r.v[2].kind, LRES_MAILDIR);
	assert_string_equal(r.v[2].maildir, "/home/sys/Other/");
	assert_int_equal(r.v[2].uid, 1234);
	lres_result_free(&r);
	fwd_value = "\"|\"";
	assert_int_equal(res("sys@local.test", &r, d, sizeof(d)), LRES_FAIL);
	assert_true(strncmp(d, "5.3.5", 5) == 0);
	fwd_value = NULL;
}

static bool collect(const char *t, void *arg)
{
	struct buf *b = arg;
	buf_printf(b, "[%s]", t);
	return true;
}

static void test_split(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(lres_split_targets(" a , \"b, c\",<d@e>,, \"|cmd arg\" ", collect, &b));
	assert_string_equal(b.data, "[a][b, c][d@e][|cmd arg]");
	buf_reset(&b);
	assert_false(lres_split_targets("a, \"b", collect, &b));
	buf_reset(&b);
	assert_true(lres_split_targets("", collect, &b));
	assert_int_equal(b.len, 0);
	buf_free(&b);
}


static void test_include(void **state)
{
	(void)state;
	struct lres_result r;
	char d[4200];
	assert_int_equal(res("staff@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.v[0].addr, "alice@local.test");
	assert_string_equal(r.v[1].addr, "bob@local.test");
	assert_int_equal(r.v[2].kind, LRES_REMOTE);
	/* owner-staff exists: the list's members get it as their envelope sender */
	for (size_t i = 0; i < r.n; i++)
		assert_string_equal(r.v[i].sender, "owner-staff@local.test");
	lres_result_free(&r);
	assert_int_equal(res("nested@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_int_equal(r.n, 4);
	assert_null(r.v[0].sender);	/* no owner-nested alias */
	lres_result_free(&r);
	assert_int_equal(res("self@local.test", &r, d, sizeof(d)), LRES_FAIL);
	assert_true(strncmp(d, "5.4.6 :include: loop", 20) == 0);
	/* a list file owned by a user: its commands run as that user */
	assert_int_equal(res("userlist@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_int_equal(r.v[0].kind, LRES_PIPE);
	assert_int_equal(r.v[0].uid, 777);
	assert_int_equal(r.v[0].gid, 778);
	assert_string_equal(r.v[0].addr, "userlist@local.test");
	lres_result_free(&r);
	/* root-owned: the aliases' owner */
	assert_int_equal(res("cmdlist@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.v[0].kind, LRES_PIPE);
	assert_int_equal(r.v[0].uid, 4242);
	assert_int_equal(r.v[1].kind, LRES_FILE);
	assert_string_equal(r.v[1].maildir, "/var/log/list.mbox");
	lres_result_free(&r);
	assert_int_equal(res("tmplist@local.test", &r, d, sizeof(d)), LRES_TEMPFAIL);
	assert_true(strncmp(d, "4.3.5", 5) == 0);
	assert_int_equal(res("unsafe@local.test", &r, d, sizeof(d)), LRES_FAIL);
	assert_true(strncmp(d, "5.3.5 :include: writable", 24) == 0);
	assert_int_equal(res("missing@local.test", &r, d, sizeof(d)), LRES_FAIL);
	assert_true(strncmp(d, "5.3.5", 5) == 0);
	assert_int_equal(res("relative@local.test", &r, d, sizeof(d)), LRES_FAIL);
	assert_true(strncmp(d, "5.3.5 :include: needs an absolute path", 38) == 0);
	/* without an include callback :include: is refused */
	struct lres_ops ops = OPS;
	ops.include = NULL;
	struct buf dd = BUF_INIT(64), tt = BUF_INIT(4096);
	assert_int_equal(lres_resolve(&ops, "staff@local.test", &r, &dd, &tt), LRES_FAIL);
	assert_string_equal(dd.data, "5.3.5");
	buf_free(&dd);
	buf_free(&tt);
}

static void test_extension_and_quota(void **state)
{
	(void)state;
	struct lres_result r;
	char d[4200];
	assert_int_equal(res("alice+Lists@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_string_equal(r.v[0].folder, "lists");
	assert_int_equal(r.v[0].quota, 0);
	lres_result_free(&r);
	assert_int_equal(res("alice+own@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_string_equal(r.v[0].maildir, "/mail/alice+own@local.test/");
	assert_null(r.v[0].folder);	/* an account of its own, not alice's folder */
	lres_result_free(&r);
	assert_int_equal(res("bob@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_null(r.v[0].folder);
	assert_int_equal(r.v[0].quota, 5000);
	lres_result_free(&r);
	assert_int_equal(res("sys+x@local.test", &r, d, sizeof(d)), LRES_OK);
	assert_string_equal(r.v[0].folder, "x");
	lres_result_free(&r);
	struct lres_ops ops = OPS;
	ops.extension_folders = false;
	struct buf dd = BUF_INIT(64), tt = BUF_INIT(4096);
	assert_int_equal(lres_resolve(&ops, "alice+lists@local.test", &r, &dd, &tt), LRES_OK);
	assert_null(r.v[0].folder);
	lres_result_free(&r);
	buf_free(&dd);
	buf_free(&tt);
	const char *ext;
	assert_int_equal(lres_split_extension("user+tag+more", "+-", &ext), 4);
	assert_string_equal(ext, "tag+more");
	assert_int_equal(lres_split_extension("user-tag", "+-", &ext), 4);
	assert_string_equal(ext, "tag");
	assert_int_equal(lres_split_extension("user+", "+", &ext), 4);
	assert_null(ext);
	assert_int_equal(lres_split_extension("+tag", "+", &ext), 4);
	assert_null(ext);
	assert_int_equal(lres_split_extension("user+tag", "", &ext), 8);
	assert_null(ext);
	assert_int_equal(lres_split_extension("user+tag", NULL, &ext), 8);
	assert_null(ext);
}

static void test_list_parse(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	const char *text = "# staff list\n alice , bob\r\n\n\t# indented comment\ncarol@remote.test  \n\"|cmd a, b\"";
	assert_true(lres_list_parse(text, strlen(text), &b));
	assert_string_equal(b.data, "alice , bob,carol@remote.test,\"|cmd a, b\"");
	struct buf t = BUF_INIT(BUF_NOLIMIT);
	assert_true(lres_split_targets(b.data, collect, &t));
	assert_string_equal(t.data, "[alice][bob][carol@remote.test][|cmd a, b]");
	buf_free(&t);
	assert_true(lres_list_parse("", 0, &b));
	assert_int_equal(b.len, 0);
	assert_true(lres_list_parse("#only\n\n", 7, &b));
	assert_int_equal(b.len, 0);
	assert_false(lres_list_parse("a\0b", 3, &b));
	buf_free(&b);
	/* the output cap is honoured */
	struct buf small = BUF_INIT(4);
	assert_false(lres_list_parse("abc\ndef\n", 8, &small));
	buf_free(&small);
}

/* ---- delivery ---- */

static char tmpdir[64];

static int make_queue_file(const char *content)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/qf", tmpdir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "ENVELOPE", 8), 8);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	return fd;
}

static char *only_file(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	char *found = NULL;
	int n = 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			n++;
			free(found);
			found = xstrdup(e->d_name);
		}
	closedir(d);
	assert_int_equal(n, 1);
	return found;
}

static void test_deliver(void **state)
{
	(void)state;
	const char *content = "Subject: hi\nDelivered-To: other@local.test\n\nbody\n";
	int fd = make_queue_file(content);
	struct ldeliver_msg m = { .queue_id = "0ABCDEFGHIJ1", .sender = "sender@remote.test", .fd = fd,
		                  .content_offset = 8, .content_len = strlen(content) };
	char md[128];
	snprintf(md, sizeof(md), "%s/mail/alice/", tmpdir);
	struct buf dsn = BUF_INIT(64), text = BUF_INIT(4096), path = BUF_INIT(1024), data = BUF_INIT(1 << 20);
	assert_int_equal(ldeliver_maildir(&m, "alice@local.test", md, false, 0, 0, &dsn, &text), LDELIVER_OK);
	assert_string_equal(dsn.data, "2.0.0");
	buf_printf(&path, "%snew", md);
	char *f = only_file(path.data);
	buf_printf(&path, "/%s", f);
	assert_true(fsutil_read_file(path.data, 1 << 20, &data));
	assert_string_equal(data.data, "Return-Path: <sender@remote.test>\nDelivered-To: alice@local.test\n"
	                               "Subject: hi\nDelivered-To: other@local.test\n\nbody\n");
	free(f);
	/* the same message to other@ loops */
	buf_reset(&dsn);
	buf_reset(&text);
	assert_true(ldeliver_has_loop(&m, "OTHER@local.test"));
	assert_false(ldeliver_has_loop(&m, "other@local.tes"));
	assert_int_equal(ldeliver_maildir(&m, "other@local.test", md, false, 0, 0, &dsn, &text), LDELIVER_FAIL);
	assert_string_equal(dsn.data, "5.4.6");
	/* a Delivered-To line in the body is not a loop */
	close(fd);
	const char *c2 = "Subject: x\n\nDelivered-To: alice@local.test\n";
	fd = make_queue_file(c2);
	m.fd = fd;
	m.content_len = strlen(c2);
	assert_false(ldeliver_has_loop(&m, "alice@local.test"));
	/* an unwritable maildir is a temporary failure */
	buf_reset(&dsn);
	buf_reset(&text);
	assert_int_equal(ldeliver_maildir(&m, "alice@local.test", "/proc/nonexistent/Maildir/", false, 0, 0, &dsn,
	                                  &text), LDELIVER_TEMPFAIL);
	assert_int_equal(dsn.data[0], '4');
	/* a short queue file: temporary failure, nothing in new/ */
	buf_reset(&dsn);
	buf_reset(&text);
	m.content_len += 100;
	char md2[128];
	snprintf(md2, sizeof(md2), "%s/mail/short/", tmpdir);
	assert_int_equal(ldeliver_maildir(&m, "s@local.test", md2, false, 0, 0, &dsn, &text), LDELIVER_TEMPFAIL);
	close(fd);
	buf_free(&dsn);
	buf_free(&text);
	buf_free(&path);
	buf_free(&data);
}

static size_t count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n;
}

static void test_receipts(void **state)
{
	(void)state;
	const char *content = "Subject: r\n\nbody\n";
	int fd = make_queue_file(content);
	char rdir[128], md[128], md2[128], newdir[160];
	snprintf(rdir, sizeof(rdir), "%s/receipts-0ABCDEFGHIJ1", tmpdir);
	snprintf(md, sizeof(md), "%s/mail/r1/", tmpdir);
	snprintf(md2, sizeof(md2), "%s/mail/r2/", tmpdir);
	struct ldeliver_msg m = { .queue_id = "0ABCDEFGHIJ1", .rcpt_idx = 3, .receipt_dir = rdir, .sender = "",
		                  .fd = fd, .content_offset = 8, .content_len = strlen(content), .arrival = 1700000000 };
	struct buf dsn = BUF_INIT(64), text = BUF_INIT(4096);
	assert_int_equal(ldeliver_maildir(&m, "r@local.test", md, false, 0, 0, &dsn, &text), LDELIVER_OK);
	assert_int_equal(count_files(rdir), 0);	/* a Maildir file's name is its receipt: no file in rdir */
	snprintf(newdir, sizeof(newdir), "%snew", md);
	DIR *d = opendir(newdir);
	struct dirent *e;
	bool named = false;
	while (d && (e = readdir(d)))
		named |= strncmp(e->d_name, "1700000000.Q0ABCDEFGHIJ1R3H", 27) == 0;
	if (d)
		closedir(d);
	assert_true(named);
	/* the same delivery again (qmgr restarted before it recorded the result): no second copy */
	buf_reset(&text);
	assert_int_equal(ldeliver_maildir(&m, "r@local.test", md, false, 0, 0, &dsn, &text), LDELIVER_OK);
	assert_non_null(strstr(text.data, "before a restart"));
	assert_int_equal(count_files(newdir), 1);
	snprintf(md2, sizeof(md2), "%s/mail/r1/tmp", tmpdir);
	assert_int_equal(count_files(md2), 0);	/* the second attempt's temp file is gone too */
	/* a reader moved the copy to cur/ (imapd's way: ",U=uid:2,flags" added); a retry looks there by name */
	char from[600], to[700], curdir[160];
	d = opendir(newdir);
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			snprintf(from, sizeof(from), "%s/%s", newdir, e->d_name);
	if (d)
		closedir(d);
	snprintf(curdir, sizeof(curdir), "%scur", md);
	snprintf(to, sizeof(to), "%s/%s,U=1:2,S", curdir, strrchr(from, '/') + 1);
	assert_int_equal(rename(from, to), 0);
	m.retry = true;
	buf_reset(&text);
	assert_int_equal(ldeliver_maildir(&m, "r@local.test", md, false, 0, 0, &dsn, &text), LDELIVER_OK);
	assert_non_null(strstr(text.data, "before a restart"));
	assert_int_equal(count_files(newdir), 0);
	assert_int_equal(count_files(curdir), 1);
	assert_int_equal(rename(to, from), 0);
	m.retry = false;
	snprintf(md2, sizeof(md2), "%s/mail/r2/", tmpdir);
	/* another mailbox of the same recipient, or another recipient, is delivered */
	assert_int_equal(ldeliver_maildir(&m, "r@local.test", md2, false, 0, 0, &dsn, &text), LDELIVER_OK);
	m.rcpt_idx = 4;
	assert_int_equal(ldeliver_maildir(&m, "r@local.test", md, false, 0, 0, &dsn, &text), LDELIVER_OK);
	assert_int_equal(count_files(newdir), 2);
	assert_int_equal(count_files(rdir), 0);
	/* a failed delivery leaves nothing */
	m.rcpt_idx = 5;
	assert_int_equal(ldeliver_maildir(&m, "r@local.test", "/proc/nonexistent/", false, 0, 0, &dsn, &text),
	                 LDELIVER_TEMPFAIL);
	assert_int_equal(count_files(rdir), 0);
	close(fd);
	buf_free(&dsn);
	buf_free(&text);
}

static void test_deliver_as_user(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	const char *content = "Subject: hi\n\nbody\n";
	int fd = make_queue_file(content);
	struct ldeliver_msg m = { .queue_id = "0ABCDEFGHIJ1", .sender = "", .fd = fd, .content_offset = 8,
		                  .content_len = strlen(content) };
	char home[128], md[160];
	snprintf(home, sizeof(home), "%s/home", tmpdir);
	assert_int_equal(mkdir(home, 0755), 0);
	assert_int_equal(chown(home, 65534, 65534), 0);
	snprintf(md, sizeof(md), "%s/Maildir/", home);
	struct buf dsn = BUF_INIT(64), text = BUF_INIT(4096);
	assert_int_equal(ldeliver_maildir(&m, "u@local.test", md, true, 65534, 65534, &dsn, &text), LDELIVER_OK);
	struct stat st;
	assert_int_equal(stat(md, &st), 0);
	assert_int_equal(st.st_uid, 65534);
	/* a directory the user cannot write: the child's failure comes back as a temporary one */
	buf_reset(&dsn);
	buf_reset(&text);
	snprintf(md, sizeof(md), "%s/rootonly/Maildir/", tmpdir);
	assert_int_equal(ldeliver_maildir(&m, "u@local.test", md, true, 65534, 65534, &dsn, &text), LDELIVER_TEMPFAIL);
	assert_string_equal(dsn.data, "4.2.0");
	close(fd);
	buf_free(&dsn);
	buf_free(&text);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_local.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	chmod(tmpdir, 0755);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve_basic),
		cmocka_unit_test(test_resolve_aliases),
		cmocka_unit_test(test_forward),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_include),
		cmocka_unit_test(test_extension_and_quota),
		cmocka_unit_test(test_list_parse),
		cmocka_unit_test(test_deliver),
		cmocka_unit_test(test_receipts),
		cmocka_unit_test(test_deliver_as_user),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
