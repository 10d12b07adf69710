/* Fuzz the SMTP command parser: the argument must always lie inside the line. */
#include <stddef.h>
#include <stdint.h>

#include "../../smtpd/cmdtab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtpd_cmd c;
	const char *line = (const char *)data;

	if (smtpd_cmd_parse(line, size, &c) == SMTPD_PARSE_OK && c.arglen > 0 &&
	    (c.arg < line || c.arg + c.arglen > line + size))
		__builtin_trap();
	return 0;
}
