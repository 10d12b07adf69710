/* Fuzz the account record decoder: any bytes decode or fail cleanly; what decodes re-encodes to the same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "accounts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct accounts_user u;
	struct buf err = BUF_INIT(1024), again = BUF_INIT(BUF_NOLIMIT);

	if (accounts_record_decode(data, size, &u, &err)) {
		/* the format has one encoding per record */
		accounts_record_encode(&u, &again);
		if (again.len != size || memcmp(again.data, data, size) != 0)
			__builtin_trap();
		accounts_user_free(&u);
	} else if (err.len == 0) {
		__builtin_trap();
	}
	buf_free(&err);
	buf_free(&again);
	return 0;
}
