/* imapd's view of a user's Maildir++ tree as IMAP mailboxes: INBOX is the root, "A/B" is root/.A.B. Folder
 * names here are UTF-8 with '/' as the separator (the wire encoding is cmd_mailbox.c's business). Also the
 * subscriptions file and the SPECIAL-USE folders made at first login. Message counts come from the
 * shared mailbox index (common/mbox.h). */
#ifndef POSTERN_IMAPD_MAILBOXES_H
#define POSTERN_IMAPD_MAILBOXES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define IMAPD_SUBSCRIPTIONS_FILE "subscriptions"

/* Make INBOX; at first login (no subscriptions file yet) also Sent, Drafts, Trash, Junk, Archive, subscribed. */
bool imapd_mailboxes_prepare(const char *root, struct buf *err);

/* All existing folder names, INBOX first, the rest sorted. Free with imapd_names_free. */
struct imapd_names {
	char **v;
	size_t count, cap;
};
void imapd_mailboxes_list(const char *root, struct imapd_names *out);
void imapd_names_add(struct imapd_names *n, const char *name);
bool imapd_names_has(const struct imapd_names *n, const char *name);
void imapd_names_free(struct imapd_names *n);

/* \Sent, \Drafts, ... for the well-known names, else NULL. */
const char *imapd_special_use(const char *name);

/* Directory of a folder, false when the name cannot be one. */
bool imapd_mailbox_path(const char *root, const char *name, struct buf *path);
bool imapd_mailbox_exists(const char *root, const char *name);
/* The same for a folder's directory. */
bool imapd_mailbox_exists_at(const char *path);

enum imapd_mbox_result { IMAPD_MBOX_OK, IMAPD_MBOX_EXISTS, IMAPD_MBOX_NONEXISTENT, IMAPD_MBOX_BADNAME,
	IMAPD_MBOX_FAILED };
enum imapd_mbox_result imapd_mailbox_create(const char *root, const char *name, struct buf *err);
enum imapd_mbox_result imapd_mailbox_delete(const char *root, const char *name, struct buf *err);
/* Renames the folder and its children; renaming INBOX moves its messages into the new folder (RFC 3501). */
enum imapd_mbox_result imapd_mailbox_rename(const char *root, const char *from, const char *to, struct buf *err);

/* Subscriptions: one UTF-8 name per line in root/subscriptions, replaced atomically. */
void imapd_subscriptions_read(const char *root, struct imapd_names *out);
bool imapd_subscribe(const char *root, const char *name, bool on, struct buf *err);

struct imapd_counts {
	uint32_t messages, recent, unseen;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
};
/* Counts from the shared mailbox index (common/mbox.h), which is opened and synced; recent = messages above the
 * recent mark. */
bool imapd_mailbox_counts(const char *path, struct imapd_counts *out);
/* \Recent: the highest UID a read-write SELECT has already shown (postern-recent, 0 when absent), then UIDs at or
 * below it that are still recent (only a mark made by imapd_recent_init lists any). Recent messages are recent for
 * the next session that selects the folder read-write, which moves the mark past them. */
#define IMAPD_RECENT_FILE "postern-recent"
#define IMAPD_RECENT_LIST_MAX 10000
struct imapd_recent {
	uint32_t mark;
	uint32_t *also;
	size_t n;
};
void imapd_recent_read(const char *path, struct imapd_recent *r);
bool imapd_recent_has(const struct imapd_recent *r, uint32_t uid);
void imapd_recent_free(struct imapd_recent *r);
void imapd_recent_set(const char *path, uint32_t uid);
/* A folder without a mark yet (made by another tool, or before marks existed) gets one now, as Dovecot decides
 * \Recent: messages waiting in new/ are recent, those already in cur/ are not. Called before the folder's index
 * is opened (SELECT, STATUS, APPEND, COPY, login for INBOX); nothing to do when the mark exists. */
void imapd_recent_init(const char *path);
/* The same from an open index (recent untouched). */
struct mbox;
void imapd_mbox_counts(struct mbox *mb, struct imapd_counts *out);

#endif
