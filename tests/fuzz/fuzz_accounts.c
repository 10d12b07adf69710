/* Fuzz the account record decoder: any bytes decode or fail cleanly; what decodes re-encodes to the same bytes.
 * The same bytes, as a string, go through address normalization: accepted names are lower case, keep their
 * length, and never hold '/' or a ".." that could climb out of the mail directory. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
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

	char *s = malloc(size + 1);
	struct buf norm = BUF_INIT(ACCOUNTS_ADDRESS_MAX), nerr = BUF_INIT(1024);
	memcpy(s, data, size);
	s[size] = '\0';
	if (accounts_normalize(s, &norm, &nerr)) {
		const char *at = strrchr(norm.data, '@');
		if (norm.len != strlen(s) || at == NULL || memchr(norm.data, '/', (size_t)(at - norm.data)) ||
		    strstr(norm.data, "..") || norm.data[0] == '.' || at[-1] == '.' || strchr(at + 1, '/'))
			__builtin_trap();
		for (size_t i = 0; i < norm.len; i++)
			if (norm.data[i] >= 'A' && norm.data[i] <= 'Z')
				__builtin_trap();
	} else if (nerr.len == 0) {
		__builtin_trap();
	}
	buf_free(&norm);
	buf_free(&nerr);
	free(s);
	return 0;
}
