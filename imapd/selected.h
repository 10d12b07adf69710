/* imapd's selected state on the shared mailbox index (common/mbox.h): the session's view of the mailbox
 * (sequence numbers, UIDs and the flags last reported), kept in step with the index, and the few operations the
 * selected-state commands (cmd_fetch.c, cmd_store.c, cmd_search.c, cmd_copy.c) share: resolving sequence and UID
 * sets, reading a message, changing flags by renaming the Maildir file. */
#ifndef POSTERN_IMAPD_SELECTED_H
#define POSTERN_IMAPD_SELECTED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "imapd.h"
#include "seqset.h"

#define IMAPD_SET_MAX_RANGES 10000
/* View flags: the system flags (flags.h) in the low bits, keyword letter a..z in bit 5 + (letter - 'a'). */
#define IMAPD_SYS_FLAGS 0x1fu
#define IMAPD_KW_BIT(c) (1u << (5 + ((c) - 'a')))

/* Open the index of path and build the view (all messages, flags from the file names). false with err. */
bool imapd_sel_open(struct imapd_selected *sel, struct buf *err);
void imapd_sel_free(struct imapd_selected *sel);
/* Sync with the index and tell the client what changed since the last report: "n EXPUNGE" (only when
 * expunges is true; otherwise vanished messages stay in the view as gone), "n FETCH (FLAGS ...)", "n EXISTS". */
void imapd_sel_update(struct imapd_session *sess, bool expunges);
/* The sequence numbers (1-based view positions) a set names: a sequence set, or with uid a UID set (UIDs
 * that do not exist are skipped). false: bad syntax (caller answers BAD). Gone messages are included. */
bool imapd_sel_set(struct imapd_session *sess, const char *set, bool uid, uint32_t **seqs, size_t *n);
/* Index in the mbox list of view position i, or (size_t)-1 when the message is gone. */
size_t imapd_sel_mbox_index(struct imapd_session *sess, size_t i);
/* Whole message file of view position i into out (LF line ends as stored). false when gone or unreadable. */
bool imapd_sel_read(struct imapd_session *sess, size_t i, struct buf *out);
/* Give view position i these flags (through the index: a rename in cur/ and a new modseq). The view's flags
 * and modseq are updated (the caller reports them). false when the message is gone or the rename failed. */
bool imapd_sel_set_flags(struct imapd_session *sess, size_t i, uint32_t flags);
/* \Seen for the messages of seqs (1-based) that lack it, in one index transaction (a non-peek FETCH). */
void imapd_sel_add_seen(struct imapd_session *sess, const uint32_t *seqs, size_t n);
/* Maildir letters of view flags: system flag letters, then keyword letters, in ASCII order. */
void imapd_sel_flags_letters(uint32_t flags, struct buf *out);
/* Expunge the \Deleted messages among seqs (all when seqs is NULL) from the index and the folder; the
 * EXPUNGE responses come from the next imapd_sel_update. (cmd_store.c) */
bool imapd_expunge_deleted(struct imapd_session *sess, const uint32_t *seqs, size_t n);
/* The index of the folder at path: the selected one's (synced) when it is that folder, else opened (*own set:
 * mbox_close it). NULL with err. */
struct mbox *imapd_sel_borrow(struct imapd_session *sess, const char *path, bool *own, struct buf *err);
/* Give the message dir/cur/NAME the internal date when (seconds), before the index has seen it: the name's
 * leading seconds are replaced (*name updated) and the mtime set. false (name unchanged) when that fails. */
bool imapd_set_idate(const char *dir, char **name, int64_t when);
/* Append v (ascending calls) to set, merging it into the last range when adjacent. */
void imapd_seqset_add(struct imap_seqset *set, uint32_t v);
/* Flags of a Maildir letter string in view terms (system flags and keyword letters). */
uint32_t imapd_sel_flags_from_letters(const char *letters);
/* "(\Seen $Label)" list of view flags. */
void imapd_sel_flags_list(const struct imapd_selected *sel, uint32_t flags, struct buf *out);
/* The same for view position i as FETCH FLAGS reports it: with \Recent when it is recent for this session. */
void imapd_sel_msg_flags(const struct imapd_selected *sel, size_t i, struct buf *out);

#endif
