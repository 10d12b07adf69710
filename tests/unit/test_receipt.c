/* common/receipt: the pending mark and the receipt, finding an interrupted delivery's copy in new/ or cur/ by
 * size, time and content (and not a look-alike), and a second delivery of the same recipient waiting for the
 * first one's lock; smtp's mode without a folder. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "receipt.h"
#include "alloc.h"
#include "buf.h"
#include "fsutil.h"

static const char HDR[] = "Return-Path: <a@b.test>\nDelivered-To: u@c.test\n";
static const char BODY[] = "Subject: hi\n\nthe body\n";

struct fx {
	char dir[64];
	char receipt[128], pending[160], maildir[128];
	int qfd;
	struct qreceipt_content c;
};

static void path_in(const struct fx *f, const char *rel, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", f->dir, rel);
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_receipt.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	path_in(f, "receipts/ID/0-00ab", f->receipt, sizeof(f->receipt));
	snprintf(f->pending, sizeof(f->pending), "%s%s", f->receipt, QRECEIPT_PENDING_SUFFIX);
	path_in(f, "Maildir", f->maildir, sizeof(f->maildir));
	char p[256];
	path_in(f, "receipts", p, sizeof(p));
	assert_int_equal(mkdir(p, 0700), 0);
	for (const char *const *s = (const char *const[]){ "Maildir", "Maildir/new", "Maildir/cur", NULL }; *s; s++) {
		path_in(f, *s, p, sizeof(p));
		assert_int_equal(mkdir(p, 0700), 0);
	}
	/* a queue file: some envelope bytes, then the content at offset 7 */
	path_in(f, "qfile", p, sizeof(p));
	f->qfd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(f->qfd >= 0);
	assert_int_equal(write(f->qfd, "PQF1xyz", 7), 7);
	assert_int_equal(write(f->qfd, BODY, strlen(BODY)), (ssize_t)strlen(BODY));
	f->c = (struct qreceipt_content){ HDR, strlen(HDR), f->qfd, 7, strlen(BODY) };
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];
	close(f->qfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static bool exists(const char *p)
{
	return access(p, F_OK) == 0;
}

/* A mailbox file as a delivery writes it: sub is "new" or "cur", text the whole file. */
static void put_mail(const struct fx *f, const char *sub, const char *name_tail, const char *text)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s/1700000000.M1P1.host,S=%zu,W=%zu%s", f->maildir, sub, strlen(text),
	         strlen(text) + 5, name_tail);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static char *full_text(void)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	buf_puts(&b, HDR);
	buf_puts(&b, BODY);
	return buf_steal(&b, NULL);
}

/* a delivery that was killed: the mark stays, the lock goes with the process */
static void crash(struct qreceipt *r)
{
	close(r->fd);
	xfree(&r->path);
}

static void test_normal_cycle(void **state)
{
	struct fx *f = *state;
	struct qreceipt r;
	assert_false(qreceipt_begin(&r, f->receipt, f->maildir, &f->c));
	assert_true(exists(f->pending));
	assert_false(exists(f->receipt));
	qreceipt_end(&r, true);
	assert_false(exists(f->pending));
	assert_true(exists(f->receipt));
	/* a retry (qmgr lost the answer) does not deliver again */
	assert_true(qreceipt_begin(&r, f->receipt, f->maildir, &f->c));
}

static void test_failed_attempt_leaves_nothing(void **state)
{
	struct fx *f = *state;
	struct qreceipt r;
	assert_false(qreceipt_begin(&r, f->receipt, f->maildir, &f->c));
	qreceipt_end(&r, false);
	assert_false(exists(f->pending));
	assert_false(exists(f->receipt));
	assert_false(qreceipt_begin(&r, f->receipt, f->maildir, &f->c));
	qreceipt_end(&r, false);
}

static void test_interrupted_after_rename_is_found(void **state)
{
	struct fx *f = *state;
	struct qreceipt r;
	char *text = full_text();
	assert_false(qreceipt_begin(&r, f->receipt, f->maildir, &f->c));
	put_mail(f, "new", "", text);
	crash(&r);
	assert_true(exists(f->pending));
	assert_true(qreceipt_begin(&r, f->receipt, f->maildir, &f->c));
	assert_true(exists(f->receipt));
	assert_false(exists(f->pending));
	free(text);
}

static void test_found_in_cur_after_a_reader_moved_it(void **state)
{
	struct fx *f = *state;
	struct qreceipt r;
	char *text = full_text();
	assert_false(qreceipt_begin(&r, f->receipt, f->maildir, &f->c));
	put_mail(f, "cur", ":2,S", text);
	crash(&r);
	assert_true(qreceipt_begin(&r, f->receipt, f->maildir, &f->c));
	free(text);
}

static void test_interrupted_before_rename_delivers_again(void **state)
{
	struct fx *f = *state;
	struct qreceipt r;
	assert_false(qreceipt_begin(&r, f->receipt, f->maildir, &f->c));
	crash(&r);
	assert_false(qreceipt_begin(&r, f->receipt, f->maildir, &f->c));
	qreceipt_end(&r, true);
	assert_true(exists(f->receipt));
}

static void test_look_alikes_are_not_taken(void **state)
{
	struct fx *f = *state;
	struct qreceipt r;
	char *text = full_text();
	assert_false(qreceipt_begin(&r, f->receipt, f->maildir, &f->c));
	/* same size, one byte different */
	char *other = xstrdup(text);
	other[strlen(other) - 2] ^= 1;
	put_mail(f, "new", "", other);
	/* the right content but a name without S= (not ours) */
	char p[512];
	snprintf(p, sizeof(p), "%s/new/1700000001.M2P2.host", f->maildir);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	/* the right content, written long before the mark */
	snprintf(p, sizeof(p), "%s/cur/1600000000.M3P3.host,S=%zu:2,S", f->maildir, strlen(text));
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	struct timespec old[2] = { { time(NULL) - 3600, 0 }, { time(NULL) - 3600, 0 } };
	assert_int_equal(futimens(fd, old), 0);
	close(fd);
	crash(&r);
	assert_false(qreceipt_begin(&r, f->receipt, f->maildir, &f->c));
	qreceipt_end(&r, false);
	/* qreceipt_find directly: the old one is found when the time allows it */
	assert_true(qreceipt_find(f->maildir, &f->c, 0));
	free(other);
	free(text);
}

static void test_second_delivery_waits_for_the_first(void **state)
{
	struct fx *f = *state;
	int go[2];
	assert_int_equal(pipe(go), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct qreceipt r;
		char *text = full_text();
		if (qreceipt_begin(&r, f->receipt, f->maildir, &f->c))
			_exit(2);
		if (write(go[1], "x", 1) != 1)
			_exit(3);
		usleep(300 * 1000);
		put_mail(f, "new", "", text);
		qreceipt_end(&r, true);
		_exit(0);
	}
	char x;
	assert_int_equal(read(go[0], &x, 1), 1);
	struct qreceipt r;
	/* blocks until the child's delivery is over, then sees its receipt */
	assert_true(qreceipt_begin(&r, f->receipt, f->maildir, &f->c));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(go[0]);
	close(go[1]);
}

/* smtp's use: nothing to look in, so a mark left by a killed attempt is only reported, and a receipt is final */
static void test_relay_mode(void **state)
{
	struct fx *f = *state;
	struct qreceipt r;
	assert_false(qreceipt_begin(&r, f->receipt, NULL, NULL));
	assert_false(r.resumed);
	crash(&r);
	assert_false(qreceipt_begin(&r, f->receipt, NULL, NULL));
	assert_true(r.resumed);
	qreceipt_end(&r, true);
	assert_true(exists(f->receipt));
	assert_false(exists(f->pending));
	assert_true(qreceipt_begin(&r, f->receipt, NULL, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_normal_cycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_attempt_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupted_after_rename_is_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_found_in_cur_after_a_reader_moved_it, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupted_before_rename_delivers_again, setup, teardown),
		cmocka_unit_test_setup_teardown(test_look_alikes_are_not_taken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_delivery_waits_for_the_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_mode, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
