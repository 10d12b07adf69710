/* Privilege-separated login; see prelogin.h. The handover is one IPC frame on a socketpair made before the fork
 * (with the proxy socket attached for TLS); the parent trusts only its fields' shapes and refuses uid 0. */
#include "prelogin.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "accounts_auth.h"
#include "alloc.h"
#include "ipc.h"
#include "log.h"
#include "privs.h"

#define PRELOGIN_HANDOFF 0x0b01u
#define TAG_USER 1
#define TAG_MAILDIR 2
#define TAG_UID 3
#define TAG_GID 4
#define TAG_IMAP_TAG 5
#define TAG_INPUT 6
#define TAG_TLS 7
#define TAG_TOKEN 8
#define PRELOGIN_MAX_FRAME (1024u * 1024)
#define PRELOGIN_INPUT_MAX (512u * 1024)	/* pipelined bytes carried over; more is a client to drop */
#define PROXY_BUF 16384

static const struct ipc_field_def handoff_fields[] = {
	{ TAG_USER, IPC_T_STR, IPC_REQUIRED, "user" },
	{ TAG_MAILDIR, IPC_T_STR, IPC_REQUIRED, "maildir" },
	{ TAG_UID, IPC_T_U32, IPC_REQUIRED, "uid" },
	{ TAG_GID, IPC_T_U32, IPC_REQUIRED, "gid" },
	{ TAG_IMAP_TAG, IPC_T_STR, 0, "tag" },
	{ TAG_INPUT, IPC_T_BYTES, 0, "input" },
	{ TAG_TLS, IPC_T_U32, IPC_REQUIRED, "tls" },
	{ TAG_TOKEN, IPC_T_STR, 0, "token" },
	{ 0, 0, 0, NULL },
};
static const struct ipc_msg_def prelogin_msgs[] = {
	{ PRELOGIN_HANDOFF, "handoff", handoff_fields, IPC_MSG_FD },
	{ 0, NULL, NULL, 0 },
};
static const struct ipc_proto prelogin_proto = { "prelogin", prelogin_msgs };

static int ctl_fd = -1;	/* in a login child: its end of the socketpair to the root parent */

bool prelogin_possible(const char *login_user)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return false;
	pw = getpwnam(login_user);
	return pw != NULL && pw->pw_uid != 0;
}

bool prelogin_active(void)
{
	return ctl_fd >= 0;
}

void prelogin_login_clear(struct prelogin_login *l)
{
	xfree(&l->user);
	xfree(&l->maildir);
	xfree(&l->tag);
	if (l->token)
		explicit_bzero(l->token, strlen(l->token));
	xfree(&l->token);
	if (l->input.data)
		OPENSSL_cleanse(l->input.data, l->input.len);
	buf_free(&l->input);
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

void prelogin_become(uid_t uid, gid_t gid)
{
	if (uid == 0)
		fatalx("refusing to serve a mailbox as root");
	if (geteuid() != 0) {
		if (geteuid() != uid)
			fatalx("cannot switch to uid %ld: running as uid %ld", (long)uid, (long)geteuid());
		return;
	}
	privs_drop_ids(uid, gid, NULL, NULL);
}

bool prelogin_confirm(struct prelogin_login *l, const char *auth_socket, const char *mail_owner, int timeout_ms,
                      struct buf *err)
{
	struct accounts_user u;
	enum accounts_auth_status st;
	bool ok = false;

	memset(&u, 0, sizeof(u));
	if (l->token == NULL) {
		buf_puts(err, "no login token");
		return false;
	}
	st = accounts_auth_redeem(auth_socket, l->token, timeout_ms, &u, err);
	if (st != ACCOUNTS_AUTH_OK || !u.enabled || u.maildir == NULL || u.maildir[0] != '/' ||
	    strcmp(u.address, l->user) != 0) {
		if (err->len == 0)
			buf_printf(err, "auth does not confirm an enabled account %s for this login", l->user);
		goto out;
	}
	if (u.uid == 0) {
		struct passwd *pw = getpwnam(mail_owner);
		if (pw == NULL || pw->pw_uid == 0) {
			buf_printf(err, "account %s belongs to mail_owner %s, which is root or unknown", l->user, mail_owner);
			goto out;
		}
		u.uid = (uint32_t)pw->pw_uid;
		u.gid = (uint32_t)pw->pw_gid;
	}
	free(l->maildir);
	l->maildir = xstrdup(u.maildir);
	l->uid = (uid_t)u.uid;
	l->gid = (gid_t)u.gid;
	ok = true;
out:
	accounts_user_free(&u);
	return ok;
}

/* The handover frame: l's fields with input (the client's pipelined bytes) and the TLS flag. */
static struct ipc_msg *handoff_msg(const struct prelogin_login *l, const struct buf *input, bool tls)
{
	struct ipc_msg *m = ipc_msg_new(PRELOGIN_HANDOFF);

	ipc_put_str(m, TAG_USER, l->user);
	ipc_put_str(m, TAG_MAILDIR, l->maildir);
	ipc_put_u32(m, TAG_UID, (uint32_t)l->uid);
	ipc_put_u32(m, TAG_GID, (uint32_t)l->gid);
	if (l->tag)
		ipc_put_str(m, TAG_IMAP_TAG, l->tag);
	if (l->token)
		ipc_put_str(m, TAG_TOKEN, l->token);
	if (input->len)
		ipc_put_bytes(m, TAG_INPUT, input->data, input->len);
	ipc_put_u32(m, TAG_TLS, tls);
	return m;
}

/* ---- login child ---- */

static void child_start(struct daemon_ctx *ctx, int ctl, const char *login_user)
{
	/* The child never serves the service's other connections nor speaks to master. */
	daemon_detach_child(ctx);
	ctl_fd = ctl;
	privs_drop(login_user, NULL);
	if (geteuid() == 0)
		fatalx("login user %s is root: refusing to read a client's input as root", login_user);
	/* without the root parent a login can go nowhere: end at once rather than finish the session */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* Copy bytes both ways between the TLS connection and the post-login process until either side closes. Both fds
 * are non-blocking; each direction has one buffer, so neither side can make the other one wait forever. */
static void proxy(SSL *ssl, int cfd, int pfd)
{
	char up[PROXY_BUF], down[PROXY_BUF];
	size_t ulen = 0, uoff = 0, dlen = 0, doff = 0;
	bool client_eof = false;

	for (;;) {
		short cev = 0, pev = 0;
		bool progress = false;

		if (ulen == 0 && !client_eof) {
			ERR_clear_error();
			int n = SSL_read(ssl, up, sizeof(up));
			if (n > 0) {
				ulen = (size_t)n;
				uoff = 0;
				progress = true;
			} else {
				int e = SSL_get_error(ssl, n);
				if (e == SSL_ERROR_WANT_READ)
					cev |= POLLIN;
				else if (e == SSL_ERROR_WANT_WRITE)
					cev |= POLLOUT;
				else
					client_eof = true;
			}
		}
		if (ulen > 0) {
			ssize_t w = send(pfd, up + uoff, ulen - uoff, MSG_NOSIGNAL);
			if (w > 0) {
				uoff += (size_t)w;
				if (uoff == ulen)
					ulen = 0;
				progress = true;
			} else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
				pev |= POLLOUT;
			} else {
				break;	/* the post-login process is gone */
			}
		}
		if (client_eof && ulen == 0)
			break;
		if (dlen == 0) {
			ssize_t r = read(pfd, down, sizeof(down));
			if (r > 0) {
				dlen = (size_t)r;
				doff = 0;
				progress = true;
			} else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
				pev |= POLLIN;
			} else {
				/* the session ended: say goodbye properly */
				(void)SSL_shutdown(ssl);
				break;
			}
		}
		if (dlen > 0) {
			ERR_clear_error();
			int n = SSL_write(ssl, down + doff, (int)(dlen - doff));
			if (n > 0) {
				doff += (size_t)n;
				if (doff == dlen)
					dlen = 0;
				progress = true;
			} else {
				int e = SSL_get_error(ssl, n);
				if (e == SSL_ERROR_WANT_WRITE)
					cev |= POLLOUT;
				else if (e == SSL_ERROR_WANT_READ)
					cev |= POLLIN;
				else
					break;
			}
		}
		if (progress)
			continue;
		struct pollfd p[2] = { { cfd, cev, 0 }, { pfd, pev, 0 } };
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if ((p[1].revents & (POLLHUP | POLLERR)) && !(p[1].revents & POLLIN) && dlen == 0)
			break;
	}
	OPENSSL_cleanse(up, sizeof(up));
}

void prelogin_handoff(struct stream *s, const struct prelogin_login *l)
{
	struct ipc_msg *m;
	struct buf err = BUF_INIT(1024), input = BUF_INIT(PRELOGIN_INPUT_MAX);
	bool tls = stream_is_tls(s);
	int sp[2] = { -1, -1 };

	if (ctl_fd < 0)
		panic("prelogin_handoff outside a login child");
	if (stream_flush(s) != STREAM_OK)
		_exit(0);
	if (!stream_take_input(s, &input)) {
		log_warn("login of %s: more than %u bytes pipelined after it: closing", l->user, PRELOGIN_INPUT_MAX);
		_exit(0);
	}
	m = handoff_msg(l, &input, tls);
	if (input.data)
		OPENSSL_cleanse(input.data, input.len);
	buf_free(&input);
	if (tls) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
			fatal("login handover: socketpair");
		ipc_msg_set_fd(m, sp[1]);	/* closed here once sent */
	}
	if (!ipc_send(ctl_fd, m, 10000, &err))
		fatalx("login handover: %s", buf_cstr(&err));
	ipc_msg_free(&m);
	buf_free(&err);
	close(ctl_fd);
	if (!tls)
		_exit(0);	/* the parent serves the connection itself; what we still hold is dropped unread */
	/* from here on only bytes pass: the parent's exit ends the session, and it must not end the proxy early */
	prctl(PR_SET_PDEATHSIG, 0);
	int fl = fcntl(sp[0], F_GETFL);
	if (fl < 0 || fcntl(sp[0], F_SETFL, fl | O_NONBLOCK) < 0)
		fatal("login proxy: socket");
	proxy(stream_ssl(s), stream_fd(s), sp[0]);
	_exit(0);
}

/* ---- root parent ---- */

static bool read_handoff(const struct ipc_msg *m, struct prelogin_login *out, struct buf *err)
{
	const char *s;
	const void *p;
	size_t n;
	uint32_t uid, gid, tls;

	ipc_get_u32(m, TAG_UID, &uid);
	ipc_get_u32(m, TAG_GID, &gid);
	ipc_get_u32(m, TAG_TLS, &tls);
	if (uid == 0 || uid == (uint32_t)-1 || gid == (uint32_t)-1) {
		buf_printf(err, "uid %u gid %u refused", uid, gid);
		return false;
	}
	if (tls != (m->fd >= 0)) {
		buf_puts(err, "TLS flag and proxy socket disagree");
		return false;
	}
	ipc_get_str(m, TAG_USER, &s, NULL);
	out->user = xstrdup(s);
	ipc_get_str(m, TAG_MAILDIR, &s, NULL);
	if (s[0] != '/') {
		buf_puts(err, "relative Maildir path");
		return false;
	}
	out->maildir = xstrdup(s);
	if (ipc_get_str(m, TAG_IMAP_TAG, &s, NULL))
		out->tag = xstrdup(s);
	if (ipc_get_str(m, TAG_TOKEN, &s, NULL))
		out->token = xstrdup(s);
	if (ipc_get_bytes(m, TAG_INPUT, &p, &n) && !buf_append(&out->input, p, n)) {
		buf_puts(err, "too much pipelined input");
		return false;
	}
	out->uid = (uid_t)uid;
	out->gid = (gid_t)gid;
	out->tls = tls != 0;
	return true;
}

void prelogin_login_init(struct prelogin_login *l)
{
	memset(l, 0, sizeof(*l));
	l->fd = -1;
	buf_init(&l->input, PRELOGIN_INPUT_MAX);
}

bool prelogin_decode(const void *frame, size_t len, bool with_fd, struct prelogin_login *out, struct buf *err)
{
	struct ipc_msg *m = NULL;
	bool ok;

	prelogin_login_init(out);
	if (!ipc_frame_decode(&prelogin_proto, frame, len, PRELOGIN_MAX_FRAME, -1, &m, err))
		return false;
	if (m->type != PRELOGIN_HANDOFF) {
		buf_printf(err, "unexpected message type %#x", m->type);
		ipc_msg_free(&m);
		return false;
	}
	m->fd = with_fd ? 0 : -1;	/* only whether one came along matters here */
	ok = read_handoff(m, out, err);
	m->fd = -1;
	ipc_msg_free(&m);
	if (!ok)
		prelogin_login_clear(out);
	return ok;
}

bool prelogin_encode(const struct prelogin_login *l, bool tls, struct buf *out)
{
	struct ipc_msg *m = handoff_msg(l, &l->input, tls);
	bool ok = ipc_msg_encode(m, out);

	ipc_msg_free(&m);
	return ok;
}

static void reap(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

bool prelogin_run(struct daemon_ctx *ctx, int client_fd, const char *login_user, prelogin_fn *fn, void *arg,
                  struct prelogin_login *out)
{
	struct buf err = BUF_INIT(1024);
	struct ipc_msg *m = NULL;
	int sv[2];
	pid_t pid;
	bool ok = false;

	prelogin_login_init(out);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		log_error("login: socketpair: %m");
		return false;
	}
	if ((pid = fork()) < 0) {
		log_error("login: fork: %m");
		close(sv[0]);
		close(sv[1]);
		return false;
	}
	if (pid == 0) {
		close(sv[0]);
		child_start(ctx, sv[1], login_user);
		int own = dup(client_fd);
		if (own < 0)
			fatal("login: dup");
		fn(own, arg);
		_exit(0);
	}
	close(sv[1]);
	/* no timeout: the child's session has its own, and a login may take as long as the client keeps typing */
	int r = ipc_recv(sv[0], &prelogin_proto, PRELOGIN_MAX_FRAME, -1, &m, &err);
	close(sv[0]);
	if (r < 0)
		log_error("login handover from pid %ld: %s", (long)pid, buf_cstr(&err));
	if (r > 0) {
		int pfd = ipc_msg_take_fd(m);
		m->fd = pfd;	/* read_handoff checks it against the TLS flag */
		ok = read_handoff(m, out, &err);
		m->fd = -1;
		if (!ok) {
			log_error("login handover from pid %ld refused: %s", (long)pid, buf_cstr(&err));
			if (pfd >= 0)
				close(pfd);
		} else if (pfd >= 0) {
			out->fd = pfd;	/* the child stays as the TLS proxy; it is reaped when this process exits */
		} else {
			/* the child must be gone before this process reads the connection it was reading */
			reap(pid);
			pid = -1;
			if ((out->fd = dup(client_fd)) < 0) {
				log_error("login: dup: %m");
				ok = false;
			}
		}
		ipc_msg_free(&m);
	}
	if (!ok) {
		if (pid > 0) {
			/* normally gone already; after a refused handover it may be a proxy still waiting on its client */
			kill(pid, SIGKILL);
			reap(pid);
		}
		prelogin_login_clear(out);
	}
	buf_free(&err);
	return ok;
}
