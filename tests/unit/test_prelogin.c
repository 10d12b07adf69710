/* The privilege-separated login's handover frame (common/prelogin.c) and the stream calls it relies on: a frame
 * round-trips; uid 0, a relative Maildir, a TLS flag without its socket (or the reverse) and garbage are refused;
 * input taken from one stream and pushed into another is read back first, in order. The fork, the privilege
 * switch and the TLS proxy are exercised end to end by tests/integration/test_sysusers.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "prelogin.h"
#include "stream.h"

static void frame(struct buf *out, const char *user, const char *maildir, uid_t uid, const char *tag,
                  const char *input, bool tls)
{
	struct prelogin_login l;

	prelogin_login_init(&l);
	l.user = (char *)user;
	l.maildir = (char *)maildir;
	l.uid = uid;
	l.gid = 100;
	l.tag = (char *)tag;
	l.token = (char *)"00112233445566778899aabbccddeeff";
	if (input)
		buf_puts(&l.input, input);
	buf_reset(out);
	assert_true(prelogin_encode(&l, tls, out));
	buf_free(&l.input);
}

static void test_round_trip(void **state)
{
	struct buf f = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	struct prelogin_login l;
	(void)state;

	frame(&f, "fred", "/home/fred/Maildir/", 1000, "a1", "a2 SELECT INBOX\r\n", false);
	assert_true(prelogin_decode(f.data, f.len, false, &l, &err));
	assert_string_equal(l.user, "fred");
	assert_string_equal(l.maildir, "/home/fred/Maildir/");
	assert_int_equal(l.uid, 1000);
	assert_int_equal(l.gid, 100);
	assert_string_equal(l.tag, "a1");
	assert_string_equal(l.token, "00112233445566778899aabbccddeeff");
	assert_int_equal(l.input.len, 17);
	assert_memory_equal(l.input.data, "a2 SELECT INBOX\r\n", 17);
	assert_false(l.tls);
	prelogin_login_clear(&l);

	frame(&f, "bob@example.org", "/srv/mail/bob", 5000, NULL, NULL, true);
	assert_true(prelogin_decode(f.data, f.len, true, &l, &err));
	assert_null(l.tag);
	assert_int_equal(l.input.len, 0);
	assert_true(l.tls);
	prelogin_login_clear(&l);
	buf_free(&f);
	buf_free(&err);
}

static void test_refused(void **state)
{
	struct buf f = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	struct prelogin_login l;
	(void)state;

	frame(&f, "root", "/root/Maildir", 0, NULL, NULL, false);
	assert_false(prelogin_decode(f.data, f.len, false, &l, &err));
	assert_non_null(strstr(buf_cstr(&err), "refused"));
	buf_reset(&err);
	frame(&f, "x", "Maildir", 1000, NULL, NULL, false);
	assert_false(prelogin_decode(f.data, f.len, false, &l, &err));
	buf_reset(&err);
	/* TLS without the proxy socket, and a socket without TLS */
	frame(&f, "x", "/m", 1000, NULL, NULL, true);
	assert_false(prelogin_decode(f.data, f.len, false, &l, &err));
	buf_reset(&err);
	frame(&f, "x", "/m", 1000, NULL, NULL, false);
	assert_false(prelogin_decode(f.data, f.len, true, &l, &err));
	buf_reset(&err);
	/* cut short, and noise */
	frame(&f, "x", "/m", 1000, NULL, NULL, false);
	assert_false(prelogin_decode(f.data, f.len - 1, false, &l, &err));
	assert_false(prelogin_decode("PI\x01\x00garbage", 11, false, &l, &err));
	buf_free(&f);
	buf_free(&err);
}

static void test_stream_take_and_push(void **state)
{
	int sv[2];
	struct buf taken = BUF_INIT(1024), line = BUF_INIT(1024);
	(void)state;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct stream *a = stream_new(sv[0]);
	assert_int_equal(write(sv[1], "LOGIN x y\r\nNOOP\r\nLOG", 20), 20);
	assert_int_equal(stream_read_line(a, &line, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "LOGIN x y");
	assert_true(stream_take_input(a, &taken));
	assert_int_equal(stream_pending(a), 0);
	assert_int_equal(taken.len, 9);

	int fd2 = dup(sv[0]);
	struct stream *b = stream_new(fd2);
	stream_push_input(b, taken.data, taken.len);
	assert_int_equal(write(sv[1], "OUT\r\n", 5), 5);
	assert_int_equal(stream_read_line(b, &line, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "NOOP");
	assert_int_equal(stream_read_line(b, &line, 100), STREAM_OK);
	assert_string_equal(buf_cstr(&line), "LOGOUT");
	stream_free(&a);
	stream_free(&b);
	close(sv[1]);
	buf_free(&taken);
	buf_free(&line);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_stream_take_and_push),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
