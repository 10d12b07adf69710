/* master's listener binding: "*:port" is two sockets (IPv6 with V6ONLY + IPv4), addresses bind only where asked,
 * unix sockets replace a stale socket but never another file, and a failure leaves nothing open. Loopback only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../master/master.h"

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

static int connects(int family, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = socket(family, SOCK_STREAM, 0), ok;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		in->sin_port = htons((uint16_t)port);
		len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		in6->sin6_port = htons((uint16_t)port);
		len = sizeof(*in6);
	}
	ok = connect(fd, (struct sockaddr *)&ss, len) == 0;
	close(fd);
	return ok;
}

static bool have_ipv6(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 in6;
	bool ok;

	if (fd < 0)
		return false;
	memset(&in6, 0, sizeof(in6));
	in6.sin6_family = AF_INET6;
	in6.sin6_addr = in6addr_loopback;
	ok = bind(fd, (struct sockaddr *)&in6, sizeof(in6)) == 0;
	close(fd);
	return ok;
}

static void test_wildcard_binds_both_families(void **state)
{
	(void)state;
	int port = free_port(), *fds = NULL, one = 0;
	size_t n = 0;
	socklen_t len = sizeof(one);
	struct buf err = BUF_INIT(1024);
	struct svctab *tab = table("w inet *:%d - - - 1 1 1 echo\n", port);

	assert_true(master_listen_bind(&tab->entries[0], "/nonexistent", &fds, &n, &err));
	if (!have_ipv6()) {
		assert_int_equal(n, 1);
	} else {
		assert_int_equal(n, 2);
		/* the IPv6 socket comes first and is V6ONLY, so the IPv4 one can share the port */
		assert_int_equal(getsockopt(fds[0], IPPROTO_IPV6, IPV6_V6ONLY, &one, &len), 0);
		assert_int_equal(one, 1);
		assert_true(connects(AF_INET6, port));
	}
	assert_true(connects(AF_INET, port));
	for (size_t i = 0; i < n; i++)
		assert_true(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
	master_listen_close(&tab->entries[0], "/nonexistent", fds, n);
	free(fds);
	assert_false(connects(AF_INET, port));
	svctab_free(&tab);
	buf_free(&err);
}

static void test_specific_address_and_failure_cleanup(void **state)
{
	(void)state;
	int port = free_port(), port2 = free_port(), *fds = NULL, *fds2 = NULL;
	size_t n = 0, n2 = 0;
	struct buf err = BUF_INIT(1024);
	struct svctab *tab = table("a inet 127.0.0.1:%d - - - 1 1 1 echo\n", port);
	/* second listener clashes with the first socket: the whole service fails and its first socket is closed */
	struct svctab *tab2 = table("b inet 127.0.0.1:%d,127.0.0.1:%d - - - 1 1 1 echo\n", port2, port);

	assert_true(master_listen_bind(&tab->entries[0], "/nonexistent", &fds, &n, &err));
	assert_int_equal(n, 1);
	assert_false(master_listen_bind(&tab2->entries[0], "/nonexistent", &fds2, &n2, &err));
	assert_non_null(strstr(buf_cstr(&err), "cannot bind"));
	assert_false(connects(AF_INET, port2));
	master_listen_close(&tab->entries[0], "/nonexistent", fds, n);
	free(fds);
	svctab_free(&tab);
	svctab_free(&tab2);
	buf_free(&err);
}

static void test_unix_sockets(void **state)
{
	(void)state;
	char dir[] = "/tmp/listen-test-XXXXXX", path[64];
	struct buf err = BUF_INIT(1024);
	struct svctab *tab = table("q unix qsock - - - 1 0 0 echo\n");
	struct sockaddr_un sun;
	struct stat st;
	int *fds = NULL, stale, fd;
	size_t n = 0;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/qsock", dir);
	/* a stale socket from a crashed master is replaced */
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	stale = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(stale, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(stale);
	assert_true(master_listen_bind(&tab->entries[0], dir, &fds, &n, &err));
	assert_int_equal(n, 1);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0666);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	master_listen_close(&tab->entries[0], dir, fds, n);
	free(fds);
	assert_int_equal(lstat(path, &st), -1);	/* closing removes the socket file */

	/* a regular file at the name is not ours: left alone, and the bind fails */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_false(master_listen_bind(&tab->entries[0], dir, &fds, &n, &err));
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	unlink(path);

	/* a socket path that does not fit sun_path is an error, not a truncation */
	char longdir[200];
	memset(longdir, 'x', sizeof(longdir));
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = '\0';
	buf_reset(&err);
	assert_false(master_listen_bind(&tab->entries[0], longdir, &fds, &n, &err));
	assert_non_null(strstr(buf_cstr(&err), "socket path longer than"));
	rmdir(dir);
	svctab_free(&tab);
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wildcard_binds_both_families),
		cmocka_unit_test(test_specific_address_and_failure_cleanup),
		cmocka_unit_test(test_unix_sockets),
	};
	return cmocka_run_group_tests_name("master_listen", tests, NULL, NULL);
}
