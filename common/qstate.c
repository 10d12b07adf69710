/* queue/state.lmdb: record codec and the LMDB side. One record per recipient; the record format is versioned
 * and decoded strictly because a damaged record must lead to a rebuild from the queue file, never to a guess. */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "qfile.h"
#include "qstate.h"
#include "str.h"

#define QSTATE_MAP_SIZE ((size_t)1 << 30)	/* sparse: only what is used takes disk space */

struct qstate {
	MDB_env *env;
	MDB_dbi dbi;
	bool writable;
};

/* ---- codec ---- */

static void put_u16(struct buf *b, uint16_t v)
{
	unsigned char p[2] = { (unsigned char)(v >> 8), (unsigned char)v };
	buf_append(b, p, 2);
}

static void put_u32(struct buf *b, uint32_t v)
{
	unsigned char p[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
	                       (unsigned char)v };
	buf_append(b, p, 4);
}

static void put_u64(struct buf *b, uint64_t v)
{
	put_u32(b, (uint32_t)(v >> 32));
	put_u32(b, (uint32_t)v);
}

/* Record v1: version(1) status(1) flags(1) idx(4) attempts(4) next_try(8) last_try(8) parent(4)
 *            dsn_len(1) dsn  text_len(2) text  addr_len(2) addr */
void qstate_encode(const struct qstate_rcpt *r, struct buf *out)
{
	size_t dl = strnlen(r->dsn, QSTATE_DSN_MAX);
	size_t tl = r->text ? strlen(r->text) : 0;
	size_t al = r->addr ? strlen(r->addr) : 0;

	if (tl > QSTATE_TEXT_MAX)
		tl = QSTATE_TEXT_MAX;
	if (al > QSTATE_ADDR_MAX)
		panic("qstate_encode: address longer than %d", QSTATE_ADDR_MAX);
	buf_putc(out, QSTATE_VERSION);
	buf_putc(out, r->status);
	buf_putc(out, r->flags);
	put_u32(out, r->idx);
	put_u32(out, r->attempts);
	put_u64(out, r->next_try);
	put_u64(out, r->last_try);
	put_u32(out, r->parent);
	buf_putc(out, (int)dl);
	buf_append(out, r->dsn, dl);
	put_u16(out, (uint16_t)tl);
	buf_append(out, r->text ? r->text : "", tl);
	put_u16(out, (uint16_t)al);
	buf_append(out, r->addr ? r->addr : "", al);
}

struct rd {
	const unsigned char *p;
	size_t left;
};

static bool get_bytes(struct rd *r, size_t n, const unsigned char **out)
{
	if (r->left < n)
		return false;
	*out = r->p;
	r->p += n;
	r->left -= n;
	return true;
}

static bool get_uint(struct rd *r, size_t n, uint64_t *v)
{
	const unsigned char *p;

	if (!get_bytes(r, n, &p))
		return false;
	*v = 0;
	for (size_t i = 0; i < n; i++)
		*v = (*v << 8) | p[i];
	return true;
}

static bool get_str(struct rd *r, size_t lenbytes, size_t max, char **out, struct buf *err, const char *what)
{
	uint64_t n;
	const unsigned char *p;

	if (!get_uint(r, lenbytes, &n) || !get_bytes(r, (size_t)n, &p)) {
		buf_printf(err, "truncated %s", what);
		return false;
	}
	if (n > max || memchr(p, 0, (size_t)n)) {
		buf_printf(err, "bad %s", what);
		return false;
	}
	*out = xstrndup((const char *)p, (size_t)n);
	return true;
}

static bool valid_status(uint64_t s)
{
	return s == QSTATE_PENDING || s == QSTATE_DEFERRED || s == QSTATE_SENT || s == QSTATE_BOUNCED ||
	       s == QSTATE_EXPANDED;
}

bool qstate_decode(const void *data, size_t len, struct qstate_rcpt *out, struct buf *err)
{
	struct rd r = { data, len };
	uint64_t v, st, fl, idx, att, nt, lt, par;
	char *dsn = NULL;

	memset(out, 0, sizeof(*out));
	if (!get_uint(&r, 1, &v) || v != QSTATE_VERSION) {
		buf_puts(err, "unknown state record version");
		return false;
	}
	if (!get_uint(&r, 1, &st) || !get_uint(&r, 1, &fl) || !get_uint(&r, 4, &idx) || !get_uint(&r, 4, &att) || !get_uint(&r, 8, &nt) ||
	    !get_uint(&r, 8, &lt) || !get_uint(&r, 4, &par)) {
		buf_puts(err, "truncated state record");
		return false;
	}
	if (!valid_status(st) || (fl & ~(uint64_t)QSTATE_F_KNOWN) || idx > QSTATE_IDX_MAX || (par != QSTATE_NO_PARENT && par >= idx)) {
		buf_puts(err, "bad state record fields");
		return false;
	}
	if (!get_str(&r, 1, QSTATE_DSN_MAX, &dsn, err, "status code"))
		return false;
	str_copy(out->dsn, sizeof(out->dsn), dsn);
	free(dsn);
	if (!get_str(&r, 2, QSTATE_TEXT_MAX, &out->text, err, "text") ||
	    !get_str(&r, 2, QSTATE_ADDR_MAX, &out->addr, err, "address"))
		goto fail;
	if (r.left != 0) {
		buf_puts(err, "trailing bytes in state record");
		goto fail;
	}
	out->status = (uint8_t)st;
	out->flags = (uint8_t)fl;
	out->idx = (uint32_t)idx;
	out->attempts = (uint32_t)att;
	out->next_try = nt;
	out->last_try = lt;
	out->parent = (uint32_t)par;
	return true;
fail:
	qstate_rcpt_free(out);
	return false;
}

bool qstate_key(const char *id, uint32_t idx, struct buf *out)
{
	buf_reset(out);
	if (!qfile_id_valid(id) || idx > QSTATE_IDX_MAX)
		return false;
	return buf_printf(out, "%s/%06u", id, (unsigned)idx);
}

bool qstate_key_parse(const void *key, size_t len, char id[], size_t idsize, uint32_t *idx)
{
	const char *k = key;
	uint64_t v;

	if (len < 8 || k[len - 7] != '/' || len - 7 >= idsize)
		return false;
	if (memchr(k, '\0', len - 7))
		return false;
	memcpy(id, k, len - 7);
	id[len - 7] = '\0';
	if (!qfile_id_valid(id) || !str_to_u64n(k + len - 6, 6, QSTATE_IDX_MAX, &v))
		return false;
	*idx = (uint32_t)v;
	return true;
}

void qstate_rcpt_free(struct qstate_rcpt *r)
{
	xfree(&r->text);
	xfree(&r->addr);
}

void qstate_rcpt_set(struct qstate_rcpt *r, const char *addr, const char *dsn, const char *text)
{
	if (addr) {
		free(r->addr);
		r->addr = xstrdup(addr);
	}
	if (dsn)
		str_copy(r->dsn, sizeof(r->dsn), dsn);
	if (text) {
		free(r->text);
		r->text = xstrndup(text, QSTATE_TEXT_MAX);
	}
}

const char *qstate_status_name(uint8_t status)
{
	switch (status) {
	case QSTATE_PENDING: return "pending";
	case QSTATE_DEFERRED: return "deferred";
	case QSTATE_SENT: return "sent";
	case QSTATE_BOUNCED: return "bounced";
	case QSTATE_EXPANDED: return "expanded";
	}
	return "unknown";
}

/* ---- database ---- */

static bool lmdb_fail(struct buf *err, const char *what, int rc)
{
	buf_printf(err, "state database: %s: %s", what, mdb_strerror(rc));
	return false;
}

struct qstate *qstate_open(const char *path, bool writable, struct buf *err)
{
	struct qstate *db = xcalloc(1, sizeof(*db));
	MDB_txn *txn = NULL;
	int rc;

	if ((rc = mdb_env_create(&db->env)) != 0 || (rc = mdb_env_set_mapsize(db->env, QSTATE_MAP_SIZE)) != 0 ||
	    (rc = mdb_env_open(db->env, path, MDB_NOSUBDIR | (writable ? 0 : MDB_RDONLY), 0600)) != 0) {
		buf_printf(err, "open %s: %s", path, mdb_strerror(rc));
		goto fail;
	}
	(void)mdb_reader_check(db->env, NULL);	/* slots of processes that died without closing (kill -9) */
	if ((rc = mdb_txn_begin(db->env, NULL, writable ? 0 : MDB_RDONLY, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &db->dbi)) != 0 || (rc = mdb_txn_commit(txn)) != 0) {
		if (txn && rc != 0)
			mdb_txn_abort(txn);
		buf_printf(err, "open %s: %s", path, mdb_strerror(rc));
		goto fail;
	}
	db->writable = writable;
	return db;
fail:
	if (db->env)
		mdb_env_close(db->env);
	free(db);
	return NULL;
}

void qstate_close(struct qstate **dbp)
{
	if (!*dbp)
		return;
	mdb_env_close((*dbp)->env);
	xfree(dbp);
}

void qstate_free_list(struct qstate_rcpt **list, size_t n)
{
	if (!*list)
		return;
	for (size_t i = 0; i < n; i++)
		qstate_rcpt_free(&(*list)[i]);
	xfree(list);
}

bool qstate_get_msg(struct qstate *db, const char *id, struct qstate_rcpt **out, size_t *n, struct buf *err)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	struct buf prefix = BUF_INIT(QFILE_ID_MAX + 2);
	struct qstate_rcpt *list = NULL;
	size_t cnt = 0, cap = 0;
	bool ok = false;
	int rc;

	*out = NULL;
	*n = 0;
	if (!qfile_id_valid(id)) {
		buf_puts(err, "bad queue ID");
		return false;
	}
	buf_printf(&prefix, "%s/", id);
	if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn)) != 0) {
		buf_free(&prefix);
		return lmdb_fail(err, "begin", rc);
	}
	if ((rc = mdb_cursor_open(txn, db->dbi, &cur)) != 0) {
		mdb_txn_abort(txn);
		buf_free(&prefix);
		return lmdb_fail(err, "cursor", rc);
	}
	MDB_val k = { prefix.len, prefix.data }, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < prefix.len || memcmp(k.mv_data, prefix.data, prefix.len) != 0)
			break;
		char kid[QFILE_ID_MAX];
		uint32_t idx;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 8;
			list = xreallocarray(list, cap, sizeof(*list));
		}
		memset(&list[cnt], 0, sizeof(list[cnt]));
		if (!qstate_key_parse(k.mv_data, k.mv_size, kid, sizeof(kid), &idx) ||
		    !qstate_decode(v.mv_data, v.mv_size, &list[cnt], err) || list[cnt].idx != idx) {
			qstate_rcpt_free(&list[cnt]);
			buf_printf(err, "%scorrupt state record for %s", err->len ? " " : "", id);
			goto out;
		}
		cnt++;
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		lmdb_fail(err, "read", rc);
		goto out;
	}
	ok = true;
out:
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	buf_free(&prefix);
	if (!ok) {
		qstate_free_list(&list, cnt);
		return false;
	}
	*out = list;
	*n = cnt;
	return true;
}

bool qstate_put(struct qstate *db, const char *id, const struct qstate_rcpt *recs, size_t n, struct buf *err)
{
	MDB_txn *txn;
	struct buf key = BUF_INIT(QFILE_ID_MAX + 8), val = BUF_INIT(BUF_NOLIMIT);
	int rc;

	if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)) != 0)
		return lmdb_fail(err, "begin", rc);
	for (size_t i = 0; i < n; i++) {
		if (!qstate_key(id, recs[i].idx, &key)) {
			mdb_txn_abort(txn);
			buf_free(&key);
			buf_free(&val);
			buf_printf(err, "state database: bad key %s/%u", id, (unsigned)recs[i].idx);
			return false;
		}
		buf_reset(&val);
		qstate_encode(&recs[i], &val);
		MDB_val k = { key.len, key.data }, v = { val.len, val.data };
		if ((rc = mdb_put(txn, db->dbi, &k, &v, 0)) != 0) {
			mdb_txn_abort(txn);
			buf_free(&key);
			buf_free(&val);
			return lmdb_fail(err, "put", rc);
		}
	}
	buf_free(&key);
	buf_free(&val);
	/* A failed commit has already freed the transaction. */
	if ((rc = mdb_txn_commit(txn)) != 0)
		return lmdb_fail(err, "commit", rc);
	return true;
}

bool qstate_delete_msg(struct qstate *db, const char *id, struct buf *err)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	struct buf prefix = BUF_INIT(QFILE_ID_MAX + 2);
	int rc;

	if (!qfile_id_valid(id)) {
		buf_puts(err, "bad queue ID");
		return false;
	}
	buf_printf(&prefix, "%s/", id);
	if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)) != 0) {
		buf_free(&prefix);
		return lmdb_fail(err, "begin", rc);
	}
	if ((rc = mdb_cursor_open(txn, db->dbi, &cur)) != 0) {
		mdb_txn_abort(txn);
		buf_free(&prefix);
		return lmdb_fail(err, "cursor", rc);
	}
	MDB_val k = { prefix.len, prefix.data }, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < prefix.len || memcmp(k.mv_data, prefix.data, prefix.len) != 0)
			break;
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	buf_free(&prefix);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return lmdb_fail(err, "delete", rc);
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return lmdb_fail(err, "commit", rc);
	return true;
}

bool qstate_foreach_id(struct qstate *db, bool (*fn)(const char *id, void *arg), void *arg, struct buf *err)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	char last[QFILE_ID_MAX] = "";
	int rc;

	if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn)) != 0)
		return lmdb_fail(err, "begin", rc);
	if ((rc = mdb_cursor_open(txn, db->dbi, &cur)) != 0) {
		mdb_txn_abort(txn);
		return lmdb_fail(err, "cursor", rc);
	}
	/* Collect first: fn may write to the database, which a read transaction must not outlive. */
	char **ids = NULL;
	size_t n = 0, cap = 0;
	MDB_val k, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		char id[QFILE_ID_MAX];
		uint32_t idx;
		if (!qstate_key_parse(k.mv_data, k.mv_size, id, sizeof(id), &idx)) {
			log_warn("state database: skipping malformed key %s", log_safe(k.mv_data, k.mv_size, 64));
			continue;
		}
		if (strcmp(id, last) == 0)
			continue;
		str_copy(last, sizeof(last), id);
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			ids = xreallocarray(ids, cap, sizeof(*ids));
		}
		ids[n++] = xstrdup(id);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	bool ok = rc == 0 || rc == MDB_NOTFOUND;
	if (!ok)
		lmdb_fail(err, "walk", rc);
	bool more = ok;
	for (size_t i = 0; i < n; i++) {
		if (more)
			more = fn(ids[i], arg);
		free(ids[i]);
	}
	free(ids);
	return ok;
}
