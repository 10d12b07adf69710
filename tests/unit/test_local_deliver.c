/* local delivery targets: ">From " quoting (whole and one byte at a time), the From_ line, appending to an mbox
 * file (locks, cut back on failure, refused symlinks and links), commands (exit status mapping, environment,
 * stdin, output, time limit, a command that reads nothing), Maildir quotas and extension folders, file modes,
 * and parallel deliveries into one Maildir. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../local/deliver.h"
#include "alloc.h"
#include "buf.h"
#include "fsutil.h"
#include "maildirsize.h"
#include "qfile.h"

static char tmpdir[64];

static int make_queue_file(const char *content, size_t len)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/qf", tmpdir);
	unlink(path);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "ENV", 3), 3);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	return fd;
}

static struct ldeliver_msg msg(int fd, size_t len)
{
	return (struct ldeliver_msg){ .queue_id = "0ABCDEFGHIJ1", .sender = "sender@remote.test", .fd = fd,
		                      .content_offset = 3, .content_len = len };
}

static void quote_all(const char *in, size_t step, struct buf *out)
{
	struct lmbox_quoter q = { 0, false };
	size_t n = strlen(in);
	for (size_t i = 0; i < n; i += step)
		lmbox_quote(&q, in + i, n - i < step ? n - i : step, out);
	lmbox_quote_end(&q, out);
}

static void test_quote(void **state)
{
	(void)state;
	static const struct { const char *in, *out; } cases[] = {
		{ "From me\nx\n", ">From me\nx\n\n" },
		{ "a\nFrom b\nFrom\nFro\n>From c\n From d\n", "a\n>From b\nFrom\nFro\n>From c\n From d\n\n" },
		{ "no newline", "no newline\n\n" },
		{ "ends in Fro", "ends in Fro\n\n" },
		{ "x\nFro", "x\nFro\n\n" },
		{ "x\nFrom ", "x\n>From \n\n" },
		{ "", "\n" },
		{ "\n\nFrom x", "\n\n>From x\n\n" },
		{ "FromFrom \n", "FromFrom \n\n" },
		{ "Fr\nFrom y\n", "Fr\n>From y\n\n" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (size_t step = 1; step <= 8; step++) {
			struct buf out = BUF_INIT(BUF_NOLIMIT);
			quote_all(cases[i].in, step, &out);
			assert_string_equal(buf_cstr(&out), cases[i].out);
			buf_free(&out);
		}
}

static void test_from_line(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	lmbox_from_line("", 0, &b);
	assert_true(strncmp(b.data, "From MAILER-DAEMON ", 19) == 0);
	assert_int_equal(b.data[b.len - 1], '\n');
	buf_reset(&b);
	lmbox_from_line("a b\n@x", 0, &b);
	assert_true(strncmp(b.data, "From a_b_@x ", 12) == 0);
	assert_ptr_equal(strchr(b.data, '\n'), b.data + b.len - 1);
	buf_free(&b);
}

static void test_mbox_append(void **state)
{
	(void)state;
	const char *content = "Subject: m\n\nFrom the start\nbody";
	int fd = make_queue_file(content, strlen(content));
	struct ldeliver_msg m = msg(fd, strlen(content));
	char path[128];
	snprintf(path, sizeof(path), "%s/mbox", tmpdir);
	struct ldeliver_target t = { .kind = LDELIVER_FILE, .rcpt = "list@local.test", .path = path };
	struct buf dsn = BUF_INIT(64), text = BUF_INIT(4096), data = BUF_INIT(1 << 20);
	assert_int_equal(ldeliver(&m, &t, &dsn, &text), LDELIVER_OK);
	t.sender = "owner-list@local.test";
	assert_int_equal(ldeliver(&m, &t, &dsn, &text), LDELIVER_OK);
	assert_true(fsutil_read_file(path, 1 << 20, &data));
	const char *p = data.data;
	assert_true(strncmp(p, "From sender@remote.test ", 24) == 0);
	p = strchr(p, '\n') + 1;
	const char *first = "Return-Path: <sender@remote.test>\nDelivered-To: list@local.test\nSubject: m\n\n"
	                    ">From the start\nbody\n\n";
	assert_true(strncmp(p, first, strlen(first)) == 0);
	p += strlen(first);
	assert_true(strncmp(p, "From owner-list@local.test ", 27) == 0);
	p = strchr(p, '\n') + 1;
	assert_true(strncmp(p, "Return-Path: <owner-list@local.test>\n", 37) == 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* a symbolic link or a second hard link is not followed */
	char lnk[160];
	snprintf(lnk, sizeof(lnk), "%s/mbox-link", tmpdir);
	assert_int_equal(symlink(path, lnk), 0);
	t.path = lnk;
	buf_reset(&dsn);
	assert_int_equal(ldeliver(&m, &t, &dsn, &text), LDELIVER_TEMPFAIL);
	assert_string_equal(dsn.data, "4.2.0");
	unlink(lnk);
	assert_int_equal(link(path, lnk), 0);
	buf_reset(&dsn);
	assert_int_equal(ldeliver(&m, &t, &dsn, &text), LDELIVER_TEMPFAIL);
	unlink(lnk);
	/* a short queue file: temporary failure and the file is cut back to where it was */
	off_t before = st.st_size;
	m.content_len += 50;
	t.path = path;
	buf_reset(&dsn);
	assert_int_equal(ldeliver(&m, &t, &dsn, &text), LDELIVER_TEMPFAIL);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, before);
	/* /dev/null takes anything */
	t.path = "/dev/null";
	assert_int_equal(ldeliver(&m, &t, &dsn, &text), LDELIVER_OK);
	close(fd);
	buf_free(&dsn);
	buf_free(&text);
	buf_free(&data);
}

static void test_pipe_status(void **state)
{
	(void)state;
	struct buf d = BUF_INIT(64), t = BUF_INIT(4096);
	assert_int_equal(lpipe_status(0, false, "", 10, &d, &t), LDELIVER_OK);
	assert_string_equal(d.data, "2.0.0");
	buf_reset(&d);
	buf_reset(&t);
	assert_int_equal(lpipe_status(75 << 8, false, "try later", 10, &d, &t), LDELIVER_TEMPFAIL);
	assert_string_equal(d.data, "4.3.0");
	assert_non_null(strstr(t.data, "try later"));
	buf_reset(&d);
	buf_reset(&t);
	assert_int_equal(lpipe_status(67 << 8, false, NULL, 10, &d, &t), LDELIVER_FAIL);
	assert_string_equal(d.data, "5.1.1");
	buf_reset(&d);
	buf_reset(&t);
	assert_int_equal(lpipe_status(1 << 8, false, "no such list", 10, &d, &t), LDELIVER_FAIL);
	assert_string_equal(d.data, "5.3.0");
	assert_string_equal(t.data, "command failed (exit 1): no such list");
	buf_reset(&d);
	buf_reset(&t);
	assert_int_equal(lpipe_status(9, false, NULL, 10, &d, &t), LDELIVER_TEMPFAIL);	/* SIGKILL */
	assert_string_equal(d.data, "4.3.0");
	buf_reset(&d);
	buf_reset(&t);
	assert_int_equal(lpipe_status(0, true, NULL, 10, &d, &t), LDELIVER_TEMPFAIL);
	assert_string_equal(t.data, "command time limit exceeded (10 s)");
	buf_free(&d);
	buf_free(&t);
}

static enum ldeliver_status run(const char *cmd, const char *content, size_t len, unsigned limit, char *const *env,
                                struct buf *dsn, struct buf *text)
{
	int fd = make_queue_file(content, len);
	struct ldeliver_msg m = msg(fd, len);
	struct ldeliver_target t = { .kind = LDELIVER_PIPE, .rcpt = "pipe@local.test", .path = cmd,
		                     .switch_user = geteuid() == 0, .uid = 65534, .gid = 65534, .env = env,
		                     .home = "/", .time_limit = limit };
	buf_reset(dsn);
	buf_reset(text);
	enum ldeliver_status st = ldeliver(&m, &t, dsn, text);
	close(fd);
	return st;
}

static void test_pipe_run(void **state)
{
	(void)state;
	struct buf d = BUF_INIT(64), t = BUF_INIT(4096), out = BUF_INIT(1 << 20), cmd = BUF_INIT(BUF_NOLIMIT);
	char outpath[128];
	snprintf(outpath, sizeof(outpath), "%s/pipe-out", tmpdir);
	int ofd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0666);
	assert_true(ofd >= 0);
	close(ofd);
	chmod(outpath, 0666);
	chmod(tmpdir, 0755);
	char *env[] = { "SENDER=sender@remote.test", "RECIPIENT=pipe+x@local.test", "EXTENSION=x", NULL };
	const char *content = "Subject: p\n\nline\n";
	buf_printf(&cmd, "{ echo \"$SENDER $RECIPIENT $EXTENSION ${HOME-unset}\"; cat; } > %s", outpath);
	assert_int_equal(run(cmd.data, content, strlen(content), 10, env, &d, &t), LDELIVER_OK);
	assert_string_equal(d.data, "2.0.0");
	assert_true(fsutil_read_file(outpath, 1 << 20, &out));
	assert_string_equal(out.data, "sender@remote.test pipe+x@local.test x unset\nReturn-Path: <sender@remote.test>\n"
	                              "Delivered-To: pipe@local.test\nSubject: p\n\nline\n");
	if (geteuid() == 0) {	/* ran as the target's uid, not root */
		buf_reset(&cmd);
		buf_printf(&cmd, "id -u > %s", outpath);
		assert_int_equal(run(cmd.data, content, strlen(content), 10, env, &d, &t), LDELIVER_OK);
		buf_reset(&out);
		assert_true(fsutil_read_file(outpath, 1 << 20, &out));
		assert_string_equal(out.data, "65534\n");
	}
	assert_int_equal(run("echo later; exit 75", content, strlen(content), 10, env, &d, &t), LDELIVER_TEMPFAIL);
	assert_string_equal(d.data, "4.3.0");
	assert_int_equal(run("exit 67", content, strlen(content), 10, env, &d, &t), LDELIVER_FAIL);
	assert_string_equal(d.data, "5.1.1");
	assert_int_equal(run("echo 'first line' >&2; echo second; exit 3", content, strlen(content), 10, env, &d, &t),
	                 LDELIVER_FAIL);
	assert_string_equal(d.data, "5.3.0");
	assert_string_equal(t.data, "command failed (exit 3): first line");
	/* a big message to a command that reads nothing: no hang, its exit status counts */
	size_t big = 4u << 20;
	char *bigmsg = xmalloc(big);
	memset(bigmsg, 'a', big);
	for (size_t i = 99; i < big; i += 100)
		bigmsg[i] = '\n';
	assert_int_equal(run("exit 0", bigmsg, big, 10, env, &d, &t), LDELIVER_OK);
	/* and to one that writes lots of output while reading: both streams keep moving */
	assert_int_equal(run("cat; yes | head -c 1000000", bigmsg, big, 20, env, &d, &t), LDELIVER_OK);
	/* a command that closes its output first still gets the whole message */
	buf_reset(&cmd);
	buf_printf(&cmd, "exec >/dev/null 2>&1; sleep 0.2; wc -c > %s", outpath);
	assert_int_equal(run(cmd.data, bigmsg, big, 20, env, &d, &t), LDELIVER_OK);
	buf_reset(&out);
	assert_true(fsutil_read_file(outpath, 1 << 20, &out));
	char want[64];
	snprintf(want, sizeof(want), "%zu\n", big + strlen("Return-Path: <sender@remote.test>\nDelivered-To: pipe@local.test\n"));
	assert_string_equal(out.data, want);
	free(bigmsg);
	/* over the time limit: killed with its children */
	time_t t0 = time(NULL);
	assert_int_equal(run("sleep 30 & sleep 30", content, strlen(content), 1, env, &d, &t), LDELIVER_TEMPFAIL);
	assert_true(time(NULL) - t0 < 10);
	assert_string_equal(t.data, "command time limit exceeded (1 s)");
	/* the command inherits nothing but stdin, stdout and stderr (the test's queue file is not close-on-exec) */
	buf_reset(&cmd);
	buf_printf(&cmd, "ls -l /proc/$$/fd > %s", outpath);
	assert_int_equal(run(cmd.data, content, strlen(content), 10, env, &d, &t), LDELIVER_OK);
	buf_reset(&out);
	assert_true(fsutil_read_file(outpath, 1 << 20, &out));
	assert_non_null(strstr(out.data, "pipe:"));	/* stdin, stdout: the listing works */
	assert_null(strstr(out.data, "/qf"));
	/* a command that cannot be found: the shell's 127 */
	assert_int_equal(run("/nonexistent/cmd", content, strlen(content), 10, env, &d, &t), LDELIVER_FAIL);
	assert_string_equal(d.data, "5.3.0");
	buf_free(&d);
	buf_free(&t);
	buf_free(&out);
	buf_free(&cmd);
}

static void put_file(const char *dir, const char *name, size_t size)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	char *z = xcalloc(size + 1, 1);
	assert_int_equal(write(fd, z, size), (ssize_t)size);
	free(z);
	close(fd);
}

static void mkdirs(const char *root, const char *folder)
{
	char p[512];
	const char *sub[] = { "", "/tmp", "/new", "/cur" };
	for (int i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s%s%s", root, folder, sub[i]);
		mkdir(p, 0700);
	}
}

static void test_quota_usage(void **state)
{
	(void)state;
	char root[128], p[256];
	snprintf(root, sizeof(root), "%s/qmd/", tmpdir);
	struct buf err = BUF_INIT(1024);
	uint64_t used = 99, cnt = 99;
	assert_true(maildirsize_scan(root, &used, &cnt, &err));	/* missing: empty */
	assert_int_equal(used, 0);
	mkdirs(root, "");
	mkdirs(root, ".Sent");
	mkdirs(root, ".Lists.x");
	snprintf(p, sizeof(p), "%snew", root);
	put_file(p, "1.M1P1.host,S=1000,W=1020", 3);	/* the name's S= counts, not the file */
	put_file(p, "2.M1P1.host", 500);			/* no S=: its size */
	snprintf(p, sizeof(p), "%scur", root);
	put_file(p, "3.M1P1.host,S=2000:2,S", 1);
	snprintf(p, sizeof(p), "%s.Sent/cur", root);
	put_file(p, "4.M1P1.host,S=300:2,S", 1);
	snprintf(p, sizeof(p), "%s.Lists.x/new", root);
	put_file(p, "5.M1P1.host,S=40", 1);
	snprintf(p, sizeof(p), "%stmp", root);
	put_file(p, "6.M1P1.host,S=999999", 1);		/* tmp/ does not count */
	assert_true(maildirsize_scan(root, &used, &cnt, &err));
	assert_int_equal(used, 1000 + 500 + 2000 + 300 + 40);
	assert_int_equal(cnt, 5);
	buf_free(&err);
}

static void test_maildir_quota_and_folder(void **state)
{
	(void)state;
	const char *content = "Subject: q\n\n0123456789\n";
	int fd = make_queue_file(content, strlen(content));
	struct ldeliver_msg m = msg(fd, strlen(content));
	char root[128], p[256];
	snprintf(root, sizeof(root), "%s/fmd/", tmpdir);
	struct ldeliver_target t = { .kind = LDELIVER_MAILDIR, .rcpt = "u+lists@local.test", .path = root,
		                     .folder = "lists" };
	struct buf d = BUF_INIT(64), x = BUF_INIT(4096);
	/* the folder does not exist: INBOX */
	assert_int_equal(ldeliver(&m, &t, &d, &x), LDELIVER_OK);
	assert_string_equal(x.data, "delivered to maildir");
	mkdirs(root, ".lists");
	buf_reset(&x);
	assert_int_equal(ldeliver(&m, &t, &d, &x), LDELIVER_OK);
	assert_string_equal(x.data, "delivered to maildir folder lists");
	snprintf(p, sizeof(p), "%s.lists/new", root);
	DIR *dir = opendir(p);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.') {
			n++;
			char f[600];
			struct stat st;
			snprintf(f, sizeof(f), "%s/%s", p, e->d_name);
			assert_int_equal(stat(f, &st), 0);
			assert_int_equal(st.st_mode & 07777, 0600);
		}
	closedir(dir);
	assert_int_equal(n, 1);
	/* a folder name that cannot be one: INBOX */
	t.folder = "../x";
	buf_reset(&x);
	assert_int_equal(ldeliver(&m, &t, &d, &x), LDELIVER_OK);
	assert_string_equal(x.data, "delivered to maildir");
	/* quota: 3 messages of about 90 bytes are there; the 4th fits 400 but not 300 */
	uint64_t used, cnt;
	struct buf err = BUF_INIT(1024);
	assert_true(maildirsize_scan(root, &used, &cnt, &err));
	buf_free(&err);
	t.folder = NULL;
	t.quota = used + 200;
	buf_reset(&d);
	assert_int_equal(ldeliver(&m, &t, &d, &x), LDELIVER_OK);
	t.quota = used + 100;	/* now used grew by about 90 */
	buf_reset(&d);
	buf_reset(&x);
	assert_int_equal(ldeliver(&m, &t, &d, &x), LDELIVER_TEMPFAIL);
	assert_string_equal(d.data, "4.2.2");
	assert_true(strncmp(x.data, "mailbox full", 12) == 0);
	t.quota_bounce = true;
	buf_reset(&d);
	assert_int_equal(ldeliver(&m, &t, &d, &x), LDELIVER_FAIL);
	assert_string_equal(d.data, "5.2.2");
	close(fd);
	buf_free(&d);
	buf_free(&x);
}

static int count_dir(const char *root, const char *sub)
{
	char p[512];
	snprintf(p, sizeof(p), "%s%s", root, sub);
	DIR *dir = opendir(p);
	if (!dir)
		return 0;
	struct dirent *e;
	int n = 0;
	while ((e = readdir(dir)))
		n += e->d_name[0] != '.';
	closedir(dir);
	return n;
}

/* Failures leave nothing behind: not in new/, not in tmp/. */
static void test_failure_leaves_nothing(void **state)
{
	(void)state;
	const char *content = "Subject: f\n\nbody\n";
	int fd = make_queue_file(content, strlen(content));
	struct ldeliver_msg m = msg(fd, strlen(content));
	char root[128];
	snprintf(root, sizeof(root), "%s/fail/", tmpdir);
	struct ldeliver_target t = { .kind = LDELIVER_MAILDIR, .rcpt = "f@local.test", .path = root, .quota = 10 };
	struct buf d = BUF_INIT(64), x = BUF_INIT(4096);
	assert_int_equal(ldeliver(&m, &t, &d, &x), LDELIVER_TEMPFAIL);	/* over quota */
	assert_int_equal(count_dir(root, "new") + count_dir(root, "tmp") + count_dir(root, "cur"), 0);
	t.quota = 0;
	m.content_len += 1000;	/* the queue file ends early: the write fails half way */
	buf_reset(&d);
	assert_int_equal(ldeliver(&m, &t, &d, &x), LDELIVER_TEMPFAIL);
	assert_string_equal(d.data, "4.3.0");
	assert_int_equal(count_dir(root, "new") + count_dir(root, "tmp") + count_dir(root, "cur"), 0);
	close(fd);
	buf_free(&d);
	buf_free(&x);
}

/* Ten processes deliver into one Maildir at once: ten distinct files, none left in tmp/. */
static void test_parallel(void **state)
{
	(void)state;
	const char *content = "Subject: par\n\nx\n";
	int fd = make_queue_file(content, strlen(content));
	char root[128], p[256];
	snprintf(root, sizeof(root), "%s/par/", tmpdir);
	pid_t pids[10];
	for (int i = 0; i < 10; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct ldeliver_msg m = msg(fd, strlen(content));
			struct ldeliver_target t = { .kind = LDELIVER_MAILDIR, .rcpt = "p@local.test", .path = root };
			struct buf d = BUF_INIT(64), x = BUF_INIT(4096);
			_exit(ldeliver(&m, &t, &d, &x) == LDELIVER_OK ? 0 : 1);
		}
	}
	for (int i = 0; i < 10; i++) {
		int st;
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	snprintf(p, sizeof(p), "%snew", root);
	DIR *dir = opendir(p);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(dir)))
		n += e->d_name[0] != '.';
	closedir(dir);
	assert_int_equal(n, 10);
	snprintf(p, sizeof(p), "%stmp", root);
	dir = opendir(p);
	n = 0;
	while ((e = readdir(dir)))
		n += e->d_name[0] != '.';
	closedir(dir);
	assert_int_equal(n, 0);
	close(fd);
}

/* Ten processes append to one mbox file at once: the locks keep every message whole and apart. */
static void test_mbox_parallel(void **state)
{
	(void)state;
	size_t len = 200000;
	char *content = xmalloc(len + 1);
	memset(content, 'm', len);
	for (size_t i = 99; i < len; i += 100)
		content[i] = '\n';
	content[len] = '\0';
	int fd = make_queue_file(content, len);
	char path[128];
	snprintf(path, sizeof(path), "%s/par.mbox", tmpdir);
	pid_t pids[10];
	for (int i = 0; i < 10; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct ldeliver_msg m = msg(fd, len);
			struct ldeliver_target t = { .kind = LDELIVER_FILE, .rcpt = "p@local.test", .path = path };
			struct buf d = BUF_INIT(64), x = BUF_INIT(4096);
			_exit(ldeliver(&m, &t, &d, &x) == LDELIVER_OK ? 0 : 1);
		}
	}
	for (int i = 0; i < 10; i++) {
		int st;
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	struct buf data = BUF_INIT(BUF_NOLIMIT);
	assert_true(fsutil_read_file(path, 64u << 20, &data));
	/* each message: From_ line, two trace lines, the content, the empty separator line */
	size_t n = 0;
	for (const char *p = data.data; p && *p; n++) {
		assert_true(strncmp(p, "From sender@remote.test ", 24) == 0);
		p = strchr(p, '\n') + 1;
		const char *trace = "Return-Path: <sender@remote.test>\nDelivered-To: p@local.test\n";
		assert_true(strncmp(p, trace, strlen(trace)) == 0);
		p += strlen(trace);
		assert_memory_equal(p, content, len);
		p += len;
		assert_int_equal(*p, '\n');	/* the content ends in a newline; then the empty separator line */
		p++;
	}
	assert_int_equal(n, 10);
	buf_free(&data);
	free(content);
	close(fd);
}

/* A list's remote members resubmitted under the owner's sender: a complete queue file in incoming/. */
static void test_resubmit(void **state)
{
	(void)state;
	const char *content = "Subject: list\n\nbody\n";
	int fd = make_queue_file(content, strlen(content));
	struct ldeliver_msg m = msg(fd, strlen(content));
	char q[128], p[256];
	snprintf(q, sizeof(q), "%s/queue", tmpdir);
	mkdir(q, 0700);
	snprintf(p, sizeof(p), "%s/tmp", q);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/incoming", q);
	mkdir(p, 0700);
	char *rcpts[] = { "a@remote.test", "b@remote.test", NULL };
	struct ldeliver_target t = { .kind = LDELIVER_RESUBMIT, .rcpt = "list@local.test",
		                     .sender = "owner-list@local.test", .path = q, .rcpts = rcpts };
	struct buf d = BUF_INIT(64), x = BUF_INIT(4096), err = BUF_INIT(1024);
	assert_int_equal(ldeliver(&m, &t, &d, &x), LDELIVER_OK);
	assert_true(strncmp(x.data, "resubmitted from owner-list@local.test as ", 42) == 0);
	char path[512];
	snprintf(path, sizeof(path), "%s/incoming/%s", q, x.data + 42);
	int qfd = open(path, O_RDONLY);
	assert_true(qfd >= 0);
	struct qfile_envelope env;
	assert_true(qfile_read_envelope(qfd, &env, &err));
	assert_string_equal(env.sender, "owner-list@local.test");
	assert_int_equal(env.nrcpts, 2);
	assert_string_equal(env.rcpts[1].addr, "b@remote.test");
	char buf[256] = { 0 };
	assert_true(pread(qfd, buf, sizeof(buf) - 1, (off_t)env.content_offset) > 0);
	assert_true(strncmp(buf, "Delivered-To: list@local.test\nSubject: list\n\nbody\n", 48) == 0);
	qfile_envelope_free(&env);
	close(qfd);
	/* a message that was already through the list loops instead of going out again */
	close(fd);
	const char *looped = "Delivered-To: list@local.test\nSubject: again\n\nx\n";
	fd = make_queue_file(looped, strlen(looped));
	m = msg(fd, strlen(looped));
	buf_reset(&d);
	assert_int_equal(ldeliver(&m, &t, &d, &x), LDELIVER_FAIL);
	assert_string_equal(d.data, "5.4.6");
	/* a queue that cannot be written: temporary */
	t.path = "/proc/nonexistent";
	m = msg(fd, strlen(looped));
	t.rcpt = "other@local.test";
	buf_reset(&d);
	assert_int_equal(ldeliver(&m, &t, &d, &x), LDELIVER_TEMPFAIL);
	assert_string_equal(d.data, "4.3.0");
	close(fd);
	buf_free(&d);
	buf_free(&x);
	buf_free(&err);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_local_deliver.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

/* The one pending receipt mark (or receipt, with suffix "") in dir. */
static bool find_mark(const char *dir, const char *suffix, char *out, size_t n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;
	if (!d)
		return false;
	while (!found && (e = readdir(d))) {
		size_t l = strlen(e->d_name), sl = strlen(suffix);
		bool pend = l > 8 && strcmp(e->d_name + l - 8, ".pending") == 0;
		if (e->d_name[0] != '.' && (sl ? pend : !pend)) {
			snprintf(out, n, "%s/%s", dir, e->d_name);
			found = true;
		}
	}
	closedir(d);
	return found;
}

static size_t count_str(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* An mbox append killed in the middle (SIGXFSZ from a file size limit, as sure as a kill -9 at that byte):
 * the retry cuts the partial message off and appends it once; a retry after a complete append that was not
 * yet receipted finds the message and writes nothing. */
static void test_mbox_killed_mid_append(void **state)
{
	(void)state;
	struct buf content = BUF_INIT(BUF_NOLIMIT);
	buf_puts(&content, "Subject: big\n\n");
	for (int i = 0; i < 20000; i++)
		buf_printf(&content, "line %05d of the big message\n", i);
	buf_puts(&content, "the end\n");
	int fd = make_queue_file(content.data, content.len);
	struct ldeliver_msg m = msg(fd, content.len);
	char path[128], rdir[128], mark[600], receipt[512];
	snprintf(path, sizeof(path), "%s/killed.mbox", tmpdir);
	snprintf(rdir, sizeof(rdir), "%s/receipts-killed", tmpdir);
	m.receipt_dir = rdir;
	int mfd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(mfd, "From old@x Thu Jan  1 00:00:00 1970\nold\n\n", 41), 41);
	close(mfd);
	struct ldeliver_target t = { .kind = LDELIVER_FILE, .rcpt = "archive@local.test", .path = path };
	struct buf dsn = BUF_INIT(64), text = BUF_INIT(4096), data = BUF_INIT(1 << 22);

	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit rl = { 41 + 100000, 41 + 100000 };
		setrlimit(RLIMIT_FSIZE, &rl);
		ldeliver(&m, &t, &dsn, &text);
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGXFSZ);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_true(sb.st_size > 41 && sb.st_size < (off_t)content.len);	/* half a message */
	assert_true(find_mark(rdir, ".pending", mark, sizeof(mark)));

	buf_reset(&text);
	assert_int_equal(ldeliver(&m, &t, &dsn, &text), LDELIVER_OK);
	assert_true(strncmp(text.data, "delivered to file: ", 19) == 0 && !strstr(text.data, "restart"));
	assert_true(fsutil_read_file(path, 1 << 22, &data));
	assert_true(strncmp(data.data, "From old@x Thu Jan  1 00:00:00 1970\nold\n\nFrom sender@remote.test ", 65) == 0);
	assert_int_equal(count_str(data.data, "\nFrom sender@remote.test "), 1);
	assert_int_equal(count_str(data.data, "line 00000 of"), 1);
	assert_int_equal(count_str(data.data, "Subject: big"), 1);
	assert_true(data.len > 9 && strcmp(data.data + data.len - 9, "the end\n\n") == 0);
	size_t whole = data.len;

	/* killed after a complete append, before the receipt: the receipt turned back into a pending mark */
	assert_false(find_mark(rdir, ".pending", mark, sizeof(mark)));
	assert_true(find_mark(rdir, "", receipt, sizeof(receipt)));
	snprintf(mark, sizeof(mark), "%s.pending", receipt);
	assert_int_equal(rename(receipt, mark), 0);
	buf_reset(&text);
	assert_int_equal(ldeliver(&m, &t, &dsn, &text), LDELIVER_OK);
	assert_true(strstr(text.data, "before a restart") != NULL);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal((size_t)sb.st_size, whole);
	assert_int_equal(access(receipt, F_OK), 0);
	/* and a receipted target is not written again */
	buf_reset(&text);
	assert_int_equal(ldeliver(&m, &t, &dsn, &text), LDELIVER_OK);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal((size_t)sb.st_size, whole);
	buf_free(&data);
	buf_free(&dsn);
	buf_free(&text);
	buf_free(&content);
	close(fd);
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_from_line),
		cmocka_unit_test(test_mbox_append),
		cmocka_unit_test(test_pipe_status),
		cmocka_unit_test(test_pipe_run),
		cmocka_unit_test(test_quota_usage),
		cmocka_unit_test(test_maildir_quota_and_folder),
		cmocka_unit_test(test_failure_leaves_nothing),
		cmocka_unit_test(test_parallel),
		cmocka_unit_test(test_resubmit),
		cmocka_unit_test(test_mbox_parallel),
		cmocka_unit_test(test_mbox_killed_mid_append),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
