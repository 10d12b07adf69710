/* stream and tls: line reading (CRLF/LF, limits, EOF mid-line), timeouts (read, write on a full socket, EINTR),
 * pending/discard, read_exact, peek/consume with the DATA decoder, and STARTTLS against a forked TLS server with
 * a certificate made in the test (pipelined plaintext must not become TLS input), and a codec (COMPRESS) over
 * the stream. Socketpairs only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "dotstream.h"
#include "stream.h"
#include "tls.h"

/* A pair: s is our stream on one end, peer the raw fd of the other end. */
struct pair {
	struct stream *s;
	int peer;
};

static void pair_open(struct pair *p, int read_ms, int write_ms)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	p->s = stream_new(sv[0]);
	p->peer = sv[1];
	stream_set_timeouts(p->s, read_ms, write_ms);
}

static void pair_close(struct pair *p)
{
	stream_free(&p->s);
	assert_null(p->s);
	if (p->peer >= 0)
		close(p->peer);
}

static void put(int fd, const void *data, size_t n)
{
	const char *c = data;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		assert_true(w > 0);
		c += w;
		n -= (size_t)w;
	}
}

/* Writes n bytes from a child process (so the amount may exceed the socket buffer), then closes. */
static pid_t feed_child(int fd, const void *data, size_t n)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		const char *c = data;
		while (n > 0) {
			ssize_t w = write(fd, c, n);
			if (w <= 0)
				_exit(1);
			c += w;
			n -= (size_t)w;
		}
		_exit(0);
	}
	return pid;
}

static void reap(pid_t pid)
{
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static int64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define S(lit) lit, sizeof(lit) - 1

static void test_lines_crlf_lf(void **state)
{
	(void)state;
	struct pair p;
	struct buf line = BUF_INIT(BUF_NOLIMIT);

	pair_open(&p, 1000, 1000);
	put(p.peer, S("EHLO a\r\nbare\n\r\n\nmid\rcr\r\nlast"));
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "EHLO a");
	assert_int_equal(stream_last_eol(p.s), STREAM_EOL_CRLF);
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "bare");
	assert_int_equal(stream_last_eol(p.s), STREAM_EOL_LF);
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_int_equal(line.len, 0);
	assert_int_equal(stream_last_eol(p.s), STREAM_EOL_CRLF);
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_int_equal(line.len, 0);
	assert_int_equal(stream_last_eol(p.s), STREAM_EOL_LF);
	/* a CR inside the line stays for the caller to judge */
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_int_equal(line.len, 6);
	assert_memory_equal(line.data, "mid\rcr", 6);
	/* EOF mid-line: EOF, partial bytes kept, no line ending */
	close(p.peer);
	p.peer = -1;
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_EOF);
	assert_string_equal(buf_cstr(&line), "last");
	assert_int_equal(stream_last_eol(p.s), STREAM_EOL_NONE);
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_EOF);
	assert_int_equal(stream_bytes_in(p.s), 28);
	buf_free(&line);
	pair_close(&p);
}

static void test_line_limit(void **state)
{
	(void)state;
	struct pair p;
	struct buf line = BUF_INIT(BUF_NOLIMIT);

	pair_open(&p, 1000, 1000);
	/* exactly 10 with CRLF and with LF: fine; 11: too long, and the next line is intact */
	put(p.peer, S("0123456789\r\n0123456789\n0123456789A\r\nnext\r\n"));
	assert_int_equal(stream_read_line(p.s, &line, 10), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "0123456789");
	assert_int_equal(stream_read_line(p.s, &line, 10), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "0123456789");
	assert_int_equal(stream_read_line(p.s, &line, 10), STREAM_TOOLONG);
	assert_string_equal(buf_cstr(&line), "0123456789");
	assert_int_equal(stream_last_eol(p.s), STREAM_EOL_CRLF);
	assert_int_equal(stream_read_line(p.s, &line, 10), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "next");

	/* 10 bytes then a CR that is not before the LF: 12 bytes of line, too long */
	put(p.peer, S("0123456789\rX\nok\n"));
	assert_int_equal(stream_read_line(p.s, &line, 10), STREAM_TOOLONG);
	assert_int_equal(stream_last_eol(p.s), STREAM_EOL_LF);
	assert_int_equal(stream_read_line(p.s, &line, 10), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "ok");

	/* maxlen 0: only empty lines pass */
	put(p.peer, S("\r\nx\r\n\n"));
	assert_int_equal(stream_read_line(p.s, &line, 0), STREAM_OK);
	assert_int_equal(stream_read_line(p.s, &line, 0), STREAM_TOOLONG);
	assert_int_equal(stream_read_line(p.s, &line, 0), STREAM_OK);

	/* the caller's buf cap also limits */
	struct buf small = BUF_INIT(3);
	put(p.peer, S("abcd\r\nabc\r\n"));
	assert_int_equal(stream_read_line(p.s, &small, 100), STREAM_TOOLONG);
	assert_int_equal(stream_read_line(p.s, &small, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&small), "abc");
	buf_free(&small);

	/* a huge line, far larger than the read buffer, is skipped whole and memory stays bounded */
	size_t big = 300000;
	char *data = malloc(big + 16);
	memset(data, 'x', big);
	memcpy(data + big, "\r\nafter\r\n", 9);
	pid_t pid = feed_child(p.peer, data, big + 9);
	assert_int_equal(stream_read_line(p.s, &line, 1000), STREAM_TOOLONG);
	assert_int_equal(line.len, 1000);
	assert_true(line.cap < 4096);
	assert_int_equal(stream_read_line(p.s, &line, 1000), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "after");
	reap(pid);
	free(data);

	/* EOF while skipping the rest of a too-long line */
	put(p.peer, S("0123456789ABC"));
	close(p.peer);
	p.peer = -1;
	assert_int_equal(stream_read_line(p.s, &line, 10), STREAM_EOF);
	buf_free(&line);
	pair_close(&p);
}

static void test_read_timeout(void **state)
{
	(void)state;
	struct pair p;
	struct buf line = BUF_INIT(BUF_NOLIMIT);
	int64_t t0;

	pair_open(&p, 150, 1000);
	t0 = ms_now();
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_TIMEOUT);
	assert_true(ms_now() - t0 >= 140);
	assert_true(ms_now() - t0 < 2000);
	assert_non_null(strstr(stream_error_text(p.s), "timeout"));
	/* half a line, then silence: nothing is lost, a second call continues the line */
	put(p.peer, S("HELO\r"));
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_TIMEOUT);
	assert_int_equal(stream_pending(p.s), 5);
	put(p.peer, S("\nQUIT\r\n"));
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "HELO");
	assert_int_equal(stream_last_eol(p.s), STREAM_EOL_CRLF);
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "QUIT");
	/* exactly maxlen bytes and a CR, then the LF after a timeout: still a good line */
	put(p.peer, S("HELO\r"));
	assert_int_equal(stream_read_line(p.s, &line, 4), STREAM_TIMEOUT);
	put(p.peer, S("\n"));
	assert_int_equal(stream_read_line(p.s, &line, 4), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "HELO");
	/* a too-long line that times out while being skipped is still skipped after the retry */
	put(p.peer, S("0123456789abc"));
	assert_int_equal(stream_read_line(p.s, &line, 10), STREAM_TIMEOUT);
	put(p.peer, S("def\r\nNOOP\r\n"));
	assert_int_equal(stream_read_line(p.s, &line, 10), STREAM_TOOLONG);
	assert_int_equal(stream_read_line(p.s, &line, 10), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "NOOP");
	buf_free(&line);
	pair_close(&p);
}

/* A peer trickling a byte every 40 ms: without deadline mode each wait sees progress and the line completes;
 * with it the whole read_line call ends at the timeout. */
static void test_deadline_mode(void **state)
{
	(void)state;
	struct buf line = BUF_INIT(BUF_NOLIMIT);

	for (int mode = 0; mode < 2; mode++) {
		struct pair p;
		pid_t pid;
		int64_t t0, dt;

		pair_open(&p, 300, 300);
		stream_set_deadline_mode(p.s, mode == 1);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			for (int i = 0; i < 20; i++) {
				struct timespec ts = { 0, 40 * 1000000L };
				if (write(p.peer, "x", 1) != 1)
					_exit(0);
				nanosleep(&ts, NULL);
			}
			if (write(p.peer, "\r\n", 2) != 2)
				_exit(0);
			_exit(0);
		}
		t0 = ms_now();
		enum stream_result r = stream_read_line(p.s, &line, 100);
		dt = ms_now() - t0;
		if (mode == 0) {
			assert_int_equal(r, STREAM_OK);
			assert_int_equal(line.len, 20);
		} else {
			assert_int_equal(r, STREAM_TIMEOUT);
			assert_true(dt >= 290);
			assert_true(dt < 700);
			assert_non_null(strstr(stream_error_text(p.s), "deadline"));
		}
		pair_close(&p);
		waitpid(pid, NULL, 0);
	}
	buf_free(&line);
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/* Signals arriving during a wait neither end it early nor extend it. */
static void test_eintr(void **state)
{
	(void)state;
	struct pair p;
	struct buf line = BUF_INIT(BUF_NOLIMIT);
	struct sigaction sa, old;
	struct itimerval it = { { 0, 30000 }, { 0, 30000 } }, stop = { { 0, 0 }, { 0, 0 } };
	int64_t t0, dt;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;	/* no SA_RESTART: poll and read return EINTR */
	sigaction(SIGALRM, &sa, &old);
	alarms = 0;
	pair_open(&p, 300, 1000);
	setitimer(ITIMER_REAL, &it, NULL);
	t0 = ms_now();
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_TIMEOUT);
	dt = ms_now() - t0;
	setitimer(ITIMER_REAL, &stop, NULL);
	sigaction(SIGALRM, &old, NULL);
	assert_true(alarms >= 3);
	assert_true(dt >= 290);
	assert_true(dt < 1500);
	buf_free(&line);
	pair_close(&p);
}

static void test_pending_discard(void **state)
{
	(void)state;
	struct pair p;
	struct buf line = BUF_INIT(BUF_NOLIMIT);

	pair_open(&p, 1000, 1000);
	put(p.peer, S("EHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\n"));
	assert_int_equal(stream_pending(p.s), 0);
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_int_equal(stream_pending(p.s), 28);
	assert_int_equal(stream_discard_input(p.s), 28);
	assert_int_equal(stream_pending(p.s), 0);
	assert_int_equal(stream_discard_input(p.s), 0);
	put(p.peer, S("QUIT\r\n"));
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "QUIT");
	assert_int_equal(stream_pending(p.s), 0);
	buf_free(&line);
	pair_close(&p);
}

/* Replies may wait only while a whole next command is here: a partial one means the peer may be waiting. */
static void test_line_pending(void **state)
{
	(void)state;
	struct pair p;
	struct buf line = BUF_INIT(BUF_NOLIMIT);

	pair_open(&p, 1000, 1000);
	assert_false(stream_line_pending(p.s));	/* nothing received: never waits to find out */
	put(p.peer, S("NOOP\r\nSTAT\r\nRE"));
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_true(stream_line_pending(p.s));
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "STAT");
	assert_int_equal(stream_pending(p.s), 2);
	assert_false(stream_line_pending(p.s));
	put(p.peer, S("TR 1\n"));
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "RETR 1");
	assert_false(stream_line_pending(p.s));
	buf_free(&line);
	pair_close(&p);
}

static void test_read_exact(void **state)
{
	(void)state;
	struct pair p;
	struct buf out = BUF_INIT(BUF_NOLIMIT), line = BUF_INIT(BUF_NOLIMIT);

	pair_open(&p, 300, 1000);
	put(p.peer, S("BDAT 5\r\n0123456789rest\r\n"));
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_int_equal(stream_read_exact(p.s, &out, 5), STREAM_OK);
	assert_string_equal(buf_cstr(&out), "01234");
	assert_int_equal(stream_read_exact(p.s, &out, 0), STREAM_OK);
	/* a target too small: bytes still consumed, TOOLONG, protocol stays in step */
	struct buf small = BUF_INIT(3);
	assert_int_equal(stream_read_exact(p.s, &small, 5), STREAM_TOOLONG);
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "rest");
	buf_free(&small);

	/* a chunk larger than the read buffer, across many reads */
	size_t big = 100000;
	char *data = malloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (char)(i * 7);
	pid_t pid = feed_child(p.peer, data, big);
	buf_reset(&out);
	assert_int_equal(stream_read_exact(p.s, &out, big), STREAM_OK);
	assert_int_equal(out.len, big);
	assert_memory_equal(out.data, data, big);
	reap(pid);
	free(data);

	/* short chunk: timeout, then EOF */
	put(p.peer, S("abc"));
	assert_int_equal(stream_read_exact(p.s, &out, 10), STREAM_TIMEOUT);
	close(p.peer);
	p.peer = -1;
	assert_int_equal(stream_read_exact(p.s, &out, 10), STREAM_EOF);
	buf_free(&out);
	buf_free(&line);
	pair_close(&p);
}

static void test_write_printf_counters(void **state)
{
	(void)state;
	struct pair p;
	char got[64];

	pair_open(&p, 1000, 1000);
	assert_int_equal(stream_printf(p.s, "250 %s %d\r\n", "ok", 42), STREAM_OK);
	assert_int_equal(stream_puts(p.s, "221 bye\r\n"), STREAM_OK);
	/* buffered until flushed */
	assert_int_equal(recv(p.peer, got, sizeof(got), MSG_DONTWAIT), -1);
	assert_int_equal(stream_flush(p.s), STREAM_OK);
	ssize_t n = read(p.peer, got, sizeof(got));
	assert_int_equal(n, 20);
	assert_memory_equal(got, "250 ok 42\r\n221 bye\r\n", 20);
	assert_int_equal(stream_bytes_out(p.s), 20);
	assert_int_equal(stream_flush(p.s), STREAM_OK);

	/* peer gone: an error, and no SIGPIPE */
	close(p.peer);
	p.peer = -1;
	assert_int_equal(stream_puts(p.s, "x\r\n"), STREAM_OK);
	assert_int_equal(stream_flush(p.s), STREAM_ERROR);
	assert_int_equal(stream_puts(p.s, "y\r\n"), STREAM_ERROR);	/* sticky */
	pair_close(&p);
}

static void test_write_timeout(void **state)
{
	(void)state;
	struct pair p;
	enum stream_result r = STREAM_OK;
	char *chunk = calloc(1, 65536);
	int64_t t0;

	pair_open(&p, 1000, 150);
	t0 = ms_now();
	/* the peer never reads: the socket fills and the write must give up after the timeout */
	for (int i = 0; i < 200 && r == STREAM_OK; i++)
		r = stream_write(p.s, chunk, 65536);
	if (r == STREAM_OK)
		r = stream_flush(p.s);
	assert_int_equal(r, STREAM_TIMEOUT);
	assert_true(ms_now() - t0 >= 140);
	assert_true(ms_now() - t0 < 5000);
	assert_int_equal(stream_flush(p.s), STREAM_TIMEOUT);
	assert_true(stream_bytes_out(p.s) > 0);
	free(chunk);
	pair_close(&p);
}

/* smtpd's DATA loop: peek, decode, consume what the decoder used; pipelined commands after it stay readable. */
static void test_peek_with_decoder(void **state)
{
	(void)state;
	struct pair p;
	struct buf msg = BUF_INIT(BUF_NOLIMIT), line = BUF_INIT(BUF_NOLIMIT);
	struct dot_decoder d;
	enum dot_status st = DOT_MORE;

	pair_open(&p, 1000, 1000);
	put(p.peer, S("Subject: t\r\n\r\n..dot\r\n"));
	put(p.peer, S(".\r\nQUIT\r\n"));
	dot_decoder_init(&d, DOT_BARE_REJECT, DOT_LINE_MAX_RFC, 0);
	while (st == DOT_MORE) {
		const void *ptr;
		size_t len, used;
		assert_int_equal(stream_peek(p.s, &ptr, &len), STREAM_OK);
		assert_true(len > 0);
		st = dot_decode(&d, ptr, len, &msg, &used);
		stream_consume(p.s, used);
	}
	assert_false(dot_decoder_failed(&d));
	assert_string_equal(buf_cstr(&msg), "Subject: t\r\n\r\n.dot\r\n");
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "QUIT");
	buf_free(&msg);
	buf_free(&line);
	pair_close(&p);
}

/* ---- TLS ---- */

struct tlsfiles {
	char dir[64];
	char cert[128], key[128], otherkey[128];
};

static EVP_PKEY *write_key(const char *path)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	FILE *f;

	assert_non_null(k);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	return k;
}

static void make_tls_files(struct tlsfiles *t)
{
	const char *tmp = getenv("TMPDIR");
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	EVP_PKEY *k, *other;
	FILE *f;

	snprintf(t->dir, sizeof(t->dir), "%s/stream-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->cert, sizeof(t->cert), "%s/cert.pem", t->dir);
	snprintf(t->key, sizeof(t->key), "%s/key.pem", t->dir);
	snprintf(t->otherkey, sizeof(t->otherkey), "%s/other.pem", t->dir);
	k = write_key(t->key);
	other = write_key(t->otherkey);

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"mail.example.test", -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:mail.example.test");
	assert_non_null(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	f = fopen(t->cert, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static void remove_tls_files(struct tlsfiles *t)
{
	unlink(t->cert);
	unlink(t->key);
	unlink(t->otherkey);
	rmdir(t->dir);
}

static struct tlsfiles tf;

static int tls_setup(void **state)
{
	(void)state;
	make_tls_files(&tf);
	return 0;
}

static int tls_teardown(void **state)
{
	(void)state;
	remove_tls_files(&tf);
	return 0;
}

static void test_tls_ctx(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	SSL_CTX *ctx;

	ctx = tls_server_ctx_new(tf.cert, tf.key, &err);
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_COMPRESSION);
	tls_ctx_free(&ctx);
	assert_null(ctx);

	/* key of another certificate */
	ctx = tls_server_ctx_new(tf.cert, tf.otherkey, &err);
	assert_null(ctx);
	assert_non_null(strstr(buf_cstr(&err), "does not match"));
	buf_reset(&err);
	/* missing files name the file */
	ctx = tls_server_ctx_new("/nonexistent/cert.pem", tf.key, &err);
	assert_null(ctx);
	assert_non_null(strstr(buf_cstr(&err), "/nonexistent/cert.pem"));
	buf_reset(&err);
	ctx = tls_client_ctx_new("/nonexistent/ca.pem", &err);
	assert_null(ctx);
	assert_non_null(strstr(buf_cstr(&err), "/nonexistent/ca.pem"));
	buf_reset(&err);
	ctx = tls_client_ctx_new(NULL, &err);
	assert_non_null(ctx);
	tls_ctx_free(&ctx);

	/* the error queue drains into text */
	ERR_clear_error();
	assert_string_equal(tls_errors(&err), "no OpenSSL error");
	buf_free(&err);
}

/* The child: a tiny SMTP-ish server. Exit codes say which check failed. */
static int tls_server_child(int fd, bool implicit)
{
	struct buf err = BUF_INIT(BUF_NOLIMIT), line = BUF_INIT(BUF_NOLIMIT);
	SSL_CTX *ctx = tls_server_ctx_new(tf.cert, tf.key, &err);
	struct stream *s = stream_new(fd);
	const char *proto, *cipher;
	int bits;

	if (ctx == NULL)
		return 10;
	stream_set_timeouts(s, 5000, 5000);
	if (!implicit) {
		stream_puts(s, "220 hi\r\n");
		stream_flush(s);
		if (stream_read_line(s, &line, 512) != STREAM_OK || strcmp(buf_cstr(&line), "STARTTLS") != 0)
			return 11;
		/* the client pipelined a command after STARTTLS: the first call must refuse and drop it */
		if (stream_pending(s) == 0)
			return 12;
		stream_puts(s, "220 go ahead\r\n");
		if (stream_starttls_server(s, ctx) != STREAM_ERROR || stream_pending(s) != 0 || stream_is_tls(s))
			return 13;
		if (strstr(stream_error_text(s), "pipelined") == NULL)
			return 14;
	}
	if (stream_starttls_server(s, ctx) != STREAM_OK)
		return 15;
	if (!stream_tls_info(s, &proto, &cipher, &bits) || bits < 128)
		return 16;
	if (stream_read_line(s, &line, 512) != STREAM_OK)
		return 17;
	/* only what came over TLS: the injected MAIL FROM must be gone */
	if (strcmp(buf_cstr(&line), "EHLO after") != 0)
		return 18;
	stream_printf(s, "250 %s %s\r\n", proto, buf_cstr(&line));
	if (stream_flush(s) != STREAM_OK)
		return 19;
	/* wait for the client to close */
	if (stream_read_line(s, &line, 512) != STREAM_EOF)
		return 20;
	stream_free(&s);
	tls_ctx_free(&ctx);
	buf_free(&err);
	buf_free(&line);
	return 0;
}

static pid_t start_server(struct pair *p, bool implicit)
{
	int sv[2];
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		_exit(tls_server_child(sv[1], implicit));
	}
	close(sv[1]);
	p->s = stream_new(sv[0]);
	p->peer = -1;
	stream_set_timeouts(p->s, 5000, 5000);
	return pid;
}

static void test_starttls(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(BUF_NOLIMIT), line = BUF_INIT(BUF_NOLIMIT), cn = BUF_INIT(BUF_NOLIMIT);
	SSL_CTX *cctx = tls_client_ctx_new(tf.cert, &err);
	struct pair p;
	const char *proto, *cipher;
	int bits;
	pid_t pid;

	assert_non_null(cctx);
	pid = start_server(&p, false);
	assert_int_equal(stream_read_line(p.s, &line, 512), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "220 hi");
	/* one write: STARTTLS and an injected command behind it */
	stream_puts(p.s, "STARTTLS\r\nMAIL FROM:<evil@example.test>\r\n");
	assert_int_equal(stream_flush(p.s), STREAM_OK);
	assert_int_equal(stream_read_line(p.s, &line, 512), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "220 go ahead");
	assert_false(stream_tls_info(p.s, &proto, &cipher, &bits));
	assert_int_equal(stream_starttls_client(p.s, cctx, "mail.example.test"), STREAM_OK);
	assert_true(stream_is_tls(p.s));
	assert_true(tls_verify_result(stream_ssl(p.s), &err));
	assert_true(tls_peer_cn(stream_ssl(p.s), &cn));
	assert_string_equal(buf_cstr(&cn), "mail.example.test");
	assert_true(stream_tls_info(p.s, &proto, &cipher, &bits));
	assert_string_equal(proto, "TLSv1.3");
	assert_true(bits >= 128);
	assert_non_null(cipher);
	uint64_t out_before = stream_bytes_out(p.s);
	stream_puts(p.s, "EHLO after\r\n");
	assert_int_equal(stream_flush(p.s), STREAM_OK);
	assert_int_equal(stream_bytes_out(p.s), out_before + 12);	/* application bytes, not TLS records */
	assert_int_equal(stream_read_line(p.s, &line, 512), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "250 TLSv1.3 EHLO after");
	/* TLS reads honour the read timeout too (the server now waits for us to close) */
	stream_set_timeouts(p.s, 150, 5000);
	int64_t t0 = ms_now();
	assert_int_equal(stream_read_line(p.s, &line, 512), STREAM_TIMEOUT);
	assert_true(ms_now() - t0 >= 140);
	assert_int_equal(stream_pending(p.s), 0);
	/* already TLS */
	assert_int_equal(stream_starttls_client(p.s, cctx, "mail.example.test"), STREAM_ERROR);
	pair_close(&p);
	reap(pid);
	tls_ctx_free(&cctx);
	buf_free(&err);
	buf_free(&line);
	buf_free(&cn);
}

/* Implicit TLS (port 465 style) and a name the certificate does not carry: the handshake works, the verify
 * result says no. */
static void test_implicit_tls_wrong_name(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(BUF_NOLIMIT), line = BUF_INIT(BUF_NOLIMIT);
	SSL_CTX *cctx = tls_client_ctx_new(tf.cert, &err);
	struct pair p;
	pid_t pid;

	assert_non_null(cctx);
	pid = start_server(&p, true);
	assert_int_equal(stream_starttls_client(p.s, cctx, "other.example.test"), STREAM_OK);
	assert_false(tls_verify_result(stream_ssl(p.s), &err));
	assert_non_null(strstr(buf_cstr(&err), "verification failed"));
	stream_puts(p.s, "EHLO after\r\n");
	assert_int_equal(stream_flush(p.s), STREAM_OK);
	assert_int_equal(stream_read_line(p.s, &line, 512), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "250 TLSv1.3 EHLO after");
	pair_close(&p);
	reap(pid);

	/* untrusted: the system store does not know our self-signed certificate */
	tls_ctx_free(&cctx);
	buf_reset(&err);
	cctx = tls_client_ctx_new(NULL, &err);
	pid = start_server(&p, true);
	assert_int_equal(stream_starttls_client(p.s, cctx, "mail.example.test"), STREAM_OK);
	assert_false(tls_verify_result(stream_ssl(p.s), &err));
	stream_puts(p.s, "EHLO after\r\n");
	assert_int_equal(stream_flush(p.s), STREAM_OK);
	assert_int_equal(stream_read_line(p.s, &line, 512), STREAM_OK);
	pair_close(&p);
	reap(pid);
	tls_ctx_free(&cctx);

	/* a TLS 1.2-only client gets a forward-secret AEAD suite */
	cctx = tls_client_ctx_new(tf.cert, &err);
	SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
	pid = start_server(&p, true);
	assert_int_equal(stream_starttls_client(p.s, cctx, "mail.example.test"), STREAM_OK);
	const char *proto, *cipher;
	int bits;
	assert_true(stream_tls_info(p.s, &proto, &cipher, &bits));
	assert_string_equal(proto, "TLSv1.2");
	assert_non_null(strstr(cipher, "ECDHE-ECDSA"));
	assert_true(strstr(cipher, "GCM") != NULL || strstr(cipher, "CHACHA20") != NULL);
	stream_puts(p.s, "EHLO after\r\n");
	assert_int_equal(stream_flush(p.s), STREAM_OK);
	assert_int_equal(stream_read_line(p.s, &line, 512), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "250 TLSv1.2 EHLO after");
	pair_close(&p);
	reap(pid);
	tls_ctx_free(&cctx);

	/* TLS 1.1 is refused */
	cctx = tls_client_ctx_new(tf.cert, &err);
	SSL_CTX_set_min_proto_version(cctx, TLS1_VERSION);
	SSL_CTX_set_max_proto_version(cctx, TLS1_1_VERSION);
	SSL_CTX_set_security_level(cctx, 0);
	pid = start_server(&p, true);
	assert_int_equal(stream_starttls_client(p.s, cctx, "mail.example.test"), STREAM_ERROR);
	pair_close(&p);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 15);	/* the server's handshake failed */
	tls_ctx_free(&cctx);
	buf_free(&err);
	buf_free(&line);
}

/* A peer that never answers the handshake: the client gives up after its read timeout. A peer that sends
 * garbage instead: an error, not a hang. */
static void test_tls_handshake_timeout_and_garbage(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	SSL_CTX *cctx = tls_client_ctx_new(tf.cert, &err);
	SSL_CTX *sctx = tls_server_ctx_new(tf.cert, tf.key, &err);
	struct pair p;
	int64_t t0;

	pair_open(&p, 200, 200);
	t0 = ms_now();
	assert_int_equal(stream_starttls_client(p.s, cctx, "mail.example.test"), STREAM_TIMEOUT);
	assert_true(ms_now() - t0 >= 190);
	pair_close(&p);

	/* client side of STARTTLS injection: a server that sends more after its 220 is refused */
	struct buf line = BUF_INIT(BUF_NOLIMIT);
	pair_open(&p, 1000, 1000);
	put(p.peer, S("220 go ahead\r\n250 injected\r\n"));
	assert_int_equal(stream_read_line(p.s, &line, 512), STREAM_OK);
	assert_int_equal(stream_starttls_client(p.s, cctx, "mail.example.test"), STREAM_ERROR);
	assert_non_null(strstr(stream_error_text(p.s), "unexpected"));
	assert_false(stream_is_tls(p.s));
	assert_int_equal(stream_pending(p.s), 0);
	buf_free(&line);
	pair_close(&p);

	pair_open(&p, 1000, 1000);
	put(p.peer, S("this is not a TLS record at all, just plain text\r\n"));
	/* nothing buffered yet on our side, so the server handshake starts and reads the garbage */
	assert_int_equal(stream_starttls_server(p.s, sctx), STREAM_ERROR);
	assert_true(stream_error_text(p.s)[0] != '\0');
	pair_close(&p);

	tls_ctx_free(&cctx);
	tls_ctx_free(&sctx);
	buf_free(&err);
}

/* A codec for the test: every byte XOR 0x55 both ways (0xff encoded is "corrupt"), counting flushes. At most 3
 * bytes per decode call, so output held back for later calls is exercised. */
struct xor_ctx {
	int sync, full, freed;
};

static bool xor_decode(void *ctx, const unsigned char **in, size_t *inlen, void *out, size_t outcap, size_t *outlen,
		       struct buf *err)
{
	unsigned char *o = out;

	(void)ctx;
	*outlen = 0;
	while (*inlen && *outlen < outcap && *outlen < 3) {
		if (**in == 0xff) {
			buf_puts(err, "corrupt");
			return false;
		}
		o[(*outlen)++] = **in ^ 0x55;
		(*in)++;
		(*inlen)--;
	}
	return true;
}

static bool xor_encode(void *ctx, const void *in, size_t n, enum stream_codec_flush fl, struct buf *out)
{
	struct xor_ctx *c = ctx;
	const unsigned char *p = in;

	for (size_t i = 0; i < n; i++)
		buf_putc(out, p[i] ^ 0x55);
	c->sync += fl == STREAM_CODEC_SYNC;
	c->full += fl == STREAM_CODEC_FULL;
	return true;
}

static void xor_free(void *ctx)
{
	((struct xor_ctx *)ctx)->freed++;
}

static void xor_put(int fd, const char *s)
{
	char b[256];
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++)
		b[i] = (char)(s[i] ^ 0x55);
	put(fd, b, n);
}

static void test_codec(void **state)
{
	(void)state;
	struct pair p;
	struct buf line = BUF_INIT(BUF_NOLIMIT);
	struct xor_ctx c = { 0 };
	struct stream_codec codec = { xor_decode, xor_encode, xor_free, &c };
	char got[64];

	pair_open(&p, 1000, 1000);
	/* the command that starts the codec, with encoded bytes pipelined behind it in the same write */
	char first[64] = "COMPRESS\r\n";
	size_t n0 = strlen(first);
	for (const char *q = "next\r\n"; *q; q++)
		first[n0++] = (char)(*q ^ 0x55);
	put(p.peer, first, n0);
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "COMPRESS");
	assert_false(stream_has_codec(p.s));
	stream_set_codec(p.s, &codec);
	assert_true(stream_has_codec(p.s));
	assert_int_equal(stream_pending(p.s), 6);	/* still encoded */
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "next");
	xor_put(p.peer, "a longer line than three bytes\r\n");
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "a longer line than three bytes");
	/* output: a boundary full-flushes what is written so far, a flush sync-flushes the rest */
	stream_puts(p.s, "abc");
	stream_codec_boundary(p.s);
	assert_int_equal(c.full, 1);
	stream_puts(p.s, "de");
	assert_int_equal(stream_flush(p.s), STREAM_OK);
	assert_int_equal(c.sync, 1);
	assert_int_equal(read(p.peer, got, sizeof(got)), 5);
	for (int i = 0; i < 5; i++)
		got[i] ^= 0x55;
	assert_memory_equal(got, "abcde", 5);
	/* nothing written: a flush does not flush the encoder again */
	assert_int_equal(stream_flush(p.s), STREAM_OK);
	assert_int_equal(c.sync, 1);
	/* corrupt input is an error that says why */
	put(p.peer, "\xff", 1);
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_ERROR);
	assert_string_equal(stream_error_text(p.s), "corrupt");
	buf_free(&line);
	pair_close(&p);
	assert_int_equal(c.freed, 1);
}

/* stream_set_interrupt: input already there is read; a wait ends once stop() says so, even when no signal
 * interrupts the poll (it is sliced), and long before the read timeout */
static int stop_calls;
static bool stop_after_three(void)
{
	return ++stop_calls > 3;
}

static bool stop_now(void)
{
	return true;
}

static void test_interrupt(void **state)
{
	(void)state;
	struct pair p;
	struct buf line = BUF_INIT(1024);
	pair_open(&p, 30000, 30000);
	put(p.peer, "NOOP\r\n", 6);
	stream_set_interrupt(p.s, stop_now);
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "NOOP");
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_INTERRUPTED);
	stop_calls = 0;
	stream_set_interrupt(p.s, stop_after_three);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_INTERRUPTED);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 5);
	assert_int_equal(stop_calls, 4);
	/* off again: an ordinary read */
	stream_set_interrupt(p.s, NULL);
	put(p.peer, "QUIT\r\n", 6);
	assert_int_equal(stream_read_line(p.s, &line, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "QUIT");
	buf_free(&line);
	pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_crlf_lf),
		cmocka_unit_test(test_line_limit),
		cmocka_unit_test(test_read_timeout),
		cmocka_unit_test(test_eintr),
		cmocka_unit_test(test_deadline_mode),
		cmocka_unit_test(test_pending_discard),
		cmocka_unit_test(test_line_pending),
		cmocka_unit_test(test_read_exact),
		cmocka_unit_test(test_write_printf_counters),
		cmocka_unit_test(test_write_timeout),
		cmocka_unit_test(test_peek_with_decoder),
		cmocka_unit_test(test_codec),
		cmocka_unit_test(test_tls_ctx),
		cmocka_unit_test(test_interrupt),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_implicit_tls_wrong_name),
		cmocka_unit_test(test_tls_handshake_timeout_and_garbage),
	};
	return cmocka_run_group_tests_name("stream", tests, tls_setup, tls_teardown);
}
