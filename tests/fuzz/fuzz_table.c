/* Fuzz the map source parser (both syntaxes, chosen by the first byte): whatever the bytes, it either rejects them
 * with a "NAME:LINE: " message or delivers well-formed entries (non-empty lowercase key within the limit,
 * NUL-terminated, trimmed value). Parse-only: the compiler runs exactly this before writing LMDB. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *key, size_t keylen, const char *value, size_t vallen, unsigned line, void *arg)
{
	unsigned *last = arg;
	if (keylen == 0 || keylen > TABLE_KEY_MAX || key[keylen] != '\0' || strlen(key) != keylen)
		__builtin_trap();
	for (size_t i = 0; i < keylen; i++)
		if (key[i] >= 'A' && key[i] <= 'Z')
			__builtin_trap();
	if (vallen == 0 || value[vallen] != '\0' || strlen(value) != vallen)
		__builtin_trap();
	if (value[0] == ' ' || value[0] == '\t' || value[vallen - 1] == ' ' || value[vallen - 1] == '\t')
		__builtin_trap();
	if (line <= *last)	/* entries come in file order, each starting on a later line */
		__builtin_trap();
	*last = line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf err = BUF_INIT(4096);
	unsigned last = 0;
	enum table_syntax syn;

	if (size == 0)
		return 0;
	syn = (data[0] & 1) ? TABLE_ALIASES : TABLE_POSTMAP;
	if (!table_parse("fuzz", (const char *)data + 1, size - 1, syn, check, &last, &err)) {
		if (strncmp(buf_cstr(&err), "fuzz:", 5) != 0)
			__builtin_trap();
	}
	buf_free(&err);
	return 0;
}
