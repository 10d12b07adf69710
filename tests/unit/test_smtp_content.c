/* smtp content: CR LF normalisation in any chunking, the wire size SIZE= declares (checked against the DATA
 * encoder, which must agree byte for byte apart from dot-stuffing), reading from a file and from memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dotstream.h"
#include "../../smtp/content.h"

static const char *const samples[] = {
	"", "a", "a\n", "a\r\n", "Subject: x\n\nbody\n", "no newline at end", "bare\rCR\r", "cr\r\r\nlf\n\n",
	"\r", "\n", "\r\n", "\n\r", ".dot\n..two\n.\n", "mixed\r\n\n\rend",
};

/* What DATA sends, minus the dot-stuffing and the final ".\r\n": must equal the BDAT form. */
static void data_form(const char *in, size_t n, struct buf *out)
{
	struct dot_encoder e;
	struct buf d = BUF_INIT(BUF_NOLIMIT);
	dot_encoder_init(&e);
	dot_encode(&e, in, n, &d);
	dot_encode_finish(&e, &d);
	d.len -= 3;
	bool bol = true;
	for (size_t i = 0; i < d.len; i++) {
		if (bol && d.data[i] == '.')
			i++;	/* the stuffed dot */
		buf_putc(out, d.data[i]);
		bol = i > 0 && d.data[i] == '\n' && d.data[i - 1] == '\r';
	}
	buf_free(&d);
}

static void test_crlf_matches_data_encoder(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(samples) / sizeof(samples[0]); k++) {
		const char *in = samples[k];
		size_t n = strlen(in);
		struct buf whole = BUF_INIT(BUF_NOLIMIT), bytes = BUF_INIT(BUF_NOLIMIT), want = BUF_INIT(BUF_NOLIMIT);
		struct smtp_crlf c;
		smtp_crlf_init(&c);
		size_t made = smtp_crlf_encode(&c, in, n, &whole);
		made += smtp_crlf_finish(&c, &whole);
		assert_int_equal(made, whole.len);
		smtp_crlf_init(&c);
		for (size_t i = 0; i < n; i++)
			smtp_crlf_encode(&c, in + i, 1, &bytes);
		smtp_crlf_finish(&c, &bytes);
		data_form(in, n, &want);
		if (whole.len != want.len || (want.len && memcmp(whole.data, want.data, want.len) != 0))
			fail_msg("sample %zu: crlf form differs from the DATA encoder's", k);
		assert_int_equal(bytes.len, whole.len);
		if (whole.len)
			assert_memory_equal(bytes.data, whole.data, whole.len);
		/* every line end is CR LF */
		for (size_t i = 0; i < whole.len; i++)
			if (whole.data[i] == '\n')
				assert_true(i > 0 && whole.data[i - 1] == '\r');
		buf_free(&whole);
		buf_free(&bytes);
		buf_free(&want);
	}
}

static void test_wire_size_file_and_memory(void **state)
{
	(void)state;
	char path[] = "/tmp/test_smtp_content.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	/* a big message with LF line ends spans several read chunks: 100000 lines of 9 bytes + LF */
	const char prefix[] = "ENVELOPE";
	assert_int_equal(write(fd, prefix, 8), 8);
	size_t lines = 100000;
	for (size_t i = 0; i < lines; i++)
		assert_int_equal(write(fd, "123456789\n", 10), 10);
	struct smtp_content ct = { .fd = fd, .offset = 8, .len = lines * 10 };
	uint64_t size = 0;
	struct buf err = BUF_INIT(256);
	assert_true(smtp_content_wire_size(&ct, &size, &err));
	assert_int_equal(size, lines * 11);
	char b[4];
	assert_int_equal(smtp_content_read(&ct, 0, b, 4, &err), 4);
	assert_memory_equal(b, "1234", 4);
	/* the envelope says more than the file holds: an error, not a short message */
	ct.len += 5;
	assert_false(smtp_content_wire_size(&ct, &size, &err));
	assert_non_null(strstr(buf_cstr(&err), "truncated"));
	close(fd);

	struct smtp_content mem = { .mem = "a\nb", .memlen = 3 };
	assert_true(smtp_content_wire_size(&mem, &size, &err));
	assert_int_equal(size, 6);	/* "a\r\nb\r\n" */
	mem.memlen = 0;
	assert_true(smtp_content_wire_size(&mem, &size, &err));
	assert_int_equal(size, 0);
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crlf_matches_data_encoder),
		cmocka_unit_test(test_wire_size_file_and_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
