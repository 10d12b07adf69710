/* Fuzz the access-map action parser (smtpd/access.c): any value text gives a verdict, and a refusal is one
 * printable reply line starting with a 4xx/5xx code that matches the verdict. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "../../smtpd/smtpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	struct buf v = BUF_INIT(8192), reply = BUF_INIT(4096);

	if (!quiet) {
		log_init("fuzz");
		log_to_file("/dev/null");	/* unknown actions are logged as warnings */
		quiet = true;
	}
	if (size == 0 || !buf_append(&v, data + 1, size - 1)) {
		buf_free(&v);
		return 0;
	}
	/* values come out of the table NUL-terminated: cut at the first NUL as the table would */
	enum smtpd_access_stage st = (enum smtpd_access_stage)(data[0] % SMTPD_ACCESS_NSTAGES);
	enum smtpd_access_result r = smtpd_access_action(buf_cstr(&v), "subject@example.test", st, "fuzz", &reply);
	if (r == SMTPD_ACCESS_REJECT || r == SMTPD_ACCESS_DEFER) {
		const char *t = buf_cstr(&reply);
		if (reply.len < 4 || t[3] != ' ' || t[0] != (r == SMTPD_ACCESS_REJECT ? '5' : '4'))
			__builtin_trap();
		for (size_t i = 0; i < reply.len; i++)
			if ((unsigned char)t[i] < 0x20 || (unsigned char)t[i] >= 0x7f)
				__builtin_trap();
	} else if (reply.len != 0) {
		__builtin_trap();
	}
	buf_free(&v);
	buf_free(&reply);
	return 0;
}
