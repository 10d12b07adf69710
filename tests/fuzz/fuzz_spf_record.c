/* Fuzz the SPF record parser and the macro expander: first byte picks what the rest is (a record, or a
 * macro-string expanded for an IPv4 or IPv6 client, with or without exp letters). Never crash, expansions
 * stay within their buffer's cap, every parsed record can be cleared. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned mode = data[0] & 3;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	struct buf out = BUF_INIT(4096), err = BUF_INIT(512);

	if (mode == 0) {
		struct spf_record r;
		if (spf_record_parse(text, len, &r, &err)) {
			for (size_t i = 0; i < r.n; i++) {
				const struct spf_term *t = &r.terms[i];
				if (!t->modifier && (t->cidr4 > 32 || t->cidr6 > 128))
					__builtin_trap();
				if (t->spec && !spf_macro_valid(t->spec, strlen(t->spec), false))
					__builtin_trap();
			}
			spf_record_clear(&r);
		}
	} else {
		char *spec = xstrndup(text, len);
		struct spf_macro_ctx m = { "strong-bad@email.example.com", "email.example.com",
			                   mode == 1 ? "192.0.2.3" : "2001:db8::cb01", mode != 1, "helo.example",
			                   "validated.example", "rx.example", 1700000000 };
		bool exp = mode == 3;
		bool valid = spf_macro_valid(spec, strlen(spec), exp);
		bool ok = spf_macro_expand(spec, &m, exp, &out);
		if (ok && !valid)
			__builtin_trap();
		if (out.len > 4096)
			__builtin_trap();
		spf_domain_truncate(&out);
		if (out.len > 253)
			__builtin_trap();
		(void)spf_macro_uses_p(spec);
		free(spec);
	}
	buf_free(&out);
	buf_free(&err);
	return 0;
}
