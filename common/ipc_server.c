/* Event-driven IPC server on libevent, for resident daemons (qmgr, auth): accepts on a listening UNIX socket,
 * checks each peer with SO_PEERCRED, reads frames incrementally and hands each message to the daemon's
 * handler, which answers now or later through ipc_reply(). See ipc.h. */
#include "ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "ipc_chan.h"
#include "log.h"

#define READS_PER_EVENT 64	/* then let other connections run */
#define ACCEPT_PAUSE_MS 100	/* after EMFILE and friends, instead of spinning on the listener */

struct sconn {
	struct ipc_server *srv;	/* NULL once closed (kept alive only for pending ipc_req) */
	struct sconn *prev, *next;
	int fd;
	struct event *rev, *wev, *timer;
	struct ipc_reader rd;
	struct ipc_outq out;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	size_t pending;		/* ipc_req handed out and not yet answered */
	bool reading;		/* rev is added */
	bool draining;		/* close once the output queue is written */
};

struct ipc_req {
	struct sconn *conn;
	uint64_t id;
	uid_t uid;
	gid_t gid;
	pid_t pid;
};

struct ipc_server {
	struct event_base *base;
	int lfd;
	struct event *lev, *resume;
	struct ipc_server_opts opts;
	struct ipc_peer_policy policy;
	struct sconn *conns;
	size_t nconns;
};

static void conn_close(struct sconn *c, const char *why);

static void conn_release(struct sconn *c)
{
	if (c->srv == NULL && c->pending == 0)
		free(c);
}

static void conn_touch(struct sconn *c)
{
	if (c->timer && c->srv->opts.idle_timeout_ms > 0) {
		struct timeval tv = { c->srv->opts.idle_timeout_ms / 1000, (c->srv->opts.idle_timeout_ms % 1000) * 1000 };
		evtimer_add(c->timer, &tv);
	}
}

static size_t outq_limit(const struct ipc_server *s)
{
	return 2 * s->opts.max_frame;
}

static void conn_set_reading(struct sconn *c, bool on)
{
	if (on == c->reading)
		return;
	if (on)
		event_add(c->rev, NULL);
	else
		event_del(c->rev);
	c->reading = on;
}

/* Read a client only while it is within its limits: requests the daemon still holds, and replies it has not
 * taken yet (stop above the limit, resume below half of it, so a slow reader does not flap). */
static void conn_update_reading(struct sconn *c)
{
	size_t lim = outq_limit(c->srv);
	bool on = !c->draining && c->pending < c->srv->opts.max_pending &&
	          c->out.bytes <= (c->reading ? lim : lim / 2);

	conn_set_reading(c, on);
}

static void conn_queue(struct sconn *c, struct ipc_msg *m)
{
	if (!ipc_outq_push(&c->out, m)) {
		log_error("ipc %s: reply of type %u too large, dropped", c->srv->opts.proto->name, m->type);
		return;
	}
	event_add(c->wev, NULL);
	/* a client that sends requests but does not read replies stops being read until it catches up */
	conn_update_reading(c);
}

static void conn_fail(struct sconn *c, const char *what, struct buf *err)
{
	log_warn("ipc %s: peer pid %ld uid %lu: %s%s%s", c->srv->opts.proto->name, (long)c->pid,
	         (unsigned long)c->uid, what, err && err->len ? ": " : "", err ? buf_cstr(err) : "");
}

/* Tell the peer why (when it waits for an answer to id), stop reading, and close once that is written. */
static void conn_reject(struct sconn *c, uint64_t id, struct buf *why)
{
	if (id != 0) {
		struct ipc_msg *e = ipc_msg_new(IPC_TYPE_ERROR);

		e->id = id;
		e->flags = IPC_F_REPLY;
		ipc_put_u32(e, IPC_TAG_ERR_CODE, 1);
		ipc_put_str(e, IPC_TAG_ERR_TEXT, buf_cstr(why));
		conn_queue(c, e);
		ipc_msg_free(&e);
	}
	c->draining = true;
	conn_set_reading(c, false);
	event_add(c->wev, NULL);
}

/* The reader refused a header that carried our magic: ipc_hdr_decode() then filled hdr (id included) before
 * it found the fault. */
static bool hdr_parsed(const struct ipc_reader *r)
{
	return r->in.len == IPC_HDR_LEN && r->in.data[0] == IPC_MAGIC0 && r->in.data[1] == IPC_MAGIC1;
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sconn *c = arg;
	struct ipc_server *s = c->srv;
	struct buf err = BUF_INIT(1024);

	(void)what;
	for (int i = 0; i < READS_PER_EVENT && c->reading; i++) {
		struct ipc_msg *m;
		ssize_t n = ipc_reader_read(&c->rd, fd, &err);
		int rc;

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 && errno == EPROTO) {
			conn_fail(c, "bad frame", &err);
			if (hdr_parsed(&c->rd)) {
				/* the peer waits on an id we know: say why (a version mismatch is said in our
				 * version, so the peer's decoder names both) */
				conn_reject(c, (c->rd.hdr.flags & IPC_F_REPLY) ? 0 : c->rd.hdr.id, &err);
				goto out;
			}
			conn_close(c, "bad frame");
			goto out;
		}
		if (n < 0) {
			conn_close(c, strerror(errno));
			goto out;
		}
		if (n == 0) {
			if (c->rd.in.len != 0)
				conn_fail(c, "closed in the middle of a frame", NULL);
			conn_close(c, "peer closed");
			goto out;
		}
		conn_touch(c);
		while ((rc = ipc_reader_next(&c->rd, &m, &err)) == 1) {
			struct ipc_req *rq;

			if ((m->flags & IPC_F_REPLY) || m->type == IPC_TYPE_ERROR) {
				/* clients do not answer us: a reply here is a confused peer */
				ipc_msg_free(&m);
				buf_printf(&err, "unexpected reply frame");
				rc = -1;
				break;
			}
			rq = xcalloc(1, sizeof(*rq));
			rq->conn = c;
			rq->id = m->id;
			rq->uid = c->uid;
			rq->gid = c->gid;
			rq->pid = c->pid;
			c->pending++;
			s->opts.handler(rq, m, s->opts.arg);
			ipc_msg_free(&m);
			conn_update_reading(c);
			if (!c->reading)
				break;
		}
		if (rc < 0) {
			/* the frame was well delimited, so the peer can be told why before we hang up */
			conn_fail(c, "rejected message", &err);
			conn_reject(c, (c->rd.hdr.flags & IPC_F_REPLY) ? 0 : c->rd.hdr.id, &err);
			break;
		}
	}
out:
	buf_free(&err);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sconn *c = arg;
	int rc;

	(void)what;
	rc = ipc_outq_flush(&c->out, fd);
	if (rc < 0) {
		conn_close(c, strerror(errno));
		return;
	}
	conn_touch(c);
	if (rc == 1) {
		event_del(c->wev);
		if (c->draining) {
			conn_close(c, "rejected");
			return;
		}
	}
	conn_update_reading(c);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sconn *c = arg;

	(void)fd;
	(void)what;
	if (c->pending > 0 && !c->draining) {
		/* waiting on us is not idleness */
		conn_touch(c);
		return;
	}
	conn_fail(c, "idle timeout", NULL);
	conn_close(c, "idle timeout");
}

static void conn_close(struct sconn *c, const char *why)
{
	struct ipc_server *s = c->srv;

	if (s == NULL)
		return;
	log_debug("ipc %s: connection from pid %ld closed: %s", s->opts.proto->name, (long)c->pid, why);
	event_free(c->rev);
	event_free(c->wev);
	event_free(c->timer);
	c->rev = c->wev = c->timer = NULL;
	close(c->fd);
	c->fd = -1;
	ipc_reader_free(&c->rd);
	ipc_outq_free(&c->out);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	c->srv = NULL;
	conn_release(c);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ipc_server *s = arg;

	(void)fd;
	(void)what;
	event_add(s->lev, NULL);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct ipc_server *s = arg;
	struct buf err = BUF_INIT(512);
	struct sconn *c;
	int fd;

	(void)what;
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };

			log_warn("ipc %s: accept: %s; pausing", s->opts.proto->name, strerror(errno));
			event_del(s->lev);
			evtimer_add(s->resume, &tv);
		}
		return;
	}
	if (!ipc_peer_check(fd, &s->policy, &err)) {
		log_warn("ipc %s: %s", s->opts.proto->name, buf_cstr(&err));
		buf_free(&err);
		close(fd);
		return;
	}
	buf_free(&err);
	if (s->opts.max_conns && s->nconns >= s->opts.max_conns) {
		log_warn("ipc %s: %zu connections, the limit: refusing one", s->opts.proto->name, s->nconns);
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->srv = s;
	c->fd = fd;
	ipc_peer_cred(fd, &c->uid, &c->gid, &c->pid);
	ipc_reader_init(&c->rd, s->opts.proto, s->opts.max_frame);
	ipc_outq_init(&c->out);
	c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	c->wev = event_new(s->base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
	c->timer = evtimer_new(s->base, conn_timer_cb, c);
	if (c->rev == NULL || c->wev == NULL || c->timer == NULL)
		fatalx("ipc: cannot create libevent events");
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	conn_set_reading(c, true);
	conn_touch(c);
}

struct ipc_server *ipc_server_new(struct event_base *base, int lfd, const struct ipc_server_opts *opts)
{
	struct ipc_server *s = xcalloc(1, sizeof(*s));
	int fl = fcntl(lfd, F_GETFL);

	if (opts->proto == NULL || opts->proto->name == NULL || opts->handler == NULL)
		panic("ipc_server_new: a named proto and a handler are required");
	if (fl < 0 || fcntl(lfd, F_SETFL, fl | O_NONBLOCK) < 0)
		fatal("ipc_server_new: fcntl");
	s->base = base;
	s->lfd = lfd;
	s->opts = *opts;
	if (s->opts.max_pending == 0)
		s->opts.max_pending = IPC_MAX_PENDING_DEFAULT;
	if (s->opts.max_frame == 0 || s->opts.max_frame > IPC_MAX_FRAME_LIMIT)
		s->opts.max_frame = s->opts.max_frame ? IPC_MAX_FRAME_LIMIT : IPC_MAX_FRAME_DEFAULT;
	if (opts->policy) {
		s->policy = *opts->policy;
	} else {
		s->policy.allow_root = true;
		s->policy.allow_same_uid = true;
	}
	s->opts.policy = &s->policy;
	s->lev = event_new(base, lfd, EV_READ | EV_PERSIST, accept_cb, s);
	s->resume = evtimer_new(base, resume_cb, s);
	if (s->lev == NULL || s->resume == NULL)
		fatalx("ipc: cannot create libevent events");
	event_add(s->lev, NULL);
	return s;
}

void ipc_server_free(struct ipc_server **sp)
{
	struct ipc_server *s = *sp;

	if (s == NULL)
		return;
	while (s->conns)
		conn_close(s->conns, "server stopped");
	event_free(s->lev);
	event_free(s->resume);
	free(s);
	*sp = NULL;
}

size_t ipc_server_conn_count(const struct ipc_server *s)
{
	return s->nconns;
}

void ipc_reply(struct ipc_req *rq, struct ipc_msg *reply)
{
	struct sconn *c = rq->conn;

	if (reply) {
		reply->id = rq->id;
		reply->flags |= IPC_F_REPLY;
		/* one-way requests get no answer; a closed connection cannot take one */
		if (rq->id != 0 && c->srv != NULL && !c->draining)
			conn_queue(c, reply);
		ipc_msg_free(&reply);
	}
	c->pending--;
	free(rq);
	if (c->srv != NULL)
		conn_update_reading(c);
	conn_release(c);
}

void ipc_reply_error(struct ipc_req *rq, uint32_t code, const char *text)
{
	struct ipc_msg *m = ipc_msg_new(IPC_TYPE_ERROR);

	ipc_put_u32(m, IPC_TAG_ERR_CODE, code);
	ipc_put_str(m, IPC_TAG_ERR_TEXT, text);
	ipc_reply(rq, m);
}

void ipc_req_peer(const struct ipc_req *rq, uid_t *uid, gid_t *gid, pid_t *pid)
{
	if (uid)
		*uid = rq->uid;
	if (gid)
		*gid = rq->gid;
	if (pid)
		*pid = rq->pid;
}

uint64_t ipc_req_id(const struct ipc_req *rq)
{
	return rq->id;
}
