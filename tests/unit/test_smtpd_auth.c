/* smtpd's login check against the auth daemon's own request logic (auth/server.c) behind a real UNIX socket:
 * right and wrong passwords, the canonical name coming back, plaintext refused without TLS, a daemon that is
 * not there (temporary failure, never "wrong password"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "accounts.h"
#include "accounts_auth.h"
#include "buf.h"
#include "ipc.h"
#include "log.h"
#include "../../auth/auth.h"
#include "../../smtpd/smtpd.h"

struct afx {
	char dir[64];
	char db[128];
	char sock[128];
	pid_t pid;
};

/* A one-process auth daemon: answers requests one connection at a time until killed. */
static void serve(struct afx *f, int lfd)
{
	struct auth_settings set;
	struct auth_server *srv;

	memset(&set, 0, sizeof(set));
	set.db_path = f->db;
	set.throttle.max_delay = 0;
	set.throttle.decay = 60;
	set.throttle.max_entries = 100;
	srv = auth_server_new(&set);
	for (;;) {
		int c = accept(lfd, NULL, NULL);
		struct ipc_msg *req = NULL;
		struct buf err = BUF_INIT(1024);
		unsigned delay = 0;
		if (c < 0)
			_exit(1);
		while (ipc_recv(c, &accounts_auth_proto, IPC_MAX_FRAME_DEFAULT, 5000, &req, &err) == 1) {
			struct ipc_msg *reply = auth_server_handle(srv, req, &delay);
			ipc_send(c, reply, 5000, &err);
			ipc_msg_free(&reply);
			ipc_msg_free(&req);
		}
		buf_free(&err);
		close(c);
	}
}

static void afx_init(struct afx *f, bool start)
{
	struct buf err = BUF_INIT(1024);
	struct accounts_opts o;

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/smtpd-auth-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/accounts.lmdb", f->dir);
	snprintf(f->sock, sizeof(f->sock), "%s/auth", f->dir);
	struct accounts *db = accounts_open(f->db, true, &err);
	assert_non_null(db);
	memset(&o, 0, sizeof(o));
	o.mail_directory = f->dir;
	o.scheme = "$6$";
	assert_int_equal(accounts_add(db, "Alice@Example.test", "right", &o, &err), ACCOUNTS_OK);
	accounts_close(&db);
	buf_free(&err);
	smtpd_auth_set_daemon(f->sock, 5000);
	if (!start)
		return;
	int lfd = ipc_listen(f->sock, 0600, 4);
	assert_true(lfd >= 0);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		log_to_file("/dev/null");
		serve(f, lfd);
	}
	close(lfd);
}

static void afx_done(struct afx *f)
{
	char cmd[128];

	if (f->pid > 0) {
		kill(f->pid, SIGKILL);
		waitpid(f->pid, NULL, 0);
	}
	smtpd_auth_set_daemon(NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
}

static enum smtpd_verdict check(const char *mech, const char *user, const char *pw, bool enc, bool loop,
                                struct buf *canon)
{
	struct smtpd_auth_req rq = { mech, user, pw, "192.0.2.9", enc, loop, false };
	buf_reset(canon);
	return smtpd_auth_check_daemon(&rq, canon);
}

static void test_verify_through_daemon(void **state)
{
	(void)state;
	struct afx f;
	struct buf canon = BUF_INIT(512);
	afx_init(&f, true);
	assert_int_equal(check("PLAIN", "alice@example.test", "right", true, false, &canon), SMTPD_OK);
	assert_string_equal(buf_cstr(&canon), "alice@example.test");
	assert_int_equal(check("LOGIN", "ALICE@example.TEST", "right", false, true, &canon), SMTPD_OK);
	assert_string_equal(buf_cstr(&canon), "alice@example.test");	/* the account's own name */
	assert_int_equal(check("PLAIN", "alice@example.test", "wrong", true, false, &canon), SMTPD_REJECT);
	assert_int_equal(check("PLAIN", "nobody@example.test", "right", true, false, &canon), SMTPD_REJECT);
	/* the daemon refuses a plaintext password that crossed the network in the clear, whatever smtpd offered */
	assert_int_equal(check("PLAIN", "alice@example.test", "right", false, false, &canon), SMTPD_REJECT);
	buf_free(&canon);
	afx_done(&f);
}

static void test_daemon_down_is_temporary(void **state)
{
	(void)state;
	struct afx f;
	struct buf canon = BUF_INIT(512);
	afx_init(&f, false);
	assert_int_equal(check("PLAIN", "alice@example.test", "right", true, false, &canon), SMTPD_TEMPFAIL);
	smtpd_auth_set_daemon(NULL, 0);
	assert_int_equal(check("PLAIN", "alice@example.test", "right", true, false, &canon), SMTPD_TEMPFAIL);
	buf_free(&canon);
	afx_done(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_through_daemon),
		cmocka_unit_test(test_daemon_down_is_temporary),
	};
	signal(SIGPIPE, SIG_IGN);
	log_init("test");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
