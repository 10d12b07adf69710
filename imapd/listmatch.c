/* LIST wildcard matching by dynamic programming over name positions; see listmatch.h. */
#include <string.h>

#include "alloc.h"
#include "listmatch.h"
#include "str.h"

bool imap_list_match(const char *pattern, const char *name, char sep)
{
	size_t n = strlen(name);
	/* cur[j]: the pattern so far matches name[0..j) */
	bool *cur = xcalloc(n + 1, sizeof(bool)), *next = xcalloc(n + 1, sizeof(bool));

	cur[0] = true;
	for (const char *p = pattern; *p; p++) {
		if (*p == '*') {
			bool any = false;
			for (size_t j = 0; j <= n; j++)
				next[j] = any = any || cur[j];
		} else if (*p == '%') {
			for (size_t j = 0; j <= n; j++)
				next[j] = cur[j] || (j > 0 && next[j - 1] && name[j - 1] != sep);
		} else {
			next[0] = false;
			for (size_t j = 1; j <= n; j++)
				next[j] = cur[j - 1] && name[j - 1] == *p;
		}
		bool *t = cur;
		cur = next;
		next = t;
	}
	bool ok = cur[n];
	free(cur);
	free(next);
	return ok;
}

static bool inbox_prefix(const char *s, char sep)
{
	return str_eqn_ci(s, "INBOX", 5) && (s[5] == '\0' || s[5] == sep);
}

bool imap_mailbox_canon(const char *name, char sep, struct buf *out)
{
	buf_reset(out);
	if (inbox_prefix(name, sep)) {
		if (!buf_puts(out, "INBOX"))
			return false;
		name += 5;
	}
	return buf_puts(out, name);
}

bool imap_list_pattern(const char *ref, const char *mailbox, char sep, struct buf *out)
{
	struct buf joined = BUF_INIT(out->max);
	bool ok = (mailbox[0] == sep || buf_puts(&joined, ref)) && buf_puts(&joined, mailbox) &&
		  imap_mailbox_canon(buf_cstr(&joined), sep, out);

	buf_free(&joined);
	return ok;
}
