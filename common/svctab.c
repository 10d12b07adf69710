/* master.cf parser; see svctab.h. Strict on purpose: master runs whatever this table says as root, so every
 * column is checked here and every error names the file and line of the entry. */
#include "svctab.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "str.h"

#define SVCTAB_MAX_ENTRIES 1000
#define SVCTAB_MAX_FIELDS 256
#define SVCTAB_NAME_MAX 64

struct parser {
	const char *fname;
	unsigned line;	/* first physical line of the entry being parsed */
	struct buf *err;
};

static bool perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool perr(struct parser *p, const char *fmt, ...)
{
	va_list ap;

	buf_reset(p->err);
	buf_printf(p->err, "%s:%u: ", p->fname, p->line);
	va_start(ap, fmt);
	buf_vprintf(p->err, fmt, ap);
	va_end(ap);
	return false;
}

/* Printable, capped view of a field for error messages (the file may hold anything). */
static const char *show(const char *s)
{
	return log_safe(s, strlen(s), 80);
}

static bool name_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
	       c == '-';
}

/* Names that become file names or program names: no slash, no leading dot or dash, bounded length. */
static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > SVCTAB_NAME_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!name_char((unsigned char)s[i]))
			return false;
	return true;
}

const char *svctab_type_name(enum svc_type type)
{
	return type == SVC_INET ? "inet" : "unix";
}

const char *svctab_tls_name(enum svc_tls tls)
{
	switch (tls) {
	case SVC_TLS_STARTTLS: return "starttls";
	case SVC_TLS_IMPLICIT: return "implicit";
	default: return "none";
	}
}

bool svctab_tls_from_name(const char *s, enum svc_tls *out)
{
	if (strcmp(s, "-") == 0 || strcmp(s, "none") == 0)
		*out = SVC_TLS_NONE;
	else if (strcmp(s, "starttls") == 0)
		*out = SVC_TLS_STARTTLS;
	else if (strcmp(s, "implicit") == 0)
		*out = SVC_TLS_IMPLICIT;
	else
		return false;
	return true;
}

static bool parse_port(const char *s, unsigned *out)
{
	uint64_t v;

	if (!str_to_u64(s, 65535, &v) || v == 0 || s[0] == '0')
		return false;
	*out = (unsigned)v;
	return true;
}

static bool valid_host(const char *h, bool bracketed)
{
	size_t n = strlen(h);

	if (n == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)h[i];
		bool ok = bracketed ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
		                       c == ':' || c == '.')
		                    : ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		                       c == '.' || c == '-');
		if (!ok)
			return false;
	}
	return bracketed ? strchr(h, ':') != NULL : h[0] != '-';
}

/* One inet listener: "*:port", "host:port", "[v6]:port", or a bare "port" (same as "*:port"). */
static bool parse_inet(struct parser *p, const char *svc, const char *text, struct svc_listen *l)
{
	const char *colon, *portstr;
	char *host = NULL;

	memset(l, 0, sizeof(*l));
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (close == NULL || close[1] != ':')
			return perr(p, "service %s: bad listen address '%s' (IPv6 is written [addr]:port)", svc, show(text));
		host = xstrndup(text + 1, (size_t)(close - text - 1));
		if (!valid_host(host, true)) {
			free(host);
			return perr(p, "service %s: bad IPv6 address in '%s'", svc, show(text));
		}
		portstr = close + 2;
	} else if ((colon = strrchr(text, ':')) != NULL) {
		if (strchr(text, ':') != colon)
			return perr(p, "service %s: bad listen address '%s' (IPv6 is written [addr]:port)", svc, show(text));
		if (!(colon == text + 1 && text[0] == '*')) {
			host = xstrndup(text, (size_t)(colon - text));
			if (!valid_host(host, false)) {
				free(host);
				return perr(p, "service %s: bad host in listen address '%s'", svc, show(text));
			}
		}
		portstr = colon + 1;
	} else {
		portstr = text;
	}
	if (!parse_port(portstr, &l->port)) {
		free(host);
		return perr(p, "service %s: bad port in listen address '%s' (a number 1..65535)", svc, show(text));
	}
	l->host = host;
	l->text = xstrdup(text);
	return true;
}

static bool parse_listen(struct parser *p, struct svc_entry *e, char *field)
{
	char *items[SVCTAB_MAX_LISTEN];
	size_t n = str_split(field, ",", items, SVCTAB_MAX_LISTEN);

	if (n == 0)
		return perr(p, "service %s: empty listen column", e->name);
	if (n > SVCTAB_MAX_LISTEN)
		return perr(p, "service %s: more than %d listen addresses", e->name, SVCTAB_MAX_LISTEN);
	e->listen = xcalloc(n, sizeof(*e->listen));
	for (size_t i = 0; i < n; i++) {
		struct svc_listen *l = &e->listen[i];
		if (e->type == SVC_UNIX) {
			const char *pub = strncmp(items[i], SVCTAB_PUBLIC_PREFIX, strlen(SVCTAB_PUBLIC_PREFIX)) == 0
			                  ? items[i] + strlen(SVCTAB_PUBLIC_PREFIX) : items[i];
			if (!valid_name(pub))
				return perr(p, "service %s: bad socket name '%s' (letters, digits, '.', '_', '-'; no '/' "
				            "except a leading public/)", e->name, show(items[i]));
			l->name = xstrdup(items[i]);
			l->text = xstrdup(items[i]);
		} else if (!parse_inet(p, e->name, items[i], l)) {
			return false;
		}
		e->nlisten++;
		for (size_t j = 0; j < i; j++)
			if (svctab_listen_equal(&e->listen[j], l))
				return perr(p, "service %s: '%s' listed twice", e->name, show(items[i]));
	}
	return true;
}

/* "-" for the default, else a decimal number in [min, max]. */
static bool parse_num(struct parser *p, const struct svc_entry *e, const char *col, const char *s, unsigned min,
                      unsigned max, unsigned def, unsigned *out)
{
	uint64_t v;

	if (strcmp(s, "-") == 0) {
		*out = def;
		return true;
	}
	if (!str_to_u64(s, max, &v) || v < min)
		return perr(p, "service %s: bad %s '%s' (a number %u..%u, or - for %u)", e->name, col, show(s), min,
		            max, def);
	*out = (unsigned)v;
	return true;
}

/* Idle time: "-", or a number with an optional unit s, m, h. */
static bool parse_idle(struct parser *p, const struct svc_entry *e, const char *s, unsigned *out)
{
	size_t n = strlen(s);
	uint64_t v, mult = 1;

	if (strcmp(s, "-") == 0) {
		*out = SVCTAB_DEFAULT_IDLE;
		return true;
	}
	if (n > 1 && (s[n - 1] == 's' || s[n - 1] == 'm' || s[n - 1] == 'h')) {
		mult = s[n - 1] == 's' ? 1 : s[n - 1] == 'm' ? 60 : 3600;
		n--;
	}
	if (!str_to_u64n(s, n, SVCTAB_MAX_IDLE, &v) || v * mult > SVCTAB_MAX_IDLE)
		return perr(p, "service %s: bad idle time '%s' (seconds, or a number with unit s, m or h; at most %d s)",
		            e->name, show(s), SVCTAB_MAX_IDLE);
	*out = (unsigned)(v * mult);
	return true;
}

static bool valid_override(const char *s)
{
	const char *eq = strchr(s, '=');

	if (eq == NULL || eq == s || eq - s > SVCTAB_NAME_MAX)
		return false;
	for (const char *c = s; c < eq; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
			return false;
	return true;
}

static bool parse_args(struct parser *p, struct svc_entry *e, char **f, size_t n)
{
	e->overrides = xcalloc(n + 1, sizeof(char *));
	e->args = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		const char *ov = NULL;
		if (strcmp(f[i], "-o") == 0) {
			if (i + 1 == n)
				return perr(p, "service %s: -o without name=value", e->name);
			ov = f[++i];
		} else if (strncmp(f[i], "-o", 2) == 0) {
			ov = f[i] + 2;
		}
		if (ov) {
			if (!valid_override(ov))
				return perr(p, "service %s: bad override '%s' (write -o name=value)", e->name, show(ov));
			e->overrides[e->noverrides++] = xstrdup(ov);
		} else {
			e->args[e->nargs++] = xstrdup(f[i]);
		}
	}
	return true;
}

static void entry_clear(struct svc_entry *e)
{
	for (size_t i = 0; i < e->nlisten; i++) {
		free(e->listen[i].text);
		free(e->listen[i].host);
		free(e->listen[i].name);
	}
	free(e->listen);
	for (size_t i = 0; i < e->noverrides; i++)
		free(e->overrides[i]);
	free(e->overrides);
	for (size_t i = 0; i < e->nargs; i++)
		free(e->args[i]);
	free(e->args);
	free(e->name);
	free(e->user);
	free(e->chroot);
	free(e->command);
	free(e->origin);
	memset(e, 0, sizeof(*e));
}

static bool parse_entry(struct parser *p, char *line, struct svc_entry *e)
{
	char *f[SVCTAB_MAX_FIELDS];
	size_t n = str_split(line, " \t", f, SVCTAB_MAX_FIELDS);

	if (n > SVCTAB_MAX_FIELDS)
		return perr(p, "more than %d fields", SVCTAB_MAX_FIELDS);
	if (n < 10)
		return perr(p, "%zu fields, need at least 10: service type listen tls user chroot maxproc maxuse idle "
		               "command", n);
	if (!valid_name(f[0]))
		return perr(p, "bad service name '%s' (letters, digits, '.', '_', '-')", show(f[0]));
	e->name = xstrdup(f[0]);
	struct buf origin = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&origin, "%s:%u", p->fname, p->line);
	e->origin = buf_steal(&origin, NULL);
	if (strcmp(f[1], "inet") == 0)
		e->type = SVC_INET;
	else if (strcmp(f[1], "unix") == 0)
		e->type = SVC_UNIX;
	else
		return perr(p, "service %s: bad type '%s' (inet or unix)", e->name, show(f[1]));
	if (!parse_listen(p, e, f[2]))
		return false;
	if (!svctab_tls_from_name(f[3], &e->tls))
		return perr(p, "service %s: bad tls '%s' (none, starttls, implicit or -)", e->name, show(f[3]));
	if (e->type == SVC_UNIX && e->tls != SVC_TLS_NONE)
		return perr(p, "service %s: tls '%s' on a unix service (use - )", e->name, f[3]);
	if (strcmp(f[4], "-") != 0) {
		if (!valid_name(f[4]))
			return perr(p, "service %s: bad user '%s'", e->name, show(f[4]));
		e->user = xstrdup(f[4]);
	}
	if (strcmp(f[5], "-") != 0) {
		if (f[5][0] != '/' || strlen(f[5]) > 4096)
			return perr(p, "service %s: chroot '%s' is not an absolute path (or - for none)", e->name,
			            show(f[5]));
		e->chroot = xstrdup(f[5]);
	}
	if (!parse_num(p, e, "maxproc", f[6], 1, SVCTAB_MAX_MAXPROC, SVCTAB_DEFAULT_MAXPROC, &e->maxproc) ||
	    !parse_num(p, e, "maxuse", f[7], 0, SVCTAB_MAX_MAXUSE, SVCTAB_DEFAULT_MAXUSE, &e->maxuse) ||
	    !parse_idle(p, e, f[8], &e->idle))
		return false;
	if (e->idle == 0) {
		if (e->maxproc != 1)
			return perr(p, "service %s: idle 0 makes a resident service, which needs maxproc 1 (not %u)",
			            e->name, e->maxproc);
		e->resident = true;
	}
	if (!valid_name(f[9]))
		return perr(p, "service %s: bad command '%s' (a program name in daemon_directory, no '/')", e->name,
		            show(f[9]));
	e->command = xstrdup(f[9]);
	return parse_args(p, e, f + 10, n - 10);
}

const char *svctab_public_name(const struct svc_listen *l)
{
	size_t n = strlen(SVCTAB_PUBLIC_PREFIX);
	if (!l->name || strncmp(l->name, SVCTAB_PUBLIC_PREFIX, n) != 0)
		return NULL;
	return l->name + n;
}

bool svctab_listen_equal(const struct svc_listen *a, const struct svc_listen *b)
{
	if (a->name || b->name)
		return a->name && b->name && strcmp(a->name, b->name) == 0;
	if (a->port != b->port)
		return false;
	if (a->host == NULL || b->host == NULL)
		return a->host == b->host;
	return strcmp(a->host, b->host) == 0;
}

/* Two listeners that cannot both be bound: same socket name, or same port where one is the wildcard. */
static bool listen_clash(const struct svc_listen *a, const struct svc_listen *b)
{
	if (a->name || b->name)
		return a->name && b->name && strcmp(a->name, b->name) == 0;
	if (a->port != b->port)
		return false;
	return a->host == NULL || b->host == NULL || strcmp(a->host, b->host) == 0;
}

static bool check_against(struct parser *p, const struct svctab *tab, const struct svc_entry *e)
{
	for (size_t i = 0; i < tab->n; i++) {
		const struct svc_entry *o = &tab->entries[i];
		if (strcmp(o->name, e->name) == 0 && o->type == e->type)
			return perr(p, "service %s/%s already defined at %s", e->name, svctab_type_name(e->type),
			            o->origin);
		if (o->type != e->type)
			continue;
		for (size_t a = 0; a < e->nlisten; a++)
			for (size_t b = 0; b < o->nlisten; b++)
				if (listen_clash(&e->listen[a], &o->listen[b]))
					return perr(p, "service %s: '%s' clashes with '%s' of service %s at %s", e->name,
					            e->listen[a].text, o->listen[b].text, o->name, o->origin);
	}
	return true;
}

void svctab_free(struct svctab **tabp)
{
	struct svctab *tab = *tabp;

	if (tab == NULL)
		return;
	for (size_t i = 0; i < tab->n; i++)
		entry_clear(&tab->entries[i]);
	free(tab->entries);
	free(tab);
	*tabp = NULL;
}

/* Ends one logical entry (first line + continuation lines) and adds it to the table. */
static bool finish_entry(struct parser *p, struct buf *logical, struct svctab *tab)
{
	struct svc_entry e;

	if (logical->len == 0)
		return true;
	if (tab->n >= SVCTAB_MAX_ENTRIES)
		return perr(p, "more than %d services", SVCTAB_MAX_ENTRIES);
	memset(&e, 0, sizeof(e));
	if (!parse_entry(p, logical->data, &e) || !check_against(p, tab, &e)) {
		entry_clear(&e);
		return false;
	}
	tab->entries = xreallocarray(tab->entries, tab->n + 1, sizeof(*tab->entries));
	tab->entries[tab->n++] = e;
	buf_reset(logical);
	return true;
}

bool svctab_parse(const char *text, size_t len, const char *fname, struct svctab **out, struct buf *err)
{
	struct parser p = { fname, 0, err };
	struct svctab *tab = xcalloc(1, sizeof(*tab));
	struct buf logical = BUF_INIT(SVCTAB_FILE_MAX);
	unsigned lineno = 0;
	size_t pos = 0;
	bool ok = true;

	if (len > SVCTAB_FILE_MAX) {
		p.line = 0;
		ok = perr(&p, "file larger than %d bytes", SVCTAB_FILE_MAX);
	}
	while (ok && pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len, l = end - pos;
		const char *s = text + pos;
		size_t skip;

		lineno++;
		pos = nl ? end + 1 : len;
		if (l && s[l - 1] == '\r')
			l--;
		if (memchr(s, '\0', l)) {
			p.line = lineno;
			ok = perr(&p, "NUL byte in line");
			break;
		}
		skip = 0;
		while (skip < l && (s[skip] == ' ' || s[skip] == '\t'))
			skip++;
		if (skip == l || s[skip] == '#')
			continue;	/* blank and comment lines neither start nor end an entry */
		if (skip > 0) {
			if (logical.len == 0) {
				p.line = lineno;
				ok = perr(&p, "continuation line (starts with white space) without an entry before it");
				break;
			}
			buf_putc(&logical, ' ');
			buf_append(&logical, s + skip, l - skip);
			continue;
		}
		if (!(ok = finish_entry(&p, &logical, tab)))
			break;
		p.line = lineno;
		buf_append(&logical, s, l);
	}
	if (ok)
		ok = finish_entry(&p, &logical, tab);
	buf_free(&logical);
	if (!ok) {
		svctab_free(&tab);
		return false;
	}
	*out = tab;
	return true;
}

bool svctab_load_file(const char *path, struct svctab **out, struct buf *err)
{
	struct buf data = BUF_INIT(SVCTAB_FILE_MAX);
	char chunk[8192];
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	bool ok;

	if (fd < 0) {
		buf_reset(err);
		buf_printf(err, "%s: cannot open: %s", path, strerror(errno));
		return false;
	}
	while ((r = read(fd, chunk, sizeof(chunk))) > 0) {
		if (!buf_append(&data, chunk, (size_t)r)) {
			close(fd);
			buf_free(&data);
			buf_reset(err);
			buf_printf(err, "%s: larger than %d bytes", path, SVCTAB_FILE_MAX);
			return false;
		}
	}
	close(fd);
	if (r < 0) {
		buf_reset(err);
		buf_printf(err, "%s: read error: %s", path, strerror(errno));
		buf_free(&data);
		return false;
	}
	ok = svctab_parse(buf_cstr(&data), data.len, path, out, err);
	buf_free(&data);
	return ok;
}

const struct svc_entry *svctab_find(const struct svctab *tab, const char *name, enum svc_type type)
{
	for (size_t i = 0; i < tab->n; i++)
		if (tab->entries[i].type == type && strcmp(tab->entries[i].name, name) == 0)
			return &tab->entries[i];
	return NULL;
}
