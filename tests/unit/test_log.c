/* log: line format, file destination, sanitising, fatal exit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

static char path[] = "/tmp/postern-test-log-XXXXXX";

static char *slurp(const char *p)
{
	static char data[65536];
	FILE *f = fopen(p, "r");
	size_t n = fread(data, 1, sizeof(data) - 1, f);
	fclose(f);
	data[n] = '\0';
	return data;
}

static void test_file_format(void **state)
{
	(void)state;
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	log_init("/usr/libexec/postern/smtpd");
	assert_int_equal(log_to_file(path), 0);
	log_info("%s: from=<%s>", "0ABCDEF", "a@b");
	log_debug("hidden");
	log_info("evil\nforged line");
	char *s = slurp(path);
	assert_non_null(strstr(s, " postern/smtpd["));
	assert_non_null(strstr(s, "]: info: 0ABCDEF: from=<a@b>\n"));
	assert_null(strstr(s, "hidden"));
	assert_non_null(strstr(s, "evil forged line\n"));
	/* two lines exactly */
	int lines = 0;
	for (char *p = s; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 2);
	log_to_stderr();
	unlink(path);
}

static void test_safe(void **state)
{
	(void)state;
	const char *a = log_safe("x\r\ny", 4, 100);
	const char *b = log_safe("0123456789", 10, 4);
	assert_string_equal(a, "x\\r\\ny");
	assert_string_equal(b, "0123...");
}

static void test_fatal_exits(void **state)
{
	(void)state;
	pid_t pid = fork();
	if (pid == 0) {
		log_init("test");
		if (!freopen("/dev/null", "w", stderr))
			_exit(2);
		fatalx("going down");
	}
	int st;
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_format),
		cmocka_unit_test(test_safe),
		cmocka_unit_test(test_fatal_exits),
	};
	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
