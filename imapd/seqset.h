/* Sequence sets and UID sets (RFC 3501 sequence-set: "1,3:5,7:*"). Parsed from a command's atom, then resolved
 * against the mailbox ('*' is the largest number in use) into sorted, merged ranges that FETCH, STORE, COPY,
 * MOVE, SEARCH and the UID variants walk. The parse caps the number of ranges so a peer cannot make us allocate. */
#ifndef POSTERN_IMAPD_SEQSET_H
#define POSTERN_IMAPD_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define IMAP_SEQ_STAR 0u	/* '*' before resolving (real numbers start at 1) */

struct imap_range {
	uint32_t lo, hi;
};

struct imap_seqset {
	struct imap_range *r;
	size_t count, cap;
};

/* Parse s (whole string) into set (emptied first). false on bad syntax (0, a number past 2^32-1, empty element,
 * stray characters) or more than max_ranges elements. */
bool imap_seqset_parse(const char *s, struct imap_seqset *set, size_t max_ranges);
/* Replace '*' by max, order each range, sort and merge; ranges left above max are kept for UID sets (the caller
 * clips), ranges with '*' on an empty mailbox (max 0) disappear. */
void imap_seqset_resolve(struct imap_seqset *set, uint32_t max);
/* After resolve: is n in the set? (binary search) */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n);
/* Number of members after resolve, counting only 1..max. */
uint64_t imap_seqset_count(const struct imap_seqset *set, uint32_t max);
/* "1:3,5" form of a resolved set, for COPYUID and SEARCH results. */
bool imap_seqset_format(const struct imap_seqset *set, struct buf *out);
void imap_seqset_free(struct imap_seqset *set);

#endif
