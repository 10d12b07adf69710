/* Fuzz modified UTF-7: a decodable input re-encodes to exactly itself (one canonical spelling per name), and any
 * encodable input decodes back to itself. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "utf7imap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct buf d = BUF_INIT(4096), e = BUF_INIT(BUF_NOLIMIT);

	if (utf7imap_decode(in, size, &d)) {
		if (!utf7imap_encode(buf_cstr(&d), d.len, &e))
			__builtin_trap();
		if (e.len != size || (size && memcmp(e.data, in, size) != 0))
			__builtin_trap();
	}
	buf_reset(&d);
	buf_reset(&e);
	if (utf7imap_encode(in, size, &e)) {
		for (size_t i = 0; i < e.len; i++)
			if (e.data[i] < 0x20 || e.data[i] > 0x7e)
				__builtin_trap();
		struct buf back = BUF_INIT(BUF_NOLIMIT);
		if (!utf7imap_decode(buf_cstr(&e), e.len, &back))
			__builtin_trap();
		if (back.len != size || (size && memcmp(back.data, in, size) != 0))
			__builtin_trap();
		buf_free(&back);
	}
	buf_free(&d);
	buf_free(&e);
	return 0;
}
