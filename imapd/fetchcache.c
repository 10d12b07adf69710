/* FETCH string cache; see fetchcache.h. Written without fsync (MDB_NOSYNC): losing recent entries in a crash
 * only costs a reparse. Within a batch (one FETCH command) lookups share one read transaction and new entries
 * one write transaction, because a transaction per message costs more than parsing a small message. */
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "fetchcache.h"
#include "imap_body.h"
#include "mime.h"
#include "log.h"

#define MAPSIZE (512ull * 1024 * 1024)
#define VALUE_MAX (4u * 1024 * 1024)	/* bigger strings are not worth a cache entry */
#define HEADER_MAX (64u * 1024)	/* a header block bigger than this is read from the file when searched */
#define BATCH_PUTS 256	/* a batch commits this often, so other sessions of the folder do not wait on it long */
/* Entry keys are 9 bytes, so this one cannot collide with them. */
#define VERSION_KEY "format-version"

struct imapd_fcache {
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn;		/* the batch's transaction, begun on first use; NULL outside a batch */
	bool batch, txn_write;
	unsigned puts;		/* uncommitted puts in txn */
};

/* The cache holds strings of another format (or of a version before the key existed): empty it, so stale
 * ENVELOPE/BODYSTRUCTURE strings are not served after an upgrade. */
static int check_version(struct imapd_fcache *c, MDB_txn *txn, const char *path)
{
	char want[16];
	int wn = snprintf(want, sizeof(want), "%u", IMAPD_FETCHCACHE_FORMAT);
	MDB_val kv = { sizeof(VERSION_KEY) - 1, VERSION_KEY }, v;
	int rc = mdb_get(txn, c->dbi, &kv, &v);

	if (rc == 0 && v.mv_size == (size_t)wn && memcmp(v.mv_data, want, (size_t)wn) == 0)
		return 0;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	MDB_stat st;
	if (mdb_stat(txn, c->dbi, &st) == 0 && st.ms_entries > 0)
		log_info("imapd: %s: cache format %.*s, not %s; emptying it", path,
			 rc == 0 ? (int)(v.mv_size > 16 ? 16 : v.mv_size) : 4, rc == 0 ? (const char *)v.mv_data : "none",
			 want);
	if ((rc = mdb_drop(txn, c->dbi, 0)) != 0)
		return rc;
	v.mv_size = (size_t)wn;
	v.mv_data = want;
	return mdb_put(txn, c->dbi, &kv, &v, 0);
}

static bool try_open(struct imapd_fcache *c, const char *path, int *rcp)
{
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_env_create(&c->env)) != 0)
		goto fail;
	if ((rc = mdb_env_set_mapsize(c->env, MAPSIZE)) != 0 ||
	    (rc = mdb_env_open(c->env, path, MDB_NOSUBDIR | MDB_NOSYNC, 0600)) != 0)
		goto fail_env;
	(void)mdb_reader_check(c->env, NULL);
	if ((rc = mdb_txn_begin(c->env, NULL, 0, &txn)) != 0)
		goto fail_env;
	if ((rc = mdb_dbi_open(txn, NULL, 0, &c->dbi)) != 0 || (rc = check_version(c, txn, path)) != 0 ||
	    (rc = mdb_txn_commit(txn)) != 0) {
		if (rc != 0)
			mdb_txn_abort(txn);
		goto fail_env;
	}
	return true;
fail_env:
	mdb_env_close(c->env);
	c->env = NULL;
fail:
	*rcp = rc;
	return false;
}

struct imapd_fcache *imapd_fcache_open(const char *dir)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT), lock = BUF_INIT(BUF_NOLIMIT);
	struct imapd_fcache *c = xcalloc(1, sizeof(*c));
	int rc = 0;

	buf_printf(&path, "%s/%s", dir, IMAPD_FETCHCACHE_FILE);
	buf_printf(&lock, "%s-lock", buf_cstr(&path));
	if (!try_open(c, buf_cstr(&path), &rc)) {
		if (rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_VERSION_MISMATCH || rc == MDB_PAGE_NOTFOUND ||
		    rc == MDB_INCOMPATIBLE) {
			log_warn("imapd: %s: %s; starting it afresh", buf_cstr(&path), mdb_strerror(rc));
			(void)unlink(buf_cstr(&path));
			(void)unlink(buf_cstr(&lock));
			if (try_open(c, buf_cstr(&path), &rc))
				goto out;
		}
		log_warn("imapd: %s: %s", buf_cstr(&path), mdb_strerror(rc));
		xfree(&c);
	}
out:
	buf_free(&path);
	buf_free(&lock);
	return c;
}

void imapd_fcache_close(struct imapd_fcache **cp)
{
	if (!*cp)
		return;
	imapd_fcache_end(*cp);
	mdb_env_close((*cp)->env);
	xfree(cp);
}

static void key(uint32_t uv, uint32_t uid, unsigned kind, unsigned char k[9])
{
	for (int i = 0; i < 4; i++) {
		k[i] = (unsigned char)(uv >> (24 - 8 * i));
		k[4 + i] = (unsigned char)(uid >> (24 - 8 * i));
	}
	k[8] = (unsigned char)kind;
}

void imapd_fcache_begin(struct imapd_fcache *c)
{
	if (c)
		c->batch = true;
}

void imapd_fcache_end(struct imapd_fcache *c)
{
	if (!c)
		return;
	if (c->txn) {
		if (c->txn_write)
			(void)mdb_txn_commit(c->txn);
		else
			mdb_txn_abort(c->txn);
	}
	c->txn = NULL;
	c->batch = c->txn_write = false;
	c->puts = 0;
}

/* The transaction for a lookup (write = false) or a put: the batch's, upgraded from read to write when the first
 * put comes (one thread holds one transaction at a time), or a new one outside a batch. NULL when LMDB refuses. */
static MDB_txn *txn_get(struct imapd_fcache *c, bool write)
{
	if (c->txn && (c->txn_write || !write))
		return c->txn;
	if (c->txn) {
		mdb_txn_abort(c->txn);
		c->txn = NULL;
	}
	MDB_txn *txn;
	if (mdb_txn_begin(c->env, NULL, write ? 0 : MDB_RDONLY, &txn) != 0)
		return NULL;
	if (c->batch) {
		c->txn = txn;
		c->txn_write = write;
	}
	return txn;
}

static void txn_done(struct imapd_fcache *c, MDB_txn *txn, bool commit)
{
	if (txn == c->txn) {
		if (!commit || ++c->puts < BATCH_PUTS)
			return;
		c->txn = NULL;
		c->txn_write = false;
		c->puts = 0;
	}
	if (commit)
		(void)mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
}

bool imapd_fcache_get(struct imapd_fcache *c, uint32_t uidvalidity, uint32_t uid, enum imapd_fc_kind kind,
		      struct buf *out)
{
	unsigned char k[9];
	MDB_val kv = { sizeof(k), k }, v;
	MDB_txn *txn;
	bool ok = false;

	if (!c || !(txn = txn_get(c, false)))
		return false;
	key(uidvalidity, uid, kind, k);
	if (mdb_get(txn, c->dbi, &kv, &v) == 0 && v.mv_size > 0)
		ok = buf_append(out, v.mv_data, v.mv_size);
	txn_done(c, txn, false);
	return ok;
}

void imapd_fcache_put(struct imapd_fcache *c, uint32_t uidvalidity, uint32_t uid, enum imapd_fc_kind kind,
		      const char *s, size_t n)
{
	unsigned char k[9];
	MDB_val kv = { sizeof(k), k }, v = { n, (void *)s };
	MDB_txn *txn;

	if (!c || n == 0 || n > VALUE_MAX || !(txn = txn_get(c, true)))
		return;
	key(uidvalidity, uid, kind, k);
	if (mdb_put(txn, c->dbi, &kv, &v, 0) != 0) {
		/* full: the cache just stops growing (a failed put spoils the transaction, so earlier puts of the
		 * batch go with it) */
		if (txn == c->txn) {
			c->txn = NULL;
			c->txn_write = false;
			c->puts = 0;
		}
		mdb_txn_abort(txn);
	} else {
		txn_done(c, txn, true);
	}
}

void imapd_fcache_drop(struct imapd_fcache *c, uint32_t uidvalidity, const uint32_t *uids, size_t n)
{
	MDB_txn *txn;

	if (!c || n == 0)
		return;
	imapd_fcache_end(c);
	if (mdb_txn_begin(c->env, NULL, 0, &txn) != 0)
		return;
	for (size_t i = 0; i < n; i++)
		for (unsigned kind = IMAPD_FC_ENVELOPE; kind <= IMAPD_FC_HEADER; kind++) {
			unsigned char k[9];
			MDB_val kv = { sizeof(k), k };
			key(uidvalidity, uids[i], kind, k);
			(void)mdb_del(txn, c->dbi, &kv, NULL);
		}
	(void)mdb_txn_commit(txn);
}

void imapd_fcache_put_header(struct imapd_fcache *c, uint32_t uidvalidity, uint32_t uid, const char *data,
			     size_t len)
{
	struct mime_header h = MIME_HEADER_INIT;

	if (!c)
		return;
	mime_header_parse(&h, data, len);
	if (h.size > 0 && h.size <= HEADER_MAX)
		imapd_fcache_put(c, uidvalidity, uid, IMAPD_FC_HEADER, data, h.size);
	mime_header_free(&h);
}

void imapd_fcache_fill(struct imapd_fcache *c, uint32_t uidvalidity, uint32_t uid, const char *data, size_t len,
		       const struct mime_message *parsed)
{
	struct mime_message own;
	const struct mime_message *m = parsed;
	struct buf s = BUF_INIT(BUF_NOLIMIT);

	if (!c)
		return;
	if (!m) {
		memset(&own, 0, sizeof own);
		mime_message_parse(&own, data, len);
		m = &own;
	}
	struct mime_header h = MIME_HEADER_INIT;
	mime_part_header(m, m->root, &h);
	imap_envelope(&h, &s);
	mime_header_free(&h);
	imapd_fcache_put(c, uidvalidity, uid, IMAPD_FC_ENVELOPE, s.data, s.len);
	buf_reset(&s);
	imap_bodystructure(m, false, &s);
	imapd_fcache_put(c, uidvalidity, uid, IMAPD_FC_BODY, s.data, s.len);
	buf_reset(&s);
	imap_bodystructure(m, true, &s);
	imapd_fcache_put(c, uidvalidity, uid, IMAPD_FC_BODYSTRUCTURE, s.data, s.len);
	buf_free(&s);
	imapd_fcache_put_header(c, uidvalidity, uid, data, len);
	if (m == &own)
		mime_message_free(&own);
}
