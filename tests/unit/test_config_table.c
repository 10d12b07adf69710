/* The real parameter table (common/params.c) and the shipped conf/main.cf: rows well formed and unique, every
 * default expands, and the commented-out parameters in main.cf are real ones that load cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"

static void test_rows(void **state)
{
	(void)state;
	for (const struct config_param *p = config_params; p->name; p++) {
		if (!config_name_valid(p->name, strlen(p->name)))
			fail_msg("bad parameter name %s", p->name);
		if (p->def == NULL || p->doc == NULL || p->doc[0] == '\0')
			fail_msg("%s: missing default or description", p->name);
		for (const struct config_param *q = config_params; q < p; q++)
			if (strcmp(p->name, q->name) == 0)
				fail_msg("%s is in the parameter table twice", p->name);
		assert_ptr_equal(config_param_find(p->name), p);
	}
	assert_null(config_param_find("no_such_parameter"));
}

static void test_defaults_expand(void **state)
{
	(void)state;
	struct config *cfg = config_new();
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	if (!config_check(cfg, &err))
		fail_msg("defaults do not expand: %s", buf_cstr(&err));
	buf_free(&err);
	config_free(&cfg);
}

static char *read_conf(size_t *len)
{
	static const char *const where[] = { "conf/main.cf", "../conf/main.cf", "../../conf/main.cf" };
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		struct buf b = BUF_INIT(CONFIG_FILE_MAX);
		char chunk[4096];
		ssize_t n;
		int fd = open(where[i], O_RDONLY);
		if (fd < 0)
			continue;
		while ((n = read(fd, chunk, sizeof(chunk))) > 0)
			assert_true(buf_append(&b, chunk, (size_t)n));
		close(fd);
		return buf_steal(&b, len);
	}
	return NULL;
}

static void test_shipped_main_cf(void **state)
{
	(void)state;
	size_t len;
	char *text = read_conf(&len);
	struct buf err = BUF_INIT(BUF_NOLIMIT), warn = BUF_INIT(BUF_NOLIMIT), on = BUF_INIT(BUF_NOLIMIT);
	struct config *cfg = config_new();
	int shown = 0;

	if (text == NULL)
		skip();	/* not run from the source tree */
	/* as shipped: loads, sets nothing */
	assert_true(config_load_mem(cfg, "main.cf", text, len, &err, &warn));
	assert_int_equal(warn.len, 0);
	config_free(&cfg);

	/* with every "#name = value" line switched on: only known names, and everything still expands */
	for (char *line = text; *line;) {
		char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
		size_t nlen = strspn(line + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
		if (line[0] == '#' && nlen > 0 && strncmp(line + 1 + nlen, " =", 2) == 0) {
			buf_append(&on, line + 1, n - 1);
			shown++;
		}
		line += n;
	}
	assert_true(shown >= 10);
	cfg = config_new();
	if (!config_load_mem(cfg, "main.cf", on.data, on.len, &err, &warn))
		fail_msg("%s", buf_cstr(&err));
	if (warn.len)
		fail_msg("conf/main.cf shows parameters that do not exist: %s", buf_cstr(&warn));
	if (!config_check(cfg, &err))
		fail_msg("%s", buf_cstr(&err));
	config_free(&cfg);
	buf_free(&err);
	buf_free(&warn);
	buf_free(&on);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_defaults_expand),
		cmocka_unit_test(test_shipped_main_cf),
	};
	return cmocka_run_group_tests_name("config_table", tests, NULL, NULL);
}
