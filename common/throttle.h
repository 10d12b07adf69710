/* Failed-login throttling: each key (a client IP, an account) that keeps failing waits longer before its next
 * answer: 0, 1, 2, 4 ... seconds up to a cap. A success resets the key; quiet time halves the count once per decay
 * period. Memory is bounded: a fixed number of entries, least recently used evicted first. Pure logic with an
 * injectable clock; the auth daemon keeps one table per kind of key and applies the larger delay. */
#ifndef POSTERN_THROTTLE_H
#define POSTERN_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define THROTTLE_KEY_MAX 320	/* longer keys are cut; an address is at most 254 bytes */

struct throttle_params {
	unsigned max_delay;		/* seconds; the cap of the doubling delay */
	unsigned decay;			/* seconds without a failure after which the failure count halves (>= 1) */
	size_t max_entries;		/* >= 1 */
	int64_t (*clock)(void *arg);	/* seconds; NULL = CLOCK_MONOTONIC */
	void *clock_arg;
};

struct throttle;

struct throttle *throttle_new(const struct throttle_params *params);
void throttle_free(struct throttle **t);
/* Seconds to wait before answering an attempt for key, from its failures so far (0 for an unknown key). */
unsigned throttle_delay(struct throttle *t, const char *key);
void throttle_failure(struct throttle *t, const char *key);
void throttle_success(struct throttle *t, const char *key);
/* Failure count of key after decay (0 when unknown); for logs and tests. */
unsigned throttle_failures(struct throttle *t, const char *key);
size_t throttle_entries(const struct throttle *t);
/* The delay a given failure count earns under params: 0 for none, then 1, 2, 4 ... capped at max_delay. */
unsigned throttle_delay_for(const struct throttle_params *params, unsigned failures);

#endif
