/* Internals of the queue engine shared by queue.c (scheduling, results), notify.c (reports to senders) and
 * admin.c (the administrative requests and listing). Not for use outside qmgr/. */
#ifndef POSTERN_QMGR_QUEUE_IMPL_H
#define POSTERN_QMGR_QUEUE_IMPL_H

#include "queue.h"

struct qmsg {
	char *id;
	const char *dir;		/* "active", "deferred", "hold" */
	struct qfile_envelope env;
	struct qstate_rcpt *st;
	size_t nst;
	bool *busy;			/* per state record: in a running job */
	bool *dirty;
	unsigned jobs;
	bool removed;			/* deleted while jobs ran: free when the last ends */
	bool stored;			/* state.lmdb may hold records of it (so removal must delete them) */
	struct qmsg *next;
};

/* A destination (an smtp domain, or "local"): its jobs in flight, and whether it is dead — its last attempt
 * reached no server, so its other mail waits instead of each message timing out on its own. */
struct dest {
	char *name;
	unsigned jobs;
	unsigned failures;		/* smtp attempts in a row that reached no server */
	uint64_t dead_until;		/* ms: recipients are suspended until then (0: alive) */
	char *why;			/* the last such failure, shown for the suspended recipients */
	struct dest *next;
};

struct qmgr {
	struct qmgr_params p;
	struct qstate *db;
	qmgr_dispatch_fn *dispatch;
	void *arg;
	struct qmsg *msgs, *tail;
	size_t nmsgs;
	struct dest *dests;
	unsigned jobs;
	bool rescan;			/* we queued a notification: take it in without waiting for the scan */
	struct removal *rm;		/* files unlinked, their directory not yet fsync'd (qmgr_flush_removals) */
	size_t nrm, caprm;
};

struct removal {
	char *id;
	const char *dir;
	bool stored;			/* has state records to delete */
};

/* queue_dir/dir/id (id NULL: the directory). Caller frees. */
char *qmgr_path(const struct qmgr *q, const char *dir, const char *id);
/* rename between queue subdirectories and fsync both; false (logged) on failure. */
bool qmgr_move_file(struct qmgr *q, const char *id, const char *from, const char *to);
/* The same without the fsyncs, for moves a crash may undo harmlessly: between incoming/, active/ and
 * deferred/, whichever of them holds the file after a restart, it is loaded and retried the same way. */
bool qmgr_move_file_nosync(struct qmgr *q, const char *id, const char *from, const char *to);
void qmgr_remove_receipts(struct qmgr *q, const char *id);
struct qmsg *qmgr_find_msg(struct qmgr *q, const char *id);
/* Write the message's changed state records in one transaction. */
bool qmgr_commit(struct qmgr *q, struct qmsg *m);
/* Drop a message from memory (freed now, or when its last job ends). */
void qmgr_forget(struct qmgr *q, struct qmsg *m);
/* Arrival time in ms since the epoch. */
uint64_t qmgr_arrival_ms(const struct qmsg *m);
/* The envelope recipient state record i stands for (itself, or the one it was expanded from); NULL if none. */
const struct qfile_rcpt *qmgr_env_rcpt(const struct qmsg *m, size_t i);

/* notify.c. Queue one report for every bounced recipient not yet notified, and for delivered ones that asked
 * (NOTIFY=SUCCESS); the flags are committed. false when it must be tried again. */
bool qmgr_notify(struct qmgr *q, struct qmsg *m, uint64_t now);
/* Delay warnings that are due (delay_warning_time), once per recipient. */
void qmgr_warn_delayed(struct qmgr *q, struct qmsg *m, uint64_t now);
/* When m next needs qmgr_warn_delayed(); 0: never. */
uint64_t qmgr_warn_time(const struct qmgr *q, const struct qmsg *m);
/* Every recipient delivered and no success notice owed: removing the file is all that is left. */
bool qmgr_done_quietly(const struct qmsg *m);

#endif
