/* Fuzz the maildirsize parser: the file lies in the Maildir, which its user (and other mail programs) can write. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maildirsize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size heap copy, so ASan sees any read past the end */
	char *s = malloc(size ? size : 1);
	uint64_t bytes, count;
	memcpy(s, data, size);
	if (maildirsize_parse(s, size, 4096, &bytes, &count) && (size > MAILDIRSIZE_RECALC_BYTES || size < 6))
		__builtin_trap();
	(void)maildirsize_parse(s, size, 0, &bytes, &count);
	free(s);
	return 0;
}
