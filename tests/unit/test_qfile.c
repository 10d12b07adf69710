/* qfile: write/commit/read round trip, CRLF handling, durability path, strict parsing of damaged files. */
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
#include <sys/stat.h>
#include <unistd.h>

#include "anonfile.h"
#include "buf.h"
#include "qfile.h"

static char qdir[64];

static int setup(void **state)
{
	(void)state;
	char p[128];
	snprintf(qdir, sizeof(qdir), "%s", "/tmp/postern-qfile-XXXXXX");
	if (!mkdtemp(qdir))
		return -1;
	snprintf(p, sizeof(p), "%s/tmp", qdir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/incoming", qdir);
	mkdir(p, 0700);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", qdir);
	return system(cmd);
}

static int count_files(const char *sub)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/%s", qdir, sub);
	DIR *d = opendir(p);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static char *read_file(const char *id, size_t *len)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/incoming/%s", qdir, id);
	FILE *f = fopen(p, "rb");
	assert_non_null(f);
	char *data = malloc(1 << 20);
	*len = fread(data, 1, 1 << 20, f);
	fclose(f);
	return data;
}

static char *write_msg(const char *content, size_t clen, size_t chunk)
{
	struct buf err = BUF_INIT(4096);
	struct qfile_writer *w = qfile_create(qdir, &err);
	assert_non_null(w);
	char *id = strdup(qfile_writer_id(w));
	assert_true(qfile_id_valid(id));
	assert_true(qfile_put_str(w, QREC_SENDER, "alice@example.org"));
	assert_true(qfile_put_rcpt(w, "bob@example.net", QFILE_NOTIFY_SUCCESS | QFILE_NOTIFY_FAILURE, "rfc822;bob@x"));
	assert_true(qfile_put_rcpt(w, "carol@example.net", 0, NULL));
	assert_true(qfile_put_str(w, QREC_CLIENT_ADDR, "127.0.0.1"));
	assert_true(qfile_put(w, QREC_SMTPUTF8, "", 0));
	for (size_t off = 0; off < clen; off += chunk)
		assert_true(qfile_write(w, content + off, clen - off < chunk ? clen - off : chunk));
	assert_true(qfile_commit(&w, &err));
	assert_null(w);
	buf_free(&err);
	return id;
}

/* Whether writers get unnamed (O_TMPFILE) files here, as anonfile_open() decides. */
static bool unnamed_tmp(const char *dir)
{
	char p[4200];
	snprintf(p, sizeof(p), "%s/tmp", dir);
	int fd = anonfile_open(p, 0600);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static void test_roundtrip(void **state)
{
	(void)state;
	const char msg[] = "Subject: hi\r\n\r\nline1\r\nbare\rcr\r\nlast\r";
	for (size_t chunk = 1; chunk <= sizeof(msg); chunk++) {
		char *id = write_msg(msg, sizeof(msg) - 1, chunk);
		size_t len;
		char *data = read_file(id, &len);
		struct qfile_envelope env;
		struct buf err = BUF_INIT(4096);
		assert_true(qfile_parse(data, len, &env, &err));
		assert_string_equal(env.sender, "alice@example.org");
		assert_int_equal(env.nrcpts, 2);
		assert_string_equal(env.rcpts[0].addr, "bob@example.net");
		assert_int_equal(env.rcpts[0].notify, QFILE_NOTIFY_SUCCESS | QFILE_NOTIFY_FAILURE);
		assert_string_equal(env.rcpts[0].orcpt, "rfc822;bob@x");
		assert_null(env.rcpts[1].orcpt);
		assert_true(env.smtputf8);
		assert_string_equal(env.client_addr, "127.0.0.1");
		const char want[] = "Subject: hi\n\nline1\nbare\rcr\nlast\r";
		assert_int_equal(env.content_len, sizeof(want) - 1);
		assert_memory_equal(data + env.content_offset, want, sizeof(want) - 1);
		qfile_envelope_free(&env);

		/* the fd reader agrees and leaves the fd at the content */
		char p[128];
		snprintf(p, sizeof(p), "%s/incoming/%s", qdir, id);
		int fd = open(p, O_RDONLY);
		assert_true(qfile_read_envelope(fd, &env, &err));
		char c;
		assert_int_equal(read(fd, &c, 1), 1);
		assert_int_equal(c, 'S');
		close(fd);
		qfile_envelope_free(&env);
		unlink(p);
		free(data);
		free(id);
		buf_free(&err);
	}
	assert_int_equal(count_files("tmp"), 0);
}

static void test_truncation_detected(void **state)
{
	(void)state;
	char *id = write_msg("hello\r\n", 7, 7);
	size_t len;
	char *data = read_file(id, &len);
	struct qfile_envelope env;
	struct buf err = BUF_INIT(4096);
	/* every shorter prefix, and one extra byte, is corrupt */
	for (size_t n = 0; n < len; n++) {
		buf_reset(&err);
		assert_false(qfile_parse(data, n, &env, &err));
		assert_non_null(strstr(buf_cstr(&err), "corrupt"));
	}
	data[len] = 'x';
	assert_false(qfile_parse(data, len + 1, &env, &err));
	/* unknown record type */
	data[4] = 'Q';
	assert_false(qfile_parse(data, len, &env, &err));
	free(data);
	free(id);
	buf_free(&err);
}

static void test_abort_and_ids(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(4096);
	struct qfile_writer *a = qfile_create(qdir, &err), *b = qfile_create(qdir, &err);
	assert_string_not_equal(qfile_writer_id(a), qfile_writer_id(b));
	assert_true(strcmp(qfile_writer_id(a), qfile_writer_id(b)) < 0 ||
	            strncmp(qfile_writer_id(a), qfile_writer_id(b), 10) == 0);
	assert_int_equal(count_files("tmp"), unnamed_tmp(qdir) ? 0 : 2);	/* O_TMPFILE: nothing in tmp/ while written */
	qfile_abort(&a);
	qfile_abort(&b);
	assert_null(a);
	assert_int_equal(count_files("tmp"), 0);
	assert_false(qfile_id_valid("../etc"));
	assert_false(qfile_id_valid("abc"));
	/* a queue dir that does not exist: a clear error, no crash */
	assert_null(qfile_create("/nonexistent-postern", &err));
	assert_non_null(strstr(buf_cstr(&err), "/nonexistent-postern/tmp/"));
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_truncation_detected),
		cmocka_unit_test(test_abort_and_ids),
	};
	return cmocka_run_group_tests_name("qfile", tests, setup, teardown);
}
