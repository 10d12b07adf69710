/* postern user: each sub-command against a temporary instance, checked through the accounts API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "../../cli/commands.h"
#include "accounts.h"

/* cli/main.c (not linked into tests) provides this to the commands; the tests always pass -c. */
const char *cli_instance_dir(const char *opt)
{
	return opt;
}

static char dir[64], dbpath[128], input[128], out[128];

static int setup(void **state)
{
	char p[160];
	FILE *f;
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/test_cmd_user.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(p, sizeof p, "%s/etc", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/etc/main.cf", dir);
	if ((f = fopen(p, "w")) == NULL)
		return -1;
	fputs("mail_owner = no-such-user-here\nmail_directory = /srv/mail\n", f);
	fclose(f);
	snprintf(dbpath, sizeof dbpath, "%s/data/accounts.lmdb", dir);
	snprintf(input, sizeof input, "%s/stdin", dir);
	snprintf(out, sizeof out, "%s/stdout", dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[256];
	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Run `postern user ARGS -c DIR` with stdin_text on standard input and stdout captured into out. */
static int run(const char *stdin_text, ...)
{
	char *argv[16];
	int argc = 0, rc, saved_in, saved_out, fd;
	va_list ap;
	FILE *f = fopen(input, "w");

	fputs(stdin_text ? stdin_text : "", f);
	fclose(f);
	argv[argc++] = "user";
	va_start(ap, stdin_text);
	for (char *a; (a = va_arg(ap, char *)) != NULL;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc++] = "-c";
	argv[argc++] = dir;
	argv[argc] = NULL;

	fflush(stdout);
	saved_in = dup(0);
	saved_out = dup(1);
	fd = open(input, O_RDONLY);
	dup2(fd, 0);
	close(fd);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 1);
	close(fd);
	clearerr(stdin);
	rc = cmd_user(argc, argv);
	fflush(stdout);
	dup2(saved_in, 0);
	dup2(saved_out, 1);
	close(saved_in);
	close(saved_out);
	clearerr(stdin);
	return rc;
}

static const char *output(void)
{
	static char text[8192];
	FILE *f = fopen(out, "r");
	size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
	if (f)
		fclose(f);
	text[n] = '\0';
	return text;
}

static enum accounts_result get(const char *address, struct accounts_user *u)
{
	struct buf err = BUF_INIT(1024);
	struct accounts *db = accounts_open(dbpath, false, &err);
	enum accounts_result r = db ? accounts_get(db, address, u, &err) : ACCOUNTS_ERROR;
	accounts_close(&db);
	buf_free(&err);
	return r;
}

static enum accounts_result check(const char *address, const char *pw)
{
	struct buf err = BUF_INIT(1024);
	struct accounts *db = accounts_open(dbpath, false, &err);
	enum accounts_result r = db ? accounts_verify(db, address, pw, NULL, &err) : ACCOUNTS_ERROR;
	accounts_close(&db);
	buf_free(&err);
	return r;
}

static void test_add_list_del(void **state)
{
	(void)state;
	struct accounts_user u;

	/* list before any account exists: a clear failure, not a crash */
	assert_int_not_equal(run(NULL, "list", NULL), 0);
	assert_int_equal(run("s3cret\n", "add", "Alice@Example.org", "--password-stdin", "--quota", "2m", NULL), 0);
	assert_int_equal(check("alice@example.org", "s3cret"), ACCOUNTS_OK);
	assert_int_equal(get("alice@example.org", &u), ACCOUNTS_OK);
	assert_string_equal(u.maildir, "/srv/mail/example.org/alice/");
	assert_int_equal(u.quota, 2 << 20);
	assert_memory_equal(u.password_hash, "$y$", 3);
	accounts_user_free(&u);
	/* CRLF from a pipe is not part of the password */
	assert_int_equal(run("pw2\r\n", "add", "bob@example.org", "--password-stdin", "--uid", "1000", "--gid", "100",
	                     "--maildir", "/home/bob/Maildir", NULL), 0);
	assert_int_equal(check("bob@example.org", "pw2"), ACCOUNTS_OK);
	assert_int_equal(get("bob@example.org", &u), ACCOUNTS_OK);
	assert_string_equal(u.maildir, "/home/bob/Maildir/");
	assert_int_equal(u.uid, 1000);
	assert_int_equal(u.gid, 100);
	accounts_user_free(&u);

	assert_int_equal(run("x\n", "add", "alice@example.org", "--password-stdin", NULL), EX_CANTCREAT);
	assert_int_equal(run(NULL, "list", NULL), 0);
	assert_non_null(strstr(output(), "alice@example.org"));
	assert_non_null(strstr(output(), "2097152 /srv/mail/example.org/alice/"));
	assert_non_null(strstr(output(), "bob@example.org"));

	assert_int_equal(run(NULL, "del", "BOB@example.org", NULL), 0);
	assert_int_equal(get("bob@example.org", &u), ACCOUNTS_NOTFOUND);
	assert_int_equal(run(NULL, "del", "bob@example.org", NULL), EX_NOUSER);
}

static void test_refusals(void **state)
{
	(void)state;
	/* no password on stdin, not a terminal: nothing is made up */
	assert_int_equal(run("", "add", "a@x.org", "--password-stdin", NULL), EX_DATAERR);
	assert_int_equal(run("pw\n", "add", "a@x.org", NULL), EX_DATAERR);
	assert_int_equal(access(dbpath, F_OK), -1);	/* nothing created either */
	assert_int_equal(run("pw\n", "add", "a/b@x.org", "--password-stdin", NULL), EX_DATAERR);
	assert_int_equal(run("pw\n", "add", "a@x.org", "--password-stdin", "--quota", "lots", NULL), EX_USAGE);
	assert_int_equal(run("pw\n", "add", "a@x.org", "--password-stdin", "--uid", "5", NULL), EX_USAGE);
	assert_int_equal(run("pw\n", "add", "a@x.org", "--password-stdin", "--uid", "5", "--gid", "5", "--system",
	                     "root", NULL), EX_USAGE);
	assert_int_equal(run("pw\n", "add", "a@x.org", "--password-stdin", "--maildir", "rel/path", NULL), EX_USAGE);
	assert_int_equal(run(NULL, "frobnicate", "a@x.org", NULL), EX_USAGE);
	assert_int_equal(run(NULL, "del", NULL), EX_USAGE);
	assert_int_equal(run(NULL, "list", "extra", NULL), EX_USAGE);
	assert_int_equal(run(NULL, "del", "a@x.org", "--quota", "1", NULL), EX_USAGE);
}

static void test_passwd_enable_apop(void **state)
{
	(void)state;
	struct accounts_user u;

	assert_int_equal(run("old\n", "add", "c@x.org", "--password-stdin", NULL), 0);
	assert_int_equal(run("new\n", "passwd", "c@x.org", "--password-stdin", NULL), 0);
	assert_int_equal(check("c@x.org", "old"), ACCOUNTS_BADPASS);
	assert_int_equal(check("c@x.org", "new"), ACCOUNTS_OK);
	assert_int_equal(run("new\n", "passwd", "nobody@x.org", "--password-stdin", NULL), EX_NOUSER);

	assert_int_equal(run(NULL, "disable", "c@x.org", NULL), 0);
	assert_int_equal(check("c@x.org", "new"), ACCOUNTS_DISABLED);
	assert_int_equal(run(NULL, "enable", "c@x.org", NULL), 0);
	assert_int_equal(check("c@x.org", "new"), ACCOUNTS_OK);
	assert_int_equal(run(NULL, "disable", "nobody@x.org", NULL), EX_NOUSER);

	assert_int_equal(run("tanstaaf\n", "apop", "c@x.org", "--secret-stdin", NULL), 0);
	assert_int_equal(get("c@x.org", &u), ACCOUNTS_OK);
	assert_string_equal(u.apop_secret, "tanstaaf");
	accounts_user_free(&u);
	assert_int_equal(run(NULL, "apop", "c@x.org", "--clear", NULL), 0);
	assert_int_equal(get("c@x.org", &u), ACCOUNTS_OK);
	assert_null(u.apop_secret);
	accounts_user_free(&u);
	assert_int_equal(run(NULL, "apop", "c@x.org", "--clear", "--secret-stdin", NULL), EX_USAGE);
	assert_int_equal(run(NULL, "passwd", "c@x.org", "--clear", NULL), EX_USAGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_list_del, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_passwd_enable_apop, setup, teardown),
	};
	return cmocka_run_group_tests_name("cmd_user", tests, NULL, NULL);
}
