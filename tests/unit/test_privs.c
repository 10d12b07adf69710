/* privs: user lookup; the drop itself (in forked children, needs root: skipped otherwise). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "privs.h"

static void test_lookup(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(512);
	uid_t uid = 99;
	gid_t gid = 99;

	assert_true(privs_lookup_user("root", &uid, &gid, &err));
	assert_int_equal(uid, 0);
	assert_int_equal(gid, 0);
	assert_false(privs_lookup_user("no-such-user-postern-test", &uid, &gid, &err));
	assert_non_null(strstr(buf_cstr(&err), "user no-such-user-postern-test does not exist"));
	buf_free(&err);
}

/* Runs fn in a child and returns its wait status. */
static int in_child(void (*fn)(void *), void *arg)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		log_to_stderr();
		fn(arg);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void drop_to_nobody(void *arg)
{
	char cwd[256];
	(void)arg;
	privs_drop("nobody", NULL);
	if (getuid() == 0 || geteuid() == 0 || getgid() == 0 || getegid() == 0)
		_exit(10);
	if (setuid(0) == 0 || seteuid(0) == 0)
		_exit(11);
	if (getcwd(cwd, sizeof(cwd)) == NULL || strcmp(cwd, "/") != 0)
		_exit(12);
	/* supplementary groups are nobody's, not root's */
	gid_t groups[64];
	int n = getgroups(64, groups);
	for (int i = 0; i < n; i++)
		if (groups[i] == 0)
			_exit(13);
	/* once unprivileged, a second drop is a no-op, not a failure */
	privs_drop("root", NULL);
	if (geteuid() == 0)
		_exit(14);
}

static void test_drop(void **state)
{
	(void)state;
	if (!privs_is_root())
		skip();	/* needs root */
	int st = in_child(drop_to_nobody, NULL);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void drop_chroot(void *arg)
{
	const char *dir = arg;
	struct stat st;
	privs_drop("nobody", dir);
	if (geteuid() == 0)
		_exit(20);
	if (stat("/marker", &st) < 0)	/* the file made inside dir is at the new root */
		_exit(21);
	if (stat("/etc/passwd", &st) == 0)
		_exit(22);
}

static void test_drop_chroot(void **state)
{
	(void)state;
	char dir[] = "/tmp/privs-test-XXXXXX", marker[64];
	FILE *f;

	if (!privs_is_root())
		skip();
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0755), 0);
	snprintf(marker, sizeof(marker), "%s/marker", dir);
	assert_non_null(f = fopen(marker, "w"));
	fclose(f);
	int st = in_child(drop_chroot, dir);
	unlink(marker);
	rmdir(dir);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void drop_unknown(void *arg)
{
	(void)arg;
	privs_drop("no-such-user-postern-test", NULL);
	_exit(0);	/* not reached: unknown user is fatal */
}

static void drop_bad_chroot(void *arg)
{
	(void)arg;
	privs_drop("nobody", "/nonexistent-postern-chroot");
	_exit(0);
}

static void test_drop_failures_are_fatal(void **state)
{
	(void)state;
	if (!privs_is_root())
		skip();
	int st = in_child(drop_unknown, NULL);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	st = in_child(drop_bad_chroot, NULL);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
}

static void keep_root(void *arg)
{
	(void)arg;
	privs_drop("root", NULL);
	if (geteuid() != 0)
		_exit(30);
}

static void test_root_user_keeps_root(void **state)
{
	(void)state;
	if (!privs_is_root())
		skip();
	int st = in_child(keep_root, NULL);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_not_root_is_noop(void **state)
{
	(void)state;
	if (privs_is_root())
		skip();	/* covered as root by the second drop in test_drop */
	uid_t before = geteuid();
	privs_drop("nobody", NULL);
	assert_int_equal(geteuid(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_drop),
		cmocka_unit_test(test_drop_chroot),
		cmocka_unit_test(test_drop_failures_are_fatal),
		cmocka_unit_test(test_root_user_keeps_root),
		cmocka_unit_test(test_not_root_is_noop),
	};
	return cmocka_run_group_tests_name("privs", tests, NULL, NULL);
}
