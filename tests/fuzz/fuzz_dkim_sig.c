/* Fuzz the DKIM parsing half: the first byte picks a tag list (signature or key record), header
 * canonicalisation, body canonicalisation (in odd-sized chunks, with an l= limit), or a whole message given
 * to the verifier with a key fetch that answers from the input itself. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "dkim.h"
#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *key_text;
static size_t key_len;

static int fetch(const char *name, struct buf *rec, void *arg)
{
	(void)name;
	(void)arg;
	buf_append(rec, key_text, key_len);
	return DNS_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	unsigned mode = data[0] & 3, param = data[1];
	const char *p = (const char *)data + 2;
	size_t len = size - 2;
	struct buf out = BUF_INIT(1 << 20), err = BUF_INIT(512);

	if (mode == 0) {
		struct dkim_taglist tl;
		if (dkim_taglist_parse(p, len, &tl, &err)) {
			for (size_t i = 0; i < tl.n; i++)
				if (tl.tags[i].name < p || tl.tags[i].value + tl.tags[i].vlen > p + len || tl.tags[i].nlen == 0)
					__builtin_trap();
			const struct dkim_tag *t = dkim_taglist_get(&tl, "p");
			if (t)
				(void)dkim_b64_decode(t->value, t->vlen, &out);
		}
	} else if (mode == 1) {
		(void)dkim_canon_header(param & 1 ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE, p, len, param & 2, &out);
	} else if (mode == 2) {
		unsigned char h1[32], h2[32];
		uint64_t t1, t2;
		enum dkim_canon c = param & 1 ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
		struct dkim_body *b = dkim_body_new(c, UINT64_MAX);
		size_t step = (param >> 1) + 1;
		for (size_t i = 0; i < len; i += step)
			dkim_body_update(b, p + i, len - i < step ? len - i : step);
		dkim_body_final(b, h1, &t1);
		dkim_body_free(&b);
		b = dkim_body_new(c, UINT64_MAX);
		dkim_body_update(b, p, len);
		dkim_body_final(b, h2, &t2);
		dkim_body_free(&b);
		/* chunking must not change the canonical form */
		if (memcmp(h1, h2, 32) != 0 || t1 != t2)
			__builtin_trap();
	} else {
		/* key record: the input up to the first NUL; message: the rest */
		const char *nul = memchr(p, '\0', len);
		key_text = p;
		key_len = nul ? (size_t)(nul - p) : 0;
		const char *msg = nul ? nul + 1 : p;
		size_t mlen = len - (size_t)(msg - p);
		size_t n;
		struct dkim_sig_result *r = dkim_verify(msg, mlen, fetch, NULL, 1700000000, 4, &n);
		if (n > 4)
			__builtin_trap();
		dkim_results_free(&r, n);
	}
	buf_free(&out);
	buf_free(&err);
	return 0;
}
