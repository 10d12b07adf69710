/* Sequence set parsing and resolving; see seqset.h. */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "seqset.h"

static bool parse_num(const char **sp, uint32_t *out)
{
	const char *s = *sp;

	if (*s == '*') {
		*out = IMAP_SEQ_STAR;
		*sp = s + 1;
		return true;
	}
	if (*s < '1' || *s > '9')
		return false;
	uint64_t v = 0;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return false;
		s++;
	}
	*out = (uint32_t)v;
	*sp = s;
	return true;
}

static void add(struct imap_seqset *set, uint32_t lo, uint32_t hi)
{
	if (set->count == set->cap) {
		size_t ncap = set->cap ? set->cap * 2 : 4;
		set->r = xreallocarray(set->r, ncap, sizeof(*set->r));
		set->cap = ncap;
	}
	set->r[set->count].lo = lo;
	set->r[set->count].hi = hi;
	set->count++;
}

bool imap_seqset_parse(const char *s, struct imap_seqset *set, size_t max_ranges)
{
	set->count = 0;
	for (;;) {
		uint32_t lo, hi;
		if (!parse_num(&s, &lo))
			return false;
		hi = lo;
		if (*s == ':') {
			s++;
			if (!parse_num(&s, &hi))
				return false;
		}
		if (set->count >= max_ranges)
			return false;
		add(set, lo, hi);
		if (*s == '\0')
			return true;
		if (*s != ',')
			return false;
		s++;
	}
}

static int cmp_range(const void *a, const void *b)
{
	const struct imap_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

void imap_seqset_resolve(struct imap_seqset *set, uint32_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < set->count; i++) {
		struct imap_range r = set->r[i];
		if (max == 0 && (r.lo == IMAP_SEQ_STAR || r.hi == IMAP_SEQ_STAR))
			continue;	/* '*' names nothing in an empty mailbox */
		if (r.lo == IMAP_SEQ_STAR)
			r.lo = max;
		if (r.hi == IMAP_SEQ_STAR)
			r.hi = max;
		if (r.lo > r.hi) {
			uint32_t t = r.lo;
			r.lo = r.hi;
			r.hi = t;
		}
		set->r[n++] = r;
	}
	set->count = n;
	if (n < 2)
		return;
	qsort(set->r, n, sizeof(*set->r), cmp_range);
	size_t w = 0;
	for (size_t i = 1; i < n; i++) {
		if ((uint64_t)set->r[i].lo <= (uint64_t)set->r[w].hi + 1) {
			if (set->r[i].hi > set->r[w].hi)
				set->r[w].hi = set->r[i].hi;
		} else {
			set->r[++w] = set->r[i];
		}
	}
	set->count = w + 1;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n)
{
	size_t lo = 0, hi = set->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (n < set->r[mid].lo)
			hi = mid;
		else if (n > set->r[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

uint64_t imap_seqset_count(const struct imap_seqset *set, uint32_t max)
{
	uint64_t total = 0;

	for (size_t i = 0; i < set->count && set->r[i].lo <= max; i++) {
		uint32_t hi = set->r[i].hi < max ? set->r[i].hi : max;
		total += (uint64_t)hi - set->r[i].lo + 1;
	}
	return total;
}

bool imap_seqset_format(const struct imap_seqset *set, struct buf *out)
{
	for (size_t i = 0; i < set->count; i++) {
		const struct imap_range *r = &set->r[i];
		bool ok = r->lo == r->hi ? buf_printf(out, "%s%u", i ? "," : "", r->lo)
					 : buf_printf(out, "%s%u:%u", i ? "," : "", r->lo, r->hi);
		if (!ok)
			return false;
	}
	return true;
}

void imap_seqset_free(struct imap_seqset *set)
{
	xfree(&set->r);
	set->count = set->cap = 0;
}
