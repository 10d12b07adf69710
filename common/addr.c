/* RFC 5321 envelope paths and address helpers; see addr.h. The grammar is RFC 5321 §4.1.2 with RFC 6531's
 * UTF-8 extensions; the envelope parser works on exact byte ranges (never on NUL-terminated peer text). */
#include "addr.h"
#include "addr_impl.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "str.h"

bool addr_is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool addr_has_8bit(const void *p, size_t n)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 0x80)
			return true;
	return false;
}

bool addr_utf8_valid(const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t need;
		unsigned long cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1; cp = c & 0x1f; min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2; cp = c & 0x0f; min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3; cp = c & 0x07; min = 0x10000;
		} else {
			return false;	/* continuation byte first, 0xc0/0xc1 (always overlong), or 0xf5.. */
		}
		if (n - i - 1 < need)
			return false;
		for (size_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

/* Check the UTF-8 policy of a byte range: malformed is always an error, well-formed needs the flag. */
enum addr_err addr_check_8bit(const char *p, size_t n, unsigned flags)
{
	if (!addr_has_8bit(p, n))
		return ADDR_OK;
	if (!addr_utf8_valid(p, n))
		return ADDR_ERR_BAD_UTF8;
	if (!(flags & ADDR_F_SMTPUTF8))
		return ADDR_ERR_NEED_SMTPUTF8;
	return ADDR_OK;
}

/* Address literal "[...]": IPv4 dotted quad or "IPv6:" + an address inet_pton accepts. General address
 * literals (other tags) are refused: none is registered besides IPv6 and nothing could deliver to one. */
static enum addr_err literal_parse(const char *d, size_t n, int *af, unsigned char bin[16])
{
	const char *in;
	size_t inlen;
	char *tmp;
	int ok;

	if (n < 3 || d[0] != '[' || d[n - 1] != ']')
		return ADDR_ERR_LITERAL;
	in = d + 1;
	inlen = n - 2;
	if (inlen > 5 && str_eqn_ci(in, "IPv6:", 5)) {
		in += 5;
		inlen -= 5;
		*af = AF_INET6;
	} else {
		*af = AF_INET;
	}
	/* inet_pton needs a C string; the literal is already capped by ADDR_DOMAIN_MAX. Refuse anything but the
	 * address alphabet first so a NUL inside cannot cut the string short. */
	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		bool okc = (c >= '0' && c <= '9') || c == '.' ||
		           (*af == AF_INET6 && (c == ':' || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
		if (!okc)
			return ADDR_ERR_LITERAL;
	}
	if (inlen == 0)
		return ADDR_ERR_LITERAL;
	tmp = xstrndup(in, inlen);
	ok = inet_pton(*af, tmp, bin);
	free(tmp);
	return ok == 1 ? ADDR_OK : ADDR_ERR_LITERAL;
}

/* Length of the A-label ("xn--" + RFC 3492 Punycode) for a UTF-8 label already checked to be well-formed, so
 * U-labels can be held to the 63-octet DNS limit. Case mapping and normalisation (IDNA2008 / UTS 46) are not
 * applied: they do not change the length of the ASCII part and rarely that of the rest. */
size_t addr_alabel_len(const char *s, size_t n)
{
	enum { BASE = 36, TMIN = 1, TMAX = 26, SKEW = 38, DAMP = 700 };
	uint32_t *cp = xreallocarray(NULL, n ? n : 1, sizeof(*cp));
	size_t ncp = 0, basic = 0, out, h;
	uint64_t delta = 0, bias = 72, next = 128;

	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		size_t k = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
		uint32_t v = k == 1 ? c : k == 2 ? (c & 0x1fu) : k == 3 ? (c & 0x0fu) : (c & 0x07u);
		for (size_t j = 1; j < k && i + j < n; j++)
			v = (v << 6) | ((unsigned char)s[i + j] & 0x3fu);
		cp[ncp++] = v;
		basic += v < 0x80;
		i += k;
	}
	out = 4 + basic + (basic > 0);
	for (h = basic; h < ncp;) {
		uint64_t m = UINT32_MAX;
		for (size_t i = 0; i < ncp; i++)
			if (cp[i] >= next && cp[i] < m)
				m = cp[i];
		delta += (m - next) * (h + 1);
		next = m;
		for (size_t i = 0; i < ncp; i++) {
			if (cp[i] < next)
				delta++;
			if (cp[i] != next)
				continue;
			uint64_t q = delta;
			for (uint64_t k = BASE;; k += BASE) {
				uint64_t t = k <= bias ? TMIN : k >= bias + TMAX ? TMAX : k - bias;
				if (q < t)
					break;
				out++;
				q = (q - t) / (BASE - t);
			}
			out++;
			/* bias adaptation, RFC 3492 §6.1 */
			uint64_t d = h == basic ? delta / DAMP : delta / 2, k = 0;
			d += d / (h + 1);
			while (d > ((BASE - TMIN) * TMAX) / 2) {
				d /= BASE - TMIN;
				k += BASE;
			}
			bias = k + (BASE - TMIN + 1) * d / (d + SKEW);
			delta = 0;
			h++;
		}
		delta++;
		next++;
	}
	free(cp);
	return out;
}

enum addr_err addr_domain_check(const char *d, size_t n, unsigned flags)
{
	enum addr_err e;
	size_t start = 0;

	if (n == 0)
		return ADDR_ERR_DOMAIN_SYNTAX;
	if (n > ADDR_DOMAIN_MAX)
		return ADDR_ERR_DOMAIN_TOO_LONG;
	if (d[0] == '[') {
		int af;
		unsigned char bin[16];
		return literal_parse(d, n, &af, bin);
	}
	if ((e = addr_check_8bit(d, n, flags)) != ADDR_OK)
		return e;
	while (start <= n) {
		size_t end = start;
		bool ascii = true;
		while (end < n && d[end] != '.')
			end++;
		size_t ll = end - start;
		if (ll == 0)
			return ADDR_ERR_DOMAIN_SYNTAX;	/* leading, trailing or doubled dot */
		for (size_t i = start; i < end; i++) {
			unsigned char c = (unsigned char)d[i];
			if (c >= 0x80)
				ascii = false;
			else if (!is_alnum(c) && c != '-')
				return ADDR_ERR_DOMAIN_SYNTAX;
		}
		if (d[start] == '-' || d[end - 1] == '-')
			return ADDR_ERR_DOMAIN_SYNTAX;
		/* The 63-octet limit is on the DNS form, so a U-label is measured as its A-label. */
		if ((ascii ? ll : addr_alabel_len(d + start, ll)) > ADDR_LABEL_MAX)
			return ADDR_ERR_LABEL_TOO_LONG;
		start = end + 1;
		if (end == n)
			break;
	}
	return ADDR_OK;
}

static bool is_dot_atom(const char *s, size_t n, bool allow8)
{
	bool atom_start = true;
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (atom_start)
				return false;
			atom_start = true;
		} else if (addr_is_atext(c) || (allow8 && c >= 0x80)) {
			atom_start = false;
		} else {
			return false;
		}
	}
	return !atom_start;
}

void addr_build(struct addr *out, const char *local, size_t llen, const char *domain, size_t dlen, bool quoted)
{
	struct buf c = BUF_INIT(BUF_NOLIMIT);

	memset(out, 0, sizeof(*out));
	out->local = xstrndup(local, llen);
	out->local_len = llen;
	out->domain = xstrndup(domain, dlen);
	out->domain_len = dlen;
	out->quoted = quoted;
	out->utf8 = addr_has_8bit(local, llen) || addr_has_8bit(domain, dlen);
	out->literal = dlen > 0 && domain[0] == '[';

	if (is_dot_atom(local, llen, true)) {
		buf_append(&c, local, llen);
	} else {
		buf_putc(&c, '"');
		for (size_t i = 0; i < llen; i++) {
			if (local[i] == '"' || local[i] == '\\')
				buf_putc(&c, '\\');
			buf_putc(&c, local[i]);
		}
		buf_putc(&c, '"');
	}
	if (dlen > 0) {
		int af;
		unsigned char bin[16];
		char txt[INET6_ADDRSTRLEN];

		buf_putc(&c, '@');
		if (out->literal && literal_parse(domain, dlen, &af, bin) == ADDR_OK &&
		    inet_ntop(af, bin, txt, sizeof(txt)) != NULL) {
			buf_printf(&c, "[%s%s]", af == AF_INET6 ? "IPv6:" : "", txt);
		} else {
			for (size_t i = 0; i < dlen; i++)
				buf_putc(&c, str_ascii_lower((unsigned char)domain[i]));
		}
	}
	out->canon = buf_steal(&c, NULL);
}

void addr_free(struct addr *a)
{
	if (a == NULL)
		return;
	xfree(&a->local);
	xfree(&a->domain);
	xfree(&a->canon);
	memset(a, 0, sizeof(*a));
}

static void addr_set_null(struct addr *out)
{
	memset(out, 0, sizeof(*out));
	out->local = xstrdup("");
	out->domain = xstrdup("");
	out->canon = xstrdup("");
	out->null = true;
}

/* Local part at s[*pos]: a dot-string or a quoted-string (RFC 5321 §4.1.2), decoded into dec. */
static enum addr_err parse_local(const char *s, size_t len, size_t *pos, struct buf *dec, bool *quoted)
{
	size_t p = *pos;

	*quoted = false;
	if (p < len && s[p] == '"') {
		*quoted = true;
		p++;
		for (;;) {
			if (p >= len)
				return ADDR_ERR_LOCAL_SYNTAX;
			unsigned char c = (unsigned char)s[p];
			if (c == '"')
				break;
			if (c == '\\') {
				if (p + 1 >= len || (unsigned char)s[p + 1] < 32 || (unsigned char)s[p + 1] > 126)
					return ADDR_ERR_LOCAL_SYNTAX;
				c = (unsigned char)s[++p];
			} else if (c < 32 || c == 127) {
				return ADDR_ERR_LOCAL_SYNTAX;
			}
			buf_putc(dec, c);
			p++;
		}
		p++;
	} else {
		bool atom_start = true;
		while (p < len) {
			unsigned char c = (unsigned char)s[p];
			if (c == '.') {
				if (atom_start)
					return ADDR_ERR_LOCAL_SYNTAX;
				atom_start = true;
			} else if (addr_is_atext(c) || c >= 0x80) {
				atom_start = false;
			} else {
				break;
			}
			buf_putc(dec, c);
			p++;
		}
		if (atom_start)
			return ADDR_ERR_LOCAL_SYNTAX;	/* empty, or ends with a dot */
	}
	if (p - *pos > ADDR_LOCAL_MAX)
		return ADDR_ERR_LOCAL_TOO_LONG;
	*pos = p;
	return ADDR_OK;
}

/* Source route "@a,@b:" at s[*pos] (which is '@'): each At-domain checked, then dropped (RFC 5321 §C). */
static enum addr_err parse_route(const char *s, size_t len, size_t *pos, unsigned flags)
{
	size_t p = *pos;
	for (;;) {
		if (p >= len || s[p] != '@')
			return ADDR_ERR_SYNTAX;
		size_t d = ++p;
		while (p < len && s[p] != ',' && s[p] != ':' && s[p] != '>')
			p++;
		if (p >= len || s[p] == '>')
			return ADDR_ERR_SYNTAX;
		if (p == d || s[d] == '[')
			return ADDR_ERR_SYNTAX;	/* At-domain is a Domain, never a literal */
		enum addr_err e = addr_domain_check(s + d, p - d, flags);
		if (e != ADDR_OK)
			return e;
		if (s[p++] == ':')
			break;
	}
	*pos = p;
	return ADDR_OK;
}

/* Mailbox from s[*pos]; the domain runs up to end (exclusive). */
static enum addr_err parse_mailbox(const char *s, size_t end, size_t *pos, unsigned flags, struct addr *out)
{
	struct buf dec = BUF_INIT(BUF_NOLIMIT);
	bool quoted;
	size_t p = *pos;
	enum addr_err e;

	if ((e = parse_local(s, end, &p, &dec, &quoted)) != ADDR_OK)
		goto done;
	if ((e = addr_check_8bit(s + *pos, p - *pos, flags)) != ADDR_OK)
		goto done;
	if (p == end) {
		if ((flags & ADDR_F_POSTMASTER) && !quoted && str_eq_ci(buf_cstr(&dec), "postmaster")) {
			addr_build(out, dec.data, dec.len, "", 0, false);
			*pos = p;
			goto done;
		}
		e = ADDR_ERR_NO_DOMAIN;
		goto done;
	}
	if (s[p] != '@') {
		e = ADDR_ERR_LOCAL_SYNTAX;	/* a special such as "(),:;<>[]\\ or a space inside the local part */
		goto done;
	}
	p++;
	if ((e = addr_domain_check(s + p, end - p, flags)) != ADDR_OK)
		goto done;
	addr_build(out, dec.data ? dec.data : "", dec.len, s + p, end - p, quoted);
	*pos = end;
done:
	buf_free(&dec);
	return e;
}

enum addr_err addr_parse_path(const char *s, size_t len, unsigned flags, struct addr *out)
{
	size_t p = 0, end;
	enum addr_err e;

	memset(out, 0, sizeof(*out));
	if (len == 0)
		return ADDR_ERR_SYNTAX;
	if (s[0] != '<') {
		if (!(flags & ADDR_F_UNBRACKETED))
			return ADDR_ERR_UNBRACKETED;
		if (len + 2 > ADDR_PATH_MAX)
			return ADDR_ERR_PATH_TOO_LONG;
		return parse_mailbox(s, len, &p, flags, out);
	}
	if (len > ADDR_PATH_MAX)
		return ADDR_ERR_PATH_TOO_LONG;
	if (len < 2 || s[len - 1] != '>')
		return ADDR_ERR_SYNTAX;
	end = len - 1;
	p = 1;
	if (end == 1) {
		addr_set_null(out);
		return ADDR_OK;
	}
	if (s[p] == '@' && (e = parse_route(s, end, &p, flags)) != ADDR_OK)
		return e;
	e = parse_mailbox(s, end, &p, flags, out);
	if (e == ADDR_OK && p != end) {
		addr_free(out);
		e = ADDR_ERR_SYNTAX;
	}
	return e;
}

/* End of a bracketed path starting at s[p] == '<': the '>' outside any quoted-string, or len if none. */
static size_t path_end(const char *s, size_t len, size_t p)
{
	bool inq = false;
	for (p++; p < len; p++) {
		if (inq && s[p] == '\\' && p + 1 < len)
			p++;
		else if (s[p] == '"')
			inq = !inq;
		else if (!inq && s[p] == '>')
			return p;
	}
	return len;
}

enum addr_err addr_parse_cmd(const char *s, size_t len, const char *keyword, unsigned flags, struct addr *out,
                             size_t *params_off)
{
	size_t kl = strlen(keyword), p, q, next;
	enum addr_err e;

	memset(out, 0, sizeof(*out));
	*params_off = len;
	if (len < kl + 1 || !str_eqn_ci(s, keyword, kl) || s[kl] != ':')
		return ADDR_ERR_CMD_SYNTAX;
	p = kl + 1;
	while (p < len && s[p] == ' ')	/* "FROM: <a@b>": tolerated, many clients send it */
		p++;
	if (p == len)
		return ADDR_ERR_SYNTAX;
	if (s[p] == '<') {
		q = path_end(s, len, p);
		if (q == len)
			return ADDR_ERR_SYNTAX;
		next = q + 1;
	} else {
		if (!(flags & ADDR_F_UNBRACKETED))
			return ADDR_ERR_UNBRACKETED;
		q = p;
		while (q < len && s[q] != ' ')
			q++;
		next = q;
		q--;	/* last byte of the address */
	}
	if (next < len && s[next] != ' ')
		return ADDR_ERR_CMD_SYNTAX;	/* "<a@b>junk" */
	if ((e = addr_parse_path(s + p, q + 1 - p, flags, out)) != ADDR_OK)
		return e;
	while (next < len && s[next] == ' ')
		next++;
	*params_off = next;
	return ADDR_OK;
}

bool addr_localpart_eq(const struct addr *a, const struct addr *b, bool case_sensitive)
{
	if (a->local_len != b->local_len)
		return false;
	if (case_sensitive)
		return memcmp(a->local, b->local, a->local_len) == 0;
	for (size_t i = 0; i < a->local_len; i++)
		if (str_ascii_lower((unsigned char)a->local[i]) != str_ascii_lower((unsigned char)b->local[i]))
			return false;
	return true;
}

bool addr_eq(const struct addr *a, const struct addr *b, bool case_sensitive_local)
{
	if (a->null || b->null)
		return a->null == b->null;
	if (!addr_localpart_eq(a, b, case_sensitive_local))
		return false;
	/* canon domains are already folded: compare what follows the last '@' of each canon */
	const char *da = strrchr(a->canon, '@'), *db = strrchr(b->canon, '@');
	if (da == NULL || db == NULL)
		return da == db;
	return strcmp(da, db) == 0;
}

bool addr_split_extension(const char *local, const char *delimiters, char **base, char **ext)
{
	size_t n = strlen(local);
	size_t i = (delimiters && *delimiters) ? strcspn(local, delimiters) : n;

	/* A delimiter in first position is part of the name ("-owner", "+list"), as in Postfix. */
	if (i == 0 && n > 0) {
		size_t j = strcspn(local + 1, delimiters);
		i = 1 + j;
	}
	if (i >= n) {
		*base = xstrdup(local);
		*ext = NULL;
		return false;
	}
	*base = xstrndup(local, i);
	*ext = xstrdup(local + i + 1);
	return true;
}

static const char *const addr_errs[ADDR_ERR_COUNT] = {
	[ADDR_OK] = "ok",
	[ADDR_ERR_CMD_SYNTAX] = "syntax error in command argument",
	[ADDR_ERR_SYNTAX] = "address syntax error",
	[ADDR_ERR_UNBRACKETED] = "address must be enclosed in <>",
	[ADDR_ERR_LOCAL_SYNTAX] = "invalid local part",
	[ADDR_ERR_NO_DOMAIN] = "address has no domain",
	[ADDR_ERR_DOMAIN_SYNTAX] = "invalid domain",
	[ADDR_ERR_LITERAL] = "invalid address literal",
	[ADDR_ERR_LOCAL_TOO_LONG] = "local part too long",
	[ADDR_ERR_LABEL_TOO_LONG] = "domain label too long",
	[ADDR_ERR_DOMAIN_TOO_LONG] = "domain too long",
	[ADDR_ERR_PATH_TOO_LONG] = "path too long",
	[ADDR_ERR_BAD_UTF8] = "malformed UTF-8 in address",
	[ADDR_ERR_NEED_SMTPUTF8] = "non-ASCII address requires SMTPUTF8",
	[ADDR_ERR_COMMENT_DEPTH] = "comments nested too deeply",
	[ADDR_ERR_UNTERMINATED] = "unterminated quote, comment, literal or angle address",
};

const char *addr_strerror(enum addr_err e)
{
	if ((unsigned)e >= ADDR_ERR_COUNT)
		return "unknown address error";
	return addr_errs[e];
}

const char *addr_reply(enum addr_err e, enum addr_role role)
{
	/* Static strings so smtpd can send them without formatting; the detail goes to the log. */
	switch (e) {
	case ADDR_OK:
		return role == ADDR_ROLE_SENDER ? "250 2.1.0 Ok" : "250 2.1.5 Ok";
	case ADDR_ERR_CMD_SYNTAX:
		return role == ADDR_ROLE_SENDER ? "501 5.5.4 Syntax: MAIL FROM:<address>"
		                                : "501 5.5.4 Syntax: RCPT TO:<address>";
	case ADDR_ERR_NEED_SMTPUTF8:
		return "553 5.6.7 Must declare SMTPUTF8 to send unicode address";
	case ADDR_ERR_PATH_TOO_LONG:
	case ADDR_ERR_LOCAL_TOO_LONG:
	case ADDR_ERR_DOMAIN_TOO_LONG:
	case ADDR_ERR_LABEL_TOO_LONG:
		return role == ADDR_ROLE_SENDER ? "501 5.1.7 Sender address too long"
		                                : "501 5.1.3 Recipient address too long";
	default:
		return role == ADDR_ROLE_SENDER ? "501 5.1.7 Bad sender address syntax"
		                                : "501 5.1.3 Bad recipient address syntax";
	}
}

const char *addr_status(enum addr_err e, enum addr_role role)
{
	switch (e) {
	case ADDR_OK:
		return role == ADDR_ROLE_SENDER ? "250 2.1.0" : "250 2.1.5";
	case ADDR_ERR_CMD_SYNTAX:
		return "501 5.5.4";
	case ADDR_ERR_NEED_SMTPUTF8:
		return "553 5.6.7";
	default:
		return role == ADDR_ROLE_SENDER ? "501 5.1.7" : "501 5.1.3";
	}
}
