/* Lookup tables: source parser, atomic LMDB compiler, and the reopening reader; see table.h. */
#include "table.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "str.h"

/* ================================================================ parser */

static bool is_blank(int c)
{
	return c == ' ' || c == '\t';
}

struct parser {
	const char *name;
	enum table_syntax syntax;
	table_entry_fn *fn;
	void *arg;
	struct buf *err;
	struct buf logical;	/* the entry being assembled from its physical lines */
	unsigned start;		/* line where it began; 0 when none is pending */
	struct buf key;
};

static bool perr(struct parser *p, unsigned line, const char *what, const char *detail)
{
	if (p->err) {
		buf_reset(p->err);
		buf_printf(p->err, "%s:%u: %s", p->name, line, what);
		if (detail) {
			buf_puts(p->err, " \"");
			buf_append_printable(p->err, detail, strlen(detail), 64);
			buf_puts(p->err, "\"");
		}
	}
	return false;
}

static void trim_tail(struct buf *b)
{
	while (b->len > 0 && (is_blank((unsigned char)b->data[b->len - 1])))
		b->len--;
	if (b->data)
		b->data[b->len] = '\0';
}

static bool set_key(struct parser *p, unsigned line, const char *k, size_t n)
{
	if (n == 0)
		return perr(p, line, "empty key", NULL);
	if (n > TABLE_KEY_MAX)
		return perr(p, line, "key longer than " "511" " bytes", NULL);
	buf_reset(&p->key);
	for (size_t i = 0; i < n; i++)
		buf_putc(&p->key, str_ascii_lower((unsigned char)k[i]));
	return true;
}

static const char *skip_blanks(const char *s)
{
	while (is_blank((unsigned char)*s))
		s++;
	return s;
}

/* "key value..." */
static bool entry_postmap(struct parser *p, const char *s, unsigned line)
{
	const char *k = s, *v;
	while (*s && !is_blank((unsigned char)*s))
		s++;
	if (!set_key(p, line, k, (size_t)(s - k)))
		return false;
	v = skip_blanks(s);
	if (*v == '\0')
		return perr(p, line, "expected \"key value\", got only a key:", buf_cstr(&p->key));
	p->fn(buf_cstr(&p->key), p->key.len, v, strlen(v), line, p->arg);
	return true;
}

/* name: target, target   The name may be a quoted string with backslash escapes (sendmail's aliases); targets
 * are kept verbatim: local interprets them (:include:, |command, /file). */
static bool entry_aliases(struct parser *p, const char *s, unsigned line)
{
	struct buf name = BUF_INIT(TABLE_KEY_MAX + 1);
	const char *v;
	bool ok;

	if (*s == '"') {
		for (s++; *s && *s != '"'; s++) {
			if (*s == '\\' && s[1])
				s++;
			if (!buf_putc(&name, *s)) {
				buf_free(&name);
				return perr(p, line, "key longer than 511 bytes", NULL);
			}
		}
		if (*s != '"') {
			buf_free(&name);
			return perr(p, line, "unterminated quoted name", NULL);
		}
		s = skip_blanks(s + 1);
	} else {
		for (; *s && *s != ':' && !is_blank((unsigned char)*s); s++)
			if (!buf_putc(&name, *s)) {
				buf_free(&name);
				return perr(p, line, "key longer than 511 bytes", NULL);
			}
		s = skip_blanks(s);
	}
	if (*s != ':') {
		ok = perr(p, line, "expected \"name: target, ...\" after", buf_cstr(&name));
		buf_free(&name);
		return ok;
	}
	ok = set_key(p, line, name.data ? name.data : "", name.len);
	buf_free(&name);
	if (!ok)
		return false;
	v = skip_blanks(s + 1);
	if (*v == '\0')
		return perr(p, line, "no targets for", buf_cstr(&p->key));
	p->fn(buf_cstr(&p->key), p->key.len, v, strlen(v), line, p->arg);
	return true;
}

static bool flush(struct parser *p)
{
	bool ok;
	if (p->start == 0)
		return true;
	trim_tail(&p->logical);
	if (p->syntax == TABLE_ALIASES)
		ok = entry_aliases(p, buf_cstr(&p->logical), p->start);
	else
		ok = entry_postmap(p, buf_cstr(&p->logical), p->start);
	buf_reset(&p->logical);
	p->start = 0;
	return ok;
}

bool table_parse(const char *name, const char *src, size_t len, enum table_syntax syntax, table_entry_fn *fn,
                 void *arg, struct buf *err)
{
	struct parser p = { name, syntax, fn, arg, err, BUF_INIT(TABLE_LINE_MAX), 0, BUF_INIT(TABLE_KEY_MAX + 1) };
	unsigned line = 0;
	size_t pos = 0;
	bool ok = true;

	while (ok && pos < len) {
		const char *l = src + pos, *nl = memchr(l, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - l) : len - pos;
		pos += n + (nl != NULL);
		if (line == UINT_MAX) {
			ok = perr(&p, line, "too many lines", NULL);
			break;
		}
		line++;
		if (n > 0 && l[n - 1] == '\r')	/* CRLF files from other systems */
			n--;
		if (memchr(l, '\0', n)) {
			ok = perr(&p, line, "NUL byte in line", NULL);
			break;
		}
		size_t i = 0;
		while (i < n && is_blank((unsigned char)l[i]))
			i++;
		/* Blank and comment lines are skipped and do not end a pending entry (as Postfix does). */
		if (i == n || l[i] == '#')
			continue;
		if (i > 0) {
			if (p.start == 0) {
				ok = perr(&p, line, "continuation line without an entry before it", NULL);
				break;
			}
			if (!buf_putc(&p.logical, ' ') || !buf_append(&p.logical, l + i, n - i)) {
				ok = perr(&p, p.start, "entry longer than 65536 bytes", NULL);
				break;
			}
			continue;
		}
		if (!(ok = flush(&p)))
			break;
		p.start = line;
		if (!buf_append(&p.logical, l, n)) {
			ok = perr(&p, line, "entry longer than 65536 bytes", NULL);
			break;
		}
	}
	if (ok)
		ok = flush(&p);
	buf_free(&p.logical);
	buf_free(&p.key);
	return ok;
}

/* ================================================================ compiler */

struct entry {
	char *key, *value;
	size_t keylen, vallen;
	unsigned line;
};

struct entries {
	struct entry *v;
	size_t n, cap;
	size_t bytes;
};

static void collect(const char *key, size_t keylen, const char *value, size_t vallen, unsigned line, void *arg)
{
	struct entries *e = arg;
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 64;
		e->v = xreallocarray(e->v, e->cap, sizeof(*e->v));
	}
	e->v[e->n++] = (struct entry){ xmemdup(key, keylen + 1), xmemdup(value, vallen + 1), keylen, vallen, line };
	e->bytes += keylen + vallen;
}

static void entries_free(struct entries *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->v[i].key);
		free(e->v[i].value);
	}
	free(e->v);
}

static bool read_source(const char *path, struct buf *src, struct buf *err)
{
	char chunk[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0) {
		buf_printf(err, "%s: cannot open: %s", path, strerror(errno));
		return false;
	}
	while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			buf_printf(err, "%s: read: %s", path, strerror(errno));
			close(fd);
			return false;
		}
		if (!buf_append(src, chunk, (size_t)r)) {
			buf_printf(err, "%s: larger than %zu bytes", path, (size_t)TABLE_SOURCE_MAX);
			close(fd);
			return false;
		}
	}
	close(fd);
	return true;
}

/* Write every entry into a fresh environment at tmp. MDB_NOLOCK: the file is private until the rename, and
 * readers never share a live writer with it (tables are replaced, not updated), so no lock file is needed. */
static int write_db(const char *tmp, const struct entries *e, size_t mapsize, const char *src_path,
                    size_t *count, struct buf *warn)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	int rc;
	size_t distinct = 0;

	if ((rc = mdb_env_create(&env)) != 0)
		return rc;
	if ((rc = mdb_env_set_mapsize(env, mapsize)) != 0 ||
	    (rc = mdb_env_open(env, tmp, MDB_NOSUBDIR | MDB_NOLOCK, 0600)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 || (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0)
		goto out;
	for (size_t i = 0; i < e->n; i++) {
		MDB_val k = { e->v[i].keylen, e->v[i].key }, v = { e->v[i].vallen, e->v[i].value };
		rc = mdb_put(txn, dbi, &k, &v, MDB_NOOVERWRITE);
		if (rc == MDB_KEYEXIST) {
			if (warn)
				buf_printf(warn, "%s:%u: duplicate key \"%s\"; this later entry replaces the earlier one\n",
				           src_path, e->v[i].line, log_safe(e->v[i].key, e->v[i].keylen, 64));
			v = (MDB_val){ e->v[i].vallen, e->v[i].value };
			rc = mdb_put(txn, dbi, &k, &v, 0);
		} else if (rc == 0) {
			distinct++;
		}
		if (rc != 0)
			goto out;
	}
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc == 0)
		rc = mdb_env_sync(env, 1);
out:
	if (txn)
		mdb_txn_abort(txn);
	mdb_env_close(env);
	if (rc == 0 && count)
		*count = distinct;
	return rc;
}

static bool fsync_dir_of(const char *path, struct buf *err)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? (slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path))) : xstrdup(".");
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	bool ok = fd >= 0 && fsync(fd) == 0;

	if (!ok)
		buf_printf(err, "%s: fsync directory: %s", dir, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(dir);
	return ok;
}

bool table_compile(const char *src_path, const char *dst_path, enum table_syntax syntax, size_t *count,
                   struct buf *err, struct buf *warn)
{
	struct buf src = BUF_INIT(TABLE_SOURCE_MAX);
	struct buf dupwarn = BUF_INIT(BUF_NOLIMIT);
	struct entries e = { 0 };
	char *dst = NULL, *tmp = NULL;
	struct stat st;
	bool ok = false;
	int fd = -1, rc;
	size_t mapsize;

	buf_reset(err);
	if (!read_source(src_path, &src, err))
		goto out;
	if (!table_parse(src_path, src.data ? src.data : "", src.len, syntax, collect, &e, err))
		goto out;
	if (dst_path) {
		dst = xstrdup(dst_path);
	} else {
		struct buf b = BUF_INIT(BUF_NOLIMIT);
		buf_printf(&b, "%s.lmdb", src_path);
		dst = buf_steal(&b, NULL);
	}
	{
		struct buf b = BUF_INIT(BUF_NOLIMIT);
		buf_printf(&b, "%s.XXXXXX", dst);
		tmp = buf_steal(&b, NULL);
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		buf_printf(err, "%s: cannot create: %s", tmp, strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	/* A private source map stays private; a table compiled by root belongs to the source's owner so a daemon
	 * that can read the source can read the table. */
	if (stat(src_path, &st) == 0) {
		(void)fchmod(fd, st.st_mode & 0666);
		if (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) != 0)
			log_warn("%s: chown: %s", tmp, strerror(errno));
	}
	close(fd);
	fd = -1;

	/* Room for keys, values and B-tree overhead; grown and retried when LMDB still runs out. The size only
	 * reserves address space: the file grows as pages are written. */
	mapsize = ((e.bytes + e.n * 64) * 2 + ((size_t)1 << 20) + 4095) & ~(size_t)4095;
	for (int attempt = 0;; attempt++) {
		buf_reset(&dupwarn);
		rc = write_db(tmp, &e, mapsize, src_path, count, &dupwarn);
		if (rc != MDB_MAP_FULL || attempt == 8)
			break;
		mapsize *= 2;
		if (truncate(tmp, 0) != 0) {
			buf_printf(err, "%s: truncate: %s", tmp, strerror(errno));
			goto out;
		}
	}
	if (rc != 0) {
		buf_printf(err, "%s: write: %s", tmp, mdb_strerror(rc));
		goto out;
	}
	if (rename(tmp, dst) != 0) {
		buf_printf(err, "rename %s to %s: %s", tmp, dst, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	if (!fsync_dir_of(dst, err))
		goto out;
	if (warn && dupwarn.len)
		buf_append(warn, dupwarn.data, dupwarn.len);
	ok = true;
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(dst);
	entries_free(&e);
	buf_free(&src);
	buf_free(&dupwarn);
	return ok;
}

/* ================================================================ reader */

struct table {
	char *path;
	MDB_env *env;
	MDB_dbi dbi;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	off_t size;
	struct buf err;
	struct buf key;
};

const char *table_path(const struct table *t)
{
	return t->path;
}

const char *table_error(const struct table *t)
{
	return buf_cstr(&t->err);
}

static void set_err(struct table *t, const char *fmt, ...) LOG_PRINTF(2, 3);
static void set_err(struct table *t, const char *fmt, ...)
{
	va_list ap;
	buf_reset(&t->err);
	va_start(ap, fmt);
	buf_vprintf(&t->err, fmt, ap);
	va_end(ap);
}

/* Open the file at t->path into a new environment and record which file it was; the old environment is kept
 * until the new one is ready, so a failed reopen leaves a working (if stale) table only for the error path. */
static bool env_load(struct table *t)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	struct stat st;
	int rc;

	if (stat(t->path, &st) != 0) {
		set_err(t, "%s: %s", t->path, strerror(errno));
		return false;
	}
	if ((rc = mdb_env_create(&env)) != 0 ||
	    (rc = mdb_env_open(env, t->path, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK, 0)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0 || (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0) {
		set_err(t, "%s: cannot open table: %s", t->path, mdb_strerror(rc));
		if (txn)
			mdb_txn_abort(txn);
		if (env)
			mdb_env_close(env);
		return false;
	}
	mdb_txn_abort(txn);
	if (t->env)
		mdb_env_close(t->env);
	t->env = env;
	t->dbi = dbi;
	/* The identity recorded is the one stat() saw before opening: if the file was replaced in between, the
	 * next lookup notices and opens again. */
	t->dev = st.st_dev;
	t->ino = st.st_ino;
	t->mtime = st.st_mtim;
	t->size = st.st_size;
	return true;
}

struct table *table_open(const char *path, struct buf *err)
{
	struct table *t = xcalloc(1, sizeof(*t));
	size_t n = strlen(path);

	buf_init(&t->err, 1024);
	buf_init(&t->key, TABLE_KEY_MAX + 1);
	if (n >= 5 && strcmp(path + n - 5, ".lmdb") == 0) {
		t->path = xstrdup(path);
	} else {
		struct buf b = BUF_INIT(BUF_NOLIMIT);
		buf_printf(&b, "%s.lmdb", path);
		t->path = buf_steal(&b, NULL);
	}
	if (!env_load(t)) {
		if (err) {
			buf_reset(err);
			buf_puts(err, buf_cstr(&t->err));
		}
		table_close(&t);
		return NULL;
	}
	return t;
}

void table_close(struct table **tp)
{
	struct table *t = *tp;
	if (!t)
		return;
	if (t->env)
		mdb_env_close(t->env);
	free(t->path);
	buf_free(&t->err);
	buf_free(&t->key);
	free(t);
	*tp = NULL;
}

/* A compiled table is only ever replaced by rename, so a different inode (or, defensively, a changed mtime or
 * size of the same inode) means a new table. One stat per lookup is far cheaper than the mail work around it. */
static bool refresh(struct table *t)
{
	struct stat st;
	if (stat(t->path, &st) != 0) {
		set_err(t, "%s: %s", t->path, strerror(errno));
		return false;
	}
	if (st.st_dev == t->dev && st.st_ino == t->ino && st.st_size == t->size &&
	    st.st_mtim.tv_sec == t->mtime.tv_sec && st.st_mtim.tv_nsec == t->mtime.tv_nsec)
		return true;
	return env_load(t);
}

enum table_result table_lookup(struct table *t, const char *key, struct buf *value)
{
	MDB_txn *txn;
	MDB_val k, v;
	size_t n = strlen(key);
	int rc;

	buf_reset(value);
	if (!refresh(t))
		return TABLE_ERROR;
	if (n == 0 || n > TABLE_KEY_MAX)
		return TABLE_NOTFOUND;	/* such a key cannot have been compiled */
	buf_reset(&t->key);
	for (size_t i = 0; i < n; i++)
		buf_putc(&t->key, str_ascii_lower((unsigned char)key[i]));
	if ((rc = mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn)) != 0) {
		set_err(t, "%s: %s", t->path, mdb_strerror(rc));
		return TABLE_ERROR;
	}
	k = (MDB_val){ t->key.len, t->key.data };
	rc = mdb_get(txn, t->dbi, &k, &v);
	if (rc == MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return TABLE_NOTFOUND;
	}
	if (rc != 0) {
		set_err(t, "%s: lookup: %s", t->path, mdb_strerror(rc));
		mdb_txn_abort(txn);
		return TABLE_ERROR;
	}
	if (!buf_append(value, v.mv_data, v.mv_size)) {
		set_err(t, "%s: value of \"%s\" longer than %zu bytes", t->path, log_safe(key, n, 64), value->max);
		mdb_txn_abort(txn);
		buf_reset(value);
		return TABLE_ERROR;
	}
	mdb_txn_abort(txn);
	return TABLE_FOUND;
}

bool table_foreach(struct table *t, table_entry_fn *fn, void *arg)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if (!refresh(t))
		return false;
	if ((rc = mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn)) != 0 ||
	    (rc = mdb_cursor_open(txn, t->dbi, &cur)) != 0) {
		set_err(t, "%s: %s", t->path, mdb_strerror(rc));
		if (txn)
			mdb_txn_abort(txn);
		return false;
	}
	struct buf key = BUF_INIT(TABLE_KEY_MAX + 1), val = BUF_INIT(BUF_NOLIMIT);
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		/* copies: the callback gets NUL-terminated strings, and LMDB's pages are read-only maps */
		buf_reset(&key);
		buf_reset(&val);
		buf_append(&key, k.mv_data, k.mv_size);
		buf_append(&val, v.mv_data, v.mv_size);
		fn(buf_cstr(&key), key.len, buf_cstr(&val), val.len, 0, arg);
	}
	buf_free(&key);
	buf_free(&val);
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc != MDB_NOTFOUND) {
		set_err(t, "%s: %s", t->path, mdb_strerror(rc));
		return false;
	}
	return true;
}

enum table_result table_lookup_addr(struct table *t, const char *addr, const char *delims, unsigned flags,
                                    struct buf *value, struct buf *matched)
{
	const char *at = strrchr(addr, '@');
	size_t locallen = at ? (size_t)(at - addr) : strlen(addr);
	size_t baselen = locallen;	/* local part without the extension */
	struct buf key = BUF_INIT(BUF_NOLIMIT);
	enum table_result r = TABLE_NOTFOUND;
	/* form: 0 user+ext@domain, 1 user@domain, 2 user+ext, 3 user, 4 @domain */
	static const unsigned need[] = { TABLE_ADDR_FULL, TABLE_ADDR_FULL, TABLE_ADDR_LOCAL, TABLE_ADDR_LOCAL,
		                         TABLE_ADDR_DOMAIN };

	if (delims && *delims) {
		for (size_t i = 1; i < locallen; i++)
			if (strchr(delims, addr[i])) {
				baselen = i;
				break;
			}
	}
	for (int form = 0; form < 5 && r == TABLE_NOTFOUND; form++) {
		if (!(flags & need[form]))
			continue;
		if ((form == 0 || form == 1 || form == 4) && (!at || at[1] == '\0'))
			continue;
		if ((form == 1 || form == 3) && baselen == locallen)
			continue;	/* no extension: same key as the form before */
		if ((form == 3 || form == 2) && locallen == 0)
			continue;
		buf_reset(&key);
		switch (form) {
		case 0: buf_puts(&key, addr); break;
		case 1: buf_append(&key, addr, baselen); buf_puts(&key, at); break;
		case 2: buf_append(&key, addr, locallen); break;
		case 3: buf_append(&key, addr, baselen); break;
		case 4: buf_puts(&key, at); break;
		}
		r = table_lookup(t, buf_cstr(&key), value);
		if (r == TABLE_FOUND && matched) {
			buf_reset(matched);
			buf_append(matched, key.data, key.len);
			if (matched->data)
				str_lower(matched->data);
		}
	}
	buf_free(&key);
	return r;
}
