/* local: Maildir delivery (DAEMON_SINGLE: one qmgr connection per process, master runs up to maxproc of them,
 * so a slow mailbox holds up only its own process). For each LP_DELIVER request it resolves every recipient
 * (resolve.c), delivers to each mailbox (deliver.c, as the mailbox owner when running as root) and answers one
 * result per recipient, plus the remote addresses aliases expanded to. */
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
	bool system_users, forward;
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

static int lookup_account(const char *addr, char **maildir, uint32_t *uid, uint32_t *gid, void *arg, struct buf *err)
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
	char chunk[4096];
	ssize_t k;
	while ((k = read(fd, chunk, sizeof(chunk))) > 0)
		if (!buf_append(&data, chunk, (size_t)k))
			break;
	if (k < 0) {
		buf_printf(err, "read %s: %s", path.data, strerror(errno));
		r = -1;
		goto out;
	}
	buf_reset(value);
	/* one target list: lines joined with commas, comment lines dropped */
	for (char *line = data.data; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		char *t = str_trim(line);
		if (*t && *t != '#') {
			if (value->len)
				buf_putc(value, ',');
			buf_puts(value, t);
		}
		line = nl ? nl + 1 : NULL;
	}
	r = 1;
out:
	if (fd >= 0)
		close(fd);
	buf_free(&path);
	buf_free(&data);
	return r;
}

/* Deliver one recipient; code 2/4/5 with dsn and text, remote targets appended to remote. */
static int deliver_rcpt(const struct ldeliver_msg *m, const char *rcpt, struct buf *dsn, struct buf *text,
                        struct lres_result *res)
{
	struct lres_ops ops = {
		.account = lookup_account, .alias = lookup_alias,
		.system_user = L.system_users ? lookup_system : NULL, .forward = L.forward ? lookup_forward : NULL,
		.is_local_domain = is_local_domain,
		.myhostname = L.myhostname, .postmaster_maildir = L.postmaster_maildir, .delims = L.delims,
		.max_depth = L.depth,
	};
	enum lres_status st = lres_resolve(&ops, rcpt, res, dsn, text);
	if (st != LRES_OK)
		return st == LRES_TEMPFAIL ? 4 : 5;
	int worst = 0, delivered = 0;
	struct buf d1 = BUF_INIT(64), t1 = BUF_INIT(2048);
	for (size_t i = 0; i < res->n; i++) {
		struct lres_target *t = &res->v[i];
		if (t->kind != LRES_MAILDIR)
			continue;
		bool sw = t->switch_user;
		uid_t uid = t->uid;
		gid_t gid = t->gid;
		if (!sw && geteuid() == 0) {
			/* never write mailboxes as root: the virtual-mail user owns them */
			sw = true;
			uid = L.vuid;
			gid = L.vgid;
		}
		buf_reset(&d1);
		buf_reset(&t1);
		int c = (int)ldeliver_maildir(m, t->addr, t->maildir, sw, uid, gid, &d1, &t1);
		if (c == 2) {
			delivered++;
			continue;
		}
		log_info("%s: to=<%s>, orig_to=<%s>, relay=local, dsn=%s, status=%s (%s)", m->queue_id,
		         log_safe(t->addr, strlen(t->addr), 256), log_safe(rcpt, strlen(rcpt), 256), buf_cstr(&d1),
		         c == 4 ? "deferred" : "bounced", buf_cstr(&t1));
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
	if (worst == 4 || (worst == 5 && delivered == 0))
		return worst;
	buf_reset(dsn);
	buf_reset(text);
	buf_puts(dsn, "2.0.0");
	size_t remote = 0;
	for (size_t i = 0; i < res->n; i++)
		remote += res->v[i].kind == LRES_REMOTE;
	if (delivered == 1 && res->n == 1)
		buf_puts(text, "delivered to maildir");
	else if (remote == 0)
		buf_printf(text, "delivered to %d maildirs", delivered);
	else if (delivered == 0)
		buf_printf(text, "alias expanded to %zu remote address%s", remote, remote == 1 ? "" : "es");
	else
		buf_printf(text, "delivered to %d maildir%s, %zu remote address%s added", delivered,
		           delivered == 1 ? "" : "s", remote, remote == 1 ? "" : "es");
	return 2;
}

static struct ipc_msg *handle(struct ipc_msg *req)
{
	const char *id, *dir, *sender;
	struct ipc_msg *reply = ipc_msg_reply_to(req, LP_RESULT);
	struct buf path = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024), dsn = BUF_INIT(64), text = BUF_INIT(4096);
	struct qfile_envelope env;
	int fd = -1;
	bool have_env = false;

	ipc_get_str(req, LP_F_QUEUE_ID, &id, NULL);
	ipc_get_str(req, LP_F_DIR, &dir, NULL);
	ipc_get_str(req, LP_F_SENDER, &sender, NULL);
	const char *fail = NULL;
	if (!qfile_id_valid(id) || (strcmp(dir, "active") != 0 && strcmp(dir, "deferred") != 0)) {
		fail = "bad queue file name in request";
	} else {
		buf_printf(&path, "%s/%s/%s", L.queue_dir, dir, id);
		fd = open(path.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			buf_printf(&err, "open queue file %s: %s", path.data, strerror(errno));
		else
			have_env = qfile_read_envelope(fd, &env, &err);
		if (!have_env)
			fail = buf_cstr(&err);
	}
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
	while (ipc_iter_u32(&ii, &idx) && ipc_iter_str(&ir, &rcpt, NULL)) {
		m.rcpt_idx = idx;
		int code = 4;
		struct lres_result res = { NULL, 0 };
		buf_reset(&dsn);
		buf_reset(&text);
		if (fail) {
			buf_puts(&dsn, "4.3.0");
			buf_puts(&text, fail);
		} else {
			code = deliver_rcpt(&m, rcpt, &dsn, &text, &res);
		}
		ipc_put_u32(reply, LP_F_R_IDX, idx);
		ipc_put_u32(reply, LP_F_R_CODE, (uint32_t)code);
		ipc_put_str(reply, LP_F_R_DSN, buf_cstr(&dsn));
		ipc_put_str(reply, LP_F_R_TEXT, buf_cstr(&text));
		if (code == 2)
			for (size_t i = 0; i < res.n; i++)
				if (res.v[i].kind == LRES_REMOTE) {
					ipc_put_u32(reply, LP_F_A_IDX, idx);
					ipc_put_str(reply, LP_F_A_ADDR, res.v[i].addr);
				}
		lres_result_free(&res);
	}
	if (have_env)
		qfile_envelope_free(&env);
	if (fd >= 0)
		close(fd);
	buf_free(&path);
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
