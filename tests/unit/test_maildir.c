/* maildir: delivery into new/ and cur/, S= and W= sizes, unique names, name parsing, folders; fsutil. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "anonfile.h"
#include "buf.h"
#include "fsutil.h"
#include "maildir.h"

static char root[64];

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "%s", "/tmp/postern-maildir-XXXXXX");
	return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	return system(cmd);
}

static int count(const char *md, const char *sub)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", md, sub);
	DIR *d = opendir(p);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
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

static void test_deliver(void **state)
{
	(void)state;
	char md[128];
	struct buf err = BUF_INIT(4096);
	snprintf(md, sizeof(md), "%s/a/b/Maildir", root);
	assert_true(maildir_make(md, 0700, &err));
	struct maildir_writer *w = maildir_begin(md, 0600, &err);
	assert_non_null(w);
	assert_true(maildir_write(w, "Subject: x\n\nab\r", 15));
	assert_true(maildir_write(w, "\nc\n", 3));
	assert_int_equal(maildir_size(w), 18);
	assert_int_equal(maildir_wsize(w), 18 + 3);	/* three LFs, one already after CR */
	char *name = NULL;
	assert_true(maildir_commit(&w, NULL, &name, &err));
	assert_null(w);
	assert_non_null(strstr(name, ",S=18,W=21"));
	assert_int_equal(count(md, "new"), 1);
	assert_int_equal(count(md, "tmp"), 0);
	char p[512];
	snprintf(p, sizeof(p), "%s/new/%s", md, name);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 18);
	struct maildir_name mn;
	assert_true(maildir_name_parse(name, &mn));
	assert_true(mn.have_size && mn.have_wsize);
	assert_int_equal(mn.size, 18);
	assert_int_equal(mn.wsize, 21);
	assert_string_equal(mn.flags, "");
	free(name);

	/* into cur/ with flags */
	w = maildir_begin(md, 0600, &err);
	assert_true(maildir_write(w, "x\n", 2));
	assert_true(maildir_commit(&w, "FS", &name, &err));
	assert_non_null(strstr(name, ":2,FS"));
	assert_int_equal(count(md, "cur"), 1);
	free(name);

	/* abort leaves nothing */
	w = maildir_begin(md, 0600, &err);
	maildir_write(w, "x", 1);
	maildir_abort(&w);
	assert_int_equal(count(md, "tmp"), 0);
	assert_int_equal(count(md, "new"), 1);
	buf_free(&err);
}

/* maildir_make on an existing Maildir only makes what is missing, and still reports what it cannot make. */
static void test_make_again(void **state)
{
	(void)state;
	char md[128], sub[160];
	struct buf err = BUF_INIT(4096);
	snprintf(md, sizeof(md), "%s/x/Maildir", root);
	assert_true(maildir_make(md, 0700, &err));
	snprintf(sub, sizeof(sub), "%s/cur", md);
	assert_int_equal(rmdir(sub), 0);
	assert_true(maildir_make(md, 0700, &err));
	assert_int_equal(count(md, "cur"), 0);
	assert_true(maildir_make(md, 0700, &err));	/* all there: nothing to do */
	snprintf(sub, sizeof(sub), "%s/x/file", root);
	FILE *f = fopen(sub, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(md, sizeof(md), "%s/x/file/Maildir", root);
	assert_false(maildir_make(md, 0700, &err));	/* a parent is a file: ENOTDIR */
	assert_true(err.len > 0);
	buf_free(&err);
}

/* Two attempts at the same delivery (the same tag and content): the second adds nothing and says so. */
static void test_commit_once(void **state)
{
	(void)state;
	char md[128];
	struct buf err = BUF_INIT(4096);
	snprintf(md, sizeof(md), "%s/once", root);
	assert_true(maildir_make(md, 0700, &err));
	char *name[2] = { NULL, NULL };
	bool existed[2] = { true, false };
	struct maildir_writer *w[2];
	for (int i = 0; i < 2; i++) {	/* both written before either commits: a concurrent retry */
		w[i] = maildir_begin(md, 0600, &err);
		assert_non_null(w[i]);
		maildir_set_unique(w[i], "QABCR0H00");
		assert_true(maildir_write(w[i], "Subject: once\n\nx\n", 18));
	}
	assert_int_equal(count(md, "tmp"), unnamed_tmp(md) ? 0 : 2);	/* O_TMPFILE: nothing in tmp/ while written */
	for (int i = 0; i < 2; i++)
		assert_true(maildir_commit_once(&w[i], &name[i], &existed[i], &err));
	assert_false(existed[0]);
	assert_true(existed[1]);
	assert_string_equal(name[0], name[1]);
	assert_true(strncmp(name[0], "QABCR0H00.", 10) == 0 && strstr(name[0], ",S=18,W=21"));
	assert_int_equal(count(md, "new"), 1);
	assert_int_equal(count(md, "tmp"), 0);
	/* without a tag a collision is impossible, and a plain commit never reports one */
	struct maildir_writer *v = maildir_begin(md, 0600, &err);
	assert_true(maildir_write(v, "x\n", 2));
	assert_true(maildir_commit(&v, NULL, NULL, &err));
	assert_int_equal(count(md, "new"), 2);
	free(name[0]);
	free(name[1]);
	buf_free(&err);
}

static void test_parallel_unique(void **state)
{
	(void)state;
	char md[128];
	struct buf err = BUF_INIT(4096);
	snprintf(md, sizeof(md), "%s/par", root);
	assert_true(maildir_make(md, 0700, &err));
	for (int c = 0; c < 10; c++) {
		if (fork() == 0) {
			for (int i = 0; i < 20; i++) {
				struct buf e = BUF_INIT(4096);
				struct maildir_writer *w = maildir_begin(md, 0600, &e);
				if (!w || !maildir_write(w, "m\n", 2) || !maildir_commit(&w, NULL, NULL, &e))
					_exit(1);
			}
			_exit(0);
		}
	}
	int st, bad = 0;
	while (wait(&st) > 0)
		bad += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	assert_int_equal(bad, 0);
	assert_int_equal(count(md, "new"), 200);
	buf_free(&err);
}

static void test_names_and_folders(void **state)
{
	(void)state;
	struct maildir_name mn;
	assert_true(maildir_name_parse("1700000000.M1P2Q3.host,W=20,S=10:2,RS", &mn));
	assert_int_equal(mn.size, 10);
	assert_int_equal(mn.wsize, 20);
	assert_string_equal(mn.flags, "RS");
	assert_int_equal(mn.baselen, strlen("1700000000.M1P2Q3.host,W=20,S=10"));
	assert_true(maildir_name_parse("1700000000.12345.host", &mn));
	assert_false(mn.have_size);
	assert_false(maildir_name_parse(".hidden", &mn));
	assert_false(maildir_name_parse("a/b", &mn));
	assert_false(maildir_name_parse("", &mn));
	assert_true(maildir_name_parse("x,S=99999999999999999999999", &mn));
	assert_false(mn.have_size);

	struct buf p = BUF_INIT(4096);
	assert_true(maildir_folder_path("/m", "INBOX", &p));
	assert_string_equal(buf_cstr(&p), "/m");
	assert_true(maildir_folder_path("/m", "Lists/postern", &p));
	assert_string_equal(buf_cstr(&p), "/m/.Lists.postern");
	assert_false(maildir_folder_path("/m", "a.b", &p));
	assert_false(maildir_folder_path("/m", "../x", &p));
	assert_false(maildir_folder_path("/m", "a//b", &p));
	assert_false(maildir_folder_path("/m", "", &p));
	buf_free(&p);
}

static void test_fsutil(void **state)
{
	(void)state;
	char p[128];
	struct buf err = BUF_INIT(4096), in = BUF_INIT(BUF_NOLIMIT);
	snprintf(p, sizeof(p), "%s/f/g", root);
	assert_true(fsutil_mkdir_p(p, 0700));
	snprintf(p, sizeof(p), "%s/f/g/file", root);
	assert_true(fsutil_write_atomic(p, "one", 3, 0640, &err));
	assert_true(fsutil_write_atomic(p, "two!", 4, 0640, &err));
	assert_true(fsutil_read_file(p, 100, &in));
	assert_string_equal(buf_cstr(&in), "two!");
	buf_reset(&in);
	assert_false(fsutil_read_file(p, 3, &in));
	assert_false(fsutil_write_atomic("/nonexistent-postern/x", "a", 1, 0600, &err));
	assert_non_null(strstr(buf_cstr(&err), "/nonexistent-postern/x"));
	buf_free(&err);
	buf_free(&in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deliver),
		cmocka_unit_test(test_make_again),
		cmocka_unit_test(test_commit_once),
		cmocka_unit_test(test_parallel_unique),
		cmocka_unit_test(test_names_and_folders),
		cmocka_unit_test(test_fsutil),
	};
	return cmocka_run_group_tests_name("maildir", tests, setup, teardown);
}
