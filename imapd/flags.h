/* IMAP system flags and their Maildir letters (\Seen = S, \Answered = R, \Flagged = F, \Deleted = T, \Draft = D),
 * and the STORE command's data item ("+FLAGS.SILENT (\Seen)"). Used by STORE, FETCH FLAGS, APPEND and the
 * selected-state code; keywords are keywords.c's business. */
#ifndef POSTERN_IMAPD_FLAGS_H
#define POSTERN_IMAPD_FLAGS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "parser.h"

enum {
	IMAP_FLAG_ANSWERED = 1 << 0,
	IMAP_FLAG_FLAGGED = 1 << 1,
	IMAP_FLAG_DELETED = 1 << 2,
	IMAP_FLAG_SEEN = 1 << 3,
	IMAP_FLAG_DRAFT = 1 << 4,
};

/* "\Seen" (any case) -> IMAP_FLAG_SEEN; 0 for anything else (keywords, \Recent, junk). */
unsigned imap_flag_from_name(const char *name);
/* Flags from the letters after ":2," of a Maildir name; unknown letters are ignored. */
unsigned imap_flags_from_maildir(const char *letters);
/* The Maildir letters, in the ASCII order Maildir requires ("DFRST" order), appended to out. */
void imap_flags_to_maildir(unsigned flags, struct buf *out);
/* "(\Answered \Seen)" form for FETCH FLAGS. */
void imap_flags_to_list(unsigned flags, struct buf *out);

/* A flag list "(\Seen $Kw)" (APPEND, STORE): system flags into *flags; *keywords set when a keyword was named.
 * false with a BAD reason in err (\Recent, unknown system flags, non-atoms). */
bool imap_flags_parse_list(const struct imap_arg *list, unsigned *flags, bool *keywords, struct buf *err);

enum imap_store_op { IMAP_STORE_SET, IMAP_STORE_ADD, IMAP_STORE_REMOVE };
struct imap_store {
	enum imap_store_op op;
	bool silent;
	unsigned flags;
	bool keywords;		/* some keyword was named (ignored until keywords are stored) */
};
/* STORE's data item and value (a flag list or one flag). false with a BAD reason in err. \Recent is refused. */
bool imap_store_parse(const struct imap_arg *item, const struct imap_arg *value, struct imap_store *out,
		      struct buf *err);
/* Apply a STORE to current flags. */
unsigned imap_store_apply(const struct imap_store *st, unsigned current);

#endif
