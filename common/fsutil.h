/* File-system helpers for crash-safe writes: every program that creates a file others rely on writes a temp
 * file, fsyncs it, renames it into place and fsyncs the directory. Kept in one place so no caller skips a step. */
#ifndef POSTERN_FSUTIL_H
#define POSTERN_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

/* fsync a directory by path (after a rename, link or unlink in it). false with errno on failure. */
bool fsutil_fsync_dir(const char *dir);
/* Create path and any missing parents with mode (existing directories are left as they are). */
bool fsutil_mkdir_p(const char *path, mode_t mode);
/* Replace path with data atomically: PATH.tmp.PID written with mode, fsync, rename, fsync the directory.
 * false with "what path: strerror" in err. */
bool fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode, struct buf *err);
/* Read a whole (small) file into out, refusing files larger than max. false with errno on failure
 * (EFBIG when too large). */
bool fsutil_read_file(const char *path, size_t max, struct buf *out);

#endif
