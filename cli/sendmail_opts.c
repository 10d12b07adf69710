/* sendmail command line: the option set programs have passed to /usr/sbin/sendmail for decades. Parsed by hand,
 * getopt-style (bundled flags, attached or separate values), because the accepted-and-ignored options must
 * still consume their values exactly as Postfix's sendmail does. */
#include <string.h>

#include "alloc.h"
#include "sendmail.h"
#include "str.h"

/* Options that take a value; those not handled below are accepted and ignored (Postfix's set). */
static const char value_opts[] = "BCFLNORVXbefhopqr";
/* Flags without a value that are accepted and ignored: -G, -I (like -bi), -m, -n, -U, -x, -c. */
static const char ignored_flags[] = "GmnUxc";

static bool set_mode(struct sendmail_opts *o, enum sendmail_mode m, const char *what, struct buf *err)
{
	if (o->mode != SENDMAIL_DELIVER && o->mode != m) {
		buf_printf(err, "%s conflicts with an earlier mode option", what);
		return false;
	}
	o->mode = m;
	return true;
}

static bool take_b(struct sendmail_opts *o, const char *v, struct buf *err)
{
	if (strcmp(v, "m") == 0)
		return set_mode(o, SENDMAIL_DELIVER, "-bm", err);
	if (strcmp(v, "s") == 0)
		return set_mode(o, SENDMAIL_SMTP, "-bs", err);
	if (strcmp(v, "p") == 0)
		return set_mode(o, SENDMAIL_MAILQ, "-bp", err);
	if (strcmp(v, "i") == 0)
		return set_mode(o, SENDMAIL_NEWALIASES, "-bi", err);
	buf_printf(err, "-b%s is not supported (use -bm, -bs, -bp or -bi)", v);
	return false;
}

static bool take_value(struct sendmail_opts *o, char c, const char *v, struct buf *err)
{
	switch (c) {
	case 'b':
		return take_b(o, v, err);
	case 'f':
	case 'r':
		/* "-f <>" and "-f ''" both mean the null sender */
		o->sender = strcmp(v, "<>") == 0 ? "" : v;
		return true;
	case 'F':
		o->fullname = v;
		return true;
	case 'N': {
		struct buf tmp = BUF_INIT(256);
		bool ok = sendmail_notify_value(v, &tmp);
		buf_free(&tmp);
		if (!ok) {
			buf_printf(err, "-N %s: expected never, or a list of success, failure, delay", v);
			return false;
		}
		o->notify = v;
		return true;
	}
	case 'V':
		if (*v == '\0' || strlen(v) > 100) {
			buf_printf(err, "-V: the envelope ID must be 1 to 100 characters");
			return false;
		}
		o->envid = v;
		return true;
	case 'C':
		o->dir = v;
		return true;
	case 'o':
		if (strcmp(v, "i") == 0)
			o->ignore_dots = true;
		return true;	/* -oem, -odb, -oQ..., -om ...: nothing to do with them here */
	case 'q':
		return set_mode(o, SENDMAIL_FLUSH, "-q", err);
	default:
		return true;	/* -B type, -h hops, -L label, -O, -R ret, -X log, -e, -p: ignored */
	}
}

bool sendmail_parse_args(int argc, char **argv, struct sendmail_opts *o, struct buf *err)
{
	const char *name = argc > 0 ? strrchr(argv[0], '/') : NULL;
	int i;

	memset(o, 0, sizeof(*o));
	name = name ? name + 1 : (argc > 0 ? argv[0] : "sendmail");
	if (strcmp(name, "mailq") == 0)
		o->mode = SENDMAIL_MAILQ;
	else if (strcmp(name, "newaliases") == 0)
		o->mode = SENDMAIL_NEWALIASES;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "--version") == 0) {
			o->mode = SENDMAIL_VERSION;
			continue;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		/* -q alone (and -qR..., -q30m) takes no separate value: it means "flush" */
		if (a[1] == 'q') {
			if (!set_mode(o, SENDMAIL_FLUSH, "-q", err))
				return false;
			continue;
		}
		for (const char *p = a + 1; *p; p++) {
			char c = *p;
			if (strchr(value_opts, c)) {
				const char *v = p[1] ? p + 1 : NULL;
				if (!v) {
					if (i + 1 >= argc) {
						buf_printf(err, "option -%c needs a value", c);
						return false;
					}
					v = argv[++i];
				}
				if (!take_value(o, c, v, err))
					return false;
				break;
			}
			switch (c) {
			case 't':
				o->extract = true;
				break;
			case 'i':
				o->ignore_dots = true;
				break;
			case 'v':
				o->verbose = true;
				break;
			case 'I':
				if (!set_mode(o, SENDMAIL_NEWALIASES, "-I", err))
					return false;
				break;
			default:
				if (!strchr(ignored_flags, c)) {
					buf_printf(err, "unknown option -%c", c);
					return false;
				}
			}
		}
	}
	o->nrcpts = argc > i ? (size_t)(argc - i) : 0;
	if (o->nrcpts > SENDMAIL_MAX_RCPTS) {
		buf_printf(err, "too many recipients (at most %d)", SENDMAIL_MAX_RCPTS);
		return false;
	}
	o->rcpts = xcalloc(o->nrcpts + 1, sizeof(*o->rcpts));
	for (size_t k = 0; k < o->nrcpts; k++)
		o->rcpts[k] = argv[i + (int)k];
	if (o->mode == SENDMAIL_DELIVER && !o->extract && o->nrcpts == 0) {
		buf_puts(err, "no recipients given (name them, or use -t to read them from the message)");
		sendmail_opts_free(o);
		return false;
	}
	return true;
}

void sendmail_opts_free(struct sendmail_opts *o)
{
	xfree(&o->rcpts);
	o->nrcpts = 0;
}

bool sendmail_notify_value(const char *s, struct buf *out)
{
	static const char *const words[] = { "success", "failure", "delay" };
	struct buf tmp = BUF_INIT(256);
	char *copy, *fields[8];
	size_t n;
	unsigned seen = 0;
	bool ok = true;

	if (str_eq_ci(s, "never"))
		return buf_puts(out, "NEVER");
	if (strlen(s) > 64)
		return false;
	copy = xstrdup(s);
	n = str_split(copy, ", ", fields, 8);
	if (n == 0 || n > 3)
		ok = false;
	for (size_t k = 0; ok && k < n; k++) {
		size_t w;
		for (w = 0; w < 3 && !str_eq_ci(fields[k], words[w]); w++)
			;
		if (w == 3 || (seen & (1u << w))) {
			ok = false;
			break;
		}
		seen |= 1u << w;
		if (tmp.len)
			buf_putc(&tmp, ',');
		for (const char *c = words[w]; *c; c++)
			buf_putc(&tmp, *c - 32);
	}
	free(copy);
	if (ok)
		ok = buf_append(out, tmp.data, tmp.len);
	buf_free(&tmp);
	return ok;
}
