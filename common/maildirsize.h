/* Maildir++ quota accounting: the "maildirsize" file in a Maildir's root, the format Courier and Dovecot share.
 * Line 1 is the quota definition ("4096S"), every further line "BYTES COUNT" (negative for removals); usage is
 * their sum. local reserves a message's size in it before writing (under a lock on the Maildir root, so
 * parallel deliveries cannot both pass the quota); imapd and pop3d append lines for what they add and remove.
 * A missing, damaged, oversized or stale file is rebuilt from the S= sizes of the files. */
#ifndef POSTERN_MAILDIRSIZE_H
#define POSTERN_MAILDIRSIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define MAILDIRSIZE_NAME "maildirsize"
#define MAILDIRSIZE_RECALC_BYTES 5120	/* a longer file is summed up anew (the Maildir++ rule) */
#define MAILDIRSIZE_RECALC_AGE 900	/* as is one not written for 15 minutes: users and other programs
					 * remove mail without telling us */

/* Bytes (the S= sizes, else the file sizes) and number of messages in new/ and cur/ of INBOX and of every
 * Maildir++ folder of root. A missing root is empty. false with err when root cannot be read. */
bool maildirsize_scan(const char *root, uint64_t *bytes, uint64_t *count, struct buf *err);

/* The text of a maildirsize file: true with the sums when its definition is quota bytes ("NNNS", a "NNNC"
 * count limit beside it ignored) and every further line is "BYTES COUNT" ending in a newline, with
 * non-negative sums; false means "rebuild it" (damaged, another quota, or over MAILDIRSIZE_RECALC_BYTES). */
bool maildirsize_parse(const char *data, size_t len, uint64_t quota, uint64_t *bytes, uint64_t *count);

enum maildirsize_result { MAILDIRSIZE_OK, MAILDIRSIZE_OVER, MAILDIRSIZE_ERROR };

/* Before a delivery of size bytes into the Maildir at root with a quota of quota bytes: OVER when it does not
 * fit; OK when it does, and then the size is already counted ("SIZE 1" appended), so a delivery that fails
 * afterwards must call maildirsize_update(root, -size, -1). used gets the usage before this message. */
enum maildirsize_result maildirsize_reserve(const char *root, uint64_t quota, uint64_t size, uint64_t *used,
                                            struct buf *err);

/* Append "BYTES COUNT" when the Maildir has a maildirsize file (without one there is nothing to keep current).
 * dir is the root or one of its Maildir++ folders (".NAME"): every folder counts against the root's quota.
 * Called for messages that arrive or go other than by local's reservation (imapd APPEND, COPY, MOVE; expunges
 * in imapd and pop3d). Best effort: a failure only leaves the count wrong until the next rebuild. */
void maildirsize_update(const char *dir, int64_t bytes, int64_t count);

/* The Maildir root of a folder directory: dir itself, or its parent for a Maildir++ folder (".NAME"). */
void maildirsize_root(const char *dir, struct buf *out);

#endif
