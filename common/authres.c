/* Authentication-Results building and matching. The matching scanner is deliberately small: it only needs the
 * header name and the authserv-id (skipping CFWS), never the rest of the header. */
#include <string.h>

#include "authres.h"
#include "buf.h"
#include "str.h"

/* RFC 2045 token characters, plus '@' and '.' which addresses and domains need (RFC 8601 pvalue) */
static bool is_pvalue_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("()<>,;:\\\"/[]?=", c);
}

static bool put_value(struct buf *out, const char *v)
{
	bool plain = *v != '\0';
	for (const char *p = v; *p && plain; p++)
		plain = is_pvalue_char((unsigned char)*p);
	if (plain)
		return buf_puts(out, v);
	bool ok = buf_putc(out, '"');
	for (const char *p = v; *p && ok; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\')
			ok = buf_putc(out, '\\');
		if (ok)
			ok = buf_putc(out, (c < 0x20 || c == 0x7f) ? '?' : c);
	}
	return ok && buf_putc(out, '"');
}

static bool put_comment(struct buf *out, const char *s)
{
	bool ok = buf_puts(out, " (");
	for (const char *p = s; *p && ok; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '(' || c == ')' || c == '\\')
			ok = buf_putc(out, '\\');
		if (ok)
			ok = buf_putc(out, (c < 0x20 || c == 0x7f) ? ' ' : c);
	}
	return ok && buf_putc(out, ')');
}

bool authres_header(struct buf *out, const char *authserv_id, const struct authres_entry *e, size_t n)
{
	bool ok = buf_puts(out, "Authentication-Results: ") && buf_puts(out, authserv_id);
	if (n == 0)
		return ok && buf_puts(out, "; none\r\n");
	for (size_t i = 0; i < n && ok; i++) {
		ok = buf_printf(out, ";\r\n\t%s=%s", e[i].method, e[i].result);
		if (ok && e[i].reason && *e[i].reason)
			ok = put_comment(out, e[i].reason);
		for (size_t k = 0; k < AUTHRES_MAX_PROPS && ok && e[i].props[k].name; k++) {
			ok = buf_printf(out, " %s=", e[i].props[k].name) &&
			     put_value(out, e[i].props[k].value ? e[i].props[k].value : "");
		}
	}
	return ok && buf_puts(out, "\r\n");
}

/* Skip white space (folding included) and nested comments; returns the new position. */
static size_t skip_cfws(const char *s, size_t i, size_t end)
{
	int depth = 0;
	while (i < end) {
		char c = s[i];
		if (depth > 0) {
			if (c == '\\' && i + 1 < end)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
		} else if (c == '(') {
			depth++;
		} else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			break;
		}
		i++;
	}
	return i;
}

static bool claims(const char *h, size_t vstart, size_t end, const char *id)
{
	size_t i = skip_cfws(h, vstart, end), s = i;
	size_t idlen = strlen(id);
	/* the authserv-id is a value: a token/dot-atom here (a quoted-string id is compared unquoted) */
	if (i < end && h[i] == '"') {
		s = ++i;
		while (i < end && h[i] != '"')
			i++;
		return i < end && i - s == idlen && str_eqn_ci(h + s, id, idlen);
	}
	while (i < end && h[i] != ';' && h[i] != '(' && h[i] != ' ' && h[i] != '\t' && h[i] != '\r' && h[i] != '\n')
		i++;
	return i - s == idlen && idlen && str_eqn_ci(h + s, id, idlen);
}

size_t authres_find_ours(const char *hdrs, size_t len, const char *authserv_id, struct authres_range *ranges,
                         size_t max)
{
	static const char name[] = "Authentication-Results";
	size_t i = 0, found = 0, nl = sizeof(name) - 1;

	while (i < len) {
		size_t start = i;
		/* blank line: end of the header block */
		if (hdrs[i] == '\n' || (hdrs[i] == '\r' && i + 1 < len && hdrs[i + 1] == '\n'))
			break;
		/* the header runs through its continuation lines */
		size_t end = i;
		for (;;) {
			while (end < len && hdrs[end] != '\n')
				end++;
			if (end < len)
				end++;
			if (end >= len || (hdrs[end] != ' ' && hdrs[end] != '\t'))
				break;
		}
		size_t k = start;
		if (end - start > nl && str_eqn_ci(hdrs + start, name, nl)) {
			k += nl;
			while (k < end && (hdrs[k] == ' ' || hdrs[k] == '\t'))
				k++;
			if (k < end && hdrs[k] == ':' && claims(hdrs, k + 1, end, authserv_id)) {
				if (found < max) {
					ranges[found].off = start;
					ranges[found].len = end - start;
				}
				found++;
			}
		}
		i = end;
	}
	return found;
}

/* The next word of a resinfo: a run of characters that are not white space, ';' or a comment; a quoted string
 * counts as part of the word it is in. Returns the end; *start gets the beginning (after CFWS). */
static size_t next_word(const char *s, size_t i, size_t end, size_t *start)
{
	i = skip_cfws(s, i, end);
	*start = i;
	bool quoted = false;
	while (i < end) {
		char c = s[i];
		if (quoted) {
			if (c == '\\' && i + 1 < end)
				i++;
			else if (c == '"')
				quoted = false;
		} else if (c == '"') {
			quoted = true;
		} else if (c == ';' || c == '(' || c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			break;
		}
		i++;
	}
	return i;
}

static bool word_is(const char *s, size_t start, size_t end, const char *w)
{
	size_t n = strlen(w);
	return end - start == n && str_eqn_ci(s + start, w, n);
}

bool authres_dmarc_quarantined(const char *hdrs, size_t len, const char *authserv_id)
{
	struct authres_range r;

	if (authres_find_ours(hdrs, len, authserv_id, &r, 1) == 0 || r.off != 0)
		return false;
	/* past the name, the colon and the authserv-id (with an optional version) to the first ';' */
	size_t end = r.len, i = (size_t)((const char *)memchr(hdrs, ':', end) - hdrs) + 1, w;
	while (i < end && hdrs[i] != ';') {
		i = next_word(hdrs, i, end, &w);
		if (i == w && i < end && hdrs[i] != ';')
			i++;
	}
	/* each resinfo: "method=result", then properties, comments anywhere */
	while (i < end && hdrs[i] == ';') {
		bool dmarc_fail = false, quarantine = false;
		size_t n = 0;
		i++;
		while (i < end && hdrs[i] != ';') {
			i = next_word(hdrs, i, end, &w);
			if (i == w) {
				if (i < end && hdrs[i] != ';')
					i++;
				continue;
			}
			if (n++ == 0)
				dmarc_fail = word_is(hdrs, w, i, "dmarc=fail");
			else if (word_is(hdrs, w, i, "policy.dmarc=quarantine"))
				quarantine = true;
		}
		if (dmarc_fail && quarantine)
			return true;
	}
	return false;
}
