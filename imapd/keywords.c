/* Per-folder keyword names; see keywords.h. Additions take a lock file so two sessions adding keywords at once
 * cannot give one letter two names; the list only grows, so a letter once given keeps its meaning. */
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "fsutil.h"
#include "keywords.h"
#include "mbox.h"
#include "str.h"

#define FILE_MAX (IMAPD_KEYWORDS_MAX * (IMAPD_KEYWORD_LEN + 1))

bool imapd_keywords_load(const char *dir, char *kw[IMAPD_KEYWORDS_MAX])
{
	struct buf p = BUF_INIT(BUF_NOLIMIT), data = BUF_INIT(FILE_MAX);
	char *fresh[IMAPD_KEYWORDS_MAX] = { 0 };
	size_t n = 0;
	bool changed = false;

	buf_printf(&p, "%s/%s", dir, IMAPD_KEYWORDS_FILE);
	if (fsutil_read_file(buf_cstr(&p), FILE_MAX, &data) && data.len) {
		const char *s = data.data, *end = data.data + data.len;
		while (s < end && n < IMAPD_KEYWORDS_MAX) {
			const char *nl = memchr(s, '\n', (size_t)(end - s));
			size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);
			fresh[n++] = len && len <= IMAPD_KEYWORD_LEN ? xstrndup(s, len) : NULL;
			s += len + 1;
		}
	}
	for (size_t i = 0; i < IMAPD_KEYWORDS_MAX; i++) {
		if ((kw[i] == NULL) != (fresh[i] == NULL) || (kw[i] && strcmp(kw[i], fresh[i]) != 0))
			changed = true;
		free(kw[i]);
		kw[i] = fresh[i];
	}
	buf_free(&p);
	buf_free(&data);
	return changed;
}

bool imapd_keywords_full(char *const kw[IMAPD_KEYWORDS_MAX])
{
	for (int i = 0; i < IMAPD_KEYWORDS_MAX; i++)
		if (!kw[i])
			return false;
	return true;
}

static int find(char *kw[IMAPD_KEYWORDS_MAX], const char *name)
{
	for (int i = 0; i < IMAPD_KEYWORDS_MAX; i++)
		if (kw[i] && str_eq_ci(kw[i], name))
			return 'a' + i;
	return 0;
}

int imapd_keyword_letter(const char *dir, char *kw[IMAPD_KEYWORDS_MAX], const char *name, bool create,
			 struct buf *err)
{
	int c = find(kw, name);
	if (c || !create)
		return c;
	if (strlen(name) > IMAPD_KEYWORD_LEN) {
		buf_puts(err, "keyword too long");
		return -1;
	}
	int lock = -1;
	for (int tries = 0; tries < 200 && (lock = mbox_lock(dir, IMAPD_KEYWORDS_FILE ".lock")) < 0; tries++)
		usleep(10000);
	if (lock < 0) {
		buf_puts(err, "keyword list busy");
		return -1;
	}
	imapd_keywords_load(dir, kw);
	if ((c = find(kw, name)) == 0) {
		int i;
		for (i = 0; i < IMAPD_KEYWORDS_MAX && kw[i]; i++)
			;
		if (i == IMAPD_KEYWORDS_MAX) {
			buf_puts(err, "[LIMIT] no room for more keywords in this mailbox");
			close(lock);
			return -1;
		}
		struct buf data = BUF_INIT(BUF_NOLIMIT), p = BUF_INIT(BUF_NOLIMIT);
		for (int j = 0; j < i; j++)
			buf_printf(&data, "%s\n", kw[j]);
		buf_printf(&data, "%s\n", name);
		buf_printf(&p, "%s/%s", dir, IMAPD_KEYWORDS_FILE);
		if (fsutil_write_atomic(buf_cstr(&p), data.data, data.len, 0600, err)) {
			kw[i] = xstrdup(name);
			c = 'a' + i;
		} else {
			c = -1;
		}
		buf_free(&data);
		buf_free(&p);
	}
	close(lock);
	return c;
}

static bool one(const char *dir, char *kw[IMAPD_KEYWORDS_MAX], const struct imap_arg *a, bool create,
		unsigned *letters, bool *bad, struct buf *err)
{
	const char *s;

	if (!imap_arg_atom(a, &s) || a->type == IMAP_ARG_NIL) {
		*bad = true;
		buf_puts(err, "flags are atoms");
		return false;
	}
	if (s[0] == '\\')
		return true;
	int c = imapd_keyword_letter(dir, kw, s, create, err);
	if (c < 0)
		return false;
	if (c)
		*letters |= 1u << (c - 'a');
	return true;
}

bool imapd_keywords_from_args(const char *dir, char *kw[IMAPD_KEYWORDS_MAX], const struct imap_arg *a,
			      bool create, unsigned *letters, bool *bad, struct buf *err)
{
	*letters = 0;
	*bad = false;
	if (a->type != IMAP_ARG_LIST)
		return one(dir, kw, a, create, letters, bad, err);
	for (size_t i = 0; i < a->count; i++)
		if (!one(dir, kw, &a->list[i], create, letters, bad, err))
			return false;
	return true;
}
