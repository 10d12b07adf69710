/* smtpd sessions end to end over a socketpair: the session runs in a forked child exactly as for a network client,
 * the test speaks SMTP to it and reads the queue files it leaves. Covers the protocol rules (order, syntax,
 * limits, pipelining, DATA and BDAT, smuggling, timeouts) and the policy decisions with a fake login check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "alloc.h"
#include "ipc.h"
#include "qproto.h"
#include "buf.h"
#include "log.h"
#include "qfile.h"
#include "../../smtpd/smtpd.h"

struct fx {
	char dir[64];
	char qdir[128];
	char logpath[128];
	struct smtpd_settings set;
	struct smtpd_policy_conf pc;
	const char *peer;	/* client IPv4 address the session believes in, NULL: none */
	pid_t pid;
	int fd;
	struct buf in;		/* bytes read from the session, not yet returned */
};

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/smtpd-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->qdir, sizeof(f->qdir), "%s/queue", f->dir);
	snprintf(f->logpath, sizeof(f->logpath), "%s/log", f->dir);
	assert_int_equal(mkdir(f->qdir, 0700), 0);
	char p[192];
	snprintf(p, sizeof(p), "%s/tmp", f->qdir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/incoming", f->qdir);
	assert_int_equal(mkdir(p, 0700), 0);
	f->set.hostname = "mx.example.test";
	f->set.banner = "mx.example.test ESMTP";
	f->set.size_limit = 100000;
	f->set.rcpt_limit = 1000;
	f->set.timeout_ms = 5000;
	f->set.hard_error_limit = 20;
	f->set.soft_error_limit = 10;
	f->set.error_sleep_ms = 0;
	f->set.junk_limit = 100;
	f->set.line_limit = 2048;
	f->set.data_line_limit = 1000;
	f->set.header_limit = 65536;
	f->set.bare_newline_reject = true;
	f->set.dsn = true;
	f->set.submission_fixups = true;
	f->set.queue_dir = f->qdir;
	f->pc.mydestination = "example.test, localhost";
	f->pc.mynetworks = "127.0.0.1/32, [::1]/128";
	f->pc.delimiters = "+";
	f->peer = "127.0.0.1";
	f->fd = -1;
	buf_init(&f->in, 1 << 20);
}

static void fx_start(struct fx *f)
{
	int sv[2];
	struct buf err = BUF_INIT(1024);

	f->set.policy = smtpd_policy_new(&f->pc, &err);
	assert_non_null(f->set.policy);
	buf_free(&err);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		struct sockaddr_in sin;
		close(sv[0]);
		log_init("smtpd");
		log_to_file(f->logpath);
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		if (f->peer)
			inet_pton(AF_INET, f->peer, &sin.sin_addr);
		smtpd_session_run(sv[1], f->peer ? (struct sockaddr *)&sin : NULL, sizeof(sin), &f->set);
		smtpd_policy_free(&f->set.policy);
		_exit(0);
	}
	close(sv[1]);
	f->fd = sv[0];
}

/* Wait for the session to end; returns its exit status. */
static int fx_wait(struct fx *f)
{
	int st = 0;

	if (f->pid > 0) {
		assert_int_equal(waitpid(f->pid, &st, 0), f->pid);
		f->pid = 0;
	}
	return st;
}

static void rm_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char p[512];

	if (!d) {
		unlink(path);
		return;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		rm_tree(p);
	}
	closedir(d);
	rmdir(path);
}

static void fx_done(struct fx *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->pid > 0) {
		kill(f->pid, SIGKILL);
		fx_wait(f);
	}
	smtpd_policy_free(&f->set.policy);
	buf_free(&f->in);
	rm_tree(f->dir);
}

static void csend(struct fx *f, const char *s)
{
	size_t n = strlen(s), off = 0;
	while (off < n) {
		ssize_t w = write(f->fd, s + off, n - off);
		assert_true(w > 0);
		off += (size_t)w;
	}
}

/* Fill f->in; false on EOF or after 10 s. */
static bool cfill(struct fx *f)
{
	struct pollfd p = { f->fd, POLLIN, 0 };
	char b[4096];

	if (poll(&p, 1, 10000) <= 0)
		return false;
	ssize_t r = read(f->fd, b, sizeof(b));
	if (r <= 0)
		return false;
	assert_true(buf_append(&f->in, b, (size_t)r));
	return true;
}

/* One whole reply (all its lines); returns the last line without CRLF (static), "" on EOF. */
static const char *creply(struct fx *f)
{
	static char last[1024];

	for (;;) {
		char *nl = f->in.len ? memchr(f->in.data, '\n', f->in.len) : NULL;
		if (!nl) {
			if (!cfill(f))
				return "";
			continue;
		}
		size_t len = (size_t)(nl - f->in.data) + 1;
		bool final = len >= 4 && f->in.data[3] == ' ';
		size_t cl = len >= 2 ? len - 2 : 0;
		if (cl >= sizeof(last))
			cl = sizeof(last) - 1;
		memcpy(last, f->in.data, cl);
		last[cl] = '\0';
		buf_consume(&f->in, len);
		if (final)
			return last;
	}
}

/* All reply lines of one reply, joined with "\n". Caller frees. */
static char *creply_all(struct fx *f)
{
	struct buf all = BUF_INIT(BUF_NOLIMIT);

	for (;;) {
		char *nl = f->in.len ? memchr(f->in.data, '\n', f->in.len) : NULL;
		if (!nl) {
			if (!cfill(f))
				break;
			continue;
		}
		size_t len = (size_t)(nl - f->in.data) + 1;
		bool final = len >= 4 && f->in.data[3] == ' ';
		buf_append(&all, f->in.data, len - 2);
		buf_putc(&all, '\n');
		buf_consume(&f->in, len);
		if (final)
			break;
	}
	return buf_steal(&all, NULL);
}

static void expect(struct fx *f, const char *prefix)
{
	const char *r = creply(f);
	if (strncmp(r, prefix, strlen(prefix)) != 0)
		fail_msg("expected reply \"%s...\", got \"%s\"", prefix, r);
}

static void send_expect(struct fx *f, const char *cmd, const char *prefix)
{
	csend(f, cmd);
	expect(f, prefix);
}

static bool at_eof(struct fx *f)
{
	while (cfill(f))
		;
	return true;
}

static size_t count_files(struct fx *f, const char *sub)
{
	char p[192];
	DIR *d;
	struct dirent *e;
	size_t n = 0;

	snprintf(p, sizeof(p), "%s/%s", f->qdir, sub);
	d = opendir(p);
	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Read back queue file id: envelope into env, content into content. */
static void read_queue(struct fx *f, const char *id, struct qfile_envelope *env, struct buf *content)
{
	char p[256];
	struct buf err = BUF_INIT(1024);
	char b[4096];
	ssize_t r;

	snprintf(p, sizeof(p), "%s/incoming/%s", f->qdir, id);
	int fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	memset(env, 0, sizeof(*env));
	if (!qfile_read_envelope(fd, env, &err))
		fail_msg("queue file %s: %s", id, buf_cstr(&err));
	while ((r = read(fd, b, sizeof(b))) > 0)
		assert_true(buf_append(content, b, (size_t)r));
	close(fd);
	buf_free(&err);
}

/* "250 2.0.0 Ok: queued as ID" -> ID (static) */
static const char *queued_id(const char *reply)
{
	static char id[64];
	const char *p = strstr(reply, "queued as ");
	assert_non_null(p);
	size_t n = strspn(p + 10, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ");
	assert_true(n > 0 && n < sizeof(id));
	memcpy(id, p + 10, n);
	id[n] = '\0';
	return id;
}

static char *log_text(struct fx *f)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	char t[4096];
	ssize_t r;
	int fd = open(f->logpath, O_RDONLY);
	if (fd >= 0) {
		while ((r = read(fd, t, sizeof(t))) > 0)
			buf_append(&b, t, (size_t)r);
		close(fd);
	}
	buf_putc(&b, '\0');
	return buf_steal(&b, NULL);
}

/* ------------------------------------------------------------------------------------------------------------- */

static void test_greeting_and_ehlo(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	f.peer = "192.0.2.1";	/* never connected to: only what the session believes */
	fx_start(&f);
	expect(&f, "220 mx.example.test ESMTP");
	csend(&f, "EHLO client.example\r\n");
	char *all = creply_all(&f);
	assert_non_null(strstr(all, "250-mx.example.test\n"));
	assert_non_null(strstr(all, "250-PIPELINING\n"));
	assert_non_null(strstr(all, "250-SIZE 100000\n"));
	assert_non_null(strstr(all, "250-8BITMIME\n"));
	assert_non_null(strstr(all, "250-SMTPUTF8\n"));
	assert_non_null(strstr(all, "250-ENHANCEDSTATUSCODES\n"));
	assert_non_null(strstr(all, "250-DSN\n"));
	assert_non_null(strstr(all, "250 CHUNKING\n"));
	/* no certificate: no STARTTLS; not loopback and no TLS: no AUTH */
	assert_null(strstr(all, "STARTTLS"));
	assert_null(strstr(all, "AUTH"));
	free(all);
	send_expect(&f, "HELO other\r\n", "250 mx.example.test");
	send_expect(&f, "NOOP\r\n", "250 2.0.0");
	send_expect(&f, "VRFY root\r\n", "252 2.0.0");
	send_expect(&f, "EXPN staff\r\n", "502 5.5.1");
	send_expect(&f, "HELP\r\n", "214 2.0.0");
	send_expect(&f, "QUIT\r\n", "221 2.0.0");
	assert_true(at_eof(&f));
	assert_int_equal(fx_wait(&f), 0);
	fx_done(&f);
}

static void test_loopback_offers_auth(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	fx_start(&f);
	expect(&f, "220 ");
	csend(&f, "EHLO c\r\n");
	char *all = creply_all(&f);
	assert_non_null(strstr(all, "250 AUTH PLAIN LOGIN\n"));
	free(all);
	send_expect(&f, "QUIT\r\n", "221 ");
	fx_done(&f);
}

static void test_order_and_syntax(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "MAIL FROM:<a@example.test>\r\n", "503 5.5.1");
	send_expect(&f, "EHLO\r\n", "501 5.5.4");
	send_expect(&f, "EHLO c\r\n", "250 ");
	send_expect(&f, "RCPT TO:<postmaster@example.test>\r\n", "503 5.5.1");
	send_expect(&f, "DATA\r\n", "503 5.5.1");
	send_expect(&f, "FOO bar\r\n", "500 5.5.2");
	send_expect(&f, "MAIL FROM:<bad\r\n", "501 5.1.7");
	send_expect(&f, "MAIL TO:<a@example.test>\r\n", "501 5.5.4");
	send_expect(&f, "MAIL FROM:<a@example.test> FOO=BAR\r\n", "555 5.5.4");
	send_expect(&f, "MAIL FROM:<a@example.test>\r\n", "250 2.1.0");
	send_expect(&f, "MAIL FROM:<a@example.test>\r\n", "503 5.5.1");
	send_expect(&f, "DATA\r\n", "554 5.5.1");
	send_expect(&f, "RCPT TO:<a b@example.test>\r\n", "501 5.1.3");
	send_expect(&f, "RCPT TO:<>\r\n", "501 5.1.3");
	send_expect(&f, "RCPT TO:<Postmaster>\r\n", "250 2.1.5");
	send_expect(&f, "DATA extra\r\n", "501 5.5.4");
	send_expect(&f, "RSET\r\n", "250 2.0.0");
	send_expect(&f, "RCPT TO:<postmaster@example.test>\r\n", "503 5.5.1");
	/* non-ASCII address without SMTPUTF8 */
	send_expect(&f, "MAIL FROM:<j\xc3\xb6rg@example.test>\r\n", "553 5.6.7");
	send_expect(&f, "QUIT\r\n", "221 ");
	fx_done(&f);
}

static void test_pipelined_message_round_trip(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "EHLO c\r\n", "250 ");
	/* the whole transaction in one write (RFC 2920) */
	csend(&f, "MAIL FROM:<sender@remote.test> BODY=8BITMIME\r\n"
	          "RCPT TO:<postmaster@example.test>\r\n"
	          "RCPT TO:<root@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;root+40remote.test\r\n"
	          "DATA\r\n"
	          "Subject: dots\r\n\r\n"
	          "..leading dot\r\n"
	          ".\r\n"
	          "QUIT\r\n");
	expect(&f, "250 2.1.0");
	expect(&f, "250 2.1.5");
	expect(&f, "250 2.1.5");	/* loopback 127.0.0.1 is in mynetworks: relay allowed */
	expect(&f, "354 ");
	const char *r = creply(&f);
	assert_non_null(strstr(r, "250 2.0.0 Ok: queued as "));
	char id[64];
	snprintf(id, sizeof(id), "%s", queued_id(r));
	expect(&f, "221 ");
	fx_wait(&f);
	assert_int_equal(count_files(&f, "incoming"), 1);
	assert_int_equal(count_files(&f, "tmp"), 0);

	struct qfile_envelope env;
	struct buf content = BUF_INIT(BUF_NOLIMIT);
	read_queue(&f, id, &env, &content);
	assert_string_equal(env.sender, "sender@remote.test");
	assert_int_equal(env.nrcpts, 2);
	assert_string_equal(env.rcpts[0].addr, "postmaster@example.test");
	assert_string_equal(env.rcpts[1].addr, "root@remote.test");
	assert_int_equal(env.rcpts[1].notify, QFILE_NOTIFY_SUCCESS | QFILE_NOTIFY_FAILURE);
	assert_string_equal(env.rcpts[1].orcpt, "rfc822;root@remote.test");
	assert_string_equal(env.body, "8BITMIME");
	assert_string_equal(env.protocol, "ESMTP");
	assert_string_equal(env.helo, "c");
	assert_string_equal(env.client_addr, "127.0.0.1");
	const char *c = buf_cstr(&content);
	assert_true(strncmp(c, "Received: from c (unknown [127.0.0.1])\n", 39) == 0);
	assert_non_null(strstr(c, "by mx.example.test (Postern) with ESMTP id "));
	assert_null(strstr(c, "\tfor <"));	/* two recipients: none named */
	assert_non_null(strstr(c, "\nSubject: dots\n\n.leading dot\n"));
	assert_null(strstr(c, "\r"));
	/* no login: no Message-ID or Date added */
	assert_null(strstr(c, "Message-ID:"));
	qfile_envelope_free(&env);
	buf_free(&content);

	char *log = log_text(&f);
	char want[128];
	snprintf(want, sizeof(want), "%s: client=unknown[127.0.0.1]", id);
	assert_non_null(strstr(log, want));
	snprintf(want, sizeof(want), "%s: from=<sender@remote.test> size=", id);
	assert_non_null(strstr(log, want));
	assert_non_null(strstr(log, "nrcpt=2"));
	free(log);
	fx_done(&f);
}

static void send_message(struct fx *f, const char *body, const char *want)
{
	send_expect(f, "MAIL FROM:<s@remote.test>\r\n", "250 ");
	send_expect(f, "RCPT TO:<postmaster@example.test>\r\n", "250 ");
	send_expect(f, "DATA\r\n", "354 ");
	csend(f, body);
	expect(f, want);
}

static void test_smuggling_variants(void **state)
{
	(void)state;
	static const char *const fake_ends[] = {
		"a\n.\nMAIL FROM:<x@evil.test>\r\n",
		"a\r\n.\nRCPT TO:<x@evil.test>\r\n",
		"a\n.\r\nDATA\r\n",
		"a\r.\r\n",
		"a\r\n.\r\r\nQUIT\r\n",
	};
	for (size_t i = 0; i < sizeof(fake_ends) / sizeof(fake_ends[0]); i++) {
		struct fx f;
		fx_init(&f);
		fx_start(&f);
		expect(&f, "220 ");
		send_expect(&f, "EHLO c\r\n", "250 ");
		send_expect(&f, "MAIL FROM:<s@remote.test>\r\n", "250 ");
		send_expect(&f, "RCPT TO:<postmaster@example.test>\r\n", "250 ");
		send_expect(&f, "DATA\r\n", "354 ");
		/* the fake end must not end the data: nothing answers until the real end */
		csend(&f, fake_ends[i]);
		struct pollfd p = { f.fd, POLLIN, 0 };
		assert_int_equal(poll(&p, 1, 200), 0);
		csend(&f, "tail\r\n.\r\n");
		expect(&f, "550 5.5.2");
		/* the session is in step: the next command is a command */
		send_expect(&f, "NOOP\r\n", "250 ");
		send_expect(&f, "QUIT\r\n", "221 ");
		fx_wait(&f);
		assert_int_equal(count_files(&f, "incoming"), 0);
		assert_int_equal(count_files(&f, "tmp"), 0);
		fx_done(&f);
	}
}

static void test_bare_lf_normalized(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	f.set.bare_newline_reject = false;
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "EHLO c\r\n", "250 ");
	send_message(&f, "a\n.\nb\r\n.\r\n", "250 2.0.0");
	send_expect(&f, "QUIT\r\n", "221 ");
	fx_done(&f);
}

static void test_size_limits(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	f.set.size_limit = 1000;
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "EHLO c\r\n", "250 ");
	send_expect(&f, "MAIL FROM:<s@remote.test> SIZE=1001\r\n", "552 5.3.4");
	send_expect(&f, "MAIL FROM:<s@remote.test> SIZE=99999999999999999999999\r\n", "552 5.3.4");
	send_expect(&f, "MAIL FROM:<s@remote.test> SIZE=500\r\n", "250 ");
	send_expect(&f, "RCPT TO:<postmaster@example.test>\r\n", "250 ");
	send_expect(&f, "DATA\r\n", "354 ");
	struct buf big = BUF_INIT(BUF_NOLIMIT);
	for (int i = 0; i < 40; i++)
		buf_puts(&big, "0123456789012345678901234567890123456789012345678\r\n");
	buf_puts(&big, ".\r\n");
	csend(&f, buf_cstr(&big));
	expect(&f, "552 5.3.4");
	/* BDAT over the limit: the chunk is still read, then refused */
	send_expect(&f, "MAIL FROM:<s@remote.test>\r\n", "250 ");
	send_expect(&f, "RCPT TO:<postmaster@example.test>\r\n", "250 ");
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "BDAT %zu LAST\r\n", big.len);
	csend(&f, cmd);
	csend(&f, buf_cstr(&big));
	expect(&f, "552 5.3.4");
	send_expect(&f, "NOOP\r\n", "250 ");
	send_expect(&f, "QUIT\r\n", "221 ");
	fx_wait(&f);
	assert_int_equal(count_files(&f, "incoming"), 0);
	assert_int_equal(count_files(&f, "tmp"), 0);
	buf_free(&big);
	fx_done(&f);
}

static void test_long_lines(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "EHLO c\r\n", "250 ");
	struct buf l = BUF_INIT(BUF_NOLIMIT);
	buf_puts(&l, "NOOP ");
	for (int i = 0; i < 3000; i++)
		buf_putc(&l, 'x');
	buf_puts(&l, "\r\n");
	send_expect(&f, buf_cstr(&l), "500 5.5.2");
	send_expect(&f, "NOOP\r\n", "250 ");
	/* a DATA line over 1000 bytes */
	buf_reset(&l);
	for (int i = 0; i < 1001; i++)
		buf_putc(&l, 'y');
	buf_puts(&l, "\r\n.\r\n");
	send_message(&f, buf_cstr(&l), "554 5.6.0");
	/* exactly 998 + CRLF is fine */
	buf_reset(&l);
	for (int i = 0; i < 998; i++)
		buf_putc(&l, 'z');
	buf_puts(&l, "\r\n.\r\n");
	send_message(&f, buf_cstr(&l), "250 2.0.0");
	send_expect(&f, "QUIT\r\n", "221 ");
	buf_free(&l);
	fx_done(&f);
}

static void test_recipient_limit(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	f.set.rcpt_limit = 3;
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "EHLO c\r\n", "250 ");
	send_expect(&f, "MAIL FROM:<s@remote.test>\r\n", "250 ");
	for (int i = 0; i < 3; i++)
		send_expect(&f, "RCPT TO:<postmaster@example.test>\r\n", "250 ");
	send_expect(&f, "RCPT TO:<postmaster@example.test>\r\n", "452 4.5.3");
	send_expect(&f, "QUIT\r\n", "221 ");
	fx_done(&f);
}

static void test_error_limit_disconnects(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	f.set.hard_error_limit = 3;
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "BOGUS\r\n", "500 ");
	send_expect(&f, "BOGUS\r\n", "500 ");
	send_expect(&f, "BOGUS\r\n", "500 ");
	expect(&f, "421 4.7.0");
	assert_true(at_eof(&f));
	assert_int_equal(fx_wait(&f), 0);
	fx_done(&f);
}

static void test_junk_limit(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	f.set.junk_limit = 2;
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "NOOP\r\n", "250 ");
	send_expect(&f, "NOOP\r\n", "250 ");
	send_expect(&f, "NOOP\r\n", "421 4.7.0");
	assert_true(at_eof(&f));
	fx_done(&f);
}

static void test_timeout(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	f.set.timeout_ms = 300;
	fx_start(&f);
	expect(&f, "220 ");
	csend(&f, "EHLO c\r\nNOO");	/* a partial command, then silence */
	expect(&f, "250 ");
	expect(&f, "421 4.4.2");
	assert_true(at_eof(&f));
	fx_done(&f);
}

static void test_disconnect_mid_data_leaves_nothing(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "EHLO c\r\n", "250 ");
	send_expect(&f, "MAIL FROM:<s@remote.test>\r\n", "250 ");
	send_expect(&f, "RCPT TO:<postmaster@example.test>\r\n", "250 ");
	send_expect(&f, "DATA\r\n", "354 ");
	csend(&f, "Subject: half\r\n\r\nsome text\r\n");
	usleep(100000);
	close(f.fd);
	f.fd = -1;
	assert_int_equal(fx_wait(&f), 0);
	assert_int_equal(count_files(&f, "incoming"), 0);
	assert_int_equal(count_files(&f, "tmp"), 0);
	char *log = log_text(&f);
	assert_non_null(strstr(log, "lost connection after DATA content"));
	free(log);
	fx_done(&f);
}

static void test_bdat_chunks(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "EHLO c\r\n", "250 ");
	/* BDAT before RCPT: the chunk is consumed, then refused */
	send_expect(&f, "BDAT 5\r\nhello", "503 5.5.1");
	send_expect(&f, "MAIL FROM:<s@remote.test>\r\n", "250 ");
	send_expect(&f, "RCPT TO:<postmaster@example.test>\r\n", "250 ");
	/* pipelined chunks; a chunk may hold what looks like commands and a lone dot */
	csend(&f, "BDAT 19\r\nSubject: chunks\r\n\r\n"
	          "BDAT 15\r\nQUIT\r\n.\r\nRSET\r\n"
	          "BDAT 0 LAST\r\n");
	expect(&f, "250 2.0.0 Ok: 19");
	expect(&f, "250 2.0.0 Ok: 15");
	const char *r = creply(&f);
	char id[64];
	snprintf(id, sizeof(id), "%s", queued_id(r));
	send_expect(&f, "MAIL FROM:<s@remote.test>\r\n", "250 ");
	send_expect(&f, "RCPT TO:<postmaster@example.test>\r\n", "250 ");
	send_expect(&f, "BDAT 3\r\nabc", "250 ");
	send_expect(&f, "MAIL FROM:<s@remote.test>\r\n", "503 5.5.1");
	send_expect(&f, "RSET\r\n", "250 ");
	send_expect(&f, "BDAT x\r\n", "501 5.5.4");
	assert_true(at_eof(&f));
	fx_wait(&f);
	assert_int_equal(count_files(&f, "incoming"), 1);
	assert_int_equal(count_files(&f, "tmp"), 0);
	struct qfile_envelope env;
	struct buf content = BUF_INIT(BUF_NOLIMIT);
	read_queue(&f, id, &env, &content);
	assert_non_null(strstr(buf_cstr(&content), "\nSubject: chunks\n\nQUIT\n.\nRSET\n"));
	assert_non_null(strstr(buf_cstr(&content), "\tfor <postmaster@example.test>; "));
	qfile_envelope_free(&env);
	buf_free(&content);
	fx_done(&f);
}

static void test_smtputf8(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "EHLO c\r\n", "250 ");
	send_expect(&f, "MAIL FROM:<j\xc3\xb6rg@b\xc3\xbc" "cher.test> SMTPUTF8 BODY=8BITMIME\r\n", "250 ");
	send_expect(&f, "RCPT TO:<postmaster@example.test>\r\n", "250 ");
	send_expect(&f, "DATA\r\n", "354 ");
	csend(&f, "Subject: Gr\xc3\xbc\xc3\x9f" "e\r\n\r\n\xe2\x82\xac\r\n.\r\n");
	const char *r = creply(&f);
	char id[64];
	snprintf(id, sizeof(id), "%s", queued_id(r));
	send_expect(&f, "QUIT\r\n", "221 ");
	fx_wait(&f);
	struct qfile_envelope env;
	struct buf content = BUF_INIT(BUF_NOLIMIT);
	read_queue(&f, id, &env, &content);
	assert_true(env.smtputf8);
	assert_string_equal(env.sender, "j\xc3\xb6rg@b\xc3\xbc" "cher.test");
	assert_string_equal(env.protocol, "UTF8SMTP");
	assert_non_null(strstr(buf_cstr(&content), "Subject: Gr\xc3\xbc\xc3\x9f" "e\n\n\xe2\x82\xac\n"));
	qfile_envelope_free(&env);
	buf_free(&content);
	fx_done(&f);
}

static void test_relay_control(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	f.peer = "127.0.0.2";	/* loopback, but outside mynetworks 127.0.0.1/32 */
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "EHLO c\r\n", "250 ");
	send_expect(&f, "MAIL FROM:<s@remote.test>\r\n", "250 ");
	send_expect(&f, "RCPT TO:<someone@elsewhere.test>\r\n", "554 5.7.1");
	send_expect(&f, "RCPT TO:<nobody-here@example.test>\r\n", "550 5.1.1");
	send_expect(&f, "RCPT TO:<Postmaster@EXAMPLE.test>\r\n", "250 ");
	send_expect(&f, "RCPT TO:<abuse@localhost>\r\n", "250 ");
	send_expect(&f, "QUIT\r\n", "221 ");
	char *log = log_text(&f);
	assert_non_null(strstr(log, "NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 554 5.7.1 <someone@elsewhere.test>: "
	                            "Relay access denied; from=<s@remote.test> to=<someone@elsewhere.test>"));
	free(log);
	fx_done(&f);
}

static enum smtpd_verdict fake_check(const struct smtpd_auth_req *rq, struct buf *user)
{
	const char *authcid = rq->authcid, *passwd = rq->passwd;

	if (strcmp(authcid, "alice@example.test") == 0 && strcmp(passwd, "secret") == 0) {
		buf_puts(user, authcid);
		return SMTPD_OK;
	}
	if (strcmp(authcid, "down@example.test") == 0)
		return SMTPD_TEMPFAIL;
	return SMTPD_REJECT;
}

/* base64 of "\0alice@example.test\0secret" and friends */
#define PLAIN_ALICE "AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ="
#define PLAIN_WRONG "AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw=="

static void test_auth_and_submission(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	f.peer = "127.0.0.2";
	f.set.auth_required = true;
	smtpd_auth_check = fake_check;
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "AUTH PLAIN " PLAIN_ALICE "\r\n", "503 5.5.1");	/* before EHLO */
	send_expect(&f, "EHLO c\r\n", "250 ");
	send_expect(&f, "MAIL FROM:<alice@example.test>\r\n", "530 5.7.0");
	send_expect(&f, "AUTH CRAM-MD5\r\n", "504 5.5.4");
	send_expect(&f, "AUTH PLAIN " PLAIN_WRONG "\r\n", "535 5.7.8");
	send_expect(&f, "AUTH PLAIN\r\n", "334 ");
	send_expect(&f, "*\r\n", "501 5.0.0");
	send_expect(&f, "AUTH PLAIN\r\n", "334 ");
	send_expect(&f, "not base64!\r\n", "501 5.5.2");
	/* LOGIN: user, then password */
	send_expect(&f, "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6");
	send_expect(&f, "YWxpY2VAZXhhbXBsZS50ZXN0\r\n", "334 UGFzc3dvcmQ6");
	send_expect(&f, "c2VjcmV0\r\n", "235 2.7.0");
	send_expect(&f, "AUTH PLAIN " PLAIN_ALICE "\r\n", "503 5.5.1");
	/* the sender must belong to the login */
	send_expect(&f, "MAIL FROM:<bob@example.test>\r\n", "553 5.7.1");
	send_expect(&f, "MAIL FROM:<Alice+list@Example.TEST>\r\n", "250 ");
	/* authenticated: relaying allowed from outside mynetworks */
	send_expect(&f, "RCPT TO:<someone@elsewhere.test>\r\n", "250 ");
	send_expect(&f, "DATA\r\n", "354 ");
	csend(&f, "Subject: no id\r\n\r\nbody\r\n.\r\n");
	const char *r = creply(&f);
	char id[64];
	snprintf(id, sizeof(id), "%s", queued_id(r));
	send_expect(&f, "QUIT\r\n", "221 ");
	fx_wait(&f);
	struct qfile_envelope env;
	struct buf content = BUF_INIT(BUF_NOLIMIT);
	read_queue(&f, id, &env, &content);
	assert_string_equal(env.auth_user, "alice@example.test");
	assert_string_equal(env.protocol, "ESMTPA");
	const char *c = buf_cstr(&content);
	assert_non_null(strstr(c, "(Authenticated sender: alice@example.test)\n"));
	char want[128];
	snprintf(want, sizeof(want), "\nMessage-ID: <%s@mx.example.test>\nDate: ", id);
	assert_non_null(strstr(c, want));
	qfile_envelope_free(&env);
	buf_free(&content);
	smtpd_auth_check = smtpd_auth_check_daemon;
	fx_done(&f);
}

static void test_auth_tempfail_and_existing_headers(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	smtpd_auth_check = fake_check;
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "EHLO c\r\n", "250 ");
	/* "\0down@example.test\0x" */
	send_expect(&f, "AUTH PLAIN AGRvd25AZXhhbXBsZS50ZXN0AHg=\r\n", "454 4.7.0");
	send_expect(&f, "AUTH PLAIN " PLAIN_ALICE "\r\n", "235 ");
	send_message(&f, "Message-Id: <own@x>\r\nDATE: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nb\r\n.\r\n", "250 2.0.0");
	send_expect(&f, "QUIT\r\n", "221 ");
	fx_wait(&f);
	assert_int_equal(count_files(&f, "incoming"), 1);
	DIR *d;
	char p[192];
	snprintf(p, sizeof(p), "%s/incoming", f.qdir);
	d = opendir(p);
	struct dirent *e;
	char id[300] = "";
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			snprintf(id, sizeof(id), "%s", e->d_name);
	closedir(d);
	struct qfile_envelope env;
	struct buf content = BUF_INIT(BUF_NOLIMIT);
	read_queue(&f, id, &env, &content);
	assert_null(strstr(buf_cstr(&content), "Message-ID:"));
	assert_null(strstr(buf_cstr(&content), "\nDate:"));
	qfile_envelope_free(&env);
	buf_free(&content);
	smtpd_auth_check = smtpd_auth_check_daemon;
	fx_done(&f);
}

static void test_tls_required(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	f.set.tls_mode = SMTPD_TLS_REQUIRE;
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "EHLO c\r\n", "250 ");
	send_expect(&f, "MAIL FROM:<a@example.test>\r\n", "530 5.7.0");
	send_expect(&f, "AUTH PLAIN " PLAIN_ALICE "\r\n", "530 5.7.0");
	send_expect(&f, "STARTTLS\r\n", "502 5.5.1");	/* no certificate in this test */
	send_expect(&f, "QUIT\r\n", "221 ");
	fx_done(&f);
}

static void test_http_dropped(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "GET / HTTP/1.0\r\n", "221 2.7.0");
	assert_true(at_eof(&f));
	fx_done(&f);
}

static void test_byte_at_a_time(void **state)
{
	(void)state;
	struct fx f;
	const char *script = "EHLO c\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<postmaster@example.test>\r\nDATA\r\n"
	                     "Subject: slow\r\n\r\n..x\r\n.\r\nQUIT\r\n";
	fx_init(&f);
	fx_start(&f);
	expect(&f, "220 ");
	for (const char *p = script; *p; p++) {
		assert_int_equal(write(f.fd, p, 1), 1);
		usleep(200);
	}
	char *ehlo = creply_all(&f);
	assert_non_null(strstr(ehlo, "CHUNKING"));
	free(ehlo);
	expect(&f, "250 2.1.0");
	expect(&f, "250 2.1.5");
	expect(&f, "354 ");
	expect(&f, "250 2.0.0 Ok: queued as ");
	expect(&f, "221 ");
	fx_done(&f);
}

/* A reply must not wait in our buffer while the session waits for the rest of a half-sent command. */
static void test_flush_before_partial_command(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	fx_start(&f);
	expect(&f, "220 ");
	csend(&f, "NOOP\r\nNO");
	expect(&f, "250 ");
	csend(&f, "OP\r\n");
	expect(&f, "250 ");
	fx_done(&f);
}

static void test_qmgr_wakeup(void **state)
{
	(void)state;
	struct fx f;
	char path[128];
	fx_init(&f);
	snprintf(path, sizeof(path), "%s/qmgr", f.dir);
	int lfd = ipc_listen(path, 0600, 4);
	assert_true(lfd >= 0);
	f.set.qmgr_socket = path;
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "EHLO c\r\n", "250 ");
	send_message(&f, "Subject: wake\r\n\r\nx\r\n.\r\n", "250 2.0.0");
	struct pollfd p = { lfd, POLLIN, 0 };
	assert_int_equal(poll(&p, 1, 5000), 1);
	int c = accept(lfd, NULL, NULL);
	assert_true(c >= 0);
	struct ipc_msg *m = NULL;
	struct buf err = BUF_INIT(1024);
	/* decoded with qmgr's own table: anything it would refuse fails here */
	if (ipc_recv(c, &qproto_qmgr, 65536, 5000, &m, &err) != 1)
		fail_msg("no wakeup frame: %s", buf_cstr(&err));
	assert_int_equal(m->type, QP_WAKEUP);
	assert_int_equal(m->id, 0);	/* one-way */
	ipc_msg_free(&m);
	buf_free(&err);
	close(c);
	/* qmgr gone: the next message is still accepted */
	close(lfd);
	send_message(&f, "Subject: no qmgr\r\n\r\nx\r\n.\r\n", "250 2.0.0");
	send_expect(&f, "QUIT\r\n", "221 ");
	fx_done(&f);
}

/* A throwaway self-signed certificate for the STARTTLS tests, made in memory. */
static SSL_CTX *test_server_ctx(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *crt = X509_new();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(key);
	assert_non_null(crt);
	assert_non_null(ctx);
	ASN1_INTEGER_set(X509_get_serialNumber(crt), 1);
	X509_gmtime_adj(X509_getm_notBefore(crt), 0);
	X509_gmtime_adj(X509_getm_notAfter(crt), 3600);
	X509_set_pubkey(crt, key);
	X509_NAME *name = X509_get_subject_name(crt);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"mx.example.test", -1, -1, 0);
	X509_set_issuer_name(crt, name);
	assert_true(X509_sign(crt, key, EVP_sha256()) > 0);
	assert_int_equal(SSL_CTX_use_certificate(ctx, crt), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	X509_free(crt);
	EVP_PKEY_free(key);
	return ctx;
}

static void tls_send(SSL *ssl, const char *s)
{
	assert_int_equal(SSL_write(ssl, s, (int)strlen(s)), (int)strlen(s));
}

/* One whole reply over TLS; returns the joined lines (static). */
static const char *tls_reply(SSL *ssl)
{
	static char b[8192];
	size_t len = 0;

	for (;;) {
		int r = SSL_read(ssl, b + len, (int)(sizeof(b) - 1 - len));
		if (r <= 0)
			return "";
		len += (size_t)r;
		b[len] = '\0';
		/* complete when the last line is a final one: "ddd text\r\n" */
		if (len >= 2 && b[len - 2] == '\r' && b[len - 1] == '\n') {
			char *last = b + len - 2;
			while (last > b && last[-1] != '\n')
				last--;
			if (strlen(last) >= 4 && last[3] == ' ')
				return b;
		}
	}
}

/* Read over TLS until want appears; returns everything read (static). */
static const char *tls_until(SSL *ssl, const char *want)
{
	static char b[8192];
	size_t len = 0;

	while (!strstr(b, want) || len == 0) {
		int r = SSL_read(ssl, b + len, (int)(sizeof(b) - 1 - len));
		if (r <= 0)
			fail_msg("TLS read ended before \"%s\"; got \"%s\"", want, b);
		len += (size_t)r;
		b[len] = '\0';
	}
	return b;
}

static void test_starttls(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	f.peer = "192.0.2.7";
	f.set.tls_ctx = test_server_ctx();
	f.set.tls_mode = SMTPD_TLS_REQUIRE;
	smtpd_auth_check = fake_check;
	fx_start(&f);
	expect(&f, "220 ");
	csend(&f, "EHLO c\r\n");
	char *all = creply_all(&f);
	assert_non_null(strstr(all, "250 STARTTLS\n"));
	assert_null(strstr(all, "AUTH"));		/* not loopback, not encrypted */
	free(all);
	send_expect(&f, "AUTH PLAIN " PLAIN_ALICE "\r\n", "530 5.7.0");
	send_expect(&f, "STARTTLS now\r\n", "501 5.5.4");
	/* injection: commands pipelined after STARTTLS in the clear are dropped, not run inside TLS */
	csend(&f, "STARTTLS\r\nMAIL FROM:<evil@evil.test>\r\n");
	expect(&f, "220 2.0.0");
	assert_int_equal(f.in.len, 0);

	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(cctx);
	SSL_set_fd(ssl, f.fd);
	assert_int_equal(SSL_connect(ssl), 1);
	/* everything from before TLS is forgotten: no EHLO yet, no transaction */
	tls_send(ssl, "MAIL FROM:<a@remote.test>\r\n");
	assert_true(strncmp(tls_reply(ssl), "503 5.5.1", 9) == 0);
	tls_send(ssl, "EHLO c\r\n");
	const char *r = tls_reply(ssl);
	assert_null(strstr(r, "STARTTLS"));
	assert_non_null(strstr(r, "250 AUTH PLAIN LOGIN"));
	tls_send(ssl, "STARTTLS\r\n");
	assert_true(strncmp(tls_reply(ssl), "554 5.5.1", 9) == 0);
	tls_send(ssl, "AUTH PLAIN " PLAIN_ALICE "\r\n");
	assert_true(strncmp(tls_reply(ssl), "235 2.7.0", 9) == 0);
	tls_send(ssl, "MAIL FROM:<alice@example.test>\r\nRCPT TO:<x@remote.test>\r\nDATA\r\n");
	r = tls_until(ssl, "354 ");
	assert_non_null(strstr(r, "250 2.1.0"));
	assert_non_null(strstr(r, "250 2.1.5"));
	tls_send(ssl, "Subject: tls\r\n\r\nsecret\r\n.\r\nQUIT\r\n");
	r = tls_until(ssl, "221 ");
	char id[64];
	snprintf(id, sizeof(id), "%s", queued_id(r));
	SSL_free(ssl);
	SSL_CTX_free(cctx);
	fx_wait(&f);
	struct qfile_envelope env;
	struct buf content = BUF_INIT(BUF_NOLIMIT);
	read_queue(&f, id, &env, &content);
	assert_string_equal(env.protocol, "ESMTPSA");
	assert_non_null(env.tls);
	assert_true(strncmp(env.tls, "TLSv1.", 6) == 0);
	assert_non_null(strstr(buf_cstr(&content), "\t(using TLSv1."));
	assert_non_null(strstr(buf_cstr(&content), " with ESMTPSA id "));
	qfile_envelope_free(&env);
	buf_free(&content);
	char *log = log_text(&f);
	char want[80];
	snprintf(want, sizeof(want), "discarded %zu bytes pipelined after STARTTLS",
	         strlen("MAIL FROM:<evil@evil.test>\r\n"));
	assert_non_null(strstr(log, want));
	free(log);
	smtpd_auth_check = smtpd_auth_check_daemon;
	SSL_CTX_free(f.set.tls_ctx);
	fx_done(&f);
}

static void test_implicit_tls_handshake_failure(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	f.set.tls_ctx = test_server_ctx();
	f.set.tls_mode = SMTPD_TLS_IMPLICIT;
	fx_start(&f);
	csend(&f, "EHLO plaintext\r\n");	/* not a TLS ClientHello */
	assert_true(at_eof(&f));
	assert_int_equal(f.in.len, 0);		/* no greeting in the clear */
	fx_wait(&f);
	char *log = log_text(&f);
	assert_non_null(strstr(log, "TLS handshake failed"));
	free(log);
	SSL_CTX_free(f.set.tls_ctx);
	fx_done(&f);
}

static void test_helpers(void **state)
{
	(void)state;
	const char *h = "From: a\r\nX-Message-ID: no\r\n\tMessage-ID: folded\r\n\r\nMessage-ID: body\r\n";
	assert_false(smtpd_header_has(h, strlen(h), "Message-ID"));
	assert_true(smtpd_header_has(h, strlen(h), "from"));
	h = "Subject: x\nmessage-id : <a@b>\n";
	assert_true(smtpd_header_has(h, strlen(h), "Message-ID"));

	struct buf b = BUF_INIT(100);
	smtpd_rfc5322_date(0, &b);
	/* "Thu, 01 Jan 1970 00:00:00 +0000" in UTC; other zones shift it */
	assert_int_equal(b.len, 31);
	assert_true(b.data[3] == ',' && b.data[4] == ' ');
	buf_free(&b);

	struct buf err = BUF_INIT(200);
	bool m;
	assert_true(smtpd_cidr_match_text("10.0.0.0/8 [2001:db8::]/32", "10.1.2.3", &err, &m));
	assert_true(m);
	assert_true(smtpd_cidr_match_text("10.0.0.0/8, [2001:db8::]/32", "2001:db8:1::5", &err, &m));
	assert_true(m);
	assert_true(smtpd_cidr_match_text("10.0.0.0/9", "10.128.0.1", &err, &m));
	assert_false(m);
	assert_true(smtpd_cidr_match_text("127.0.0.1", "127.0.0.1", &err, &m));
	assert_true(m);
	assert_true(smtpd_cidr_match_text("::1", "::1", &err, &m));
	assert_true(m);
	assert_true(smtpd_cidr_match_text("", "::1", &err, &m));
	assert_false(m);
	assert_false(smtpd_cidr_match_text("10.0.0.0/33", "10.0.0.1", &err, &m));
	assert_false(smtpd_cidr_match_text("example.com", "10.0.0.1", &err, &m));
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting_and_ehlo),
		cmocka_unit_test(test_loopback_offers_auth),
		cmocka_unit_test(test_order_and_syntax),
		cmocka_unit_test(test_pipelined_message_round_trip),
		cmocka_unit_test(test_smuggling_variants),
		cmocka_unit_test(test_bare_lf_normalized),
		cmocka_unit_test(test_size_limits),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_recipient_limit),
		cmocka_unit_test(test_error_limit_disconnects),
		cmocka_unit_test(test_junk_limit),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_disconnect_mid_data_leaves_nothing),
		cmocka_unit_test(test_bdat_chunks),
		cmocka_unit_test(test_smtputf8),
		cmocka_unit_test(test_relay_control),
		cmocka_unit_test(test_auth_and_submission),
		cmocka_unit_test(test_auth_tempfail_and_existing_headers),
		cmocka_unit_test(test_tls_required),
		cmocka_unit_test(test_http_dropped),
		cmocka_unit_test(test_byte_at_a_time),
		cmocka_unit_test(test_flush_before_partial_command),
		cmocka_unit_test(test_qmgr_wakeup),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_implicit_tls_handshake_failure),
		cmocka_unit_test(test_helpers),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
