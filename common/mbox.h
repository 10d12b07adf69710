/* The per-mailbox index shared by pop3d and imapd: an LMDB file in the Maildir folder that maps IMAP UIDs to
 * Maildir file names (and back), with sizes, internal dates and modseqs, so a session opens a large mailbox
 * without reading message files. mbox_sync() folds in new deliveries and changes made by other Maildir tools.
 * UIDs are also written into the file names (",U=n") and UIDVALIDITY/UIDNEXT into postern-uidlist, so a lost
 * or damaged index is rebuilt with the same UIDs (see "Mailbox storage" in docs/ARCHITECTURE.md). */
#ifndef POSTERN_MBOX_H
#define POSTERN_MBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define MBOX_INDEX_FILE "postern-index.lmdb"
#define MBOX_UIDLIST_FILE "postern-uidlist"
#define MBOX_NAME_MAX 255

/* One message as the index knows it. name is the current file name in cur/ ("base,U=7:2,FLAGS"); flags points
 * into it (the letters after ":2,", "" when none). */
struct mbox_msg {
	uint32_t uid;
	uint64_t size;		/* S: bytes on disk */
	uint64_t wsize;		/* W: bytes with CRLF line ends (RFC822.SIZE, POP3 sizes) */
	int64_t idate;		/* internal date: delivery time (seconds since the epoch) */
	uint64_t modseq;
	char *name;
	const char *flags;
};

struct mbox;

/* Open (creating or rebuilding the index as needed) and sync the Maildir folder dir (holding cur/, new/, tmp/).
 * NULL with the reason in err. */
struct mbox *mbox_open(const char *dir, struct buf *err);
void mbox_close(struct mbox **mbp);
/* The index alone, not synced: for mbox_add. NULL (with err) when it cannot be opened; the caller falls back to
 * mbox_open. The message list is empty until a sync. */
struct mbox *mbox_open_nosync(const char *dir, struct buf *err);
/* APPEND without listing the folder: in one write transaction (the sync lock) take the next UID, move the
 * message written by *w into cur/ as "...,U=uid:2,flags" (fsync'd with its directory), and index it, so the
 * file gets its final name in one rename and opening a large folder for each APPEND costs no scan. 1: done
 * (*uid, *name set); 0: the index needs a sync or rebuild first (*w untouched: sync and maildir_commit as
 * usual); -1: failed (*w consumed, reason in err). */
struct maildir_writer;
int mbox_add(struct mbox *mb, struct maildir_writer **w, const char *flags, uint32_t *uid, char **name,
             struct buf *err);
/* Pick up files in new/ (moved to cur/ with ":2," and given UIDs in arrival order), files that appeared in or
 * vanished from cur/, and renames (flag changes by another tool); then reload the message list. Safe against
 * concurrent syncs and deliveries: LMDB serializes writers, and a file delivered meanwhile shows up next time. */
bool mbox_sync(struct mbox *mb, struct buf *err);

uint32_t mbox_uidvalidity(const struct mbox *mb);
uint32_t mbox_uidnext(const struct mbox *mb);
uint64_t mbox_highestmodseq(const struct mbox *mb);
/* The message list of the last sync, in UID order. */
size_t mbox_count(const struct mbox *mb);
const struct mbox_msg *mbox_get(const struct mbox *mb, size_t i);
/* Index of uid in the list, or (size_t)-1. */
size_t mbox_find(const struct mbox *mb, uint32_t uid);

/* Open message i read-only; when another tool has renamed the file since the last sync, the folder is synced
 * and the open retried once. -1 with err when the message is gone. */
int mbox_msg_open(struct mbox *mb, size_t i, struct buf *err);
/* Remove the files of these UIDs (also when renamed meanwhile) and their index entries, fsync cur/. UIDs
 * already gone are not an error. The message list is reloaded. */
bool mbox_expunge(struct mbox *mb, const uint32_t *uids, size_t n, struct buf *err);

/* CONDSTORE's flag change: for each UID, fn gets the current flag letters and writes the new ones to next
 * (returning false: leave the message alone). A changed message is renamed in cur/ and gets a new modseq in the
 * same write transaction, so the UNCHANGEDSINCE test (none when unchangedsince is UINT64_MAX) and the change cannot be
 * split by another session. res[i] says what happened to uids[i]. The message list is reloaded. */
enum mbox_store_result { MBOX_STORE_OK, MBOX_STORE_GONE, MBOX_STORE_MODIFIED };
typedef bool mbox_flags_fn(void *ctx, size_t i, const char *cur, struct buf *next);
bool mbox_store(struct mbox *mb, const uint32_t *uids, size_t n, uint64_t unchangedsince, mbox_flags_fn *fn,
		void *ctx, enum mbox_store_result *res, struct buf *err);
/* UIDs removed with a modseq above since (ascending, allocated: free it). *complete is false when tombstones
 * that old were dropped or lost with a rebuilt index: any UID not in the index may then have vanished. */
bool mbox_vanished(struct mbox *mb, uint64_t since, uint32_t **uids, size_t *n, bool *complete, struct buf *err);

/* Exclusive session lock (flock on dir/lockname, created 0600): the fd to keep while the session lasts, or -1
 * with errno (EWOULDBLOCK when another session holds it). */
int mbox_lock(const char *dir, const char *lockname);

/* The index record (value of the uid map): version byte, sizes, date, modseq, file name. The decoder is strict
 * (exact length, a plausible Maildir name) because a damaged record makes mbox_open() rebuild the index. */
bool mbox_record_encode(const struct mbox_msg *m, struct buf *out);
/* Fills out (name allocated: free it) but not uid. */
bool mbox_record_decode(const void *data, size_t len, struct mbox_msg *out);
/* The ",U=n" field in a file name's base; false when absent or malformed. */
bool mbox_name_uid(const char *name, uint32_t *uid);

#endif
