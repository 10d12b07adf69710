/* postern config show/set, run as the real program (bin/postern beside this test's tests/ directory) on a
 * temporary instance directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"

static char prog[PATH_MAX];
static char dir[256];
static char etc[300];
static char maincf[320];

static int setup(void **state)
{
	(void)state;
	ssize_t n = readlink("/proc/self/exe", prog, sizeof(prog) - 32);
	if (n <= 0)
		return -1;
	prog[n] = '\0';
	char *slash = strrchr(prog, '/');	/* BUILD/tests/test_config_cli -> BUILD/bin/postern */
	*slash = '\0';
	slash = strrchr(prog, '/');
	memcpy(slash, "/bin/postern", sizeof("/bin/postern"));
	memcpy(dir, "/tmp/test_config_cli.XXXXXX", sizeof("/tmp/test_config_cli.XXXXXX"));
	if (mkdtemp(dir) == NULL)
		return -1;
	char *real = realpath(dir, NULL);	/* postern shows paths resolved */
	if (real == NULL || strlen(real) >= sizeof(dir)) {
		free(real);
		return -1;
	}
	memcpy(dir, real, strlen(real) + 1);
	free(real);
	snprintf(etc, sizeof(etc), "%s/etc", dir);
	snprintf(maincf, sizeof(maincf), "%s/main.cf", etc);
	return mkdir(etc, 0755);
}

static int teardown(void **state)
{
	(void)state;
	unlink(maincf);
	rmdir(etc);
	return rmdir(dir);
}

/* Run postern with args; returns the exit status, output in out and err. */
static int run(struct buf *out, struct buf *err, const char *const *args)
{
	int po[2], pe[2], status;
	const char *argv[16] = { "postern" };
	size_t n = 1;
	pid_t pid;

	for (; args[n - 1] && n < 15; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	assert_int_equal(pipe(po), 0);
	assert_int_equal(pipe(pe), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		close(po[0]);
		close(pe[0]);
		unsetenv("POSTERN_DIR");
		execv(prog, (char *const *)argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	/* outputs are small: read stdout to the end, then stderr */
	char chunk[4096];
	ssize_t r;
	while ((r = read(po[0], chunk, sizeof(chunk))) > 0)
		buf_append(out, chunk, (size_t)r);
	while ((r = read(pe[0], chunk, sizeof(chunk))) > 0)
		buf_append(err, chunk, (size_t)r);
	close(po[0]);
	close(pe[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void write_main(const char *text)
{
	FILE *f = fopen(maincf, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *read_main(void)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	char chunk[4096];
	size_t n;
	FILE *f = fopen(maincf, "r");
	assert_non_null(f);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	return buf_steal(&b, NULL);
}

static void test_show(void **state)
{
	(void)state;
	struct buf out = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(BUF_NOLIMIT);
	char line[600];

	write_main("# mine\nmyhostname = mx.example.org\nmy_own = 1\n");
	assert_int_equal(run(&out, &err, (const char *[]){ "config", "show", "-c", dir, NULL }), 0);
	/* paths follow the instance directory */
	snprintf(line, sizeof(line), "\nqueue_directory = %s/queue\n", dir);
	assert_non_null(strstr(buf_cstr(&out), line));
	assert_non_null(strstr(buf_cstr(&out), "\nmyorigin = mx.example.org\n"));
	assert_non_null(strstr(buf_cstr(&out), "\nmy_own = 1\n"));
	assert_non_null(strstr(buf_cstr(&err), "main.cf:3: unknown parameter my_own"));

	buf_reset(&out);
	buf_reset(&err);
	assert_int_equal(run(&out, &err, (const char *[]){ "config", "show", "--non-default", "-c", dir, NULL }), 0);
	snprintf(line, sizeof(line), "instance_directory = %s\nmyhostname = mx.example.org\nmy_own = 1\n", dir);
	assert_string_equal(buf_cstr(&out), line);

	buf_reset(&out);
	buf_reset(&err);
	assert_int_equal(run(&out, &err, (const char *[]){ "config", "show", "-c", dir, "myorigin", "debug", NULL }), 0);
	assert_string_equal(buf_cstr(&out), "myorigin = mx.example.org\ndebug = no\n");

	/* a broken file: the error names file and line, exit status EX_CONFIG */
	write_main("myhostname = a\nbroken line\n");
	buf_reset(&out);
	buf_reset(&err);
	assert_int_equal(run(&out, &err, (const char *[]){ "config", "show", "-c", dir, NULL }), 78);
	assert_non_null(strstr(buf_cstr(&err), "main.cf:2: missing \"=\""));
	buf_free(&out);
	buf_free(&err);
}

static void test_set(void **state)
{
	(void)state;
	struct buf out = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(BUF_NOLIMIT);
	char *text;

	write_main("# keep me\nmyhostname = old\n  continued\n# and me\n");
	assert_int_equal(run(&out, &err, (const char *[]){ "config", "set", "-c", dir, "myhostname=new.example",
	                                                   "debug=yes", NULL }), 0);
	text = read_main();
	assert_string_equal(text, "# keep me\nmyhostname = new.example\n# and me\ndebug = yes\n");
	free(text);

	/* unknown names are refused before anything changes */
	assert_int_equal(run(&out, &err, (const char *[]){ "config", "set", "-c", dir, "debug=no", "mynetwork=1",
	                                                   NULL }), 64);
	assert_non_null(strstr(buf_cstr(&err), "unknown parameter mynetwork"));
	assert_int_equal(run(&out, &err, (const char *[]){ "config", "set", "-c", dir, "novalue", NULL }), 64);
	text = read_main();
	assert_string_equal(text, "# keep me\nmyhostname = new.example\n# and me\ndebug = yes\n");
	free(text);

	/* a value that makes the configuration unusable is written, and reported */
	buf_reset(&err);
	assert_int_equal(run(&out, &err, (const char *[]){ "config", "set", "-c", dir, "mydomain=$mydestination",
	                                                   NULL }), 78);
	assert_non_null(strstr(buf_cstr(&err), "expansion loop"));
	buf_free(&out);
	buf_free(&err);
}

static void test_usage(void **state)
{
	(void)state;
	struct buf out = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(BUF_NOLIMIT);
	assert_int_equal(run(&out, &err, (const char *[]){ "config", NULL }), 64);
	assert_int_equal(run(&out, &err, (const char *[]){ "config", "frob", NULL }), 64);
	assert_int_equal(run(&out, &err, (const char *[]){ "config", "show", "--bogus", NULL }), 64);
	assert_int_equal(run(&out, &err, (const char *[]){ "config", "set", "-c", dir, NULL }), 64);
	buf_free(&out);
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_show),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_usage),
	};
	return cmocka_run_group_tests_name("config_cli", tests, setup, teardown);
}
