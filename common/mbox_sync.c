/* Mailbox sync: one LMDB write transaction that moves new deliveries to cur/ with UIDs, notices files that other
 * Maildir tools added, renamed or removed, and rebuilds the index from the file names and postern-uidlist when
 * its metadata is missing or stale. The write transaction is also the lock that serializes concurrent syncs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "fsutil.h"
#include "log.h"
#include "maildir.h"
#include "mbox_impl.h"
#include "str.h"

/* UIDs the uidlist reserves beyond what a sync needs (see mbox_sync_txn). */
#define UID_RESERVE 64u

struct todo {
	char *name;	/* in new/ or cur/ */
	bool in_new;
	int64_t idate;
};

struct names {
	struct todo *v;
	size_t n, cap;
};

static void names_push(struct names *l, const char *name, bool in_new, int64_t idate)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 32;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n++] = (struct todo){ xstrdup(name), in_new, idate };
}

static void names_free(struct names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	xfree(&l->v);
	l->n = l->cap = 0;
}

static int todo_cmp(const void *a, const void *b)
{
	const struct todo *x = a, *y = b;
	if (x->in_new != y->in_new)
		return x->in_new ? -1 : 1;
	if (x->idate != y->idate)
		return x->idate < y->idate ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int mbox_meta_get64(struct mbox *mb, MDB_txn *txn, const char *key, uint64_t *out)
{
	MDB_val k = { strlen(key), (void *)key }, v;
	int rc = mdb_get(txn, mb->meta, &k, &v);

	*out = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (v.mv_size != 8)
		return MDB_CORRUPTED;
	const unsigned char *p = v.mv_data;
	for (int i = 0; i < 8; i++)
		*out = *out << 8 | p[i];
	return 0;
}

int mbox_meta_put64(struct mbox *mb, MDB_txn *txn, const char *key, uint64_t v)
{
	unsigned char b[8];
	MDB_val k = { strlen(key), (void *)key }, d = { 8, b };

	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (unsigned char)v;
	return mdb_put(txn, mb->meta, &k, &d, 0);
}

/* Only changed values are written: a sync that finds nothing new then leaves the transaction clean, and LMDB
 * commits a clean transaction without writing or syncing anything (most syncs: one per IMAP command). */
static int put_changed(struct mbox *mb, MDB_txn *txn, const char *key, uint64_t old, uint64_t v)
{
	return old == v ? 0 : mbox_meta_put64(mb, txn, key, v);
}

/* postern-uidlist: "V1 UIDVALIDITY UIDNEXT\n". 1 when read, 0 when missing or unreadable as ours. */
static int uidlist_read(const struct mbox *mb, uint32_t *uv, uint32_t *next)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT), b = BUF_INIT(4096);
	char *f[4];
	uint64_t a, c;
	int ok = 0;

	buf_printf(&p, "%s/%s", mb->dir, MBOX_UIDLIST_FILE);
	if (fsutil_read_file(buf_cstr(&p), 4096, &b) && b.len) {
		char *s = b.data;
		if (str_split(s, " \n", f, 4) == 3 && strcmp(f[0], "V1") == 0 && str_to_u64(f[1], UINT32_MAX, &a) &&
		    str_to_u64(f[2], UINT32_MAX, &c) && a != 0 && c != 0) {
			*uv = (uint32_t)a;
			*next = (uint32_t)c;
			ok = 1;
		} else {
			log_warn("%s: malformed, ignored", buf_cstr(&p));
		}
	}
	buf_free(&p);
	buf_free(&b);
	return ok;
}

static bool uidlist_write(const struct mbox *mb, uint32_t uv, uint32_t next, struct buf *err)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT), b = BUF_INIT(BUF_NOLIMIT);
	bool ok;

	buf_printf(&p, "%s/%s", mb->dir, MBOX_UIDLIST_FILE);
	buf_printf(&b, "V1 %" PRIu32 " %" PRIu32 "\n", uv, next);
	ok = fsutil_write_atomic(buf_cstr(&p), b.data, b.len, 0600, err);
	buf_free(&p);
	buf_free(&b);
	return ok;
}

/* Delivery time: the leading seconds of a Maildir name, else the file's mtime. */
static int64_t name_idate(int dfd, const char *name)
{
	uint64_t v = 0;
	size_t i = 0;
	struct stat st;

	while (name[i] >= '0' && name[i] <= '9' && i < 12)
		v = v * 10 + (uint64_t)(name[i++] - '0');
	if (i > 0 && name[i] == '.' && v > 0)
		return (int64_t)v;
	return fstatat(dfd, name, &st, 0) == 0 ? (int64_t)st.st_mtime : 0;
}

/* S and W for a file whose name lacks them (delivered by another tool): W counts every bare LF as two bytes. */
static bool file_sizes(int dfd, const char *name, uint64_t *size, uint64_t *wsize)
{
	struct maildir_name mn;
	unsigned char blk[65536];
	ssize_t r;
	bool prev_cr = false;
	int fd;

	if (maildir_name_parse(name, &mn) && mn.have_size && mn.have_wsize) {
		*size = mn.size;
		*wsize = mn.wsize;
		return true;
	}
	if ((fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return false;
	*size = *wsize = 0;
	while ((r = read(fd, blk, sizeof(blk))) > 0) {
		for (ssize_t i = 0; i < r; i++) {
			if (blk[i] == '\n' && !prev_cr)
				(*wsize)++;
			prev_cr = blk[i] == '\r';
		}
		*size += (uint64_t)r;
	}
	*wsize += *size;
	close(fd);
	return r == 0;
}

static int list_dir(int dfd, struct names *out, bool in_new)
{
	int fd = dup(dfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			names_push(out, de->d_name, in_new, in_new ? name_idate(dfd, de->d_name) : 0);
	closedir(d);
	return 0;
}

/* The name a file gets in cur/: its base without any foreign ",U=", then ",U=uid", then ":2," and its flags. */
static bool cur_name(const char *name, uint32_t uid, struct buf *out)
{
	size_t blen = mbox_base_len(name);
	const char *flags = "";

	buf_reset(out);
	for (size_t i = 0; i < blen;) {
		if (name[i] == ',' && i + 2 < blen && name[i + 1] == 'U' && name[i + 2] == '=') {
			i += 3;
			while (i < blen && name[i] != ',')
				i++;
			continue;
		}
		buf_putc(out, name[i++]);
	}
	if (name[blen] == ':' && strncmp(name + blen, ":2,", 3) == 0)
		flags = name + blen + 3;
	buf_printf(out, ",U=%" PRIu32 ":2,%s", uid, flags);
	return out->len <= MBOX_NAME_MAX;
}

static int put_msg(struct mbox *mb, MDB_txn *txn, const struct mbox_msg *m)
{
	struct buf rec = BUF_INIT(BUF_NOLIMIT);
	unsigned char key[4];
	MDB_val k = { 4, key }, v, nk = { mbox_base_len(m->name), m->name }, nv = { 4, key };
	int rc;

	mbox_uid_key(m->uid, key);
	if (!mbox_record_encode(m, &rec)) {
		buf_free(&rec);
		return MDB_BAD_VALSIZE;
	}
	v.mv_size = rec.len;
	v.mv_data = rec.data;
	rc = mdb_put(txn, mb->uids, &k, &v, 0);
	if (rc == 0)
		rc = mdb_put(txn, mb->names, &nk, &nv, 0);
	buf_free(&rec);
	return rc;
}

/* A file in cur/ the index does not know, whose ",U=n" may be kept (a rebuild, or a crash after the rename). */
static int adopt(struct mbox *mb, MDB_txn *txn, int cfd, const char *name, uint32_t uid, uint64_t *hms)
{
	struct mbox_msg m = { .uid = uid, .name = (char *)name };

	if (!file_sizes(cfd, name, &m.size, &m.wsize))
		return -1;
	m.idate = name_idate(cfd, name);
	m.modseq = ++*hms;
	return put_msg(mb, txn, &m);
}

static bool uid_exists(struct mbox *mb, MDB_txn *txn, uint32_t uid)
{
	unsigned char key[4];
	MDB_val k = { 4, key }, v;

	mbox_uid_key(uid, key);
	return mdb_get(txn, mb->uids, &k, &v) == 0;
}

struct syncstate {
	struct mbox *mb;
	MDB_txn *txn;
	int cfd, nfd;
	uint64_t hms;
	uint32_t next, adopt_lo, adopt_hi;
	uint32_t *seen;
	size_t nseen, capseen;
	struct names todo;
	bool changed_dir;
	bool moved_from_new;	/* new/ lost an entry: it needs its fsync too */
	size_t *known;		/* hash of the loaded list's file names (1 + index into mb->msgs; 0: empty) */
	size_t knownmask;
};

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;	/* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* A full scan compares each name in cur/ with the message list this process loaded last, in memory: a name
 * found there unchanged is a known message, with no index lookups (two per name otherwise, which made a scan
 * of a large folder cost milliseconds). Only when the list belongs to this index (same UIDVALIDITY): a name
 * is unique, so if the file still carries it, the index still maps it to the same UID (a rename or expunge by
 * another process changes or removes the name). */
static void known_build(struct syncstate *s)
{
	struct mbox *mb = s->mb;
	size_t cap = 16;

	while (cap < 2 * mb->n)
		cap *= 2;
	s->known = xcalloc(cap, sizeof(*s->known));
	s->knownmask = cap - 1;
	for (size_t i = 0; i < mb->n; i++) {
		size_t h = (size_t)name_hash(mb->msgs[i].name) & s->knownmask;
		while (s->known[h])
			h = (h + 1) & s->knownmask;
		s->known[h] = i + 1;
	}
}

static const struct mbox_msg *known_find(const struct syncstate *s, const char *name)
{
	for (size_t h = (size_t)name_hash(name) & s->knownmask; s->known[h]; h = (h + 1) & s->knownmask) {
		const struct mbox_msg *m = &s->mb->msgs[s->known[h] - 1];
		if (strcmp(m->name, name) == 0)
			return m;
	}
	return NULL;
}

static void seen_push(struct syncstate *s, uint32_t uid)
{
	if (s->nseen == s->capseen) {
		s->capseen = s->capseen ? s->capseen * 2 : 256;
		s->seen = xreallocarray(s->seen, s->capseen, sizeof(*s->seen));
	}
	s->seen[s->nseen++] = uid;
}

/* One name found in cur/. */
static enum mbox_sync_result scan_one(struct syncstate *s, const char *name)
{
	MDB_val nk = { mbox_base_len(name), (void *)name }, nv, v;
	struct mbox_msg m;
	uint32_t uid;
	int rc;

	if (nk.mv_size == 0 || nk.mv_size > MBOX_NAME_MAX)
		return MBOX_SYNC_OK;
	const struct mbox_msg *km = s->known ? known_find(s, name) : NULL;
	if (km) {
		seen_push(s, km->uid);
		return MBOX_SYNC_OK;
	}
	rc = mdb_get(s->txn, s->mb->names, &nk, &nv);
	if (rc == 0) {
		if (nv.mv_size != 4)
			return MBOX_SYNC_DAMAGED;
		MDB_val k = { 4, nv.mv_data };
		uid = mbox_key_uid(nv.mv_data);
		if (mdb_get(s->txn, s->mb->uids, &k, &v) != 0 || !mbox_record_decode(v.mv_data, v.mv_size, &m))
			return MBOX_SYNC_DAMAGED;
		seen_push(s, uid);
		if (strcmp(m.name, name) != 0) {	/* flags changed by another tool */
			free(m.name);
			m.name = (char *)name;
			m.uid = uid;
			m.modseq = ++s->hms;
			return put_msg(s->mb, s->txn, &m) == 0 ? MBOX_SYNC_OK : MBOX_SYNC_FAIL;
		}
		free(m.name);
		return MBOX_SYNC_OK;
	}
	if (rc != MDB_NOTFOUND)
		return MBOX_SYNC_FAIL;
	if (mbox_name_uid(name, &uid) && uid >= s->adopt_lo && uid < s->adopt_hi && !uid_exists(s->mb, s->txn, uid)) {
		if (adopt(s->mb, s->txn, s->cfd, name, uid, &s->hms) == 0) {
			seen_push(s, uid);
			if (uid >= s->next)
				s->next = uid + 1;
		}
		return MBOX_SYNC_OK;
	}
	names_push(&s->todo, name, false, name_idate(s->cfd, name));
	return MBOX_SYNC_OK;
}

/* Records whose file is gone from cur/: checked once more by name, then dropped. */
static enum mbox_sync_result drop_unseen(struct syncstate *s)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if (s->nseen)
		qsort(s->seen, s->nseen, sizeof(*s->seen), u32_cmp);
	size_t distinct = 0;
	for (size_t i = 0; i < s->nseen; i++)
		if (i == 0 || s->seen[i] != s->seen[i - 1])
			distinct++;
	MDB_stat ms;
	/* every record's file seen: nothing to drop, and no walk over all records */
	if (mdb_stat(s->txn, s->mb->uids, &ms) == 0 && ms.ms_entries == distinct)
		return MBOX_SYNC_OK;
	if (mdb_cursor_open(s->txn, s->mb->uids, &cur) != 0)
		return MBOX_SYNC_FAIL;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct mbox_msg m;
		struct stat st;
		if (k.mv_size != 4 || !mbox_record_decode(v.mv_data, v.mv_size, &m)) {
			mdb_cursor_close(cur);
			return MBOX_SYNC_DAMAGED;
		}
		uint32_t uid = mbox_key_uid(k.mv_data);
		/* A file renamed while we listed the directory may be missing from the listing: look again. */
		if ((s->nseen && bsearch(&uid, s->seen, s->nseen, sizeof(uid), u32_cmp)) || fstatat(s->cfd, m.name, &st, 0) == 0) {
			free(m.name);
			continue;
		}
		MDB_val nk = { mbox_base_len(m.name), m.name };
		(void)mdb_del(s->txn, s->mb->names, &nk, NULL);
		free(m.name);
		if (mdb_cursor_del(cur, 0) != 0 || mbox_tombstone(s->mb, s->txn, uid, ++s->hms) != 0) {
			mdb_cursor_close(cur);
			return MBOX_SYNC_FAIL;
		}
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? MBOX_SYNC_OK : MBOX_SYNC_FAIL;
}

static void take_todo(struct syncstate *s, const struct todo *t, uint32_t uid, struct buf *nn)
{
	int from = t->in_new ? s->nfd : s->cfd;
	struct mbox_msg m = { .uid = uid };

	if (!cur_name(t->name, uid, nn)) {
		log_warn("%s: file name too long for a UID, skipped: %s", s->mb->dir, log_safe(t->name, strlen(t->name), 80));
		return;
	}
	if (renameat2(from, t->name, s->cfd, buf_cstr(nn), RENAME_NOREPLACE) != 0 &&
	    (errno != EINVAL || renameat(from, t->name, s->cfd, buf_cstr(nn)) != 0)) {
		if (errno != ENOENT)	/* ENOENT: another session took it first */
			log_warn("%s: cannot move %s into cur/: %s", s->mb->dir, t->name, strerror(errno));
		return;
	}
	s->changed_dir = true;
	s->moved_from_new |= t->in_new;
	m.name = nn->data;
	if (!file_sizes(s->cfd, m.name, &m.size, &m.wsize))
		return;
	m.idate = t->idate ? t->idate : name_idate(s->cfd, m.name);
	m.modseq = ++s->hms;
	if (put_msg(s->mb, s->txn, &m) != 0)
		log_warn("%s: cannot index %s", s->mb->dir, m.name);
}

static int open_sub(const char *dir, const char *sub)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	int fd;

	buf_printf(&p, "%s/%s", dir, sub);
	fd = open(buf_cstr(&p), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	buf_free(&p);
	return fd;
}

static uint32_t new_uidvalidity(uint32_t old)
{
	uint32_t v = (uint32_t)time(NULL);
	if (v <= old)
		v = old + 1;
	return v ? v : 1;
}

enum mbox_sync_result mbox_sync_txn(struct mbox *mb, struct buf *err)
{
	struct syncstate s = { .mb = mb, .cfd = -1, .nfd = -1 };
	struct names newl = { 0 }, curl = { 0 };
	struct buf nn = BUF_INIT(BUF_NOLIMIT);
	enum mbox_sync_result res = MBOX_SYNC_FAIL;
	uint64_t uv, next, mts, mtns, reserved;
	uint32_t l_uv = 0, l_next = 0;
	struct stat st;
	bool have_list, rebuild, full;
	int rc;

	if ((rc = mdb_txn_begin(mb->env, NULL, 0, &s.txn)) != 0) {
		buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
		return rc == MDB_CORRUPTED ? MBOX_SYNC_DAMAGED : MBOX_SYNC_FAIL;
	}
	if ((rc = mbox_meta_get64(mb, s.txn, "uidvalidity", &uv)) != 0 ||
	    (rc = mbox_meta_get64(mb, s.txn, "uidnext", &next)) != 0 ||
	    (rc = mbox_meta_get64(mb, s.txn, "highestmodseq", &s.hms)) != 0 ||
	    (rc = mbox_meta_get64(mb, s.txn, "cur_mtime", &mts)) != 0 ||
	    (rc = mbox_meta_get64(mb, s.txn, "cur_mtime_ns", &mtns)) != 0 ||
	    (rc = mbox_meta_get64(mb, s.txn, "uid_reserved", &reserved)) != 0) {
		buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
		res = MBOX_SYNC_DAMAGED;
		goto out;
	}
	uint64_t uv0 = uv, next0 = next, hms0 = s.hms;
	s.cfd = open_sub(mb->dir, "cur");
	s.nfd = open_sub(mb->dir, "new");
	if (s.cfd < 0 || s.nfd < 0) {
		buf_printf(err, "%s: not a Maildir (cur/, new/): %s", mb->dir, strerror(errno));
		goto out;
	}
	have_list = uidlist_read(mb, &l_uv, &l_next);
	rebuild = uv == 0 || uv > UINT32_MAX || next == 0 || next > UINT32_MAX || (have_list && l_uv != uv);
	if (rebuild) {
		if (uv != 0)
			log_info("%s: mailbox index out of date, rebuilding it", mb->dir);
		if ((rc = mdb_drop(s.txn, mb->uids, 0)) != 0 || (rc = mdb_drop(s.txn, mb->names, 0)) != 0) {
			buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
			goto out;
		}
		/* Without the uidlist nobody can say which UIDs were handed out before, so clients must start over
		 * (a new UIDVALIDITY); the UIDs in the file names are still kept. */
		uv = have_list ? l_uv : new_uidvalidity((uint32_t)uv);
		/* A lost index took HIGHESTMODSEQ with it while the UIDs live on: clients may hold modseqs from before,
		 * so counting restarts above any plausible old value (1000 changes a second since the epoch), and the
		 * expunge history is marked incomplete up to here. */
		if (s.hms == 0 && have_list)
			s.hms = (uint64_t)time(NULL) * 1000;
		if ((rc = mbox_meta_put64(mb, s.txn, "vanished_floor", s.hms)) != 0) {
			buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
			goto out;
		}
		s.next = 1;
		s.adopt_lo = 1;
		s.adopt_hi = have_list ? l_next : UINT32_MAX;
	} else {
		s.next = (uint32_t)next;
		s.adopt_lo = (uint32_t)next;
		s.adopt_hi = have_list && l_next > next ? l_next : (uint32_t)next;
	}

	if (list_dir(s.nfd, &newl, true) != 0 || fstat(s.cfd, &st) != 0) {
		buf_printf(err, "%s: cannot read new/ or cur/: %s", mb->dir, strerror(errno));
		goto out;
	}
	/* An unchanged cur/ (and old enough that a change within the same clock tick is ruled out) needs no scan:
	 * that is what makes opening a large mailbox cheap. */
	full = rebuild || (uint64_t)st.st_mtim.tv_sec != mts || (uint64_t)st.st_mtim.tv_nsec != mtns ||
	       time(NULL) - st.st_mtim.tv_sec < 2;
	if (full) {
		if (!rebuild && mb->loaded && mb->uidvalidity == uv && mb->n > 0)
			known_build(&s);
		if (list_dir(s.cfd, &curl, false) != 0) {
			buf_printf(err, "%s: cannot read cur/: %s", mb->dir, strerror(errno));
			goto out;
		}
		for (size_t i = 0; i < curl.n; i++)
			if ((res = scan_one(&s, curl.v[i].name)) != MBOX_SYNC_OK) {
				buf_printf(err, "%s: index: %s", mb->dir, res == MBOX_SYNC_DAMAGED ? "damaged" : "write failed");
				goto out;
			}
		res = MBOX_SYNC_FAIL;
		if (drop_unseen(&s) != MBOX_SYNC_OK) {
			buf_printf(err, "%s: index: cannot drop removed messages", mb->dir);
			goto out;
		}
		if ((rc = put_changed(mb, s.txn, "cur_mtime", mts, (uint64_t)st.st_mtim.tv_sec)) != 0 ||
		    (rc = put_changed(mb, s.txn, "cur_mtime_ns", mtns, (uint64_t)st.st_mtim.tv_nsec)) != 0) {
			buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
			goto out;
		}
	}
	/* UIDs reserved in the uidlist but never used (a crash, or expunged before the index was lost) stay used,
	 * unless the reservation is the one this index made itself (uid_reserved): then the index knows every UID
	 * handed out below it, and the crash case is covered by adopting files that carry such UIDs (scan_one). */
	if (have_list && l_uv == uv && l_next > s.next && (rebuild || l_next != reserved))
		s.next = l_next;
	for (size_t i = 0; i < newl.n; i++)
		names_push(&s.todo, newl.v[i].name, true, newl.v[i].idate);
	if (s.todo.n)
		qsort(s.todo.v, s.todo.n, sizeof(*s.todo.v), todo_cmp);
	if (s.todo.n > (size_t)(UINT32_MAX - s.next)) {
		buf_printf(err, "%s: UIDs exhausted", mb->dir);
		goto out;
	}
	uint32_t new_next = s.next + (uint32_t)s.todo.n;
	/* The durable reservation comes before any file carries one of the new UIDs. It reaches UID_RESERVE past
	 * what is needed now, so that a run of APPENDs or deliveries rewrites (and syncs) the uidlist once per
	 * UID_RESERVE messages, not once each. */
	uint64_t reserve = (uint64_t)new_next + UID_RESERVE < UINT32_MAX ? new_next + UID_RESERVE : new_next;
	if (!have_list || l_uv != uv || l_next < new_next) {
		if (!uidlist_write(mb, (uint32_t)uv, (uint32_t)reserve, err))
			goto out;
		if ((rc = put_changed(mb, s.txn, "uid_reserved", reserved, reserve)) != 0) {
			buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
			goto out;
		}
	}
	for (size_t i = 0; i < s.todo.n; i++)
		take_todo(&s, &s.todo.v[i], s.next + (uint32_t)i, &nn);
	s.next = new_next;
	if (s.changed_dir && (fsync(s.cfd) != 0 || (s.moved_from_new && fsync(s.nfd) != 0)))
		log_warn("%s: fsync cur/ or new/: %s", mb->dir, strerror(errno));
	if ((rc = put_changed(mb, s.txn, "uidvalidity", uv0, uv)) != 0 ||
	    (rc = put_changed(mb, s.txn, "uidnext", next0, s.next)) != 0 ||
	    (rc = put_changed(mb, s.txn, "highestmodseq", hms0, s.hms)) != 0) {
		buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
		goto out;
	}
	rc = mdb_txn_commit(s.txn);
	s.txn = NULL;
	if (rc != 0) {
		buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
		goto out;
	}
	mb->uidvalidity = (uint32_t)uv;
	mb->uidnext = s.next;
	mb->hms = s.hms;
	res = MBOX_SYNC_OK;
out:
	if (s.txn)
		mdb_txn_abort(s.txn);
	if (s.cfd >= 0)
		close(s.cfd);
	if (s.nfd >= 0)
		close(s.nfd);
	names_free(&newl);
	names_free(&curl);
	names_free(&s.todo);
	free(s.seen);
	free(s.known);
	buf_free(&nn);
	return res;
}

int mbox_add(struct mbox *mb, struct maildir_writer **w, const char *flags, uint32_t *uid, char **name,
             struct buf *err)
{
	MDB_txn *txn;
	uint64_t uv, next, reserved, hms;
	uint32_t l_uv = 0, l_next = 0;
	struct buf extra = BUF_INIT(32);
	struct maildir_name mn;
	int rc, res = 0;

	*name = NULL;
	if (mdb_txn_begin(mb->env, NULL, 0, &txn) != 0)
		return 0;
	if (mbox_meta_get64(mb, txn, "uidvalidity", &uv) != 0 || mbox_meta_get64(mb, txn, "uidnext", &next) != 0 ||
	    mbox_meta_get64(mb, txn, "uid_reserved", &reserved) != 0 ||
	    mbox_meta_get64(mb, txn, "highestmodseq", &hms) != 0)
		goto out;
	/* anything a sync would rebuild or correct first: leave it to the sync */
	if (uv == 0 || uv > UINT32_MAX || next == 0 || next >= UINT32_MAX || !uidlist_read(mb, &l_uv, &l_next) ||
	    l_uv != uv || (l_next > next && l_next != reserved))
		goto out;
	res = -1;
	if (l_next < next + 1) {
		uint64_t reserve = next + 1 + UID_RESERVE < UINT32_MAX ? next + 1 + UID_RESERVE : next + 1;
		if (!uidlist_write(mb, (uint32_t)uv, (uint32_t)reserve, err))
			goto fail_writer;
		if ((rc = mbox_meta_put64(mb, txn, "uid_reserved", reserve)) != 0) {
			buf_printf(err, "%s: index: %s", mb->dir, mdb_strerror(rc));
			goto fail_writer;
		}
	}
	buf_printf(&extra, ",U=%" PRIu64, next);
	if (!maildir_commit_extra(w, flags, buf_cstr(&extra), name, err))
		goto out;
	struct mbox_msg m = { .uid = (uint32_t)next, .name = *name, .modseq = hms + 1 };
	if (maildir_name_parse(*name, &mn)) {
		m.size = mn.size;
		m.wsize = mn.wsize;
	}
	m.idate = name_idate(-1, *name);
	/* The message is stored under its UID from here on: a failure below leaves it to the next sync, which adopts
	 * the file (its UID is inside the reservation). */
	res = 1;
	rc = put_msg(mb, txn, &m);
	if (rc == 0)
		rc = mbox_meta_put64(mb, txn, "uidnext", next + 1);
	if (rc == 0)
		rc = mbox_meta_put64(mb, txn, "highestmodseq", hms + 1);
	if (rc == 0) {
		rc = mdb_txn_commit(txn);
		txn = NULL;
	}
	if (rc != 0)
		log_warn("%s: index: %s; the next sync picks up %s", mb->dir, mdb_strerror(rc), *name);
	*uid = (uint32_t)next;
	mb->uidvalidity = (uint32_t)uv;
	mb->uidnext = (uint32_t)next + 1;
	goto out;
fail_writer:
	maildir_abort(w);
out:
	if (txn)
		mdb_txn_abort(txn);
	if (res != 1) {
		free(*name);
		*name = NULL;
	}
	buf_free(&extra);
	return res;
}
