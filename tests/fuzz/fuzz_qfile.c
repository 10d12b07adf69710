/* Fuzz the queue file parser: damaged queue files must be rejected cleanly, never crash or over-read. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "qfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qfile_envelope env;
	struct buf err = BUF_INIT(4096);

	if (qfile_parse(data, size, &env, &err)) {
		if (env.content_offset + env.content_len != size || env.nrcpts == 0 || env.sender == NULL)
			__builtin_trap();
		qfile_envelope_free(&env);
	}
	buf_free(&err);
	return 0;
}
