/* smtpd local submission mode (public/submit, used by sendmail): the client is its uid from SO_PEERCRED, which
 * goes into the queue file (QREC_UID) with protocol LOCAL and origin sendmail; it relays like mynetworks; the
 * Received header names the uid; a client whose uid cannot be told is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "qfile.h"
#include "../../smtpd/smtpd.h"

static char dir[64], qdir[128];
static struct smtpd_settings set;
static struct smtpd_policy_conf pc;

static int setup(void **state)
{
	(void)state;
	char p[192];
	snprintf(dir, sizeof(dir), "%s", "/tmp/smtpd-local-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(qdir, sizeof(qdir), "%s/queue", dir);
	mkdir(qdir, 0700);
	snprintf(p, sizeof(p), "%s/tmp", qdir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/incoming", qdir);
	mkdir(p, 0700);
	memset(&set, 0, sizeof(set));
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
	set.queue_dir = qdir;
	memset(&pc, 0, sizeof(pc));
	pc.mydestination = "example.test";
	pc.mynetworks = "192.0.2.1/32";	/* loopback is NOT in mynetworks: relaying must come from the mode */
	pc.delimiters = "+";
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static pid_t run_session(int fd, int other)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct buf err = BUF_INIT(1024);
		if (other >= 0)
			close(other);
		log_init("smtpd");
		log_to_file("/dev/null");
		set.policy = smtpd_policy_new(&pc, &err);
		smtpd_session_run(fd, NULL, 0, &set);
		smtpd_policy_free(&set.policy);
		_exit(0);
	}
	close(fd);
	return pid;
}

/* Read until a line starting with want (a final reply line "NNN "); returns everything read. */
static void expect(int fd, const char *want, struct buf *all)
{
	char c;
	struct buf line = BUF_INIT(4096);
	for (;;) {
		ssize_t r = read(fd, &c, 1);
		assert_int_equal(r, 1);
		buf_putc(all, c);
		if (c != '\n') {
			buf_putc(&line, c);
			continue;
		}
		if (line.len >= 4 && line.data[3] == ' ') {
			if (strncmp(line.data, want, strlen(want)) != 0)
				fail_msg("expected %s, got %s", want, buf_cstr(&line));
			break;
		}
		buf_reset(&line);
	}
	buf_free(&line);
}

static void say(int fd, const char *s)
{
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

static char *only_queue_file(void)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/incoming", qdir);
	DIR *d = opendir(p);
	struct dirent *e;
	char *found = NULL;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.') {
			assert_null(found);
			found = strdup(e->d_name);
		}
	closedir(d);
	assert_non_null(found);
	return found;
}

static void test_local_message(void **state)
{
	(void)state;
	int sv[2], st;
	struct buf all = BUF_INIT(1 << 20), err = BUF_INIT(1024);
	struct qfile_envelope env;
	char path[256], uid[32];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid_t pid = run_session(sv[1], sv[0]);
	expect(sv[0], "220", &all);
	say(sv[0], "EHLO localhost\r\n");
	expect(sv[0], "250", &all);
	/* a remote recipient: relaying is allowed for the local user without AUTH */
	say(sv[0], "MAIL FROM:<someone@elsewhere.example>\r\n");
	expect(sv[0], "250", &all);
	say(sv[0], "RCPT TO:<far@remote.example>\r\n");
	expect(sv[0], "250", &all);
	say(sv[0], "DATA\r\n");
	expect(sv[0], "354", &all);
	say(sv[0], "Subject: local\r\n\r\nhi\r\n.\r\n");
	expect(sv[0], "250", &all);
	say(sv[0], "QUIT\r\n");
	expect(sv[0], "221", &all);
	close(sv[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);

	char *id = only_queue_file();
	snprintf(path, sizeof(path), "%s/incoming/%s", qdir, id);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(qfile_read_envelope(fd, &env, &err));
	assert_int_equal(env.uid, (long)getuid());
	assert_string_equal(env.protocol, "LOCAL");
	assert_string_equal(env.origin, "sendmail");
	assert_string_equal(env.sender, "someone@elsewhere.example");	/* -f is trusted, like Postfix */
	assert_int_equal(env.nrcpts, 1);
	/* the content: Received names the uid; Date and Message-ID were added */
	char content[4096];
	ssize_t n = read(fd, content, sizeof(content) - 1);
	assert_true(n > 0);
	content[n] = '\0';
	snprintf(uid, sizeof(uid), "(from userid %ld)", (long)getuid());
	assert_non_null(strstr(content, uid));
	assert_non_null(strstr(content, "\nMessage-ID: <"));
	assert_non_null(strstr(content, "\nDate: "));
	close(fd);
	qfile_envelope_free(&env);
	unlink(path);
	free(id);
	buf_free(&all);
	buf_free(&err);
}

static void test_unidentified_client_refused(void **state)
{
	(void)state;
	int p[2], st;
	struct buf all = BUF_INIT(4096);
	/* a pipe has no peer credentials: the session must refuse, not serve an anonymous client */
	assert_int_equal(pipe(p), 0);
	pid_t pid = run_session(p[1], p[0]);
	expect(p[0], "421", &all);
	assert_non_null(strstr(buf_cstr(&all), "cannot identify"));
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	buf_free(&all);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local_message),
		cmocka_unit_test(test_unidentified_client_refused),
	};
	return cmocka_run_group_tests_name("smtpd_local", tests, setup, teardown);
}
