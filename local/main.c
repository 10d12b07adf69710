/* local: local delivery (DAEMON_SINGLE: one qmgr connection per process, master runs up to maxproc of them,
 * so a slow mailbox holds up only its own process). For each LP_DELIVER request it resolves every recipient
 * (resolve.c), delivers to each Maildir, mbox file and command (deliver.c, as the owner when running as root)
 * and answers one result per recipient, plus the remote addresses aliases expanded to (those of a list with an
 * owner-NAME alias are queued anew from the owner instead: resubmit.c). */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accounts.h"
#include "alloc.h"
#include "authres.h"
#include "config.h"
#include "daemon.h"
#include "deliver.h"
#include "ipc.h"
#include "log.h"
#include "qfile.h"
#include "qproto.h"
#include "resolve.h"
#include "str.h"
#include "table.h"

#define LOCAL_IDLE_MS 60000	/* a qmgr connection with no request for this long is closed */

static struct {
	struct config *cfg;
	char *queue_dir, *accounts_path, *aliases_path, *delims, *postmaster_maildir, *myhostname;
	char **mydest, **vdomains;
	size_t nmydest, nvdomains;
	bool system_users, forward, ext_folders, quota_bounce;
	bool resubmitted;	/* a list's remote members were queued anew during this request */
	unsigned command_time_limit;
	uid_t privs_uid;	/* default_privs: commands and files of root-owned aliases */
	gid_t privs_gid;
	unsigned depth;
	struct accounts *accounts;
	struct table *aliases;
	uid_t vuid;	/* the virtual-mail user (mail_owner), used when running as root */
	gid_t vgid;
	struct ipc_peer_policy policy;
	uid_t owner_uid;
} L;

static bool domain_in(char **v, size_t n, const char *d)
{
	for (size_t i = 0; i < n; i++)
		if (str_eq_ci(v[i], d))
			return true;
	return false;
}

static bool is_local_domain(const char *domain, void *arg)
{
	(void)arg;
	return domain_in(L.mydest, L.nmydest, domain) || domain_in(L.vdomains, L.nvdomains, domain);
}

static int lookup_account(const char *addr, char **maildir, uint32_t *uid, uint32_t *gid, uint64_t *quota, void *arg,
                          struct buf *err)
{
	(void)arg;
	if (!L.accounts) {
		if (access(L.accounts_path, F_OK) != 0)
			return 0;	/* no account database: nobody has an account */
		if (!(L.accounts = accounts_open(L.accounts_path, false, err)))
			return -1;
	}
	struct accounts_user u;
	struct buf norm = BUF_INIT(ACCOUNTS_ADDRESS_MAX + 1), nerr = BUF_INIT(256);
	/* an address that cannot be an account name simply has no account */
	bool valid = accounts_normalize(addr, &norm, &nerr);
	buf_free(&norm);
	buf_free(&nerr);
	if (!valid)
		return 0;
	enum accounts_result r = accounts_get(L.accounts, addr, &u, err);
	if (r == ACCOUNTS_NOTFOUND)
		return 0;
	if (r != ACCOUNTS_OK)
		return -1;
	*maildir = xstrdup(u.maildir);
	*uid = u.uid;
	*gid = u.gid;
	*quota = u.quota;
	accounts_user_free(&u);
	return 1;
}

static int lookup_alias(const char *addr, struct buf *value, void *arg, struct buf *err)
{
	(void)arg;
	if (!L.aliases) {
		if (access(L.aliases_path, F_OK) != 0)
			return 0;
		if (!(L.aliases = table_open(L.aliases_path, err)))
			return -1;
	}
	switch (table_lookup_addr(L.aliases, addr, L.delims, TABLE_ADDR_LOCAL, value, NULL)) {
	case TABLE_FOUND: return 1;
	case TABLE_NOTFOUND: return 0;
	default: buf_puts(err, table_error(L.aliases)); return -1;
	}
}

static int lookup_system(const char *name, char **home, uid_t *uid, gid_t *gid, void *arg, struct buf *err)
{
	(void)arg;
	(void)err;
	errno = 0;
	struct passwd *pw = getpwnam(name);
	if (!pw)
		return errno == 0 || errno == ENOENT || errno == ESRCH ? 0 : -1;
	/* never deliver as root or to accounts without a real home */
	if (pw->pw_uid == 0 || !pw->pw_dir || pw->pw_dir[0] != '/')
		return 0;
	*home = xstrdup(pw->pw_dir);
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 1;
}

#define LOCAL_FORWARD_MAX 65536

/* Read a list file opened by the caller (at most max bytes) into data. */
static bool read_list(int fd, size_t max, struct buf *data, const char *path, struct buf *err)
{
	char chunk[4096];
	ssize_t k;
	while ((k = read(fd, chunk, sizeof(chunk))) != 0) {
		if (k < 0) {
			if (errno == EINTR)
				continue;
			buf_printf(err, "read %s: %s", path, strerror(errno));
			return false;
		}
		if (data->len + (size_t)k > max || !buf_append(data, chunk, (size_t)k)) {
			buf_printf(err, "%s: larger than %zu bytes", path, max);
			return false;
		}
	}
	return true;
}

/* An :include: list: a regular file owned by root or the owner of what includes it, writable by nobody else and
 * readable by that owner; otherwise refused (0), since whoever can write it decides where the mail goes and
 * what runs. */
static int lookup_include(const char *path, uid_t owner, struct buf *value, uid_t *file_uid, gid_t *file_gid,
                          void *arg, struct buf *err)
{
	(void)arg;
	struct buf data = BUF_INIT(LRES_LIST_FILE_MAX);
	struct stat st;
	int r = 0;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR) {
			buf_printf(err, "%s: %s", path, errno == ELOOP ? "a symbolic link" : strerror(errno));
			return 0;
		}
		buf_printf(err, "open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		buf_printf(err, "%s: not a regular file", path);
	} else if (st.st_uid != 0 && st.st_uid != owner) {
		buf_printf(err, "%s: owned by uid %u, neither root nor the alias owner", path, (unsigned)st.st_uid);
	} else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		buf_printf(err, "%s: writable by group or others", path);
	} else if (!(st.st_mode & (st.st_uid == owner ? S_IRUSR : S_IROTH))) {
		/* we read as root: a file its owner could not read (/etc/shadow in a .forward) must not leak into
		 * addresses, logs and bounces */
		buf_printf(err, "%s: not readable by uid %u", path, (unsigned)owner);
	} else if (!read_list(fd, LRES_LIST_FILE_MAX, &data, path, err)) {
		r = -1;
	} else if (!lres_list_parse(buf_cstr(&data), data.len, value)) {
		buf_printf(err, "%s: contains a NUL byte", path);
	} else {
		*file_uid = st.st_uid;
		*file_gid = st.st_gid;
		r = 1;
	}
	close(fd);
	buf_free(&data);
	return r;
}

/* Who the aliases table's files and commands run as: its owner, or default_privs when root owns it. */
static void alias_owner(uid_t *uid, gid_t *gid)
{
	struct stat st;
	*uid = L.privs_uid;
	*gid = L.privs_gid;
	if (stat(L.aliases_path, &st) == 0 && st.st_uid != 0) {
		*uid = st.st_uid;
		struct passwd *pw = getpwuid(st.st_uid);
		*gid = pw ? pw->pw_gid : st.st_gid;
	}
}

/* ~/.forward of a system user: only a regular file owned by the user (or root) and writable by nobody else is
 * honoured; any other is ignored with a warning, so mail still reaches the mailbox. */
static int lookup_forward(const char *home, uid_t uid, struct buf *value, void *arg, struct buf *err)
{
	(void)arg;
	struct buf path = BUF_INIT(BUF_NOLIMIT), data = BUF_INIT(LOCAL_FORWARD_MAX);
	int r = 0;
	buf_printf(&path, "%s/.forward", home);
	int fd = open(path.data, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd < 0) {
		if (errno != ENOENT && errno != ENOTDIR) {
			if (errno == ELOOP)
				log_warn("%s: a symbolic link: ignored", path.data);
			else {
				buf_printf(err, "open %s: %s", path.data, strerror(errno));
				r = -1;
			}
		}
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_uid != uid && st.st_uid != 0) ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)) || st.st_size > LOCAL_FORWARD_MAX) {
		log_warn("%s: not a regular file of its user, writable by others, or too large: ignored", path.data);
		goto out;
	}
	if (!read_list(fd, LOCAL_FORWARD_MAX, &data, path.data, err)) {
		r = -1;
		goto out;
	}
	if (!lres_list_parse(buf_cstr(&data), data.len, value)) {
		log_warn("%s: contains a NUL byte or is too large: ignored", path.data);
		goto out;
	}
	r = 1;
out:
	if (fd >= 0)
		close(fd);
	buf_free(&path);
	buf_free(&data);
	return r;
}

/* Header-safe copy for the command environment. */
static void env_put(char ***env, size_t *n, const char *name, const char *value)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&b, "%s=", name);
	for (const char *p = value ? value : ""; *p; p++)
		buf_putc(&b, (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p);
	*env = xreallocarray(*env, *n + 2, sizeof(**env));
	(*env)[(*n)++] = buf_steal(&b, NULL);
	(*env)[*n] = NULL;
}

/* The environment of a command, as Postfix's local(8) sets it. */
static char **command_env(const struct ldeliver_msg *m, const char *rcpt, const struct lres_target *t, uid_t uid,
                          const char **home)
{
	char **env = NULL;
	size_t n = 0;
	struct passwd *pw = getpwuid(uid);
	const char *at = strrchr(rcpt, '@');
	char *local = xstrndup(rcpt, at ? (size_t)(at - rcpt) : strlen(rcpt)), *lower = xstrdup(local);
	str_lower(lower);
	const char *ext;
	size_t cut = lres_split_extension(lower, L.delims, &ext);
	*home = pw && pw->pw_dir ? pw->pw_dir : "/";
	env_put(&env, &n, "PATH", "/usr/local/bin:/usr/bin:/bin");
	env_put(&env, &n, "SENDER", t->sender ? t->sender : m->sender);
	env_put(&env, &n, "RECIPIENT", rcpt);
	env_put(&env, &n, "ORIGINAL_RECIPIENT", rcpt);
	lower[cut] = '\0';
	env_put(&env, &n, "LOCAL", lower);
	env_put(&env, &n, "DOMAIN", at ? at + 1 : L.myhostname);
	env_put(&env, &n, "EXTENSION", ext ? local + (ext - lower) : "");
	env_put(&env, &n, "HOME", *home);
	env_put(&env, &n, "USER", pw ? pw->pw_name : "");
	env_put(&env, &n, "LOGNAME", pw ? pw->pw_name : "");
	env_put(&env, &n, "SHELL", pw && pw->pw_shell && *pw->pw_shell ? pw->pw_shell : "/bin/sh");
	free(local);
	free(lower);
	*home = pw && pw->pw_dir ? xstrdup(pw->pw_dir) : NULL;
	return env;
}

static void free_env(char **env)
{
	for (size_t i = 0; env && env[i]; i++)
		free(env[i]);
	free(env);
}

/* The remote targets with the same list-owner sender as res->v[first], when first is the first of them
 * (NULL-terminated, the strings are res's); NULL when an earlier target already took them. */
static char **list_members(const struct lres_result *res, size_t first)
{
	const char *sender = res->v[first].sender;
	for (size_t j = 0; j < first; j++)
		if (res->v[j].kind == LRES_REMOTE && res->v[j].sender && strcmp(res->v[j].sender, sender) == 0)
			return NULL;
	char **v = NULL;
	size_t n = 0;
	for (size_t j = first; j < res->n; j++)
		if (res->v[j].kind == LRES_REMOTE && res->v[j].sender && strcmp(res->v[j].sender, sender) == 0) {
			v = xreallocarray(v, n + 2, sizeof(*v));
			v[n++] = res->v[j].addr;
			v[n] = NULL;
		}
	return v;
}

/* New mail in incoming/ (a list's resubmission): tell qmgr; its periodic scan is the fallback. */
static void wake_qmgr(void)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	buf_printf(&path, "%s/qmgr", config_str(L.cfg, "private_directory"));
	int fd = ipc_connect(path.data, 1000);
	if (fd >= 0) {
		struct ipc_msg *msg = ipc_msg_new(QP_WAKEUP);
		if (!ipc_send(fd, msg, 1000, &err))
			log_warn("qmgr wakeup: %s", buf_cstr(&err));
		ipc_msg_free(&msg);
		close(fd);
	}
	buf_free(&path);
	buf_free(&err);
}

/* Targets of one recipient that failed for good while others were delivered: each is answered to qmgr as a
 * bounced recipient of its own (LP_F_F_*), so the sender learns which alias target failed, and the delivered
 * ones are not tried again. */
#define LOCAL_FAILED_TARGET_MAX 1024

struct failed_targets {
	char **addr, **dsn, **text;
	size_t n;
};

static void failed_add(struct failed_targets *f, const struct lres_target *t, const char *rcpt, const char *dsn,
                       const char *text)
{
	/* capped below qmgr's address limit (QSTATE_ADDR_MAX), which would refuse a long command outright */
	struct buf a = BUF_INIT(BUF_NOLIMIT), x = BUF_INIT(BUF_NOLIMIT);
	/* the target as the alias wrote it: a command or file says more than the alias address it came from */
	if (t->kind == LRES_PIPE)
		buf_printf(&a, "|%s", t->maildir);
	else if (t->kind == LRES_FILE)
		buf_puts(&a, t->maildir);
	else
		buf_puts(&a, t->addr);
	if (a.len > LOCAL_FAILED_TARGET_MAX) {
		memcpy(a.data + LOCAL_FAILED_TARGET_MAX - 3, "...", 4);
		a.len = LOCAL_FAILED_TARGET_MAX;
	}
	buf_printf(&x, "%s (expanded from <%s>)", text, rcpt);
	f->addr = xreallocarray(f->addr, f->n + 1, sizeof(*f->addr));
	f->dsn = xreallocarray(f->dsn, f->n + 1, sizeof(*f->dsn));
	f->text = xreallocarray(f->text, f->n + 1, sizeof(*f->text));
	f->addr[f->n] = buf_steal(&a, NULL);
	f->dsn[f->n] = xstrdup(dsn);
	f->text[f->n] = buf_steal(&x, NULL);
	f->n++;
}

static void failed_free(struct failed_targets *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->addr[i]);
		free(f->dsn[i]);
		free(f->text[i]);
	}
	free(f->addr);
	free(f->dsn);
	free(f->text);
	*f = (struct failed_targets){ NULL, NULL, NULL, 0 };
}

/* Deliver one recipient; code 2/4/5 with dsn and text, remote targets appended to remote. On 2, failed holds
 * the targets that failed for good. */
static int deliver_rcpt(const struct ldeliver_msg *m, const char *rcpt, struct buf *dsn, struct buf *text,
                        struct lres_result *res, struct failed_targets *failed)
{
	struct lres_ops ops = {
		.account = lookup_account, .alias = lookup_alias,
		.system_user = L.system_users ? lookup_system : NULL, .forward = L.forward ? lookup_forward : NULL,
		.include = lookup_include, .is_local_domain = is_local_domain,
		.myhostname = L.myhostname, .postmaster_maildir = L.postmaster_maildir, .delims = L.delims,
		.max_depth = L.depth, .extension_folders = L.ext_folders,
	};
	alias_owner(&ops.alias_uid, &ops.alias_gid);
	enum lres_status st = lres_resolve(&ops, rcpt, res, dsn, text);
	if (st != LRES_OK)
		return st == LRES_TEMPFAIL ? 4 : 5;
	int worst = 0, delivered = 0;
	struct buf d1 = BUF_INIT(64), t1 = BUF_INIT(2048), last = BUF_INIT(2048);
	static const enum ldeliver_kind kinds[] = {
		[LRES_MAILDIR] = LDELIVER_MAILDIR, [LRES_FILE] = LDELIVER_FILE, [LRES_PIPE] = LDELIVER_PIPE,
	};
	for (size_t i = 0; i < res->n; i++) {
		struct lres_target *t = &res->v[i];
		char **members = NULL;
		if (t->kind == LRES_REMOTE) {
			/* remote members of a list with an owner go out in a new message from the owner; the others
			 * go back to qmgr as added recipients */
			if (!t->sender || !(members = list_members(res, i)))
				continue;
		}
		struct ldeliver_target dt = {
			.kind = kinds[t->kind], .rcpt = t->addr, .sender = t->sender, .path = t->maildir,
			.folder = t->folder, .quota = t->quota, .quota_bounce = L.quota_bounce,
			.switch_user = t->switch_user, .uid = t->uid, .gid = t->gid,
			.time_limit = L.command_time_limit,
		};
		if (geteuid() == 0 && (!dt.switch_user || dt.uid == 0)) {
			/* never write mailboxes or run commands as root: Maildirs belong to the virtual-mail user,
			 * files and commands to default_privs */
			dt.switch_user = true;
			dt.uid = t->kind == LRES_MAILDIR ? L.vuid : L.privs_uid;
			dt.gid = t->kind == LRES_MAILDIR ? L.vgid : L.privs_gid;
		}
		if (members) {
			dt.kind = LDELIVER_RESUBMIT;
			dt.rcpt = rcpt;
			dt.path = L.queue_dir;
			dt.rcpts = members;
			dt.switch_user = true;	/* the queue file belongs to mail_owner */
			dt.uid = L.vuid;
			dt.gid = L.vgid;
		}
		char **env = NULL;
		const char *home = NULL;
		if (t->kind == LRES_PIPE) {
			env = command_env(m, rcpt, t, dt.switch_user ? dt.uid : geteuid(), &home);
			dt.env = env;
			dt.home = home;
		}
		buf_reset(&d1);
		buf_reset(&t1);
		int c = (int)ldeliver(m, &dt, &d1, &t1);
		bool resubmit = members != NULL;
		if (resubmit && c == 2)
			L.resubmitted = true;
		if (c == 2 && resubmit) {
			/* every member by name: the new queue ID alone would leave "where did mail for X go" to the
			 * new message's own log lines */
			for (size_t j = 0; members[j]; j++)
				log_info("%s: to=<%s>, orig_to=<%s>, relay=local, dsn=%s, status=sent (%s)", m->queue_id,
				         log_safe(members[j], strlen(members[j]), 256), log_safe(rcpt, strlen(rcpt), 256),
				         buf_cstr(&d1), buf_cstr(&t1));
		} else if (c == 2 && t->kind != LRES_MAILDIR) {
			log_info("%s: to=<%s>, orig_to=<%s>, relay=local, dsn=%s, status=sent (%s)", m->queue_id,
			         log_safe(t->addr, strlen(t->addr), 256), log_safe(rcpt, strlen(rcpt), 256),
			         buf_cstr(&d1), buf_cstr(&t1));
		}
		free(members);
		free_env(env);
		free((char *)home);
		if (c == 2) {
			buf_reset(&last);
			buf_puts(&last, buf_cstr(&t1));
			delivered++;
			continue;
		}
		log_info("%s: to=<%s>, orig_to=<%s>, relay=local, dsn=%s, status=%s (%s)", m->queue_id,
		         log_safe(t->addr, strlen(t->addr), 256), log_safe(rcpt, strlen(rcpt), 256), buf_cstr(&d1),
		         c == 4 ? "deferred" : "bounced", buf_cstr(&t1));
		if (c == 5)
			failed_add(failed, t, rcpt, buf_cstr(&d1), buf_cstr(&t1));
		/* the first temporary failure decides; a permanent one only when nothing else worked */
		if (c == 4 && worst != 4) {
			worst = 4;
			buf_reset(dsn);
			buf_reset(text);
			buf_puts(dsn, buf_cstr(&d1));
			buf_puts(text, buf_cstr(&t1));
		} else if (c == 5 && worst == 0) {
			worst = 5;
			buf_puts(dsn, buf_cstr(&d1));
			buf_puts(text, buf_cstr(&t1));
		}
	}
	buf_free(&d1);
	buf_free(&t1);
	if (worst == 4 || (worst == 5 && delivered == 0)) {
		/* deferred: the failed targets are tried again with the rest (delivered ones have receipts);
		 * all failed: the recipient's own bounce says why */
		failed_free(failed);
		buf_free(&last);
		return worst;
	}
	buf_reset(dsn);
	buf_reset(text);
	buf_puts(dsn, "2.0.0");
	size_t remote = 0;
	for (size_t i = 0; i < res->n; i++)
		remote += res->v[i].kind == LRES_REMOTE && !res->v[i].sender;
	if (delivered == 1 && res->n == 1)
		buf_puts(text, buf_cstr(&last));
	else if (remote == 0 && failed->n)
		buf_printf(text, "delivered to %d mailbox%s, %zu failed", delivered, delivered == 1 ? "" : "es",
		           failed->n);
	else if (remote == 0)
		buf_printf(text, "delivered to %d mailboxes", delivered);
	else if (delivered == 0)
		buf_printf(text, "alias expanded to %zu remote address%s", remote, remote == 1 ? "" : "es");
	else
		buf_printf(text, "delivered to %d mailbox%s, %zu remote address%s added", delivered,
		           delivered == 1 ? "" : "es", remote, remote == 1 ? "" : "es");
	buf_free(&last);
	return 2;
}

/* Did smtpd enforce a DMARC quarantine? Its verdict is the first header field of the content (authres.h). */
static bool quarantined(const struct ldeliver_msg *m)
{
	size_t want = m->content_len < 65536 ? (size_t)m->content_len : 65536, got = 0;
	char *head = xmalloc(want + 1);
	bool q = ldeliver_read_at(m->fd, head, want, m->content_offset, &got) &&
	         authres_dmarc_quarantined(head, got, L.myhostname);
	free(head);
	return q;
}

/* Has local been given this message before? The queue file's owner-execute bit says so (as in Postfix, a
 * mode bit as a flag on the file): set before the first delivery, so a later request (a retry after a crash or a
 * restart, or the next batch of recipients) knows that a Maildir copy may exist under its deterministic name.
 * Not synced: ext4 commits this change no later than the delivery's own fsync of new/. */
static bool started_before(int fd, const char *id)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return true;		/* cannot tell: look */
	if (st.st_mode & S_IXUSR)
		return true;
	if (fchmod(fd, (st.st_mode & 07777) | S_IXUSR) != 0)
		log_warn("%s: cannot mark the queue file as started: %s", id, strerror(errno));
	return false;
}

static struct ipc_msg *handle(struct ipc_msg *req)
{
	const char *id = "", *sender = "";
	struct ipc_msg *reply = ipc_msg_reply_to(req, LP_RESULT);
	struct buf err = BUF_INIT(1024), dsn = BUF_INIT(64), text = BUF_INIT(4096);
	struct qfile_envelope env;

	ipc_get_str(req, LP_F_QUEUE_ID, &id, NULL);
	ipc_get_str(req, LP_F_SENDER, &sender, NULL);
	int fd = qproto_open_job(req, L.queue_dir, &env, &err);
	bool have_env = fd >= 0;
	const char *fail = have_env ? NULL : buf_cstr(&err);
	struct ipc_iter ii, ir;
	uint32_t idx;
	const char *rcpt;
	ipc_iter_init(&ii, req, LP_F_IDX);
	ipc_iter_init(&ir, req, LP_F_RCPT);
	struct buf rdir = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&rdir, "%s/receipts/%s", L.queue_dir, id);
	struct ldeliver_msg m = { .queue_id = id, .receipt_dir = fail ? NULL : rdir.data, .sender = sender, .fd = fd,
		                  .content_offset = have_env ? env.content_offset : 0,
		                  .content_len = have_env ? env.content_len : 0 };
	m.junk = have_env && quarantined(&m);
	m.retry = have_env && started_before(fd, id);
	m.arrival = have_env && env.arrival > 0 ? (int64_t)env.arrival : 0;
	while (ipc_iter_u32(&ii, &idx) && ipc_iter_str(&ir, &rcpt, NULL)) {
		m.rcpt_idx = idx;
		int code = 4;
		struct lres_result res = { NULL, 0 };
		struct failed_targets failed = { NULL, NULL, NULL, 0 };
		buf_reset(&dsn);
		buf_reset(&text);
		if (fail) {
			buf_puts(&dsn, "4.3.0");
			buf_puts(&text, fail);
		} else {
			code = deliver_rcpt(&m, rcpt, &dsn, &text, &res, &failed);
		}
		ipc_put_u32(reply, LP_F_R_IDX, idx);
		ipc_put_u32(reply, LP_F_R_CODE, (uint32_t)code);
		ipc_put_str(reply, LP_F_R_DSN, buf_cstr(&dsn));
		ipc_put_str(reply, LP_F_R_TEXT, buf_cstr(&text));
		if (code == 2)
			for (size_t i = 0; i < res.n; i++)
				if (res.v[i].kind == LRES_REMOTE && !res.v[i].sender) {
					ipc_put_u32(reply, LP_F_A_IDX, idx);
					ipc_put_str(reply, LP_F_A_ADDR, res.v[i].addr);
				}
		for (size_t i = 0; code == 2 && i < failed.n; i++) {
			ipc_put_u32(reply, LP_F_F_IDX, idx);
			ipc_put_str(reply, LP_F_F_ADDR, failed.addr[i]);
			ipc_put_str(reply, LP_F_F_DSN, failed.dsn[i]);
			ipc_put_str(reply, LP_F_F_TEXT, failed.text[i]);
		}
		failed_free(&failed);
		lres_result_free(&res);
	}
	if (L.resubmitted) {
		L.resubmitted = false;
		wake_qmgr();
	}
	if (have_env)
		qfile_envelope_free(&env);
	if (fd >= 0)
		close(fd);
	buf_free(&rdir);
	buf_free(&err);
	buf_free(&dsn);
	buf_free(&text);
	return reply;
}

static void serve(int fd, const struct daemon_peer *peer, struct daemon_ctx *ctx)
{
	(void)peer;
	(void)ctx;
	struct buf err = BUF_INIT(1024);
	if (!ipc_peer_check(fd, &L.policy, &err)) {
		log_warn("refused connection: %s", buf_cstr(&err));
		buf_free(&err);
		return;
	}
	for (;;) {
		struct ipc_msg *req = NULL;
		buf_reset(&err);
		int r = ipc_recv(fd, &qproto_local, 0, LOCAL_IDLE_MS, &req, &err);
		if (r <= 0) {
			if (r < 0)
				log_warn("qmgr connection: %s", buf_cstr(&err));
			break;
		}
		struct ipc_msg *reply = handle(req);
		ipc_msg_free(&req);
		bool ok = ipc_send(fd, reply, 10000, &err);
		ipc_msg_free(&reply);
		if (!ok) {
			log_warn("qmgr connection: %s", buf_cstr(&err));
			break;
		}
	}
	buf_free(&err);
}

static void init(struct daemon_ctx *ctx)
{
	struct config *cfg = ctx->cfg;
	L.cfg = cfg;
	L.queue_dir = xstrdup(config_str(cfg, "queue_directory"));
	L.accounts_path = xstrdup(config_str(cfg, "accounts_database"));
	L.aliases_path = xstrdup(config_str(cfg, "alias_maps"));
	L.delims = xstrdup(config_str(cfg, "recipient_delimiter"));
	L.postmaster_maildir = xstrdup(config_str(cfg, "local_postmaster_maildir"));
	L.myhostname = xstrdup(config_str(cfg, "myhostname"));
	L.system_users = config_bool(cfg, "local_system_users");
	L.forward = config_bool(cfg, "local_forward_files");
	L.depth = (unsigned)config_int(cfg, "local_alias_depth_limit", 1, 1000);
	L.ext_folders = config_bool(cfg, "deliver_to_extension_folder");
	L.command_time_limit = (unsigned)config_time(cfg, "command_time_limit", 1, 86400);
	const char *qa = config_str(cfg, "quota_exceeded_action");
	if (strcmp(qa, "bounce") == 0)
		L.quota_bounce = true;
	else if (strcmp(qa, "defer") != 0)
		fatalx("quota_exceeded_action = %s: must be defer or bounce", qa);
	const char *privs = config_str(cfg, "default_privs");
	struct passwd *ppw = getpwnam(privs);
	if (ppw && ppw->pw_uid != 0) {
		L.privs_uid = ppw->pw_uid;
		L.privs_gid = ppw->pw_gid;
	} else if (geteuid() == 0) {
		fatalx("default_privs %s: no such user, or root", privs);
	} else {
		L.privs_uid = geteuid();	/* not root: everything runs as ourselves anyway */
		L.privs_gid = getegid();
	}
	L.mydest = config_list(cfg, "mydestination", &L.nmydest);
	L.vdomains = config_list(cfg, "virtual_mailbox_domains", &L.nvdomains);
	const char *owner = config_str(cfg, "mail_owner");
	struct passwd *pw = getpwnam(owner);
	if (pw) {
		L.vuid = pw->pw_uid;
		L.vgid = pw->pw_gid;
	} else if (geteuid() == 0) {
		fatalx("mail_owner %s: no such user", owner);
	}
	/* qmgr runs as mail_owner; root and our own uid may connect too */
	L.owner_uid = pw ? pw->pw_uid : geteuid();
	L.policy = (struct ipc_peer_policy){ .allow_root = true, .allow_same_uid = true, .uids = &L.owner_uid,
		                             .nuids = 1 };
}

int main(int argc, char **argv)
{
	static const struct daemon_ops ops = {
		.name = "local", .mode = DAEMON_SINGLE, .init = init, .serve = serve,
	};
	return daemon_main(argc, argv, &ops);
}
