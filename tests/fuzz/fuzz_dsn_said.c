/* Fuzz the split of a delivery result ("host NAME[ADDR] said: REPLY (in reply to CMD command)", which carries a
 * remote server's text) into Remote-MTA and an smtp Diagnostic-Code, and the report built from the pieces: the
 * pieces must lie inside the input, and no control character may reach the report's header fields. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "mime_dsn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *text = xstrndup((const char *)data, size);
	char *mta = NULL, *reply = NULL;
	struct mime_dsn_rcpt r = { .final_rcpt = "u@example.org", .action = MIME_DSN_FAILED, .diagnostic = text };
	if (mime_dsn_split_said(text, &mta, &reply)) {
		if (!strstr(text, mta) || !strstr(text, reply) || !*reply)
			__builtin_trap();
		r.remote_mta = mta, r.diagnostic = reply, r.diag_type = "smtp", r.text = text;
	}
	struct mime_dsn d = { .reporting_mta = "mx.example.net", .from = "MAILER-DAEMON@mx.example.net",
		              .to = "a@example.com", .queue_id = "0ABC", .now = 1, .rcpts = &r, .nrcpts = 1 };
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	mime_dsn_build(&d, &out, NULL);
	for (size_t i = 0; i < out.len; i++)
		if (out.data[i] != '\n' && out.data[i] != '\t' && (unsigned char)out.data[i] < 32)
			__builtin_trap();
	buf_free(&out);
	free(mta);
	free(reply);
	free(text);
	return 0;
}
