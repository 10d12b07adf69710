/* Fuzz the transfer encodings and RFC 2047 words: decoders on arbitrary bytes in arbitrary chunks, and
 * encode-then-decode round trips that must give the input back. The first byte picks the case and the chunk
 * size. Decoded header text must always be valid UTF-8; dates must survive format-and-parse. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "alloc.h"
#include "buf.h"
#include "mime.h"
#include "mime_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const struct buf *b, const void *p, size_t n)
{
	return b->len == n && (n == 0 || memcmp(b->data, p, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned sel = data[0] % 10;
	size_t chunk = 1 + data[0] / 10;
	data++;
	size--;
	struct buf a = BUF_INIT(BUF_NOLIMIT), b = BUF_INIT(BUF_NOLIMIT);
	switch (sel) {
	case 0: {   /* base64 decode, chunked == one-shot */
		struct mime_b64_dec d;
		mime_b64_dec_init(&d);
		for (size_t i = 0; i < size; i += chunk)
			mime_b64_decode(&d, data + i, size - i < chunk ? size - i : chunk, &a);
		mime_b64_decode_all(data, size, &b);
		if (!same(&a, b.data, b.len))
			__builtin_trap();
		break;
	}
	case 1: {   /* base64 round trip */
		struct mime_b64_enc e;
		mime_b64_enc_init(&e, (int)chunk);
		for (size_t i = 0; i < size; i += chunk)
			mime_b64_encode(&e, data + i, size - i < chunk ? size - i : chunk, &a);
		mime_b64_enc_final(&e, &a);
		if (!mime_b64_decode_all(a.data, a.len, &b) || !same(&b, data, size))
			__builtin_trap();
		break;
	}
	case 2:
	case 3: {   /* quoted-printable round trip, binary and text mode */
		bool binary = sel == 2;
		struct mime_qp_enc e;
		mime_qp_enc_init(&e, binary);
		for (size_t i = 0; i < size; i += chunk)
			mime_qp_encode(&e, data + i, size - i < chunk ? size - i : chunk, &a);
		mime_qp_enc_final(&e, &a);
		for (size_t i = 0; i < a.len; i++) {
			unsigned char c = (unsigned char)a.data[i];
			if (c >= 0x80 || c == '\r' || (c < 32 && c != '\n' && c != '\t'))
				__builtin_trap();
		}
		struct mime_qp_dec d;
		mime_qp_dec_init(&d);
		for (size_t i = 0; i < a.len; i += chunk)
			mime_qp_decode(&d, a.data + i, a.len - i < chunk ? a.len - i : chunk, &b);
		mime_qp_dec_final(&d, &b);
		if (d.invalid)
			__builtin_trap();
		/* text mode writes CRLF as LF */
		struct buf want = BUF_INIT(BUF_NOLIMIT);
		for (size_t i = 0; i < size; i++)
			if (binary || !(data[i] == '\r' && i + 1 < size && data[i + 1] == '\n'))
				buf_putc(&want, data[i]);
		if (!same(&b, want.data, want.len))
			__builtin_trap();
		buf_free(&want);
		break;
	}
	case 4: {   /* quoted-printable decode, chunked == one-shot */
		struct mime_qp_dec d;
		mime_qp_dec_init(&d);
		for (size_t i = 0; i < size; i += chunk)
			mime_qp_decode(&d, data + i, size - i < chunk ? size - i : chunk, &a);
		mime_qp_dec_final(&d, &a);
		mime_qp_decode_all(data, size, &b);
		if (!same(&a, b.data, b.len))
			__builtin_trap();
		break;
	}
	case 5: {   /* RFC 2047 decoding gives valid UTF-8 */
		mime_words_decode((const char *)data, size, &a);
		if (!addr_utf8_valid(a.data ? a.data : "", a.len))
			__builtin_trap();
		break;
	}
	case 6: {   /* RFC 2047 round trip of UTF-8 text without line ends */
		if (!addr_utf8_valid(data, size) || memchr(data, '\r', size) || memchr(data, '\n', size) ||
		    memchr(data, 0, size))
			break;
		mime_words_encode((const char *)data, size, &a);
		mime_words_decode(a.data ? a.data : "", a.len, &b);
		if (!same(&b, data, size))
			__builtin_trap();
		break;
	}
	case 7: {   /* charset conversion gives valid UTF-8 */
		static const char *const cs[] = { "iso-8859-1", "windows-1252", "shift_jis", "koi8-r", "utf-8",
		                                  "us-ascii", "gb2312", "utf-16" };
		mime_charset_to_utf8(cs[chunk % 8], data, size, &a);
		if (!addr_utf8_valid(a.data ? a.data : "", a.len))
			__builtin_trap();
		break;
	}
	case 8: {   /* dates: what parses formats and parses back to the same instant and zone */
		time_t t, t2;
		int tz, tz2;
		if (!mime_date_parse((const char *)data, size, &t, &tz))
			break;
		if (tz <= -6000 || tz >= 6000)
			__builtin_trap();
		if (mime_date_format(t, tz, &a) && mime_date_parse(a.data, a.len, &t2, &tz2) && (t2 != t || tz2 != tz))
			__builtin_trap();
		break;
	}
	case 9: {   /* Content-Type parameters: names are tokens, decoded values valid UTF-8 */
		struct mime_ctype ct;
		mime_ctype_parse((const char *)data, size, chunk & 1, &ct);
		for (size_t i = 0; i < ct.nparams; i++) {
			if (!ct.params[i].name[0])
				__builtin_trap();
			char *name = xstrdup(ct.params[i].name);
			size_t nl = strlen(name);
			if (nl && name[nl - 1] == '*')
				name[nl - 1] = '\0';
			char *v = mime_ctype_param(&ct, name);
			if (!v || !addr_utf8_valid(v, strlen(v)))
				__builtin_trap();
			free(v);
			free(name);
		}
		mime_ctype_free(&ct);
		break;
	}
	}
	buf_free(&a);
	buf_free(&b);
	return 0;
}
