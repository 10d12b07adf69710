/* table: both source syntaxes, case folding, continuation lines, errors with line numbers, duplicates,
 * atomic replacement seen by an open table, and the address lookup order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "table.h"

struct fx {
	char dir[64];
	char src[128];
	char db[160];
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_table.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->src, sizeof(f->src), "%s/map", f->dir);
	snprintf(f->db, sizeof(f->db), "%s/map.lmdb", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	DIR *d = opendir(f->dir);
	struct dirent *e;
	char p[512];
	while (d && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

/* Compile text; on failure return the error message (static), else NULL. */
static const char *compile(struct fx *f, const char *text, enum table_syntax syn, size_t *count, struct buf *warn)
{
	static char msg[512];
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	bool ok;
	write_file(f->src, text);
	ok = table_compile(f->src, NULL, syn, count, &err, warn);
	snprintf(msg, sizeof(msg), "%s", buf_cstr(&err));
	buf_free(&err);
	return ok ? NULL : msg;
}

static void expect(struct table *t, const char *key, const char *value)
{
	struct buf v = BUF_INIT(4096);
	enum table_result r = table_lookup(t, key, &v);
	if (value == NULL) {
		assert_int_equal(r, TABLE_NOTFOUND);
		assert_int_equal(v.len, 0);
	} else {
		assert_int_equal(r, TABLE_FOUND);
		assert_string_equal(buf_cstr(&v), value);
	}
	buf_free(&v);
}

static struct table *open_ok(struct fx *f)
{
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	struct table *t = table_open(f->src, &err);	/* the source name: ".lmdb" is appended */
	if (!t)
		fail_msg("open: %s", buf_cstr(&err));
	buf_free(&err);
	assert_string_equal(table_path(t), f->db);
	return t;
}

static void test_postmap(void **state)
{
	struct fx *f = *state;
	size_t count = 0;
	const char *e = compile(f,
		"# a comment\n"
		"Alice@Example.COM   alice@backend.example  # not a comment\n"
		"\n"
		"bob@example.com bob1,\n"
		"   bob2,\n"
		"# comments and blank lines inside an entry do not end it\n"
		"\n"
		"\tbob3   \n"
		"crlf value\r\n"
		"   # indented comment\n"
		"last\tno newline at end",
		TABLE_POSTMAP, &count, NULL);
	assert_null(e);
	assert_int_equal(count, 4);
	struct table *t = open_ok(f);
	expect(t, "alice@example.com", "alice@backend.example  # not a comment");
	expect(t, "ALICE@EXAMPLE.COM", "alice@backend.example  # not a comment");
	expect(t, "bob@example.com", "bob1, bob2, bob3");
	expect(t, "crlf", "value");
	expect(t, "last", "no newline at end");
	expect(t, "carol@example.com", NULL);
	expect(t, "", NULL);
	expect(t, "#", NULL);
	table_close(&t);
	assert_null(t);
}

static void test_aliases(void **state)
{
	struct fx *f = *state;
	size_t count = 0;
	const char *e = compile(f,
		"# sendmail-style aliases\n"
		"Postmaster: root\n"
		"root : admin@example.com, \"|/usr/bin/filter -x\",\n"
		"  /var/mail/archive,\n"
		"  :include:/etc/postern/staff.list\n"
		"\"John Smith\": john\n"
		"\"odd\\\"name\":odd\n"
		"list-request:owner\n",
		TABLE_ALIASES, &count, NULL);
	assert_null(e);
	assert_int_equal(count, 5);
	struct table *t = open_ok(f);
	expect(t, "postmaster", "root");
	expect(t, "ROOT", "admin@example.com, \"|/usr/bin/filter -x\", /var/mail/archive, "
	                  ":include:/etc/postern/staff.list");
	expect(t, "john smith", "john");
	expect(t, "odd\"name", "odd");
	expect(t, "list-request", "owner");
	expect(t, "\"john smith\"", NULL);
	table_close(&t);
}

static void expect_error(struct fx *f, const char *text, enum table_syntax syn, const char *where, const char *what)
{
	const char *e = compile(f, text, syn, NULL, NULL);
	char prefix[256];
	if (!e)
		fail_msg("compiled, expected an error at %s", where);
	snprintf(prefix, sizeof(prefix), "%s:%s: ", f->src, where);
	if (strncmp(e, prefix, strlen(prefix)) != 0 || !strstr(e, what))
		fail_msg("got \"%s\", expected \"%s...%s\"", e, prefix, what);
}

static void count_cb(const char *key, size_t keylen, const char *value, size_t vallen, unsigned line, void *arg)
{
	(void)value;
	(void)vallen;
	(void)line;
	assert_int_equal(strlen(key), keylen);
	if (arg)
		(*(int *)arg)++;
}

static void test_errors(void **state)
{
	struct fx *f = *state;
	char longkey[600];

	expect_error(f, "a b\n\n# x\nkeyonly\nc d\n", TABLE_POSTMAP, "4", "only a key");
	expect_error(f, "a b\nkeyonly   \n", TABLE_POSTMAP, "2", "only a key");
	expect_error(f, "  starts indented\n", TABLE_POSTMAP, "1", "continuation line");
	struct buf perr = BUF_INIT(BUF_NOLIMIT);
	assert_false(table_parse("nul", "a b\nc d\ne\0f g\n", 12, TABLE_POSTMAP, count_cb, NULL, &perr));
	assert_string_equal(buf_cstr(&perr), "nul:3: NUL byte in line");
	buf_free(&perr);
	expect_error(f, "root: x\nno colon here\n", TABLE_ALIASES, "2", "expected");
	expect_error(f, "root: x\n\n\nempty:\n", TABLE_ALIASES, "4", "no targets");
	expect_error(f, "empty:   \n   \n", TABLE_ALIASES, "1", "no targets");
	expect_error(f, "\"unterminated: x\n", TABLE_ALIASES, "1", "unterminated");
	expect_error(f, "\"\": x\n", TABLE_ALIASES, "1", "empty key");
	expect_error(f, ": x\n", TABLE_ALIASES, "1", "empty key");
	memset(longkey, 'k', 512);
	memcpy(longkey + 512, " v\n", 4);
	expect_error(f, longkey, TABLE_POSTMAP, "1", "longer than 511");
	longkey[511] = ' ';	/* exactly 511 bytes is fine */
	assert_null(compile(f, longkey, TABLE_POSTMAP, NULL, NULL));

	/* an entry too long */
	size_t n = TABLE_LINE_MAX + 100;
	char *big = xmalloc(n + 1);
	memset(big, 'v', n);
	memcpy(big, "k ", 2);
	big[n] = '\0';
	expect_error(f, big, TABLE_POSTMAP, "1", "longer than");
	free(big);

	/* a missing source names the file */
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	assert_false(table_compile("/nonexistent/dir/map", NULL, TABLE_POSTMAP, NULL, &err, NULL));
	assert_non_null(strstr(buf_cstr(&err), "/nonexistent/dir/map"));
	buf_free(&err);
}

static void test_error_keeps_old_table(void **state)
{
	struct fx *f = *state;
	assert_null(compile(f, "k old\n", TABLE_POSTMAP, NULL, NULL));
	struct table *t = open_ok(f);
	assert_non_null(compile(f, "k new\nbroken\n", TABLE_POSTMAP, NULL, NULL));
	expect(t, "k", "old");
	table_close(&t);
	/* and no temp file is left behind: only the source and the table */
	DIR *d = opendir(f->dir);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	assert_int_equal(n, 2);
}

static void test_duplicates(void **state)
{
	struct fx *f = *state;
	struct buf warn = BUF_INIT(BUF_NOLIMIT);
	size_t count = 0;
	char want[256];
	assert_null(compile(f, "a 1\nb 2\nA 3\n", TABLE_POSTMAP, &count, &warn));
	assert_int_equal(count, 2);
	snprintf(want, sizeof(want), "%s:3: duplicate key \"a\"", f->src);
	assert_non_null(strstr(buf_cstr(&warn), want));
	struct table *t = open_ok(f);
	expect(t, "a", "3");
	table_close(&t);
	buf_free(&warn);
}

static void test_replace_seen_by_open_table(void **state)
{
	struct fx *f = *state;
	assert_null(compile(f, "k one\ngone x\n", TABLE_POSTMAP, NULL, NULL));
	struct table *t = open_ok(f);
	expect(t, "k", "one");
	/* recompiled within the same second: the new inode is noticed without any reopen call */
	for (int i = 0; i < 3; i++) {
		char text[64], want[16];
		snprintf(text, sizeof(text), "k v%d\nnew%d y\n", i, i);
		snprintf(want, sizeof(want), "v%d", i);
		assert_null(compile(f, text, TABLE_POSTMAP, NULL, NULL));
		expect(t, "k", want);
		expect(t, "gone", NULL);
	}
	expect(t, "new2", "y");

	/* the table removed: an error (defer), not "not found" */
	struct buf v = BUF_INIT(100);
	unlink(f->db);
	assert_int_equal(table_lookup(t, "k", &v), TABLE_ERROR);
	assert_non_null(strstr(table_error(t), f->db));
	/* and back again */
	assert_null(compile(f, "k back\n", TABLE_POSTMAP, NULL, NULL));
	expect(t, "k", "back");
	table_close(&t);
	buf_free(&v);
}

static void test_open_and_value_errors(void **state)
{
	struct fx *f = *state;
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	assert_null(table_open(f->db, &err));
	assert_non_null(strstr(buf_cstr(&err), f->db));

	/* a file that is not an LMDB table */
	write_file(f->db, "this is not lmdb, just some text that is long enough to look at\n");
	assert_null(table_open(f->db, &err));
	unlink(f->db);

	assert_null(compile(f, "k 0123456789\n", TABLE_POSTMAP, NULL, NULL));
	struct table *t = table_open(f->db, &err);
	assert_non_null(t);
	struct buf small = BUF_INIT(5);
	assert_int_equal(table_lookup(t, "k", &small), TABLE_ERROR);
	assert_non_null(strstr(table_error(t), "longer than 5"));
	assert_int_equal(small.len, 0);
	buf_free(&small);
	table_close(&t);
	buf_free(&err);
}

static void test_permissions(void **state)
{
	struct fx *f = *state;
	struct stat st;
	write_file(f->src, "secret value\n");
	assert_int_equal(chmod(f->src, 0640), 0);
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	assert_true(table_compile(f->src, NULL, TABLE_POSTMAP, NULL, &err, NULL));
	assert_int_equal(stat(f->db, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	/* an explicit destination */
	char other[200];
	snprintf(other, sizeof(other), "%s/other.lmdb", f->dir);
	assert_true(table_compile(f->src, other, TABLE_POSTMAP, NULL, &err, NULL));
	struct table *t = table_open(other, &err);
	assert_non_null(t);
	expect(t, "secret", "value");
	table_close(&t);
	buf_free(&err);
}

static void expect_addr(struct table *t, const char *addr, const char *delims, unsigned flags, const char *key,
                        const char *value)
{
	struct buf v = BUF_INIT(1024), m = BUF_INIT(1024);
	enum table_result r = table_lookup_addr(t, addr, delims, flags, &v, &m);
	if (!key) {
		assert_int_equal(r, TABLE_NOTFOUND);
	} else {
		if (r != TABLE_FOUND)
			fail_msg("%s: expected key %s, got result %d", addr, key, r);
		assert_string_equal(buf_cstr(&m), key);
		assert_string_equal(buf_cstr(&v), value);
	}
	buf_free(&v);
	buf_free(&m);
}

static void test_addr_order(void **state)
{
	struct fx *f = *state;
	const unsigned all = TABLE_ADDR_FULL | TABLE_ADDR_LOCAL | TABLE_ADDR_DOMAIN;
	const unsigned virt = TABLE_ADDR_FULL | TABLE_ADDR_DOMAIN;
	const char *lines[] = { "user+ext@domain.test 1\n", "user@domain.test 2\n", "user+ext 3\n", "user 4\n",
		                "@domain.test 5\n" };
	const char *keys[] = { "user+ext@domain.test", "user@domain.test", "user+ext", "user", "@domain.test" };

	/* drop the most specific form one at a time: the next one must win */
	for (int first = 0; first < 5; first++) {
		struct buf text = BUF_INIT(BUF_NOLIMIT);
		for (int i = first; i < 5; i++)
			buf_puts(&text, lines[i]);
		assert_null(compile(f, buf_cstr(&text), TABLE_POSTMAP, NULL, NULL));
		buf_free(&text);
		struct table *t = open_ok(f);
		char val[16];
		snprintf(val, sizeof(val), "%d", first + 1);
		expect_addr(t, "User+Ext@Domain.TEST", "+", all, keys[first], val);
		table_close(&t);
	}

	assert_null(compile(f, "user@domain.test full\nuser local\n@domain.test catchall\n"
	                       "+x@domain.test plusfirst\n", TABLE_POSTMAP, NULL, NULL));
	struct table *t = open_ok(f);
	/* virtual-map flags never try the local-part forms */
	expect_addr(t, "user+ext@domain.test", "+", virt, "user@domain.test", "full");
	expect_addr(t, "other@domain.test", "+", virt, "@domain.test", "catchall");
	expect_addr(t, "other@elsewhere.test", "+", virt, NULL, NULL);
	/* aliases flags never try forms with a domain */
	expect_addr(t, "user+ext@domain.test", "+", TABLE_ADDR_LOCAL, "user", "local");
	expect_addr(t, "other@domain.test", "+", TABLE_ADDR_LOCAL, NULL, NULL);
	/* several delimiters: the first one present splits */
	expect_addr(t, "user-a+b@domain.test", "+-", virt, "user@domain.test", "full");
	/* no delimiter configured: no extension stripping */
	expect_addr(t, "user+ext@domain.test", NULL, virt, "@domain.test", "catchall");
	expect_addr(t, "user+ext@domain.test", "", TABLE_ADDR_LOCAL, NULL, NULL);
	/* a leading delimiter is part of the name, not an extension */
	expect_addr(t, "+x@domain.test", "+", virt, "+x@domain.test", "plusfirst");
	expect_addr(t, "+y@domain.test", "+", virt, "@domain.test", "catchall");
	/* no domain: only local-part forms apply */
	expect_addr(t, "user+ext", "+", all, "user", "local");
	expect_addr(t, "user+ext@", "+", virt, NULL, NULL);
	/* the last @ separates the domain */
	expect_addr(t, "\"a@b\"@domain.test", "+", virt, "@domain.test", "catchall");
	/* matched may be NULL */
	struct buf v = BUF_INIT(100);
	assert_int_equal(table_lookup_addr(t, "user@domain.test", "+", virt, &v, NULL), TABLE_FOUND);
	assert_string_equal(buf_cstr(&v), "full");

	/* an error stops the search instead of falling through */
	unlink(f->db);
	assert_int_equal(table_lookup_addr(t, "user+x@domain.test", "+", all, &v, NULL), TABLE_ERROR);
	buf_free(&v);
	table_close(&t);
}

static void test_parse_only(void **state)
{
	(void)state;
	int n = 0;
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	assert_true(table_parse("x", "", 0, TABLE_POSTMAP, count_cb, &n, &err));
	assert_true(table_parse("x", "\n\n#\n", 4, TABLE_ALIASES, count_cb, &n, &err));
	assert_int_equal(n, 0);
	/* entries before an error have been delivered */
	assert_false(table_parse("src", "a b\nc d\ne\n", 10, TABLE_POSTMAP, count_cb, &n, &err));
	assert_int_equal(n, 2);
	assert_string_equal(buf_cstr(&err), "src:3: expected \"key value\", got only a key: \"e\"");
	buf_free(&err);
}

/* A child recompiles the table over and over while we look up: every lookup must see a whole table, old or new,
 * never an error or a missing key (what in-place writing would show). */
static void test_concurrent_replace(void **state)
{
	struct fx *f = *state;
	assert_null(compile(f, "k v0\nother x\n", TABLE_POSTMAP, NULL, NULL));
	struct table *t = open_ok(f);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char text[64];
		struct buf err = BUF_INIT(BUF_NOLIMIT);
		for (int i = 1; i <= 60; i++) {
			snprintf(text, sizeof(text), "k v%d\nother x\n", i);
			write_file(f->src, text);
			if (!table_compile(f->src, NULL, TABLE_POSTMAP, NULL, &err, NULL))
				_exit(1);
		}
		_exit(0);
	}
	struct buf v = BUF_INIT(100);
	int lookups = 0, changes = 0, status;
	char last[16] = "v0";
	for (;;) {
		int done = waitpid(pid, &status, WNOHANG) == pid;
		enum table_result r = table_lookup(t, "k", &v);
		if (r != TABLE_FOUND)
			fail_msg("lookup %d: result %d: %s", lookups, r, table_error(t));
		assert_int_equal(buf_cstr(&v)[0], 'v');
		if (strcmp(last, buf_cstr(&v)) != 0) {
			changes++;
			snprintf(last, sizeof(last), "%s", buf_cstr(&v));
		}
		lookups++;
		if (done)
			break;
	}
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	expect(t, "k", "v60");
	assert_true(changes >= 1);
	buf_free(&v);
	table_close(&t);
}

/* Run the real `postern` next to this test binary (BUILD/tests/test_table -> BUILD/bin/postern); returns the exit
 * status, stdout+stderr in out. */
static int run_postern(const char *args, struct buf *out)
{
	char exe[512], cmd[2048], line[512];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	snprintf(cmd, sizeof(cmd), "%s/../bin/postern %s 2>&1", exe, args);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	buf_reset(out);
	while (fgets(line, sizeof(line), p))
		buf_puts(out, line);
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void **state)
{
	struct fx *f = *state;
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	char args[512];

	write_file(f->src, "Alice@Example.com  alice@backend\nalice@example.com again\n");
	snprintf(args, sizeof(args), "map compile %s", f->src);
	assert_int_equal(run_postern(args, &out), 0);
	assert_non_null(strstr(buf_cstr(&out), ":2: duplicate key"));
	assert_non_null(strstr(buf_cstr(&out), ".lmdb: 1 key\n"));

	snprintf(args, sizeof(args), "map get %s ALICE@example.COM", f->src);
	assert_int_equal(run_postern(args, &out), 0);
	assert_string_equal(buf_cstr(&out), "again\n");
	snprintf(args, sizeof(args), "map get %s bob@example.com", f->src);
	assert_int_equal(run_postern(args, &out), 1);
	assert_string_equal(buf_cstr(&out), "");

	/* aliases syntax, and an error naming file and line with a non-zero status other than 1 */
	write_file(f->src, "root: admin\nbroken line\n");
	snprintf(args, sizeof(args), "map compile %s --aliases", f->src);
	int rc = run_postern(args, &out);
	assert_true(rc != 0 && rc != 1);
	char want[256];
	snprintf(want, sizeof(want), "%s:2: ", f->src);
	assert_non_null(strstr(buf_cstr(&out), want));
	write_file(f->src, "root: admin, \"|/bin/prog arg\"\n");
	assert_int_equal(run_postern(args, &out), 0);
	snprintf(args, sizeof(args), "map get %s.lmdb root", f->src);
	assert_int_equal(run_postern(args, &out), 0);
	assert_string_equal(buf_cstr(&out), "admin, \"|/bin/prog arg\"\n");

	/* a missing table is an error, not "not found" */
	snprintf(args, sizeof(args), "map get %s/none key", f->dir);
	rc = run_postern(args, &out);
	assert_true(rc != 0 && rc != 1);
	assert_true(run_postern("map frobnicate", &out) != 0);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_postmap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_aliases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_keeps_old_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_seen_by_open_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_and_value_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_addr_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_replace, setup, teardown),
	};
	return cmocka_run_group_tests_name("table", tests, NULL, NULL);
}
