/* Event-driven IPC client on libevent, for resident daemons that talk to another daemon (qmgr to local,
 * smtpd workers to auth): many requests in flight on one connection, each matched to its reply by request id
 * and failed on its own timeout. See ipc.h. */
#include "ipc.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "ipc_chan.h"
#include "log.h"

#define READS_PER_EVENT 64

struct pend {
	struct pend *prev, *next;
	struct ipc_client *c;
	uint64_t id;
	int timeout_ms;
	struct event *timer;
	ipc_reply_fn *cb;
	void *arg;
};

struct ipc_client {
	struct event_base *base;
	int fd;
	struct event *rev, *wev;
	struct ipc_reader rd;
	struct ipc_outq out;
	const struct ipc_proto *proto;
	struct pend *pend;
	size_t npend;
	uint64_t next_id;	/* ids below this were ours: a late reply to one that timed out is dropped */
	ipc_close_fn *on_close;
	void *arg;
	int busy;		/* inside a callback: freeing is deferred */
	bool closed;
	bool dying;
};

static void pend_unlink(struct ipc_client *c, struct pend *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		c->pend = p->next;
	if (p->next)
		p->next->prev = p->prev;
	c->npend--;
	if (p->timer)
		event_free(p->timer);
}

/* Close the socket and fail every pending request; the struct lives on until ipc_client_free. */
static void client_fail(struct ipc_client *c, const char *why)
{
	struct pend *p;

	if (c->closed)
		return;
	c->closed = true;
	c->busy++;
	event_free(c->rev);
	event_free(c->wev);
	c->rev = c->wev = NULL;
	close(c->fd);
	c->fd = -1;
	ipc_reader_free(&c->rd);
	ipc_outq_free(&c->out);
	while ((p = c->pend) != NULL) {
		pend_unlink(c, p);
		p->cb(NULL, why, p->arg);
		free(p);
	}
	if (c->on_close && !c->dying)
		c->on_close(why, c->arg);
	c->busy--;
}

static void client_destroy(struct ipc_client *c)
{
	client_fail(c, "client closed");
	free(c);
}

/* Leave a libevent callback: true when the client may no longer be touched. */
static bool client_leave(struct ipc_client *c)
{
	c->busy--;
	if (c->busy == 0 && c->dying) {
		client_destroy(c);
		return true;
	}
	return false;
}

static void deliver(struct ipc_client *c, struct ipc_msg *m)
{
	struct pend *p;
	uint32_t code;
	const char *text;

	for (p = c->pend; p != NULL; p = p->next)
		if (p->id == m->id)
			break;
	if (p == NULL) {
		log_debug("ipc %s: late reply to request %llu dropped", c->proto->name, (unsigned long long)m->id);
		ipc_msg_free(&m);
		return;
	}
	pend_unlink(c, p);
	if (ipc_msg_is_error(m, &code, &text)) {
		struct buf e = BUF_INIT(1024);

		buf_printf(&e, "peer: %s (code %u)", log_safe(text, strlen(text), 400), code);
		ipc_msg_free(&m);
		p->cb(NULL, buf_cstr(&e), p->arg);
		buf_free(&e);
	} else {
		p->cb(m, NULL, p->arg);
	}
	free(p);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ipc_client *c = arg;
	struct buf err = BUF_INIT(1024);

	(void)what;
	c->busy++;
	for (int i = 0; i < READS_PER_EVENT && !c->closed && !c->dying; i++) {
		struct ipc_msg *m;
		ssize_t n = ipc_reader_read(&c->rd, fd, &err);
		int rc;

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			if (n == 0)
				buf_puts(&err, c->rd.in.len ? "peer closed in the middle of a frame" : "peer closed");
			else if (errno != EPROTO)
				buf_puts(&err, strerror(errno));
			log_debug("ipc %s: %s", c->proto->name, buf_cstr(&err));
			client_fail(c, buf_cstr(&err));
			break;
		}
		while (!c->closed && !c->dying && (rc = ipc_reader_next(&c->rd, &m, &err)) != 0) {
			if (rc < 0) {
				log_warn("ipc %s: bad frame from server: %s", c->proto->name, buf_cstr(&err));
				client_fail(c, buf_cstr(&err));
				break;
			}
			if (!(m->flags & IPC_F_REPLY) || m->id == 0 || m->id >= c->next_id) {
				buf_printf(&err, "unexpected frame from server (type %u, id %llu)", m->type,
				           (unsigned long long)m->id);
				log_warn("ipc %s: %s", c->proto->name, buf_cstr(&err));
				ipc_msg_free(&m);
				client_fail(c, buf_cstr(&err));
				break;
			}
			deliver(c, m);
		}
	}
	buf_free(&err);
	client_leave(c);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ipc_client *c = arg;
	int rc;

	(void)what;
	c->busy++;
	rc = ipc_outq_flush(&c->out, fd);
	if (rc < 0) {
		struct buf e = BUF_INIT(256);

		buf_printf(&e, "send: %s", strerror(errno));
		client_fail(c, buf_cstr(&e));
		buf_free(&e);
	}
	else if (rc == 1)
		event_del(c->wev);
	client_leave(c);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pend *p = arg;
	struct ipc_client *c = p->c;
	struct buf e = BUF_INIT(128);

	(void)fd;
	(void)what;
	c->busy++;
	pend_unlink(c, p);
	p->timer = NULL;
	buf_printf(&e, "no reply within %d ms", p->timeout_ms);
	p->cb(NULL, buf_cstr(&e), p->arg);
	buf_free(&e);
	free(p);
	client_leave(c);
}

struct ipc_client *ipc_client_new(struct event_base *base, int fd, const struct ipc_proto *proto, size_t max_frame,
                                  ipc_close_fn *on_close, void *arg)
{
	struct ipc_client *c;

	if (fd < 0 || proto == NULL || proto->name == NULL)
		panic("ipc_client_new: a socket and a named proto are required");
	c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->fd = fd;
	c->proto = proto;
	c->on_close = on_close;
	c->arg = arg;
	c->next_id = 1;
	evutil_make_socket_nonblocking(fd);
	ipc_reader_init(&c->rd, proto, max_frame);
	ipc_outq_init(&c->out);
	c->rev = event_new(base, fd, EV_READ | EV_PERSIST, read_cb, c);
	c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, write_cb, c);
	if (c->rev == NULL || c->wev == NULL)
		fatalx("ipc: cannot create libevent events");
	event_add(c->rev, NULL);
	return c;
}

bool ipc_client_request(struct ipc_client *c, struct ipc_msg *req, int timeout_ms, ipc_reply_fn *cb, void *arg)
{
	struct pend *p = NULL;

	if (c->closed || c->dying) {
		ipc_msg_free(&req);
		return false;
	}
	req->flags &= (uint16_t)~IPC_F_REPLY;
	req->id = 0;
	if (cb) {
		p = xcalloc(1, sizeof(*p));
		p->c = c;
		p->id = req->id = c->next_id++;
		p->cb = cb;
		p->arg = arg;
		p->timeout_ms = timeout_ms;
	}
	if (!ipc_outq_push(&c->out, req)) {
		log_error("ipc %s: request of type %u too large, not sent", c->proto->name, req->type);
		ipc_msg_free(&req);
		free(p);
		return false;
	}
	ipc_msg_free(&req);
	if (p) {
		if (timeout_ms > 0) {
			struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

			p->timer = evtimer_new(c->base, timeout_cb, p);
			if (p->timer == NULL)
				fatalx("ipc: cannot create libevent timer");
			evtimer_add(p->timer, &tv);
		}
		p->next = c->pend;
		if (c->pend)
			c->pend->prev = p;
		c->pend = p;
		c->npend++;
	}
	/* written from the event loop, so cb never runs inside this call */
	event_add(c->wev, NULL);
	return true;
}

void ipc_client_free(struct ipc_client **cp)
{
	struct ipc_client *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	if (c->dying)
		return;
	c->dying = true;
	if (c->busy == 0) {
		client_destroy(c);
		return;
	}
	/* inside one of our callbacks: fail what is pending now, free when the callback unwinds */
	client_fail(c, "client closed");
}

size_t ipc_client_pending(const struct ipc_client *c)
{
	return c->npend;
}
