/* Throttled replies on timers; see service.h. */
#include "service.h"

#include <event2/event.h>
#include <sys/time.h>

#include "accounts_auth.h"
#include "alloc.h"
#include "log.h"
#include "workers.h"

/* Hash checks at once: enough for a burst of logins on a small server without letting auth take every core. */
#define AUTH_HASH_THREADS 2

struct held_reply {
	struct held_reply *next, **prevp;
	struct auth_service *svc;
	struct ipc_req *rq;
	struct ipc_msg *reply;
	struct event *ev;
};

struct auth_service {
	struct event_base *base;
	struct auth_server *srv;
	struct held_reply *held;
	size_t nheld;
	bool no_delay;
	struct auth_workers *workers;
};

static void job_done(struct auth_job *job, void *ctx, void *arg);

struct auth_service *auth_service_new(struct event_base *base, struct auth_server *srv)
{
	struct auth_service *svc = xcalloc(1, sizeof *svc);
	svc->base = base;
	svc->srv = srv;
	svc->workers = auth_workers_new(base, AUTH_HASH_THREADS, job_done, svc);
	return svc;
}

static void release(struct held_reply *h)
{
	ipc_reply(h->rq, h->reply);
	*h->prevp = h->next;
	if (h->next)
		h->next->prevp = h->prevp;
	h->svc->nheld--;
	event_free(h->ev);
	free(h);
}

static void held_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	release(arg);
}

/* Send reply now, or hold it for delay seconds (throttling). */
static void answer(struct auth_service *svc, struct ipc_req *rq, struct ipc_msg *reply, unsigned delay)
{
	struct held_reply *h;
	struct timeval tv = { .tv_sec = delay, .tv_usec = 0 };

	if (delay == 0 || svc->no_delay) {
		ipc_reply(rq, reply);
		return;
	}
	h = xcalloc(1, sizeof *h);
	h->svc = svc;
	h->rq = rq;
	h->reply = reply;
	if ((h->ev = evtimer_new(svc->base, held_timeout, h)) == NULL)
		fatalx("auth: evtimer_new failed");
	h->next = svc->held;
	h->prevp = &svc->held;
	if (svc->held)
		svc->held->prevp = &h->next;
	svc->held = h;
	svc->nheld++;
	evtimer_add(h->ev, &tv);
}

static void job_done(struct auth_job *job, void *ctx, void *arg)
{
	struct auth_service *svc = arg;
	unsigned delay = 0;
	struct ipc_msg *reply = auth_server_finish(svc->srv, job, &delay);

	answer(svc, ctx, reply, delay);
}

void auth_service_handler(struct ipc_req *rq, struct ipc_msg *msg, void *arg)
{
	struct auth_service *svc = arg;
	unsigned delay = 0;
	struct auth_job *job;
	struct ipc_msg *reply;
	uid_t uid = (uid_t)-1;

	/* a token opens a mailbox as its owner: only the root side of a login may redeem one */
	if (msg->type == ACCOUNTS_AUTH_REDEEM) {
		ipc_req_peer(rq, &uid, NULL, NULL);
		if (uid != 0) {
			log_warn("auth: login token redeem from uid %ld refused", (long)uid);
			ipc_reply_error(rq, 1, "auth: only root may redeem a login token");
			return;
		}
	}
	reply = auth_server_begin(svc->srv, msg, &delay, &job);
	if (reply == NULL) {
		auth_workers_submit(svc->workers, job, rq);
		return;
	}
	answer(svc, rq, reply, delay);
}

void auth_service_release_all(struct auth_service *svc)
{
	svc->no_delay = true;
	while (svc->held)
		release(svc->held);
}

size_t auth_service_held(const struct auth_service *svc)
{
	return svc->nheld;
}

void auth_service_free(struct auth_service **svcp)
{
	struct auth_service *svc = *svcp;
	if (svc == NULL)
		return;
	auth_service_release_all(svc);
	auth_workers_free(&svc->workers);	/* answers the checks still running, without delay */
	free(svc);
	*svcp = NULL;
}
