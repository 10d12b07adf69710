/* micro_index: the IMAP index (common/mbox.c) on a Maildir of many messages: building the index, opening it
 * again, syncs with and without a change in cur/, and UID lookups. Built by "make bench-micro"; bench/micro runs it.
 *   micro_index [MESSAGES [SECONDS]]     (defaults: 20000 messages, 1 s for the lookups)
 * The Maildir is made in $TMPDIR (else /var/tmp) with empty files whose names carry S= and W= (the index never
 * reads message content) and removed afterwards. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "mbox.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what, const struct buf *err)
{
	fprintf(stderr, "micro_index: %s: %s\n", what, buf_cstr(err));
	exit(1);
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000;
	double seconds = argc > 2 ? atof(argv[2]) : 1.0;
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
	struct buf root = BUF_INIT(BUF_NOLIMIT), p = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(4096);
	buf_printf(&root, "%s/micro_index.XXXXXX", tmp);
	if (!mkdtemp(root.data)) {
		perror("micro_index: mkdtemp");
		return 1;
	}
	const char *subs[] = { "cur", "new", "tmp" };
	for (int i = 0; i < 3; i++) {
		buf_reset(&p);
		buf_printf(&p, "%s/%s", buf_cstr(&root), subs[i]);
		if (mkdir(buf_cstr(&p), 0700) != 0) {
			perror("micro_index: mkdir");
			return 1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		buf_reset(&p);
		buf_printf(&p, "%s/cur/1700000000.M%zuP1.bench,S=%zu,W=%zu:2,%s", buf_cstr(&root), i, 2000 + i % 3000,
		           2040 + i % 3000, i % 3 ? "S" : "");
		int fd = open(buf_cstr(&p), O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd < 0) {
			perror("micro_index: create");
			return 1;
		}
		close(fd);
	}

	double t0 = now();
	struct mbox *mb = mbox_open(buf_cstr(&root), &err);
	if (!mb)
		fail("open", &err);
	double build = now() - t0;
	if (mbox_count(mb) != n) {
		fprintf(stderr, "micro_index: %zu messages indexed, %zu expected\n", mbox_count(mb), n);
		return 1;
	}
	/* cur/ older than the index's two-second window: a sync may trust its mtime; the first one after the change
	 * scans every name, later ones do not */
	buf_reset(&p);
	buf_printf(&p, "%s/cur", buf_cstr(&root));
	struct timespec ts[2] = { { time(NULL) - 10, 0 }, { time(NULL) - 10, 0 } };
	if (utimensat(AT_FDCWD, buf_cstr(&p), ts, 0) != 0) {
		perror("micro_index: utimensat");
		return 1;
	}
	t0 = now();
	if (!mbox_sync(mb, &err))
		fail("sync", &err);
	double rescan = now() - t0;
	mbox_close(&mb);
	t0 = now();
	if (!(mb = mbox_open(buf_cstr(&root), &err)))
		fail("reopen", &err);
	double reopen = now() - t0;
	int syncs = 0;
	t0 = now();
	while (syncs < 20) {
		if (!mbox_sync(mb, &err))
			fail("sync", &err);
		syncs++;
	}
	double sync = (now() - t0) / syncs;

	/* UID lookups in a pseudo-random order, as FETCH and STORE with UID sets make them */
	uint32_t top = mbox_uidnext(mb), x = 2463534242u;
	size_t lookups = 0, found = 0;
	double t;
	t0 = now();
	do {
		for (int k = 0; k < 10000; k++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			found += mbox_find(mb, 1 + x % top) != (size_t)-1;
		}
		lookups += 10000;
	} while ((t = now() - t0) < seconds);
	printf("index build: %zu messages in %.3f s = %.0f messages/s\n", n, build, (double)n / build);
	printf("index reopen: %.1f ms\n", reopen * 1e3);
	printf("sync after cur/ changed (full scan): %.1f ms\n", rescan * 1e3);
	printf("sync, cur/ unchanged: %.1f ms\n", sync * 1e3);
	printf("uid lookups: %.0f lookups/s (%zu of %zu found)\n", (double)lookups / t, found, lookups);
	mbox_close(&mb);

	buf_reset(&p);
	buf_printf(&p, "rm -rf '%s'", buf_cstr(&root));
	if (system(buf_cstr(&p)) != 0)
		fprintf(stderr, "micro_index: could not remove %s\n", buf_cstr(&root));
	buf_free(&root);
	buf_free(&p);
	buf_free(&err);
	return 0;
}
