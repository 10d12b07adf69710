/* The mailbox index: opening (and starting over when the file is damaged), the message list, records, opening
 * message files, expunge and the session lock. The sync and rebuild logic is in mbox_sync.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "alloc.h"
#include "fsutil.h"
#include "log.h"
#include "maildirsize.h"
#include "mbox_impl.h"

#define MBOX_MAPSIZE ((size_t)1 << 30)	/* sparse; 100,000 messages need about 40 MB */
#define REC_FIXED 35
#define MBOX_MAXREADERS 1024		/* one slot per process with the folder open: LMDB's 126 is too few for
					 * a busy shared mailbox (64 bytes each in the lock file) */
#define MBOX_TOMBSTONES_MAX 100000		/* 12 bytes each; beyond, VANISHED answers get conservative */			/* version, 4 x 8 bytes, name length */

size_t mbox_base_len(const char *name)
{
	const char *c = strchr(name, ':');
	return c ? (size_t)(c - name) : strlen(name);
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static bool name_plausible(const char *name, size_t len)
{
	if (len == 0 || len > MBOX_NAME_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (name[i] == '/' || name[i] == '\0')
			return false;
	return true;
}

bool mbox_record_encode(const struct mbox_msg *m, struct buf *out)
{
	unsigned char h[REC_FIXED];
	size_t len = strlen(m->name);

	if (!name_plausible(m->name, len))
		return false;
	h[0] = 1;
	put64(h + 1, m->size);
	put64(h + 9, m->wsize);
	put64(h + 17, (uint64_t)m->idate);
	put64(h + 25, m->modseq);
	h[33] = (unsigned char)(len >> 8);
	h[34] = (unsigned char)len;
	return buf_append(out, h, sizeof(h)) && buf_append(out, m->name, len);
}

bool mbox_record_decode(const void *data, size_t len, struct mbox_msg *out)
{
	const unsigned char *p = data;
	size_t namelen;

	if (len < REC_FIXED || p[0] != 1)
		return false;
	namelen = (size_t)p[33] << 8 | p[34];
	if (len != REC_FIXED + namelen || !name_plausible((const char *)p + REC_FIXED, namelen))
		return false;
	out->size = get64(p + 1);
	out->wsize = get64(p + 9);
	out->idate = (int64_t)get64(p + 17);
	out->modseq = get64(p + 25);
	out->name = xstrndup((const char *)p + REC_FIXED, namelen);
	const char *c = strchr(out->name, ':');
	out->flags = (c && strncmp(c, ":2,", 3) == 0) ? c + 3 : out->name + namelen;
	return true;
}

bool mbox_name_uid(const char *name, uint32_t *uid)
{
	size_t blen = mbox_base_len(name);

	for (size_t i = 0; i + 3 < blen; i++) {
		if (name[i] != ',' || name[i + 1] != 'U' || name[i + 2] != '=')
			continue;
		uint64_t v = 0;
		size_t j = i + 3;
		if (j >= blen || name[j] < '0' || name[j] > '9')
			return false;
		for (; j < blen && name[j] >= '0' && name[j] <= '9'; j++) {
			v = v * 10 + (uint64_t)(name[j] - '0');
			if (v > UINT32_MAX)
				return false;
		}
		if (j < blen && name[j] != ',')
			return false;
		if (v == 0)
			return false;
		*uid = (uint32_t)v;
		return true;
	}
	return false;
}

static void free_msgs(struct mbox *mb)
{
	mb->loaded = false;
	for (size_t i = 0; i < mb->n; i++)
		free(mb->msgs[i].name);
	xfree(&mb->msgs);
	mb->n = 0;
}

enum mbox_sync_result mbox_load(struct mbox *mb, struct buf *err)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t cap = 0;
	int rc;

	if ((rc = mdb_txn_begin(mb->env, NULL, MDB_RDONLY, &txn)) != 0) {
		free_msgs(mb);
		buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
		return MBOX_SYNC_FAIL;
	}
	/* every commit by anyone makes a new transaction id: the same id means the list we have is current */
	if (mb->loaded && mdb_txn_id(txn) == mb->loaded_txn) {
		mdb_txn_abort(txn);
		return MBOX_SYNC_OK;
	}
	free_msgs(mb);
	mb->loaded_txn = mdb_txn_id(txn);
	if ((rc = mdb_cursor_open(txn, mb->uids, &cur)) != 0) {
		mdb_txn_abort(txn);
		buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
		return MBOX_SYNC_FAIL;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct mbox_msg m;
		if (k.mv_size != 4 || !mbox_record_decode(v.mv_data, v.mv_size, &m)) {
			rc = MDB_CORRUPTED;
			break;
		}
		m.uid = mbox_key_uid(k.mv_data);
		if (mb->n == cap) {
			cap = cap ? cap * 2 : 64;
			mb->msgs = xreallocarray(mb->msgs, cap, sizeof(*mb->msgs));
		}
		mb->msgs[mb->n++] = m;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc != MDB_NOTFOUND) {
		buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
		free_msgs(mb);
		return rc == MDB_CORRUPTED ? MBOX_SYNC_DAMAGED : MBOX_SYNC_FAIL;
	}
	mb->loaded = true;
	return MBOX_SYNC_OK;
}

static void env_close(struct mbox *mb)
{
	mb->loaded = false;	/* a new environment counts its transactions anew */
	if (mb->env)
		mdb_env_close(mb->env);
	mb->env = NULL;
}

static bool env_open(struct mbox *mb, struct buf *err, bool *damaged)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT);
	MDB_txn *txn;
	int rc;

	*damaged = false;
	buf_printf(&path, "%s/%s", mb->dir, MBOX_INDEX_FILE);
	if ((rc = mdb_env_create(&mb->env)) != 0 || (rc = mdb_env_set_maxdbs(mb->env, 5)) != 0 ||
	    (rc = mdb_env_set_maxreaders(mb->env, MBOX_MAXREADERS)) != 0 ||
	    (rc = mdb_env_set_mapsize(mb->env, MBOX_MAPSIZE)) != 0)
		goto fail;
	/* MDB_NOMETASYNC: a commit flushes its data pages but not the meta page, which the next commit's flush
	 * carries. A system crash can then undo the last transaction, never break the index; and what that
	 * transaction recorded is still on disk in the file names (UIDs, flags, removals: each fsync'd with cur/),
	 * where the next sync finds it again. One device flush per commit instead of two. */
	if ((rc = mdb_env_open(mb->env, buf_cstr(&path), MDB_NOSUBDIR | MDB_NOMETASYNC, 0600)) != 0)
		goto fail;
	/* reader slots of sessions that died would otherwise pin old pages forever */
	(void)mdb_reader_check(mb->env, NULL);
	if ((rc = mdb_txn_begin(mb->env, NULL, 0, &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &mb->meta)) != 0 ||
	    (rc = mdb_dbi_open(txn, "uids", MDB_CREATE, &mb->uids)) != 0 ||
	    (rc = mdb_dbi_open(txn, "names", MDB_CREATE, &mb->names)) != 0 ||
	    (rc = mdb_dbi_open(txn, "gone", MDB_CREATE, &mb->gone)) != 0 || (rc = mdb_txn_commit(txn)) != 0) {
		if (rc != 0)
			mdb_txn_abort(txn);
		goto fail;
	}
	buf_free(&path);
	return true;
fail:
	*damaged = rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_VERSION_MISMATCH || rc == MDB_PAGE_NOTFOUND ||
	           rc == MDB_INCOMPATIBLE;
	buf_printf(err, "%s: %s", buf_cstr(&path), mdb_strerror(rc));
	buf_free(&path);
	env_close(mb);
	return false;
}

/* Throw the index away; the durable truth (file names and postern-uidlist) survives. */
static void remove_index(struct mbox *mb)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT);

	env_close(mb);
	buf_printf(&p, "%s/%s", mb->dir, MBOX_INDEX_FILE);
	log_warn("%s: damaged mailbox index removed, rebuilding it", mb->dir);
	(void)unlink(buf_cstr(&p));
	buf_puts(&p, "-lock");
	(void)unlink(buf_cstr(&p));
	buf_free(&p);
}

/* Sync, and once start over from an empty index if the index turns out to be damaged. */
static bool sync_or_rebuild(struct mbox *mb, struct buf *err)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		bool damaged = false;
		enum mbox_sync_result r = MBOX_SYNC_OK;
		if (!mb->env && !env_open(mb, err, &damaged)) {
			if (!damaged || attempt)
				return false;
			buf_reset(err);
			remove_index(mb);
			continue;
		}
		r = mbox_sync_txn(mb, err);
		if (r == MBOX_SYNC_OK)
			r = mbox_load(mb, err);
		if (r == MBOX_SYNC_OK)
			return true;
		if (r == MBOX_SYNC_FAIL || attempt)
			return false;
		buf_reset(err);
		remove_index(mb);
	}
	return false;
}

struct mbox *mbox_open(const char *dir, struct buf *err)
{
	struct mbox *mb = xcalloc(1, sizeof(*mb));

	mb->dir = xstrdup(dir);
	if (!sync_or_rebuild(mb, err)) {
		mbox_close(&mb);
		return NULL;
	}
	return mb;
}

struct mbox *mbox_open_nosync(const char *dir, struct buf *err)
{
	struct mbox *mb = xcalloc(1, sizeof(*mb));
	bool damaged;

	mb->dir = xstrdup(dir);
	if (!env_open(mb, err, &damaged))
		mbox_close(&mb);
	return mb;
}

void mbox_close(struct mbox **mbp)
{
	struct mbox *mb = *mbp;

	if (!mb)
		return;
	free_msgs(mb);
	env_close(mb);
	free(mb->dir);
	free(mb);
	*mbp = NULL;
}

bool mbox_sync(struct mbox *mb, struct buf *err)
{
	return sync_or_rebuild(mb, err);
}

uint32_t mbox_uidvalidity(const struct mbox *mb) { return mb->uidvalidity; }
uint32_t mbox_uidnext(const struct mbox *mb) { return mb->uidnext; }
uint64_t mbox_highestmodseq(const struct mbox *mb) { return mb->hms; }
size_t mbox_count(const struct mbox *mb) { return mb->n; }

const struct mbox_msg *mbox_get(const struct mbox *mb, size_t i)
{
	if (i >= mb->n)
		panic("mbox_get: index %zu of %zu", i, mb->n);
	return &mb->msgs[i];
}

size_t mbox_find(const struct mbox *mb, uint32_t uid)
{
	size_t lo = 0, hi = mb->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (mb->msgs[mid].uid == uid)
			return mid;
		if (mb->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (size_t)-1;
}

static int open_cur(const struct mbox *mb, const char *name)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	int fd;

	buf_printf(&p, "%s/cur/%s", mb->dir, name);
	fd = open(buf_cstr(&p), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	buf_free(&p);
	return fd;
}

int mbox_msg_open(struct mbox *mb, size_t i, struct buf *err)
{
	uint32_t uid = mbox_get(mb, i)->uid;
	int fd = open_cur(mb, mb->msgs[i].name);

	if (fd >= 0 || errno != ENOENT)
		goto out;
	/* Renamed by another tool (a flag change) since our last look: the index learns the new name. */
	if (!mbox_sync(mb, err))
		return -1;
	if ((i = mbox_find(mb, uid)) == (size_t)-1) {
		buf_printf(err, "%s: message UID %u has been removed", mb->dir, uid);
		return -1;
	}
	fd = open_cur(mb, mb->msgs[i].name);
out:
	if (fd < 0)
		buf_printf(err, "%s/cur/%s: %s", mb->dir, mb->msgs[i].name, strerror(errno));
	return fd;
}

/* The current name in cur/ of a file whose base is known (it may have been renamed for flags). */
static char *find_by_base(const struct mbox *mb, const char *name)
{
	size_t blen = mbox_base_len(name);
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	struct dirent *de;
	char *found = NULL;
	DIR *d;

	buf_printf(&p, "%s/cur", mb->dir);
	d = opendir(buf_cstr(&p));
	buf_free(&p);
	if (!d)
		return NULL;
	while (!found && (de = readdir(d)) != NULL)
		if (mbox_base_len(de->d_name) == blen && memcmp(de->d_name, name, blen) == 0)
			found = xstrdup(de->d_name);
	closedir(d);
	return found;
}

bool mbox_expunge(struct mbox *mb, const uint32_t *uids, size_t n, struct buf *err)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT), cdir = BUF_INIT(BUF_NOLIMIT);
	MDB_txn *txn;
	int rc;
	bool ok = false;
	int64_t freed = 0, nfreed = 0;	/* for the Maildir++ quota file */
	uint64_t hms;

	buf_printf(&cdir, "%s/cur", mb->dir);
	if ((rc = mdb_txn_begin(mb->env, NULL, 0, &txn)) != 0) {
		buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
		goto out;
	}
	if ((rc = mbox_meta_get64(mb, txn, "highestmodseq", &hms)) != 0) {
		buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
		mdb_txn_abort(txn);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char key[4];
		MDB_val k = { 4, key }, v;
		struct mbox_msg m;
		mbox_uid_key(uids[i], key);
		if ((rc = mdb_get(txn, mb->uids, &k, &v)) == MDB_NOTFOUND)
			continue;
		if (rc != 0 || !mbox_record_decode(v.mv_data, v.mv_size, &m)) {
			buf_printf(err, "%s: index: %s", mb->dir, rc ? mdb_strerror(rc) : "damaged record");
			mdb_txn_abort(txn);
			goto out;
		}
		buf_reset(&p);
		buf_printf(&p, "%s/%s", buf_cstr(&cdir), m.name);
		if (unlink(buf_cstr(&p)) != 0) {
			char *now = errno == ENOENT ? find_by_base(mb, m.name) : NULL;
			if (errno != ENOENT) {
				buf_printf(err, "cannot remove %s: %s", buf_cstr(&p), strerror(errno));
				free(m.name);
				mdb_txn_abort(txn);
				goto out;
			}
			if (now) {
				buf_reset(&p);
				buf_printf(&p, "%s/%s", buf_cstr(&cdir), now);
				free(now);
				(void)unlink(buf_cstr(&p));
			}
		}
		freed += (int64_t)m.size;
		nfreed++;
		MDB_val nk = { mbox_base_len(m.name), m.name };
		(void)mdb_del(txn, mb->names, &nk, NULL);
		(void)mdb_del(txn, mb->uids, &k, NULL);
		free(m.name);
		if ((rc = mbox_tombstone(mb, txn, uids[i], hms + 1)) != 0) {
			buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
			mdb_txn_abort(txn);
			goto out;
		}
	}
	/* Expunges change the mailbox state as seen by CONDSTORE clients. */
	mb->hms = hms;
	if ((rc = mbox_meta_put64(mb, txn, "highestmodseq", mb->hms + 1)) != 0) {
		buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
		mdb_txn_abort(txn);
		goto out;
	}
	mb->hms++;
	if (!fsutil_fsync_dir(buf_cstr(&cdir)))
		log_warn("fsync %s: %s", buf_cstr(&cdir), strerror(errno));
	if ((rc = mdb_txn_commit(txn)) != 0) {
		buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
		goto out;
	}
	if (nfreed)
		maildirsize_update(mb->dir, -freed, -nfreed);
	ok = mbox_load(mb, err) == MBOX_SYNC_OK;
out:
	buf_free(&p);
	buf_free(&cdir);
	return ok;
}

int mbox_tombstone(struct mbox *mb, MDB_txn *txn, uint32_t uid, uint64_t modseq)
{
	unsigned char key[4], val[8];
	MDB_val k = { 4, key }, v = { 8, val };
	MDB_stat st;
	int rc;

	mbox_uid_key(uid, key);
	put64(val, modseq);
	if ((rc = mdb_put(txn, mb->gone, &k, &v, 0)) != 0 || (rc = mdb_stat(txn, mb->gone, &st)) != 0)
		return rc;
	if (st.ms_entries <= MBOX_TOMBSTONES_MAX)
		return 0;
	/* drop the oldest UIDs (about the oldest modseqs) and remember how far the list is now incomplete */
	MDB_cursor *cur;
	uint64_t floor, m;
	if ((rc = mbox_meta_get64(mb, txn, "vanished_floor", &floor)) != 0 || (rc = mdb_cursor_open(txn, mb->gone, &cur)) != 0)
		return rc;
	for (size_t extra = st.ms_entries - MBOX_TOMBSTONES_MAX + MBOX_TOMBSTONES_MAX / 10; extra > 0; extra--) {
		if ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) != 0)
			break;
		if (v.mv_size == 8 && (m = get64(v.mv_data)) > floor)
			floor = m;
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	return mbox_meta_put64(mb, txn, "vanished_floor", floor);
}

bool mbox_vanished(struct mbox *mb, uint64_t since, uint32_t **uids, size_t *n, bool *complete, struct buf *err)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t floor = 0;
	size_t cap = 0;
	int rc;

	*uids = NULL;
	*n = 0;
	*complete = false;
	if ((rc = mdb_txn_begin(mb->env, NULL, MDB_RDONLY, &txn)) != 0) {
		buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
		return false;
	}
	if ((rc = mbox_meta_get64(mb, txn, "vanished_floor", &floor)) != 0 ||
	    (rc = mdb_cursor_open(txn, mb->gone, &cur)) != 0) {
		mdb_txn_abort(txn);
		buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
		return false;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 4 || v.mv_size != 8 || get64(v.mv_data) <= since)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			*uids = xreallocarray(*uids, cap, sizeof(**uids));
		}
		(*uids)[(*n)++] = mbox_key_uid(k.mv_data);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc != MDB_NOTFOUND) {
		buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
		xfree(uids);
		*n = 0;
		return false;
	}
	*complete = since >= floor;
	return true;
}

/* Rename cur/NAME (or the file that has its base now) to cur/TO; false with errno. */
static bool rename_cur(const struct mbox *mb, const char *name, const char *to)
{
	struct buf from = BUF_INIT(BUF_NOLIMIT), dst = BUF_INIT(BUF_NOLIMIT);
	bool ok;

	buf_printf(&from, "%s/cur/%s", mb->dir, name);
	buf_printf(&dst, "%s/cur/%s", mb->dir, to);
	ok = rename(buf_cstr(&from), buf_cstr(&dst)) == 0;
	if (!ok && errno == ENOENT) {
		/* another tool changed its flags since the index saw it */
		char *now = find_by_base(mb, name);
		if (now) {
			buf_reset(&from);
			buf_printf(&from, "%s/cur/%s", mb->dir, now);
			free(now);
			ok = rename(buf_cstr(&from), buf_cstr(&dst)) == 0;
		} else {
			errno = ENOENT;
		}
	}
	buf_free(&from);
	buf_free(&dst);
	return ok;
}

bool mbox_store(struct mbox *mb, const uint32_t *uids, size_t n, uint64_t unchangedsince, mbox_flags_fn *fn,
		void *ctx, enum mbox_store_result *res, struct buf *err)
{
	struct buf next = BUF_INIT(MBOX_NAME_MAX), to = BUF_INIT(BUF_NOLIMIT), rec = BUF_INIT(BUF_NOLIMIT);
	MDB_txn *txn = NULL;
	uint64_t hms;
	bool ok = false;
	int rc;
	struct mbox_msg *changed = NULL;	/* uid, modseq and new name of each renamed message */
	size_t nchanged = 0;

	if ((rc = mdb_txn_begin(mb->env, NULL, 0, &txn)) != 0 ||
	    (rc = mbox_meta_get64(mb, txn, "highestmodseq", &hms)) != 0) {
		if (txn)
			mdb_txn_abort(txn);
		buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
		goto out;
	}
	/* our list is of the transaction just before this one: it can be patched instead of reloaded */
	size_t wid = mdb_txn_id(txn);
	bool patch = mb->loaded && mb->loaded_txn + 1 == wid;
	changed = xcalloc(n + 1, sizeof(*changed));
	for (size_t i = 0; i < n; i++) {
		unsigned char key[4];
		MDB_val k = { 4, key }, v;
		struct mbox_msg m;

		res[i] = MBOX_STORE_GONE;
		mbox_uid_key(uids[i], key);
		if ((rc = mdb_get(txn, mb->uids, &k, &v)) == MDB_NOTFOUND)
			continue;
		if (rc != 0 || !mbox_record_decode(v.mv_data, v.mv_size, &m)) {
			buf_printf(err, "%s: index: %s", mb->dir, rc ? mdb_strerror(rc) : "damaged record");
			mdb_txn_abort(txn);
			goto out;
		}
		res[i] = MBOX_STORE_MODIFIED;
		if (m.modseq > unchangedsince) {
			free(m.name);
			continue;
		}
		res[i] = MBOX_STORE_OK;
		buf_reset(&next);
		if (!fn(ctx, i, m.flags, &next) || strcmp(buf_cstr(&next), m.flags) == 0) {
			free(m.name);
			continue;
		}
		buf_reset(&to);
		buf_append(&to, m.name, mbox_base_len(m.name));
		buf_printf(&to, ":2,%s", buf_cstr(&next));
		if (to.len > MBOX_NAME_MAX || !rename_cur(mb, m.name, buf_cstr(&to))) {
			res[i] = MBOX_STORE_GONE;
			if (errno != ENOENT)
				log_error("%s: rename %s: %s", mb->dir, m.name, strerror(errno));
			free(m.name);
			continue;
		}
		free(m.name);
		m.name = (char *)buf_cstr(&to);
		m.modseq = ++hms;
		changed[nchanged++] = (struct mbox_msg){ .uid = uids[i], .modseq = m.modseq, .name = xstrdup(m.name) };
		buf_reset(&rec);
		if (!mbox_record_encode(&m, &rec)) {
			res[i] = MBOX_STORE_GONE;
			continue;
		}
		v.mv_size = rec.len;
		v.mv_data = rec.data;
		if ((rc = mdb_put(txn, mb->uids, &k, &v, 0)) != 0) {
			buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
			mdb_txn_abort(txn);
			goto out;
		}
	}
	if ((rc = mbox_meta_put64(mb, txn, "highestmodseq", hms)) != 0) {
		mdb_txn_abort(txn);
		buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
		goto out;
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
		goto out;
	}
	mb->hms = hms;
	for (size_t j = 0; patch && j < nchanged; j++) {
		size_t k = mbox_find(mb, changed[j].uid);
		if (k == (size_t)-1) {
			patch = false;
			break;
		}
		struct mbox_msg *m = &mb->msgs[k];
		free(m->name);
		m->name = changed[j].name;
		changed[j].name = NULL;
		m->modseq = changed[j].modseq;
		const char *c = strchr(m->name, ':');
		m->flags = (c && strncmp(c, ":2,", 3) == 0) ? c + 3 : m->name + strlen(m->name);
	}
	if (patch)
		mb->loaded_txn = wid;
	ok = patch || mbox_load(mb, err) == MBOX_SYNC_OK;
out:
	if (changed)
		for (size_t j = 0; j < nchanged; j++)
			free(changed[j].name);
	free(changed);
	buf_free(&next);
	buf_free(&to);
	buf_free(&rec);
	return ok;
}

int mbox_lock(const char *dir, const char *lockname)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	int fd, e;

	buf_printf(&p, "%s/%s", dir, lockname);
	fd = open(buf_cstr(&p), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	buf_free(&p);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}
