/* Files that get their name only when complete: O_TMPFILE in the directory where they will live, linked in
 * by linkat() once written and fsync'd. No temp name, no rename: a cross-directory rename() takes the file
 * system's rename mutex and both directories' locks, which serialised concurrent smtpd and local processes;
 * a crash leaves nothing behind to clean. Callers fall back to a named temp file when this is unavailable. */
#ifndef POSTERN_ANONFILE_H
#define POSTERN_ANONFILE_H

#include <stdbool.h>
#include <sys/types.h>

/* An unnamed, writable file in dir (same file system as its final name), mode applied now; -1 with errno
 * when the file system or kernel lacks O_TMPFILE or /proc/self/fd (needed to link it) is missing. On -1 the
 * caller goes the named-temp-file way, which also reports real errors (a missing dir) by name. */
int anonfile_open(const char *dir, mode_t mode);
/* Give the file of anonfile_open() the name path; never replaces (EEXIST). false with errno. */
bool anonfile_link(int fd, const char *path);

#endif
