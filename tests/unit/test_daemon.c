/* daemon skeleton: configuration loading, and the master protocol run in a forked child the way master runs a
 * daemon (status pipe on fd 3, listener on fd 4): busy/idle reports, maxuse, idle exit, SIGHUP during a session
 * (port closed at once, session completes), EVENT mode stop. Loopback only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

static char dir[64];

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	char path[128];
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/daemon-test-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	chmod(dir, 0755);
	snprintf(path, sizeof(path), "%s/etc", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/etc/main.cf", dir);
	write_file(path, "instance_directory = /elsewhere\nmail_owner = nobody\nlog_destination = stderr\n");
	return 0;
}

static int teardown(void **state)
{
	char cmd[160];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_config_layouts(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(4096);
	struct config *cfg = daemon_config_load(dir, &err, NULL);
	char other[96], path[160];

	assert_non_null(cfg);
	/* DIR/etc layout: -c wins over the file, and the derived directories follow it */
	assert_string_equal(config_str(cfg, "instance_directory"), dir);
	snprintf(path, sizeof(path), "%s/pid", dir);
	assert_string_equal(config_str(cfg, "pid_directory"), path);
	assert_string_equal(config_str(cfg, "mail_owner"), "nobody");
	config_free(&cfg);

	/* installed layout: DIR/main.cf names the instance directory itself */
	snprintf(other, sizeof(other), "%s/flat", dir);
	mkdir(other, 0755);
	snprintf(path, sizeof(path), "%s/main.cf", other);
	write_file(path, "instance_directory = /var/spool/elsewhere\n");
	char *p = daemon_main_cf_path(other);
	assert_string_equal(p, path);
	free(p);
	cfg = daemon_config_load(other, &err, NULL);
	assert_non_null(cfg);
	assert_string_equal(config_str(cfg, "instance_directory"), "/var/spool/elsewhere");
	assert_string_equal(config_str(cfg, "config_directory"), other);
	assert_string_equal(config_str(cfg, "queue_directory"), "/var/spool/elsewhere/queue");
	config_free(&cfg);

	/* a broken main.cf: NULL and a message naming the file */
	write_file(path, "this line has no equals sign\n");
	buf_reset(&err);
	assert_null(daemon_config_load(other, &err, NULL));
	assert_non_null(strstr(buf_cstr(&err), "main.cf"));
	unlink(path);
	/* no main.cf at all */
	buf_reset(&err);
	assert_null(daemon_config_load(other, &err, NULL));
	assert_true(err.len > 0);
	buf_free(&err);
}

/* ---- a daemon run as master runs it ---- */

static void serve_hello(int fd, const struct daemon_peer *peer, struct daemon_ctx *ctx)
{
	char line[128], in[16];
	int n = snprintf(line, sizeof(line), "hello %s %s %u %ld %d\n", ctx->service, peer->addr_text,
	                 peer->port ? 1u : 0u, (long)getpid(), ctx->argc);
	ssize_t w = write(fd, line, (size_t)n);
	(void)w;
	/* wait for the client's one byte (or EOF): lets tests hold a session open */
	ssize_t r = read(fd, in, sizeof(in));
	(void)r;
}

static const struct daemon_ops single_ops = { .name = "t", .mode = DAEMON_SINGLE, .serve = serve_hello };

struct running {
	pid_t pid;
	int status_rd;
	int port;
	int listen_fd;
};

static int listen_loopback(int *port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static void start(struct running *r, const struct daemon_ops *ops, const char *maxuse, const char *idle)
{
	int p[2];

	r->listen_fd = listen_loopback(&r->port);
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	r->pid = fork();
	assert_true(r->pid >= 0);
	if (r->pid == 0) {
		char *argv[] = { "t", "-c", dir, "-s", "svc", "-n", "1", "-m", (char *)maxuse, "-i", (char *)idle,
		                 "--", "extra", NULL };
		int l = fcntl(r->listen_fd, F_DUPFD, 10), w = fcntl(p[1], F_DUPFD, 10);
		dup2(w, DAEMON_STATUS_FD);
		dup2(l, DAEMON_LISTEN_FD);
		/* nothing else open: a stray copy of the listener would keep the port bound */
		close_range(DAEMON_LISTEN_FD + 1, ~0U, 0);
		_exit(daemon_main(13, argv, ops));
	}
	close(p[1]);
	r->status_rd = p[0];
	/* like master: the parent keeps no copy, so the port closes when the child closes it */
	close(r->listen_fd);
}

/* Next status message from the child: its state byte, or 0 on EOF/timeout. */
static int next_status(struct running *r, int timeout_ms)
{
	struct daemon_status st;
	struct pollfd pfd = { r->status_rd, POLLIN, 0 };

	if (poll(&pfd, 1, timeout_ms) <= 0)
		return 0;
	if (read(r->status_rd, &st, sizeof(st)) != (ssize_t)sizeof(st))
		return 0;
	assert_int_equal(st.pid, (uint32_t)r->pid);
	return st.state;
}

static int client(int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void read_hello(int fd, pid_t pid)
{
	char buf[256], want[128];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);

	assert_true(n > 0);
	buf[n] = '\0';
	snprintf(want, sizeof(want), "hello svc 127.0.0.1 1 %ld 1\n", (long)pid);
	assert_string_equal(buf, want);
}

static int wait_exit(pid_t pid, int seconds)
{
	int status;
	for (int i = 0; i < seconds * 20; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		usleep(50000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	fail_msg("daemon did not exit within %d s", seconds);
	return -1;
}

static void test_single_maxuse_and_status(void **state)
{
	(void)state;
	struct running r;
	int fd, st;

	start(&r, &single_ops, "2", "30");
	for (int i = 0; i < 2; i++) {
		assert_true((fd = client(r.port)) >= 0);
		read_hello(fd, r.pid);
		assert_int_equal(next_status(&r, 5000), DAEMON_STATE_BUSY);
		assert_int_equal(write(fd, "x", 1), 1);
		close(fd);
		if (i == 0)
			assert_int_equal(next_status(&r, 5000), DAEMON_STATE_IDLE);
	}
	/* maxuse 2 reached: exits without another idle report */
	st = wait_exit(r.pid, 5);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(next_status(&r, 100), 0);
	close(r.status_rd);
}

static void test_single_idle_exit(void **state)
{
	(void)state;
	struct running r;
	struct timespec t0, t1;
	int st;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	start(&r, &single_ops, "100", "1");
	st = wait_exit(r.pid, 5);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 900);
	assert_int_equal(next_status(&r, 100), 0);
	close(r.status_rd);
}

static void test_single_sighup_finishes_session(void **state)
{
	(void)state;
	struct running r;
	int fd, st;

	start(&r, &single_ops, "100", "30");
	assert_true((fd = client(r.port)) >= 0);
	read_hello(fd, r.pid);
	assert_int_equal(next_status(&r, 5000), DAEMON_STATE_BUSY);
	kill(r.pid, SIGHUP);
	/* the listener is closed at once: new connections are refused while the session goes on */
	int refused = 0;
	for (int i = 0; i < 100 && !refused; i++) {
		int c = client(r.port);
		if (c < 0)
			refused = 1;
		else {
			close(c);
			usleep(20000);
		}
	}
	assert_true(refused);
	assert_int_equal(waitpid(r.pid, &st, WNOHANG), 0);	/* still serving */
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	st = wait_exit(r.pid, 5);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	close(r.status_rd);
}

/* pre_accept says no on its second call: one session served, then the process exits without accepting the
 * waiting connection, which stays in the backlog for a fresh process */
static int pre_accept_calls;
static bool pre_accept_once(struct daemon_ctx *ctx)
{
	(void)ctx;
	return ++pre_accept_calls == 1;
}

static const struct daemon_ops pre_accept_ops = { .name = "t", .mode = DAEMON_SINGLE, .serve = serve_hello,
	                                          .pre_accept = pre_accept_once };

static void test_single_pre_accept_exit(void **state)
{
	(void)state;
	struct running r;
	int fd, fd2, st;
	char b[8];

	start(&r, &pre_accept_ops, "100", "30");
	assert_true((fd = client(r.port)) >= 0);
	read_hello(fd, r.pid);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_true((fd2 = client(r.port)) >= 0);
	st = wait_exit(r.pid, 5);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	/* never served: no hello; the port closed with the process, so the connection ends unanswered */
	assert_true(read(fd2, b, sizeof(b)) <= 0);
	close(fd2);
	close(r.status_rd);
}

static void test_single_sigterm_when_idle(void **state)
{
	(void)state;
	struct running r;
	int st;

	start(&r, &single_ops, "100", "30");
	usleep(200000);
	kill(r.pid, SIGTERM);
	st = wait_exit(r.pid, 5);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	close(r.status_rd);
}

static void test_master_gone(void **state)
{
	(void)state;
	struct running r;
	int st;

	start(&r, &single_ops, "100", "30");
	close(r.status_rd);	/* what the child sees when master dies */
	st = wait_exit(r.pid, 5);
	assert_true(WIFEXITED(st));
}

/* ---- EVENT mode ---- */

static struct event *ev_accept;

static void ev_on_accept(evutil_socket_t lfd, short what, void *arg)
{
	(void)what;
	(void)arg;
	int fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		return;
	daemon_report(DAEMON_STATE_BUSY);
	ssize_t w = write(fd, "event\n", 6);
	(void)w;
	close(fd);
	daemon_report(DAEMON_STATE_IDLE);
}

static void ev_start(struct daemon_ctx *ctx)
{
	assert_int_equal(ctx->nlisten, 1);
	ev_accept = event_new(ctx->base, ctx->listen_fds[0], EV_READ | EV_PERSIST, ev_on_accept, ctx);
	event_add(ev_accept, NULL);
}

static void ev_stop(struct daemon_ctx *ctx)
{
	event_free(ev_accept);
	event_base_loopexit(ctx->base, NULL);
	_exit(daemon_stopping() ? 42 : 43);
}

static const struct daemon_ops event_ops = { .name = "t", .mode = DAEMON_EVENT, .start = ev_start, .stop = ev_stop };

static void test_event_mode(void **state)
{
	(void)state;
	struct running r;
	char buf[16];
	int fd, st;

	start(&r, &event_ops, "0", "0");
	assert_true((fd = client(r.port)) >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 6);
	close(fd);
	assert_int_equal(next_status(&r, 5000), DAEMON_STATE_BUSY);
	assert_int_equal(next_status(&r, 5000), DAEMON_STATE_IDLE);
	kill(r.pid, SIGTERM);
	st = wait_exit(r.pid, 5);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 42);
	close(r.status_rd);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	pid_t pid;
	int st;

	fflush(NULL);
	if ((pid = fork()) == 0) {
		char *argv[] = { "t", "-s", "svc", NULL };	/* no -c */
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 2);
		_exit(daemon_main(3, argv, &single_ops));
	}
	st = wait_exit(pid, 5);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	if ((pid = fork()) == 0) {
		char *argv[] = { "t", "-c", dir, "-s", "svc", "-n", "1", "-t", "sometimes", NULL };
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 2);
		_exit(daemon_main(9, argv, &single_ops));
	}
	st = wait_exit(pid, 5);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_layouts),
		cmocka_unit_test(test_single_maxuse_and_status),
		cmocka_unit_test(test_single_idle_exit),
		cmocka_unit_test(test_single_sighup_finishes_session),
		cmocka_unit_test(test_single_pre_accept_exit),
		cmocka_unit_test(test_single_sigterm_when_idle),
		cmocka_unit_test(test_master_gone),
		cmocka_unit_test(test_event_mode),
		cmocka_unit_test(test_bad_arguments),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("daemon", tests, setup, teardown);
}
