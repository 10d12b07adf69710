/* master's service table merge (start and reload) without forking: which services exist, which sockets stay,
 * which are rebound or closed, which are skipped, and what the status report says. No process is started: the
 * test table has no resident service and no client connects. Loopback only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../master/master.h"
#include "alloc.h"

/* master/main.c owns this in the real program */
struct master_state master;

static char dir[64];

static int free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static bool connects(int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static struct svctab *table(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct svctab *table(const char *fmt, ...)
{
	struct buf text = BUF_INIT(4096), err = BUF_INIT(4096);
	struct svctab *tab = NULL;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&text, fmt, ap);
	va_end(ap);
	if (!svctab_parse(text.data, text.len, "t.cf", &tab, &err))
		fail_msg("%s", buf_cstr(&err));
	buf_free(&text);
	buf_free(&err);
	return tab;
}

static void reload(struct svctab *tab)
{
	master.old_tabs = xreallocarray(master.old_tabs, master.nold_tabs + 1, sizeof(*master.old_tabs));
	master.old_tabs[master.nold_tabs++] = master.tab;
	master.tab = tab;
	master_services_sync();
}

static struct master_service *find(const char *name)
{
	for (struct master_service *s = master.services; s; s = s->next)
		if (!s->retired && strcmp(s->e->name, name) == 0)
			return s;
	return NULL;
}

static int setup(void **state)
{
	char path[128];
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sync-test-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/echo", dir);
	int fd = open(path, O_WRONLY | O_CREAT, 0755);	/* only its presence and mode matter: nothing runs */
	if (fd < 0)
		return -1;
	close(fd);
	memset(&master, 0, sizeof(master));
	master.dir = dir;
	master.cfg = config_new();
	config_set(master.cfg, "instance_directory", dir, "test");
	config_set(master.cfg, "daemon_directory", dir, "test");
	config_set(master.cfg, "private_directory", dir, "test");
	config_set(master.cfg, "mail_owner", "root", "test");
	master.base = event_base_new();
	master.throttle_time = 60;
	master.stop_timeout = 5;
	master.startup_failures = 3;
	master.foreground = true;	/* warnings are logged, not deferred */
	return master.base ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	master_services_free_all();
	svctab_free(&master.tab);
	config_free(&master.cfg);
	event_base_free(master.base);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_start_and_reload(void **state)
{
	(void)state;
	int a = free_port(), b = free_port(), c = free_port();
	struct buf st = BUF_INIT(BUF_NOLIMIT);

	master.tab = table("one inet 127.0.0.1:%d - - - 2 1 1 echo\n"
	                   "two inet 127.0.0.1:%d - - - 2 1 1 echo\n"
	                   "missing inet 127.0.0.1:%d - - - 2 1 1 smtpd\n"
	                   "sock unix sock - - - 2 1 1 echo\n", a, b, c);
	master_services_sync();
	assert_int_equal(master.gen, 1);
	assert_non_null(find("one"));
	assert_non_null(find("two"));
	assert_non_null(find("sock"));
	assert_null(find("missing"));
	assert_true(connects(a) && connects(b));
	assert_false(connects(c));	/* a skipped service's port is not bound */
	assert_true(find("one")->watching);	/* no idle process: a connection must start one */
	assert_string_equal(find("one")->user, "root");
	int fd_two = find("two")->fds[0];

	master_status_format(&st);
	assert_non_null(strstr(buf_cstr(&st), "\nservice name=one type=inet state=running listen=127.0.0.1:"));
	assert_non_null(strstr(buf_cstr(&st), "procs=0 busy=0 idle=0 maxproc=2 restarts=0 forks=0 resident=no\n"));
	assert_non_null(strstr(buf_cstr(&st), "service name=sock type=unix"));
	/* services appear in master.cf order */
	assert_true(strstr(buf_cstr(&st), "name=one") < strstr(buf_cstr(&st), "name=two"));
	buf_reset(&st);

	/* reload: one moves to port c, two is unchanged, sock is removed */
	reload(table("one inet 127.0.0.1:%d - - - 2 1 1 echo\n"
	             "two inet 127.0.0.1:%d - - - 3 1 1 echo\n", c, b));
	assert_int_equal(master.gen, 2);
	assert_false(connects(a));
	assert_true(connects(c));
	assert_true(connects(b));
	assert_int_equal(find("two")->fds[0], fd_two);	/* same socket, not rebound */
	assert_int_equal(find("two")->e->maxproc, 3);	/* but the new entry */
	assert_null(find("sock"));	/* no children: freed at once */
	char path[128];
	struct stat sb;
	snprintf(path, sizeof(path), "%s/sock", dir);
	assert_int_equal(lstat(path, &sb), -1);	/* its socket file is gone */

	/* reload where a port cannot be had: that service is dropped, the rest keeps running */
	int blocker = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in sa;
	int d = free_port();
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)d);
	setsockopt(blocker, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(blocker, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(blocker, 1), 0);
	reload(table("one inet 127.0.0.1:%d - - - 2 1 1 echo\n"
	             "two inet 127.0.0.1:%d - - - 3 1 1 echo\n", d, b));
	close(blocker);
	assert_null(find("one"));
	assert_non_null(find("two"));
	assert_true(connects(b));
	master_status_format(&st);
	assert_null(strstr(buf_cstr(&st), "name=one"));
	buf_free(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_and_reload),
	};
	return cmocka_run_group_tests_name("master_sync", tests, setup, teardown);
}
