/* LIST/LSUB pattern matching (RFC 3501 6.3.8): '*' matches anything, '%' anything but the hierarchy separator.
 * Run in O(pattern x name) time whatever the wildcards, so a hostile pattern cannot make LIST slow.
 * Called by the LIST, LSUB and STATUS-free mailbox walkers in cmd_mailbox.c. */
#ifndef POSTERN_IMAPD_LISTMATCH_H
#define POSTERN_IMAPD_LISTMATCH_H

#include <stdbool.h>

#include "buf.h"

bool imap_list_match(const char *pattern, const char *name, char sep);
/* Join LIST's reference and mailbox arguments into one pattern (the reference is a prefix; a mailbox argument
 * starting with the separator stands alone), and spell a leading "inbox" (any case) as "INBOX" since that name
 * alone is case-insensitive. */
bool imap_list_pattern(const char *ref, const char *mailbox, char sep, struct buf *out);
/* "INBOX" for any case of "inbox" (also as the first component of a hierarchy), else name unchanged in out.
 * Both return false when out's cap is too small (out is then unusable, never a shortened name). */
bool imap_mailbox_canon(const char *name, char sep, struct buf *out);

#endif
