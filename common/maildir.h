/* Maildir storage shared by local delivery (writes into new/), imapd (APPEND into cur/, flags) and pop3d.
 * Delivery follows the Maildir rules: a unique name in tmp/, write, fsync, rename into new/ or cur/ (never
 * replacing an existing file), fsync the directory. Names carry ",S=size" (bytes on disk, LF line endings)
 * and ",W=size" (the size with CRLF line endings, what IMAP's RFC822.SIZE and POP3 report), so readers need
 * not open the file to know either. Folders are Maildir++ (".Sent", ".Lists.postern"). */
#ifndef POSTERN_MAILDIR_H
#define POSTERN_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

#define MAILDIR_NAME_MAX 255

/* Create root and its tmp/, new/, cur/ (and missing parents) with the given directory mode. */
bool maildir_make(const char *root, mode_t mode, struct buf *err);

struct maildir_writer;

/* Open a new file in root/tmp/ with mode (0600 for deliveries). NULL with err on failure. */
struct maildir_writer *maildir_begin(const char *root, mode_t mode, struct buf *err);
/* Message text with LF line endings (a CR before an LF is kept as is and counted once in W). */
bool maildir_write(struct maildir_writer *w, const void *data, size_t len);
uint64_t maildir_size(const struct maildir_writer *w);    /* S: bytes written */
uint64_t maildir_wsize(const struct maildir_writer *w);   /* W: bytes with every bare LF counted as CRLF */
/* fsync, rename into root/new (flags == NULL) or root/cur with ":2,FLAGS" (flags sorted by the caller), fsync
 * the directory. On success *name (if not NULL) gets the final file name (free it). The writer is freed either
 * way; on failure the temp file is removed and nothing appears in new/ or cur/. */
bool maildir_commit(struct maildir_writer **w, const char *flags, char **name, struct buf *err);
void maildir_abort(struct maildir_writer **w);
/* Make the name start with when (seconds since the epoch) instead of now, and set the file's mtime to it:
 * readers take a message's internal date from there (IMAP APPEND's date-time). */
bool maildir_set_time(struct maildir_writer *w, int64_t when);
/* maildir_commit (flags not NULL: into cur/) with base_extra (e.g. ",U=17") added to the base of the name. */
bool maildir_commit_extra(struct maildir_writer **w, const char *flags, const char *base_extra, char **name,
                          struct buf *err);
/* For a delivery that must happen once: the final name's unique part is TAG.HOST, the caller's tag derived from
 * the queue ID and the recipient so that every attempt picks the same name, instead of a fresh one. */
void maildir_set_unique(struct maildir_writer *w, const char *tag);
/* maildir_commit into new/ that never adds a second copy: when new/ already holds the name (an earlier or a
 * concurrent attempt), nothing is added, that entry is made durable, *existed is set and true returned. */
bool maildir_commit_once(struct maildir_writer **w, char **name, bool *existed, struct buf *err);

/* Parse a Maildir file name: the base (up to ':' or the end), S= and W= sizes when present (else 0 and false in
 * the have_ flags), and the flags after ":2," (pointer into name, "" when none). false when the name is not a
 * plausible Maildir name (empty, contains '/', starts with '.'). */
struct maildir_name {
	const char *base;
	size_t baselen;
	uint64_t size, wsize;
	bool have_size, have_wsize;
	const char *flags;
};
bool maildir_name_parse(const char *name, struct maildir_name *out);

/* Maildir++ folder directory for a folder name ("INBOX" -> root, "Sent" -> root/.Sent, "Lists/postern" ->
 * root/.Lists.postern with '/' as the hierarchy separator). false when the name cannot be a folder ('.' in a
 * component, empty components, leading '.'). */
bool maildir_folder_path(const char *root, const char *folder, struct buf *out);

#endif
