/* Privilege drop for daemons (called once by the daemon skeleton, before any input is read) and user lookup
 * helpers for master and the CLI. Order and checks follow the classic pattern: groups, gid, chroot, chdir, uid,
 * every step fatal on failure, then proof that root cannot be regained. */
#ifndef POSTERN_PRIVS_H
#define POSTERN_PRIVS_H

#include <stdbool.h>
#include <sys/types.h>

#include "buf.h"

/* Look up a user by name: false with a message in err when unknown. */
bool privs_lookup_user(const char *name, uid_t *uid, gid_t *gid, struct buf *err);
/* Drop to user (root: supplementary groups of user, its gid, optional chroot, chdir, its uid). Not root: a
 * no-op with a debug line (a dev instance runs as the invoking user). user "root" keeps root but still chroots.
 * Any failure is fatal. */
void privs_drop(const char *user, const char *chroot_dir);
/* privs_drop keeping one more supplementary group (gid_t)-1 for none: auth keeps "shadow" to read /etc/shadow
 * as it changes, without keeping root. */
void privs_drop_keep_group(const char *user, const char *chroot_dir, gid_t keep);
/* The same, by numeric ids (no supplementary groups beyond gid); for callers that looked the user up early. */
void privs_drop_ids(uid_t uid, gid_t gid, const char *user_for_groups, const char *chroot_dir);
bool privs_is_root(void);

#endif
