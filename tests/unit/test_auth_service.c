/* auth service: throttled replies are held on timers without blocking other clients, and released on stop;
 * a real ipc_server and ipc_client on a loopback UNIX socket in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../auth/service.h"
#include "accounts.h"
#include "accounts_auth.h"
#include "log.h"

struct answer {
	int done;
	enum accounts_auth_status st;
	double at;
	char token[64];
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_reply(struct ipc_msg *reply, const char *err, void *arg)
{
	struct answer *a = arg;
	struct accounts_user u;
	(void)err;
	a->done = 1;
	a->at = now();
	a->st = reply ? accounts_auth_parse_result(reply, &u, NULL) : ACCOUNTS_AUTH_TEMPFAIL;
	if (reply && u.login_token)
		snprintf(a->token, sizeof a->token, "%s", u.login_token);
	if (reply)
		accounts_user_free(&u);
	ipc_msg_free(&reply);
}

static void on_close(const char *why, void *arg)
{
	(void)why;
	(void)arg;
}

/* Run the loop until a is answered or limit seconds pass. */
static void run_until(struct event_base *base, struct answer *a, double limit)
{
	double end = now() + limit;
	struct timeval tick = { 0, 20000 };
	while ((a == NULL || !a->done) && now() < end) {
		event_base_loopexit(base, &tick);
		event_base_dispatch(base);
	}
}

static void send_verify(struct ipc_client *c, const char *user, const char *pw, const char *rip, struct answer *a)
{
	struct accounts_auth_request rq = { .mech = "PLAIN", .user = user, .password = pw, .rip = rip,
	                                    .loopback = true, .service = "test" };
	memset(a, 0, sizeof *a);
	assert_true(ipc_client_request(c, accounts_auth_verify_msg(&rq), 20000, on_reply, a));
}

static void test_held_replies(void **state)
{
	(void)state;
	char dir[64], db[128], sock[128], lock[160];
	struct buf err = BUF_INIT(1024);
	struct accounts_opts o = { .mail_directory = "/m" };
	struct answer a1, a2, a3;
	double t0;

	snprintf(dir, sizeof dir, "/tmp/test_auth_service.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(db, sizeof db, "%s/accounts.lmdb", dir);
	snprintf(lock, sizeof lock, "%s-lock", db);
	snprintf(sock, sizeof sock, "%s/auth", dir);
	struct accounts *adb = accounts_open(db, true, &err);
	assert_non_null(adb);
	assert_int_equal(accounts_add(adb, "a@x.org", "pw", &o, &err), ACCOUNTS_OK);
	accounts_close(&adb);

	struct auth_settings set = { .db_path = db };
	set.throttle.max_delay = 30;
	set.throttle.decay = 600;
	set.throttle.max_entries = 100;
	struct auth_server *srv = auth_server_new(&set);
	struct event_base *base = event_base_new();
	struct auth_service *svc = auth_service_new(base, srv);
	int lfd = ipc_listen(sock, 0600, 16);
	assert_true(lfd >= 0);
	struct ipc_server_opts so = { .proto = &accounts_auth_proto, .handler = auth_service_handler, .arg = svc };
	struct ipc_server *is = ipc_server_new(base, lfd, &so);
	assert_non_null(is);
	int fd = ipc_connect(sock, 1000);
	assert_true(fd >= 0);
	struct ipc_client *c = ipc_client_new(base, fd, &accounts_auth_proto, 0, on_close, NULL);

	/* password checks run off the loop: a lookup sent behind six of them is answered before the last one */
	struct answer many[6], look;
	for (size_t i = 0; i < 6; i++)
		send_verify(c, "a@x.org", "pw", "192.0.2.77", &many[i]);
	memset(&look, 0, sizeof look);
	assert_true(ipc_client_request(c, accounts_auth_lookup_msg("a@x.org"), 20000, on_reply, &look));
	for (size_t i = 0; i < 6; i++)
		run_until(base, &many[i], 10);
	run_until(base, &look, 5);
	double last = 0;
	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(many[i].st, ACCOUNTS_AUTH_OK);
		last = many[i].at > last ? many[i].at : last;
	}
	assert_true(look.done);
	assert_true(look.at < last);

	/* first failure: answered at once */
	t0 = now();
	send_verify(c, "a@x.org", "bad", "192.0.2.1", &a1);
	run_until(base, &a1, 5);
	assert_true(a1.done);
	assert_int_equal(a1.st, ACCOUNTS_AUTH_FAIL);
	assert_true(a1.at - t0 < 0.9);

	/* second: held for a second; meanwhile another client's lookup is answered at once */
	t0 = now();
	send_verify(c, "a@x.org", "bad", "192.0.2.1", &a2);
	memset(&a3, 0, sizeof a3);
	assert_true(ipc_client_request(c, accounts_auth_lookup_msg("a@x.org"), 20000, on_reply, &a3));
	run_until(base, &a3, 5);
	assert_true(a3.done);
	assert_int_equal(a3.st, ACCOUNTS_AUTH_OK);
	assert_false(a2.done);
	/* the hash check runs on a worker thread: the reply is held once it is back */
	run_until(base, NULL, 0.3);
	assert_false(a2.done);
	assert_int_equal(auth_service_held(svc), 1);
	run_until(base, &a2, 5);
	assert_true(a2.done);
	assert_int_equal(a2.st, ACCOUNTS_AUTH_FAIL);
	assert_true(a2.at - t0 >= 0.9);
	assert_int_equal(auth_service_held(svc), 0);

	/* third would wait 2 s: a stop releases it at once, and later requests are not delayed */
	t0 = now();
	send_verify(c, "a@x.org", "pw", "192.0.2.1", &a1);
	run_until(base, NULL, 0.2);
	assert_false(a1.done);
	assert_int_equal(auth_service_held(svc), 1);
	auth_service_release_all(svc);
	run_until(base, &a1, 5);
	assert_true(a1.done);
	assert_int_equal(a1.st, ACCOUNTS_AUTH_OK);
	assert_true(a1.at - t0 < 1.5);
	send_verify(c, "b@x.org", "bad", "192.0.2.1", &a2);
	send_verify(c, "b@x.org", "bad", "192.0.2.1", &a3);
	run_until(base, &a3, 5);
	run_until(base, &a2, 5);	/* two hash threads: either may finish first */
	assert_true(a2.done && a3.done);
	assert_true(a3.at - t0 < 1.5);

	/* a held reply whose client went away is dropped without harm */
	auth_service_free(&svc);
	svc = auth_service_new(base, srv);
	ipc_server_free(&is);
	ipc_client_free(&c);
	so.arg = svc;
	is = ipc_server_new(base, lfd, &so);
	fd = ipc_connect(sock, 1000);
	c = ipc_client_new(base, fd, &accounts_auth_proto, 0, on_close, NULL);
	send_verify(c, "c@x.org", "bad", "192.0.2.9", &a1);
	run_until(base, &a1, 5);
	send_verify(c, "c@x.org", "bad", "192.0.2.9", &a2);
	run_until(base, NULL, 0.2);
	assert_true(auth_service_held(svc) >= 1);
	ipc_client_free(&c);	/* a2's callback runs with "client closed" */
	auth_service_release_all(svc);
	run_until(base, NULL, 0.2);

	ipc_server_free(&is);
	auth_service_free(&svc);
	auth_server_free(&srv);
	event_base_free(base);
	close(lfd);
	unlink(sock);
	unlink(db);
	unlink(lock);
	rmdir(dir);
	buf_free(&err);
}

/* A login token opens a mailbox as its owner: only root may redeem one, even where others may ask for lookups. */
static void test_redeem_only_by_root(void **state)
{
	(void)state;
	char dir[64], db[128], sock[128], lock[160];
	struct buf err = BUF_INIT(1024);
	struct accounts_opts o = { .mail_directory = "/m" };
	struct answer a;
	const uid_t nobody = 65534;

	if (geteuid() != 0)
		skip();
	snprintf(dir, sizeof dir, "/tmp/test_auth_redeem.XXXXXX");
	assert_non_null(mkdtemp(dir));
	chmod(dir, 0755);
	snprintf(db, sizeof db, "%s/accounts.lmdb", dir);
	snprintf(sock, sizeof sock, "%s/auth", dir);
	snprintf(lock, sizeof lock, "%s-lock", db);
	struct accounts *adb = accounts_open(db, true, &err);
	assert_non_null(adb);
	assert_int_equal(accounts_add(adb, "a@x.org", "pw", &o, &err), ACCOUNTS_OK);
	accounts_close(&adb);
	struct auth_settings set = { .db_path = db };
	set.throttle.max_delay = 30;
	set.throttle.decay = 600;
	set.throttle.max_entries = 100;
	struct auth_server *srv = auth_server_new(&set);
	struct event_base *base = event_base_new();
	struct auth_service *svc = auth_service_new(base, srv);
	int lfd = ipc_listen(sock, 0666, 16);
	assert_true(lfd >= 0);
	struct ipc_peer_policy pol = { .allow_root = true, .uids = &nobody, .nuids = 1 };
	struct ipc_server_opts so = { .proto = &accounts_auth_proto, .handler = auth_service_handler, .arg = svc,
	                              .policy = &pol };
	struct ipc_server *is = ipc_server_new(base, lfd, &so);
	int fd = ipc_connect(sock, 1000);
	struct ipc_client *c = ipc_client_new(base, fd, &accounts_auth_proto, 0, on_close, NULL);
	struct accounts_auth_request rq = { .mech = "PLAIN", .user = "a@x.org", .password = "pw", .rip = "192.0.2.1",
	                                    .loopback = true, .want_token = true, .service = "test" };
	memset(&a, 0, sizeof a);
	assert_true(ipc_client_request(c, accounts_auth_verify_msg(&rq), 20000, on_reply, &a));
	run_until(base, &a, 5);
	assert_int_equal(a.st, ACCOUNTS_AUTH_OK);
	assert_int_equal(strlen(a.token), 32);
	char token[64];
	snprintf(token, sizeof token, "%s", a.token);

	/* as nobody: refused, and the token still works for root afterwards */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct accounts_user u;
		struct buf e = BUF_INIT(1024);
		if (setgid(nobody) != 0 || setuid(nobody) != 0)
			_exit(3);
		_exit(accounts_auth_redeem(sock, token, 5000, &u, &e) == ACCOUNTS_AUTH_TEMPFAIL ? 0 : 1);
	}
	int status = 0;
	while (waitpid(pid, &status, WNOHANG) == 0)
		run_until(base, NULL, 0.05);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	struct ipc_msg *m = ipc_msg_new(ACCOUNTS_AUTH_REDEEM);
	ipc_put_str(m, ACCOUNTS_AUTH_TAG_TOKEN, token);
	memset(&a, 0, sizeof a);
	assert_true(ipc_client_request(c, m, 20000, on_reply, &a));
	run_until(base, &a, 5);
	assert_int_equal(a.st, ACCOUNTS_AUTH_OK);

	ipc_client_free(&c);
	ipc_server_free(&is);
	auth_service_free(&svc);
	auth_server_free(&srv);
	event_base_free(base);
	close(lfd);
	unlink(sock);
	unlink(db);
	unlink(lock);
	rmdir(dir);
	buf_free(&err);
}

int main(void)
{
	log_init("test");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_held_replies),
		cmocka_unit_test(test_redeem_only_by_root),
	};
	return cmocka_run_group_tests_name("auth_service", tests, NULL, NULL);
}
