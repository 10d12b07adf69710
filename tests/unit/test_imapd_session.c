/* imapd sessions end to end over a socketpair: the server runs in a child process on a temp Maildir, the test is
 * the client. Login rules, BAD recovery, literals, SASL, mailbox commands, LIST/LSUB, SELECT counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "log.h"
#include "str.h"
#include "../../imapd/imapd.h"

struct env {
	char dir[64];
	char *maildir;
	pid_t pid;
	int fd;
	struct buf in;		/* bytes received and not yet returned */
};

static bool fake_auth(void *ctx, const char *user, const char *pass, bool encrypted, bool loopback,
		      struct imapd_login *out, bool *tempfail)
{
	struct env *e = ctx;
	(void)encrypted;
	(void)loopback;
	if (strcmp(user, "down") == 0) {
		*tempfail = true;
		return false;
	}
	if (strcmp(user, "fred") != 0 || strcmp(pass, "se cret") != 0)
		return false;
	out->user = xstrdup(user);
	out->maildir = xstrdup(e->maildir);
	out->uid = getuid();
	out->gid = getgid();
	return true;
}

static void start(struct env *e, bool loopback, bool plaintext)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	e->pid = fork();
	assert_true(e->pid >= 0);
	if (e->pid == 0) {
		close(sv[0]);
		struct imapd_settings set = {
			.plaintext_login = plaintext, .max_line = 2000, .max_literal = 100000, .max_literal_preauth = 100,
			.timeout_ms = 10000, .max_bad = 20, .auth = fake_auth, .auth_ctx = e,
		};
		struct imapd_session sess;
		imapd_session_init(&sess, &set, sv[1], loopback);
		imapd_session_run(&sess);
		imapd_session_free(&sess);
		exit(0);	/* not _exit: ASan builds check the server side for leaks too */
	}
	close(sv[1]);
	e->fd = sv[0];
	buf_init(&e->in, BUF_NOLIMIT);
}

static int setup(void **state)
{
	struct env *e = xcalloc(1, sizeof(*e));
	const char *tmp = getenv("TMPDIR");
	snprintf(e->dir, sizeof(e->dir), "%s/imapd-test-XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
	assert_non_null(mkdtemp(e->dir));
	size_t n = strlen(e->dir) + 8;
	e->maildir = xmalloc(n);
	snprintf(e->maildir, n, "%s/fred", e->dir);
	*state = e;
	return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static int teardown(void **state)
{
	struct env *e = *state;
	int rc = 0;
	if (e->pid > 0) {
		close(e->fd);
		int status = 0;
		alarm(10);
		waitpid(e->pid, &status, 0);
		alarm(0);
		/* the server must end cleanly (under ASan a leak makes the exit status non-zero) */
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "imapd session child ended with status %#x\n", (unsigned)status);
			rc = -1;
		}
	}
	buf_free(&e->in);
	nftw(e->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(e->maildir);
	free(e);
	return rc;
}

static void sendraw(struct env *e, const char *s)
{
	size_t n = strlen(s);
	if (getenv("IMAPD_TEST_TRACE"))
		fprintf(stderr, "C: %s\n", s);
	assert_int_equal(write(e->fd, s, n), (ssize_t)n);
}

/* Read one CRLF line (without CRLF); fails the test on timeout or EOF. */
static char *readline(struct env *e)
{
	for (;;) {
		char *nl = e->in.len ? memchr(e->in.data, '\n', e->in.len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - e->in.data);
			char *line = xstrndup(e->in.data, n && nl[-1] == '\r' ? n - 1 : n);
			if (getenv("IMAPD_TEST_TRACE"))
				fprintf(stderr, "S: %s\n", line);
			buf_consume(&e->in, n + 1);
			return line;
		}
		struct pollfd pfd = { .fd = e->fd, .events = POLLIN };
		assert_int_equal(poll(&pfd, 1, 5000), 1);
		char tmp[4096];
		ssize_t r = read(e->fd, tmp, sizeof(tmp));
		assert_true(r > 0);
		buf_append(&e->in, tmp, (size_t)r);
	}
}

/* Send a line and collect every line up to and including the reply tagged tag. */
static char *cmd_tag(struct env *e, const char *line, const char *tag)
{
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	size_t taglen = strlen(tag);

	sendraw(e, line);
	sendraw(e, "\r\n");
	for (;;) {
		char *l = readline(e);
		buf_puts(&out, l);
		buf_puts(&out, "\n");
		bool done = strncmp(l, tag, taglen) == 0 && l[taglen] == ' ';
		free(l);
		if (done)
			break;
	}
	return buf_steal(&out, NULL);
}

/* Send a tagged command and collect every line up to and including its tagged reply. */
static char *cmd(struct env *e, const char *line)
{
	char tag[64];
	size_t n = strcspn(line, " ");
	assert_true(n > 0 && n < sizeof(tag));
	memcpy(tag, line, n);
	tag[n] = '\0';
	return cmd_tag(e, line, tag);
}

#define EXPECT_TAG(e, line, tag, needle) do { \
	char *r_ = cmd_tag((e), (line), (tag)); \
	if (!strstr(r_, (needle))) \
		fail_msg("%s\n-> got:\n%s\nwanted: %s", (line), r_, (needle)); \
	free(r_); \
} while (0)

#define EXPECT(e, line, needle) do { \
	char *r_ = cmd((e), (line)); \
	if (!strstr(r_, (needle))) \
		fail_msg("%s\n-> got:\n%s\nwanted: %s", (line), r_, (needle)); \
	free(r_); \
} while (0)

#define EXPECT_NOT(e, line, needle) do { \
	char *r_ = cmd((e), (line)); \
	if (strstr(r_, (needle))) \
		fail_msg("%s\n-> got:\n%s\nnot wanted: %s", (line), r_, (needle)); \
	free(r_); \
} while (0)

static void login(struct env *e)
{
	char *g = readline(e);
	assert_non_null(strstr(g, "* OK [CAPABILITY IMAP4rev1"));
	free(g);
	EXPECT(e, "a0 LOGIN fred \"se cret\"", "a0 OK [CAPABILITY");
}

static void test_logindisabled(void **state)
{
	struct env *e = *state;
	start(e, false, false);
	char *g = readline(e);
	assert_non_null(strstr(g, "LOGINDISABLED"));
	assert_null(strstr(g, "AUTH=PLAIN"));
	free(g);
	EXPECT(e, "a1 LOGIN fred \"se cret\"", "a1 NO [PRIVACYREQUIRED]");
	EXPECT(e, "a2 AUTHENTICATE PLAIN AGZyZWQAc2UgY3JldA==", "a2 NO [PRIVACYREQUIRED]");
	EXPECT(e, "a3 LIST \"\" *", "a3 BAD log in first");
	EXPECT(e, "a4 LOGOUT", "* BYE");
}

static void test_login_and_errors(void **state)
{
	struct env *e = *state;
	start(e, true, false);
	char *g = readline(e);
	assert_non_null(strstr(g, "AUTH=PLAIN"));
	free(g);
	EXPECT(e, "a1 LOGIN fred wrong", "a1 NO [AUTHENTICATIONFAILED]");
	EXPECT(e, "a2 LOGIN down x", "a2 NO [UNAVAILABLE]");
	EXPECT(e, "a3 FROB", "a3 BAD unknown command");
	EXPECT(e, "a4 LOGIN (x", "a4 BAD unclosed list");
	EXPECT(e, "a5 NOOP extra", "a5 BAD");
	EXPECT(e, "a6 SELECT INBOX", "a6 BAD log in first");
	/* a pre-login literal past the small pre-auth limit is refused without a "+" */
	EXPECT(e, "a7 LOGIN {500}", "a7 BAD [TOOBIG]");
	/* synchronising literal: "+ OK" first, then the tagged reply */
	sendraw(e, "a8 LOGIN {4}\r\n");
	char *c = readline(e);
	assert_string_equal(c, "+ OK");
	free(c);
	sendraw(e, "fred {7+}\r\nse cret\r\n");
	c = readline(e);
	assert_non_null(strstr(c, "a8 OK [CAPABILITY"));
	assert_null(strstr(c, "AUTH="));
	free(c);
	EXPECT(e, "a9 LOGIN fred x", "a9 BAD already logged in");
	EXPECT(e, "b1 CAPABILITY", "* CAPABILITY IMAP4rev1");
	EXPECT(e, "b2 NAMESPACE", "* NAMESPACE ((\"\" \"/\")) NIL NIL");
	EXPECT(e, "b3 ID NIL", "* ID (\"name\" \"Postern\")");
	EXPECT(e, "b4 ID (\"name\" \"test\")", "b4 OK");
	EXPECT(e, "b5 ENABLE CONDSTORE", "* ENABLED");
	/* pipelined commands in one write, each answered in order */
	sendraw(e, "p1 NOOP\r\np2 NOOP\r\n");
	char *l = readline(e);
	assert_string_equal(l, "p1 OK NOOP completed");
	free(l);
	l = readline(e);
	assert_string_equal(l, "p2 OK NOOP completed");
	free(l);
	/* a client that sends one byte per write is parsed the same */
	static const char slow[] = "p3 ID (\"a\" {1+}\r\nb)\r\n";
	for (size_t i = 0; i < sizeof(slow) - 1; i++) {
		char one[2] = { slow[i], 0 };
		sendraw(e, one);
	}
	l = readline(e);
	assert_non_null(strstr(l, "* ID"));
	free(l);
	l = readline(e);
	assert_string_equal(l, "p3 OK ID completed");
	free(l);
	/* names needing escapes come back as quoted strings */
	EXPECT(e, "q1 CREATE \"a\\\"b\\\\c\"", "q1 OK");
	EXPECT(e, "q2 LIST \"\" a*", "* LIST (\\HasNoChildren) \"/\" \"a\\\"b\\\\c\"");
	EXPECT(e, "b6 CLOSE", "b6 BAD no mailbox selected");
	EXPECT(e, "b7 UID FETCH 1 FLAGS", "b7 BAD no mailbox selected");
	EXPECT(e, "b9 UID FROB 1", "b9 BAD unknown command");
	EXPECT(e, "b8 LOGOUT", "b8 OK");
}

static void test_sasl(void **state)
{
	struct env *e = *state;
	start(e, true, false);
	free(readline(e));
	/* PLAIN with SASL-IR, wrong authzid first */
	EXPECT(e, "a1 AUTHENTICATE PLAIN Ym9iAGZyZWQAc2UgY3JldA==", "a1 NO [AUTHORIZATIONFAILED]");
	EXPECT(e, "a2 AUTHENTICATE PLAIN !!!!", "a2 BAD invalid base64");
	EXPECT(e, "a3 AUTHENTICATE CRAM-MD5", "a3 NO unsupported");
	/* LOGIN via continuations, cancelled */
	sendraw(e, "a4 AUTHENTICATE LOGIN\r\n");
	char *c = readline(e);
	assert_string_equal(c, "+ VXNlcm5hbWU6");
	free(c);
	EXPECT_TAG(e, "*", "a4", "a4 BAD authentication cancelled");
	/* PLAIN via continuation */
	sendraw(e, "a5 AUTHENTICATE PLAIN\r\n");
	c = readline(e);
	assert_string_equal(c, "+ ");
	free(c);
	EXPECT_TAG(e, "AGZyZWQAc2UgY3JldA==", "a5", "a5 OK [CAPABILITY");
}

static void test_sasl_login(void **state)
{
	struct env *e = *state;
	start(e, true, false);
	free(readline(e));
	sendraw(e, "a1 AUTHENTICATE LOGIN ZnJlZA==\r\n");
	char *c = readline(e);
	assert_string_equal(c, "+ UGFzc3dvcmQ6");
	free(c);
	EXPECT_TAG(e, "c2UgY3JldA==", "a1", "a1 OK");
}

static void test_mailboxes(void **state)
{
	struct env *e = *state;
	start(e, true, false);
	login(e);
	/* SPECIAL-USE folders made at first login */
	EXPECT(e, "a1 LIST \"\" *", "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"");
	EXPECT(e, "a2 LIST \"\" *", "* LIST (\\HasNoChildren) \"/\" \"INBOX\"");
	EXPECT(e, "a3 LIST \"\" \"\"", "* LIST (\\Noselect) \"/\" \"\"");
	EXPECT(e, "a4 CREATE Lists/postern", "a4 OK");
	EXPECT(e, "a5 CREATE Lists/postern", "a5 NO [ALREADYEXISTS]");
	EXPECT(e, "a6 CREATE inbox", "a6 NO [ALREADYEXISTS]");
	EXPECT(e, "a7 CREATE .hidden", "a7 NO [CANNOT]");
	EXPECT(e, "a8 CREATE a/../b", "a8 NO [CANNOT]");
	/* the parent of Lists/postern does not exist: % shows it as \Noselect */
	EXPECT(e, "b1 LIST \"\" %", "* LIST (\\Noselect \\HasChildren) \"/\" \"Lists\"");
	EXPECT_NOT(e, "b2 LIST \"\" %", "Lists/postern");
	EXPECT(e, "b3 LIST Lists/ %", "* LIST (\\HasNoChildren) \"/\" \"Lists/postern\"");
	EXPECT(e, "b4 RENAME Nothing Mail", "b4 NO [NONEXISTENT]");
	/* a parent that is only a prefix moves its children (as Dovecot) */
	EXPECT(e, "b4a RENAME Lists Mail", "b4a OK");
	EXPECT(e, "b4b LIST \"\" Mail/*", "\"Mail/postern\"");
	EXPECT(e, "b4c RENAME Mail Lists", "b4c OK");
	EXPECT(e, "b5 RENAME Lists/postern Work/postern", "b5 OK");
	EXPECT(e, "b6 LIST \"\" *", "\"Work/postern\"");
	EXPECT_NOT(e, "b7 LIST \"\" *", "\"Lists/postern\"");
	EXPECT(e, "b8 RENAME Work/postern Sent", "b8 NO [ALREADYEXISTS]");
	EXPECT(e, "b9 RENAME Sent Sent/x", "b9 NO [CANNOT]");
	EXPECT(e, "ba RENAME \"\" \"\"", "ba NO");
	EXPECT(e, "bb RENAME \"\" /x", "bb NO");
	EXPECT(e, "bc CREATE \"\"", "bc NO [CANNOT]");
	EXPECT(e, "bd CREATE /", "bd NO [CANNOT]");
	EXPECT(e, "be DELETE \"\"", "be NO");
	EXPECT(e, "bf SELECT \"\"", "bf NO");
	/* a folder with children renames them too */
	EXPECT(e, "c1 CREATE Work", "c1 OK");
	EXPECT(e, "c2 RENAME Work Job", "c2 OK");
	EXPECT(e, "c3 LIST \"\" Job*", "* LIST (\\HasNoChildren) \"/\" \"Job/postern\"");
	EXPECT(e, "c4 LIST \"\" Job*", "* LIST (\\HasChildren) \"/\" \"Job\"");
	EXPECT(e, "c5 DELETE Job/postern", "c5 OK");
	EXPECT(e, "c6 DELETE Job/postern", "c6 NO [NONEXISTENT]");
	EXPECT(e, "c7 DELETE INBOX", "c7 NO [CANNOT]");
	{
		/* a name past the length cap is refused as a whole: "INBOX/<long>" must not act on INBOX */
		struct buf big = BUF_INIT(BUF_NOLIMIT);
		buf_puts(&big, "c8 RENAME INBOX/");
		for (int i = 0; i < 1100; i++)
			buf_putc(&big, 'x');
		buf_puts(&big, " Elsewhere");
		EXPECT(e, buf_cstr(&big), "c8 NO [CANNOT] mailbox name too long");
		buf_free(&big);
	}
	/* modified UTF-7 names round trip and are stored as UTF-8 */
	EXPECT(e, "d1 CREATE Entw&APw-rfe", "d1 OK");
	EXPECT(e, "d2 LIST \"\" Entw*", "* LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe\"");
	EXPECT(e, "d3 CREATE &AGE-", "d3 NO [CANNOT]");
	char path[256];
	snprintf(path, sizeof(path), "%s/.Entw\xc3\xbcrfe/cur", e->maildir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	/* subscriptions */
	EXPECT(e, "e1 LSUB \"\" *", "* LSUB (\\Trash) \"/\" \"Trash\"");
	EXPECT(e, "e2 SUBSCRIBE Job", "e2 OK");
	EXPECT(e, "e3 LSUB \"\" J*", "* LSUB () \"/\" \"Job\"");
	EXPECT(e, "e4 SUBSCRIBE Nope", "e4 NO [NONEXISTENT]");
	EXPECT(e, "e5 DELETE Job", "e5 OK");
	/* subscribed but gone: still listed, as subscribed (Dovecot does the same; \Noselect is for parents) */
	EXPECT(e, "e6 LSUB \"\" J*", "* LSUB () \"/\" \"Job\"");
	EXPECT(e, "e7 UNSUBSCRIBE Job", "e7 OK");
	EXPECT_NOT(e, "e8 LSUB \"\" *", "\"Job\"");
	EXPECT(e, "e9 LOGOUT", "* BYE");
}

static void put_file(const char *dir, const char *name)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("Subject: x\n\nbody\n", f);
	fclose(f);
}

static void test_select_status(void **state)
{
	struct env *e = *state;
	start(e, true, false);
	login(e);
	char d[256];
	snprintf(d, sizeof(d), "%s/new", e->maildir);
	put_file(d, "1700000000.M1P1.host,S=17,W=20");
	snprintf(d, sizeof(d), "%s/cur", e->maildir);
	put_file(d, "1700000001.M2P1.host,S=17,W=20:2,S");
	put_file(d, "1700000002.M3P1.host,S=17,W=20:2,");
	EXPECT(e, "a0 STATUS INBOX (RECENT UIDNEXT)", "* STATUS \"INBOX\" (RECENT 3 UIDNEXT 4)");
	EXPECT(e, "a0a EXAMINE INBOX", "* 3 RECENT");
	EXPECT(e, "a1 SELECT inbox", "* 3 RECENT");
	/* \Recent: only the first read-write SELECT gets the messages (STATUS and EXAMINE only look) */
	EXPECT(e, "a1a SELECT INBOX", "* 0 RECENT");
	EXPECT(e, "a2 SELECT INBOX", "* OK [UIDNEXT 4]");
	EXPECT(e, "a3 SELECT INBOX", "a3 OK [READ-WRITE]");
	EXPECT(e, "a4 SELECT INBOX", "* OK [UIDVALIDITY ");
	EXPECT(e, "a5 EXAMINE INBOX", "a5 OK [READ-ONLY]");
	EXPECT(e, "a6 STATUS INBOX (MESSAGES unseen RECENT)", "* STATUS \"INBOX\" (MESSAGES 3 UNSEEN 2 RECENT 0)");
	EXPECT(e, "a7 STATUS Nope (MESSAGES)", "a7 NO [NONEXISTENT]");
	EXPECT(e, "a8 STATUS INBOX (BOGUS)", "a8 BAD");
	EXPECT(e, "a9 CHECK", "a9 OK");
	EXPECT(e, "b1 SELECT Nope", "b1 NO [NONEXISTENT]");
	/* a failed SELECT leaves nothing selected */
	EXPECT(e, "b2 CHECK", "b2 BAD no mailbox selected");
	EXPECT(e, "b3 SELECT Sent", "* 0 EXISTS");
	EXPECT(e, "b4 UNSELECT", "b4 OK");
	/* RENAME INBOX moves the messages, INBOX stays */
	EXPECT(e, "b5 RENAME INBOX Old", "b5 OK");
	EXPECT(e, "b6 STATUS Old (MESSAGES)", "(MESSAGES 3)");
	EXPECT(e, "b7 STATUS INBOX (MESSAGES)", "(MESSAGES 0)");
}

static void test_auth_failures(void **state)
{
	struct env *e = *state;
	start(e, true, false);
	free(readline(e));
	EXPECT(e, "a1 LOGIN fred x", "a1 NO [AUTHENTICATIONFAILED]");
	EXPECT(e, "a2 AUTHENTICATE PLAIN AGZyZWQAeA==", "a2 NO [AUTHENTICATIONFAILED]");
	EXPECT(e, "a3 LOGIN fred y", "a3 NO [AUTHENTICATIONFAILED]");
	char *l = readline(e);
	assert_string_equal(l, "* BYE too many failed logins");
	free(l);
}

/* The one file in dir (a Maildir cur/ or new/), or NULL. */
static char *only_file(const char *dir)
{
	char *found = NULL;
	DIR *d = opendir(dir);
	struct dirent *de;
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		assert_null(found);
		found = xstrdup(de->d_name);
	}
	closedir(d);
	return found;
}

static void test_append(void **state)
{
	struct env *e = *state;
	start(e, true, false);
	login(e);
	EXPECT(e, "c0 CAPABILITY", "APPENDLIMIT=100000");
	sendraw(e, "a1 APPEND Drafts (\\Seen \\Draft $Kw) \" 7-Feb-1994 21:52:25 -0800\" {22}\r\n");
	char *l = readline(e);
	assert_string_equal(l, "+ OK");
	free(l);
	EXPECT_TAG(e, "Subject: hi\r\n\r\nbody\r\n\r", "a1", "a1 OK [APPENDUID ");
	char dir[256], path[512];
	snprintf(dir, sizeof(dir), "%s/.Drafts/cur", e->maildir);
	char *name = only_file(dir);
	assert_non_null(name);
	assert_non_null(strstr(name, ":2,DS"));
	assert_non_null(strstr(name, ",S=19,W=22"));	/* LF on disk: CRLF pairs became LF, the lone CR stays */
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal((long)st.st_mtime, 760686745L);	/* 1994-02-08 05:52:25 UTC */
	char content[64] = { 0 };
	FILE *f = fopen(path, "r");
	assert_int_equal(fread(content, 1, sizeof(content) - 1, f), 19);
	fclose(f);
	assert_string_equal(content, "Subject: hi\n\nbody\n\r");
	free(name);

	EXPECT(e, "a2 APPEND Nope {1+}\r\nx", "a2 NO [TRYCREATE]");
	EXPECT(e, "a3 APPEND INBOX \"31-Feb-2024 00:00:00 +0000\" {1+}\r\nx", "a3 BAD invalid date-time");
	EXPECT(e, "a4 APPEND INBOX (\\Recent) {1+}\r\nx", "a4 BAD");
	EXPECT(e, "a5 APPEND INBOX {0+}\r\n", "a5 NO [CANNOT]");
	EXPECT(e, "a6 APPEND INBOX \"x\"", "a6 BAD APPEND needs the message as a literal");
	static const char nul[] = "a7 APPEND INBOX {2+}\r\nx\0\r\n";
	assert_int_equal(write(e->fd, nul, sizeof(nul) - 1), (ssize_t)sizeof(nul) - 1);
	l = readline(e);
	assert_string_equal(l, "a7 NO [CANNOT] the message is empty or contains NUL bytes");
	free(l);
	/* appending to the selected mailbox announces the new count */
	EXPECT(e, "b1 SELECT INBOX", "* 0 EXISTS");
	EXPECT(e, "b2 APPEND INBOX {3+}\r\nx\r\n", "* 1 EXISTS");
	EXPECT(e, "b3 STATUS INBOX (MESSAGES UNSEEN)", "(MESSAGES 1 UNSEEN 1)");
	/* past APPENDLIMIT: a synchronising literal gets no "+" */
	EXPECT(e, "b4 APPEND INBOX {100001}", "b4 BAD [TOOBIG]");
}

static void test_preauth_timeout(void **state)
{
	struct env *e = *state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	e->pid = fork();
	assert_true(e->pid >= 0);
	if (e->pid == 0) {
		close(sv[0]);
		struct imapd_settings set = { .max_line = 2000, .max_literal = 1000, .timeout_ms = 60000,
			.preauth_timeout_ms = 200, .max_bad = 20, .auth = fake_auth, .auth_ctx = e };
		struct imapd_session sess;
		imapd_session_init(&sess, &set, sv[1], true);
		imapd_session_run(&sess);
		imapd_session_free(&sess);
		exit(0);
	}
	close(sv[1]);
	e->fd = sv[0];
	buf_init(&e->in, BUF_NOLIMIT);
	free(readline(e));
	/* silent before login: dropped after the short pre-login timeout, not the long one */
	char *l = readline(e);
	assert_string_equal(l, "* BYE idle for too long");
	free(l);
}

static void test_too_many_bad(void **state)
{
	struct env *e = *state;
	start(e, true, false);
	free(readline(e));
	for (int i = 0; i < 19; i++)
		EXPECT(e, "x FROB", "x BAD");
	sendraw(e, "x FROB\r\n");
	char *l = readline(e);
	assert_non_null(strstr(l, "x BAD"));
	free(l);
	l = readline(e);
	assert_non_null(strstr(l, "* BYE too many errors"));
	free(l);
}

int main(void)
{
	log_init("test_imapd");
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_logindisabled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_and_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sasl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sasl_login, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailboxes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_select_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append, setup, teardown),
		cmocka_unit_test_setup_teardown(test_preauth_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many_bad, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
