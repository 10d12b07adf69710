/* Lookup tables: text maps (postmap style "key value" or aliases style "name: targets") compiled into read-only
 * LMDB files, and the read side every daemon uses (aliases, virtual maps, access and transport maps).
 * Called by `postern map`/`newaliases` (compile) and by smtpd, qmgr and local (lookups). */
#ifndef POSTERN_TABLE_H
#define POSTERN_TABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* LMDB's default key limit; a longer key is a compile error (it could never be looked up). */
#define TABLE_KEY_MAX 511
/* One logical line (an entry with its continuation lines) may not exceed this. */
#define TABLE_LINE_MAX 65536
/* Source files larger than this are refused rather than read into memory. */
#define TABLE_SOURCE_MAX ((size_t)1 << 30)

enum table_syntax {
	TABLE_POSTMAP,	/* key value...   (value = rest of the line) */
	TABLE_ALIASES,	/* name: target, target   (name may be "quoted") */
};

/* ---- compile side ---- */

/* Called once per entry in file order. key is lowercased (ASCII) and NUL-terminated, value is trimmed and
 * NUL-terminated (continuation lines joined by one space); line is where the entry starts. */
typedef void table_entry_fn(const char *key, size_t keylen, const char *value, size_t vallen, unsigned line,
                            void *arg);

/* Parse a whole source text. name is used in messages ("aliases:12: ..."). Stops at the first error, which goes
 * into err as "NAME:LINE: what is wrong"; entries before it have already been passed to fn. The compiler uses
 * this, so a fuzzer can exercise the syntax without touching the disk. */
bool table_parse(const char *name, const char *src, size_t len, enum table_syntax syntax, table_entry_fn *fn,
                 void *arg, struct buf *err);

/* Compile src_path into dst_path (NULL: src_path + ".lmdb") atomically: a temp file beside it is written, synced
 * and renamed over the old table, then the directory is synced, so readers see the old or the new table, never
 * a mix. On any error the old table stays. Duplicate keys add "FILE:LINE: duplicate key ..." to warn (the later
 * entry wins). The table gets the source's permission bits (and, when run as root, its owner). *count, if not
 * NULL, receives the number of distinct keys. */
bool table_compile(const char *src_path, const char *dst_path, enum table_syntax syntax, size_t *count,
                   struct buf *err, struct buf *warn);

/* ---- lookup side ---- */

struct table;

enum table_result {
	TABLE_FOUND,
	TABLE_NOTFOUND,
	TABLE_ERROR,	/* the table could not be read: callers must defer (temporary failure), not fall through */
};

/* Open a compiled table. path is the .lmdb file; a path not ending in ".lmdb" names the source map and gets
 * ".lmdb" appended. NULL with a message in err when it cannot be opened. Open after fork(), never before: an
 * LMDB environment must not be used in two processes. */
struct table *table_open(const char *path, struct buf *err);
void table_close(struct table **t);
const char *table_path(const struct table *t);
/* Text of the last TABLE_ERROR ("" when none). */
const char *table_error(const struct table *t);

/* Exact lookup (the key is lowercased first). The value replaces value's contents; a value longer than value's
 * cap is TABLE_ERROR. Every call checks (one stat) whether the file was replaced and then reopens it, so a
 * recompiled table takes effect in running daemons at once. */
enum table_result table_lookup(struct table *t, const char *key, struct buf *value);

/* Every entry in key order (line 0), for callers that must see all of a table up front (smtpd loads every
 * DKIM key before it drops privileges). False with table_error() when the table cannot be read. */
bool table_foreach(struct table *t, table_entry_fn *fn, void *arg);

/* Which forms table_lookup_addr() tries, most specific first:
 *   TABLE_ADDR_FULL   user+ext@domain, user@domain        (virtual maps, access maps)
 *   TABLE_ADDR_LOCAL  user+ext, user                      (aliases: the domain is already known to be local)
 *   TABLE_ADDR_DOMAIN @domain                             (catch-all of a virtual domain)
 * With several flags the order is always the one above. */
#define TABLE_ADDR_FULL   0x1u
#define TABLE_ADDR_LOCAL  0x2u
#define TABLE_ADDR_DOMAIN 0x4u

/* Look up an address (internal form, split at the last '@') by the mail rules. delims is the set of recipient
 * delimiter characters (e.g. "+" or "+-"; NULL or "" for none); the local part is split at the first of them,
 * unless it is the first character. Forms needing a domain are skipped for an address without one; forms
 * without an extension are skipped when there is none. The first form found wins; an error stops the search
 * (a temporary failure must not fall through to a less specific entry). matched, if not NULL, receives the key
 * that was found (lowercased, as stored). */
enum table_result table_lookup_addr(struct table *t, const char *addr, const char *delims, unsigned flags,
                                    struct buf *value, struct buf *matched);

#endif
