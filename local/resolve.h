/* Recipient resolution for local delivery: an address in one of our domains becomes the mailboxes it stands
 * for (an account's Maildir, a system user's ~/Maildir, the postmaster mailbox), the mbox files and commands
 * its aliases, :include: lists and ~/.forward name, and the remote addresses they point to. The lookups are callbacks so the logic is testable without databases; the local daemon
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

#define LRES_LIST_FILE_MAX (1u << 20)	/* largest :include: or .forward file read */

enum lres_kind {
	LRES_MAILDIR,	/* deliver into maildir */
	LRES_REMOTE,	/* an alias target outside our domains: qmgr queues it as a new recipient */
	LRES_FILE,	/* "/path": append to an mbox file */
	LRES_PIPE,	/* "|command": run it with the message on stdin */
};

struct lres_target {
	enum lres_kind kind;
	char *addr;		/* the mailbox's address (Delivered-To), the remote address, or for files and
				 * commands the address whose alias or .forward named them */
	char *maildir;		/* LRES_MAILDIR: path ending in '/'; LRES_FILE: the file; LRES_PIPE: the command */
	char *folder;		/* LRES_MAILDIR: the address extension ("tag" of user+tag), NULL for none */
	char *sender;		/* envelope sender for this target (owner-LIST@domain), NULL: the message's */
	uint64_t quota;		/* LRES_MAILDIR: bytes, 0 for none */
	bool switch_user;	/* deliver as uid/gid (system users, accounts with their own uid, alias owners) */
	uid_t uid;
	gid_t gid;
};

struct lres_result {
	struct lres_target *v;
	size_t n;
};

/* Lookups return 1 when found, 0 when not, -1 on an error (text in err): an error is a temporary failure. */
struct lres_ops {
	/* addr is lower case. maildir is malloc'ed; uid 0 and gid 0 mean the virtual-mail user; quota 0: none. */
	int (*account)(const char *addr, char **maildir, uint32_t *uid, uint32_t *gid, uint64_t *quota, void *arg,
	               struct buf *err);
	/* Aliases of an address in a local domain (the table applies the local-part rules); value = the targets. */
	int (*alias)(const char *addr, struct buf *value, void *arg, struct buf *err);
	/* A login name from passwd: home directory (malloc'ed), uid, gid. NULL: no system users. */
	int (*system_user)(const char *name, char **home, uid_t *uid, gid_t *gid, void *arg, struct buf *err);
	/* A system user's ~/.forward: its targets (comma or newline separated, '#' comment lines removed) in value.
	 * NULL: no .forward files. The callback checks ownership and permissions. */
	int (*forward)(const char *home, uid_t uid, struct buf *value, void *arg, struct buf *err);
	/* An ":include:" list file: its targets (lres_list_parse) in value and its owner in file_uid/file_gid. It
	 * must be a regular file owned by root or by owner and writable by nobody else: 0 when it is not (a
	 * permanent refusal, text in err), -1 when it cannot be read now. NULL: :include: refused. */
	int (*include)(const char *path, uid_t owner, struct buf *value, uid_t *file_uid, gid_t *file_gid, void *arg,
	               struct buf *err);
	bool (*is_local_domain)(const char *domain, void *arg);
	void *arg;
	const char *myhostname;		/* domain of addresses without one */
	const char *postmaster_maildir;	/* where postmaster and MAILER-DAEMON go when nothing else matches */
	const char *delims;		/* recipient delimiters ("+"), NULL for none */
	unsigned max_depth;		/* alias nesting limit (0: default) */
	size_t max_targets;		/* expansion size limit (0: default) */
	uid_t alias_uid;		/* who runs commands and writes files of the aliases table */
	gid_t alias_gid;
	bool extension_folders;		/* user+tag: record "tag" as the Maildir folder to try */
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

/* A .forward or :include: file's text (len bytes, NUL bytes make it invalid) as one target list for
 * lres_split_targets: one or more comma-separated targets per line, '#' comment lines and blank lines
 * dropped, lines joined with commas. false (nothing usable) on a NUL byte or when out's cap is reached. */
bool lres_list_parse(const char *data, size_t len, struct buf *out);

/* Split a local part at the first recipient delimiter: base length, extension (NULL when none). */
size_t lres_split_extension(const char *local, const char *delims, const char **ext);

#endif
