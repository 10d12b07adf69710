/* postern map: compile a text map into its .lmdb table, or look a key up (like postmap and postmap -q).
 *   postern map compile FILE [--aliases] [-c DIR]   writes FILE.lmdb atomically
 *   postern map get FILE KEY [-c DIR]               prints the value; exit 0 found, 1 not found, other on error
 * With -c DIR a bare FILE name (no '/') is the instance's: $config_directory/FILE, as main.cf names maps;
 * a path (absolute, or with a '/': ./virtual) is used as given, and so is every FILE without -c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "alloc.h"
#include "buf.h"
#include "commands.h"
#include "config.h"
#include "table.h"

static const struct cli_command map_cmd = { "map", cmd_map, "compile FILE [--aliases] | get FILE KEY   [-c DIR]" };

/* FILE as the user meant it (see above); NULL (reported) when the instance's configuration cannot be read. */
static char *map_path(const char *dir, const char *file)
{
	if (!dir || strchr(file, '/'))
		return xstrdup(file);
	struct config *cfg = config_new();
	struct buf err = BUF_INIT(BUF_NOLIMIT), warn = BUF_INIT(BUF_NOLIMIT), path = BUF_INIT(BUF_NOLIMIT);
	char *out = NULL;
	if (config_load_dir(cfg, dir, NULL, &err, &warn)) {
		buf_printf(&path, "%s/%s", config_str(cfg, "config_directory"), file);
		out = buf_steal(&path, NULL);
	} else {
		fprintf(stderr, "postern map: %s\n", buf_cstr(&err));
	}
	config_free(&cfg);
	buf_free(&err);
	buf_free(&warn);
	buf_free(&path);
	return out;
}

static int map_compile(int argc, char **argv, const char *dir)
{
	enum table_syntax syntax = TABLE_POSTMAP;
	const char *name = NULL;
	char *file;
	struct buf err = BUF_INIT(BUF_NOLIMIT), warn = BUF_INIT(BUF_NOLIMIT);
	size_t count = 0;
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--aliases") == 0)
			syntax = TABLE_ALIASES;
		else if (argv[i][0] == '-' || name)
			return cli_usage(&map_cmd);
		else
			name = argv[i];
	}
	if (!name)
		return cli_usage(&map_cmd);
	if ((file = map_path(dir, name)) == NULL)
		return EX_CONFIG;
	if (!table_compile(file, NULL, syntax, &count, &err, &warn)) {
		fprintf(stderr, "postern map: %s\n", buf_cstr(&err));
		rc = EX_DATAERR;
	}
	/* one warning per line, each naming FILE:LINE */
	for (const char *w = buf_cstr(&warn), *nl; *w; w = nl + 1) {
		if ((nl = strchr(w, '\n')) == NULL)
			nl = w + strlen(w) - 1;
		fprintf(stderr, "postern map: warning: %.*s\n", (int)(nl - w + (*nl != '\n')), w);
	}
	if (rc == 0)
		printf("%s.lmdb: %zu key%s\n", file, count, count == 1 ? "" : "s");
	free(file);
	buf_free(&err);
	buf_free(&warn);
	return rc;
}

static int map_get(int argc, char **argv, const char *dir)
{
	struct buf err = BUF_INIT(BUF_NOLIMIT), value = BUF_INIT(BUF_NOLIMIT);
	struct table *t;
	int rc;
	char *file;

	if (argc != 3 || argv[1][0] == '-')
		return cli_usage(&map_cmd);
	if ((file = map_path(dir, argv[1])) == NULL)
		return EX_CONFIG;
	t = table_open(file, &err);
	free(file);
	if (t == NULL) {
		fprintf(stderr, "postern map: %s\n", buf_cstr(&err));
		buf_free(&err);
		return EX_NOINPUT;
	}
	switch (table_lookup(t, argv[2], &value)) {
	case TABLE_FOUND:
		fwrite(value.data ? value.data : "", 1, value.len, stdout);
		putchar('\n');
		rc = 0;
		break;
	case TABLE_NOTFOUND:
		rc = 1;
		break;
	default:
		fprintf(stderr, "postern map: %s\n", table_error(t));
		rc = EX_TEMPFAIL;
		break;
	}
	table_close(&t);
	buf_free(&err);
	buf_free(&value);
	return rc;
}

int cmd_map(int argc, char **argv)
{
	const char *dir = NULL;
	char **args = xcalloc((size_t)argc + 1, sizeof(*args));
	int n = 0, rc;
	/* -c DIR may come anywhere, as with the other commands */
	for (int i = 0; i < argc; i++) {
		if (i > 0 && strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			dir = argv[++i];
		else
			args[n++] = argv[i];
	}
	if (n >= 2 && strcmp(args[1], "compile") == 0)
		rc = map_compile(n - 1, args + 1, dir);
	else if (n >= 2 && strcmp(args[1], "get") == 0)
		rc = map_get(n - 1, args + 1, dir);
	else
		rc = cli_usage(&map_cmd);
	free(args);
	return rc;
}
