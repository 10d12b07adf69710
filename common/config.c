/* The configuration store: parameters by name (a hash over one array kept in table order), $name expansion
 * with a per-generation cache, and the typed getters. Reading main.cf lives in config_file.c. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "str.h"

#define SHOW_CAP 200	/* bytes of a bad value quoted in an error message */
#define NAME_CAP 64	/* bytes of a parameter name quoted in an error message */
#define NONE ((size_t)-1)
/* Bytes all expansions of one generation may produce together. Each value is capped at CONFIG_VALUE_MAX, but
 * thousands of lines each referring to a 1 MiB value would still cost gigabytes; real files use kilobytes. */
#define WORK_MAX ((size_t)64 * 1024 * 1024)

struct centry {
	const char *name;		/* the table's name for known parameters, else owned */
	char *owned_name;
	const struct config_param *param;	/* NULL: not in the parameter table */
	char *raw;			/* set value; NULL means the table default */
	char *origin;
	/* Expansion cache: valid while gen == config.gen. Exactly one of exp/experr is set when valid. */
	char *exp;
	char *experr;
	unsigned long gen;
	size_t height;			/* levels of nesting of a cached exp, itself included */
	bool busy;			/* being expanded: a reference to it now is a loop */
};

struct config {
	struct centry *ents;
	size_t n, cap;
	size_t *slots;			/* open addressing: entry index + 1, 0 = empty */
	size_t nslots;
	unsigned long gen;		/* bumped by every set: all cached expansions go stale */
	size_t work;			/* bytes expanded in this generation, against WORK_MAX */
	/* Expansions replaced after going stale. config_str() promises its pointer lives until the config is
	 * freed or that parameter is set, so a value that changed because another parameter changed is kept. */
	char **grave;
	size_t ngrave, capgrave;
	size_t stack[CONFIG_EXPAND_DEPTH + 1];	/* entries being expanded, outermost first */
	size_t depth;
};

/* ---- parameter table ---- */

bool config_name_valid(const char *name, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

const struct config_param *config_param_find(const char *name)
{
	for (const struct config_param *p = config_params; p->name; p++)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

/* ---- the store ---- */

static size_t hash_name(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

static size_t find_n(const struct config *cfg, const char *name, size_t len)
{
	size_t mask = cfg->nslots - 1;
	for (size_t i = hash_name(name, len) & mask;; i = (i + 1) & mask) {
		size_t s = cfg->slots[i];
		if (s == 0)
			return NONE;
		const char *n = cfg->ents[s - 1].name;
		if (strncmp(n, name, len) == 0 && n[len] == '\0')
			return s - 1;
	}
}

static size_t find(const struct config *cfg, const char *name)
{
	return find_n(cfg, name, strlen(name));
}

static void slot_insert(struct config *cfg, size_t idx)
{
	size_t mask = cfg->nslots - 1;
	const char *name = cfg->ents[idx].name;
	size_t i = hash_name(name, strlen(name)) & mask;
	while (cfg->slots[i] != 0)
		i = (i + 1) & mask;
	cfg->slots[i] = idx + 1;
}

static size_t add_entry(struct config *cfg, const char *name, const struct config_param *param)
{
	size_t idx;

	/* keep the load factor at or under one half */
	if ((cfg->n + 1) * 2 > cfg->nslots) {
		size_t nn;
		if (!size_mul(cfg->nslots, 2, &nn))
			panic("config: too many parameters");
		free(cfg->slots);
		cfg->slots = xcalloc(nn, sizeof(*cfg->slots));
		cfg->nslots = nn;
		for (size_t i = 0; i < cfg->n; i++)
			slot_insert(cfg, i);
	}
	if (cfg->n == cfg->cap) {
		size_t nc = cfg->cap ? cfg->cap * 2 : 64;
		cfg->ents = xreallocarray(cfg->ents, nc, sizeof(*cfg->ents));
		cfg->cap = nc;
	}
	idx = cfg->n++;
	memset(&cfg->ents[idx], 0, sizeof(cfg->ents[idx]));
	if (param) {
		cfg->ents[idx].name = param->name;
	} else {
		cfg->ents[idx].owned_name = xstrdup(name);
		cfg->ents[idx].name = cfg->ents[idx].owned_name;
	}
	cfg->ents[idx].param = param;
	slot_insert(cfg, idx);
	return idx;
}

struct config *config_new(void)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));

	cfg->nslots = 256;
	cfg->slots = xcalloc(cfg->nslots, sizeof(*cfg->slots));
	cfg->gen = 1;
	for (const struct config_param *p = config_params; p->name; p++)
		if (find(cfg, p->name) == NONE)
			add_entry(cfg, p->name, p);
	return cfg;
}

void config_free(struct config **cfgp)
{
	struct config *cfg = *cfgp;

	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->n; i++) {
		struct centry *e = &cfg->ents[i];
		free(e->owned_name);
		free(e->raw);
		free(e->origin);
		free(e->exp);
		free(e->experr);
	}
	for (size_t i = 0; i < cfg->ngrave; i++)
		free(cfg->grave[i]);
	free(cfg->grave);
	free(cfg->ents);
	free(cfg->slots);
	free(cfg);
	*cfgp = NULL;
}

void config_set(struct config *cfg, const char *name, const char *value, const char *origin)
{
	size_t idx = find(cfg, name);
	struct centry *e;

	if (idx == NONE)
		idx = add_entry(cfg, name, NULL);
	e = &cfg->ents[idx];
	free(e->raw);
	free(e->origin);
	xfree(&e->exp);
	xfree(&e->experr);
	e->raw = xstrdup(value);
	e->origin = xstrdup(origin ? origin : "unknown origin");
	cfg->gen++;
	cfg->work = 0;
}

bool config_set_override(struct config *cfg, const char *assignment, struct buf *err)
{
	const char *eq = strchr(assignment, '=');
	char *name, *value;

	if (eq == NULL) {
		buf_puts(err, "-o ");
		buf_append_printable(err, assignment, strlen(assignment), SHOW_CAP);
		buf_puts(err, ": expected name=value");
		return false;
	}
	name = xstrndup(assignment, (size_t)(eq - assignment));
	value = xstrdup(eq + 1);
	char *n = str_trim(name);
	if (!config_name_valid(n, strlen(n))) {
		buf_puts(err, "-o ");
		buf_append_printable(err, assignment, strlen(assignment), SHOW_CAP);
		buf_puts(err, ": bad parameter name (use letters, digits and _)");
		free(name);
		free(value);
		return false;
	}
	config_set(cfg, n, str_trim(value), "-o");
	free(name);
	free(value);
	return true;
}

const char *config_origin(struct config *cfg, const char *name)
{
	size_t idx = find(cfg, name);
	return idx == NONE ? NULL : cfg->ents[idx].origin;
}

const char *config_raw(struct config *cfg, const char *name)
{
	size_t idx = find(cfg, name);
	return idx == NONE ? NULL : cfg->ents[idx].raw;
}

/* ---- expansion ---- */

static const char *raw_or_default(const struct centry *e)
{
	if (e->raw)
		return e->raw;
	return e->param && e->param->def ? e->param->def : "";
}

static const char *origin_of(const struct centry *e)
{
	return e->origin ? e->origin : "default";
}

static void put_name(struct buf *b, const char *name, size_t len)
{
	buf_append_printable(b, name, len, NAME_CAP);
}

/* Result of expanding one entry. CTX errors depend on how deep we were when expanding started (the nesting
 * limit), so only the outermost entry may cache them. */
enum xres { X_OK, X_ERR, X_CTX };

static enum xres expand_entry(struct config *cfg, size_t idx, struct buf *msg);

/* out refused to grow: say which limit it hit */
static enum xres too_long(const struct buf *out, struct buf *msg)
{
	if (out->max < CONFIG_VALUE_MAX)
		buf_printf(msg, "all values of this configuration together expand to more than %zu bytes", WORK_MAX);
	else
		buf_printf(msg, "value longer than %d bytes after expansion", CONFIG_VALUE_MAX);
	return X_ERR;
}

static void too_deep(struct buf *msg)
{
	buf_printf(msg, "$name expansions nested more than %d deep", CONFIG_EXPAND_DEPTH);
}

/* Append the expansion of a reference to name to out; *height grows to the referenced value's nesting.
 * On error msg holds the reason. */
static enum xres expand_ref(struct config *cfg, const char *name, size_t len, struct buf *out, struct buf *msg,
                            size_t *height)
{
	size_t idx = find_n(cfg, name, len);
	enum xres r;
	struct centry *e;

	if (idx == NONE)
		return X_OK;	/* unknown and unset: expands to nothing */
	e = &cfg->ents[idx];
	if (e->busy) {
		size_t from = 0;
		while (cfg->stack[from] != idx)
			from++;
		buf_puts(msg, "expansion loop: ");
		for (size_t i = from; i < cfg->depth; i++) {
			buf_putc(msg, '$');
			put_name(msg, cfg->ents[cfg->stack[i]].name, strlen(cfg->ents[cfg->stack[i]].name));
			buf_puts(msg, " -> ");
		}
		buf_putc(msg, '$');
		put_name(msg, e->name, strlen(e->name));
		return X_ERR;
	}
	if (e->gen != cfg->gen || (e->exp == NULL && e->experr == NULL)) {
		struct buf sub = BUF_INIT(BUF_NOLIMIT);
		r = expand_entry(cfg, idx, &sub);
		e = &cfg->ents[idx];
		if (r != X_OK) {
			buf_putc(msg, '$');
			put_name(msg, e->name, strlen(e->name));
			buf_printf(msg, " (%s): %s", origin_of(e), buf_cstr(&sub));
			buf_free(&sub);
			return r;
		}
		buf_free(&sub);
	}
	if (e->experr) {
		buf_putc(msg, '$');
		put_name(msg, e->name, strlen(e->name));
		buf_printf(msg, " (%s): %s", origin_of(e), e->experr);
		return X_ERR;
	}
	/* a cached value counts with its full nesting, so the limit does not depend on what was read first */
	if (cfg->depth + e->height > CONFIG_EXPAND_DEPTH) {
		buf_putc(msg, '$');
		put_name(msg, e->name, strlen(e->name));
		buf_printf(msg, " (%s): ", origin_of(e));
		too_deep(msg);
		return X_CTX;
	}
	if (e->height > *height)
		*height = e->height;
	if (!buf_puts(out, e->exp))
		return too_long(out, msg);
	return X_OK;
}

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Expand text into out; *height becomes the deepest nesting of the values it refers to. */
static enum xres expand_text(struct config *cfg, const char *s, struct buf *out, struct buf *msg, size_t *height)
{
	while (*s) {
		const char *d = strchr(s, '$');
		size_t lit = d ? (size_t)(d - s) : strlen(s);
		if (!buf_append(out, s, lit))
			return too_long(out, msg);
		if (d == NULL)
			break;
		s = d + 1;
		const char *name;
		size_t len;
		if (*s == '$') {
			if (!buf_putc(out, '$'))
				return too_long(out, msg);
			s++;
			continue;
		} else if (*s == '{') {
			const char *close = strchr(s, '}');
			name = s + 1;
			len = close ? (size_t)(close - name) : 0;
			if (close == NULL || !config_name_valid(name, len)) {
				buf_puts(msg, "bad \"${\": expected ${name} with a name of letters, digits and _ "
				              "(write $$ for a literal $)");
				return X_ERR;
			}
			s = close + 1;
		} else if (is_name_char(*s)) {
			name = s;
			while (is_name_char(*s))
				s++;
			len = (size_t)(s - name);
		} else {
			buf_puts(msg, "\"$\" must be followed by a name, {name} or $ (write $$ for a literal $)");
			return X_ERR;
		}
		enum xres r = expand_ref(cfg, name, len, out, msg, height);
		if (r != X_OK)
			return r;
	}
	return X_OK;
}

static void bury(struct config *cfg, char *p)
{
	if (cfg->ngrave == cfg->capgrave) {
		size_t nc = cfg->capgrave ? cfg->capgrave * 2 : 16;
		cfg->grave = xreallocarray(cfg->grave, nc, sizeof(*cfg->grave));
		cfg->capgrave = nc;
	}
	cfg->grave[cfg->ngrave++] = p;
}

/* (Re)compute the cache of entry idx. On error msg gets the reason (without origin or name). */
static enum xres expand_entry(struct config *cfg, size_t idx, struct buf *msg)
{
	struct buf out;
	enum xres r;
	struct centry *e;
	size_t height = 0, room = WORK_MAX - cfg->work;

	if (cfg->depth >= CONFIG_EXPAND_DEPTH) {
		too_deep(msg);
		return X_CTX;
	}
	buf_init(&out, room < CONFIG_VALUE_MAX ? room : CONFIG_VALUE_MAX);
	e = &cfg->ents[idx];
	e->busy = true;
	cfg->stack[cfg->depth++] = idx;
	r = expand_text(cfg, raw_or_default(e), &out, msg, &height);
	cfg->depth--;
	/* children counted their own output already; overshoot is bounded by depth * CONFIG_VALUE_MAX */
	cfg->work = out.len > WORK_MAX - cfg->work ? WORK_MAX : cfg->work + out.len;
	e = &cfg->ents[idx];
	e->busy = false;
	if (r == X_CTX && cfg->depth > 0) {
		buf_free(&out);
		return r;
	}
	/* a stale value handed out earlier stays alive (see grave); an equal one is simply kept */
	if (e->exp && (r != X_OK || strcmp(e->exp, buf_cstr(&out)) != 0)) {
		bury(cfg, e->exp);
		e->exp = NULL;
	}
	xfree(&e->experr);
	if (r == X_OK) {
		if (e->exp == NULL)
			e->exp = buf_steal(&out, NULL);
		e->height = height + 1;
	} else {
		e->experr = xstrdup(buf_cstr(msg));
	}
	e->gen = cfg->gen;
	buf_free(&out);
	return r == X_OK ? X_OK : X_ERR;
}

/* Expanded value of entry idx, or NULL with "ORIGIN: NAME: reason" appended to err. */
static const char *expand_idx(struct config *cfg, size_t idx, struct buf *err)
{
	struct centry *e = &cfg->ents[idx];

	if (e->gen != cfg->gen || (e->exp == NULL && e->experr == NULL)) {
		struct buf msg = BUF_INIT(BUF_NOLIMIT);
		cfg->depth = 0;
		expand_entry(cfg, idx, &msg);
		buf_free(&msg);
		e = &cfg->ents[idx];
	}
	if (e->exp)
		return e->exp;
	if (err) {
		buf_printf(err, "%s: ", origin_of(e));
		put_name(err, e->name, strlen(e->name));
		buf_printf(err, ": %s", e->experr);
	}
	return NULL;
}

static size_t known(struct config *cfg, const char *name)
{
	size_t idx = find(cfg, name);
	if (idx == NONE || cfg->ents[idx].param == NULL)
		panic("config: parameter \"%s\" is not in the parameter table", name);
	return idx;
}

bool config_try_str(struct config *cfg, const char *name, const char **out, struct buf *err)
{
	const char *v = expand_idx(cfg, known(cfg, name), err);
	if (v == NULL)
		return false;
	*out = v;
	return true;
}

const char *config_str(struct config *cfg, const char *name)
{
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	const char *v;

	if (!config_try_str(cfg, name, &v, &err))
		fatalx("%s", buf_cstr(&err));
	return v;
}

bool config_check(struct config *cfg, struct buf *err)
{
	bool ok = true;

	for (size_t i = 0; i < cfg->n; i++) {
		if (expand_idx(cfg, i, err) == NULL) {
			buf_putc(err, '\n');
			ok = false;
		}
	}
	return ok;
}

void config_foreach(struct config *cfg, void (*fn)(const char *name, const char *value, bool set, void *arg),
                    void *arg)
{
	/* fn may not set values, so the array does not move under us; n is re-read in case it did */
	for (size_t i = 0; i < cfg->n; i++) {
		const char *v = expand_idx(cfg, i, NULL);
		struct centry *e = &cfg->ents[i];
		fn(e->name, v ? v : raw_or_default(e), e->raw != NULL, arg);
	}
}

/* ---- typed getters ---- */

/* Start an error message about entry idx: "ORIGIN: NAME: ". */
static void err_head(struct config *cfg, size_t idx, struct buf *err)
{
	struct centry *e = &cfg->ents[idx];
	buf_printf(err, "%s: %s: ", origin_of(e), e->name);
}

static void err_value(struct buf *err, const char *v)
{
	buf_putc(err, '"');
	buf_append_printable(err, v, strlen(v), SHOW_CAP);
	buf_putc(err, '"');
}

/* The expanded value with surrounding white space dropped, copied into tmp. */
static const char *typed_value(struct config *cfg, size_t idx, struct buf *tmp, struct buf *err)
{
	const char *v = expand_idx(cfg, idx, err);
	if (v == NULL)
		return NULL;
	buf_puts(tmp, v);
	if (tmp->data == NULL)
		return "";
	return str_trim(tmp->data);
}

bool config_try_int(struct config *cfg, const char *name, int64_t min, int64_t max, int64_t *out, struct buf *err)
{
	size_t idx = known(cfg, name);
	struct buf tmp = BUF_INIT(BUF_NOLIMIT);
	const char *v = typed_value(cfg, idx, &tmp, err);
	uint64_t mag;
	int64_t val = 0;
	bool neg, ok;

	if (v == NULL) {
		buf_free(&tmp);
		return false;
	}
	neg = (*v == '-');
	const char *digits = (neg || *v == '+') ? v + 1 : v;
	if (*digits == '\0' || strspn(digits, "0123456789") != strlen(digits)) {
		err_head(cfg, idx, err);
		err_value(err, v);
		buf_puts(err, " is not a valid number");
		buf_free(&tmp);
		return false;
	}
	ok = str_to_u64(digits, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &mag);
	if (ok)
		val = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
	if (!ok || val < min || val > max) {
		err_head(cfg, idx, err);
		err_value(err, v);
		buf_printf(err, " is out of range (must be between %" PRId64 " and %" PRId64 ")", min, max);
		buf_free(&tmp);
		return false;
	}
	*out = val;
	buf_free(&tmp);
	return true;
}

int64_t config_int(struct config *cfg, const char *name, int64_t min, int64_t max)
{
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	int64_t v;
	if (!config_try_int(cfg, name, min, max, &v, &err))
		fatalx("%s", buf_cstr(&err));
	return v;
}

bool config_try_bool(struct config *cfg, const char *name, bool *out, struct buf *err)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t idx = known(cfg, name);
	struct buf tmp = BUF_INIT(BUF_NOLIMIT);
	const char *v = typed_value(cfg, idx, &tmp, err);

	if (v == NULL) {
		buf_free(&tmp);
		return false;
	}
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (str_eq_ci(v, yes[i]) || str_eq_ci(v, no[i])) {
			*out = str_eq_ci(v, yes[i]);
			buf_free(&tmp);
			return true;
		}
	}
	err_head(cfg, idx, err);
	err_value(err, v);
	buf_puts(err, " is not a valid boolean (use yes or no)");
	buf_free(&tmp);
	return false;
}

bool config_bool(struct config *cfg, const char *name)
{
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	bool v;
	if (!config_try_bool(cfg, name, &v, &err))
		fatalx("%s", buf_cstr(&err));
	return v;
}

struct unit {
	char c;
	uint64_t mult;
};

/* digits, then optionally one unit letter (either case) from units. false: not that form; *overflow is set
 * when it was that form but does not fit in max. */
static bool parse_unit(const char *v, const struct unit *units, size_t nunits, uint64_t max, uint64_t *out,
                       bool *overflow)
{
	size_t nd = strspn(v, "0123456789");
	uint64_t mult = 1, n;

	*overflow = false;
	if (nd == 0)
		return false;
	if (v[nd] != '\0') {
		size_t i;
		if (v[nd + 1] != '\0')
			return false;
		for (i = 0; i < nunits; i++)
			if (str_ascii_lower((unsigned char)v[nd]) == units[i].c)
				break;
		if (i == nunits)
			return false;
		mult = units[i].mult;
	}
	if (!str_to_u64n(v, nd, UINT64_MAX, &n) || __builtin_mul_overflow(n, mult, &n) || n > max) {
		*overflow = true;
		return false;
	}
	*out = n;
	return true;
}

/* n as the largest unit that divides it exactly ("1h", "90s", "10m" for sizes). */
static void put_with_unit(struct buf *b, uint64_t n, const struct unit *units, size_t nunits, const char *none)
{
	for (size_t i = nunits; i-- > 0;) {
		if (units[i].mult > 1 && n != 0 && n % units[i].mult == 0) {
			buf_printf(b, "%" PRIu64 "%c", n / units[i].mult, units[i].c);
			return;
		}
	}
	buf_printf(b, "%" PRIu64 "%s", n, none);
}

static const struct unit time_units[] = { { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
	                                  { 'w', 604800 } };
static const struct unit size_units[] = { { 'k', 1024 }, { 'm', 1024 * 1024 }, { 'g', 1024 * 1024 * 1024 } };
#define NUNITS(a) (sizeof(a) / sizeof(a[0]))

bool config_try_time(struct config *cfg, const char *name, int64_t min, int64_t max, int64_t *out, struct buf *err)
{
	size_t idx = known(cfg, name);
	struct buf tmp = BUF_INIT(BUF_NOLIMIT);
	const char *v = typed_value(cfg, idx, &tmp, err);
	uint64_t n = 0;
	bool overflow, ok;

	if (v == NULL) {
		buf_free(&tmp);
		return false;
	}
	ok = parse_unit(v, time_units, NUNITS(time_units), INT64_MAX, &n, &overflow);
	if (!ok && !overflow) {
		err_head(cfg, idx, err);
		err_value(err, v);
		buf_puts(err, " is not a valid time (use a number with s, m, h, d or w)");
		buf_free(&tmp);
		return false;
	}
	if (!ok || (int64_t)n < min || (int64_t)n > max) {
		err_head(cfg, idx, err);
		err_value(err, v);
		buf_puts(err, " is out of range (must be between ");
		if (min < 0)
			buf_printf(err, "%" PRId64 "s", min);
		else
			put_with_unit(err, (uint64_t)min, time_units, NUNITS(time_units), "s");
		buf_puts(err, " and ");
		if (max < 0)
			buf_printf(err, "%" PRId64 "s", max);
		else
			put_with_unit(err, (uint64_t)max, time_units, NUNITS(time_units), "s");
		buf_putc(err, ')');
		buf_free(&tmp);
		return false;
	}
	*out = (int64_t)n;
	buf_free(&tmp);
	return true;
}

int64_t config_time(struct config *cfg, const char *name, int64_t min, int64_t max)
{
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	int64_t v;
	if (!config_try_time(cfg, name, min, max, &v, &err))
		fatalx("%s", buf_cstr(&err));
	return v;
}

bool config_try_size(struct config *cfg, const char *name, uint64_t min, uint64_t max, uint64_t *out,
                     struct buf *err)
{
	size_t idx = known(cfg, name);
	struct buf tmp = BUF_INIT(BUF_NOLIMIT);
	const char *v = typed_value(cfg, idx, &tmp, err);
	uint64_t n = 0;
	bool overflow, ok;

	if (v == NULL) {
		buf_free(&tmp);
		return false;
	}
	ok = parse_unit(v, size_units, NUNITS(size_units), UINT64_MAX, &n, &overflow);
	if (!ok && !overflow) {
		err_head(cfg, idx, err);
		err_value(err, v);
		buf_puts(err, " is not a valid size (use a number of bytes with an optional k, m or g)");
		buf_free(&tmp);
		return false;
	}
	if (!ok || n < min || n > max) {
		err_head(cfg, idx, err);
		err_value(err, v);
		buf_puts(err, " is out of range (must be between ");
		put_with_unit(err, min, size_units, NUNITS(size_units), "");
		buf_puts(err, " and ");
		put_with_unit(err, max, size_units, NUNITS(size_units), "");
		buf_putc(err, ')');
		buf_free(&tmp);
		return false;
	}
	*out = n;
	buf_free(&tmp);
	return true;
}

uint64_t config_size(struct config *cfg, const char *name, uint64_t min, uint64_t max)
{
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	uint64_t v;
	if (!config_try_size(cfg, name, min, max, &v, &err))
		fatalx("%s", buf_cstr(&err));
	return v;
}

#define LIST_SEPS ", \t\r\n"

bool config_try_list(struct config *cfg, const char *name, char ***out, size_t *count, struct buf *err)
{
	const char *v = expand_idx(cfg, known(cfg, name), err);
	size_t n = 0, len, ptrs, total;
	char **list, *text;

	if (v == NULL)
		return false;
	for (const char *p = v + strspn(v, LIST_SEPS); *p; p += strspn(p, LIST_SEPS)) {
		n++;
		p += strcspn(p, LIST_SEPS);
	}
	/* one block: the pointer array, then a copy of the text split in place; one free() releases both */
	len = strlen(v);
	if (!size_mul(n + 1, sizeof(char *), &ptrs) || !size_add(ptrs, len + 1, &total))
		panic("config_list: size overflow");
	list = xmalloc(total);
	text = (char *)list + ptrs;
	memcpy(text, v, len + 1);
	if (str_split(text, LIST_SEPS, list, n) != n)
		panic("config_list: count mismatch");
	list[n] = NULL;
	*out = list;
	if (count)
		*count = n;
	return true;
}

char **config_list(struct config *cfg, const char *name, size_t *count)
{
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	char **list;
	if (!config_try_list(cfg, name, &list, count, &err))
		fatalx("%s", buf_cstr(&err));
	return list;
}

void config_list_free(char ***list)
{
	xfree(list);
}
