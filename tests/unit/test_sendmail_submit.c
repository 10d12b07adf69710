/* sendmail through the real local submission path: cmd_sendmail() (in process, stdin from a file) connects to
 * public/submit, where a forked acceptor runs a real smtpd session in local mode; the queue file it writes
 * must carry the submitting uid, protocol LOCAL, origin sendmail, the -t recipients and no Bcc. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "qfile.h"
#include "../../cli/commands.h"
#include "../../smtpd/smtpd.h"

static char dir[64];

/* cli/main.c is not linked into tests */
const char *cli_instance_dir(const char *opt)
{
	return opt ? opt : dir;
}

int cli_usage(const struct cli_command *cmd)
{
	(void)cmd;
	return EX_USAGE;
}

static void mk(const char *sub)
{
	char p[192];
	snprintf(p, sizeof(p), "%s/%s", dir, sub);
	assert_int_equal(mkdir(p, 0755), 0);
}

static int setup(void **state)
{
	(void)state;
	char p[192];
	snprintf(dir, sizeof(dir), "%s", "/tmp/sendmail-submit-XXXXXX");
	assert_non_null(mkdtemp(dir));
	mk("etc");
	mk("public");
	mk("queue");
	mk("queue/tmp");
	mk("queue/incoming");
	snprintf(p, sizeof(p), "%s/etc/main.cf", dir);
	FILE *f = fopen(p, "w");
	fputs("myhostname = mx.example.test\nmyorigin = example.test\n", f);
	fclose(f);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Listen on DIR/public/submit and serve one connection with a real smtpd session in local mode. */
static pid_t start_smtpd(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/public/submit", dir);
	assert_int_equal(bind(l, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(l, 4), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		static struct smtpd_settings set;
		static struct smtpd_policy_conf pc;
		struct buf err = BUF_INIT(1024);
		char q[128];
		snprintf(q, sizeof(q), "%s/queue", dir);
		log_init("smtpd");
		log_to_file("/dev/null");
		set.hostname = "mx.example.test";
		set.banner = "mx.example.test ESMTP";
		set.rcpt_limit = 100;
		set.timeout_ms = 5000;
		set.hard_error_limit = 20;
		set.soft_error_limit = 10;
		set.junk_limit = 100;
		set.line_limit = 2048;
		set.data_line_limit = 1000;
		set.header_limit = 65536;
		set.dsn = true;
		set.submission_fixups = true;
		set.local_submission = true;
		set.queue_dir = q;
		pc.mydestination = "example.test";
		pc.mynetworks = "192.0.2.1/32";
		pc.delimiters = "+";
		set.policy = smtpd_policy_new(&pc, &err);
		int c = accept(l, NULL, NULL);
		if (c >= 0)
			smtpd_session_run(c, NULL, 0, &set);
		smtpd_policy_free(&set.policy);
		_exit(0);
	}
	close(l);
	return pid;
}

/* Run cmd_sendmail with stdin from text; returns its exit status. */
static int sendmail_with_stdin(const char *text, int argc, char **argv)
{
	char p[192];
	snprintf(p, sizeof(p), "%s/stdin", dir);
	FILE *f = fopen(p, "w");
	fputs(text, f);
	fclose(f);
	int saved = dup(0), in = open(p, O_RDONLY);
	assert_true(saved >= 0 && in >= 0);
	dup2(in, 0);
	close(in);
	int rc = cmd_sendmail(argc, argv);
	dup2(saved, 0);
	close(saved);
	unlink(p);
	return rc;
}

static void test_t_into_queue_with_uid(void **state)
{
	(void)state;
	int st;
	pid_t pid = start_smtpd();
	char *argv[] = { "sendmail", "-C", dir, "-t", "-F", "Test User", NULL };
	int rc = sendmail_with_stdin("To: Alice <alice@remote.example>\n"
	                             "Bcc: bob@far.example\n"
	                             "Subject: through smtpd\n"
	                             "\n"
	                             ".dot\n"
	                             "body\n", 6, argv);
	assert_int_equal(rc, 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);

	char p[600];
	snprintf(p, sizeof(p), "%s/queue/incoming", dir);
	DIR *d = opendir(p);
	struct dirent *e;
	char id[256] = "";
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			snprintf(id, sizeof(id), "%s", e->d_name);
	closedir(d);
	assert_true(id[0] != '\0');
	snprintf(p, sizeof(p), "%s/queue/incoming/%s", dir, id);
	int fd = open(p, O_RDONLY);
	struct qfile_envelope env;
	struct buf err = BUF_INIT(1024);
	assert_true(qfile_read_envelope(fd, &env, &err));
	assert_int_equal(env.uid, (long)getuid());
	assert_string_equal(env.protocol, "LOCAL");
	assert_string_equal(env.origin, "sendmail");
	assert_int_equal(env.nrcpts, 2);
	assert_string_equal(env.rcpts[0].addr, "alice@remote.example");
	assert_string_equal(env.rcpts[1].addr, "bob@far.example");
	char content[4096];
	ssize_t n = read(fd, content, sizeof(content) - 1);
	assert_true(n > 0);
	content[n] = '\0';
	assert_null(strstr(content, "Bcc"));
	assert_non_null(strstr(content, "\nFrom: Test User <"));
	assert_non_null(strstr(content, "\n\n.dot\nbody\n"));	/* dot-stuffing undone, LF stored */
	close(fd);
	qfile_envelope_free(&env);
	buf_free(&err);
	unlink(p);
}

static void test_down_is_tempfail(void **state)
{
	(void)state;
	char p[192];
	snprintf(p, sizeof(p), "%s/public/submit", dir);
	unlink(p);	/* the socket of the finished session: nobody listens now */
	char *argv[] = { "sendmail", "-C", dir, "a@example.test", NULL };
	assert_int_equal(sendmail_with_stdin("Subject: x\n\nx\n", 4, argv), EX_TEMPFAIL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_t_into_queue_with_uid),
		cmocka_unit_test(test_down_is_tempfail),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("sendmail_submit", tests, setup, teardown);
}
