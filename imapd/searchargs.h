/* SEARCH criteria (RFC 3501 6.4.4): parsed from SEARCH's arguments into a key tree, then evaluated per message.
 * Flag, size, date, sequence and UID keys are decided here from struct imap_search_msg; header and body text keys
 * ask the caller's callback, so the evaluator needs no mailbox or MIME code of its own. Depth and key counts are
 * capped so a client cannot build a tree that costs more than a small, fixed amount per message. */
#ifndef POSTERN_IMAPD_SEARCHARGS_H
#define POSTERN_IMAPD_SEARCHARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "parser.h"
#include "seqset.h"

#define IMAP_SEARCH_MAX_DEPTH 16
#define IMAP_SEARCH_MAX_KEYS 256

enum imap_search_type {
	IMAP_SK_AND,		/* all of sub (top level and parenthesised lists) */
	IMAP_SK_OR,		/* sub[0] or sub[1] */
	IMAP_SK_NOT,		/* not sub[0] */
	IMAP_SK_ALL,
	IMAP_SK_FLAG_SET,	/* num = flag bits that must all be set (ANSWERED, SEEN, ...) */
	IMAP_SK_FLAG_UNSET,	/* num = flag bits that must all be clear (UNSEEN, ...) */
	IMAP_SK_RECENT, IMAP_SK_NEW, IMAP_SK_OLD,
	IMAP_SK_KEYWORD, IMAP_SK_UNKEYWORD,	/* str; the callback says whether the message has it */
	IMAP_SK_LARGER, IMAP_SK_SMALLER,	/* num against RFC822.SIZE */
	IMAP_SK_BEFORE, IMAP_SK_ON, IMAP_SK_SINCE,	/* num = yyyymmdd against the internal date */
	IMAP_SK_SENTBEFORE, IMAP_SK_SENTON, IMAP_SK_SENTSINCE,	/* against the Date: header (callback) */
	IMAP_SK_HEADER,		/* field + str (FROM, TO, CC, BCC, SUBJECT become HEADER) */
	IMAP_SK_BODY, IMAP_SK_TEXT,	/* str */
	IMAP_SK_SEQSET, IMAP_SK_UIDSET,	/* set (resolved by imap_search_resolve) */
	IMAP_SK_MODSEQ,		/* num: modseq at least this (RFC 7162) */
};

struct imap_search_key {
	enum imap_search_type type;
	uint64_t num;
	char *field, *str;
	struct imap_seqset set;
	struct imap_search_key *sub;
	size_t nsub;
};

struct imap_search {
	struct imap_search_key root;	/* an AND */
	size_t nkeys;
	bool modseq;			/* a MODSEQ key was used: the result carries the highest modseq */
};

/* Parse SEARCH's arguments (after an optional CHARSET, which must be UTF-8 or US-ASCII). false with the reason in
 * err; *badcharset tells the caller to answer NO [BADCHARSET (UTF-8 US-ASCII)] rather than BAD. Call
 * imap_search_free either way. */
bool imap_search_parse(const struct imap_arg *args, size_t nargs, struct imap_search *out, struct buf *err,
		       bool *badcharset);
/* Resolve '*' in sequence sets (max_seq) and UID sets (max_uid) before evaluating. */
void imap_search_resolve(struct imap_search *s, uint32_t max_seq, uint32_t max_uid);
void imap_search_free(struct imap_search *s);

struct imap_search_msg {
	uint32_t seq, uid;
	unsigned flags;		/* IMAP_FLAG_* */
	bool recent;
	uint64_t size;		/* RFC822.SIZE */
	uint32_t internal_ymd;	/* internal date as yyyymmdd */
	uint64_t modseq;
	/* Text keys: does the message's field (HEADER, with field upper-cased) or body/text contain str
	 * (case-insensitively)? For SENT* keys, type is the key and the callback compares the Date: header with
	 * key->num; for KEYWORD and UNKEYWORD it says whether the message has keyword str (UNKEYWORD is negated
	 * here). NULL: such keys never match (UNKEYWORD always does). */
	bool (*text)(void *ctx, const struct imap_search_key *key);
	void *ctx;
};

bool imap_search_match(const struct imap_search *s, const struct imap_search_msg *m);

/* "1-Feb-1994" (day 1 or 2 digits) -> 19940201; false when not a valid date. */
bool imap_search_date(const char *s, uint32_t *ymd);

#endif
