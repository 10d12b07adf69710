/* postern map: compile a text map into its .lmdb table, or look a key up (like postmap and postmap -q).
 *   postern map compile FILE [--aliases]   writes FILE.lmdb atomically
 *   postern map get FILE KEY               prints the value; exit 0 found, 1 not found, other on error */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "buf.h"
#include "commands.h"
#include "table.h"

static const struct cli_command map_cmd = { "map", cmd_map, "compile FILE [--aliases] | get FILE KEY" };

static int map_compile(int argc, char **argv)
{
	enum table_syntax syntax = TABLE_POSTMAP;
	const char *file = NULL;
	struct buf err = BUF_INIT(BUF_NOLIMIT), warn = BUF_INIT(BUF_NOLIMIT);
	size_t count = 0;
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--aliases") == 0)
			syntax = TABLE_ALIASES;
		else if (argv[i][0] == '-' || file)
			return cli_usage(&map_cmd);
		else
			file = argv[i];
	}
	if (!file)
		return cli_usage(&map_cmd);
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
	buf_free(&err);
	buf_free(&warn);
	return rc;
}

static int map_get(int argc, char **argv)
{
	struct buf err = BUF_INIT(BUF_NOLIMIT), value = BUF_INIT(BUF_NOLIMIT);
	struct table *t;
	int rc;

	if (argc != 3)
		return cli_usage(&map_cmd);
	if ((t = table_open(argv[1], &err)) == NULL) {
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
	if (argc >= 2 && strcmp(argv[1], "compile") == 0)
		return map_compile(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "get") == 0)
		return map_get(argc - 1, argv + 1);
	return cli_usage(&map_cmd);
}
