/* pop3d: the command parser (table cases), the password-file backend (with APOP), and sessions over a
 * socketpair: non-loopback clients without TLS are refused plaintext logins, a loopback client logs in, reads and
 * deletes, a byte-at-a-time client gets the same replies, an idle one is logged out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "maildir.h"
#include "sasl.h"
#include "../../pop3d/pop3_auth.h"
#include "../../pop3d/pop3_cmd.h"
#include "../../pop3d/pop3_session.h"

static enum pop3_parse_result parse(const char *text, struct pop3_cmd *c, char *store, size_t n)
{
	snprintf(store, n, "%s", text);
	return pop3_cmd_parse(store, strlen(store), c);
}

static void test_parser(void **state)
{
	(void)state;
	struct pop3_cmd c;
	char b[600];

	assert_int_equal(parse("USER alice", &c, b, sizeof(b)), POP3_PARSE_OK);
	assert_int_equal(c.def->id, POP3_CMD_USER);
	assert_string_equal(c.arg[0], "alice");
	assert_int_equal(parse("user  alice ", &c, b, sizeof(b)), POP3_PARSE_OK);
	assert_string_equal(c.arg[0], "alice");
	assert_int_equal(parse("PASS  two words ", &c, b, sizeof(b)), POP3_PARSE_OK);
	assert_string_equal(c.arg[0], " two words ");
	assert_int_equal(parse("PASS", &c, b, sizeof(b)), POP3_PARSE_SYNTAX);
	assert_int_equal(parse("PASS ", &c, b, sizeof(b)), POP3_PARSE_SYNTAX);
	assert_int_equal(parse("TOP 3 0", &c, b, sizeof(b)), POP3_PARSE_OK);
	assert_int_equal(c.num[0], 3);
	assert_int_equal(c.num[1], 0);
	assert_int_equal(parse("TOP 0 1", &c, b, sizeof(b)), POP3_PARSE_SYNTAX);
	assert_int_equal(parse("TOP 1", &c, b, sizeof(b)), POP3_PARSE_SYNTAX);
	assert_int_equal(parse("TOP 1 -1", &c, b, sizeof(b)), POP3_PARSE_SYNTAX);
	assert_int_equal(parse("LIST", &c, b, sizeof(b)), POP3_PARSE_OK);
	assert_int_equal(c.nargs, 0);
	assert_int_equal(parse("LIST 4294967295", &c, b, sizeof(b)), POP3_PARSE_OK);
	assert_int_equal(c.num[0], 4294967295u);
	assert_int_equal(parse("LIST 4294967296", &c, b, sizeof(b)), POP3_PARSE_SYNTAX);
	assert_int_equal(parse("LIST +1", &c, b, sizeof(b)), POP3_PARSE_SYNTAX);
	assert_int_equal(parse("LIST 1 2", &c, b, sizeof(b)), POP3_PARSE_SYNTAX);
	assert_int_equal(parse("RETR", &c, b, sizeof(b)), POP3_PARSE_SYNTAX);
	assert_int_equal(parse("RETR 00000000001", &c, b, sizeof(b)), POP3_PARSE_SYNTAX);
	assert_int_equal(parse("STAT x", &c, b, sizeof(b)), POP3_PARSE_SYNTAX);
	assert_int_equal(parse("STATS", &c, b, sizeof(b)), POP3_PARSE_UNKNOWN);
	assert_int_equal(parse("", &c, b, sizeof(b)), POP3_PARSE_UNKNOWN);
	assert_int_equal(parse(" STAT", &c, b, sizeof(b)), POP3_PARSE_UNKNOWN);
	assert_int_equal(parse("STAT\t", &c, b, sizeof(b)), POP3_PARSE_SYNTAX);
	assert_int_equal(parse("NOOP\x7f", &c, b, sizeof(b)), POP3_PARSE_SYNTAX);
	assert_int_equal(parse("APOP bob c4c9334bac560ecc979e58001b3e22fb", &c, b, sizeof(b)), POP3_PARSE_OK);
	assert_int_equal(c.def->id, POP3_CMD_APOP);
	assert_int_equal(parse("APOP bob", &c, b, sizeof(b)), POP3_PARSE_SYNTAX);
	assert_int_equal(parse("AUTH", &c, b, sizeof(b)), POP3_PARSE_OK);
	assert_int_equal(parse("AUTH PLAIN =", &c, b, sizeof(b)), POP3_PARSE_OK);
	assert_int_equal(c.nargs, 2);
	assert_int_equal(parse("AUTH A B C", &c, b, sizeof(b)), POP3_PARSE_SYNTAX);
	assert_int_equal(parse("capa", &c, b, sizeof(b)), POP3_PARSE_OK);
	assert_int_equal(c.def->states, POP3_IN_AUTH | POP3_IN_TRANS);
	assert_int_equal(parse("DELE 1", &c, b, sizeof(b)), POP3_PARSE_OK);
	assert_int_equal(c.def->states, POP3_IN_TRANS);
	/* a NUL inside the line */
	memcpy(b, "USER a\0b", 8);
	assert_int_equal(pop3_cmd_parse(b, 8, &c), POP3_PARSE_SYNTAX);
	char longuser[300];
	memset(longuser, 'u', sizeof(longuser));
	snprintf(b, sizeof(b), "USER %.*s", 256, longuser);
	assert_int_equal(pop3_cmd_parse(b, strlen(b), &c), POP3_PARSE_SYNTAX);
}

static char dir[64];

static int setup(void **state)
{
	(void)state;
	char p[128];
	snprintf(dir, sizeof(dir), "%s", "/tmp/postern-pop3d-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(p, sizeof(p), "%s/passwd", dir);
	FILE *f = fopen(p, "w");
	if (!f)
		return -1;
	fprintf(f, "# comment\nalice:pw:alice\ncarol:pw:%s/carol:notanumber:1\n", dir);
	fclose(f);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static void test_authfile(void **state)
{
	(void)state;
	char p[128];
	struct pop3_authfile af = { p, dir };
	struct pop3_auth_ops ops;
	struct pop3_user u = { 0 };
	char ts[] = "<1.2@x>", dg[33];
	struct pop3_auth_client cl = { "127.0.0.1", false, true, false };

	snprintf(p, sizeof(p), "%s/passwd", dir);
	pop3_authfile_ops(&af, &ops);
	assert_int_equal(ops.plain(ops.ctx, &cl, "alice", "pw", &u), POP3_AUTH_OK);
	assert_string_equal(u.name, "alice");
	assert_non_null(strstr(u.maildir, "/alice"));
	assert_false(u.have_ids);
	pop3_user_clear(&u);
	assert_int_equal(ops.plain(ops.ctx, &cl, "alice", "pW", &u), POP3_AUTH_FAIL);
	assert_null(u.name);
	assert_int_equal(ops.plain(ops.ctx, &cl, "alice", "pw2", &u), POP3_AUTH_FAIL);
	assert_int_equal(ops.plain(ops.ctx, &cl, "nobody", "pw", &u), POP3_AUTH_FAIL);
	assert_int_equal(ops.plain(ops.ctx, &cl, "carol", "pw", &u), POP3_AUTH_FAIL);	/* bad uid field */
	sasl_apop_digest(ts, "pw", dg);
	assert_int_equal(ops.apop(ops.ctx, &cl, "alice", ts, dg, &u), POP3_AUTH_OK);
	pop3_user_clear(&u);
	for (char *c = dg; *c; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 32);
	assert_int_equal(ops.apop(ops.ctx, &cl, "alice", ts, dg, &u), POP3_AUTH_OK);
	pop3_user_clear(&u);
	dg[0] = dg[0] == '0' ? '1' : '0';
	assert_int_equal(ops.apop(ops.ctx, &cl, "alice", ts, dg, &u), POP3_AUTH_FAIL);
	assert_int_equal(ops.apop(ops.ctx, &cl, "alice", ts, "short", &u), POP3_AUTH_FAIL);
	snprintf(p, sizeof(p), "%s/missing", dir);
	assert_int_equal(ops.plain(ops.ctx, &cl, "alice", "pw", &u), POP3_AUTH_TEMPFAIL);
}

/* Run a session in a child on one end of a socketpair; send script (all at once, or one byte at a time with
 * pauses so the server sees every fragment), return everything the server wrote. */
static char *session_ex(bool loopback, const char *script, bool trickle)
{
	static char pw[128];
	static struct pop3_authfile af;
	static struct pop3_auth_ops ops;
	struct pop3_opts o = { .hostname = "test", .max_bad = 5, .timeout_ms = 10000, .auth = &ops };
	int sv[2];

	snprintf(pw, sizeof(pw), "%s/passwd", dir);
	af.path = pw;
	af.maildir_base = dir;
	pop3_authfile_ops(&af, &ops);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		pop3_session_run(stream_new(sv[1]), &o, loopback, "test");
		_exit(0);
	}
	close(sv[1]);
	if (trickle) {
		for (size_t i = 0; script[i]; i++) {
			assert_int_equal(write(sv[0], script + i, 1), 1);
			usleep(500);
		}
	} else {
		assert_int_equal(write(sv[0], script, strlen(script)), (ssize_t)strlen(script));
	}
	shutdown(sv[0], SHUT_WR);
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	char b[4096];
	ssize_t r;
	while ((r = read(sv[0], b, sizeof(b))) > 0)
		buf_append(&out, b, (size_t)r);
	close(sv[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	return buf_steal(&out, NULL);
}

static char *session(bool loopback, const char *script)
{
	return session_ex(loopback, script, false);
}

static void test_session_not_loopback(void **state)
{
	(void)state;
	char *out = session(false, "CAPA\r\nUSER alice\r\nPASS pw\r\nAUTH PLAIN AGFsaWNlAHB3\r\nAUTH\r\nSTAT\r\nQUIT\r\n");
	assert_non_null(strstr(out, "+OK Postern POP3 server ready\r\n"));
	assert_null(strstr(out, "\r\nUSER\r\n"));
	assert_null(strstr(out, "SASL"));
	assert_null(strstr(out, "\r\nSTLS\r\n"));	/* no TLS context in this test */
	assert_non_null(strstr(out, "\r\nIMPLEMENTATION Postern\r\n"));
	/* USER, PASS and AUTH PLAIN refused */
	const char *p = out;
	int refusals = 0;
	while ((p = strstr(p, "-ERR [AUTH] plaintext authentication needs TLS")) != NULL) {
		refusals++;
		p++;
	}
	assert_int_equal(refusals, 3);
	assert_non_null(strstr(out, "+OK\r\n.\r\n"));	/* AUTH lists no mechanism */
	assert_non_null(strstr(out, "-ERR command not valid in this state"));
	free(out);
}

static void test_session_loopback(void **state)
{
	(void)state;
	char md[128];
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	snprintf(md, sizeof(md), "%s/alice", dir);
	assert_true(maildir_make(md, 0700, &err));
	const char *texts[] = { "Subject: one\n\n.dot\nbody\n", "Subject: two\n\nx\n" };
	for (int i = 0; i < 2; i++) {
		struct maildir_writer *w = maildir_begin(md, 0600, &err);
		assert_non_null(w);
		assert_true(maildir_write(w, texts[i], strlen(texts[i])));
		assert_true(maildir_commit(&w, NULL, NULL, &err));
	}
	char *out = session(true, "USER alice\r\nPASS pw\r\nSTAT\r\nRETR 1\r\nTOP 1 0\r\nDELE 2\r\nLIST\r\n"
	                          "UIDL 2\r\nRETR 2\r\nQUIT\r\n");
	assert_non_null(strstr(out, "+OK 2 47\r\n"));
	assert_non_null(strstr(out, "+OK 28 octets\r\nSubject: one\r\n\r\n..dot\r\nbody\r\n.\r\n"));
	assert_non_null(strstr(out, "+OK top of message follows\r\nSubject: one\r\n\r\n.\r\n"));
	assert_non_null(strstr(out, "+OK scan listing follows\r\n1 28\r\n.\r\n"));
	assert_non_null(strstr(out, "-ERR message 2 already deleted\r\n-ERR message 2 already deleted\r\n"));
	assert_non_null(strstr(out, "(1 messages left)"));
	free(out);
	/* the deletion happened; the remaining message keeps its UIDL */
	out = session(true, "USER alice\r\nPASS pw\r\nUIDL\r\n");	/* no QUIT: nothing happens */
	assert_non_null(strstr(out, "+OK maildrop has 1 messages (28 octets)"));
	assert_non_null(strstr(out, "\r\n1 "));
	assert_non_null(strstr(out, "-1\r\n.\r\n"));
	free(out);
	buf_free(&err);
}

/* The same commands one byte at a time give the same replies as one pipelined burst. */
static void test_session_byte_at_a_time(void **state)
{
	(void)state;
	char md[128];
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	snprintf(md, sizeof(md), "%s/alice", dir);
	assert_true(maildir_make(md, 0700, &err));
	struct maildir_writer *w = maildir_begin(md, 0600, &err);
	assert_non_null(w);
	const char *text = "Subject: s\n\n.\n..\nend";	/* no line end at the end */
	assert_true(maildir_write(w, text, strlen(text)));
	assert_true(maildir_commit(&w, NULL, NULL, &err));
	const char *script = "CAPA\r\nuser alice\nPASS pw\r\nSTAT\r\nLIST 1\r\nRETR 1\r\nTOP 1 1\r\nBOGUS\r\n"
	                     "UIDL\r\nRSET\r\nQUIT\r\n";
	char *a = session_ex(true, script, false);
	char *b = session_ex(true, script, true);
	assert_string_equal(a, b);
	assert_non_null(strstr(a, "+OK 24 octets\r\nSubject: s\r\n\r\n..\r\n...\r\nend\r\n.\r\n"));
	assert_non_null(strstr(a, "+OK top of message follows\r\nSubject: s\r\n\r\n..\r\n.\r\n"));
	assert_non_null(strstr(a, "-ERR unknown command\r\n"));
	free(a);
	free(b);
	buf_free(&err);
}

/* An idle client is logged out after the timeout, and nothing it marked is deleted. */
static void test_session_timeout(void **state)
{
	(void)state;
	static char pw[128];
	static struct pop3_authfile af;
	static struct pop3_auth_ops ops;
	struct pop3_opts o = { .hostname = "test", .max_bad = 5, .timeout_ms = 300, .auth = &ops };
	int sv[2];

	snprintf(pw, sizeof(pw), "%s/passwd", dir);
	af.path = pw;
	af.maildir_base = dir;
	pop3_authfile_ops(&af, &ops);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		pop3_session_run(stream_new(sv[1]), &o, true, "test");
		_exit(0);
	}
	close(sv[1]);
	const char *script = "USER alice\r\nPASS pw\r\n";
	assert_int_equal(write(sv[0], script, strlen(script)), (ssize_t)strlen(script));
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	char b[4096];
	ssize_t r;
	while ((r = read(sv[0], b, sizeof(b))) > 0)	/* the server hangs up: no shutdown from our side */
		buf_append(&out, b, (size_t)r);
	close(sv[0]);
	assert_non_null(strstr(buf_cstr(&out), "+OK maildrop has 0 messages"));
	assert_non_null(strstr(buf_cstr(&out), "-ERR autologout"));
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	buf_free(&out);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parser),
		cmocka_unit_test_setup_teardown(test_authfile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_not_loopback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_loopback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_byte_at_a_time, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
