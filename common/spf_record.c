/* SPF record syntax (section 4.6 and 12) and macro expansion (section 7): the parsing half of SPF, kept apart
 * from the DNS state machine so fuzz_spf_record can drive it directly. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "log.h"
#include "spf.h"
#include "str.h"

#define SPF_MAX_TERMS 128
#define SPF_MAX_EXPAND 8192

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_delim(char c)
{
	return c && strchr(".-+,/_=", c) != NULL;
}

static bool macro_letter(char c, bool exp)
{
	c = (char)str_ascii_lower((unsigned char)c);
	if (strchr("slodiphv", c) && c)
		return true;
	return exp && c && strchr("crt", c);
}

bool spf_macro_valid(const char *s, size_t len, bool exp)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c != '%') {
			/* macro-literal: visible characters except '%' (and space, for exp text) */
			if ((c < 0x21 || c > 0x7e) && !(exp && c == ' '))
				return false;
			continue;
		}
		if (++i >= len)
			return false;
		if (s[i] == '%' || s[i] == '_' || s[i] == '-')
			continue;
		if (s[i] != '{' || ++i >= len || !macro_letter(s[i], exp))
			return false;
		i++;
		size_t ds = i;
		while (i < len && is_digit(s[i]))
			i++;
		if (i > ds) {
			uint64_t n;
			if (!str_to_u64n(s + ds, i - ds, 255, &n) || n == 0)
				return false;
		}
		if (i < len && (s[i] == 'r' || s[i] == 'R'))
			i++;
		while (i < len && is_delim(s[i]))
			i++;
		if (i >= len || s[i] != '}')
			return false;
	}
	return true;
}

bool spf_macro_uses_p(const char *spec)
{
	for (const char *p = spec; p && (p = strchr(p, '%')) != NULL; p++) {
		if (p[1] == '{' && (p[2] == 'p' || p[2] == 'P'))
			return true;
		if (p[1])
			p++;
	}
	return false;
}

/* The value of one macro letter; ipbuf holds computed forms. */
static const char *letter_value(char c, const struct spf_macro_ctx *m, struct buf *tmp)
{
	const char *at;
	buf_reset(tmp);
	switch (str_ascii_lower((unsigned char)c)) {
	case 's':
		return m->sender;
	case 'l':
		at = strrchr(m->sender, '@');
		if (!at)
			return "postmaster";
		buf_append(tmp, m->sender, (size_t)(at - m->sender));
		return buf_cstr(tmp);
	case 'o':
		at = strrchr(m->sender, '@');
		return at ? at + 1 : m->sender;
	case 'd':
		return m->domain;
	case 'h':
		return m->helo;
	case 'p':
		return m->validated ? m->validated : "unknown";
	case 'v':
		return m->ipv6 ? "ip6" : "in-addr";
	case 'r':
		return m->receiver ? m->receiver : "unknown";
	case 't':
		buf_printf(tmp, "%lld", (long long)m->now);
		return buf_cstr(tmp);
	case 'c':
		return m->ip;
	case 'i':
		if (!m->ipv6)
			return m->ip;
		/* dot-separated nibbles (section 7.3) */
		struct in6_addr a;
		if (inet_pton(AF_INET6, m->ip, &a) != 1)
			return m->ip;
		for (int k = 0; k < 16; k++)
			buf_printf(tmp, "%s%x.%x", k ? "." : "", a.s6_addr[k] >> 4, a.s6_addr[k] & 15);
		return buf_cstr(tmp);
	}
	return "";
}

static bool url_escape(struct buf *out, const char *s, size_t n)
{
	bool ok = true;
	for (size_t i = 0; i < n && ok; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_alpha((char)c) || is_digit((char)c) || strchr("-._~", c))
			ok = buf_putc(out, c);
		else
			ok = buf_printf(out, "%%%02X", c);
	}
	return ok;
}

bool spf_macro_expand(const char *spec, const struct spf_macro_ctx *m, bool exp, struct buf *out)
{
	size_t len = strlen(spec);
	struct buf tmp = BUF_INIT(SPF_MAX_EXPAND), part = BUF_INIT(SPF_MAX_EXPAND);
	bool ok = spf_macro_valid(spec, len, exp);

	for (size_t i = 0; i < len && ok; i++) {
		if (spec[i] != '%') {
			ok = buf_putc(out, spec[i]);
			continue;
		}
		i++;
		if (spec[i] == '%' || spec[i] == '_' || spec[i] == '-') {
			ok = buf_puts(out, spec[i] == '%' ? "%" : spec[i] == '_' ? " " : "%20");
			continue;
		}
		i++;	/* '{' */
		char letter = spec[i++];
		uint64_t keep = 0;
		size_t ds = i;
		while (is_digit(spec[i]))
			i++;
		if (i > ds)
			str_to_u64n(spec + ds, i - ds, 255, &keep);
		bool rev = spec[i] == 'r' || spec[i] == 'R';
		if (rev)
			i++;
		char delims[8] = "";
		size_t nd = 0;
		while (spec[i] != '}') {
			if (nd < sizeof(delims) - 1 && !strchr(delims, spec[i]))
				delims[nd++] = spec[i];
			i++;
		}
		delims[nd] = '\0';
		if (!nd) {
			delims[0] = '.';
			delims[1] = '\0';
		}
		const char *v = letter_value(letter, m, &tmp);
		/* split on the delimiters, optionally reverse, keep the rightmost keep parts, join with '.' */
		size_t vl = strlen(v), np = 0;
		const char *starts[256];
		size_t lens[256];
		size_t s = 0;
		for (size_t k = 0; k <= vl; k++) {
			if (k == vl || strchr(delims, v[k])) {
				if (np == 256) {
					ok = false;
					break;
				}
				starts[np] = v + s;
				lens[np++] = k - s;
				s = k + 1;
			}
		}
		if (!ok)
			break;
		if (rev) {
			for (size_t a = 0, b = np - 1; a < b; a++, b--) {
				const char *ts = starts[a];
				size_t tl = lens[a];
				starts[a] = starts[b];
				lens[a] = lens[b];
				starts[b] = ts;
				lens[b] = tl;
			}
		}
		size_t first = keep && keep < np ? np - keep : 0;
		buf_reset(&part);
		for (size_t k = first; k < np && ok; k++)
			ok = (k == first || buf_putc(&part, '.')) && buf_append(&part, starts[k], lens[k]);
		if (!ok)
			break;
		if (letter >= 'A' && letter <= 'Z')
			ok = url_escape(out, part.data ? part.data : "", part.len);
		else
			ok = buf_append(out, buf_cstr(&part), part.len);
	}
	buf_free(&tmp);
	buf_free(&part);
	return ok;
}

void spf_domain_truncate(struct buf *d)
{
	while (d->len > 253) {
		char *dot = memchr(d->data, '.', d->len);
		if (!dot) {
			buf_truncate(d, 0);
			return;
		}
		buf_consume(d, (size_t)(dot - d->data) + 1);
	}
}

/* domain-spec: a macro-string that ends in a domain-end ("." toplabel ["."], or a macro-expand) */
static bool domain_spec_valid(const char *s, size_t len)
{
	if (len == 0 || !spf_macro_valid(s, len, false))
		return false;
	if (s[len - 1] == '}')
		return true;
	if (len >= 2 && s[len - 1] == '.')
		len--;
	size_t i = len;
	while (i > 0 && s[i - 1] != '.')
		i--;
	if (i == 0)
		return false;	/* no "." toplabel */
	/* toplabel: alphanumerics and inner '-', not all digits */
	size_t tl = len - i;
	bool alpha = false;
	if (tl == 0 || s[i] == '-' || s[len - 1] == '-')
		return false;
	for (size_t k = i; k < len; k++) {
		if (is_alpha(s[k]))
			alpha = true;
		else if (!is_digit(s[k]) && s[k] != '-')
			return false;
	}
	if (!alpha)
		return false;
	return true;
}

static bool parse_cidr(const char *s, size_t len, unsigned max, unsigned *out)
{
	uint64_t v;
	if (len == 0 || len > 3 || (len > 1 && s[0] == '0') || !str_to_u64n(s, len, max, &v))
		return false;
	*out = (unsigned)v;
	return true;
}

/* Split "[domain-spec][/n][//m]" (a, mx) */
static bool parse_target_cidr(const char *s, size_t len, bool dual, struct spf_term *t)
{
	/* the cidr is after the last '/' outside a macro; search from the end */
	size_t end = len;
	int depth = 0;
	size_t slash = len;
	for (size_t i = len; i-- > 0;) {
		if (s[i] == '}')
			depth++;
		else if (s[i] == '{')
			depth--;
		else if (s[i] == '/' && depth == 0) {
			slash = i;
			break;
		}
	}
	if (dual && slash < len) {
		/* forms: "/4", "//6", "/4//6" */
		size_t start = slash;
		if (slash > 0 && s[slash - 1] == '/') {	/* "//6" alone */
			start = slash - 1;
			if (!parse_cidr(s + slash + 1, len - slash - 1, 128, &t->cidr6))
				return false;
			/* maybe "/4" before it */
			size_t j = start;
			while (j > 0 && is_digit(s[j - 1]))
				j--;
			if (j > 0 && s[j - 1] == '/' && j < start) {
				if (!parse_cidr(s + j, start - j, 32, &t->cidr4))
					return false;
				start = j - 1;
			}
		} else {
			if (!parse_cidr(s + slash + 1, len - slash - 1, 32, &t->cidr4))
				return false;
		}
		end = start;
	}
	if (end > 0) {
		if (s[0] != ':' || !domain_spec_valid(s + 1, end - 1))
			return false;
		t->spec = xstrndup(s + 1, end - 1);
	}
	return true;
}

static bool parse_mech(const char *w, size_t wl, struct spf_term *t)
{
	static const struct {
		const char *name;
		enum spf_mech mech;
	} names[] = {
		{ "all", SPF_ALL }, { "include", SPF_INCLUDE }, { "a", SPF_A }, { "mx", SPF_MX }, { "ptr", SPF_PTR },
		{ "ip4", SPF_IP4 }, { "ip6", SPF_IP6 }, { "exists", SPF_EXISTS },
	};
	t->qualifier = '+';
	if (wl && strchr("+-~?", w[0])) {
		t->qualifier = w[0];
		w++;
		wl--;
	}
	size_t nl = 0;
	while (nl < wl && is_alpha(w[nl]))
		nl++;
	if (nl < wl && is_digit(w[nl]))
		nl++;	/* ip4, ip6 */
	size_t k;
	for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (strlen(names[k].name) == nl && str_eqn_ci(w, names[k].name, nl))
			break;
	if (k == sizeof(names) / sizeof(names[0]))
		return false;
	t->mech = names[k].mech;
	t->cidr4 = 32;
	t->cidr6 = 128;
	const char *rest = w + nl;
	size_t rl = wl - nl;
	switch (t->mech) {
	case SPF_ALL:
		return rl == 0;
	case SPF_INCLUDE:
	case SPF_EXISTS:
		if (rl < 2 || rest[0] != ':' || !domain_spec_valid(rest + 1, rl - 1))
			return false;
		t->spec = xstrndup(rest + 1, rl - 1);
		return true;
	case SPF_PTR:
		if (rl == 0)
			return true;
		if (rest[0] != ':' || !domain_spec_valid(rest + 1, rl - 1))
			return false;
		t->spec = xstrndup(rest + 1, rl - 1);
		return true;
	case SPF_A:
	case SPF_MX:
		return parse_target_cidr(rest, rl, true, t);
	case SPF_IP4:
	case SPF_IP6: {
		if (rl < 2 || rest[0] != ':')
			return false;
		const char *slash = memchr(rest, '/', rl);
		size_t al = slash ? (size_t)(slash - rest) - 1 : rl - 1;
		char addr[64];
		if (al == 0 || al >= sizeof(addr))
			return false;
		memcpy(addr, rest + 1, al);
		addr[al] = '\0';
		if (t->mech == SPF_IP4) {
			if (inet_pton(AF_INET, addr, &t->ip4) != 1)
				return false;
			return !slash || parse_cidr(slash + 1, rl - al - 2, 32, &t->cidr4);
		}
		if (inet_pton(AF_INET6, addr, &t->ip6) != 1)
			return false;
		return !slash || parse_cidr(slash + 1, rl - al - 2, 128, &t->cidr6);
	}
	}
	return false;
}

void spf_record_clear(struct spf_record *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->terms[i].spec);
		free(r->terms[i].name);
		free(r->terms[i].value);
	}
	free(r->terms);
	memset(r, 0, sizeof(*r));
}

bool spf_record_parse(const char *text, size_t len, struct spf_record *r, struct buf *err)
{
	size_t i = 6, cap = 0;
	bool seen_redirect = false, seen_exp = false;
	memset(r, 0, sizeof(*r));
	if (len < 6 || !str_eqn_ci(text, "v=spf1", 6) || (len > 6 && text[6] != ' ')) {
		buf_puts(err, "not an SPF record");
		return false;
	}
	while (i < len) {
		while (i < len && text[i] == ' ')
			i++;
		if (i == len)
			break;
		size_t s = i;
		while (i < len && text[i] != ' ')
			i++;
		const char *w = text + s;
		size_t wl = i - s;
		if (r->n == SPF_MAX_TERMS) {
			buf_puts(err, "too many terms");
			goto bad;
		}
		if (r->n == cap) {
			cap = cap ? cap * 2 : 8;
			r->terms = xreallocarray(r->terms, cap, sizeof(*r->terms));
		}
		struct spf_term *t = &r->terms[r->n];
		memset(t, 0, sizeof(*t));
		/* a modifier is name "=" ...; a name is ALPHA *(ALPHA / DIGIT / "-" / "_" / ".") */
		size_t nl = 0;
		if (is_alpha(w[0]))
			while (nl < wl && (is_alpha(w[nl]) || is_digit(w[nl]) || strchr("-_.", w[nl])))
				nl++;
		if (nl > 0 && nl < wl && w[nl] == '=') {
			t->modifier = true;
			t->name = xstrndup(w, nl);
			t->value = xstrndup(w + nl + 1, wl - nl - 1);
			r->n++;
			bool isredir = str_eq_ci(t->name, "redirect"), isexp = str_eq_ci(t->name, "exp");
			if ((isredir || isexp) ? !domain_spec_valid(t->value, wl - nl - 1)
			                       : !spf_macro_valid(t->value, wl - nl - 1, false)) {
				buf_printf(err, "bad modifier %s", log_safe(w, wl, 64));
				goto bad;
			}
			if ((isredir && seen_redirect) || (isexp && seen_exp)) {
				buf_printf(err, "modifier %s given twice", t->name);
				goto bad;
			}
			seen_redirect |= isredir;
			seen_exp |= isexp;
			continue;
		}
		r->n++;
		if (memchr(w, '\0', wl) || !parse_mech(w, wl, t)) {
			buf_printf(err, "bad term %s", log_safe(w, wl, 64));
			goto bad;
		}
		if (t->mech == SPF_ALL)
			r->has_all = true;
	}
	/* pointers taken once the array no longer moves */
	for (size_t k = 0; k < r->n; k++) {
		if (r->terms[k].modifier && str_eq_ci(r->terms[k].name, "redirect"))
			r->redirect = &r->terms[k];
		else if (r->terms[k].modifier && str_eq_ci(r->terms[k].name, "exp"))
			r->exp = &r->terms[k];
	}
	return true;
bad:
	spf_record_clear(r);
	return false;
}
