/* IPC over UNIX stream sockets: listening and connecting, peer credentials (SO_PEERCRED), descriptor passing
 * (SCM_RIGHTS) and the blocking send/receive/call used by short-lived processes. See ipc.h. */
#include "ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "ipc_chan.h"
#include "log.h"

#define IPC_READ_CHUNK 65536

static bool make_sun(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path)) {
		errno = ENAMETOOLONG;
		return false;
	}
	memcpy(sun->sun_path, path, strlen(path) + 1);
	return true;
}

int ipc_listen(const char *path, mode_t mode, int backlog)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t old;
	int fd, rc, saved;

	if (!make_sun(path, &sun))
		return -1;
	if (lstat(path, &st) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			errno = EEXIST;
			return -1;
		}
		/* a socket someone still accepts on is not stale: stealing it would orphan a running daemon */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe < 0)
			return -1;
		rc = connect(probe, (struct sockaddr *)&sun, sizeof(sun));
		saved = errno;
		close(probe);
		if (rc == 0) {
			errno = EADDRINUSE;
			return -1;
		}
		/* only "nobody listens" proves it stale; anything else (EACCES, ...) is for the caller to see */
		if (saved != ECONNREFUSED && saved != ENOENT) {
			errno = saved;
			return -1;
		}
		if (unlink(path) < 0 && errno != ENOENT)
			return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* bind under a tight umask so the socket never exists with looser permissions than asked */
	old = umask(0777 & ~mode);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0 || chmod(path, mode) < 0 || listen(fd, backlog) < 0) {
		saved = errno;
		if (rc == 0)
			unlink(path);
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline (-1: none) for poll(); 0 once it has passed. */
static int left_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > 1000000000 ? 1000000000 : (int)left;
}

static int64_t deadline_after(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

int ipc_connect(const char *path, int timeout_ms)
{
	struct sockaddr_un sun;
	int64_t deadline = deadline_after(timeout_ms);
	int fd, saved;

	if (!make_sun(path, &sun))
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	/* A non-blocking UNIX connect fails with EAGAIN while the listener's backlog is full (Linux);
	 * there is nothing to poll on, so retry briefly until the deadline. */
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == EISCONN)	/* an interrupted attempt went through after all */
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || left_ms(deadline) == 0) {
			saved = errno == EAGAIN ? ETIMEDOUT : errno;
			close(fd);
			errno = saved;
			return -1;
		}
		poll(NULL, 0, 10);
	}
	return fd;
}

bool ipc_peer_cred(int fd, uid_t *uid, gid_t *gid, pid_t *pid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return false;
	if (len != sizeof(cr)) {
		errno = EPROTO;
		return false;
	}
	if (uid)
		*uid = cr.uid;
	if (gid)
		*gid = cr.gid;
	if (pid)
		*pid = cr.pid;
	return true;
}

bool ipc_peer_allowed(const struct ipc_peer_policy *pol, uid_t uid, gid_t gid)
{
	if (pol->allow_root && uid == 0)
		return true;
	if (pol->allow_same_uid && uid == geteuid())
		return true;
	for (size_t i = 0; i < pol->nuids; i++)
		if (pol->uids[i] == uid)
			return true;
	for (size_t i = 0; i < pol->ngids; i++)
		if (pol->gids[i] == gid)
			return true;
	return false;
}

bool ipc_peer_check(int fd, const struct ipc_peer_policy *pol, struct buf *err)
{
	uid_t uid;
	gid_t gid;
	pid_t pid;

	if (!ipc_peer_cred(fd, &uid, &gid, &pid)) {
		buf_printf(err, "cannot read peer credentials: %s", strerror(errno));
		return false;
	}
	if (!ipc_peer_allowed(pol, uid, gid)) {
		buf_printf(err, "peer pid %ld uid %lu gid %lu not allowed", (long)pid, (unsigned long)uid,
		           (unsigned long)gid);
		return false;
	}
	return true;
}

/* ---- descriptor-aware socket I/O ---- */

ssize_t ipc_reader_read(struct ipc_reader *r, int sock, struct buf *err)
{
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int) * 4)];
	} cbuf;
	struct msghdr mh;
	struct iovec iov;
	struct cmsghdr *cm;
	size_t want = ipc_reader_want(r);
	ssize_t n;
	bool bad = false;

	if (want == 0)
		panic("ipc_reader_read: a whole frame is waiting; call ipc_reader_next() first");
	if (want > IPC_READ_CHUNK)
		want = IPC_READ_CHUNK;
	if (!buf_reserve(&r->in, want)) {
		buf_printf(err, "IPC frame exceeds %zu bytes", r->max_frame);
		errno = EPROTO;
		return -1;
	}
	iov.iov_base = r->in.data + r->in.len;
	iov.iov_len = want;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf.space;
	mh.msg_controllen = sizeof(cbuf.space);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (bad)
				close(fd);
			else if (!ipc_reader_feed_fd(r, fd, err))
				bad = true;
		}
	}
	if (!bad && (mh.msg_flags & MSG_CTRUNC)) {
		buf_printf(err, "too many descriptors received with one IPC frame");
		bad = true;
	}
	if (bad) {
		errno = EPROTO;
		return -1;
	}
	if (n > 0 && !ipc_reader_feed(r, iov.iov_base, (size_t)n, err)) {
		errno = EPROTO;
		return -1;
	}
	return n;
}

/* Write all of p (with fd attached to the first byte when fd >= 0) before deadline. */
static bool send_all(int sock, const uint8_t *p, size_t len, int fd, int64_t deadline, struct buf *err)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = ipc_chan_send(sock, p + off, len - off, off == 0 ? fd : -1);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = { sock, POLLOUT, 0 };
			int rc = poll(&pfd, 1, left_ms(deadline));

			if (rc < 0 && errno == EINTR)
				continue;
			if (rc == 0) {
				buf_printf(err, "IPC send timed out");
				return false;
			}
			if (rc < 0) {
				buf_printf(err, "IPC send: poll: %s", strerror(errno));
				return false;
			}
			continue;
		}
		buf_printf(err, "IPC send: %s", n < 0 ? strerror(errno) : "no progress");
		return false;
	}
	return true;
}

static bool send_deadline(int sock, struct ipc_msg *m, int64_t deadline, struct buf *err)
{
	struct buf frame = BUF_INIT(IPC_MAX_FRAME_LIMIT);
	bool ok;

	if (!ipc_msg_encode(m, &frame)) {
		buf_printf(err, "IPC message too large to send");
		buf_free(&frame);
		return false;
	}
	ok = send_all(sock, (const uint8_t *)frame.data, frame.len, m->fd, deadline, err);
	buf_free_wipe(&frame);
	if (m->fd >= 0) {
		/* the receiver has its own copy now (or the send failed): ours is done either way */
		close(m->fd);
		m->fd = -1;
	}
	return ok;
}

bool ipc_send(int sock, struct ipc_msg *m, int timeout_ms, struct buf *err)
{
	return send_deadline(sock, m, deadline_after(timeout_ms), err);
}

static int recv_deadline(int sock, struct ipc_reader *r, int64_t deadline, struct ipc_msg **out, struct buf *err)
{
	bool any = false;

	*out = NULL;
	for (;;) {
		int rc = ipc_reader_next(r, out, err);
		ssize_t n;

		if (rc != 0)
			return rc;
		n = ipc_reader_read(r, sock, err);
		if (n > 0) {
			any = true;
			continue;
		}
		if (n == 0) {
			if (!any && r->in.len == 0 && !r->have_hdr)
				return 0;
			buf_printf(err, "IPC peer closed the connection in the middle of a frame");
			return -1;
		}
		if (errno == EPROTO)
			return -1;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			struct pollfd pfd = { sock, POLLIN, 0 };
			int prc = poll(&pfd, 1, left_ms(deadline));

			if (prc < 0 && errno == EINTR)
				continue;
			if (prc == 0) {
				buf_printf(err, "IPC receive timed out");
				return -1;
			}
			if (prc < 0) {
				buf_printf(err, "IPC receive: poll: %s", strerror(errno));
				return -1;
			}
			continue;
		}
		buf_printf(err, "IPC receive: %s", strerror(errno));
		return -1;
	}
}

int ipc_recv(int sock, const struct ipc_proto *proto, size_t max_frame, int timeout_ms, struct ipc_msg **out,
             struct buf *err)
{
	struct ipc_reader r;
	int rc;

	ipc_reader_init(&r, proto, max_frame);
	rc = recv_deadline(sock, &r, deadline_after(timeout_ms), out, err);
	ipc_reader_free(&r);
	return rc;
}

uint64_t ipc_next_id(void)
{
	static uint64_t next;

	if (++next == 0)
		next = 1;
	return next;
}

bool ipc_call(int sock, const struct ipc_proto *proto, struct ipc_msg *request, struct ipc_msg **reply,
              int timeout_ms, struct buf *err)
{
	int64_t deadline = deadline_after(timeout_ms);
	struct ipc_reader r;
	struct ipc_msg *m = NULL;
	const char *text;
	uint32_t code;
	int rc;

	*reply = NULL;
	if (request->id == 0)
		request->id = ipc_next_id();
	request->flags &= (uint16_t)~IPC_F_REPLY;
	if (!send_deadline(sock, request, deadline, err))
		return false;
	ipc_reader_init(&r, proto, 0);
	rc = recv_deadline(sock, &r, deadline, &m, err);
	ipc_reader_free(&r);
	if (rc == 0)
		buf_printf(err, "IPC peer closed the connection without replying");
	if (rc <= 0)
		return false;
	if (!(m->flags & IPC_F_REPLY) || m->id != request->id) {
		buf_printf(err, "IPC reply out of order: got %s id %llu, expected a reply to id %llu",
		           m->flags & IPC_F_REPLY ? "reply" : "request", (unsigned long long)m->id,
		           (unsigned long long)request->id);
		ipc_msg_free(&m);
		return false;
	}
	if (ipc_msg_is_error(m, &code, &text)) {
		buf_printf(err, "peer: %s (code %u)", log_safe(text, strlen(text), 400), code);
		ipc_msg_free(&m);
		return false;
	}
	*reply = m;
	return true;
}
