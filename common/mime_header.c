/* RFC 5322 header blocks: splitting into fields, unfolding, lookup; and date-time parsing with the obsolete
 * forms real mail still carries. See mime.h. */
#include "mime.h"

#include <string.h>

#include "alloc.h"
#include "str.h"

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static void field_push(struct mime_header *h, const struct mime_field *f)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 16;
		h->v = xreallocarray(h->v, h->cap, sizeof(*h->v));
	}
	h->v[h->n++] = *f;
}

/* End of the line starting at i: the index of its LF, or len. */
static size_t line_end(const char *p, size_t len, size_t i)
{
	const char *nl = memchr(p + i, '\n', len - i);
	return nl ? (size_t)(nl - p) : len;
}

void mime_header_parse(struct mime_header *h, const char *p, size_t len)
{
	h->base = p;
	h->n = 0;
	h->size = 0;
	h->has_blank = false;
	h->truncated = false;
	size_t i = 0;
	bool have = false;     /* a field is open (continuation lines join it) */
	struct mime_field cur = { 0, 0, 0, 0, 0 };

	while (i < len) {
		size_t e = line_end(p, len, i);
		size_t next = e < len ? e + 1 : len;
		size_t content_end = (e > i && p[e - 1] == '\r') ? e - 1 : e;
		if (content_end == i && e < len) {   /* the blank line */
			i = next;
			h->has_blank = true;
			break;
		}
		if (next > MIME_MAX_HEADER) {
			h->truncated = true;
			break;
		}
		if (is_wsp(p[i]) && have) {
			cur.len = content_end - cur.off;
			i = next;
			continue;
		}
		if (have) {
			if (h->n < MIME_MAX_FIELDS)
				field_push(h, &cur);
			else
				h->truncated = true;
			have = false;
		}
		/* field name: printable ASCII except ':', then optional obsolete white space, then ':' */
		size_t j = i;
		while (j < content_end && p[j] > 32 && p[j] < 127 && p[j] != ':')
			j++;
		size_t name_len = j - i;
		while (j < content_end && is_wsp(p[j]))
			j++;
		if (name_len > 0 && j < content_end && p[j] == ':') {
			j++;
			while (j < content_end && is_wsp(p[j]))
				j++;
			cur.off = i;
			cur.name_len = name_len;
			cur.value_off = j;
			cur.len = content_end - i;
			have = true;
		}
		i = next;
	}
	if (have) {
		if (h->n < MIME_MAX_FIELDS)
			field_push(h, &cur);
		else
			h->truncated = true;
	}
	/* values run to the end of each field */
	for (size_t k = 0; k < h->n; k++) {
		struct mime_field *f = &h->v[k];
		f->value_len = f->off + f->len - f->value_off;
		if (f->value_off > f->off + f->len)
			f->value_len = 0;
	}
	h->size = i;
}

void mime_header_free(struct mime_header *h)
{
	xfree(&h->v);
	h->n = h->cap = 0;
}

bool mime_field_is(const struct mime_header *h, const struct mime_field *f, const char *name)
{
	size_t n = strlen(name);
	return f->name_len == n && str_eqn_ci(h->base + f->off, name, n);
}

const struct mime_field *mime_header_find(const struct mime_header *h, const char *name, size_t idx)
{
	for (size_t k = 0; k < h->n; k++)
		if (mime_field_is(h, &h->v[k], name) && idx-- == 0)
			return &h->v[k];
	return NULL;
}

bool mime_field_value(const struct mime_header *h, const struct mime_field *f, struct buf *out)
{
	const char *s = h->base + f->value_off;
	size_t start = out->len;
	for (size_t i = 0; i < f->value_len; i++) {
		if (s[i] == '\r' || s[i] == '\n')
			continue;
		if (!buf_putc(out, s[i]))
			return false;
	}
	while (out->len > start && is_wsp(out->data[out->len - 1]))
		out->len--;
	if (out->data)
		out->data[out->len] = '\0';
	return true;
}

char *mime_header_get(const struct mime_header *h, const char *name)
{
	const struct mime_field *f = mime_header_find(h, name, 0);
	if (!f)
		return NULL;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	mime_field_value(h, f, &b);
	buf_putc(&b, '\0');   /* make sure storage exists */
	b.len--;
	return buf_steal(&b, NULL);
}

/* ---- dates ---- */

struct dlex {
	const char *s;
	size_t len, pos;
};

/* Skip white space, line ends and (nested, bounded) comments. */
static bool dskip(struct dlex *L)
{
	int depth = 0;
	while (L->pos < L->len) {
		char c = L->s[L->pos];
		if (depth == 0 && (is_wsp(c) || c == '\r' || c == '\n')) {
			L->pos++;
		} else if (c == '(') {
			if (++depth > 16)
				return false;
			L->pos++;
		} else if (depth > 0) {
			if (c == ')')
				depth--;
			else if (c == '\\' && L->pos + 1 < L->len)
				L->pos++;
			L->pos++;
		} else {
			break;
		}
	}
	return depth == 0;
}

/* A run of digits (at most maxd); returns the count, 0 when none. */
static int dnum(struct dlex *L, int maxd, long *v)
{
	int n = 0;
	*v = 0;
	while (L->pos < L->len && L->s[L->pos] >= '0' && L->s[L->pos] <= '9') {
		if (++n > maxd)
			return 0;
		*v = *v * 10 + (L->s[L->pos] - '0');
		L->pos++;
	}
	return n;
}

static size_t dword(struct dlex *L, const char **w)
{
	*w = L->s + L->pos;
	size_t n = 0;
	while (L->pos < L->len) {
		char c = L->s[L->pos];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			break;
		L->pos++;
		n++;
	}
	return n;
}

static bool dchar(struct dlex *L, char c)
{
	if (L->pos < L->len && L->s[L->pos] == c) {
		L->pos++;
		return true;
	}
	return false;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

static const char *const months[12] = { "jan", "feb", "mar", "apr", "may", "jun",
                                        "jul", "aug", "sep", "oct", "nov", "dec" };

static bool zone_name(const char *w, size_t n, int *off)
{
	static const struct { const char *name; int off; } zones[] = {
		{ "ut", 0 }, { "gmt", 0 }, { "utc", 0 }, { "z", 0 },
		{ "est", -300 }, { "edt", -240 }, { "cst", -360 }, { "cdt", -300 },
		{ "mst", -420 }, { "mdt", -360 }, { "pst", -480 }, { "pdt", -420 },
	};
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
		if (strlen(zones[i].name) == n && str_eqn_ci(w, zones[i].name, n)) {
			*off = zones[i].off;
			return true;
		}
	/* RFC 5322 §4.3: military zones and anything else unknown mean -0000 */
	*off = 0;
	return false;
}

bool mime_date_parse(const char *s, size_t len, time_t *t, int *tz_minutes)
{
	struct dlex L = { s, len, 0 };
	const char *w;
	size_t wn;
	long day, year, hh, mm, ss = 0;
	int mon = -1;

	if (!dskip(&L))
		return false;
	/* optional day-of-week and comma */
	size_t save = L.pos;
	wn = dword(&L, &w);
	if (wn >= 3) {
		if (!dskip(&L))
			return false;
		dchar(&L, ',');
	} else {
		L.pos = save;
	}
	if (!dskip(&L))
		return false;
	if (dnum(&L, 2, &day) == 0 || day < 1 || day > 31)
		return false;
	if (!dskip(&L))
		return false;
	dchar(&L, '-');   /* "24-Mar-2007" seen in the wild */
	wn = dword(&L, &w);
	if (wn < 3)
		return false;
	for (int i = 0; i < 12; i++)
		if (str_eqn_ci(w, months[i], 3))
			mon = i + 1;
	if (mon < 0)
		return false;
	if (!dskip(&L))
		return false;
	dchar(&L, '-');
	int yd = dnum(&L, 4, &year);
	if (yd == 0)
		return false;
	if (yd == 2)
		year += year < 50 ? 2000 : 1900;
	else if (yd == 3)
		year += 1900;
	if (!dskip(&L))
		return false;
	if (dnum(&L, 2, &hh) == 0 || hh > 23)
		return false;
	if (!dskip(&L) || !dchar(&L, ':') || !dskip(&L))
		return false;
	if (dnum(&L, 2, &mm) == 0 || mm > 59)
		return false;
	if (!dskip(&L))
		return false;
	if (dchar(&L, ':')) {
		if (!dskip(&L) || dnum(&L, 2, &ss) == 0 || ss > 60)
			return false;
	}
	if (!dskip(&L))
		return false;
	int tz = 0;
	if (L.pos < L.len && (s[L.pos] == '+' || s[L.pos] == '-')) {
		int sign = s[L.pos] == '-' ? -1 : 1;
		L.pos++;
		long z;
		if (dnum(&L, 4, &z) != 4 || z % 100 > 59)
			return false;
		tz = sign * (int)((z / 100) * 60 + z % 100);
	} else if (L.pos < L.len) {
		wn = dword(&L, &w);
		if (wn > 0)
			zone_name(w, wn, &tz);
	}
	/* anything after the zone (comments, junk) is ignored */
	static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (day > mdays[mon - 1])
		return false;
	long long days = days_from_civil(year, (unsigned)mon, (unsigned)day);
	long long secs = days * 86400 + hh * 3600 + mm * 60 + (ss == 60 ? 59 : ss) - (long long)tz * 60;
	*t = (time_t)secs;
	if (tz_minutes)
		*tz_minutes = tz;
	return true;
}

bool mime_date_format(time_t t, int tz_minutes, struct buf *out)
{
	static const char *const days[7] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const mon[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	time_t local = t + (time_t)tz_minutes * 60;
	if (!gmtime_r(&local, &tm))
		return false;
	int z = tz_minutes < 0 ? -tz_minutes : tz_minutes;
	return buf_printf(out, "%s, %d %s %04d %02d:%02d:%02d %c%02d%02d", days[tm.tm_wday], tm.tm_mday,
	                  mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
	                  tz_minutes < 0 ? '-' : '+', z / 60, z % 60);
}
