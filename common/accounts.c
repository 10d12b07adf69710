/* The account database on LMDB and its record format; see accounts.h. Password hashing is in accounts_hash.c. */
#include "accounts.h"

#include <errno.h>
#include <lmdb.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "alloc.h"
#include "log.h"
#include "str.h"

#define ACCOUNTS_MAPSIZE_INITIAL ((size_t)64 << 20)
#define ACCOUNTS_MAPSIZE_MAX ((size_t)1 << 34)
#define REC_FLAG_ENABLED 0x01
#define REC_FLAG_APOP 0x02
#define REC_FLAGS_KNOWN (REC_FLAG_ENABLED | REC_FLAG_APOP)
#define REC_FIXED_LEN (1 + 1 + 4 + 4 + 8 + 8 + 8)

struct accounts {
	MDB_env *env;
	MDB_dbi dbi;
	bool writable;
	char *path;
};

/* ---- record format ---- */

static void put_u16(struct buf *b, uint16_t v)
{
	unsigned char p[2] = { (unsigned char)(v >> 8), (unsigned char)v };
	if (!buf_append(b, p, sizeof p))
		panic("accounts: record buffer cap");
}

static void put_u64(struct buf *b, uint64_t v, int bytes)
{
	unsigned char p[8];
	for (int i = 0; i < bytes; i++)
		p[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
	if (!buf_append(b, p, (size_t)bytes))
		panic("accounts: record buffer cap");
}

static void put_str(struct buf *b, const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;
	if (n > max)
		panic("accounts: string of %zu bytes in record (max %zu)", n, max);
	put_u16(b, (uint16_t)n);
	if (n && !buf_append(b, s, n))
		panic("accounts: record buffer cap");
}

void accounts_record_encode(const struct accounts_user *u, struct buf *out)
{
	unsigned flags = (u->enabled ? REC_FLAG_ENABLED : 0) | (u->apop_secret ? REC_FLAG_APOP : 0);

	buf_reset(out);
	put_u64(out, ACCOUNTS_RECORD_VERSION, 1);
	put_u64(out, flags, 1);
	put_u64(out, u->uid, 4);
	put_u64(out, u->gid, 4);
	put_u64(out, u->quota, 8);
	put_u64(out, (uint64_t)u->created, 8);
	put_u64(out, (uint64_t)u->changed, 8);
	put_str(out, u->password_hash, ACCOUNTS_HASH_MAX);
	put_str(out, u->maildir, ACCOUNTS_PATH_MAX);
	if (u->apop_secret)
		put_str(out, u->apop_secret, ACCOUNTS_SECRET_MAX);
}

static void rec_err(struct buf *err, const char *what)
{
	if (err)
		buf_printf(err, "account record: %s", what);
}

struct reader {
	const unsigned char *p;
	size_t left;
};

static bool get_uint(struct reader *r, int bytes, uint64_t *v)
{
	if (r->left < (size_t)bytes)
		return false;
	*v = 0;
	for (int i = 0; i < bytes; i++)
		*v = (*v << 8) | r->p[i];
	r->p += bytes;
	r->left -= (size_t)bytes;
	return true;
}

/* A length-prefixed string: at most max bytes, no NUL, printable ASCII when text_only. */
static bool get_str(struct reader *r, size_t max, bool text_only, char **out)
{
	uint64_t n;
	if (!get_uint(r, 2, &n) || n > max || n > r->left)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = r->p[i];
		if (c == '\0' || (text_only && (c < 0x20 || c > 0x7e)))
			return false;
	}
	*out = xstrndup((const char *)r->p, (size_t)n);
	r->p += n;
	r->left -= (size_t)n;
	return true;
}

bool accounts_record_decode(const void *data, size_t len, struct accounts_user *out, struct buf *err)
{
	struct reader r = { data, len };
	uint64_t version, flags, uid, gid, quota, created, changed;
	struct accounts_user u;

	memset(&u, 0, sizeof u);
	memset(out, 0, sizeof *out);
	if (!get_uint(&r, 1, &version) || version != ACCOUNTS_RECORD_VERSION) {
		rec_err(err, len ? "unknown record version" : "empty record");
		return false;
	}
	if (!get_uint(&r, 1, &flags) || !get_uint(&r, 4, &uid) || !get_uint(&r, 4, &gid) ||
	    !get_uint(&r, 8, &quota) || !get_uint(&r, 8, &created) || !get_uint(&r, 8, &changed)) {
		rec_err(err, "truncated header");
		return false;
	}
	if (flags & ~(uint64_t)REC_FLAGS_KNOWN) {
		rec_err(err, "unknown flags");
		return false;
	}
	u.uid = (uint32_t)uid;
	u.gid = (uint32_t)gid;
	u.quota = quota;
	u.created = (int64_t)created;
	u.changed = (int64_t)changed;
	u.enabled = (flags & REC_FLAG_ENABLED) != 0;
	if (!get_str(&r, ACCOUNTS_HASH_MAX, true, &u.password_hash)) {
		rec_err(err, "bad password hash field");
		goto fail;
	}
	if (!get_str(&r, ACCOUNTS_PATH_MAX, false, &u.maildir) || u.maildir[0] != '/') {
		rec_err(err, "bad maildir field");
		goto fail;
	}
	if ((flags & REC_FLAG_APOP) && !get_str(&r, ACCOUNTS_SECRET_MAX, false, &u.apop_secret)) {
		rec_err(err, "bad APOP secret field");
		goto fail;
	}
	if (r.left != 0) {
		rec_err(err, "trailing bytes");
		goto fail;
	}
	*out = u;
	return true;
fail:
	accounts_user_free(&u);
	return false;
}

void accounts_user_free(struct accounts_user *u)
{
	if (u->password_hash)
		explicit_bzero(u->password_hash, strlen(u->password_hash));
	if (u->apop_secret)
		explicit_bzero(u->apop_secret, strlen(u->apop_secret));
	free(u->address);
	free(u->password_hash);
	free(u->maildir);
	free(u->apop_secret);
	if (u->login_token)
		explicit_bzero(u->login_token, strlen(u->login_token));
	free(u->login_token);
	memset(u, 0, sizeof *u);
}

const char *accounts_result_str(enum accounts_result r)
{
	switch (r) {
	case ACCOUNTS_OK: return "ok";
	case ACCOUNTS_NOTFOUND: return "no such account";
	case ACCOUNTS_BADPASS: return "wrong password";
	case ACCOUNTS_DISABLED: return "account disabled";
	case ACCOUNTS_EXISTS: return "account exists";
	case ACCOUNTS_ERROR: return "error";
	}
	return "?";
}

/* ---- addresses ---- */

static bool is_atext(int c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool is_ldh(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

bool accounts_normalize(const char *address, struct buf *out, struct buf *err)
{
	const char *at = strrchr(address, '@');
	size_t llen, dlen, label = 0;

	buf_reset(out);
	if (at == NULL || at == address || at[1] == '\0') {
		buf_puts(err, "address must be local@domain");
		return false;
	}
	llen = (size_t)(at - address);
	dlen = strlen(at + 1);
	if (llen > ACCOUNTS_LOCAL_MAX || llen + 1 + dlen > ACCOUNTS_ADDRESS_MAX) {
		buf_puts(err, "address too long");
		return false;
	}
	/* Dot-atom only: the local part becomes a directory name, so '/' is refused as well as leading, trailing and
	 * doubled dots (no "." or ".." path components). */
	for (size_t i = 0; i < llen; i++) {
		int c = (unsigned char)address[i];
		if (c == '.') {
			if (i == 0 || i == llen - 1 || address[i - 1] == '.') {
				buf_puts(err, "local part has a misplaced dot");
				return false;
			}
		} else if (c == '/' || !is_atext(c)) {
			buf_puts(err, "local part may hold only letters, digits, dots and !#$%&'*+-=?^_`{|}~");
			return false;
		}
	}
	for (size_t i = 0; i < dlen; i++) {
		int c = (unsigned char)at[1 + i];
		if (c == '.') {
			if (label == 0 || at[i] == '-') {
				buf_puts(err, "domain has an empty or badly ended label");
				return false;
			}
			label = 0;
		} else if (is_ldh(c) && (label > 0 || c != '-') && label < 63) {
			label++;
		} else {
			buf_puts(err, "domain may hold only letters, digits, hyphens and dots");
			return false;
		}
	}
	if (label == 0 || at[dlen] == '-') {
		buf_puts(err, "domain has an empty or badly ended label");
		return false;
	}
	if (!buf_append(out, address, llen + 1 + dlen))
		panic("accounts: normalize buffer cap");
	str_lower(out->data);
	return true;
}

/* ---- LMDB ---- */

static void mdb_err(struct buf *err, const char *what, const char *path, int rc)
{
	buf_printf(err, "%s %s: %s", what, path, mdb_strerror(rc));
}

struct accounts *accounts_open(const char *path, bool writable, struct buf *err)
{
	struct accounts *db = xcalloc(1, sizeof *db);
	MDB_txn *txn = NULL;
	int rc;

	db->path = xstrdup(path);
	db->writable = writable;
	if ((rc = mdb_env_create(&db->env)) != 0) {
		mdb_err(err, "lmdb env", path, rc);
		goto fail;
	}
	mdb_env_set_mapsize(db->env, ACCOUNTS_MAPSIZE_INITIAL);
	rc = mdb_env_open(db->env, path, MDB_NOSUBDIR | (writable ? 0 : MDB_RDONLY), 0600);
	if (rc != 0) {
		mdb_err(err, "open", path, rc);
		goto fail;
	}
	/* Daemons that exit (maxuse, idle, kill -9) leave their reader slot behind; LMDB has 126, and a full table
	 * fails every lookup. Clearing the slots of dead processes at each open keeps it from filling. */
	(void)mdb_reader_check(db->env, NULL);
	if ((rc = mdb_txn_begin(db->env, NULL, writable ? 0 : MDB_RDONLY, &txn)) != 0) {
		mdb_err(err, "open", path, rc);
		goto fail;
	}
	if ((rc = mdb_dbi_open(txn, NULL, 0, &db->dbi)) != 0) {
		mdb_txn_abort(txn);
		mdb_err(err, "open", path, rc);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {	/* frees txn even on failure */
		mdb_err(err, "open", path, rc);
		goto fail;
	}
	return db;
fail:
	accounts_close(&db);
	return NULL;
}

void accounts_close(struct accounts **dbp)
{
	struct accounts *db = *dbp;
	if (db == NULL)
		return;
	if (db->env)
		mdb_env_close(db->env);
	free(db->path);
	free(db);
	*dbp = NULL;
}

/* Begin a transaction; a reader whose map another process grew adopts the new size and retries. */
static int txn_begin(struct accounts *db, bool write, MDB_txn **txn)
{
	int rc = mdb_txn_begin(db->env, NULL, write ? 0 : MDB_RDONLY, txn);
	if (rc == MDB_MAP_RESIZED) {
		mdb_env_set_mapsize(db->env, 0);
		rc = mdb_txn_begin(db->env, NULL, write ? 0 : MDB_RDONLY, txn);
	}
	return rc;
}

static bool key_for(const char *address, struct buf *key, struct buf *err)
{
	struct buf e = BUF_INIT(256);
	bool ok = accounts_normalize(address, key, &e);
	if (!ok)
		buf_printf(err, "%s: %s", log_safe(address, strlen(address), 80), buf_cstr(&e));
	buf_free(&e);
	return ok;
}

enum accounts_result accounts_get(struct accounts *db, const char *address, struct accounts_user *out,
                                  struct buf *err)
{
	struct buf key = BUF_INIT(ACCOUNTS_ADDRESS_MAX);
	enum accounts_result res = ACCOUNTS_ERROR;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	memset(out, 0, sizeof *out);
	if (!key_for(address, &key, err))
		goto out;
	if ((rc = txn_begin(db, false, &txn)) != 0) {
		mdb_err(err, "read", db->path, rc);
		goto out;
	}
	k.mv_data = key.data;
	k.mv_size = key.len;
	rc = mdb_get(txn, db->dbi, &k, &v);
	if (rc == MDB_NOTFOUND) {
		res = ACCOUNTS_NOTFOUND;
	} else if (rc != 0) {
		mdb_err(err, "read", db->path, rc);
	} else if (!accounts_record_decode(v.mv_data, v.mv_size, out, err)) {
		buf_printf(err, " (key %s)", buf_cstr(&key));
	} else {
		out->address = xstrdup(buf_cstr(&key));
		res = ACCOUNTS_OK;
	}
	mdb_txn_abort(txn);
out:
	buf_free(&key);
	return res;
}

static int64_t now_seconds(void)
{
	return (int64_t)time(NULL);
}

/* One write transaction: replace (or with must_be_new, insert) the record; grows the map when full. */
static enum accounts_result write_record(struct accounts *db, const struct accounts_user *u, bool must_be_new,
                                         struct buf *err)
{
	struct buf rec = BUF_INIT(BUF_NOLIMIT);
	struct accounts_user cur;
	struct accounts_user copy = *u;
	enum accounts_result res = ACCOUNTS_ERROR;
	MDB_txn *txn = NULL;
	MDB_val k, v;
	int rc;

	if (!db->writable) {
		buf_printf(err, "%s: opened read-only", db->path);
		return ACCOUNTS_ERROR;
	}
	for (int attempt = 0; attempt < 8; attempt++) {
		if ((rc = txn_begin(db, true, &txn)) != 0) {
			mdb_err(err, "write", db->path, rc);
			goto out;
		}
		k.mv_data = u->address;
		k.mv_size = strlen(u->address);
		copy.changed = now_seconds();
		copy.created = copy.changed;
		rc = mdb_get(txn, db->dbi, &k, &v);
		if (rc == 0) {
			if (must_be_new) {
				mdb_txn_abort(txn);
				res = ACCOUNTS_EXISTS;
				goto out;
			}
			/* Keep the original creation time even when the old record no longer decodes. */
			if (accounts_record_decode(v.mv_data, v.mv_size, &cur, NULL))
				copy.created = cur.created;
			accounts_user_free(&cur);
		} else if (rc != MDB_NOTFOUND) {
			mdb_txn_abort(txn);
			mdb_err(err, "read", db->path, rc);
			goto out;
		}
		accounts_record_encode(&copy, &rec);
		v.mv_data = rec.data;
		v.mv_size = rec.len;
		/* a failed commit frees the transaction itself; a failed put leaves it to us */
		if ((rc = mdb_put(txn, db->dbi, &k, &v, 0)) == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		txn = NULL;
		if (rc == 0) {
			res = ACCOUNTS_OK;
			goto out;
		}
		if (rc != MDB_MAP_FULL) {
			mdb_err(err, "write", db->path, rc);
			goto out;
		}
		MDB_envinfo info;
		mdb_env_info(db->env, &info);
		if (info.me_mapsize >= ACCOUNTS_MAPSIZE_MAX || mdb_env_set_mapsize(db->env, info.me_mapsize * 2) != 0) {
			mdb_err(err, "write", db->path, MDB_MAP_FULL);
			goto out;
		}
	}
	buf_printf(err, "write %s: map keeps filling", db->path);
out:
	if (rec.data)
		explicit_bzero(rec.data, rec.len);
	buf_free(&rec);
	return res;
}

/* Refuse what the decoder would refuse, so a record written is always a record that reads back. */
static bool user_valid(const struct accounts_user *u, struct buf *err)
{
	struct buf norm = BUF_INIT(ACCOUNTS_ADDRESS_MAX);
	bool ok = u->address && accounts_normalize(u->address, &norm, err) && strcmp(norm.data, u->address) == 0;

	buf_free(&norm);
	if (!ok) {
		buf_puts(err, " (account address must be valid and normalized)");
		return false;
	}
	if (u->password_hash == NULL || strlen(u->password_hash) > ACCOUNTS_HASH_MAX) {
		buf_puts(err, "bad password hash");
		return false;
	}
	for (const char *p = u->password_hash; *p; p++)
		if (*p < 0x20 || *p > 0x7e) {
			buf_puts(err, "bad password hash");
			return false;
		}
	if (u->maildir == NULL || u->maildir[0] != '/' || strlen(u->maildir) > ACCOUNTS_PATH_MAX) {
		buf_puts(err, "maildir must be an absolute path of at most 4095 bytes");
		return false;
	}
	if (u->apop_secret && (u->apop_secret[0] == '\0' || strlen(u->apop_secret) > ACCOUNTS_SECRET_MAX)) {
		buf_puts(err, "APOP secret must be 1 to 255 bytes");
		return false;
	}
	return true;
}

enum accounts_result accounts_put(struct accounts *db, const struct accounts_user *u, struct buf *err)
{
	if (!user_valid(u, err))
		return ACCOUNTS_ERROR;
	return write_record(db, u, false, err);
}

enum accounts_result accounts_delete(struct accounts *db, const char *address, struct buf *err)
{
	struct buf key = BUF_INIT(ACCOUNTS_ADDRESS_MAX);
	enum accounts_result res = ACCOUNTS_ERROR;
	MDB_txn *txn;
	MDB_val k;
	int rc;

	if (!db->writable) {
		buf_printf(err, "%s: opened read-only", db->path);
		goto out;
	}
	if (!key_for(address, &key, err))
		goto out;
	if ((rc = txn_begin(db, true, &txn)) != 0) {
		mdb_err(err, "write", db->path, rc);
		goto out;
	}
	k.mv_data = key.data;
	k.mv_size = key.len;
	rc = mdb_del(txn, db->dbi, &k, NULL);
	if (rc == MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		res = ACCOUNTS_NOTFOUND;
	} else if (rc != 0) {
		mdb_txn_abort(txn);
		mdb_err(err, "delete in", db->path, rc);
	} else if ((rc = mdb_txn_commit(txn)) != 0) {
		mdb_err(err, "commit", db->path, rc);
	} else {
		res = ACCOUNTS_OK;
	}
out:
	buf_free(&key);
	return res;
}

enum accounts_result accounts_foreach(struct accounts *db, bool (*fn)(const struct accounts_user *u, void *arg),
                                      void *arg, struct buf *err)
{
	enum accounts_result res = ACCOUNTS_OK;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = txn_begin(db, false, &txn)) != 0) {
		mdb_err(err, "read", db->path, rc);
		return ACCOUNTS_ERROR;
	}
	if ((rc = mdb_cursor_open(txn, db->dbi, &cur)) != 0) {
		mdb_txn_abort(txn);
		mdb_err(err, "read", db->path, rc);
		return ACCOUNTS_ERROR;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct accounts_user u;
		bool more;
		if (!accounts_record_decode(v.mv_data, v.mv_size, &u, err)) {
			buf_printf(err, " (key %s)", log_safe(k.mv_data, k.mv_size, 80));
			res = ACCOUNTS_ERROR;
			break;
		}
		u.address = xstrndup(k.mv_data, k.mv_size);
		more = fn(&u, arg);
		accounts_user_free(&u);
		if (!more)
			break;
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_err(err, "read", db->path, rc);
		res = ACCOUNTS_ERROR;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return res;
}

/* ---- convenience writes ---- */

enum accounts_result accounts_add(struct accounts *db, const char *address, const char *password,
                                  const struct accounts_opts *opts, struct buf *err)
{
	static const struct accounts_opts defaults;
	struct buf key = BUF_INIT(ACCOUNTS_ADDRESS_MAX);
	struct buf path = BUF_INIT(ACCOUNTS_PATH_MAX);
	struct accounts_user u;
	enum accounts_result res = ACCOUNTS_ERROR;

	memset(&u, 0, sizeof u);
	if (opts == NULL)
		opts = &defaults;
	if (!key_for(address, &key, err))
		goto out;
	if (opts->maildir) {
		if (opts->maildir[0] != '/' || !buf_puts(&path, opts->maildir) ||
		    (path.data[path.len - 1] != '/' && !buf_putc(&path, '/'))) {
			buf_puts(err, "maildir must be an absolute path of at most 4095 bytes");
			goto out;
		}
	} else {
		const char *at = strchr(key.data, '@');
		if (opts->mail_directory == NULL || opts->mail_directory[0] != '/' ||
		    !buf_printf(&path, "%s/%s/%.*s/", opts->mail_directory, at + 1, (int)(at - key.data), key.data)) {
			buf_puts(err, "no usable mail_directory for the default maildir (must be an absolute path)");
			goto out;
		}
	}
	if ((u.password_hash = accounts_hash_password(password, opts->scheme, err)) == NULL)
		goto out;
	u.address = key.data;
	u.maildir = path.data;
	u.uid = opts->uid;
	u.gid = opts->gid;
	u.quota = opts->quota;
	u.enabled = !opts->disabled;
	res = user_valid(&u, err) ? write_record(db, &u, true, err) : ACCOUNTS_ERROR;
	if (res == ACCOUNTS_EXISTS)
		buf_printf(err, "%s: account exists", key.data);
	explicit_bzero(u.password_hash, strlen(u.password_hash));
	free(u.password_hash);
out:
	buf_free(&key);
	buf_free(&path);
	return res;
}

/* Read-modify-write of one account. The read and the write are separate transactions; `postern user` is the
 * only writer, and a concurrent change in between is overwritten, which for these admin edits is acceptable. */
static enum accounts_result modify(struct accounts *db, const char *address, void (*edit)(struct accounts_user *,
                                   const void *), const void *arg, struct buf *err)
{
	struct accounts_user u;
	enum accounts_result res = accounts_get(db, address, &u, err);

	if (res != ACCOUNTS_OK)
		return res;
	edit(&u, arg);
	res = accounts_put(db, &u, err);
	accounts_user_free(&u);
	return res;
}

static void edit_hash(struct accounts_user *u, const void *arg)
{
	if (u->password_hash)
		explicit_bzero(u->password_hash, strlen(u->password_hash));
	free(u->password_hash);
	u->password_hash = xstrdup(arg);
}

static void edit_enabled(struct accounts_user *u, const void *arg)
{
	u->enabled = *(const bool *)arg;
}

static void edit_apop(struct accounts_user *u, const void *arg)
{
	if (u->apop_secret)
		explicit_bzero(u->apop_secret, strlen(u->apop_secret));
	free(u->apop_secret);
	u->apop_secret = arg ? xstrdup(arg) : NULL;
}

enum accounts_result accounts_set_password(struct accounts *db, const char *address, const char *password,
                                           const char *scheme, struct buf *err)
{
	char *hash = accounts_hash_password(password, scheme, err);
	enum accounts_result res;

	if (hash == NULL)
		return ACCOUNTS_ERROR;
	res = modify(db, address, edit_hash, hash, err);
	explicit_bzero(hash, strlen(hash));
	free(hash);
	return res;
}

enum accounts_result accounts_set_enabled(struct accounts *db, const char *address, bool enabled, struct buf *err)
{
	return modify(db, address, edit_enabled, &enabled, err);
}

enum accounts_result accounts_set_apop(struct accounts *db, const char *address, const char *secret,
                                       struct buf *err)
{
	if (secret && (secret[0] == '\0' || strlen(secret) > ACCOUNTS_SECRET_MAX)) {
		buf_puts(err, "APOP secret must be 1 to 255 bytes");
		return ACCOUNTS_ERROR;
	}
	return modify(db, address, edit_apop, secret, err);
}

enum accounts_result accounts_verify(struct accounts *db, const char *address, const char *password,
                                     struct accounts_user *out, struct buf *err)
{
	struct accounts_user u;
	enum accounts_result res;
	struct buf e = BUF_INIT(1024);

	if (out)
		memset(out, 0, sizeof *out);
	/* A malformed address is just an unknown user to a client. */
	struct buf norm = BUF_INIT(ACCOUNTS_ADDRESS_MAX);
	if (!accounts_normalize(address, &norm, &e)) {
		memset(&u, 0, sizeof u);
		res = ACCOUNTS_NOTFOUND;
	} else {
		buf_reset(&e);
		res = accounts_get(db, address, &u, &e);
	}
	buf_free(&norm);
	if (res != ACCOUNTS_OK) {
		accounts_dummy_verify(password);
		if (res == ACCOUNTS_ERROR)
			buf_puts(err, buf_cstr(&e));
		buf_free(&e);
		return res;
	}
	buf_free(&e);
	if (!accounts_check_hash(password, u.password_hash)) {
		accounts_user_free(&u);
		return ACCOUNTS_BADPASS;
	}
	res = u.enabled ? ACCOUNTS_OK : ACCOUNTS_DISABLED;
	if (out)
		*out = u;
	else
		accounts_user_free(&u);
	return res;
}
