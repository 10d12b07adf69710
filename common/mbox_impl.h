/* Internals shared by mbox.c (open, list, records, expunge) and mbox_sync.c (sync and rebuild). Not for callers. */
#ifndef POSTERN_MBOX_IMPL_H
#define POSTERN_MBOX_IMPL_H

#include <lmdb.h>

#include "mbox.h"

struct mbox {
	char *dir;
	MDB_env *env;
	MDB_dbi meta, uids, names, gone;	/* gone: tombstones of expunged UIDs -> modseq */
	uint32_t uidvalidity, uidnext;
	uint64_t hms;
	struct mbox_msg *msgs;
	size_t n;
	bool loaded;		/* msgs is the list of transaction loaded_txn */
	size_t loaded_txn;
};

enum mbox_sync_result { MBOX_SYNC_OK, MBOX_SYNC_FAIL, MBOX_SYNC_DAMAGED };

/* One write transaction that syncs the folder with the index (rebuilding it when its metadata is missing or
 * does not match postern-uidlist). DAMAGED: a record or the file itself is unusable; the caller starts over. */
enum mbox_sync_result mbox_sync_txn(struct mbox *mb, struct buf *err);
/* Reload mb->msgs from the index. */
enum mbox_sync_result mbox_load(struct mbox *mb, struct buf *err);

/* Big-endian key of a UID in the uid map. */
static inline void mbox_uid_key(uint32_t uid, unsigned char k[4])
{
	k[0] = (unsigned char)(uid >> 24);
	k[1] = (unsigned char)(uid >> 16);
	k[2] = (unsigned char)(uid >> 8);
	k[3] = (unsigned char)uid;
}

static inline uint32_t mbox_key_uid(const unsigned char k[4])
{
	return (uint32_t)k[0] << 24 | (uint32_t)k[1] << 16 | (uint32_t)k[2] << 8 | k[3];
}

/* 64-bit values in the meta map (big-endian); get gives 0 for a missing key. LMDB error codes. */
int mbox_meta_get64(struct mbox *mb, MDB_txn *txn, const char *key, uint64_t *out);
int mbox_meta_put64(struct mbox *mb, MDB_txn *txn, const char *key, uint64_t v);

/* A tombstone for an expunged (or vanished) UID with the modseq of its removal, for QRESYNC's VANISHED. At most
 * MBOX_TOMBSTONES_MAX are kept: the oldest UIDs are dropped and "vanished_floor" in meta rises to their modseq,
 * below which the list is incomplete. LMDB error codes. */
int mbox_tombstone(struct mbox *mb, MDB_txn *txn, uint32_t uid, uint64_t modseq);

/* Length of the base of a Maildir file name (up to ':' or the end). */
size_t mbox_base_len(const char *name);

#endif
