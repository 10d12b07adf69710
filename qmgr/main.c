/* qmgr: the resident queue manager (DAEMON_EVENT). Drives the engine in queue.c from libevent: wakeups and
 * administrative requests arrive on private/qmgr, a periodic scan of incoming/ catches lost wakeups, a timer
 * runs the schedule, and each job is one LP_DELIVER request over its own connection to private/local or
 * private/smtp (both transports speak the protocol in qproto.h). */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "accounts.h"
#include "alloc.h"
#include "config.h"
#include "daemon.h"
#include "ipc.h"
#include "log.h"
#include "qproto.h"
#include "queue.h"
#include "str.h"

struct app {
	struct daemon_ctx *ctx;
	struct qmgr *q;
	struct qmgr_params p;
	char **mydest, **vdomains;
	size_t nmydest, nvdomains;
	char *local_socket, *smtp_socket;
	int delivery_timeout_ms;
	struct ipc_server *server;
	struct event *run_ev, *scan_ev;
	bool stopping;
};

static struct app app;

/* Domains that have accounts, so that mail for them is local even when they are in neither mydestination nor
 * virtual_mailbox_domains. Read from the account database and read again when the file changes. */
static struct {
	char *path;
	char **domains;
	size_t n;
	struct timespec mtime;
	off_t size;
	ino_t ino;
	bool warned;
} acd;

static bool collect_domain(const struct accounts_user *u, void *arg)
{
	(void)arg;
	const char *at = strrchr(u->address, '@');
	if (!at)
		return true;
	for (size_t i = 0; i < acd.n; i++)
		if (strcmp(acd.domains[i], at + 1) == 0)
			return true;
	acd.domains = xreallocarray(acd.domains, acd.n + 1, sizeof(*acd.domains));
	acd.domains[acd.n++] = xstrdup(at + 1);
	return true;
}

static void account_domains_refresh(void)
{
	struct stat st;
	if (stat(acd.path, &st) != 0) {
		for (size_t i = 0; i < acd.n; i++)
			free(acd.domains[i]);
		acd.n = 0;
		return;
	}
	if (st.st_ino == acd.ino && st.st_size == acd.size && st.st_mtim.tv_sec == acd.mtime.tv_sec &&
	    st.st_mtim.tv_nsec == acd.mtime.tv_nsec)
		return;
	struct buf err = BUF_INIT(1024);
	struct accounts *db = accounts_open(acd.path, false, &err);
	if (!db) {
		if (!acd.warned)
			log_warn("account domains: %s (mail for them needs mydestination or virtual_mailbox_domains)",
			         buf_cstr(&err));
		acd.warned = true;
		buf_free(&err);
		return;
	}
	for (size_t i = 0; i < acd.n; i++)
		free(acd.domains[i]);
	acd.n = 0;
	if (accounts_foreach(db, collect_domain, NULL, &err) != ACCOUNTS_OK)
		log_warn("account domains: %s", buf_cstr(&err));
	accounts_close(&db);
	acd.ino = st.st_ino;
	acd.size = st.st_size;
	acd.mtime = st.st_mtim;
	buf_free(&err);
}

static bool is_account_domain(const char *addr, void *arg)
{
	(void)arg;
	const char *at = strrchr(addr, '@');
	if (!at)
		return false;
	account_domains_refresh();
	for (size_t i = 0; i < acd.n; i++)
		if (str_eq_ci(acd.domains[i], at + 1))
			return true;
	return false;
}

struct conn {
	struct qjob *job;
	struct ipc_client *client;
};

static void kick(void)
{
	struct timeval tv = { 0, 0 };
	if (!app.stopping)
		evtimer_add(app.run_ev, &tv);
}

static void on_run(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	uint64_t now = qsched_now();
	uint64_t next = qmgr_run(app.q, now);
	if (next && !app.stopping) {
		uint64_t d = next > now ? next - now : 1;
		struct timeval tv = { (time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000 };
		evtimer_add(app.run_ev, &tv);
	}
}

static void on_scan(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (qmgr_scan(app.q, qsched_now()))
		kick();
}

/* The client is freed from the event loop, never inside its own callback chain. */
static void free_conn_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	ipc_client_free(&c->client);
	free(c);
}

static void on_local_reply(struct ipc_msg *reply, const char *err, void *arg)
{
	struct conn *c = arg;
	struct qjob *job = c->job;
	const char *why = NULL;
	struct buf reason = BUF_INIT(1024);

	if (!reply) {
		buf_printf(&reason, "%s delivery failed: %s", job->transport, err ? err : "no answer");
		why = reason.data;
	} else {
		struct ipc_iter ii, ic, id, it;
		uint32_t idx, code;
		const char *dsn, *text;
		ipc_iter_init(&ii, reply, LP_F_R_IDX);
		ipc_iter_init(&ic, reply, LP_F_R_CODE);
		ipc_iter_init(&id, reply, LP_F_R_DSN);
		ipc_iter_init(&it, reply, LP_F_R_TEXT);
		while (ipc_iter_u32(&ii, &idx) && ipc_iter_u32(&ic, &code) && ipc_iter_str(&id, &dsn, NULL) &&
		       ipc_iter_str(&it, &text, NULL))
			qmgr_job_result(job, idx, (int)code, dsn, text);
		struct ipc_iter ai, aa;
		const char *addr;
		ipc_iter_init(&ai, reply, LP_F_A_IDX);
		ipc_iter_init(&aa, reply, LP_F_A_ADDR);
		while (ipc_iter_u32(&ai, &idx) && ipc_iter_str(&aa, &addr, NULL))
			qmgr_job_add_rcpt(job, idx, addr);
		struct ipc_iter fi, fa, fd, ft;
		ipc_iter_init(&fi, reply, LP_F_F_IDX);
		ipc_iter_init(&fa, reply, LP_F_F_ADDR);
		ipc_iter_init(&fd, reply, LP_F_F_DSN);
		ipc_iter_init(&ft, reply, LP_F_F_TEXT);
		while (ipc_iter_u32(&fi, &idx) && ipc_iter_str(&fa, &addr, NULL) && ipc_iter_str(&fd, &dsn, NULL) &&
		       ipc_iter_str(&ft, &text, NULL))
			qmgr_job_add_failed(job, idx, addr, dsn, text);
		ipc_msg_free(&reply);
	}
	qmgr_job_done(job, qsched_now(), why);
	buf_free(&reason);
	event_base_once(app.ctx->base, -1, EV_TIMEOUT, free_conn_cb, c, NULL);
	if (app.stopping && qmgr_inflight(app.q) == 0)
		event_base_loopexit(app.ctx->base, NULL);
	kick();
}

static void on_local_close(const char *why, void *arg)
{
	(void)why;
	(void)arg;	/* pending requests were failed through on_local_reply already */
}

static bool dispatch(struct qjob *job, void *arg)
{
	(void)arg;
	bool smtp = strcmp(job->transport, "smtp") == 0;
	const char *path = smtp ? app.smtp_socket : app.local_socket;
	int fd = ipc_connect(path, 2000);
	if (fd < 0) {
		if (smtp && (errno == ENOENT || errno == ECONNREFUSED)) {
			/* master creates the socket only when the smtp program is installed */
			job->fail_dsn = "4.4.1";
			job->fail_text = "no smtp transport available for remote delivery";
		} else {
			log_warn("%s: connect %s: %s", job->queue_id, path, strerror(errno));
			job->fail_text = smtp ? "smtp transport unavailable" : "local transport unavailable";
		}
		return false;
	}
	struct conn *c = xcalloc(1, sizeof(*c));
	c->job = job;
	/* smtp speaks the same delivery protocol as local */
	c->client = ipc_client_new(app.ctx->base, fd, &qproto_local_reply, 0, on_local_close, c);
	struct ipc_msg *req = ipc_msg_new(LP_DELIVER);
	/* the directory name only: local builds the path from its own queue_directory */
	ipc_put_str(req, LP_F_QUEUE_ID, job->queue_id);
	ipc_put_str(req, LP_F_DIR, job->dir);
	ipc_put_str(req, LP_F_SENDER, job->sender);
	for (size_t i = 0; i < job->n; i++) {
		ipc_put_u32(req, LP_F_IDX, job->rcpts[i].idx);
		ipc_put_str(req, LP_F_RCPT, job->rcpts[i].addr);
	}
	if (!ipc_client_request(c->client, req, app.delivery_timeout_ms, on_local_reply, c)) {
		ipc_client_free(&c->client);
		free(c);
		return false;
	}
	return true;
}

/* ---- requests on private/qmgr ---- */

static void handler(struct ipc_req *rq, struct ipc_msg *msg, void *arg)
{
	(void)arg;
	const char *id = NULL;
	uint64_t now = qsched_now();
	int n = 0;

	ipc_get_str(msg, QP_F_ID, &id, NULL);
	if (id && !qfile_id_valid(id)) {
		ipc_reply_error(rq, 1, "bad queue ID");
		return;
	}
	/* what smtpd just queued can be listed and acted on at once, not only after the next scan */
	qmgr_scan(app.q, now);
	switch (msg->type) {
	case QP_WAKEUP:
		kick();
		ipc_reply(rq, NULL);
		return;
	case QP_LIST: {
		uint32_t fmt = QLIST_TEXT, offset = 0;
		ipc_get_u32(msg, QP_F_FORMAT, &fmt);
		ipc_get_u32(msg, QP_F_OFFSET, &offset);
		struct buf b = BUF_INIT(BUF_NOLIMIT);
		struct qmgr_list_stats st;
		qmgr_list(app.q, fmt <= QLIST_MAILQ ? (enum qlist_format)fmt : QLIST_TEXT, offset, IPC_MAX_FRAME_DEFAULT / 4,
		          &b, &st);
		struct ipc_msg *r = ipc_msg_reply_to(msg, QP_TEXT);
		ipc_put_str(r, QP_F_TEXT, buf_cstr(&b));
		ipc_put_u32(r, QP_F_COUNT, (uint32_t)st.count);
		ipc_put_u64(r, QP_F_SIZE, st.bytes);
		ipc_put_u32(r, QP_F_MORE, st.more);
		buf_free(&b);
		ipc_reply(rq, r);
		kick();
		return;
	}
	case QP_FLUSH: n = qmgr_flush(app.q, id, now); qmgr_scan(app.q, now); break;
	case QP_HOLD: n = qmgr_hold(app.q, id); break;
	case QP_RELEASE: n = qmgr_release(app.q, id, now); break;
	case QP_DELETE: {
		const char *sel = NULL;
		ipc_get_str(msg, QP_F_SELECT, &sel, NULL);
		if (id)
			n = qmgr_delete(app.q, id);
		else if (sel && strcmp(sel, "ALL") == 0)
			n = qmgr_delete(app.q, NULL);
		else if (sel && strcmp(sel, "deferred") == 0)
			n = qmgr_delete_deferred(app.q);
		else {
			ipc_reply_error(rq, 1, "delete needs a queue ID, ALL or deferred");
			return;
		}
		break;
	}
	case QP_REQUEUE: n = qmgr_requeue(app.q, id, now); break;
	default:
		ipc_reply_error(rq, 1, "unknown request");
		return;
	}
	if (n < 0) {
		ipc_reply_error(rq, 2, "no such message");
		return;
	}
	struct ipc_msg *r = ipc_msg_reply_to(msg, QP_DONE);
	ipc_put_u32(r, QP_F_COUNT, (uint32_t)n);
	ipc_reply(rq, r);
	kick();
}

/* ---- daemon callbacks ---- */

static void init(struct daemon_ctx *ctx)
{
	struct config *cfg = ctx->cfg;
	struct buf err = BUF_INIT(4096);

	app.ctx = ctx;
	app.p.queue_dir = xstrdup(config_str(cfg, "queue_directory"));
	app.p.hostname = xstrdup(config_str(cfg, "myhostname"));
	struct buf pm = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&pm, "postmaster@%s", config_str(cfg, "myhostname"));
	app.p.postmaster = buf_steal(&pm, NULL);
	app.p.sched.min_backoff_ms = (uint64_t)config_time(cfg, "minimal_backoff_time", 1, 86400 * 30) * 1000;
	app.p.sched.max_backoff_ms = (uint64_t)config_time(cfg, "maximal_backoff_time", 1, 86400 * 30) * 1000;
	app.p.sched.lifetime_ms = (uint64_t)config_time(cfg, "maximal_queue_lifetime", 0, 86400 * 365) * 1000;
	app.p.sched.time_scale = (uint64_t)config_int(cfg, "queue_time_scale", 1, 100000000);
	app.p.sched.warn_ms = (uint64_t)config_time(cfg, "delay_warning_time", 0, 86400 * 365) * 1000;
	app.p.bounce_size_limit = (size_t)config_int(cfg, "bounce_size_limit", 0, 1 << 30);
	app.p.global_limit = (unsigned)config_int(cfg, "qmgr_concurrency_limit", 1, 10000);
	app.p.dest_limit = (unsigned)config_int(cfg, "default_destination_concurrency_limit", 1, 10000);
	app.p.rcpt_limit = (unsigned)config_int(cfg, "default_destination_recipient_limit", 1, 100000);
	app.delivery_timeout_ms = (int)config_time(cfg, "local_delivery_timeout", 1, 86400) * 1000;
	app.mydest = config_list(cfg, "mydestination", &app.nmydest);
	app.vdomains = config_list(cfg, "virtual_mailbox_domains", &app.nvdomains);
	for (size_t i = 0; i < app.nmydest; i++)
		str_lower(app.mydest[i]);
	for (size_t i = 0; i < app.nvdomains; i++)
		str_lower(app.vdomains[i]);
	acd.path = xstrdup(config_str(cfg, "accounts_database"));
	app.p.route = (struct qroute){ app.mydest, app.nmydest, app.vdomains, app.nvdomains, is_account_domain, NULL };
	struct buf sock = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&sock, "%s/local", config_str(cfg, "private_directory"));
	app.local_socket = buf_steal(&sock, NULL);
	buf_printf(&sock, "%s/smtp", config_str(cfg, "private_directory"));
	app.smtp_socket = buf_steal(&sock, NULL);
	app.q = qmgr_new(&app.p, dispatch, NULL, &err);
	if (!app.q)
		fatalx("%s", buf_cstr(&err));
	buf_free(&err);
}

static void start(struct daemon_ctx *ctx)
{
	if (ctx->nlisten < 1)
		fatalx("qmgr needs its socket (private/qmgr) from master");
	struct ipc_server_opts o = { .proto = &qproto_qmgr, .handler = handler, .idle_timeout_ms = 60000,
		                     .max_conns = 200 };
	app.server = ipc_server_new(ctx->base, ctx->listen_fds[0], &o);
	app.run_ev = evtimer_new(ctx->base, on_run, NULL);
	app.scan_ev = event_new(ctx->base, -1, EV_PERSIST, on_scan, NULL);
	int64_t scan = config_time(ctx->cfg, "queue_scan_interval", 1, 86400);
	struct timeval tv = { (time_t)scan, 0 };
	evtimer_add(app.scan_ev, &tv);
	qmgr_start(app.q, qsched_now());
	kick();
}

#define QMGR_STOP_WAIT_S 5	/* within master_stop_timeout's default */

static void stop(struct daemon_ctx *ctx)
{
	app.stopping = true;
	ipc_server_free(&app.server);
	evtimer_del(app.run_ev);
	evtimer_del(app.scan_ev);
	/* Let running deliveries report, for a few seconds: a result lost here is only retried at the next start
	 * (local's receipts keep that from delivering twice), but recording it now is cleaner. */
	if (qmgr_inflight(app.q) == 0) {
		event_base_loopexit(ctx->base, NULL);
		return;
	}
	log_info("stopping: waiting up to %d s for %zu deliveries in progress", QMGR_STOP_WAIT_S,
	         qmgr_inflight(app.q));
	struct timeval tv = { QMGR_STOP_WAIT_S, 0 };
	event_base_loopexit(ctx->base, &tv);
}

int main(int argc, char **argv)
{
	static const struct daemon_ops ops = {
		.name = "qmgr", .mode = DAEMON_EVENT, .init = init, .start = start, .stop = stop,
	};
	return daemon_main(argc, argv, &ops);
}
