/* imapd FETCH cache (imapd/fetchcache.c): entries survive a reopen, a cache of another format (or from before the
 * format key) is emptied on open, and a batch's puts are kept once it ends, also past its commit interval. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "../../imapd/fetchcache.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_fcache.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char p[128];
	(void)state;
	snprintf(p, sizeof(p), "%s/%s", dir, IMAPD_FETCHCACHE_FILE);
	unlink(p);
	snprintf(p, sizeof(p), "%s/%s-lock", dir, IMAPD_FETCHCACHE_FILE);
	unlink(p);
	return rmdir(dir);
}

static bool has(struct imapd_fcache *c, uint32_t uid, const char *want)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	bool ok = imapd_fcache_get(c, 7, uid, IMAPD_FC_ENVELOPE, &b) && b.len == strlen(want) &&
		  memcmp(b.data, want, b.len) == 0;
	buf_free(&b);
	return ok;
}

/* Store (or delete, val NULL) the format key behind the cache's back, as an older imapd would have left it. */
static void set_format(const char *val)
{
	char p[128];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { strlen("format-version"), "format-version" }, v = { val ? strlen(val) : 0, (void *)val };

	snprintf(p, sizeof(p), "%s/%s", dir, IMAPD_FETCHCACHE_FILE);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_mapsize(env, 512ull * 1024 * 1024), 0);
	assert_int_equal(mdb_env_open(env, p, MDB_NOSUBDIR, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	if (val)
		assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	else
		assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void test_reopen_keeps(void **state)
{
	(void)state;
	struct imapd_fcache *c = imapd_fcache_open(dir);
	assert_non_null(c);
	imapd_fcache_put(c, 7, 1, IMAPD_FC_ENVELOPE, "(\"env\")", 7);
	assert_true(has(c, 1, "(\"env\")"));
	imapd_fcache_close(&c);
	assert_null(c);
	c = imapd_fcache_open(dir);
	assert_true(has(c, 1, "(\"env\")"));
	imapd_fcache_close(&c);
}

static void test_other_format_emptied(void **state)
{
	(void)state;
	struct imapd_fcache *c = imapd_fcache_open(dir);
	imapd_fcache_put(c, 7, 1, IMAPD_FC_ENVELOPE, "old", 3);
	imapd_fcache_close(&c);
	set_format("1");
	c = imapd_fcache_open(dir);
	assert_false(has(c, 1, "old"));
	imapd_fcache_put(c, 7, 1, IMAPD_FC_ENVELOPE, "new", 3);
	imapd_fcache_close(&c);
	c = imapd_fcache_open(dir);	/* the format key was rewritten: the new entry stays */
	assert_true(has(c, 1, "new"));
	imapd_fcache_close(&c);
}

static void test_unversioned_emptied(void **state)
{
	(void)state;
	struct imapd_fcache *c = imapd_fcache_open(dir);
	imapd_fcache_put(c, 7, 2, IMAPD_FC_ENVELOPE, "old", 3);
	imapd_fcache_close(&c);
	set_format(NULL);
	c = imapd_fcache_open(dir);
	assert_false(has(c, 2, "old"));
	imapd_fcache_close(&c);
}

static void test_batch(void **state)
{
	(void)state;
	/* one environment per file and process (LMDB's rule): "other" is opened after c is closed */
	struct imapd_fcache *c = imapd_fcache_open(dir), *other;
	char v[32];
	imapd_fcache_begin(c);
	for (uint32_t uid = 1; uid <= 1000; uid++) {
		assert_false(has(c, uid, "x"));
		int n = snprintf(v, sizeof(v), "v%u", uid);
		imapd_fcache_put(c, 7, uid, IMAPD_FC_ENVELOPE, v, (size_t)n);
		assert_true(has(c, uid, v));	/* its own puts are visible inside the batch */
	}
	imapd_fcache_end(c);
	imapd_fcache_close(&c);
	other = imapd_fcache_open(dir);
	for (uint32_t uid = 1; uid <= 1000; uid += 111) {
		snprintf(v, sizeof(v), "v%u", uid);
		assert_true(has(other, uid, v));
	}
	imapd_fcache_put(other, 7, 1, IMAPD_FC_HEADER, "Subject: x\n\n", 13);
	uint32_t gone[] = { 1, 2 };
	imapd_fcache_drop(other, 7, gone, 2);
	assert_false(has(other, 1, "v1"));
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_false(imapd_fcache_get(other, 7, 1, IMAPD_FC_HEADER, &b));	/* every kind goes with the message */
	buf_free(&b);
	assert_true(has(other, 3, "v3"));
	imapd_fcache_close(&other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reopen_keeps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_format_emptied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unversioned_emptied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
