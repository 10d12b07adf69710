/* qmgr state database: record codec (strictness), keys, and the LMDB side (put, replace, list, delete). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qstate.h"
#include "alloc.h"

static void sample(struct qstate_rcpt *r, uint32_t idx, const char *addr)
{
	memset(r, 0, sizeof(*r));
	r->idx = idx;
	r->status = QSTATE_DEFERRED;
	r->attempts = 3;
	r->next_try = 1800000000123ull;
	r->last_try = 1799999999000ull;
	r->parent = QSTATE_NO_PARENT;
	qstate_rcpt_set(r, addr, "4.4.1", "connection refused");
}

static void test_roundtrip(void **state)
{
	(void)state;
	struct qstate_rcpt r, d;
	struct buf b = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	sample(&r, 7, "alice@example.com");
	r.parent = 2;
	r.flags = QSTATE_F_NOTIFIED;
	qstate_encode(&r, &b);
	assert_true(qstate_decode(b.data, b.len, &d, &err));
	assert_int_equal(d.idx, 7);
	assert_int_equal(d.status, QSTATE_DEFERRED);
	assert_int_equal(d.attempts, 3);
	assert_true(d.next_try == r.next_try);
	assert_true(d.last_try == r.last_try);
	assert_int_equal(d.parent, 2);
	assert_int_equal(d.flags, QSTATE_F_NOTIFIED);
	assert_string_equal(d.dsn, "4.4.1");
	assert_string_equal(d.text, "connection refused");
	assert_string_equal(d.addr, "alice@example.com");
	qstate_rcpt_free(&d);
	/* every truncation and one trailing byte are refused */
	for (size_t n = 0; n < b.len; n++) {
		assert_false(qstate_decode(b.data, n, &d, &err));
		assert_null(d.addr);
	}
	buf_putc(&b, 0);
	assert_false(qstate_decode(b.data, b.len, &d, &err));
	qstate_rcpt_free(&r);
	buf_free(&b);
	buf_free(&err);
}

static void test_decode_strict(void **state)
{
	(void)state;
	struct qstate_rcpt r, d;
	struct buf b = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	sample(&r, 1, "bob@example.com");
	qstate_encode(&r, &b);
	b.data[0] = 2;	/* version */
	assert_false(qstate_decode(b.data, b.len, &d, &err));
	b.data[0] = 1;
	b.data[1] = 'Q';	/* status */
	assert_false(qstate_decode(b.data, b.len, &d, &err));
	b.data[1] = QSTATE_SENT;
	b.data[2] = 0x80;	/* unknown flag */
	assert_false(qstate_decode(b.data, b.len, &d, &err));
	b.data[2] = 0;
	assert_true(qstate_decode(b.data, b.len, &d, &err));
	qstate_rcpt_free(&d);
	/* a parent must precede the child */
	r.parent = 1;
	buf_reset(&b);
	qstate_encode(&r, &b);
	assert_false(qstate_decode(b.data, b.len, &d, &err));
	/* NUL inside the address */
	r.parent = QSTATE_NO_PARENT;
	buf_reset(&b);
	qstate_encode(&r, &b);
	b.data[b.len - 3] = '\0';
	assert_false(qstate_decode(b.data, b.len, &d, &err));
	/* over-long text is cut when set, never stored beyond the limit */
	char *big = xmalloc(5000);
	memset(big, 'x', 4999);
	big[4999] = '\0';
	qstate_rcpt_set(&r, NULL, NULL, big);
	assert_int_equal(strlen(r.text), QSTATE_TEXT_MAX);
	free(big);
	qstate_rcpt_free(&r);
	buf_free(&b);
	buf_free(&err);
}

static void test_keys(void **state)
{
	(void)state;
	struct buf k = BUF_INIT(64);
	char id[40];
	uint32_t idx;
	assert_true(qstate_key("0ABCDEFGHIJ5", 42, &k));
	assert_string_equal(k.data, "0ABCDEFGHIJ5/000042");
	assert_true(qstate_key_parse(k.data, k.len, id, sizeof(id), &idx));
	assert_string_equal(id, "0ABCDEFGHIJ5");
	assert_int_equal(idx, 42);
	assert_false(qstate_key("bad/id", 1, &k));
	assert_false(qstate_key("0ABCDEFGHIJ5", QSTATE_IDX_MAX + 1, &k));
	assert_false(qstate_key_parse("0ABCDEFGHIJ5-000042", 19, id, sizeof(id), &idx));
	assert_false(qstate_key_parse("0ABCDEFGHIJ5/00004x", 19, id, sizeof(id), &idx));
	assert_false(qstate_key_parse("/000042", 7, id, sizeof(id), &idx));
	/* found by fuzzing: a NUL inside the ID part must not shorten it */
	assert_false(qstate_key_parse("0ABCDEFGHIJ5\0XYZ/000042", 23, id, sizeof(id), &idx));
	assert_false(qstate_key_parse("0ABCDEFGHIJ5/000042", 19, id, 5, &idx));
	buf_free(&k);
}

static bool count_ids(const char *id, void *arg)
{
	(void)id;
	(*(int *)arg)++;
	return true;
}

static void test_db(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_qstate.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], lock[300];
	snprintf(path, sizeof(path), "%s/state.lmdb", dir);
	snprintf(lock, sizeof(lock), "%s-lock", path);
	struct buf err = BUF_INIT(1024);
	struct qstate *db = qstate_open(path, true, &err);
	assert_non_null(db);

	struct qstate_rcpt recs[3];
	sample(&recs[0], 0, "a@example.com");
	sample(&recs[1], 1, "b@example.com");
	sample(&recs[2], 0, "c@example.com");
	assert_true(qstate_put(db, "0AAAAAAAAAA1", recs, 2, &err));
	assert_true(qstate_put(db, "0AAAAAAAAAA2", &recs[2], 1, &err));
	/* an ID that is a prefix of another must not see the other's records */
	assert_true(qstate_put(db, "0AAAAAAAAAA12", &recs[2], 1, &err));

	struct qstate_rcpt *list;
	size_t n;
	assert_true(qstate_get_msg(db, "0AAAAAAAAAA1", &list, &n, &err));
	assert_int_equal(n, 2);
	assert_string_equal(list[0].addr, "a@example.com");
	assert_string_equal(list[1].addr, "b@example.com");
	qstate_free_list(&list, n);

	/* replacing one record */
	recs[1].status = QSTATE_SENT;
	qstate_rcpt_set(&recs[1], NULL, "2.0.0", "delivered");
	assert_true(qstate_put(db, "0AAAAAAAAAA1", &recs[1], 1, &err));
	assert_true(qstate_get_msg(db, "0AAAAAAAAAA1", &list, &n, &err));
	assert_int_equal(n, 2);
	assert_int_equal(list[1].status, QSTATE_SENT);
	assert_string_equal(list[1].text, "delivered");
	qstate_free_list(&list, n);

	int cnt = 0;
	assert_true(qstate_foreach_id(db, count_ids, &cnt, &err));
	assert_int_equal(cnt, 3);

	assert_true(qstate_delete_msg(db, "0AAAAAAAAAA1", &err));
	assert_true(qstate_get_msg(db, "0AAAAAAAAAA1", &list, &n, &err));
	assert_int_equal(n, 0);
	assert_null(list);
	assert_true(qstate_get_msg(db, "0AAAAAAAAAA12", &list, &n, &err));
	assert_int_equal(n, 1);
	qstate_free_list(&list, n);
	assert_false(qstate_get_msg(db, "../x", &list, &n, &err));

	/* survives close and reopen (read-only sees it too) */
	qstate_close(&db);
	assert_null(db);
	db = qstate_open(path, false, &err);
	assert_non_null(db);
	cnt = 0;
	assert_true(qstate_foreach_id(db, count_ids, &cnt, &err));
	assert_int_equal(cnt, 2);
	qstate_close(&db);

	for (int i = 0; i < 3; i++)
		qstate_rcpt_free(&recs[i]);
	unlink(path);
	unlink(lock);
	rmdir(dir);
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_decode_strict),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_db),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
