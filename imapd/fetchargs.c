/* FETCH attribute parsing; see fetchargs.h. The section text sits inside one parser atom ("BODY[...]<a.b>");
 * what is between the brackets goes to imap_section_parse(). */
#include <string.h>

#include "alloc.h"
#include "fetchargs.h"
#include "str.h"
#include "utf7imap.h"

static const struct {
	const char *name;
	enum imap_fetch_kind kind;
} simple[] = {
	{ "FLAGS", IMAP_FETCH_FLAGS },
	{ "INTERNALDATE", IMAP_FETCH_INTERNALDATE },
	{ "RFC822.SIZE", IMAP_FETCH_RFC822_SIZE },
	{ "UID", IMAP_FETCH_UID },
	{ "MODSEQ", IMAP_FETCH_MODSEQ },
	{ "ENVELOPE", IMAP_FETCH_ENVELOPE },
	{ "BODY", IMAP_FETCH_BODY },
	{ "BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE },
	{ "RFC822", IMAP_FETCH_RFC822 },
	{ "RFC822.HEADER", IMAP_FETCH_RFC822_HEADER },
	{ "RFC822.TEXT", IMAP_FETCH_RFC822_TEXT },
};

static struct imap_fetch_item *new_item(struct imap_fetch *f, enum imap_fetch_kind kind)
{
	f->items = xreallocarray(f->items, f->count + 1, sizeof(*f->items));
	struct imap_fetch_item *it = &f->items[f->count++];
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	return it;
}

static bool add_simple(struct imap_fetch *f, const char *name)
{
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
		if (!str_eq_ci(name, simple[i].name))
			continue;
		struct imap_fetch_item *it = new_item(f, simple[i].kind);
		it->resp_name = xstrdup(simple[i].name);
		it->peek = simple[i].kind != IMAP_FETCH_RFC822 && simple[i].kind != IMAP_FETCH_RFC822_TEXT;
		if (!it->peek)
			f->sets_seen = true;
		return true;
	}
	return false;
}

static bool add_macro(struct imap_fetch *f, const char *name)
{
	static const char *const fast[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE" };
	size_t n;

	if (str_eq_ci(name, "FAST"))
		n = 3;
	else if (str_eq_ci(name, "ALL"))
		n = 4;
	else if (str_eq_ci(name, "FULL"))
		n = 5;
	else
		return false;
	for (size_t i = 0; i < 3; i++)
		add_simple(f, fast[i]);
	if (n >= 4)
		add_simple(f, "ENVELOPE");
	if (n == 5)
		add_simple(f, "BODY");
	return true;
}

static bool parse_u64(const char **sp, const char *end, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;

	if (s == end || *s < '0' || *s > '9')
		return false;
	while (s < end && *s >= '0' && *s <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
		s++;
	}
	*sp = s;
	*out = v;
	return true;
}

/* BODY[section]<partial> / BODY.PEEK[...]; s points after "BODY" or "BODY.PEEK", at '['. */
static bool add_section(struct imap_fetch *f, const char *s, bool peek, struct buf *err)
{
	const char *end = s + strlen(s);
	struct imap_fetch_item *it = new_item(f, IMAP_FETCH_SECTION);
	struct buf resp = BUF_INIT(BUF_NOLIMIT);

	it->peek = peek;
	if (!peek)
		f->sets_seen = true;
	s++;	/* '[' */
	const char *close = memchr(s, ']', (size_t)(end - s));
	if (!close || !imap_section_parse(s, (size_t)(close - s), &it->sec))
		goto bad;
	s = close + 1;
	if (s < end && *s == '<') {
		s++;
		if (!parse_u64(&s, end, &it->start) || s == end || *s != '.')
			goto bad;
		s++;
		if (!parse_u64(&s, end, &it->count) || it->count == 0 || s == end || *s != '>')
			goto bad;
		s++;
		it->partial = true;
	}
	if (s != end)
		goto bad;

	/* the response echoes the section and only the partial's start */
	buf_puts(&resp, "BODY[");
	for (size_t i = 0; i < it->sec.npath; i++)
		buf_printf(&resp, "%s%u", i ? "." : "", it->sec.path[i]);
	if (it->sec.kind != IMAP_SECTION_ALL) {
		static const char *const names[] = { "", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME" };
		buf_printf(&resp, "%s%s", it->sec.npath ? "." : "", names[it->sec.kind]);
	}
	if (it->sec.nfields) {
		buf_puts(&resp, " (");
		for (size_t i = 0; i < it->sec.nfields; i++) {
			if (i)
				buf_putc(&resp, ' ');
			const char *fn = it->sec.fields[i];
			size_t fl = strlen(fn);
			/* echoed as an atom when it is one (what clients sent), else as a string */
			if (fl && fl == strcspn(fn, " ()[]{}\"%*\\") && utf7imap_is_plain(fn, fl))
				buf_append(&resp, fn, fl);
			else
				imap_append_string(&resp, fn, fl);
		}
		buf_puts(&resp, ")");
	}
	buf_puts(&resp, "]");
	if (it->partial)
		buf_printf(&resp, "<%llu>", (unsigned long long)it->start);
	it->resp_name = buf_steal(&resp, NULL);
	return true;
bad:
	buf_puts(err, "invalid BODY[] section");
	buf_free(&resp);
	return false;
}

static bool add_item(struct imap_fetch *f, const struct imap_arg *a, bool allow_macro, struct buf *err)
{
	const char *s;

	if (f->count >= IMAP_FETCH_MAX_ITEMS) {
		buf_puts(err, "too many FETCH items");
		return false;
	}
	if (!imap_arg_atom(a, &s)) {
		buf_puts(err, "FETCH items are atoms");
		return false;
	}
	if (allow_macro && add_macro(f, s))
		return true;
	if (add_simple(f, s))
		return true;
	if (str_eqn_ci(s, "BODY.PEEK[", 10))
		return add_section(f, s + 9, true, err);
	if (str_eqn_ci(s, "BODY[", 5))
		return add_section(f, s + 4, false, err);
	buf_puts(err, "unknown FETCH item");
	return false;
}

bool imap_fetch_parse(const struct imap_arg *arg, struct imap_fetch *out, struct buf *err)
{
	memset(out, 0, sizeof(*out));
	if (arg->type != IMAP_ARG_LIST)
		return add_item(out, arg, true, err);
	if (arg->count == 0) {
		buf_puts(err, "empty FETCH item list");
		return false;
	}
	for (size_t i = 0; i < arg->count; i++)
		if (!add_item(out, &arg->list[i], false, err))
			return false;
	return true;
}

void imap_fetch_free(struct imap_fetch *f)
{
	for (size_t i = 0; i < f->count; i++) {
		if (f->items[i].kind == IMAP_FETCH_SECTION)
			imap_section_free(&f->items[i].sec);
		free(f->items[i].resp_name);
	}
	xfree(&f->items);
	f->count = 0;
}
