/* Retry schedule of deferred recipients: exponential backoff between a minimum and a maximum delay, and the
 * queue lifetime after which a still-deferred recipient is bounced. Pure arithmetic, used by qmgr and tests;
 * time_scale divides every delay so tests can run days of retries in seconds (queue_time_scale). */
#ifndef POSTERN_QMGR_SCHED_H
#define POSTERN_QMGR_SCHED_H

#include <stdbool.h>
#include <stdint.h>

struct qsched_params {
	uint64_t min_backoff_ms;	/* first retry delay (minimal_backoff_time) */
	uint64_t max_backoff_ms;	/* cap of the doubling (maximal_backoff_time) */
	uint64_t lifetime_ms;		/* bounce after this long in the queue (maximal_queue_lifetime) */
	uint64_t time_scale;		/* >= 1: every delay above is divided by it */
	uint64_t warn_ms;		/* delay warning after this long in the queue, 0: never (delay_warning_time) */
};

/* Delay before the next attempt after the attempts-th failed one (attempts >= 1): min * 2^(attempts-1), capped
 * at max, all divided by the scale (never below 1 ms). */
uint64_t qsched_backoff(const struct qsched_params *p, uint32_t attempts);
/* True when a message that arrived at arrival_ms has stayed past its (scaled) lifetime at now_ms. */
bool qsched_expired(const struct qsched_params *p, uint64_t arrival_ms, uint64_t now_ms);
/* True when a message that arrived at arrival_ms is due a delay warning at now_ms (never when warn_ms is 0). */
bool qsched_warn_due(const struct qsched_params *p, uint64_t arrival_ms, uint64_t now_ms);
/* When a message that arrived at arrival_ms is due its delay warning; 0 when warnings are off. */
uint64_t qsched_warn_at(const struct qsched_params *p, uint64_t arrival_ms);
/* Milliseconds since the epoch. */
uint64_t qsched_now(void);

#endif
