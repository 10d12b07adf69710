/* A per-folder cache of the ENVELOPE, BODY and BODYSTRUCTURE strings FETCH sends and of the message headers
 * header SEARCH keys read (postern-cache.lmdb beside the index), so doing either again for a large mailbox does
 * not open and parse every message. A message's text never changes under its UID, so entries are keyed by
 * UIDVALIDITY and UID and never go stale; they are dropped with the message on expunge. The cache is optional:
 * when it cannot be opened or written, FETCH and SEARCH just parse, and a damaged cache file is thrown away.
 * Used by cmd_fetch.c, cmd_search.c and cmd_store.c. */
#ifndef POSTERN_IMAPD_FETCHCACHE_H
#define POSTERN_IMAPD_FETCHCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

#define IMAPD_FETCHCACHE_FILE "postern-cache.lmdb"
/* The format of the cached strings. Bump it whenever imap_envelope() or imap_bodystructure() output changes:
 * a cache of another format is emptied when opened. 2: ENVELOPE with source routes and comment names. */
#define IMAPD_FETCHCACHE_FORMAT 2u

/* HEADER: the raw top-level header block, for header SEARCH keys (cmd_search.c). */
enum imapd_fc_kind { IMAPD_FC_ENVELOPE = 1, IMAPD_FC_BODY = 2, IMAPD_FC_BODYSTRUCTURE = 3, IMAPD_FC_HEADER = 4 };

struct imapd_fcache;

/* NULL when the cache cannot be used (logged). */
struct imapd_fcache *imapd_fcache_open(const char *dir);
void imapd_fcache_close(struct imapd_fcache **cp);
/* A batch (one command's lookups and puts) shares transactions; puts become visible to other processes at
 * the latest at imapd_fcache_end(). Both accept NULL. */
void imapd_fcache_begin(struct imapd_fcache *c);
void imapd_fcache_end(struct imapd_fcache *c);
/* Append the cached string to out; false when absent. */
bool imapd_fcache_get(struct imapd_fcache *c, uint32_t uidvalidity, uint32_t uid, enum imapd_fc_kind kind,
		      struct buf *out);
void imapd_fcache_put(struct imapd_fcache *c, uint32_t uidvalidity, uint32_t uid, enum imapd_fc_kind kind,
		      const char *s, size_t n);
/* Everything FETCH and header SEARCH would cache for one message, from its text as stored (APPEND has the
 * message in hand, so the first FETCH or SEARCH of it opens no file). m, when not NULL, is the message already
 * parsed from data. */
struct mime_message;
void imapd_fcache_fill(struct imapd_fcache *c, uint32_t uidvalidity, uint32_t uid, const char *data, size_t len,
		       const struct mime_message *m);
/* The top-level header block alone (header SEARCH keys); skipped when bigger than is worth keeping. */
void imapd_fcache_put_header(struct imapd_fcache *c, uint32_t uidvalidity, uint32_t uid, const char *data,
			     size_t len);
/* Forget every entry of these UIDs. */
void imapd_fcache_drop(struct imapd_fcache *c, uint32_t uidvalidity, const uint32_t *uids, size_t n);

#endif
