/* Fuzz the main.cf parser and everything that reads a value: arbitrary bytes as a main.cf, then every parameter
 * through every getter (expansion loops, nesting and size limits, number parsing), foreach, and the rewrite
 * used by `config set`, which must leave a file that loads and holds the new value. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct count {
	size_t n;
};

static void visit(const char *name, const char *value, bool set, void *arg)
{
	struct count *c = arg;
	if (name == NULL || value == NULL || (set && name[0] == '\0'))
		__builtin_trap();
	c->n++;
}

static void read_all(struct config *cfg, const char *name)
{
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	const char *s;
	int64_t i;
	uint64_t u;
	bool b;
	char **list;
	size_t n;

	if (config_try_str(cfg, name, &s, &err) && strlen(s) > CONFIG_VALUE_MAX)
		__builtin_trap();
	(void)config_try_int(cfg, name, INT64_MIN, INT64_MAX, &i, &err);
	(void)config_try_int(cfg, name, 1, 100, &i, &err);
	(void)config_try_bool(cfg, name, &b, &err);
	(void)config_try_time(cfg, name, 0, INT64_MAX, &i, &err);
	(void)config_try_time(cfg, name, 60, 86400, &i, &err);
	(void)config_try_size(cfg, name, 0, UINT64_MAX, &u, &err);
	(void)config_try_size(cfg, name, 1024, 1024 * 1024, &u, &err);
	if (config_try_list(cfg, name, &list, &n, &err)) {
		for (size_t k = 0; k < n; k++)
			if (list[k] == NULL || list[k][0] == '\0')
				__builtin_trap();
		if (list[n] != NULL)
			__builtin_trap();
		config_list_free(&list);
	}
	buf_free(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg = config_new();
	struct buf err = BUF_INIT(BUF_NOLIMIT), warn = BUF_INIT(BUF_NOLIMIT);
	struct count c = { 0 };
	size_t nparams = 0;
	bool loaded;

	loaded = config_load_mem(cfg, "main.cf", (const char *)data, size, &err, &warn);
	if (loaded == (err.len > 0))
		__builtin_trap();
	for (const struct config_param *p = config_params; p->name; p++, nparams++)
		read_all(cfg, p->name);
	config_foreach(cfg, visit, &c);
	if (c.n < nparams)
		__builtin_trap();
	buf_reset(&err);
	(void)config_check(cfg, &err);
	config_free(&cfg);

	if (loaded && nparams > 0) {
		/* rewriting one assignment keeps the file loadable and makes the new value the one in effect */
		const char *name = config_params[size ? data[0] % nparams : 0].name;
		const char *value = "new $$ ${myhostname} value";
		struct buf out = BUF_INIT(BUF_NOLIMIT);
		config_text_set((const char *)data, size, name, value, &out);
		cfg = config_new();
		buf_reset(&err);
		if (!config_load_mem(cfg, "main.cf", buf_cstr(&out), out.len, &err, NULL))
			__builtin_trap();
		if (config_raw(cfg, name) == NULL || strcmp(config_raw(cfg, name), value) != 0)
			__builtin_trap();
		config_free(&cfg);
		buf_free(&out);
	}
	buf_free(&err);
	buf_free(&warn);
	return 0;
}
