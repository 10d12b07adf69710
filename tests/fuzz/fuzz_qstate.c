/* Fuzz the qmgr state record decoder and key parser: never crash, and what decodes re-encodes to the same
 * bytes (the codec is canonical, so a record cannot mean two things). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "qstate.h"
#include "buf.h"
#include "qfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qstate_rcpt r;
	struct buf err = BUF_INIT(4096), out = BUF_INIT(BUF_NOLIMIT);

	if (qstate_decode(data, size, &r, &err)) {
		qstate_encode(&r, &out);
		if (out.len != size || memcmp(out.data, data, size) != 0)
			__builtin_trap();
		qstate_rcpt_free(&r);
	} else if (r.addr || r.text) {
		__builtin_trap();
	}
	char id[QFILE_ID_MAX];
	uint32_t idx;
	if (qstate_key_parse(data, size, id, sizeof(id), &idx)) {
		buf_reset(&out);
		if (!qstate_key(id, idx, &out) || out.len != size || memcmp(out.data, data, size) != 0)
			__builtin_trap();
	}
	buf_free(&err);
	buf_free(&out);
	return 0;
}
