/* Fuzz json_put_strn: any bytes give one well-formed JSON string: quoted, no raw control bytes, no lone
 * backslash, every escape known, and valid UTF-8 throughout (checked with a strict decoder of our own). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	json_put_strn(&b, (const char *)data, size);
	const unsigned char *p = (const unsigned char *)b.data;
	if (b.len < 2 || p[0] != '"' || p[b.len - 1] != '"')
		__builtin_trap();
	for (size_t i = 1; i < b.len - 1; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '"')
			__builtin_trap();
		if (p[i] == '\\') {
			i++;
			if (i >= b.len - 1 || !strchr("\"\\nrtu", p[i]))
				__builtin_trap();
			if (p[i] == 'u') {
				for (int k = 1; k <= 4; k++)
					if (i + (size_t)k >= b.len - 1 || !strchr("0123456789abcdef", p[i + (size_t)k]))
						__builtin_trap();
				i += 4;
			}
		} else if (p[i] >= 0x80) {
			size_t len = p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : p[i] >= 0xc2 ? 2 : 0;
			if (len == 0 || i + len > b.len - 1)
				__builtin_trap();
			for (size_t k = 1; k < len; k++)
				if ((p[i + k] & 0xc0) != 0x80)
					__builtin_trap();
			i += len - 1;
		}
	}
	buf_free(&b);
	return 0;
}
