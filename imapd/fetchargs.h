/* FETCH attribute parsing (RFC 3501 6.4.5): turns FETCH's argument (a macro, one item or a list) into items the
 * FETCH handler walks per message, including BODY[section]<partial> with its part path and header field list.
 * Pure syntax: no mailbox access, so the selected-state commands only add data sources when the index lands. */
#ifndef POSTERN_IMAPD_FETCHARGS_H
#define POSTERN_IMAPD_FETCHARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "imap_body.h"
#include "parser.h"

#define IMAP_FETCH_MAX_ITEMS 64

enum imap_fetch_kind {
	IMAP_FETCH_FLAGS,
	IMAP_FETCH_INTERNALDATE,
	IMAP_FETCH_RFC822_SIZE,
	IMAP_FETCH_UID,
	IMAP_FETCH_ENVELOPE,
	IMAP_FETCH_BODY,		/* BODY without a section: the non-extensible BODYSTRUCTURE */
	IMAP_FETCH_BODYSTRUCTURE,
	IMAP_FETCH_RFC822,		/* = BODY[] (sets \Seen) */
	IMAP_FETCH_RFC822_HEADER,	/* = BODY.PEEK[HEADER] */
	IMAP_FETCH_RFC822_TEXT,		/* = BODY[TEXT] */
	IMAP_FETCH_SECTION,		/* BODY[...] / BODY.PEEK[...] */
	IMAP_FETCH_MODSEQ,		/* RFC 7162 */
};


struct imap_fetch_item {
	enum imap_fetch_kind kind;
	bool peek;			/* does not set \Seen */
	struct imap_section sec;	/* IMAP_FETCH_SECTION: parsed by common/imap_section.c */
	bool partial;
	uint64_t start, count;
	char *resp_name;		/* the name to answer with: "BODY[HEADER.FIELDS (From)]<0>", "RFC822.SIZE" */
};

struct imap_fetch {
	struct imap_fetch_item *items;
	size_t count;
	bool sets_seen;			/* some item marks the message \Seen */
};

/* Parse FETCH's attribute argument. false with a reason for a BAD reply (our text) in err. Call imap_fetch_free
 * afterwards either way. */
bool imap_fetch_parse(const struct imap_arg *arg, struct imap_fetch *out, struct buf *err);
void imap_fetch_free(struct imap_fetch *f);

#endif
