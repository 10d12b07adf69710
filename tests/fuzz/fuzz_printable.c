/* Fuzz buf_append_printable/log_safe: any bytes, any cap, never overrun, always NUL-terminated. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf b = BUF_INIT(1024);
	size_t cap = size ? data[0] * 4u : 0;

	buf_append_printable(&b, data, size, cap);
	if (b.data && b.data[b.len] != '\0')
		__builtin_trap();
	for (size_t i = 0; i < b.len; i++)
		if ((unsigned char)b.data[i] < 0x20 || (unsigned char)b.data[i] >= 0x7f)
			__builtin_trap();
	buf_free(&b);
	(void)log_safe(data, size, cap);
	return 0;
}
