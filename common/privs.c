/* Privilege drop; see privs.h. The check after setuid() matters: a process that could get root back has not
 * dropped anything, whatever the earlier calls returned. */
#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

bool privs_is_root(void)
{
	return geteuid() == 0;
}

bool privs_lookup_user(const char *name, uid_t *uid, gid_t *gid, struct buf *err)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(name);
	if (pw == NULL) {
		buf_reset(err);
		if (errno != 0)
			buf_printf(err, "user %s: lookup failed: %s", name, strerror(errno));
		else
			buf_printf(err, "user %s does not exist (create it, or set mail_owner / the user column)", name);
		return false;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return true;
}

/* Add keep to the supplementary groups set so far. */
static void add_group(gid_t keep)
{
	gid_t groups[256];
	int n = getgroups(256, groups);

	if (n < 0)
		fatal("getgroups");
	for (int i = 0; i < n; i++)
		if (groups[i] == keep)
			return;
	if (n >= 256)
		fatalx("too many supplementary groups to add group %ld", (long)keep);
	groups[n++] = keep;
	if (setgroups((size_t)n, groups) < 0)
		fatal("setgroups (adding group %ld)", (long)keep);
}

static void drop_ids(uid_t uid, gid_t gid, const char *user_for_groups, const char *chroot_dir, gid_t keep)
{
	if (!privs_is_root()) {
		log_debug("not running as root: keeping uid %ld", (long)geteuid());
		return;
	}
	if (user_for_groups != NULL) {
		if (initgroups(user_for_groups, gid) < 0)
			fatal("initgroups %s", user_for_groups);
	} else if (setgroups(1, &gid) < 0) {
		fatal("setgroups %ld", (long)gid);
	}
	if (keep != (gid_t)-1)
		add_group(keep);
	if (setresgid(gid, gid, gid) < 0)
		fatal("setgid %ld", (long)gid);
	if (chroot_dir != NULL) {
		if (chroot(chroot_dir) < 0)
			fatal("chroot %s", chroot_dir);
		if (chdir("/") < 0)
			fatal("chdir / in chroot %s", chroot_dir);
	} else if (chdir("/") < 0) {
		fatal("chdir /");
	}
	if (uid == 0)
		return;	/* a service configured to run as root (local delivery) keeps it */
	if (setresuid(uid, uid, uid) < 0)
		fatal("setuid %ld", (long)uid);
	if (setuid(0) == 0 || geteuid() == 0 || getuid() == 0)
		panic("privilege drop to uid %ld did not stick: root regained", (long)uid);
	log_debug("dropped privileges to uid %ld gid %ld%s%s", (long)uid, (long)gid, chroot_dir ? " chroot " : "",
	          chroot_dir ? chroot_dir : "");
}

void privs_drop_ids(uid_t uid, gid_t gid, const char *user_for_groups, const char *chroot_dir)
{
	drop_ids(uid, gid, user_for_groups, chroot_dir, (gid_t)-1);
}

void privs_drop(const char *user, const char *chroot_dir)
{
	privs_drop_keep_group(user, chroot_dir, (gid_t)-1);
}

void privs_drop_keep_group(const char *user, const char *chroot_dir, gid_t keep)
{
	struct buf err = BUF_INIT(512);
	uid_t uid;
	gid_t gid;

	if (!privs_is_root()) {
		log_debug("not running as root: keeping uid %ld (service user %s)", (long)geteuid(), user);
		return;
	}
	if (!privs_lookup_user(user, &uid, &gid, &err))
		fatalx("%s", buf_cstr(&err));
	drop_ids(uid, gid, user, chroot_dir, keep);
}
