/* postern config: show the effective main.cf parameters, or change one in place (atomically, keeping comments).
 *   postern config show [-c DIR] [--non-default] [NAME...]
 *   postern config set [-c DIR] NAME=VALUE...
 *   postern config params     every known parameter: NAME TAB DEFAULT TAB MEANING (builds postern.conf(5)) */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "alloc.h"
#include "buf.h"
#include "commands.h"
#include "config.h"
#include "log.h"

#define USAGE "show [-c DIR] [--non-default] [NAME...] | set [-c DIR] NAME=VALUE... | params"

static int usage(void)
{
	fprintf(stderr, "usage: postern config " USAGE "\n");
	return EX_USAGE;
}

/* Print a message block (one message per line) with a prefix on each line. */
static void print_lines(const char *prefix, const char *text)
{
	while (*text) {
		size_t n = strcspn(text, "\n");
		fprintf(stderr, "postern: %s%.*s\n", prefix, (int)n, text);
		text += n;
		if (*text == '\n')
			text++;
	}
}

struct show {
	bool non_default;
};

static void show_one(const char *name, const char *value, bool set, void *arg)
{
	const struct show *s = arg;
	if (!s->non_default || set)
		printf("%s = %s\n", name, value);
}

static int show(const char *dir, bool non_default, char **names, int nnames)
{
	struct config *cfg = config_new();
	struct buf err = BUF_INIT(BUF_NOLIMIT), warn = BUF_INIT(BUF_NOLIMIT);
	struct show s = { non_default };
	int rc = 0;

	if (!config_load_dir(cfg, dir, NULL, &err, &warn)) {
		print_lines("", buf_cstr(&err));
		rc = EX_CONFIG;
		goto out;
	}
	print_lines("warning: ", buf_cstr(&warn));
	if (nnames == 0) {
		/* report values that fail to expand, but still show everything (those raw) */
		if (!config_check(cfg, &err)) {
			print_lines("", buf_cstr(&err));
			rc = EX_CONFIG;
		}
		config_foreach(cfg, show_one, &s);
		goto out;
	}
	for (int i = 0; i < nnames; i++) {
		const char *v;
		if (config_param_find(names[i]) == NULL) {
			const char *raw = config_raw(cfg, names[i]);
			if (raw == NULL) {
				fprintf(stderr, "postern: unknown parameter %s\n", log_safe(names[i], strlen(names[i]), 100));
				rc = EX_USAGE;
				continue;
			}
			printf("%s = %s\n", names[i], raw);	/* set in main.cf though no program reads it */
			continue;
		}
		buf_reset(&err);
		if (!config_try_str(cfg, names[i], &v, &err)) {
			print_lines("", buf_cstr(&err));
			rc = EX_CONFIG;
			continue;
		}
		if (!non_default || config_origin(cfg, names[i]) != NULL)
			printf("%s = %s\n", names[i], v);
	}
out:
	buf_free(&err);
	buf_free(&warn);
	config_free(&cfg);
	return rc;
}

/* The main.cf to change: the one config show would read; a fresh instance's etc/ may not have one yet. */
static char *target_path(const char *dir)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	struct stat st;
	size_t base;

	buf_puts(&p, dir);
	if (p.len == 0 || p.data[p.len - 1] != '/')
		buf_putc(&p, '/');
	base = p.len;
	buf_puts(&p, "etc/main.cf");
	if (stat(p.data, &st) == 0)
		return buf_steal(&p, NULL);
	buf_truncate(&p, base);
	buf_puts(&p, "main.cf");
	if (stat(p.data, &st) == 0)
		return buf_steal(&p, NULL);
	buf_truncate(&p, base);
	buf_puts(&p, "etc");
	if (stat(p.data, &st) == 0 && S_ISDIR(st.st_mode)) {
		buf_puts(&p, "/main.cf");
		return buf_steal(&p, NULL);
	}
	buf_free(&p);
	return NULL;
}

static int set(const char *dir, char **args, int nargs)
{
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	char *path;
	int rc = 0;

	if (nargs == 0)
		return usage();
	/* check every argument before changing anything */
	for (int i = 0; i < nargs; i++) {
		const char *eq = strchr(args[i], '=');
		size_t nlen = eq ? (size_t)(eq - args[i]) : 0;
		if (eq == NULL || !config_name_valid(args[i], nlen)) {
			fprintf(stderr, "postern: config set: expected NAME=VALUE, got \"%s\"\n",
			        log_safe(args[i], strlen(args[i]), 100));
			return EX_USAGE;
		}
		char *name = xstrndup(args[i], nlen);
		bool known = config_param_find(name) != NULL;
		if (!known)
			fprintf(stderr, "postern: config set: unknown parameter %s (postern config show lists them all)\n",
			        name);
		free(name);
		if (!known)
			return EX_USAGE;
	}
	if ((path = target_path(dir)) == NULL) {
		fprintf(stderr, "postern: config set: %s has no main.cf and no etc/ directory (postern init creates "
		        "an instance)\n", dir);
		return EX_CONFIG;
	}
	for (int i = 0; i < nargs; i++) {
		const char *eq = strchr(args[i], '=');
		char *name = xstrndup(args[i], (size_t)(eq - args[i]));
		buf_reset(&err);
		if (!config_file_set(path, name, eq + 1, &err)) {
			fprintf(stderr, "postern: config set: %s\n", buf_cstr(&err));
			rc = EX_CANTCREAT;
			free(name);
			break;
		}
		free(name);
	}
	/* tell the administrator at once if the new value makes the file unusable */
	if (rc == 0) {
		struct config *cfg = config_new();
		buf_reset(&err);
		if (!config_load_file(cfg, path, &err, NULL) || !config_check(cfg, &err)) {
			print_lines("warning: ", buf_cstr(&err));
			rc = EX_CONFIG;
		}
		config_free(&cfg);
	}
	free(path);
	buf_free(&err);
	return rc;
}

int cmd_config(int argc, char **argv)
{
	const char *dir = NULL;
	bool non_default = false;
	char **rest;
	int nrest = 0;

	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "params") == 0) {
		if (argc != 2)
			return usage();
		for (const struct config_param *p = config_params; p->name; p++)
			printf("%s\t%s\t%s\n", p->name, p->def, p->doc);
		return 0;
	}
	rest = xcalloc((size_t)argc, sizeof(*rest));
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else if (strncmp(argv[i], "-c", 2) == 0 && argv[i][2] != '\0') {
			dir = argv[i] + 2;
		} else if (strcmp(argv[i], "--non-default") == 0 && strcmp(argv[1], "show") == 0) {
			non_default = true;
		} else if (strcmp(argv[i], "--") == 0) {
			while (++i < argc)
				rest[nrest++] = argv[i];
		} else if (argv[i][0] == '-') {
			free(rest);
			return usage();
		} else {
			rest[nrest++] = argv[i];
		}
	}
	int rc;
	dir = cli_instance_dir(dir);
	if (strcmp(argv[1], "show") == 0)
		rc = show(dir, non_default, rest, nrest);
	else if (strcmp(argv[1], "set") == 0)
		rc = set(dir, rest, nrest);
	else
		rc = usage();
	free(rest);
	return rc;
}
