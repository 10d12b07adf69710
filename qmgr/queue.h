/* The queue manager's engine, free of I/O loops: it takes files from incoming/, keeps their recipients' state
 * in state.lmdb, hands due recipients to transports as jobs, records results, retries, bounces and removes
 * finished messages. qmgr/main.c drives it from libevent (timers, wakeups, IPC); tests drive it directly with
 * a fake transport. */
#ifndef POSTERN_QMGR_QUEUE_H
#define POSTERN_QMGR_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "qfile.h"
#include "qlist.h"
#include "route.h"
#include "sched.h"
#include "qstate.h"

struct qmgr_params {
	const char *queue_dir;
	const char *hostname;		/* myhostname: reporting MTA of DSNs */
	const char *postmaster;		/* where double bounces go */
	struct qsched_params sched;
	size_t bounce_size_limit;	/* return the whole message in a DSN up to this size */
	unsigned global_limit;		/* jobs in flight at once (qmgr_concurrency_limit) */
	unsigned dest_limit;		/* jobs in flight per destination (default_destination_concurrency_limit) */
	unsigned rcpt_limit;		/* recipients per job (default_destination_recipient_limit) */
	struct qroute route;
};

struct qmgr;
struct qmsg;

struct qjob_rcpt {
	uint32_t idx;
	char *addr;
	bool done;
};

/* One request to a transport: some recipients of one message for one destination. */
struct qjob {
	struct qmgr *q;
	struct qmsg *msg;
	const char *queue_id;
	const char *queue_path;		/* the file, for the transport to open */
	const char *dir;		/* its queue subdirectory ("active") */
	const char *sender;
	char *transport;
	char *dest;
	struct qjob_rcpt *rcpts;
	size_t n;
	uint64_t started;
	size_t nresults, nunreached;	/* results so far; how many of them said no server was reached (4.4.x) */
	uint64_t first_result;		/* ms, when the first result came */
	char *unreached_text;		/* the first of those */
	void *data;			/* the driver's */
	/* Set by a dispatch function that refuses the job: the status its recipients are deferred with. */
	const char *fail_dsn, *fail_text;
};

/* Start a job (transport "local" or "smtp"): false when the transport cannot take it now (the recipients are
 * deferred, with fail_dsn/fail_text when the function set them). Results come later
 * through qmgr_job_result()/qmgr_job_done(), never before this returns (call them from the event loop). */
typedef bool qmgr_dispatch_fn(struct qjob *job, void *arg);

/* Open state.lmdb under the queue directory. NULL with err. */
struct qmgr *qmgr_new(const struct qmgr_params *p, qmgr_dispatch_fn *dispatch, void *arg, struct buf *err);
void qmgr_free(struct qmgr **q);
/* Start-up reconciliation: sweep stale tmp/ files, load active/, deferred/ and hold/, drop state without a file,
 * build state for files without it, then take in incoming/. */
void qmgr_start(struct qmgr *q, uint64_t now);
/* Take in new files from incoming/ (wakeup or periodic scan). Returns how many were taken. */
size_t qmgr_scan(struct qmgr *q, uint64_t now);
/* Finish the removals of messages completed since the last call: one fsync per queue directory, then their
 * state and receipts (qmgr_run calls it first and last, qmgr_free too; the event loop calls qmgr_run after every job). */
void qmgr_flush_removals(struct qmgr *q);
/* Dispatch what is due. Returns the next time (ms) something becomes due, or 0 when nothing is waiting. */
uint64_t qmgr_run(struct qmgr *q, uint64_t now);

/* Results. code is 2, 4 or 5 (the class); dsn and text as the transport said. */
void qmgr_job_result(struct qjob *job, uint32_t idx, int code, const char *dsn, const char *text);
/* An alias of recipient idx expanded to a remote address: it becomes a new recipient of the message. */
void qmgr_job_add_rcpt(struct qjob *job, uint32_t idx, const char *addr);
/* One target of recipient idx (an alias's command, file or mailbox) failed for good while the others were
 * delivered: it becomes a bounced recipient of its own, so the sender's report names it. dsn must be 5.x.x. */
void qmgr_job_add_failed(struct qjob *job, uint32_t idx, const char *target, const char *dsn, const char *text);
/* The job is over: recipients without a result are deferred with why (NULL: "no result from transport");
 * state is committed, then bounces sent and finished files removed. The job is freed. */
void qmgr_job_done(struct qjob *job, uint64_t now, const char *why);

/* Administrative requests; id NULL means every message where that makes sense. Return how many messages
 * were affected, -1 when the ID is unknown. */
int qmgr_flush(struct qmgr *q, const char *id, uint64_t now);
int qmgr_hold(struct qmgr *q, const char *id);
int qmgr_release(struct qmgr *q, const char *id, uint64_t now);
int qmgr_delete(struct qmgr *q, const char *id);
int qmgr_delete_deferred(struct qmgr *q);	/* every message in deferred/ */
int qmgr_requeue(struct qmgr *q, const char *id, uint64_t now);

/* Listing: messages from number offset on, formatted into out until it passes max_bytes (at least one goes);
 * stats say how many, their size, and whether more remain. Returns stats->count. */
struct qmgr_list_stats {
	size_t count;
	unsigned long long bytes;
	bool more;
};
size_t qmgr_list(struct qmgr *q, enum qlist_format f, size_t offset, size_t max_bytes, struct buf *out,
                 struct qmgr_list_stats *stats);
size_t qmgr_count(const struct qmgr *q);
/* The state database qmgr writes (tests read it through this: LMDB allows one environment per file and
 * process). */
struct qstate *qmgr_state(struct qmgr *q);
size_t qmgr_inflight(const struct qmgr *q);

#endif
