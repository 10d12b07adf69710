/* accounts: hashing, verification, record round trip and strict decoding, visibility across handles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <lmdb.h>

#include "accounts.h"

struct fixture {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/test_accounts.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof f->path, "%s/accounts.lmdb", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char lock[160];
	snprintf(lock, sizeof lock, "%s-lock", f->path);
	unlink(f->path);
	unlink(lock);
	rmdir(f->dir);
	free(f);
	return 0;
}

static struct accounts *open_db(struct fixture *f, bool rw)
{
	struct buf err = BUF_INIT(1024);
	struct accounts *db = accounts_open(f->path, rw, &err);
	if (db == NULL)
		fail_msg("open: %s", buf_cstr(&err));
	buf_free(&err);
	return db;
}

static void test_hash_yescrypt_default(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(1024);
	char *h = accounts_hash_password("correct horse", NULL, &err);
	assert_non_null(h);
	assert_memory_equal(h, "$y$", 3);
	assert_true(accounts_check_hash("correct horse", h));
	assert_false(accounts_check_hash("correct hors", h));
	assert_false(accounts_check_hash("correct horse ", h));
	assert_false(accounts_check_hash("", h));
	/* two hashes of one password differ (random salt) */
	char *h2 = accounts_hash_password("correct horse", "$y$", &err);
	assert_string_not_equal(h, h2);
	free(h);
	free(h2);

	h = accounts_hash_password("pw", "$6$", &err);
	assert_non_null(h);
	assert_memory_equal(h, "$6$", 3);
	assert_true(accounts_check_hash("pw", h));
	assert_false(accounts_check_hash("pW", h));
	free(h);
	buf_free(&err);
}

static void test_hash_refusals(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(1024);
	assert_null(accounts_hash_password("pw", "$1$", &err));
	assert_null(accounts_hash_password("", NULL, &err));
	char *big = malloc(ACCOUNTS_PASSWORD_MAX + 2);
	memset(big, 'a', ACCOUNTS_PASSWORD_MAX + 1);
	big[ACCOUNTS_PASSWORD_MAX + 1] = '\0';
	assert_null(accounts_hash_password(big, NULL, &err));
	free(big);
	/* locked, empty and DES-style hashes never match */
	assert_false(accounts_check_hash("", ""));
	assert_false(accounts_check_hash("pw", "!$6$abc$def"));
	assert_false(accounts_check_hash("pw", "*"));
	assert_false(accounts_check_hash("pw", "abJnggxhB/yWI"));	/* DES of "pw" style */
	assert_false(accounts_check_hash("pw", "$y$garbage"));
	buf_free(&err);
}

static void test_normalize(void **state)
{
	(void)state;
	struct buf out = BUF_INIT(256), err = BUF_INIT(256);
	assert_true(accounts_normalize("User.Name+tag@Example.ORG", &out, &err));
	assert_string_equal(buf_cstr(&out), "user.name+tag@example.org");
	const char *bad[] = { "noat", "@example.org", "user@", "a..b@x.org", ".a@x.org", "a.@x.org", "a/b@x.org",
	                      "a@x..org", "a@-x.org", "a@x-.org", "a@x.org.", "a b@x.org", "a@x_y.org", "a\x01@x.org",
	                      "a@b@", NULL };
	for (int i = 0; bad[i]; i++) {
		buf_reset(&err);
		if (accounts_normalize(bad[i], &out, &err))
			fail_msg("accepted %s", bad[i]);
		assert_true(err.len > 0);
	}
	char longlocal[80];
	memset(longlocal, 'a', 65);
	memcpy(longlocal + 65, "@x.org", 7);
	assert_false(accounts_normalize(longlocal, &out, &err));
	/* quoted-at-sign trick: the last '@' splits */
	assert_false(accounts_normalize("a@b@x.org", &out, &err));
	buf_free(&out);
	buf_free(&err);
}

static void test_record_round_trip(void **state)
{
	(void)state;
	struct accounts_user u = { 0 }, d;
	struct buf rec = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(256);
	u.password_hash = "$y$j9T$salt$hash";
	u.maildir = "/var/mail/x.org/a/";
	u.uid = 0xfffffffe;
	u.gid = 12;
	u.quota = (uint64_t)5 << 40;
	u.enabled = true;
	u.apop_secret = "tanstaaf";
	u.created = 1700000000;
	u.changed = -1;
	accounts_record_encode(&u, &rec);
	assert_true(accounts_record_decode(rec.data, rec.len, &d, &err));
	assert_string_equal(d.password_hash, u.password_hash);
	assert_string_equal(d.maildir, u.maildir);
	assert_string_equal(d.apop_secret, "tanstaaf");
	assert_int_equal(d.uid, 0xfffffffe);
	assert_int_equal(d.gid, 12);
	assert_true(d.quota == u.quota);
	assert_true(d.enabled);
	assert_int_equal(d.created, 1700000000);
	assert_int_equal(d.changed, -1);
	assert_null(d.address);
	accounts_user_free(&d);

	u.apop_secret = NULL;
	u.enabled = false;
	accounts_record_encode(&u, &rec);
	assert_true(accounts_record_decode(rec.data, rec.len, &d, &err));
	assert_null(d.apop_secret);
	assert_false(d.enabled);
	accounts_user_free(&d);
	buf_free(&rec);
	buf_free(&err);
}

static void test_record_corrupt(void **state)
{
	(void)state;
	struct accounts_user u = { 0 }, d;
	struct buf rec = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(4096);
	u.password_hash = "$6$x$y";
	u.maildir = "/m/";
	u.apop_secret = "s";
	accounts_record_encode(&u, &rec);

	/* every truncation is rejected */
	for (size_t n = 0; n < rec.len; n++)
		assert_false(accounts_record_decode(rec.data, n, &d, &err));
	/* trailing garbage */
	struct buf more = BUF_INIT(BUF_NOLIMIT);
	buf_append(&more, rec.data, rec.len);
	buf_putc(&more, 'x');
	assert_false(accounts_record_decode(more.data, more.len, &d, &err));
	/* wrong version, unknown flag */
	more.len = 0;
	buf_append(&more, rec.data, rec.len);
	more.data[0] = 2;
	assert_false(accounts_record_decode(more.data, more.len, &d, &err));
	more.data[0] = 1;
	more.data[1] |= 0x80;
	assert_false(accounts_record_decode(more.data, more.len, &d, &err));
	/* string length pointing past the end */
	more.data[1] &= 0x7f;
	more.data[34] = (char)0xff;
	assert_false(accounts_record_decode(more.data, more.len, &d, &err));
	/* NUL inside the hash */
	buf_reset(&more);
	buf_append(&more, rec.data, rec.len);
	more.data[36] = '\0';
	assert_false(accounts_record_decode(more.data, more.len, &d, &err));
	/* relative maildir */
	u.maildir = "m/";
	accounts_record_encode(&u, &rec);
	assert_false(accounts_record_decode(rec.data, rec.len, &d, &err));
	assert_non_null(strstr(buf_cstr(&err), "account record"));
	buf_free(&more);
	buf_free(&rec);
	buf_free(&err);
}

static void test_add_verify(void **state)
{
	struct fixture *f = *state;
	struct accounts *db = open_db(f, true);
	struct buf err = BUF_INIT(1024);
	struct accounts_opts o = { .mail_directory = "/srv/mail", .quota = 1024 };
	struct accounts_user u;

	assert_int_equal(accounts_add(db, "Alice@Example.org", "s3cret", &o, &err), ACCOUNTS_OK);
	assert_int_equal(accounts_add(db, "alice@example.ORG", "other", &o, &err), ACCOUNTS_EXISTS);
	assert_int_equal(accounts_get(db, "ALICE@example.org", &u, &err), ACCOUNTS_OK);
	assert_string_equal(u.address, "alice@example.org");
	assert_string_equal(u.maildir, "/srv/mail/example.org/alice/");
	assert_memory_equal(u.password_hash, "$y$", 3);
	assert_int_equal(u.quota, 1024);
	assert_true(u.enabled);
	assert_true(u.created > 0 && u.created == u.changed);
	accounts_user_free(&u);

	assert_int_equal(accounts_verify(db, "alice@example.org", "s3cret", &u, &err), ACCOUNTS_OK);
	assert_string_equal(u.address, "alice@example.org");
	accounts_user_free(&u);
	assert_int_equal(accounts_verify(db, "alice@example.org", "S3cret", NULL, &err), ACCOUNTS_BADPASS);
	assert_int_equal(accounts_verify(db, "bob@example.org", "s3cret", NULL, &err), ACCOUNTS_NOTFOUND);
	assert_int_equal(accounts_verify(db, "not an address", "s3cret", NULL, &err), ACCOUNTS_NOTFOUND);

	assert_int_equal(accounts_set_enabled(db, "alice@example.org", false, &err), ACCOUNTS_OK);
	assert_int_equal(accounts_verify(db, "alice@example.org", "s3cret", NULL, &err), ACCOUNTS_DISABLED);
	assert_int_equal(accounts_verify(db, "alice@example.org", "bad", NULL, &err), ACCOUNTS_BADPASS);
	assert_int_equal(accounts_set_enabled(db, "alice@example.org", true, &err), ACCOUNTS_OK);

	assert_int_equal(accounts_set_password(db, "alice@example.org", "new pw", "$6$", &err), ACCOUNTS_OK);
	assert_int_equal(accounts_verify(db, "alice@example.org", "s3cret", NULL, &err), ACCOUNTS_BADPASS);
	assert_int_equal(accounts_verify(db, "alice@example.org", "new pw", &u, &err), ACCOUNTS_OK);
	assert_memory_equal(u.password_hash, "$6$", 3);
	assert_string_equal(u.maildir, "/srv/mail/example.org/alice/");	/* other fields kept */
	assert_int_equal(u.quota, 1024);
	accounts_user_free(&u);

	assert_int_equal(accounts_set_apop(db, "alice@example.org", "apopsecret", &err), ACCOUNTS_OK);
	assert_int_equal(accounts_get(db, "alice@example.org", &u, &err), ACCOUNTS_OK);
	assert_string_equal(u.apop_secret, "apopsecret");
	accounts_user_free(&u);
	assert_int_equal(accounts_set_apop(db, "alice@example.org", NULL, &err), ACCOUNTS_OK);
	assert_int_equal(accounts_get(db, "alice@example.org", &u, &err), ACCOUNTS_OK);
	assert_null(u.apop_secret);
	accounts_user_free(&u);

	assert_int_equal(accounts_set_password(db, "nobody@example.org", "x", NULL, &err), ACCOUNTS_NOTFOUND);
	assert_int_equal(accounts_delete(db, "alice@example.org", &err), ACCOUNTS_OK);
	assert_int_equal(accounts_delete(db, "alice@example.org", &err), ACCOUNTS_NOTFOUND);
	assert_int_equal(accounts_get(db, "alice@example.org", &u, &err), ACCOUNTS_NOTFOUND);

	/* explicit maildir gets its trailing slash; relative ones and a missing mail_directory are refused */
	struct accounts_opts o2 = { .maildir = "/home/c/Maildir", .uid = 1000, .gid = 1000 };
	assert_int_equal(accounts_add(db, "c@x.org", "pw", &o2, &err), ACCOUNTS_OK);
	assert_int_equal(accounts_get(db, "c@x.org", &u, &err), ACCOUNTS_OK);
	assert_string_equal(u.maildir, "/home/c/Maildir/");
	assert_int_equal(u.uid, 1000);
	accounts_user_free(&u);
	o2.maildir = "Maildir";
	assert_int_equal(accounts_add(db, "d@x.org", "pw", &o2, &err), ACCOUNTS_ERROR);
	assert_int_equal(accounts_add(db, "d@x.org", "pw", NULL, &err), ACCOUNTS_ERROR);
	assert_int_equal(accounts_add(db, "d@x.org", "", &o, &err), ACCOUNTS_ERROR);
	assert_int_equal(accounts_get(db, "d@x.org", &u, &err), ACCOUNTS_NOTFOUND);

	accounts_close(&db);
	assert_null(db);
	buf_free(&err);
}

static void test_visible_across_handles(void **state)
{
	struct fixture *f = *state;
	struct accounts *w = open_db(f, true);
	struct accounts *r = open_db(f, false);
	struct buf err = BUF_INIT(1024);
	struct accounts_opts o = { .mail_directory = "/m" };
	struct accounts_user u;

	assert_int_equal(accounts_get(r, "late@x.org", &u, &err), ACCOUNTS_NOTFOUND);
	assert_int_equal(accounts_add(w, "late@x.org", "pw", &o, &err), ACCOUNTS_OK);
	/* the reader, opened before the write, sees it at its next call */
	assert_int_equal(accounts_verify(r, "late@x.org", "pw", NULL, &err), ACCOUNTS_OK);
	assert_int_equal(accounts_delete(w, "late@x.org", &err), ACCOUNTS_OK);
	assert_int_equal(accounts_get(r, "late@x.org", &u, &err), ACCOUNTS_NOTFOUND);
	/* a read-only handle refuses writes */
	assert_int_equal(accounts_add(r, "ro@x.org", "pw", &o, &err), ACCOUNTS_ERROR);
	assert_int_equal(accounts_delete(r, "ro@x.org", &err), ACCOUNTS_ERROR);
	accounts_close(&r);
	accounts_close(&w);
	buf_free(&err);
}

static void raw_put(const char *path, const char *key, const char *val)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { strlen(key), (void *)key }, v = { strlen(val), (void *)val };
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_open(env, path, MDB_NOSUBDIR, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static bool collect(const struct accounts_user *u, void *arg)
{
	struct buf *b = arg;
	buf_printf(b, "%s,", u->address);
	return true;
}

static bool stop_first(const struct accounts_user *u, void *arg)
{
	(void)u;
	(*(int *)arg)++;
	return false;
}

/* Daemons exit without closing the database (maxuse, idle, kill -9): their LMDB reader slots must not pile up
 * until every lookup fails with MDB_READERS_FULL (126 slots). */
static void test_dead_readers_do_not_fill_the_table(void **state)
{
	struct fixture *f = *state;
	struct accounts *w = open_db(f, true);
	struct buf err = BUF_INIT(1024);
	struct accounts_opts o = { .mail_directory = "/m" };
	struct accounts_user u;

	assert_int_equal(accounts_add(w, "a@x.org", "pw", &o, &err), ACCOUNTS_OK);
	accounts_close(&w);
	for (int i = 0; i < 200; i++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct buf e = BUF_INIT(1024);
			struct accounts *r = accounts_open(f->path, false, &e);
			struct accounts_user cu;
			_exit(r != NULL && accounts_get(r, "a@x.org", &cu, &e) == ACCOUNTS_OK ? 0 : 1);
		}
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	struct accounts *r = open_db(f, false);
	assert_int_equal(accounts_get(r, "a@x.org", &u, &err), ACCOUNTS_OK);
	accounts_user_free(&u);
	accounts_close(&r);
	buf_free(&err);
}

static void test_foreach_and_corrupt_in_db(void **state)
{
	struct fixture *f = *state;
	struct accounts *db = open_db(f, true);
	struct buf err = BUF_INIT(1024), list = BUF_INIT(4096);
	struct accounts_opts o = { .mail_directory = "/m" };
	struct accounts_user u = { 0 };

	assert_int_equal(accounts_add(db, "b@x.org", "pw", &o, &err), ACCOUNTS_OK);
	assert_int_equal(accounts_add(db, "a@x.org", "pw", &o, &err), ACCOUNTS_OK);
	assert_int_equal(accounts_foreach(db, collect, &list, &err), ACCOUNTS_OK);
	assert_string_equal(buf_cstr(&list), "a@x.org,b@x.org,");
	int n = 0;
	assert_int_equal(accounts_foreach(db, stop_first, &n, &err), ACCOUNTS_OK);
	assert_int_equal(n, 1);

	/* accounts_put refuses what would not decode */
	u.address = "c@x.org";
	u.password_hash = "";
	u.maildir = "relative/";
	assert_int_equal(accounts_put(db, &u, &err), ACCOUNTS_ERROR);
	u.address = "C@x.org";
	u.maildir = "/m/";
	assert_int_equal(accounts_put(db, &u, &err), ACCOUNTS_ERROR);
	/* a record corrupted behind our back is an error, not a crash */
	raw_put(f->path, "c@x.org", "\x01\x01garbage");
	buf_reset(&err);
	struct accounts_user g;
	assert_int_equal(accounts_get(db, "c@x.org", &g, &err), ACCOUNTS_ERROR);
	assert_non_null(strstr(buf_cstr(&err), "c@x.org"));
	assert_int_equal(accounts_verify(db, "c@x.org", "pw", NULL, &err), ACCOUNTS_ERROR);
	buf_reset(&list);
	assert_int_equal(accounts_foreach(db, collect, &list, &err), ACCOUNTS_ERROR);
	assert_string_equal(buf_cstr(&list), "a@x.org,b@x.org,");
	/* an account with an empty hash cannot log in */
	u.address = "c@x.org";
	assert_int_equal(accounts_put(db, &u, &err), ACCOUNTS_OK);
	assert_int_equal(accounts_verify(db, "c@x.org", "", NULL, &err), ACCOUNTS_BADPASS);
	accounts_close(&db);
	buf_free(&err);
	buf_free(&list);
}

static double elapsed(struct timespec a, struct timespec b)
{
	return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

static void test_dummy_verify_costs_like_real(void **state)
{
	struct fixture *f = *state;
	struct accounts *db = open_db(f, true);
	struct buf err = BUF_INIT(1024);
	struct accounts_opts o = { .mail_directory = "/m" };
	struct timespec t0, t1, t2;

	assert_int_equal(accounts_add(db, "real@x.org", "pw", &o, &err), ACCOUNTS_OK);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(accounts_verify(db, "real@x.org", "wrong", NULL, &err), ACCOUNTS_BADPASS);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(accounts_verify(db, "ghost@x.org", "wrong", NULL, &err), ACCOUNTS_NOTFOUND);
	clock_gettime(CLOCK_MONOTONIC, &t2);
	double known = elapsed(t0, t1), unknown = elapsed(t1, t2);
	/* a real hash check; without the dummy an unknown user would take microseconds, a thousand times less.
	 * The bounds are loose so a busy machine does not make the test flaky. */
	assert_true(unknown > known / 10);
	assert_true(unknown < known * 10);
	accounts_close(&db);
	buf_free(&err);
}

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	struct buf err = BUF_INIT(1024);
	/* read-only open of a missing file fails with a message */
	assert_null(accounts_open(f->path, false, &err));
	assert_non_null(strstr(buf_cstr(&err), f->path));
	buf_reset(&err);
	assert_null(accounts_open("/nonexistent-dir/x/accounts.lmdb", true, &err));
	assert_true(err.len > 0);
	buf_free(&err);
}

static void test_system_users(void **state)
{
	(void)state;
	struct accounts_user u;
	struct buf err = BUF_INIT(1024);
	assert_int_equal(accounts_system_get("nobody", &u, &err), ACCOUNTS_OK);
	assert_string_equal(u.address, "nobody");
	assert_int_equal(u.uid, 65534);
	assert_true(u.enabled);
	assert_non_null(strstr(u.maildir, "/Maildir/"));
	assert_non_null(u.password_hash);	/* "" when shadow is unreadable: no login, never a crash */
	accounts_user_free(&u);
	/* uid 0 means the virtual-mail user in auth's answers, and root never reads mail: not a login */
	assert_int_equal(accounts_system_get("root", &u, &err), ACCOUNTS_NOTFOUND);
	assert_int_equal(accounts_system_get("no-such-user-here", &u, &err), ACCOUNTS_NOTFOUND);
	assert_int_equal(accounts_system_get("root@x.org", &u, &err), ACCOUNTS_NOTFOUND);
	assert_int_equal(accounts_system_get("../root", &u, &err), ACCOUNTS_NOTFOUND);
	assert_int_equal(accounts_system_get("", &u, &err), ACCOUNTS_NOTFOUND);
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_yescrypt_default),
		cmocka_unit_test(test_hash_refusals),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_record_round_trip),
		cmocka_unit_test(test_record_corrupt),
		cmocka_unit_test_setup_teardown(test_add_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_visible_across_handles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_readers_do_not_fill_the_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach_and_corrupt_in_db, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dummy_verify_costs_like_real, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test(test_system_users),
	};
	return cmocka_run_group_tests_name("accounts", tests, NULL, NULL);
}
