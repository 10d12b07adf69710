/* mbox: sync of new/ and cur/, UIDs in arrival order, changes by other Maildir tools, expunge, rebuild with the
 * same UIDs (and without the uidlist: a new UIDVALIDITY), damaged index files, concurrent writers, records,
 * flag stores with modseqs (UNCHANGEDSINCE) and expunge tombstones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "alloc.h"
#include "buf.h"
#include "fsutil.h"
#include "maildir.h"
#include "mbox.h"

static char root[64];

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "%s", "/tmp/postern-mbox-XXXXXX");
	if (!mkdtemp(root))
		return -1;
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	bool ok = maildir_make(root, 0700, &err);
	buf_free(&err);
	return ok ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	return system(cmd);
}

static char *deliver(const char *text)
{
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	struct maildir_writer *w = maildir_begin(root, 0600, &err);
	char *name = NULL;

	assert_non_null(w);
	assert_true(maildir_write(w, text, strlen(text)));
	assert_true(maildir_commit(&w, NULL, &name, &err));
	buf_free(&err);
	return name;
}

static int count_dir(const char *sub)
{
	char p[512];
	int n = 0;
	struct dirent *de;
	snprintf(p, sizeof(p), "%s/%s", root, sub);
	DIR *d = opendir(p);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static struct mbox *open_ok(void)
{
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	struct mbox *mb = mbox_open(root, &err);
	if (!mb)
		fail_msg("mbox_open: %s", buf_cstr(&err));
	buf_free(&err);
	return mb;
}

static void sync_ok(struct mbox *mb)
{
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	if (!mbox_sync(mb, &err))
		fail_msg("mbox_sync: %s", buf_cstr(&err));
	buf_free(&err);
}

static void rm_file(const char *name)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s/%s", root, name);
	unlink(p);
}

static void test_new_to_cur_in_order(void **state)
{
	(void)state;
	free(deliver("Subject: 1\n\none\n"));
	free(deliver("Subject: 2\n\ntwo\n"));
	free(deliver("Subject: 3\n\nthree\n"));
	struct mbox *mb = open_ok();
	assert_int_equal(mbox_count(mb), 3);
	assert_int_equal(count_dir("new"), 0);
	assert_int_equal(count_dir("cur"), 3);
	assert_int_not_equal(mbox_uidvalidity(mb), 0);
	assert_int_equal(mbox_uidnext(mb), 4);
	for (size_t i = 0; i < 3; i++) {
		const struct mbox_msg *m = mbox_get(mb, i);
		uint32_t u;
		assert_int_equal(m->uid, i + 1);
		assert_true(mbox_name_uid(m->name, &u));
		assert_int_equal(u, m->uid);
		assert_non_null(strstr(m->name, ":2,"));
		assert_string_equal(m->flags, "");
		assert_int_equal(m->wsize, m->size + 3);
		assert_true(m->idate > 1700000000);
		/* arrival order: message i holds text i+1 */
		struct buf err = BUF_INIT(BUF_NOLIMIT);
		int fd = mbox_msg_open(mb, i, &err);
		assert_true(fd >= 0);
		char b[64] = { 0 };
		assert_true(read(fd, b, sizeof(b) - 1) > 0);
		close(fd);
		char want[16];
		snprintf(want, sizeof(want), "Subject: %zu", i + 1);
		assert_non_null(strstr(b, want));
		buf_free(&err);
	}
	/* the durable reservation */
	struct buf ul = BUF_INIT(BUF_NOLIMIT);
	char p[256], want[64];
	snprintf(p, sizeof(p), "%s/%s", root, MBOX_UIDLIST_FILE);
	assert_true(fsutil_read_file(p, 4096, &ul));
	/* reserved beyond the next UID, so that the next deliveries do not rewrite it; the index hands out 4 next */
	unsigned luv = 0, lnext = 0;
	assert_int_equal(sscanf(buf_cstr(&ul), "V1 %u %u\n", &luv, &lnext), 2);
	assert_int_equal(luv, mbox_uidvalidity(mb));
	assert_true(lnext > 4);
	assert_int_equal(mbox_uidnext(mb), 4);
	(void)want;
	buf_free(&ul);
	/* a delivery during the session appears at the next sync */
	free(deliver("Subject: 4\n\nfour\n"));
	assert_int_equal(mbox_count(mb), 3);
	sync_ok(mb);
	assert_int_equal(mbox_count(mb), 4);
	assert_int_equal(mbox_get(mb, 3)->uid, 4);
	mbox_close(&mb);
	assert_null(mb);
}

static void test_other_tools(void **state)
{
	(void)state;
	free(deliver("a\n"));
	free(deliver("b\n"));
	free(deliver("c\n"));
	struct mbox *mb = open_ok();
	uint64_t ms = mbox_get(mb, 0)->modseq;
	char from[512], to[600];
	/* another MUA sets \Seen on message 1 by renaming */
	snprintf(from, sizeof(from), "%s/cur/%s", root, mbox_get(mb, 0)->name);
	snprintf(to, sizeof(to), "%sS", from);
	assert_int_equal(rename(from, to), 0);
	/* opening finds the renamed file (and learns the name) */
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	int fd = mbox_msg_open(mb, 0, &err);
	assert_true(fd >= 0);
	close(fd);
	assert_string_equal(mbox_get(mb, 0)->flags, "S");
	assert_true(mbox_get(mb, 0)->modseq > ms);
	assert_int_equal(mbox_get(mb, 0)->uid, 1);
	/* another tool removes message 2 */
	snprintf(from, sizeof(from), "cur/%s", mbox_get(mb, 1)->name);
	rm_file(from);
	sync_ok(mb);
	assert_int_equal(mbox_count(mb), 2);
	assert_int_equal(mbox_find(mb, 2), (size_t)-1);
	/* a file dropped into cur/ by another tool, without S= and W= and with bare LFs */
	snprintf(from, sizeof(from), "%s/cur/1234.foreign.host:2,F", root);
	int wfd = open(from, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(wfd >= 0);
	assert_int_equal(write(wfd, "x\ny\r\nz\n", 7), 7);
	close(wfd);
	sync_ok(mb);
	assert_int_equal(mbox_count(mb), 3);
	const struct mbox_msg *m = mbox_get(mb, 2);
	assert_int_equal(m->uid, 4);
	assert_int_equal(m->size, 7);
	assert_int_equal(m->wsize, 9);
	assert_int_equal(m->idate, 1234);
	assert_string_equal(m->flags, "F");
	assert_string_equal(m->name, "1234.foreign.host,U=4:2,F");
	/* a copy carrying another folder's UID 1 (taken here) gets a new one */
	snprintf(from, sizeof(from), "%s/cur/99.copy,U=1:2,", root);
	wfd = open(from, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(wfd >= 0);
	close(wfd);
	sync_ok(mb);
	assert_int_equal(mbox_count(mb), 4);
	assert_string_equal(mbox_get(mb, 3)->name, "99.copy,U=5:2,");
	/* UIDs are never reused: a new delivery after the removals */
	free(deliver("d\n"));
	sync_ok(mb);
	assert_int_equal(mbox_get(mb, mbox_count(mb) - 1)->uid, 6);
	buf_free(&err);
	mbox_close(&mb);
}

static void test_expunge(void **state)
{
	(void)state;
	for (int i = 0; i < 4; i++)
		free(deliver("m\n"));
	struct mbox *mb = open_ok();
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	/* message 3 renamed meanwhile: expunge still finds and removes it */
	char from[512], to[600];
	snprintf(from, sizeof(from), "%s/cur/%s", root, mbox_get(mb, 2)->name);
	snprintf(to, sizeof(to), "%sT", from);
	assert_int_equal(rename(from, to), 0);
	uint32_t uids[] = { 1, 3, 77 };
	uint64_t hms = mbox_highestmodseq(mb);
	/* a Maildir++ quota file gets the removal as a negative line */
	char qf[512];
	snprintf(qf, sizeof(qf), "%s/maildirsize", root);
	assert_true(fsutil_write_atomic(qf, "1000S\n8 4\n", 10, 0600, &err));
	assert_true(mbox_expunge(mb, uids, 3, &err));
	struct buf q = BUF_INIT(BUF_NOLIMIT);
	assert_true(fsutil_read_file(qf, 1000, &q));
	assert_string_equal(buf_cstr(&q), "1000S\n8 4\n-4 -2\n");
	buf_free(&q);
	assert_int_equal(mbox_count(mb), 2);
	assert_int_equal(count_dir("cur"), 2);
	assert_true(mbox_highestmodseq(mb) > hms);
	assert_int_equal(mbox_get(mb, 0)->uid, 2);
	assert_int_equal(mbox_get(mb, 1)->uid, 4);
	buf_free(&err);
	mbox_close(&mb);
}

/* STORE through the index: UNCHANGEDSINCE, modseqs, no bump without a change, another process's view. */
static bool add_letter(void *ctx, size_t i, const char *cur, struct buf *next)
{
	(void)i;
	buf_puts(next, cur);
	if (!strchr(cur, *(const char *)ctx))
		buf_putc(next, *(const char *)ctx);
	return true;
}

static void test_store_modseq(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++)
		free(deliver("m\n"));
	struct mbox *mb = open_ok();
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	uint64_t hms = mbox_highestmodseq(mb), m2 = mbox_get(mb, 1)->modseq;
	uint32_t uids[] = { 1, 2, 99 };
	enum mbox_store_result res[3];
	assert_true(mbox_store(mb, uids, 3, UINT64_MAX, add_letter, "S", res, &err));
	assert_int_equal(res[0], MBOX_STORE_OK);
	assert_int_equal(res[1], MBOX_STORE_OK);
	assert_int_equal(res[2], MBOX_STORE_GONE);
	assert_string_equal(mbox_get(mb, 0)->flags, "S");
	assert_true(mbox_get(mb, 1)->modseq > hms && mbox_get(mb, 1)->modseq > m2);
	assert_int_equal(mbox_highestmodseq(mb), hms + 2);
	/* the same change again changes nothing, so no new modseq */
	assert_true(mbox_store(mb, uids, 2, UINT64_MAX, add_letter, "S", res, &err));
	assert_int_equal(mbox_highestmodseq(mb), hms + 2);
	/* UNCHANGEDSINCE: message 1 changed after hms, message 3 did not */
	uint32_t u13[] = { 1, 3 };
	assert_true(mbox_store(mb, u13, 2, hms, add_letter, "F", res, &err));
	assert_int_equal(res[0], MBOX_STORE_MODIFIED);
	assert_int_equal(res[1], MBOX_STORE_OK);
	assert_string_equal(mbox_get(mb, 0)->flags, "S");
	assert_string_equal(mbox_get(mb, 2)->flags, "F");
	/* a second handle (another session) sees names and modseqs without rescanning files for them */
	struct mbox *other = open_ok();
	assert_string_equal(mbox_get(other, 2)->flags, "F");
	assert_int_equal(mbox_get(other, 2)->modseq, mbox_get(mb, 2)->modseq);
	assert_int_equal(mbox_highestmodseq(other), mbox_highestmodseq(mb));
	mbox_close(&other);
	buf_free(&err);
	mbox_close(&mb);
}

/* Tombstones: expunges and files that vanished are listed by modseq; a rebuild makes the list incomplete. */
static void test_vanished(void **state)
{
	(void)state;
	for (int i = 0; i < 4; i++)
		free(deliver("m\n"));
	struct mbox *mb = open_ok();
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	uint64_t h0 = mbox_highestmodseq(mb);
	uint32_t *v;
	size_t n;
	bool complete;
	uint32_t u2 = 2;
	assert_true(mbox_expunge(mb, &u2, 1, &err));
	uint64_t h1 = mbox_highestmodseq(mb);
	char name[600];
	snprintf(name, sizeof(name), "cur/%s", mbox_get(mb, 2)->name);	/* UID 4 vanishes under another tool */
	rm_file(name);
	sync_ok(mb);
	assert_int_equal(mbox_count(mb), 2);
	assert_true(mbox_vanished(mb, h0, &v, &n, &complete, &err));
	assert_true(complete);
	assert_int_equal(n, 2);
	assert_int_equal(v[0], 2);
	assert_int_equal(v[1], 4);
	free(v);
	assert_true(mbox_vanished(mb, h1, &v, &n, &complete, &err));
	assert_int_equal(n, 1);
	assert_int_equal(v[0], 4);
	free(v);
	mbox_close(&mb);
	/* the index lost: modseqs restart above the old ones, and the tombstones no longer reach back */
	char p[600];
	snprintf(p, sizeof(p), "%s/%s", root, MBOX_INDEX_FILE);
	unlink(p);
	mb = open_ok();
	assert_true(mbox_highestmodseq(mb) > h1 + 1000);
	assert_true(mbox_vanished(mb, h1, &v, &n, &complete, &err));
	assert_false(complete);
	free(v);
	assert_true(mbox_vanished(mb, mbox_highestmodseq(mb), &v, &n, &complete, &err));
	assert_true(complete);
	assert_int_equal(n, 0);
	free(v);
	buf_free(&err);
	mbox_close(&mb);
}

static void index_path(char *p, size_t n, const char *file)
{
	snprintf(p, n, "%s/%s", root, file);
}

static void test_rebuild_keeps_uids(void **state)
{
	(void)state;
	for (int i = 0; i < 5; i++)
		free(deliver("r\n"));
	struct mbox *mb = open_ok();
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	uint32_t uv = mbox_uidvalidity(mb), gone[] = { 2, 5 };
	assert_true(mbox_expunge(mb, gone, 2, &err));
	mbox_close(&mb);

	/* index deleted: rebuilt from the names and the uidlist, UID 5 (expunged, the highest) not handed out again */
	char p[512];
	index_path(p, sizeof(p), MBOX_INDEX_FILE);
	assert_int_equal(unlink(p), 0);
	mb = open_ok();
	assert_int_equal(mbox_uidvalidity(mb), uv);
	assert_int_equal(mbox_count(mb), 3);
	assert_int_equal(mbox_get(mb, 0)->uid, 1);
	assert_int_equal(mbox_get(mb, 1)->uid, 3);
	assert_int_equal(mbox_get(mb, 2)->uid, 4);
	/* everything the uidlist reserved counts as handed out: the index cannot know what was used */
	uint32_t next = mbox_uidnext(mb);
	assert_true(next >= 6);
	free(deliver("later\n"));
	sync_ok(mb);
	assert_int_equal(mbox_get(mb, 3)->uid, next);
	mbox_close(&mb);

	/* index damaged: garbage in place of the LMDB file */
	int fd = open(p, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	char junk[8192];
	memset(junk, 0x5a, sizeof(junk));
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);
	mb = open_ok();
	assert_int_equal(mbox_uidvalidity(mb), uv);
	assert_int_equal(mbox_count(mb), 4);
	assert_int_equal(mbox_get(mb, 3)->uid, next);
	mbox_close(&mb);

	/* index and uidlist both lost: UIDs kept from the names, but clients must resync (new UIDVALIDITY, which
	 * is time-based: wait for the clock to pass the old one) */
	while ((uint32_t)time(NULL) <= uv)
		usleep(50000);
	assert_int_equal(unlink(p), 0);
	index_path(p, sizeof(p), MBOX_UIDLIST_FILE);
	assert_int_equal(unlink(p), 0);
	mb = open_ok();
	assert_int_not_equal(mbox_uidvalidity(mb), uv);
	assert_int_equal(mbox_count(mb), 4);
	assert_int_equal(mbox_get(mb, 0)->uid, 1);
	assert_int_equal(mbox_get(mb, 3)->uid, next);
	assert_int_equal(mbox_uidnext(mb), next + 1);
	mbox_close(&mb);

	/* a uidlist that disagrees with the index (restored from a backup, say) wins: rebuild */
	struct buf ul = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&ul, "V1 %u %u\n", uv, next + 4);
	assert_true(fsutil_write_atomic(p, ul.data, ul.len, 0600, &err));
	mb = open_ok();
	assert_int_equal(mbox_uidvalidity(mb), uv);
	assert_int_equal(mbox_uidnext(mb), next + 4);
	assert_int_equal(mbox_count(mb), 4);
	mbox_close(&mb);
	buf_free(&ul);
	buf_free(&err);
}

/* A record that does not decode (a valid LMDB file with bad contents): the index is rebuilt, UIDs kept. */
static void test_damaged_record(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++)
		free(deliver("d\n"));
	struct mbox *mb = open_ok();
	uint32_t uv = mbox_uidvalidity(mb);
	mbox_close(&mb);

	char p[512];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	unsigned char key[4] = { 0, 0, 0, 2 };
	MDB_val k = { 4, key }, v = { 5, "junk!" };
	index_path(p, sizeof(p), MBOX_INDEX_FILE);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
	assert_int_equal(mdb_env_open(env, p, MDB_NOSUBDIR, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "uids", 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	mb = open_ok();
	assert_int_equal(mbox_uidvalidity(mb), uv);
	assert_int_equal(mbox_count(mb), 3);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(mbox_get(mb, i)->uid, i + 1);
	assert_string_equal(mbox_get(mb, 1)->flags, "");
	mbox_close(&mb);
}

/* A crash after files got their new names but before the index committed: the reserved UIDs are adopted. */
static void test_crash_after_rename(void **state)
{
	(void)state;
	free(deliver("x\n"));
	struct mbox *mb = open_ok();
	uint32_t uv = mbox_uidvalidity(mb);
	mbox_close(&mb);
	char p[512];
	struct buf err = BUF_INIT(BUF_NOLIMIT), ul = BUF_INIT(BUF_NOLIMIT);
	index_path(p, sizeof(p), MBOX_UIDLIST_FILE);
	buf_printf(&ul, "V1 %u 4\n", uv);
	assert_true(fsutil_write_atomic(p, ul.data, ul.len, 0600, &err));
	snprintf(p, sizeof(p), "%s/cur/555.crash,S=2,W=3,U=3:2,", root);
	int fd = open(p, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	mb = open_ok();
	assert_int_equal(mbox_count(mb), 2);
	assert_int_equal(mbox_get(mb, 1)->uid, 3);
	assert_int_equal(mbox_uidnext(mb), 4);
	mbox_close(&mb);
	buf_free(&err);
	buf_free(&ul);
}

/* The uidlist reserves UIDs ahead of the index (one rewrite per run of deliveries). A sync that crashed after
 * moving a file into cur/ under a UID of that reservation, before the index learnt it: the file keeps its UID
 * and the next message gets the one after it, not a UID from the far end of the reservation. */
static void test_crash_within_own_reservation(void **state)
{
	(void)state;
	free(deliver("x\n"));
	struct mbox *mb = open_ok();
	assert_int_equal(mbox_uidnext(mb), 2);
	mbox_close(&mb);
	char p[512];
	snprintf(p, sizeof(p), "%s/cur/556.crash,S=2,W=3,U=2:2,", root);
	int fd = open(p, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	mb = open_ok();
	assert_int_equal(mbox_count(mb), 2);
	assert_int_equal(mbox_get(mb, 1)->uid, 2);
	assert_int_equal(mbox_uidnext(mb), 3);
	free(deliver("y\n"));
	sync_ok(mb);
	assert_int_equal(mbox_count(mb), 3);
	assert_int_equal(mbox_get(mb, 2)->uid, 3);
	mbox_close(&mb);
}

/* APPEND's path: mbox_add on an index that was never synced declines (the caller syncs); on a synced one it
 * stores the message in cur/ under its UID in one rename, and a later sync keeps exactly that name and UID,
 * behind messages delivered to new/ before it but not yet synced (they get the UIDs after it). */
static void test_add(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	uint32_t uid = 0;
	char *name = NULL;

	struct mbox *nb = mbox_open_nosync(root, &err);
	assert_non_null(nb);
	struct maildir_writer *w = maildir_begin(root, 0600, &err);
	assert_non_null(w);
	assert_true(maildir_write(w, "Subject: a\n\na\n", 15));
	assert_int_equal(mbox_add(nb, &w, "S", &uid, &name, &err), 0);
	assert_non_null(w);
	mbox_close(&nb);
	maildir_abort(&w);

	free(deliver("Subject: 1\n\none\n"));
	struct mbox *mb = open_ok();
	mbox_close(&mb);
	free(deliver("Subject: 2\n\ntwo\n"));	/* in new/, no UID yet */
	nb = mbox_open_nosync(root, &err);
	w = maildir_begin(root, 0600, &err);
	assert_true(maildir_write(w, "Subject: a\n\na\n", 15));
	assert_true(maildir_set_time(w, 760686745));
	assert_int_equal(mbox_add(nb, &w, "FS", &uid, &name, &err), 1);
	assert_null(w);
	assert_int_equal(uid, 2);
	assert_non_null(strstr(name, ",U=2:2,FS"));
	assert_int_equal(strncmp(name, "760686745.", 10), 0);
	mbox_close(&nb);

	mb = open_ok();
	assert_int_equal(mbox_count(mb), 3);
	assert_int_equal(mbox_get(mb, 1)->uid, 2);
	assert_string_equal(mbox_get(mb, 1)->name, name);
	assert_int_equal(mbox_get(mb, 1)->idate, 760686745);
	assert_int_equal(mbox_get(mb, 1)->size, 15);
	assert_int_equal(mbox_get(mb, 2)->uid, 3);
	assert_int_equal(mbox_uidnext(mb), 4);
	mbox_close(&mb);
	free(name);
	buf_free(&err);
}

/* Several processes delivering and syncing at once: every message gets exactly one UID, none twice. */
static void test_concurrent_writers(void **state)
{
	(void)state;
	enum { PROCS = 4, EACH = 40 };
	struct mbox *mb = open_ok();
	mbox_close(&mb);
	for (int p = 0; p < PROCS; p++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct buf err = BUF_INIT(BUF_NOLIMIT);
			struct mbox *m = mbox_open(root, &err);
			if (!m)
				_exit(1);
			for (int i = 0; i < EACH; i++) {
				free(deliver("concurrent\n"));
				if (!mbox_sync(m, &err))
					_exit(2);
			}
			mbox_close(&m);
			buf_free(&err);
			_exit(0);
		}
	}
	for (int p = 0; p < PROCS; p++) {
		int st;
		assert_true(wait(&st) > 0);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	mb = open_ok();
	assert_int_equal(mbox_count(mb), PROCS * EACH);
	assert_int_equal(count_dir("new"), 0);
	assert_int_equal(count_dir("cur"), PROCS * EACH);
	for (size_t i = 0; i < mbox_count(mb); i++)
		assert_int_equal(mbox_get(mb, i)->uid, i + 1);
	assert_int_equal(mbox_uidnext(mb), PROCS * EACH + 1);
	mbox_close(&mb);
}

static void test_records(void **state)
{
	(void)state;
	struct mbox_msg m = { .size = 10, .wsize = 12, .idate = 1700000000, .modseq = 9, .name = "1.a,U=3:2,FS" }, d;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(mbox_record_encode(&m, &b));
	assert_true(mbox_record_decode(b.data, b.len, &d));
	assert_int_equal(d.size, 10);
	assert_int_equal(d.wsize, 12);
	assert_int_equal(d.idate, 1700000000);
	assert_int_equal(d.modseq, 9);
	assert_string_equal(d.name, "1.a,U=3:2,FS");
	assert_string_equal(d.flags, "FS");
	free(d.name);
	for (size_t cut = 0; cut < b.len; cut++)
		assert_false(mbox_record_decode(b.data, cut, &d));
	buf_putc(&b, 'x');
	assert_false(mbox_record_decode(b.data, b.len, &d));
	b.data[0] = 2;
	assert_false(mbox_record_decode(b.data, b.len - 1, &d));
	const char *bad[] = { "", ".hidden", "a/b", NULL };
	for (int i = 0; bad[i]; i++) {
		m.name = (char *)bad[i];
		buf_reset(&b);
		assert_false(mbox_record_encode(&m, &b));
	}
	buf_free(&b);

	uint32_t u;
	assert_true(mbox_name_uid("1.x,S=3,U=42,W=4:2,S", &u));
	assert_int_equal(u, 42);
	assert_true(mbox_name_uid("1.x,U=4294967295", &u));
	assert_false(mbox_name_uid("1.x,U=4294967296", &u));
	assert_false(mbox_name_uid("1.x,U=0", &u));
	assert_false(mbox_name_uid("1.x,U=", &u));
	assert_false(mbox_name_uid("1.x,U=12a", &u));
	assert_false(mbox_name_uid("1.x:2,U=12", &u));
	assert_false(mbox_name_uid("1.x", &u));
}

static void test_lock(void **state)
{
	(void)state;
	int a = mbox_lock(root, "test.lock");
	assert_true(a >= 0);
	int b = mbox_lock(root, "test.lock");
	assert_int_equal(b, -1);
	assert_int_equal(errno, EWOULDBLOCK);
	close(a);
	b = mbox_lock(root, "test.lock");
	assert_true(b >= 0);
	close(b);
}

static void test_not_a_maildir(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	char p[512];
	snprintf(p, sizeof(p), "%s/cur", root);
	assert_int_equal(rmdir(p), 0);
	assert_null(mbox_open(root, &err));
	assert_non_null(strstr(buf_cstr(&err), "not a Maildir"));
	buf_free(&err);
}

/* A large mailbox: the second open must not look at message files and must be quick. */
static void test_large_open(void **state)
{
	(void)state;
	enum { N = 20000 };
	char p[512];
	for (int i = 0; i < N; i++) {
		snprintf(p, sizeof(p), "%s/new/%d.M%dP1.big,S=2,W=3", root, 1700000000 + i, i);
		int fd = open(p, O_WRONLY | O_CREAT, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, "x\n", 2), 2);
		close(fd);
	}
	struct mbox *mb = open_ok();
	assert_int_equal(mbox_count(mb), N);
	assert_int_equal(mbox_get(mb, N - 1)->uid, N);
	mbox_close(&mb);
	/* make message files unreadable by content: sizes must come from the index, not the files */
	snprintf(p, sizeof(p), "%s/cur", root);
	struct timespec ts[2] = { { time(NULL) - 60, 0 }, { time(NULL) - 60, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	mb = open_ok();	/* records the old mtime */
	mbox_close(&mb);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	mb = open_ok();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_int_equal(mbox_count(mb), N);
	assert_int_equal(mbox_get(mb, 123)->wsize, 3);
	assert_true(secs < 1.0);
	mbox_close(&mb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_to_cur_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_tools, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expunge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_modseq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vanished, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rebuild_keeps_uids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_after_rename, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_within_own_reservation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
		cmocka_unit_test(test_records),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_maildir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_open, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
