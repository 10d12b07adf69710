/* Failed-login throttling; see throttle.h. A fixed array of entries, a chained hash index over it (seeded per
 * table, so clients cannot aim many keys at one chain) and an LRU list through it, all by index. */
#include "throttle.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "alloc.h"
#include "log.h"

#define NONE ((size_t)-1)

struct entry {
	char key[THROTTLE_KEY_MAX + 1];
	uint64_t hash;
	unsigned failures;
	int64_t last;		/* time of the last failure, advanced by whole decay periods */
	size_t chain;		/* next entry in this hash bucket */
	size_t prev, next;	/* LRU list (head = most recent) or free list (next only) */
	bool used;
};

struct throttle {
	struct throttle_params p;
	struct entry *e;
	size_t *bucket;
	size_t nbuckets;	/* power of two */
	size_t head, tail, freelist, count;
	uint64_t seed;
};

static int64_t mono_clock(void *arg)
{
	struct timespec ts;
	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

struct throttle *throttle_new(const struct throttle_params *params)
{
	struct throttle *t = xcalloc(1, sizeof *t);

	if (params->max_entries == 0 || params->decay == 0)
		panic("throttle_new: max_entries and decay must be positive");
	t->p = *params;
	if (t->p.clock == NULL)
		t->p.clock = mono_clock;
	t->e = xcalloc(t->p.max_entries, sizeof *t->e);
	for (t->nbuckets = 16; t->nbuckets < t->p.max_entries; t->nbuckets *= 2)
		;
	t->bucket = xcalloc(t->nbuckets, sizeof *t->bucket);
	for (size_t i = 0; i < t->nbuckets; i++)
		t->bucket[i] = NONE;
	for (size_t i = 0; i < t->p.max_entries; i++)
		t->e[i].next = i + 1 < t->p.max_entries ? i + 1 : NONE;
	t->freelist = 0;
	t->head = t->tail = NONE;
	if (getrandom(&t->seed, sizeof t->seed, 0) != sizeof t->seed)
		t->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)t;
	return t;
}

void throttle_free(struct throttle **tp)
{
	struct throttle *t = *tp;
	if (t == NULL)
		return;
	free(t->e);
	free(t->bucket);
	free(t);
	*tp = NULL;
}

/* FNV-1a over the seed and the key, with a final mix so the low bits (the bucket) depend on every byte. */
static uint64_t hash_key(const struct throttle *t, const char *key, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ t->seed;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static void lru_unlink(struct throttle *t, size_t i)
{
	struct entry *e = &t->e[i];
	if (e->prev != NONE)
		t->e[e->prev].next = e->next;
	else
		t->head = e->next;
	if (e->next != NONE)
		t->e[e->next].prev = e->prev;
	else
		t->tail = e->prev;
}

static void lru_push_head(struct throttle *t, size_t i)
{
	struct entry *e = &t->e[i];
	e->prev = NONE;
	e->next = t->head;
	if (t->head != NONE)
		t->e[t->head].prev = i;
	t->head = i;
	if (t->tail == NONE)
		t->tail = i;
}

static void remove_entry(struct throttle *t, size_t i)
{
	struct entry *e = &t->e[i];
	size_t *pp = &t->bucket[e->hash & (t->nbuckets - 1)];

	while (*pp != i) {
		if (*pp == NONE)
			panic("throttle: entry missing from its bucket");
		pp = &t->e[*pp].chain;
	}
	*pp = e->chain;
	lru_unlink(t, i);
	memset(e, 0, sizeof *e);
	e->next = t->freelist;
	t->freelist = i;
	t->count--;
}

static size_t key_len(const char *key)
{
	return strnlen(key, THROTTLE_KEY_MAX);
}

static size_t find(struct throttle *t, const char *key, size_t n, uint64_t h)
{
	for (size_t i = t->bucket[h & (t->nbuckets - 1)]; i != NONE; i = t->e[i].chain)
		if (t->e[i].hash == h && strncmp(t->e[i].key, key, n) == 0 && t->e[i].key[n] == '\0')
			return i;
	return NONE;
}

/* Apply decay; removes the entry (returns NONE) when nothing is left of it. */
static size_t decay(struct throttle *t, size_t i, int64_t now)
{
	struct entry *e = &t->e[i];
	if (now > e->last) {
		int64_t periods = (now - e->last) / (int64_t)t->p.decay;
		if (periods >= 32)
			e->failures = 0;
		else
			e->failures >>= periods;
		e->last += periods * (int64_t)t->p.decay;
	}
	if (e->failures == 0) {
		remove_entry(t, i);
		return NONE;
	}
	return i;
}

static size_t lookup(struct throttle *t, const char *key, int64_t now)
{
	size_t n = key_len(key);
	size_t i = find(t, key, n, hash_key(t, key, n));
	if (i != NONE)
		i = decay(t, i, now);
	return i;
}

unsigned throttle_delay_for(const struct throttle_params *params, unsigned failures)
{
	if (failures == 0)
		return 0;
	if (failures > 32)
		return params->max_delay;
	uint64_t d = (uint64_t)1 << (failures - 1);
	return d > params->max_delay ? params->max_delay : (unsigned)d;
}

unsigned throttle_failures(struct throttle *t, const char *key)
{
	size_t i = lookup(t, key, t->p.clock(t->p.clock_arg));
	return i == NONE ? 0 : t->e[i].failures;
}

unsigned throttle_delay(struct throttle *t, const char *key)
{
	return throttle_delay_for(&t->p, throttle_failures(t, key));
}

void throttle_failure(struct throttle *t, const char *key)
{
	int64_t now = t->p.clock(t->p.clock_arg);
	size_t n = key_len(key);
	uint64_t h = hash_key(t, key, n);
	size_t i = find(t, key, n, h);

	if (i != NONE)
		i = decay(t, i, now);
	if (i == NONE) {
		if (t->freelist == NONE)
			remove_entry(t, t->tail);
		i = t->freelist;
		struct entry *e = &t->e[i];
		t->freelist = e->next;
		memcpy(e->key, key, n);
		e->key[n] = '\0';
		e->hash = h;
		e->used = true;
		e->failures = 0;
		e->chain = t->bucket[h & (t->nbuckets - 1)];
		t->bucket[h & (t->nbuckets - 1)] = i;
		lru_push_head(t, i);
		t->count++;
	} else {
		lru_unlink(t, i);
		lru_push_head(t, i);
	}
	if (t->e[i].failures < 1000000)
		t->e[i].failures++;
	t->e[i].last = now;
}

void throttle_success(struct throttle *t, const char *key)
{
	size_t n = key_len(key);
	size_t i = find(t, key, n, hash_key(t, key, n));
	if (i != NONE)
		remove_entry(t, i);
}

size_t throttle_entries(const struct throttle *t)
{
	return t->count;
}
