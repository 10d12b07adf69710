/* ESMTP parameters and xtext; see esmtp.h. Grammar: RFC 5321 §4.1.2 (esmtp-param), RFC 6531 §3.3 (UTF-8
 * values), RFC 1870 (SIZE), RFC 6152 / 3030 (BODY), RFC 3461 (RET ENVID NOTIFY ORCPT), RFC 4954 (AUTH=). */
#include "esmtp.h"

#include <string.h>

#include "addr.h"
#include "addr_impl.h"
#include "alloc.h"
#include "str.h"

static bool is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

void esmtp_params_free(struct esmtp_params *p)
{
	for (size_t i = 0; i < p->n; i++) {
		xfree(&p->v[i].keyword);
		xfree(&p->v[i].value);
	}
	p->n = 0;
}

const struct esmtp_param *esmtp_find(const struct esmtp_params *p, const char *keyword)
{
	for (size_t i = 0; i < p->n; i++)
		if (str_eq_ci(p->v[i].keyword, keyword))
			return &p->v[i];
	return NULL;
}

enum esmtp_err esmtp_parse(const char *s, size_t len, unsigned flags, struct esmtp_params *out, size_t *err_off)
{
	size_t p = 0;
	enum esmtp_err e = ESMTP_OK;

	out->n = 0;
	for (;;) {
		while (p < len && s[p] == ' ')
			p++;
		if (p >= len)
			break;
		size_t start = p;
		if (err_off)
			*err_off = start;
		/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
		if (!is_alnum((unsigned char)s[p])) {
			e = ESMTP_ERR_SYNTAX;
			goto fail;
		}
		while (p < len && (is_alnum((unsigned char)s[p]) || s[p] == '-'))
			p++;
		size_t kend = p, vstart = 0, vend = 0;
		bool has_value = false;
		if (p < len && s[p] == '=') {
			has_value = true;
			vstart = ++p;
			/* esmtp-value = 1*(%d33-60 / %d62-126), plus UTF8-non-ascii under RFC 6531 */
			while (p < len && s[p] != ' ') {
				unsigned char c = (unsigned char)s[p];
				if (c >= 0x80 && (flags & ESMTP_F_UTF8)) {
					p++;
					continue;
				}
				if (c < 33 || c > 126 || c == '=') {
					e = ESMTP_ERR_SYNTAX;
					goto fail;
				}
				p++;
			}
			vend = p;
			if (vend == vstart) {
				e = ESMTP_ERR_SYNTAX;
				goto fail;
			}
			if (!addr_utf8_valid(s + vstart, vend - vstart)) {
				e = ESMTP_ERR_SYNTAX;
				goto fail;
			}
		}
		if (p < len && s[p] != ' ') {
			e = ESMTP_ERR_SYNTAX;
			goto fail;
		}
		if (out->n >= ESMTP_MAX_PARAMS) {
			e = ESMTP_ERR_TOO_MANY;
			goto fail;
		}
		char *kw = xstrndup(s + start, kend - start);
		if (esmtp_find(out, kw) != NULL) {
			free(kw);
			e = ESMTP_ERR_DUPLICATE;
			goto fail;
		}
		out->v[out->n].keyword = kw;
		out->v[out->n].value = has_value ? xstrndup(s + vstart, vend - vstart) : NULL;
		out->n++;
	}
	return ESMTP_OK;
fail:
	esmtp_params_free(out);
	return e;
}

enum esmtp_err esmtp_size(const char *value, uint64_t *out)
{
	if (value == NULL)
		return ESMTP_ERR_NEED_VALUE;
	for (const char *c = value; *c; c++)
		if (*c < '0' || *c > '9')
			return ESMTP_ERR_VALUE;
	if (*value == '\0')
		return ESMTP_ERR_VALUE;
	if (!str_to_u64(value, UINT64_MAX, out))
		return ESMTP_ERR_SIZE_OVERFLOW;	/* all digits, so the only failure left is overflow */
	return ESMTP_OK;
}

enum esmtp_err esmtp_body(const char *value, enum esmtp_body *out)
{
	if (value == NULL)
		return ESMTP_ERR_NEED_VALUE;
	if (str_eq_ci(value, "7BIT"))
		*out = ESMTP_BODY_7BIT;
	else if (str_eq_ci(value, "8BITMIME"))
		*out = ESMTP_BODY_8BITMIME;
	else if (str_eq_ci(value, "BINARYMIME"))
		*out = ESMTP_BODY_BINARYMIME;
	else
		return ESMTP_ERR_VALUE;
	return ESMTP_OK;
}

enum esmtp_err esmtp_ret(const char *value, enum esmtp_ret *out)
{
	if (value == NULL)
		return ESMTP_ERR_NEED_VALUE;
	if (str_eq_ci(value, "FULL"))
		*out = ESMTP_RET_FULL;
	else if (str_eq_ci(value, "HDRS"))
		*out = ESMTP_RET_HDRS;
	else
		return ESMTP_ERR_VALUE;
	return ESMTP_OK;
}

enum esmtp_err esmtp_notify(const char *value, unsigned *out)
{
	static const struct { const char *name; unsigned bit; } kw[] = {
		{ "NEVER", ESMTP_NOTIFY_NEVER },
		{ "SUCCESS", ESMTP_NOTIFY_SUCCESS },
		{ "FAILURE", ESMTP_NOTIFY_FAILURE },
		{ "DELAY", ESMTP_NOTIFY_DELAY },
	};
	unsigned mask = 0;
	const char *p = value;

	if (value == NULL)
		return ESMTP_ERR_NEED_VALUE;
	for (;;) {
		size_t n = strcspn(p, ",");
		unsigned bit = 0;
		for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
			if (strlen(kw[i].name) == n && str_eqn_ci(p, kw[i].name, n))
				bit = kw[i].bit;
		if (bit == 0 || (mask & bit))
			return ESMTP_ERR_VALUE;	/* unknown, empty (",,") or repeated */
		mask |= bit;
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	if ((mask & ESMTP_NOTIFY_NEVER) && mask != ESMTP_NOTIFY_NEVER)
		return ESMTP_ERR_VALUE;
	*out = mask;
	return ESMTP_OK;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static bool xtext_walk(const char *s, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			int hi, lo;
			if (n - i < 3 || (hi = hexval((unsigned char)s[i + 1])) < 0 ||
			    (lo = hexval((unsigned char)s[i + 2])) < 0)
				return false;
			c = (unsigned char)(hi * 16 + lo);
			if (c == 0)
				return false;
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return false;
		}
		if (out && !buf_putc(out, c))
			return false;
	}
	return true;
}

bool esmtp_xtext_valid(const char *s, size_t n)
{
	return xtext_walk(s, n, NULL);
}

bool esmtp_xtext_decode(const char *s, size_t n, struct buf *out)
{
	size_t keep = out->len;
	if (!xtext_walk(s, n, out)) {
		buf_truncate(out, keep);
		return false;
	}
	return buf_reserve(out, 0);	/* data non-NULL even for an empty result */
}

bool esmtp_xtext_encode(const void *p, size_t n, struct buf *out)
{
	const unsigned char *s = p;
	static const char hex[] = "0123456789ABCDEF";
	size_t keep = out->len;

	if (!buf_reserve(out, 0))
		return false;
	for (size_t i = 0; i < n; i++) {
		bool ok;
		if (s[i] < 33 || s[i] > 126 || s[i] == '+' || s[i] == '=') {
			char e[3] = { '+', hex[s[i] >> 4], hex[s[i] & 15] };
			ok = buf_append(out, e, 3);
		} else {
			ok = buf_putc(out, s[i]);
		}
		if (!ok) {
			buf_truncate(out, keep);
			return false;
		}
	}
	return true;
}

/* Decode xtext into a new string whose bytes all lie in [lo, 126]. */
static enum esmtp_err xtext_string(const char *s, size_t n, unsigned char lo, char **out)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	if (!esmtp_xtext_decode(s, n, &b)) {
		buf_free(&b);
		return ESMTP_ERR_XTEXT;
	}
	for (size_t i = 0; i < b.len; i++) {
		if ((unsigned char)b.data[i] < lo || (unsigned char)b.data[i] > 126) {
			buf_free(&b);
			return ESMTP_ERR_XTEXT;
		}
	}
	*out = buf_steal(&b, NULL);
	return ESMTP_OK;
}

enum esmtp_err esmtp_envid(const char *value, char **out)
{
	if (value == NULL)
		return ESMTP_ERR_NEED_VALUE;
	if (strlen(value) > ESMTP_ENVID_MAX)
		return ESMTP_ERR_TOO_LONG;
	return xtext_string(value, strlen(value), 33, out);
}

static void utf8_put(struct buf *b, uint32_t cp)
{
	if (cp < 0x80) {
		buf_putc(b, (int)cp);
	} else if (cp < 0x800) {
		buf_putc(b, (int)(0xc0 | (cp >> 6)));
		buf_putc(b, (int)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		buf_putc(b, (int)(0xe0 | (cp >> 12)));
		buf_putc(b, (int)(0x80 | ((cp >> 6) & 0x3f)));
		buf_putc(b, (int)(0x80 | (cp & 0x3f)));
	} else {
		buf_putc(b, (int)(0xf0 | (cp >> 18)));
		buf_putc(b, (int)(0x80 | ((cp >> 12) & 0x3f)));
		buf_putc(b, (int)(0x80 | ((cp >> 6) & 0x3f)));
		buf_putc(b, (int)(0x80 | (cp & 0x3f)));
	}
}

/* RFC 6533 §3 "utf-8" ORCPT forms: utf-8-addr-xtext and utf-8-addr-unitext, i.e. printable ASCII except "+",
 * "=" and "\", raw UTF-8 (which esmtp_parse only lets through under SMTPUTF8), and "\x{HEX}" escapes. The
 * result must be well-formed UTF-8 without control characters. */
static enum esmtp_err unitext_string(const char *s, size_t n, char **out)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	enum esmtp_err e = ESMTP_ERR_XTEXT;

	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\') {
			uint32_t cp = 0;
			size_t digits = 0;
			if (n - i < 3 || s[i + 1] != 'x' || s[i + 2] != '{')
				goto done;
			for (i += 3; i < n && s[i] != '}'; i++) {
				int v = hexval((unsigned char)s[i]);
				if (v < 0 || ++digits > 6)
					goto done;
				cp = cp * 16 + (uint32_t)v;
			}
			if (i >= n || digits < 2 || cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
				goto done;
			utf8_put(&b, cp);
			i++;
		} else if (c >= 0x80 || (c >= 0x21 && c <= 0x7e && c != '+' && c != '=')) {
			buf_putc(&b, c);
			i++;
		} else {
			goto done;
		}
	}
	if (!addr_utf8_valid(b.data, b.len))
		goto done;
	for (size_t i = 0; i < b.len; i++)
		if ((unsigned char)b.data[i] < 0x20 || b.data[i] == 0x7f)
			goto done;
	buf_reserve(&b, 0);
	*out = buf_steal(&b, NULL);
	e = ESMTP_OK;
done:
	buf_free(&b);
	return e;
}

enum esmtp_err esmtp_orcpt(const char *value, char **type, char **addr)
{
	const char *semi;
	enum esmtp_err e;

	if (value == NULL)
		return ESMTP_ERR_NEED_VALUE;
	if (strlen(value) > ESMTP_ORCPT_MAX)
		return ESMTP_ERR_TOO_LONG;
	semi = strchr(value, ';');
	if (semi == NULL || semi == value || semi[1] == '\0')
		return ESMTP_ERR_VALUE;
	/* addr-type = atom (RFC 3461 §4.2); in practice "rfc822" or RFC 6533's "utf-8" */
	for (const char *c = value; c < semi; c++)
		if (!addr_is_atext((unsigned char)*c))
			return ESMTP_ERR_VALUE;
	if (semi - value == 5 && str_eqn_ci(value, "utf-8", 5))
		e = unitext_string(semi + 1, strlen(semi + 1), addr);
	else
		e = xtext_string(semi + 1, strlen(semi + 1), 32, addr);
	if (e != ESMTP_OK)
		return e;
	*type = xstrndup(value, (size_t)(semi - value));
	return ESMTP_OK;
}

enum esmtp_err esmtp_auth(const char *value, char **out)
{
	if (value == NULL)
		return ESMTP_ERR_NEED_VALUE;
	if (strcmp(value, "<>") == 0) {
		*out = xstrdup("");
		return ESMTP_OK;
	}
	return xtext_string(value, strlen(value), 32, out);	/* a quoted local part may hold a space */
}

void esmtp_mail_free(struct esmtp_mail *m)
{
	xfree(&m->envid);
	xfree(&m->auth);
	memset(m, 0, sizeof(*m));
}

void esmtp_rcpt_free(struct esmtp_rcpt *r)
{
	xfree(&r->orcpt_type);
	xfree(&r->orcpt_addr);
	memset(r, 0, sizeof(*r));
}

static enum esmtp_err no_value(const char *value)
{
	return value == NULL ? ESMTP_OK : ESMTP_ERR_NO_VALUE;
}

enum esmtp_err esmtp_mail_params(const struct esmtp_params *p, struct esmtp_mail *out,
                                 const struct esmtp_param **bad)
{
	enum esmtp_err e = ESMTP_OK;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < p->n && e == ESMTP_OK; i++) {
		const char *k = p->v[i].keyword, *v = p->v[i].value;
		if (bad)
			*bad = &p->v[i];
		if (str_eq_ci(k, "SIZE")) {
			e = esmtp_size(v, &out->size);
			out->has_size = e == ESMTP_OK;
		} else if (str_eq_ci(k, "BODY")) {
			e = esmtp_body(v, &out->body);
		} else if (str_eq_ci(k, "SMTPUTF8")) {
			e = no_value(v);
			out->smtputf8 = true;
		} else if (str_eq_ci(k, "REQUIRETLS")) {
			e = no_value(v);
			out->requiretls = true;
		} else if (str_eq_ci(k, "RET")) {
			e = esmtp_ret(v, &out->ret);
		} else if (str_eq_ci(k, "ENVID")) {
			e = esmtp_envid(v, &out->envid);
		} else if (str_eq_ci(k, "AUTH")) {
			e = esmtp_auth(v, &out->auth);
		} else {
			e = ESMTP_ERR_UNKNOWN;
		}
	}
	if (e != ESMTP_OK)
		esmtp_mail_free(out);
	else if (bad)
		*bad = NULL;
	return e;
}

enum esmtp_err esmtp_rcpt_params(const struct esmtp_params *p, struct esmtp_rcpt *out,
                                 const struct esmtp_param **bad)
{
	enum esmtp_err e = ESMTP_OK;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < p->n && e == ESMTP_OK; i++) {
		const char *k = p->v[i].keyword, *v = p->v[i].value;
		if (bad)
			*bad = &p->v[i];
		if (str_eq_ci(k, "NOTIFY"))
			e = esmtp_notify(v, &out->notify);
		else if (str_eq_ci(k, "ORCPT"))
			e = esmtp_orcpt(v, &out->orcpt_type, &out->orcpt_addr);
		else
			e = ESMTP_ERR_UNKNOWN;
	}
	if (e != ESMTP_OK)
		esmtp_rcpt_free(out);
	else if (bad)
		*bad = NULL;
	return e;
}

static const char *const esmtp_errs[ESMTP_ERR_COUNT][2] = {
	[ESMTP_OK] = { "ok", "250 2.0.0 Ok" },
	[ESMTP_ERR_SYNTAX] = { "parameter syntax error", "501 5.5.4 Bad parameter syntax" },
	[ESMTP_ERR_TOO_MANY] = { "too many parameters", "501 5.5.4 Too many parameters" },
	[ESMTP_ERR_DUPLICATE] = { "parameter given twice", "501 5.5.4 Duplicate parameter" },
	[ESMTP_ERR_UNKNOWN] = { "unsupported parameter", "555 5.5.4 Unsupported option" },
	[ESMTP_ERR_NEED_VALUE] = { "parameter needs a value", "501 5.5.4 Parameter requires a value" },
	[ESMTP_ERR_NO_VALUE] = { "parameter takes no value", "501 5.5.4 Parameter takes no value" },
	[ESMTP_ERR_VALUE] = { "invalid parameter value", "501 5.5.4 Invalid parameter value" },
	[ESMTP_ERR_XTEXT] = { "malformed xtext", "501 5.5.4 Malformed xtext in parameter" },
	[ESMTP_ERR_TOO_LONG] = { "parameter value too long", "501 5.5.4 Parameter value too long" },
	[ESMTP_ERR_SIZE_OVERFLOW] = { "SIZE value too large", "552 5.3.4 Message size exceeds fixed limit" },
};

const char *esmtp_strerror(enum esmtp_err e)
{
	return (unsigned)e < ESMTP_ERR_COUNT ? esmtp_errs[e][0] : "unknown ESMTP parameter error";
}

const char *esmtp_reply(enum esmtp_err e)
{
	return (unsigned)e < ESMTP_ERR_COUNT ? esmtp_errs[e][1] : "501 5.5.4 Invalid parameter";
}

const char *esmtp_status(enum esmtp_err e)
{
	switch (e) {
	case ESMTP_OK:
		return "250 2.0.0";
	case ESMTP_ERR_UNKNOWN:
		return "555 5.5.4";
	case ESMTP_ERR_SIZE_OVERFLOW:
		return "552 5.3.4";
	default:
		return "501 5.5.4";
	}
}
