/* Fuzz the POP3 command parser: any line, never a crash or a read past the line; parsed arguments lie inside
 * the line and numbers are in range. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../pop3d/pop3_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1);
	struct pop3_cmd c;

	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	if (pop3_cmd_parse(line, size, &c) == POP3_PARSE_OK) {
		if (!c.def || c.nargs > 2)
			__builtin_trap();
		for (size_t i = 0; i < c.nargs; i++)
			if (c.arg[i] < line || c.arg[i] > line + size || strlen(c.arg[i]) > POP3_LINE_MAX)
				__builtin_trap();
		if ((c.def->args == POP3_ARGS_MSG || c.def->args == POP3_ARGS_MSG_NUM) && c.num[0] == 0)
			__builtin_trap();
	}
	free(line);
	return 0;
}
