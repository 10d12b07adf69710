/* Access maps (Postfix's check_client_access, check_helo_access, check_sender_access, check_recipient_access):
 * compiled tables (common/table.h) whose values say OK, DUNNO, REJECT [text], DEFER [text] or "NNN text".
 * Called by session.c (client, at connect when smtpd_delay_reject is off) and commands.c (HELO, MAIL, RCPT). */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "log.h"
#include "smtpd.h"
#include "str.h"
#include "table.h"

struct smtpd_access {
	char *path[SMTPD_ACCESS_NSTAGES];
	struct table *t[SMTPD_ACCESS_NSTAGES];
	char *delims;
};

static const char *const stage_what[SMTPD_ACCESS_NSTAGES] = {
	[SMTPD_ACCESS_CLIENT] = "Client host rejected",
	[SMTPD_ACCESS_HELO] = "Helo command rejected",
	[SMTPD_ACCESS_SENDER] = "Sender address rejected",
	[SMTPD_ACCESS_RECIPIENT] = "Recipient address rejected",
};

struct smtpd_access *smtpd_access_new(const char *const paths[SMTPD_ACCESS_NSTAGES], const char *delims)
{
	struct smtpd_access *a = xcalloc(1, sizeof(*a));

	for (int i = 0; i < SMTPD_ACCESS_NSTAGES; i++)
		if (paths[i] && *paths[i])
			a->path[i] = xstrdup(paths[i]);
	a->delims = xstrdup(delims ? delims : "");
	return a;
}

void smtpd_access_free(struct smtpd_access **ap)
{
	struct smtpd_access *a = *ap;

	if (!a)
		return;
	for (int i = 0; i < SMTPD_ACCESS_NSTAGES; i++) {
		table_close(&a->t[i]);
		free(a->path[i]);
	}
	free(a->delims);
	free(a);
	*ap = NULL;
}

/* Opened on first use, and again after a failure: a map compiled after smtpd started takes effect without a
 * restart, and until then mail is deferred rather than let through unchecked. */
static struct table *stage_table(struct smtpd_access *a, enum smtpd_access_stage st, bool *failed)
{
	*failed = false;
	if (!a->path[st])
		return NULL;
	if (!a->t[st]) {
		struct buf err = BUF_INIT(1024);
		a->t[st] = table_open(a->path[st], &err);
		if (!a->t[st]) {
			log_error("access map %s: %s", a->path[st], buf_cstr(&err));
			*failed = true;
		}
		buf_free(&err);
	}
	return a->t[st];
}

/* Text from a map inside a reply: printable ASCII, capped; the reply must fit one line. */
static void put_text(struct buf *out, const char *s)
{
	for (size_t i = 0; s[i] && i < 300; i++) {
		unsigned char c = (unsigned char)s[i];
		buf_putc(out, c >= ' ' && c < 0x7f ? (char)c : '?');
	}
}

/* An enhanced status code "d.d.d" at the start of s: its length (with the following space), else 0. */
static size_t enhanced_len(const char *s)
{
	size_t i = 0;
	for (int part = 0; part < 3; part++) {
		size_t d = 0;
		while (isdigit((unsigned char)s[i]) && d < 3) {
			i++;
			d++;
		}
		if (d == 0)
			return 0;
		if (part < 2) {
			if (s[i] != '.')
				return 0;
			i++;
		}
	}
	if (s[i] != ' ' && s[i] != '\0')
		return 0;
	return s[i] == ' ' ? i + 1 : i;
}

enum smtpd_access_result smtpd_access_action(const char *value, const char *subject, enum smtpd_access_stage st,
                                             const char *mapname, struct buf *reply)
{
	const char *v = value;
	size_t wl = strcspn(v, " \t");
	const char *rest = v + wl;

	while (*rest == ' ' || *rest == '\t')
		rest++;
	buf_reset(reply);
	if ((wl == 2 && strncasecmp(v, "OK", 2) == 0) || (wl > 0 && strspn(v, "0123456789") == wl && *rest == '\0'))
		return SMTPD_ACCESS_OK;	/* Postfix: a number alone is OK too */
	if (wl == 5 && strncasecmp(v, "DUNNO", 5) == 0)
		return SMTPD_ACCESS_DUNNO;
	bool reject = wl == 6 && strncasecmp(v, "REJECT", 6) == 0;
	bool defer = wl == 5 && strncasecmp(v, "DEFER", 5) == 0;
	if (reject || defer) {
		buf_puts(reply, reject ? "554 5.7.1 <" : "450 4.7.1 <");
		put_text(reply, subject);
		buf_printf(reply, ">: %s: ", stage_what[st]);
		put_text(reply, *rest ? rest : "Access denied");
		return reject ? SMTPD_ACCESS_REJECT : SMTPD_ACCESS_DEFER;
	}
	if (wl == 3 && (v[0] == '4' || v[0] == '5') && isdigit((unsigned char)v[1]) && isdigit((unsigned char)v[2])) {
		buf_append(reply, v, 3);
		buf_putc(reply, ' ');
		if (!enhanced_len(rest))
			buf_puts(reply, v[0] == '4' ? "4.7.1 " : "5.7.1 ");
		put_text(reply, *rest ? rest : "Access denied");
		return v[0] == '4' ? SMTPD_ACCESS_DEFER : SMTPD_ACCESS_REJECT;
	}
	log_warn("access map %s: unknown action \"%s\" for %s", mapname, log_safe(v, strlen(v), 100),
	         log_safe(subject, strlen(subject), 100));
	buf_puts(reply, "451 4.3.5 Server configuration error");
	return SMTPD_ACCESS_DEFER;
}

static enum table_result lookup(struct table *t, const char *key, struct buf *value)
{
	if (strlen(key) > TABLE_KEY_MAX)
		return TABLE_NOTFOUND;
	return table_lookup(t, key, value);
}

/* domain, then each parent domain ("a.b.example" -> "b.example" -> "example"). */
static enum table_result lookup_domain(struct table *t, const char *domain, struct buf *value)
{
	const char *d = domain;

	while (d && *d) {
		enum table_result r = lookup(t, d, value);
		if (r != TABLE_NOTFOUND)
			return r;
		d = strchr(d, '.');
		if (d)
			d++;
	}
	return TABLE_NOTFOUND;
}

/* Address, then the enclosing networks: IPv4 by dropping octets (192.0.2.1, 192.0.2, 192.0, 192); IPv6 in its
 * full form without leading zeros, dropping groups (2001:db8:0:0:0:0:0:1 ... 2001), after the compressed form. */
static enum table_result lookup_ip(struct table *t, const char *addr, struct buf *value)
{
	unsigned char bin[16];
	char key[64];
	enum table_result r = lookup(t, addr, value);

	if (r != TABLE_NOTFOUND)
		return r;
	if (inet_pton(AF_INET, addr, bin) == 1) {
		for (int n = 3; n >= 1; n--) {
			if (n == 3)
				snprintf(key, sizeof(key), "%u.%u.%u", bin[0], bin[1], bin[2]);
			else if (n == 2)
				snprintf(key, sizeof(key), "%u.%u", bin[0], bin[1]);
			else
				snprintf(key, sizeof(key), "%u", bin[0]);
			if ((r = lookup(t, key, value)) != TABLE_NOTFOUND)
				return r;
		}
		return TABLE_NOTFOUND;
	}
	if (inet_pton(AF_INET6, addr, bin) != 1)
		return TABLE_NOTFOUND;
	for (int n = 8; n >= 1; n--) {
		size_t off = 0;
		for (int g = 0; g < n; g++)
			off += (size_t)snprintf(key + off, sizeof(key) - off, "%s%x", g ? ":" : "",
			                        (unsigned)(bin[2 * g] << 8 | bin[2 * g + 1]));
		if (n == 8 && strcmp(key, addr) == 0)
			continue;
		if ((r = lookup(t, key, value)) != TABLE_NOTFOUND)
			return r;
	}
	return TABLE_NOTFOUND;
}

/* Sender/recipient: user+ext@domain, user@domain, @domain (table_lookup_addr), then domain and its parents,
 * then "user@" (Postfix's forms); the null sender is looked up as "<>". */
static enum table_result lookup_address(struct smtpd_access *a, struct table *t, const char *addr, struct buf *value)
{
	if (*addr == '\0')
		return lookup(t, "<>", value);
	enum table_result r = table_lookup_addr(t, addr, a->delims, TABLE_ADDR_FULL | TABLE_ADDR_DOMAIN, value, NULL);
	if (r != TABLE_NOTFOUND)
		return r;
	const char *at = strrchr(addr, '@');
	if (!at)
		return TABLE_NOTFOUND;
	if ((r = lookup_domain(t, at + 1, value)) != TABLE_NOTFOUND)
		return r;
	struct buf k = BUF_INIT(TABLE_KEY_MAX + 1);
	if (buf_append(&k, addr, (size_t)(at - addr) + 1))
		r = lookup(t, buf_cstr(&k), value);
	buf_free(&k);
	return r;
}

enum smtpd_access_result smtpd_access_check(struct smtpd_access *a, enum smtpd_access_stage st,
                                            const char *subject, const char *name, struct buf *reply)
{
	bool failed;
	struct table *t;
	struct buf value = BUF_INIT(4096);
	enum table_result r = TABLE_NOTFOUND;

	if (!a || !(t = stage_table(a, st, &failed))) {
		if (a && failed) {
			buf_reset(reply);
			buf_puts(reply, "451 4.3.0 Temporary lookup failure");
			return SMTPD_ACCESS_DEFER;
		}
		return SMTPD_ACCESS_DUNNO;
	}
	switch (st) {
	case SMTPD_ACCESS_CLIENT:
		/* host name and parents first (only a forward-confirmed name), then the address and its networks */
		if (name && strcmp(name, "unknown") != 0)
			r = lookup_domain(t, name, &value);
		if (r == TABLE_NOTFOUND)
			r = lookup_ip(t, subject, &value);
		break;
	case SMTPD_ACCESS_HELO:
		r = lookup_domain(t, subject, &value);
		break;
	case SMTPD_ACCESS_SENDER:
	case SMTPD_ACCESS_RECIPIENT:
		r = lookup_address(a, t, subject, &value);
		break;
	case SMTPD_ACCESS_NSTAGES:
		panic("smtpd_access_check: bad stage");
	}
	enum smtpd_access_result res = SMTPD_ACCESS_DUNNO;
	if (r == TABLE_ERROR) {
		log_error("access map %s: %s", a->path[st], table_error(t));
		buf_reset(reply);
		buf_puts(reply, "451 4.3.0 Temporary lookup failure");
		res = SMTPD_ACCESS_DEFER;
	} else if (r == TABLE_FOUND) {
		char shown[300];
		if (st == SMTPD_ACCESS_CLIENT)
			snprintf(shown, sizeof(shown), "%s[%s]", name ? name : "unknown", subject);
		else
			snprintf(shown, sizeof(shown), "%s", *subject ? subject : "");
		res = smtpd_access_action(buf_cstr(&value), shown, st, a->path[st], reply);
	}
	buf_free(&value);
	return res;
}
