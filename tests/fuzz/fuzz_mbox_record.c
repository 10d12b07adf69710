/* Fuzz the mailbox index record decoder: any bytes are refused or decoded into a plausible file name, and a
 * decoded record encodes back to the same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mbox_msg m;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	uint32_t uid;

	if (!mbox_record_decode(data, size, &m))
		return 0;
	if (m.name[0] == '\0' || m.name[0] == '.' || strchr(m.name, '/') || strlen(m.name) > MBOX_NAME_MAX)
		__builtin_trap();
	if (m.flags < m.name || m.flags > m.name + strlen(m.name))
		__builtin_trap();
	if (!mbox_record_encode(&m, &b) || b.len != size || memcmp(b.data, data, size) != 0)
		__builtin_trap();
	if (mbox_name_uid(m.name, &uid) && uid == 0)
		__builtin_trap();
	free(m.name);
	buf_free(&b);
	return 0;
}
