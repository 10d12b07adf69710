/* IMAP flags <-> Maildir letters, STORE item parsing; see flags.h. */
#include <string.h>

#include "flags.h"
#include "str.h"

static const struct {
	unsigned flag;
	const char *name;
	char letter;
} table[] = {
	/* in Maildir letter order, which is also the order names are listed in */
	{ IMAP_FLAG_DRAFT, "\\Draft", 'D' },
	{ IMAP_FLAG_FLAGGED, "\\Flagged", 'F' },
	{ IMAP_FLAG_ANSWERED, "\\Answered", 'R' },
	{ IMAP_FLAG_SEEN, "\\Seen", 'S' },
	{ IMAP_FLAG_DELETED, "\\Deleted", 'T' },
};
#define NFLAGS (sizeof(table) / sizeof(table[0]))

unsigned imap_flag_from_name(const char *name)
{
	for (size_t i = 0; i < NFLAGS; i++)
		if (str_eq_ci(name, table[i].name))
			return table[i].flag;
	return 0;
}

unsigned imap_flags_from_maildir(const char *letters)
{
	unsigned f = 0;
	for (; *letters; letters++)
		for (size_t i = 0; i < NFLAGS; i++)
			if (*letters == table[i].letter)
				f |= table[i].flag;
	return f;
}

void imap_flags_to_maildir(unsigned flags, struct buf *out)
{
	for (size_t i = 0; i < NFLAGS; i++)
		if (flags & table[i].flag)
			buf_putc(out, table[i].letter);
}

void imap_flags_to_list(unsigned flags, struct buf *out)
{
	bool first = true;

	buf_putc(out, '(');
	for (size_t i = 0; i < NFLAGS; i++) {
		if (!(flags & table[i].flag))
			continue;
		buf_printf(out, "%s%s", first ? "" : " ", table[i].name);
		first = false;
	}
	buf_putc(out, ')');
}

/* flag-keyword = atom without '\'; a '\' flag must be one of the system flags. */
static bool add_flag(const struct imap_arg *a, unsigned *flags, bool *keywords, struct buf *err)
{
	const char *s;

	if (!imap_arg_atom(a, &s) || a->type == IMAP_ARG_NIL) {
		buf_puts(err, "flags are atoms");
		return false;
	}
	if (s[0] == '\\') {
		unsigned f = imap_flag_from_name(s);
		if (!f) {
			buf_puts(err, str_eq_ci(s, "\\Recent") ? "\\Recent cannot be stored" : "unknown system flag");
			return false;
		}
		*flags |= f;
		return true;
	}
	for (const char *p = s; *p; p++)
		if (*p == '*' || *p == '%' || *p == ']' || (unsigned char)*p >= 0x80) {
			buf_puts(err, "invalid keyword");
			return false;
		}
	*keywords = true;
	return true;
}

bool imap_flags_parse_list(const struct imap_arg *list, unsigned *flags, bool *keywords, struct buf *err)
{
	if (list->type != IMAP_ARG_LIST) {
		buf_puts(err, "a flag list expected");
		return false;
	}
	for (size_t i = 0; i < list->count; i++)
		if (!add_flag(&list->list[i], flags, keywords, err))
			return false;
	return true;
}

bool imap_store_parse(const struct imap_arg *item, const struct imap_arg *value, struct imap_store *out,
		      struct buf *err)
{
	const char *s;

	memset(out, 0, sizeof(*out));
	if (!imap_arg_atom(item, &s)) {
		buf_puts(err, "STORE needs FLAGS, +FLAGS or -FLAGS");
		return false;
	}
	if (*s == '+' || *s == '-') {
		out->op = *s == '+' ? IMAP_STORE_ADD : IMAP_STORE_REMOVE;
		s++;
	}
	if (str_eq_ci(s, "FLAGS.SILENT"))
		out->silent = true;
	else if (!str_eq_ci(s, "FLAGS")) {
		buf_puts(err, "STORE needs FLAGS, +FLAGS or -FLAGS");
		return false;
	}
	if (value->type != IMAP_ARG_LIST)
		return add_flag(value, &out->flags, &out->keywords, err);
	return imap_flags_parse_list(value, &out->flags, &out->keywords, err);
}

unsigned imap_store_apply(const struct imap_store *st, unsigned current)
{
	switch (st->op) {
	case IMAP_STORE_SET:
		return st->flags;
	case IMAP_STORE_ADD:
		return current | st->flags;
	case IMAP_STORE_REMOVE:
		return current & ~st->flags;
	}
	return current;
}
