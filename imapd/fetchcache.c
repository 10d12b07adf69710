/* FETCH string cache; see fetchcache.h. Written without fsync (MDB_NOSYNC): losing recent entries in a crash
 * only costs a reparse. */
#include <lmdb.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "fetchcache.h"
#include "log.h"

#define MAPSIZE (512ull * 1024 * 1024)
#define VALUE_MAX (4u * 1024 * 1024)	/* bigger strings are not worth a cache entry */

struct imapd_fcache {
	MDB_env *env;
	MDB_dbi dbi;
};

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
	if ((rc = mdb_dbi_open(txn, NULL, 0, &c->dbi)) != 0 || (rc = mdb_txn_commit(txn)) != 0) {
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

bool imapd_fcache_get(struct imapd_fcache *c, uint32_t uidvalidity, uint32_t uid, enum imapd_fc_kind kind,
		      struct buf *out)
{
	unsigned char k[9];
	MDB_val kv = { sizeof(k), k }, v;
	MDB_txn *txn;
	bool ok = false;

	if (!c || mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn) != 0)
		return false;
	key(uidvalidity, uid, kind, k);
	if (mdb_get(txn, c->dbi, &kv, &v) == 0 && v.mv_size > 0)
		ok = buf_append(out, v.mv_data, v.mv_size);
	mdb_txn_abort(txn);
	return ok;
}

void imapd_fcache_put(struct imapd_fcache *c, uint32_t uidvalidity, uint32_t uid, enum imapd_fc_kind kind,
		      const char *s, size_t n)
{
	unsigned char k[9];
	MDB_val kv = { sizeof(k), k }, v = { n, (void *)s };
	MDB_txn *txn;

	if (!c || n == 0 || n > VALUE_MAX || mdb_txn_begin(c->env, NULL, 0, &txn) != 0)
		return;
	key(uidvalidity, uid, kind, k);
	if (mdb_put(txn, c->dbi, &kv, &v, 0) != 0)
		mdb_txn_abort(txn);	/* full: the cache just stops growing */
	else
		(void)mdb_txn_commit(txn);
}

void imapd_fcache_drop(struct imapd_fcache *c, uint32_t uidvalidity, const uint32_t *uids, size_t n)
{
	MDB_txn *txn;

	if (!c || n == 0 || mdb_txn_begin(c->env, NULL, 0, &txn) != 0)
		return;
	for (size_t i = 0; i < n; i++)
		for (unsigned kind = IMAPD_FC_ENVELOPE; kind <= IMAPD_FC_BODYSTRUCTURE; kind++) {
			unsigned char k[9];
			MDB_val kv = { sizeof(k), k };
			key(uidvalidity, uids[i], kind, k);
			(void)mdb_del(txn, c->dbi, &kv, NULL);
		}
	(void)mdb_txn_commit(txn);
}
