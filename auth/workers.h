/* Password hash checks off the auth daemon's event loop: a yescrypt check takes 10-20 ms, and run on the loop it
 * would hold up every other client's request (and the release of throttled replies) meanwhile. A few threads run
 * auth_job_run(); each finished job is handed back to the loop thread through a pipe, where done() answers it.
 * Only auth_job_run() runs on the threads: throttle tables, logs and the IPC stay on the loop. */
#ifndef POSTERN_AUTH_WORKERS_H
#define POSTERN_AUTH_WORKERS_H

#include "auth.h"

struct event_base;
struct auth_workers;

/* Called on the loop thread for each finished job, with the ctx given to auth_workers_submit. */
typedef void auth_workers_done_fn(struct auth_job *job, void *ctx, void *arg);

struct auth_workers *auth_workers_new(struct event_base *base, unsigned nthreads, auth_workers_done_fn *done,
                                      void *arg);
void auth_workers_submit(struct auth_workers *w, struct auth_job *job, void *ctx);
/* Jobs submitted and not yet handed to done(). */
size_t auth_workers_busy(const struct auth_workers *w);
/* Finishes every submitted job (done() runs for each, here), stops the threads, frees w. */
void auth_workers_free(struct auth_workers **w);

#endif
