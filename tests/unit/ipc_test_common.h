/* Shared by the ipc unit tests (test_ipc.c, test_ipc_event.c): a test protocol table and small helpers.
 * Included, not compiled on its own. */
#ifndef POSTERN_TEST_IPC_COMMON_H
#define POSTERN_TEST_IPC_COMMON_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "ipc.h"
#include "log.h"

enum { T_PING = 1, T_PONG = 2, T_DELIVER = 3, T_FD = 4, T_SLOW = 5, T_QUIT = 6 };
enum { F_SEQ = 1, F_TEXT = 2, F_UID = 3 };
enum { D_QID = 1, D_SIZE = 2, D_RCPT = 3, D_FLAGS = 4, D_BLOB = 5 };

static const struct ipc_field_def ping_fields[] = {
	{ F_SEQ, IPC_T_U32, IPC_REQUIRED, "seq" },
	{ F_TEXT, IPC_T_STR, 0, "text" },
	{ F_UID, IPC_T_U32, 0, "uid" },
	{ 0, 0, 0, NULL },
};
static const struct ipc_field_def deliver_fields[] = {
	{ D_QID, IPC_T_STR, IPC_REQUIRED, "queue_id" },
	{ D_SIZE, IPC_T_U64, IPC_REQUIRED, "size" },
	{ D_RCPT, IPC_T_STR, IPC_REQUIRED | IPC_REPEATED, "rcpt" },
	{ D_FLAGS, IPC_T_U32, 0, "flags" },
	{ D_BLOB, IPC_T_BYTES, IPC_REPEATED, "blob" },
	{ 0, 0, 0, NULL },
};
static const struct ipc_msg_def test_msgs[] = {
	{ T_PING, "ping", ping_fields, 0 },
	{ T_PONG, "pong", ping_fields, 0 },
	{ T_DELIVER, "deliver", deliver_fields, 0 },
	{ T_FD, "fd", NULL, IPC_MSG_FD },
	{ T_SLOW, "slow", NULL, 0 },
	{ T_QUIT, "quit", NULL, 0 },
	{ 0, NULL, NULL, 0 },
};
static const struct ipc_proto test_proto = { "test", test_msgs };

/* ---- helpers ---- */

/* assert_true with the error text shown on failure */
#define assert_ok(expr, err) do { if (!(expr)) fail_msg("%s: %s", #expr, buf_cstr(err)); } while (0)

static inline struct buf encode(struct ipc_msg *m)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(ipc_msg_encode(m, &b));
	return b;
}

static inline struct ipc_msg *deliver_msg(void)
{
	struct ipc_msg *m = ipc_msg_new(T_DELIVER);
	static const uint8_t blob[] = { 0, 1, 2, 0xff, 0 };

	m->id = 77;
	ipc_put_str(m, D_QID, "4AbC9");
	ipc_put_u64(m, D_SIZE, UINT64_MAX);
	ipc_put_str(m, D_RCPT, "a@example.org");
	ipc_put_u32(m, D_FLAGS, UINT32_MAX);
	ipc_put_str(m, D_RCPT, "");
	ipc_put_bytes(m, D_BLOB, blob, sizeof(blob));
	ipc_put_bytes(m, D_BLOB, NULL, 0);
	ipc_put_strn(m, D_RCPT, "c@example.org!!", 13);
	return m;
}

/* Decode b and expect failure with needle in the message. */
static inline void expect_reject(const void *p, size_t len, const char *needle)
{
	struct buf err = BUF_INIT(4096);
	struct ipc_msg *m = (struct ipc_msg *)1;

	assert_false(ipc_frame_decode(&test_proto, p, len, IPC_MAX_FRAME_DEFAULT, -1, &m, &err));
	assert_null(m);
	if (strstr(buf_cstr(&err), needle) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", buf_cstr(&err), needle);
	buf_free(&err);
}

static inline void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char tmpdir[64];

static inline int setup_tmp(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_ipc.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static inline int teardown_tmp(void **state)
{
	char path[128];
	(void)state;
	snprintf(path, sizeof(path), "%s/sock", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	unlink(path);
	return rmdir(tmpdir);
}

static inline void sock_path(char *out, size_t n)
{
	snprintf(out, n, "%s/sock", tmpdir);
}

#endif
