/* IMAP keywords ($Label1, NonJunk, ...) of one Maildir folder: the letters a-z after ":2," stand for the names
 * listed in the folder's postern-keywords file (line n = letter 'a' + n), so 26 keywords per folder. Used by the
 * selected state (STORE, FETCH FLAGS, SEARCH KEYWORD) and APPEND. */
#ifndef POSTERN_IMAPD_KEYWORDS_H
#define POSTERN_IMAPD_KEYWORDS_H

#include <stdbool.h>

#include "buf.h"
#include "parser.h"

#define IMAPD_KEYWORDS_FILE "postern-keywords"
#define IMAPD_KEYWORDS_MAX 26
#define IMAPD_KEYWORD_LEN 100

/* Read the folder's list into kw (old entries freed; missing file = empty list). true when it changed. */
bool imapd_keywords_load(const char *dir, char *kw[IMAPD_KEYWORDS_MAX]);
/* Every letter is taken: no new keyword can be stored (PERMANENTFLAGS then goes without "\*", RFC 3501 7.1). */
bool imapd_keywords_full(char *const kw[IMAPD_KEYWORDS_MAX]);
/* The letter of name (case-insensitive), adding it to the file when create is set: 'a'..'z', 0 when unknown
 * (and not created), -1 with err when the list is full or cannot be written. kw is reloaded meanwhile. */
int imapd_keyword_letter(const char *dir, char *kw[IMAPD_KEYWORDS_MAX], const char *name, bool create,
			 struct buf *err);
/* The keywords (atoms without '\') named in a flag list or a single flag argument, as letters into *letters
 * (bit n = letter 'a' + n); create as above. false with err (BAD when *bad is set, else NO). */
bool imapd_keywords_from_args(const char *dir, char *kw[IMAPD_KEYWORDS_MAX], const struct imap_arg *a,
			      bool create, unsigned *letters, bool *bad, struct buf *err);

#endif
