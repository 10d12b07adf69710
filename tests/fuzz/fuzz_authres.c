/* Fuzz the Authentication-Results readers on arriving header blocks: finding the headers that claim our
 * authserv-id and reading an enforced DMARC quarantine from the first one. Never crash; every range found lies
 * inside the input; a quarantine verdict needs our header first. */
#include <stddef.h>
#include <stdint.h>

#include "authres.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *h = (const char *)data;
	struct authres_range r[4];
	size_t n = authres_find_ours(h, size, "mx.example.net", r, 4);

	for (size_t i = 0; i < n && i < 4; i++)
		if (r[i].off > size || r[i].len > size - r[i].off)
			__builtin_trap();
	if (authres_dmarc_quarantined(h, size, "mx.example.net") && (n == 0 || r[0].off != 0))
		__builtin_trap();
	return 0;
}
