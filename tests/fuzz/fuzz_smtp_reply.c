/* Fuzz the smtp client's reply and EHLO parsers: the input is split into lines as a server would send them,
 * each fed to smtp_reply_feed(); complete replies go through smtp_caps_parse(). Also the next-hop parser,
 * since transport map values are table input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../smtp/nexthop.h"
#include "../../smtp/reply.h"
#include "alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply r;
	struct smtp_caps c;
	struct buf err = BUF_INIT(1024);
	smtp_reply_init(&r);
	smtp_caps_init(&c);
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		buf_reset(&err);
		int rc = smtp_reply_feed(&r, p, n > SMTP_REPLY_LINE_MAX ? SMTP_REPLY_LINE_MAX : n, &err);
		if (rc < 0) {
			smtp_reply_reset(&r);
		} else if (rc == 1) {
			if (r.code < 200 || r.code > 599 || r.text.len > SMTP_REPLY_TEXT_MAX || strlen(r.dsn) >= sizeof(r.dsn))
				__builtin_trap();
			smtp_caps_parse(&c, &r);
			struct buf fl = BUF_INIT(1024);
			smtp_reply_first_line(&r, &fl);
			buf_free(&fl);
		}
		p = nl ? nl + 1 : end;
	}
	smtp_caps_free(&c);
	smtp_reply_free(&r);

	char *spec = xstrndup((const char *)data, size);
	struct smtp_nexthop nh;
	buf_reset(&err);
	if (smtp_nexthop_parse(spec, &nh, &err))
		smtp_nexthop_free(&nh);
	free(spec);
	buf_free(&err);
	return 0;
}
