/* Fuzz the SASL parsers. First byte picks the mode, the rest is split at '\n' into client responses:
 *   0: base64 decode (round trip: what decodes re-encodes to the same text)
 *   1: PLAIN parse of raw bytes
 *   2/3: a PLAIN/LOGIN exchange fed line by line (first line is the initial response, "-" for none). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exchange(const char *mech, const char *p, size_t n)
{
	struct sasl_session s;
	struct buf ch = BUF_INIT(1024), err = BUF_INIT(4096);
	bool first = true;

	sasl_start(&s, sasl_mech_find(mech));
	while (n > 0 || first) {
		const char *nl = memchr(p, '\n', n);
		size_t len = nl ? (size_t)(nl - p) : n;
		enum sasl_status st;
		if (first && len == 1 && p[0] == '-')
			st = sasl_step(&s, NULL, 0, &ch, &err);
		else
			st = sasl_step(&s, p, len, &ch, &err);
		first = false;
		if (st == SASL_DONE) {
			if (s.creds.authcid[0] == '\0' || s.creds.passwd[0] == '\0')
				__builtin_trap();
		}
		if (st != SASL_CONTINUE)
			break;
		if (nl == NULL)
			break;
		n -= len + 1;
		p = nl + 1;
	}
	sasl_clear(&s);
	buf_free(&ch);
	buf_free(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;

	switch (data[0] % 4) {
	case 0: {
		struct buf out = BUF_INIT(SASL_RESPONSE_MAX), again = BUF_INIT(BUF_NOLIMIT);
		if (sasl_base64_decode(p, n, &out)) {
			if (!sasl_base64_encode(out.data, out.len, &again) || again.len != n ||
			    (n && memcmp(again.data, p, n) != 0))
				__builtin_trap();
		} else if (out.len != 0) {
			__builtin_trap();
		}
		buf_free(&out);
		buf_free(&again);
		break;
	}
	case 1: {
		struct sasl_creds c;
		struct buf err = BUF_INIT(4096);
		if (sasl_plain_parse(p, n, &c, &err) && (c.authcid[0] == '\0' || c.passwd[0] == '\0'))
			__builtin_trap();
		buf_free(&err);
		break;
	}
	case 2:
		exchange("PLAIN", p, n);
		break;
	default:
		exchange("LOGIN", p, n);
		break;
	}
	return 0;
}
