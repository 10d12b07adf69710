/* Backoff arithmetic: overflow-safe doubling, so a recipient tried thousands of times still gets the cap. */
#include <time.h>

#include "sched.h"

static uint64_t scaled(const struct qsched_params *p, uint64_t ms)
{
	uint64_t s = p->time_scale ? p->time_scale : 1;
	uint64_t v = ms / s;
	return v ? v : 1;
}

uint64_t qsched_backoff(const struct qsched_params *p, uint32_t attempts)
{
	uint64_t d = p->min_backoff_ms;

	if (attempts == 0)
		attempts = 1;
	for (uint32_t i = 1; i < attempts && d < p->max_backoff_ms; i++)
		d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
	if (d > p->max_backoff_ms)
		d = p->max_backoff_ms;
	return scaled(p, d);
}

bool qsched_expired(const struct qsched_params *p, uint64_t arrival_ms, uint64_t now_ms)
{
	return now_ms >= arrival_ms && now_ms - arrival_ms >= scaled(p, p->lifetime_ms);
}

bool qsched_warn_due(const struct qsched_params *p, uint64_t arrival_ms, uint64_t now_ms)
{
	return p->warn_ms > 0 && now_ms >= arrival_ms && now_ms - arrival_ms >= scaled(p, p->warn_ms);
}

uint64_t qsched_warn_at(const struct qsched_params *p, uint64_t arrival_ms)
{
	return p->warn_ms > 0 ? arrival_ms + scaled(p, p->warn_ms) : 0;
}

uint64_t qsched_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
