/* Fuzz ESMTP parameter parsing, the MAIL/RCPT value checkers and xtext. The first byte picks flags. Checks
 * that xtext decode/encode round-trip and that encoded output is always valid xtext. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "esmtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void xtext_roundtrip(const char *s, size_t n)
{
	struct buf dec = BUF_INIT(BUF_NOLIMIT), enc = BUF_INIT(BUF_NOLIMIT), dec2 = BUF_INIT(BUF_NOLIMIT);

	if (esmtp_xtext_decode(s, n, &dec) != esmtp_xtext_valid(s, n))
		__builtin_trap();
	if (dec.data != NULL) {
		if (!esmtp_xtext_encode(dec.data, dec.len, &enc) || !esmtp_xtext_valid(enc.data, enc.len))
			__builtin_trap();
		if (!esmtp_xtext_decode(enc.data, enc.len, &dec2) || dec2.len != dec.len ||
		    memcmp(dec2.data, dec.data, dec.len) != 0)
			__builtin_trap();
	}
	/* raw bytes: encoding is total and decodes back unless a NUL is present */
	buf_reset(&enc);
	buf_reset(&dec2);
	if (!esmtp_xtext_encode(s, n, &enc) || !esmtp_xtext_valid(enc.data, enc.len) != (memchr(s, 0, n) != NULL))
		__builtin_trap();
	if (memchr(s, 0, n) == NULL &&
	    (!esmtp_xtext_decode(enc.data, enc.len, &dec2) || dec2.len != n || memcmp(dec2.data, s, n) != 0))
		__builtin_trap();
	buf_free(&dec);
	buf_free(&enc);
	buf_free(&dec2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned flags = data[0] & ESMTP_F_UTF8;
	size_t n = size - 1;
	char *s = xmalloc(n ? n : 1);
	memcpy(s, data + 1, n);
	struct esmtp_params p;
	size_t off = 0;

	if (esmtp_parse(s, n, flags, &p, &off) == ESMTP_OK) {
		struct esmtp_mail m;
		struct esmtp_rcpt r;
		const struct esmtp_param *bad;
		if (p.n > ESMTP_MAX_PARAMS)
			__builtin_trap();
		for (size_t i = 0; i < p.n; i++) {
			if (p.v[i].keyword[0] == '\0' || (p.v[i].value && p.v[i].value[0] == '\0'))
				__builtin_trap();
			if (esmtp_find(&p, p.v[i].keyword) != &p.v[i])
				__builtin_trap();	/* duplicates were refused */
		}
		if (esmtp_mail_params(&p, &m, &bad) == ESMTP_OK)
			esmtp_mail_free(&m);
		else if (bad == NULL || m.envid != NULL || m.auth != NULL)
			__builtin_trap();
		if (esmtp_rcpt_params(&p, &r, &bad) == ESMTP_OK)
			esmtp_rcpt_free(&r);
		else if (bad == NULL || r.orcpt_addr != NULL)
			__builtin_trap();
		esmtp_params_free(&p);
	} else if (p.n != 0 || off > n) {
		__builtin_trap();
	}
	xtext_roundtrip(s, n);
	free(s);
	return 0;
}
