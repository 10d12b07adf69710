/* qmgr engine with a fake transport: incoming -> active, jobs per message, results recorded before acting,
 * bounces (DSN queued from the null sender, double bounces to postmaster, none for NOTIFY=NEVER), expiry,
 * deferral and the deferred/ directory, alias-added recipients, corrupt files, start-up reconciliation
 * (orphan state, missing state, stale tmp files), hold/release/delete/flush/requeue. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../qmgr/queue.h"
#include "alloc.h"
#include "fsutil.h"
#include "log.h"

static char qdir[64];
static struct qjob *jobs[64];
static size_t njobs;
static bool refuse;
static struct qmgr *cur_q;

static size_t smtp_jobs;
static bool smtp_ok;

static bool fake_dispatch(struct qjob *job, void *arg)
{
	(void)arg;
	if (strcmp(job->transport, "smtp") == 0 && !smtp_ok) {
		/* as qmgr/main.c does while no smtp service exists */
		smtp_jobs++;
		job->fail_dsn = "4.4.1";
		job->fail_text = "no smtp transport available for remote delivery";
		return false;
	}
	if (refuse)
		return false;
	assert_true(njobs < 64);
	jobs[njobs++] = job;
	return true;
}

static struct qjob *take_job(void)
{
	assert_true(njobs > 0);
	struct qjob *j = jobs[0];
	memmove(jobs, jobs + 1, (--njobs) * sizeof(*jobs));
	return j;
}

static char *local_domains[] = { "local.test" };

static unsigned global_limit = 10;
static uint64_t warn_ms;	/* delay_warning_time of the next qmgr */

static struct qmgr *new_qmgr(void)
{
	struct qmgr_params p = {
		.queue_dir = qdir, .hostname = "mx.local.test", .postmaster = "postmaster@local.test",
		.sched = { 300000, 3600000, 5ull * 86400000, 1, warn_ms }, .bounce_size_limit = 50000,
		.global_limit = global_limit, .dest_limit = 10, .rcpt_limit = 2,
		.route = { local_domains, 1, NULL, 0, NULL, NULL },
	};
	struct buf err = BUF_INIT(1024);
	struct qmgr *q = qmgr_new(&p, fake_dispatch, NULL, &err);
	if (!q)
		fail_msg("qmgr_new: %s", buf_cstr(&err));
	cur_q = q;
	buf_free(&err);
	return q;
}

static char *queue_msg(const char *sender, const char **rcpts, size_t n, unsigned notify, const char *origin)
{
	struct buf err = BUF_INIT(1024);
	struct qfile_writer *w = qfile_create(qdir, &err);
	assert_non_null(w);
	char *id = xstrdup(qfile_writer_id(w));
	assert_true(qfile_put_str(w, QREC_SENDER, sender));
	for (size_t i = 0; i < n; i++)
		assert_true(qfile_put_rcpt(w, rcpts[i], notify, NULL));
	if (origin)
		assert_true(qfile_put_str(w, QREC_ORIGIN, origin));
	const char *body = "Subject: test\n\nhello\n";
	assert_true(qfile_write(w, body, strlen(body)));
	assert_true(qfile_commit(&w, &err));
	buf_free(&err);
	return id;
}

static bool exists(const char *dir, const char *id)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s/%s", qdir, dir, id);
	return access(p, F_OK) == 0;
}

static size_t count_dir(const char *dir)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", qdir, dir);
	DIR *d = opendir(p);
	size_t n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n;
}

/* The one file in incoming/ (a bounce), parsed; its content in content. */
static char *incoming_one(struct qfile_envelope *env, struct buf *content, bool keep)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/incoming", qdir);
	DIR *d = opendir(p);
	struct dirent *e;
	char *id = NULL;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			id = xstrdup(e->d_name);
	closedir(d);
	assert_non_null(id);
	snprintf(p, sizeof(p), "%s/incoming/%s", qdir, id);
	struct buf data = BUF_INIT(1 << 20), err = BUF_INIT(1024);
	assert_true(fsutil_read_file(p, 1 << 20, &data));
	assert_true(qfile_parse(data.data, data.len, env, &err));
	buf_append(content, data.data + env->content_offset, (size_t)env->content_len);
	if (!keep)
		unlink(p);
	buf_free(&data);
	buf_free(&err);
	return id;
}

/* What is committed for id: through qmgr's own environment when it runs (LMDB allows one per file and
 * process), else by opening the file. */

static void get_state(const char *id, struct qstate_rcpt **st, size_t *n)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/state.lmdb", qdir);
	struct buf err = BUF_INIT(1024);
	struct qstate *db = cur_q ? qmgr_state(cur_q) : qstate_open(p, false, &err);
	assert_non_null(db);
	assert_true(qstate_get_msg(db, id, st, n, &err));
	if (!cur_q)
		qstate_close(&db);
	buf_free(&err);
}

static void test_flow(void **state)
{
	(void)state;
	struct qmgr *q = new_qmgr();
	const char *r[] = { "ok@local.test", "bad@local.test", "far@remote.test" };
	char *id = queue_msg("sender@local.test", r, 3, 0, NULL);
	uint64_t now = qsched_now();
	qmgr_start(q, now);
	assert_true(exists("active", id));
	assert_int_equal(qmgr_count(q), 1);
	uint64_t next = qmgr_run(q, now);
	/* one local job with both local recipients; the remote one deferred with 4.4.1 at once */
	assert_int_equal(njobs, 1);
	assert_int_equal(smtp_jobs, 1);
	struct qjob *j = take_job();
	assert_int_equal(j->n, 2);
	assert_string_equal(j->rcpts[0].addr, "ok@local.test");
	assert_true(next > now);
	qmgr_job_result(j, 0, 2, "2.0.0", "delivered to maildir");
	qmgr_job_result(j, 1, 5, "5.1.1", "unknown user: \"bad@local.test\"");
	qmgr_job_done(j, now, NULL);
	/* state committed */
	struct qstate_rcpt *st;
	size_t n;
	get_state(id, &st, &n);
	assert_int_equal(n, 3);
	assert_int_equal(st[0].status, QSTATE_SENT);
	assert_int_equal(st[1].status, QSTATE_BOUNCED);
	assert_true(st[1].flags & QSTATE_F_NOTIFIED);
	assert_int_equal(st[2].status, QSTATE_DEFERRED);
	assert_string_equal(st[2].dsn, "4.4.1");
	assert_int_equal(st[2].attempts, 1);
	assert_true(st[2].next_try >= now + 300000);
	qstate_free_list(&st, n);
	/* the bounce: from the null sender to the sender, a multipart/report naming bad@ only */
	struct qfile_envelope env;
	struct buf content = BUF_INIT(BUF_NOLIMIT);
	char *bid = incoming_one(&env, &content, true);
	assert_string_equal(env.sender, "");
	assert_string_equal(env.rcpts[0].addr, "sender@local.test");

	assert_string_equal(env.origin, "bounce");
	assert_non_null(strstr(content.data, "multipart/report"));
	assert_non_null(strstr(content.data, "Final-Recipient: rfc822; bad@local.test"));
	assert_null(strstr(content.data, "Final-Recipient: rfc822; ok@local.test"));
	assert_non_null(strstr(content.data, "\nhello\n"));
	qfile_envelope_free(&env);
	free(bid);
	buf_reset(&content);
	/* the notification is taken in by the next run, without waiting for a scan, and is a job of its own */
	assert_int_equal(count_dir("incoming"), 1);
	qmgr_run(q, now);
	assert_int_equal(count_dir("incoming"), 0);
	assert_int_equal(qmgr_count(q), 2);
	assert_int_equal(njobs, 1);
	j = take_job();
	assert_string_equal(j->sender, "");
	qmgr_job_result(j, 0, 2, "2.0.0", "delivered");
	qmgr_job_done(j, now, NULL);
	assert_int_equal(qmgr_count(q), 1);
	/* waiting for a retry: the file sits in deferred/ */
	assert_true(exists("deferred", id));
	assert_int_equal(qmgr_run(q, now + 1000) >= now + 300000, 1);
	assert_int_equal(njobs, 0);
	/* past the lifetime the remote recipient bounces and the message is removed with its state */
	uint64_t later = now + 6ull * 86400000;
	qmgr_run(q, later);
	assert_false(exists("deferred", id));
	assert_false(exists("active", id));
	get_state(id, &st, &n);
	assert_int_equal(n, 0);
	assert_int_equal(qmgr_count(q), 0);
	bid = incoming_one(&env, &content, false);
	assert_non_null(strstr(content.data, "Final-Recipient: rfc822; far@remote.test"));
	assert_non_null(strstr(content.data, "delivery time expired"));
	qfile_envelope_free(&env);
	free(bid);
	buf_free(&content);
	free(id);
	qmgr_free(&q);
	cur_q = NULL;
}

static void test_defer_and_added(void **state)
{
	(void)state;
	struct qmgr *q = new_qmgr();
	const char *r[] = { "list@local.test" };
	char *id = queue_msg("", r, 1, 0, NULL);
	uint64_t now = qsched_now();
	qmgr_start(q, now);
	qmgr_run(q, now);
	struct qjob *j = take_job();
	/* no result at all: deferred with the reason, backoff applies */
	qmgr_job_done(j, now, "local transport crashed");
	struct qstate_rcpt *st;
	size_t n;
	get_state(id, &st, &n);
	assert_int_equal(st[0].status, QSTATE_DEFERRED);
	assert_string_equal(st[0].text, "local transport crashed");
	qstate_free_list(&st, n);
	/* flush makes it due at once */
	assert_int_equal(qmgr_flush(q, NULL, now + 10), 1);
	qmgr_run(q, now + 10);
	j = take_job();
	assert_int_equal(j->n, 1);
	qmgr_job_add_rcpt(j, 0, "member@remote.test");
	qmgr_job_add_rcpt(j, 7, "refused@remote.test");	/* not in this job */
	qmgr_job_result(j, 0, 2, "2.0.0", "alias expanded");
	qmgr_job_done(j, now + 10, NULL);
	get_state(id, &st, &n);
	assert_int_equal(n, 2);
	assert_int_equal(st[1].parent, 0);
	assert_string_equal(st[1].addr, "member@remote.test");
	qstate_free_list(&st, n);
	/* the added remote recipient is deferred (no smtp yet) */
	qmgr_run(q, now + 20);
	get_state(id, &st, &n);
	assert_int_equal(st[1].status, QSTATE_DEFERRED);
	assert_string_equal(st[1].dsn, "4.4.1");
	qstate_free_list(&st, n);
	/* a refused dispatch defers too */
	qmgr_requeue(q, id, now + 30);
	refuse = true;
	qmgr_run(q, now + 30);
	refuse = false;
	get_state(id, &st, &n);
	assert_string_equal(st[1].dsn, "4.4.1");
	qstate_free_list(&st, n);
	/* hold, release, delete */
	assert_int_equal(qmgr_hold(q, id), 1);
	assert_true(exists("hold", id));
	assert_int_equal(qmgr_run(q, now + 100000000), 0);
	assert_int_equal(njobs, 0);
	assert_int_equal(qmgr_release(q, id, now), 1);
	assert_true(exists("active", id));
	assert_int_equal(qmgr_delete(q, "0NOSUCHID000"), -1);
	assert_int_equal(qmgr_delete(q, id), 1);
	assert_false(exists("active", id));
	get_state(id, &st, &n);
	assert_int_equal(n, 0);
	assert_int_equal(count_dir("incoming"), 0);
	free(id);
	qmgr_free(&q);
	cur_q = NULL;
}

/* A deferred message whose file is truncated while qmgr is stopped: set aside in corrupt/ at start, its state
 * dropped with it, and the other messages go on. */
static void test_truncated_deferred(void **state)
{
	(void)state;
	struct qmgr *q = new_qmgr();
	const char *r[] = { "a@local.test" };
	char *id = queue_msg("s@remote.test", r, 1, 0, NULL);
	char *ok = queue_msg("s@remote.test", r, 1, 0, NULL);
	uint64_t now = qsched_now();
	qmgr_start(q, now);
	qmgr_run(q, now);
	assert_int_equal(njobs, 2);
	for (int i = 0; i < 2; i++)
		qmgr_job_done(take_job(), now, "try later");
	assert_true(exists("deferred", id));
	qmgr_free(&q);
	cur_q = NULL;
	char p[256];
	snprintf(p, sizeof(p), "%s/deferred/%s", qdir, id);
	struct stat sb;
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(truncate(p, sb.st_size / 2), 0);
	q = new_qmgr();
	qmgr_start(q, now + 1000);
	assert_true(exists("corrupt", id));
	assert_false(exists("deferred", id));
	assert_int_equal(qmgr_count(q), 1);
	struct qstate_rcpt *st;
	size_t n;
	get_state(id, &st, &n);
	assert_int_equal(n, 0);
	get_state(ok, &st, &n);
	assert_int_equal(n, 1);
	qstate_free_list(&st, n);
	qmgr_free(&q);
	cur_q = NULL;
	free(id);
	free(ok);
}

/* delay_warning_time: one "delayed" report per recipient, only once the time has passed, only when NOTIFY allows
 * it, never to the null sender; the message stays queued and is still delivered. */
static void test_delay_warning(void **state)
{
	(void)state;
	warn_ms = 3600000;
	struct qmgr *q = new_qmgr();
	warn_ms = 0;
	const char *r[] = { "slow@local.test" };
	char *id = queue_msg("s@remote.test", r, 1, 0, NULL);
	char *quiet = queue_msg("s@remote.test", r, 1, QFILE_NOTIFY_FAILURE, NULL);
	char *nul = queue_msg("", r, 1, 0, NULL);
	uint64_t now = qsched_now();
	qmgr_start(q, now);
	qmgr_run(q, now);
	assert_int_equal(njobs, 3);
	for (int i = 0; i < 3; i++)
		qmgr_job_done(take_job(), now, "mailbox busy");
	/* too early: nothing */
	assert_int_equal(count_dir("incoming"), 0);
	uint64_t later = now + 3600000 + 1000;
	qmgr_run(q, later);
	assert_int_equal(njobs, 3);
	for (int i = 0; i < 3; i++) {
		struct qjob *j = take_job();
		qmgr_job_result(j, 0, 4, "4.2.1", "mailbox busy again");
		qmgr_job_done(j, later, NULL);
	}
	/* one warning: the other two asked for failures only or have no one to tell */
	assert_int_equal(count_dir("incoming"), 1);
	struct qfile_envelope env;
	struct buf content = BUF_INIT(BUF_NOLIMIT);
	char *wid = incoming_one(&env, &content, false);
	assert_string_equal(env.rcpts[0].addr, "s@remote.test");
	assert_string_equal(env.sender, "");
	assert_non_null(strstr(content.data, "Subject: Delayed Mail (still being retried)"));
	assert_non_null(strstr(content.data, "Action: delayed"));
	assert_non_null(strstr(content.data, "Status: 4.3.0"));	/* due at "later": sent with the last known status */
	assert_non_null(strstr(content.data, id));
	assert_null(strstr(content.data, "Content-Type: message/rfc822"));	/* headers only */
	qfile_envelope_free(&env);
	free(wid);
	buf_free(&content);
	struct qstate_rcpt *st;
	size_t n;
	get_state(id, &st, &n);
	assert_int_equal(st[0].status, QSTATE_DEFERRED);
	assert_true(st[0].flags & QSTATE_F_WARNED);
	qstate_free_list(&st, n);
	/* never twice, also not after a restart */
	qmgr_free(&q);
	warn_ms = 3600000;
	q = new_qmgr();
	warn_ms = 0;
	uint64_t much_later = later + 86400000;
	qmgr_start(q, much_later);
	qmgr_run(q, much_later);
	assert_int_equal(njobs, 3);
	struct qjob *last[3];
	for (int i = 0; i < 3; i++) {
		last[i] = take_job();
		qmgr_job_done(last[i], much_later, "still busy");
	}
	assert_int_equal(count_dir("incoming"), 0);
	/* delivered in the end: removed as usual */
	assert_int_equal(qmgr_flush(q, NULL, much_later + 10), 3);
	qmgr_run(q, much_later + 10);
	for (int i = 0; i < 3; i++) {
		struct qjob *j = take_job();
		qmgr_job_result(j, 0, 2, "2.0.0", "delivered");
		qmgr_job_done(j, much_later + 10, NULL);
	}
	assert_int_equal(qmgr_count(q), 0);
	assert_int_equal(count_dir("incoming"), 0);
	free(id);
	free(quiet);
	free(nul);
	qmgr_free(&q);
	cur_q = NULL;
}

/* The warning comes when delay_warning_time has passed, from the schedule's own timer: not only at the end of
 * the next attempt, which may be much later. */
static void test_delay_warning_on_time(void **state)
{
	(void)state;
	warn_ms = 60000;	/* a minute; the first retry is five minutes after the first attempt */
	struct qmgr *q = new_qmgr();
	warn_ms = 0;
	const char *r[] = { "slow@local.test" };
	char *id = queue_msg("s@remote.test", r, 1, 0, NULL);
	uint64_t now = qsched_now();
	qmgr_start(q, now);
	qmgr_run(q, now);
	assert_int_equal(njobs, 1);
	qmgr_job_done(take_job(), now, "mailbox busy");
	uint64_t next = qmgr_run(q, now);
	assert_true(next > now && next <= now + 60000);	/* the warning, before the retry */
	assert_int_equal(count_dir("incoming"), 0);
	qmgr_run(q, now + 61000);
	assert_int_equal(njobs, 0);			/* no attempt made ... */
	assert_int_equal(count_dir("incoming"), 1);	/* ... and the warning is out */
	struct qfile_envelope env;
	struct buf content = BUF_INIT(BUF_NOLIMIT);
	char *wid = incoming_one(&env, &content, false);
	assert_non_null(strstr(content.data, "Action: delayed"));
	assert_non_null(strstr(content.data, "Will-Retry-Until: "));
	qfile_envelope_free(&env);
	buf_free(&content);
	free(wid);
	/* once: the next timer is the retry */
	next = qmgr_run(q, now + 62000);
	assert_true(next >= now + 300000);
	assert_int_equal(count_dir("incoming"), 0);
	free(id);
	qmgr_free(&q);
	cur_q = NULL;
}

static void test_double_bounce(void **state)
{
	(void)state;
	struct qmgr *q = new_qmgr();
	const char *r[] = { "gone@local.test" };
	char *id = queue_msg("", r, 1, 0, "bounce");
	char *id2 = queue_msg("", r, 1, 0, "double-bounce");
	const char *r3[] = { "quiet@local.test" };
	char *id3 = queue_msg("s@remote.test", r3, 1, QFILE_NOTIFY_NEVER, NULL);
	uint64_t now = qsched_now();
	qmgr_start(q, now);
	qmgr_run(q, now);
	assert_int_equal(njobs, 3);
	for (int i = 0; i < 3; i++) {
		struct qjob *j = take_job();
		qmgr_job_result(j, 0, 5, "5.1.1", "unknown user");
		qmgr_job_done(j, now, NULL);
	}
	assert_int_equal(qmgr_count(q), 0);
	/* only the failed bounce produced a notification, to the postmaster */
	assert_int_equal(count_dir("incoming"), 1);
	struct qfile_envelope env;
	struct buf content = BUF_INIT(BUF_NOLIMIT);
	char *bid = incoming_one(&env, &content, false);
	assert_string_equal(env.rcpts[0].addr, "postmaster@local.test");
	assert_string_equal(env.origin, "double-bounce");
	qfile_envelope_free(&env);
	free(bid);
	buf_free(&content);
	free(id);
	free(id2);
	free(id3);
	qmgr_free(&q);
	cur_q = NULL;
}

static void test_notify_success(void **state)
{
	(void)state;
	struct qmgr *q = new_qmgr();
	const char *r[] = { "asked@local.test" };
	char *id = queue_msg("s@local.test", r, 1, QFILE_NOTIFY_SUCCESS | QFILE_NOTIFY_FAILURE, NULL);
	const char *r2[] = { "plain@local.test" };
	char *id2 = queue_msg("s@local.test", r2, 1, 0, NULL);
	uint64_t now = qsched_now();
	qmgr_start(q, now);
	qmgr_run(q, now);
	assert_int_equal(njobs, 2);
	for (int i = 0; i < 2; i++) {
		struct qjob *j = take_job();
		qmgr_job_result(j, 0, 2, "2.0.0", "delivered to maildir");
		qmgr_job_done(j, now, NULL);
	}
	assert_int_equal(qmgr_count(q), 0);
	/* one report, for the recipient that asked; headers only */
	assert_int_equal(count_dir("incoming"), 1);
	struct qfile_envelope env;
	struct buf content = BUF_INIT(BUF_NOLIMIT);
	char *bid = incoming_one(&env, &content, false);
	assert_string_equal(env.rcpts[0].addr, "s@local.test");
	assert_non_null(strstr(content.data, "Subject: Successful Mail Delivery Report\n"));
	assert_non_null(strstr(content.data, "Final-Recipient: rfc822; asked@local.test\nAction: delivered\n"
	                                     "Status: 2.0.0\n"));
	assert_non_null(strstr(content.data, "text/rfc822-headers"));
	assert_null(strstr(content.data, "\nhello\n"));
	qfile_envelope_free(&env);
	free(bid);
	buf_free(&content);
	free(id);
	free(id2);
	qmgr_free(&q);
	cur_q = NULL;
}

static void test_limits(void **state)
{
	(void)state;
	global_limit = 2;
	struct qmgr *q = new_qmgr();
	global_limit = 10;
	const char *r[] = { "a@local.test", "b@local.test", "c@local.test" };
	char *ids[4];
	for (int i = 0; i < 4; i++)
		ids[i] = queue_msg("s@remote.test", r, 3, 0, NULL);
	uint64_t now = qsched_now();
	qmgr_start(q, now);
	uint64_t next = qmgr_run(q, now);
	/* recipients split by the per-job limit (2), jobs capped by the global limit (2) */
	assert_int_equal(njobs, 2);
	assert_int_equal(qmgr_inflight(q), 2);
	assert_int_equal(jobs[0]->n, 2);
	assert_int_equal(jobs[1]->n, 1);
	assert_ptr_equal(jobs[0]->msg, jobs[1]->msg);
	/* saturated: no busy loop, the timer is a safety net */
	assert_true(next >= now + 1000);
	assert_int_equal(qmgr_run(q, now), next);
	assert_int_equal(njobs, 2);
	while (njobs || qmgr_count(q)) {
		struct qjob *j = take_job();
		for (size_t i = 0; i < j->n; i++)
			qmgr_job_result(j, j->rcpts[i].idx, 2, "2.0.0", "delivered");
		qmgr_job_done(j, now, NULL);
		qmgr_run(q, now);
		assert_true(qmgr_inflight(q) <= 2);
	}
	assert_int_equal(qmgr_count(q), 0);
	for (int i = 0; i < 4; i++)
		free(ids[i]);
	qmgr_free(&q);
	cur_q = NULL;
}

/* The administrative listing in pages (qmgr/admin.c), and delete by selection. */
static void test_admin_list_and_delete(void **state)
{
	(void)state;
	struct qmgr *q = new_qmgr();
	const char *r[] = { "a@local.test" };
	char *ids[3];
	for (int i = 0; i < 3; i++)
		ids[i] = queue_msg("s@remote.test", r, 1, 0, NULL);
	uint64_t now = qsched_now();
	qmgr_start(q, now);
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	struct qmgr_list_stats st;
	/* a page too small for one message still carries one, and says more follow */
	assert_int_equal(qmgr_list(q, QLIST_JSON, 0, 1, &b, &st), 1);
	assert_true(st.more);
	assert_int_equal(st.bytes, strlen("Subject: test\n\nhello\n"));
	assert_non_null(strstr(buf_cstr(&b), ids[0]));
	buf_reset(&b);
	assert_int_equal(qmgr_list(q, QLIST_JSON, 1, 1u << 20, &b, &st), 2);
	assert_false(st.more);
	assert_null(strstr(buf_cstr(&b), ids[0]));
	assert_non_null(strstr(buf_cstr(&b), ids[2]));
	buf_reset(&b);
	assert_int_equal(qmgr_list(q, QLIST_TEXT, 3, 1u << 20, &b, &st), 0);
	assert_int_equal(b.len, 0);
	/* nothing in deferred/ yet; then one held message survives a delete of deferred ones */
	assert_int_equal(qmgr_delete_deferred(q), 0);
	assert_int_equal(qmgr_hold(q, ids[1]), 1);
	assert_true(exists("hold", ids[1]));
	assert_int_equal(qmgr_delete(q, ids[0]), 1);
	assert_false(exists("active", ids[0]));
	assert_int_equal(qmgr_delete(q, ids[0]), -1);
	assert_int_equal(qmgr_delete(q, NULL), 2);
	assert_int_equal(qmgr_count(q), 0);
	assert_false(exists("hold", ids[1]));
	buf_free(&b);
	for (int i = 0; i < 3; i++)
		free(ids[i]);
	qmgr_free(&q);
	cur_q = NULL;
}

static void test_smtp_grouping(void **state)
{
	(void)state;
	struct qmgr *q = new_qmgr();
	const char *r[] = { "a@one.test", "x@local.test", "b@ONE.test", "c@two.test" };
	char *id = queue_msg("s@local.test", r, 4, 0, NULL);
	uint64_t now = qsched_now();
	smtp_ok = true;
	qmgr_start(q, now);
	qmgr_run(q, now);
	/* one job per destination: local, one.test (a and b), two.test */
	assert_int_equal(njobs, 3);
	size_t seen = 0;
	while (njobs) {
		struct qjob *j = take_job();
		if (strcmp(j->dest, "one.test") == 0) {
			assert_string_equal(j->transport, "smtp");
			assert_int_equal(j->n, 2);
			seen |= 1;
		} else if (strcmp(j->dest, "two.test") == 0) {
			assert_int_equal(j->n, 1);
			seen |= 2;
		} else {
			assert_string_equal(j->transport, "local");
			seen |= 4;
		}
		for (size_t i = 0; i < j->n; i++)
			qmgr_job_result(j, j->rcpts[i].idx, 2, "2.0.0", "250 ok");
		qmgr_job_done(j, now, NULL);
	}
	assert_int_equal(seen, 7);
	assert_int_equal(qmgr_count(q), 0);
	free(id);
	qmgr_free(&q);
	cur_q = NULL;
}

static size_t count_dest_jobs(const char *dest)
{
	size_t n = 0;
	for (size_t i = 0; i < njobs; i++)
		n += strcmp(jobs[i]->dest, dest) == 0;
	return n;
}

static struct qjob *take_dest_job(const char *dest)
{
	for (size_t i = 0; i < njobs; i++)
		if (strcmp(jobs[i]->dest, dest) == 0) {
			struct qjob *j = jobs[i];
			memmove(jobs + i, jobs + i + 1, (--njobs - i) * sizeof(*jobs));
			return j;
		}
	fail_msg("no job for %s", dest);
	return NULL;
}

/* A destination whose server cannot be reached is marked dead: its other mail is deferred without attempts
 * of its own until the first retry interval has passed, then one job probes it; mail for other destinations
 * goes on meanwhile. A refusal (a server answered) does not count. */
static void test_dead_destination(void **state)
{
	(void)state;
	struct qmgr *q = new_qmgr();
	smtp_ok = true;
	const char *down[] = { "a@down.test" }, *up[] = { "b@up.test" };
	char *first = queue_msg("s@local.test", down, 1, 0, NULL);
	uint64_t now = qsched_now();
	qmgr_start(q, now);
	qmgr_run(q, now);
	struct qjob *j = take_dest_job("down.test");
	qmgr_job_result(j, 0, 4, "4.4.1", "connect to 127.0.0.1[127.0.0.1]:9: Connection refused");
	qmgr_job_done(j, now, NULL);
	/* more mail for both: down.test's waits, up.test's is delivered */
	char *ids[3] = { queue_msg("s@local.test", down, 1, 0, NULL), queue_msg("s@local.test", down, 1, 0, NULL),
		         queue_msg("s@local.test", up, 1, 0, NULL) };
	qmgr_scan(q, now + 10);
	qmgr_run(q, now + 10);
	assert_int_equal(count_dest_jobs("down.test"), 0);
	assert_int_equal(count_dest_jobs("up.test"), 1);
	j = take_dest_job("up.test");
	qmgr_job_result(j, 0, 2, "2.0.0", "250 ok");
	qmgr_job_done(j, now + 10, NULL);
	struct qstate_rcpt *st;
	size_t n;
	get_state(ids[0], &st, &n);
	assert_int_equal(st[0].status, QSTATE_DEFERRED);
	assert_int_equal(st[0].attempts, 0);
	assert_non_null(strstr(st[0].text, "delivery temporarily suspended: connect to"));
	assert_true(st[0].next_try >= now + 300000);
	qstate_free_list(&st, n);
	/* after the pause: one probe at a time, though three messages are due */
	uint64_t later = now + 300000 + 1000;
	qmgr_run(q, later);
	assert_int_equal(count_dest_jobs("down.test"), 1);
	j = take_dest_job("down.test");
	/* a server that answers, even with a refusal, is alive: the rest go at full concurrency */
	qmgr_job_result(j, 0, 4, "4.7.1", "host said: 450 try later");
	qmgr_job_done(j, later, NULL);
	qmgr_run(q, later);
	assert_int_equal(count_dest_jobs("down.test"), 2);
	while (njobs) {
		j = take_job();
		qmgr_job_result(j, 0, 2, "2.0.0", "250 ok");
		qmgr_job_done(j, later, NULL);
	}
	assert_int_equal(qmgr_count(q), 1);	/* the refused one waits for its retry */
	smtp_ok = false;
	free(first);
	for (int i = 0; i < 3; i++)
		free(ids[i]);
	qmgr_free(&q);
	cur_q = NULL;
}

static void test_corrupt_and_reconcile(void **state)
{
	(void)state;
	char p[256];
	/* a corrupt file in incoming/ */
	snprintf(p, sizeof(p), "%s/incoming/0AAAAAAAAAAZZ", qdir);
	assert_true(fsutil_mkdir_p(qdir, 0700));
	struct qmgr *q = new_qmgr();
	struct buf err = BUF_INIT(1024);
	assert_true(fsutil_write_atomic(p, "PQF1garbage", 11, 0600, &err));
	/* a message, already started, whose state will be lost */
	const char *r[] = { "a@local.test", "b@local.test" };
	char *id = queue_msg("s@remote.test", r, 2, 0, NULL);
	uint64_t now = qsched_now();
	qmgr_free(&q);
	cur_q = NULL;
	/* qmgr "crashes" (a child that exits) with a job open and a result not yet committed */
	pid_t pid = fork();
	if (pid == 0) {
		q = new_qmgr();
		qmgr_start(q, now);
		if (!exists("corrupt", "0AAAAAAAAAAZZ") || qmgr_count(q) != 1)
			_exit(1);
		qmgr_run(q, now);
		struct qjob *cj = take_job();
		qmgr_job_result(cj, 0, 2, "2.0.0", "delivered");
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	struct qjob *j;
	/* orphan state for a file that no longer exists */
	snprintf(p, sizeof(p), "%s/state.lmdb", qdir);
	struct qstate *db = qstate_open(p, true, &err);
	struct qstate_rcpt rec = { .idx = 0, .status = QSTATE_PENDING, .parent = QSTATE_NO_PARENT };
	qstate_rcpt_set(&rec, "x@local.test", "", "");
	assert_true(qstate_put(db, "0ORPHAN00001", &rec, 1, &err));
	qstate_rcpt_free(&rec);
	qstate_close(&db);
	/* a stale temp file and a fresh one */
	char stale[256], fresh[256];
	snprintf(stale, sizeof(stale), "%s/tmp/stale", qdir);
	snprintf(fresh, sizeof(fresh), "%s/tmp/fresh", qdir);
	assert_true(fsutil_write_atomic(stale, "x", 1, 0600, &err));
	assert_true(fsutil_write_atomic(fresh, "x", 1, 0600, &err));
	struct timeval tv[2] = { { time(NULL) - 2 * 86400, 0 }, { time(NULL) - 2 * 86400, 0 } };
	assert_int_equal(utimes(stale, tv), 0);

	/* receipts of a message that is gone, and of one that is still queued */
	char rc1[256], rc2[256];
	snprintf(rc1, sizeof(rc1), "%s/receipts/0ORPHAN00001", qdir);
	assert_true(fsutil_mkdir_p(rc1, 0700));
	snprintf(rc1, sizeof(rc1), "%s/receipts/0ORPHAN00001/0-1", qdir);
	assert_true(fsutil_write_atomic(rc1, "", 0, 0600, &err));
	snprintf(rc2, sizeof(rc2), "%s/receipts/%s", qdir, id);
	assert_true(fsutil_mkdir_p(rc2, 0700));
	q = new_qmgr();
	qmgr_start(q, now);
	snprintf(rc1, sizeof(rc1), "%s/receipts/0ORPHAN00001", qdir);
	assert_int_equal(access(rc1, F_OK), -1);
	assert_int_equal(access(rc2, F_OK), 0);
	assert_int_equal(access(stale, F_OK), -1);
	assert_int_equal(access(fresh, F_OK), 0);
	unlink(fresh);
	struct qstate_rcpt *st;
	size_t n;
	get_state("0ORPHAN00001", &st, &n);
	assert_int_equal(n, 0);
	/* the message in active/ is resumed: nothing committed for it, so both are due again */
	assert_int_equal(qmgr_count(q), 1);
	qmgr_run(q, now);
	j = take_job();
	assert_int_equal(j->n, 2);
	qmgr_job_result(j, 0, 2, "2.0.0", "delivered");
	qmgr_job_result(j, 1, 2, "2.0.0", "delivered");
	qmgr_job_done(j, now, NULL);
	assert_int_equal(qmgr_count(q), 0);
	assert_false(exists("active", id));
	qmgr_flush_removals(q);
	assert_int_equal(access(rc2, F_OK), -1);	/* removed with the message */
	qmgr_free(&q);
	cur_q = NULL;
	/* state.lmdb deleted while stopped: rebuilt from the envelope */
	const char *r2[] = { "c@local.test" };
	char *id2 = queue_msg("s@remote.test", r2, 1, 0, NULL);
	q = new_qmgr();
	qmgr_start(q, now);
	qmgr_free(&q);
	cur_q = NULL;
	snprintf(p, sizeof(p), "%s/state.lmdb", qdir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/state.lmdb-lock", qdir);
	unlink(p);
	q = new_qmgr();
	qmgr_start(q, now);
	qmgr_run(q, now);
	j = take_job();
	assert_string_equal(j->rcpts[0].addr, "c@local.test");
	qmgr_job_result(j, 0, 2, "2.0.0", "delivered");
	qmgr_job_done(j, now, NULL);
	assert_int_equal(qmgr_count(q), 0);
	qmgr_free(&q);
	cur_q = NULL;
	free(id);
	free(id2);
	buf_free(&err);
}

static int setup(void **state)
{
	(void)state;
	snprintf(qdir, sizeof(qdir), "/tmp/test_qmgr.XXXXXX");
	assert_non_null(mkdtemp(qdir));
	njobs = 0;
	smtp_jobs = 0;
	smtp_ok = false;
	cur_q = NULL;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", qdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	log_init("test_qmgr_queue");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defer_and_added, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delay_warning, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delay_warning_on_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_deferred, setup, teardown),
		cmocka_unit_test_setup_teardown(test_double_bounce, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_success, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_smtp_grouping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_destination, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_list_and_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_and_reconcile, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
