/* qmgr/local protocol tables: requests and replies round-trip through the strict decoder; required fields,
 * unknown types and the wrong direction are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "ipc.h"
#include "qproto.h"

static struct ipc_msg *roundtrip(const struct ipc_proto *proto, struct ipc_msg *m)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	struct ipc_msg *out = NULL;
	assert_true(ipc_msg_encode(m, &b));
	if (!ipc_frame_decode(proto, b.data, b.len, IPC_MAX_FRAME_DEFAULT, -1, &out, &err))
		out = NULL;
	buf_free(&b);
	buf_free(&err);
	return out;
}

static void test_deliver(void **state)
{
	(void)state;
	struct ipc_msg *m = ipc_msg_new(LP_DELIVER), *d;
	ipc_put_str(m, LP_F_QUEUE_ID, "0ABCDEFGHIJ1");
	ipc_put_str(m, LP_F_DIR, "active");
	ipc_put_str(m, LP_F_SENDER, "");
	ipc_put_u32(m, LP_F_IDX, 0);
	ipc_put_str(m, LP_F_RCPT, "a@example.test");
	ipc_put_u32(m, LP_F_IDX, 3);
	ipc_put_str(m, LP_F_RCPT, "b@example.test");
	d = roundtrip(&qproto_local, m);
	assert_non_null(d);
	assert_int_equal(ipc_count(d, LP_F_RCPT), 2);
	struct ipc_iter it;
	uint32_t idx;
	ipc_iter_init(&it, d, LP_F_IDX);
	assert_true(ipc_iter_u32(&it, &idx));
	assert_true(ipc_iter_u32(&it, &idx));
	assert_int_equal(idx, 3);
	ipc_msg_free(&d);
	/* a deliver request is not something qmgr accepts */
	assert_null(roundtrip(&qproto_qmgr, m));
	ipc_msg_free(&m);
	/* no recipient: refused */
	m = ipc_msg_new(LP_DELIVER);
	ipc_put_str(m, LP_F_QUEUE_ID, "0ABCDEFGHIJ1");
	ipc_put_str(m, LP_F_DIR, "active");
	ipc_put_str(m, LP_F_SENDER, "");
	assert_null(roundtrip(&qproto_local, m));
	ipc_msg_free(&m);
}

static void test_result_and_admin(void **state)
{
	(void)state;
	struct ipc_msg *m = ipc_msg_new(LP_RESULT), *d;
	ipc_put_u32(m, LP_F_R_IDX, 0);
	ipc_put_u32(m, LP_F_R_CODE, 2);
	ipc_put_str(m, LP_F_R_DSN, "2.0.0");
	ipc_put_str(m, LP_F_R_TEXT, "delivered to maildir");
	ipc_put_u32(m, LP_F_A_IDX, 0);
	ipc_put_str(m, LP_F_A_ADDR, "x@remote.test");
	ipc_put_u32(m, LP_F_F_IDX, 0);
	ipc_put_str(m, LP_F_F_ADDR, "|exit 67");
	ipc_put_str(m, LP_F_F_DSN, "5.1.1");
	ipc_put_str(m, LP_F_F_TEXT, "command exited 67 (expanded from <l@local.test>)");
	d = roundtrip(&qproto_local_reply, m);
	assert_non_null(d);
	const char *s;
	assert_true(ipc_get_str(d, LP_F_A_ADDR, &s, NULL));
	assert_string_equal(s, "x@remote.test");
	assert_true(ipc_get_str(d, LP_F_F_ADDR, &s, NULL));
	assert_string_equal(s, "|exit 67");
	assert_true(ipc_get_str(d, LP_F_F_DSN, &s, NULL));
	assert_string_equal(s, "5.1.1");
	ipc_msg_free(&d);
	ipc_msg_free(&m);
	m = ipc_msg_new(QP_DELETE);	/* an ID or a selection; qmgr refuses a delete with neither */
	ipc_put_str(m, QP_F_SELECT, "deferred");
	d = roundtrip(&qproto_qmgr, m);
	assert_non_null(d);
	ipc_msg_free(&d);
	ipc_msg_free(&m);
	m = ipc_msg_new(QP_DELETE);
	ipc_put_u32(m, QP_F_SELECT, 1);	/* a selection is a string */
	assert_null(roundtrip(&qproto_qmgr, m));
	ipc_msg_free(&m);
	m = ipc_msg_new(QP_DELETE);
	ipc_put_str(m, QP_F_ID, "0ABCDEFGHIJ1");
	d = roundtrip(&qproto_qmgr, m);
	assert_non_null(d);
	ipc_msg_free(&d);
	ipc_msg_free(&m);
	m = ipc_msg_new(QP_FLUSH);	/* flush without one means all */
	d = roundtrip(&qproto_qmgr, m);
	assert_non_null(d);
	ipc_msg_free(&d);
	ipc_msg_free(&m);
	m = ipc_msg_new(QP_DONE);
	ipc_put_u32(m, QP_F_COUNT, 4);
	d = roundtrip(&qproto_qmgr_reply, m);
	assert_non_null(d);
	ipc_msg_free(&d);
	ipc_msg_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deliver),
		cmocka_unit_test(test_result_and_admin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
