/* Recipient resolution for local delivery: an address in one of our domains becomes the mailboxes it stands
 * for (an account's Maildir, a system user's ~/Maildir, the postmaster mailbox) and the remote addresses its
 * aliases point to. The lookups are callbacks so the logic is testable without databases; the local daemon
 * wires them to accounts.lmdb, aliases.lmdb and getpwnam(). */
#ifndef POSTERN_LOCAL_RESOLVE_H
#define POSTERN_LOCAL_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

#define LRES_MAX_DEPTH_DEFAULT 20
#define LRES_MAX_TARGETS_DEFAULT 1000

enum lres_kind {
	LRES_MAILDIR,	/* deliver into maildir */
	LRES_REMOTE,	/* an alias target outside our domains: qmgr queues it as a new recipient */
};

struct lres_target {
	enum lres_kind kind;
	char *addr;		/* the mailbox's address (Delivered-To) or the remote address */
	char *maildir;		/* LRES_MAILDIR: path ending in '/' */
	bool switch_user;	/* deliver as uid/gid (system users and accounts with their own uid) */
	uid_t uid;
	gid_t gid;
};

struct lres_result {
	struct lres_target *v;
	size_t n;
};

/* Lookups return 1 when found, 0 when not, -1 on an error (text in err): an error is a temporary failure. */
struct lres_ops {
	/* addr is lower case. maildir is malloc'ed; uid 0 and gid 0 mean the virtual-mail user. */
	int (*account)(const char *addr, char **maildir, uint32_t *uid, uint32_t *gid, void *arg, struct buf *err);
	/* Aliases of an address in a local domain (the table applies the local-part rules); value = the targets. */
	int (*alias)(const char *addr, struct buf *value, void *arg, struct buf *err);
	/* A login name from passwd: home directory (malloc'ed), uid, gid. NULL: no system users. */
	int (*system_user)(const char *name, char **home, uid_t *uid, gid_t *gid, void *arg, struct buf *err);
	/* A system user's ~/.forward: its targets (comma or newline separated, '#' comment lines removed) in value.
	 * NULL: no .forward files. The callback checks ownership and permissions. */
	int (*forward)(const char *home, uid_t uid, struct buf *value, void *arg, struct buf *err);
	bool (*is_local_domain)(const char *domain, void *arg);
	void *arg;
	const char *myhostname;		/* domain of addresses without one */
	const char *postmaster_maildir;	/* where postmaster and MAILER-DAEMON go when nothing else matches */
	const char *delims;		/* recipient delimiters ("+"), NULL for none */
	unsigned max_depth;		/* alias nesting limit (0: default) */
	size_t max_targets;		/* expansion size limit (0: default) */
};

enum lres_status { LRES_OK, LRES_TEMPFAIL, LRES_FAIL };

/* Resolve rcpt. On LRES_OK res holds at least one target (duplicates removed). Otherwise dsn gets the enhanced
 * status ("5.1.1", "4.3.0", "5.4.6") and text the reason. */
enum lres_status lres_resolve(const struct lres_ops *ops, const char *rcpt, struct lres_result *res, struct buf *dsn,
                              struct buf *text);
void lres_result_free(struct lres_result *res);

/* Split an aliases value into targets: commas separate, "double quotes" protect commas and spaces, <angle
 * brackets> around an address are removed, white space is trimmed. Calls fn per target; false when fn does or
 * when a quote is not closed. */
bool lres_split_targets(const char *value, bool (*fn)(const char *target, void *arg), void *arg);

#endif
