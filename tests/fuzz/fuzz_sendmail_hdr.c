/* Fuzz the sendmail -t path: stdin filter, header section bounds, To/Cc/Bcc extraction with Bcc removal, and the
 * SMTP encoding. Invariants: the filter never adds bytes, the kept header text never grows, no recipient is empty
 * or holds a line break, and the encoded text has no lone "." line before its terminator. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../cli/sendmail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sendmail_filter f;
	struct sendmail_headers h;
	struct buf text = BUF_INIT(1 << 20), kept = BUF_INIT(BUF_NOLIMIT), enc = BUF_INIT(BUF_NOLIMIT);
	size_t end;
	bool blank, bol = true;

	if (size == 0)
		return 0;
	sendmail_filter_init(&f, data[0] & 1);
	/* feed in two pieces so state carried across calls is exercised */
	size_t cut = size > 2 ? data[1] % size : 0;
	sendmail_filter(&f, (const char *)data + 1, cut ? cut - 1 : 0, &text);
	sendmail_filter(&f, (const char *)data + (cut ? cut : 1), size - (cut ? cut : 1), &text);
	sendmail_filter_end(&f, &text);
	/* the filter only removes bytes (CRs of line ends, the lone dot and what follows it) */
	if (text.len > size)
		__builtin_trap();
	end = sendmail_header_end(buf_cstr(&text), text.len, true, &blank);
	if (end > text.len)
		__builtin_trap();
	sendmail_headers_scan(buf_cstr(&text), end, true, &h, &kept);
	if (kept.len > end)
		__builtin_trap();
	for (size_t i = 0; i < h.nrcpts; i++)
		if (h.rcpts[i][0] == '\0' || strpbrk(h.rcpts[i], "\r\n"))
			__builtin_trap();
	sendmail_smtp_encode(&bol, buf_cstr(&text), text.len, &enc);
	sendmail_smtp_encode_end(&bol, &enc);
	if (enc.len < 3 || memcmp(enc.data + enc.len - 3, ".\r\n", 3) != 0)
		__builtin_trap();
	/* the only lone-dot line is the terminator */
	for (size_t i = 0; i + 3 < enc.len; i++)
		if ((i == 0 || enc.data[i - 1] == '\n') && memcmp(enc.data + i, ".\r\n", 3) == 0)
			__builtin_trap();
	sendmail_headers_free(&h);
	buf_free(&text);
	buf_free(&kept);
	buf_free(&enc);
	return 0;
}
