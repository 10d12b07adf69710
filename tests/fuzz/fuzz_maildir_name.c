/* Fuzz Maildir file-name and folder-name parsing: names come from the disk, which other tools also write. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "maildir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	struct maildir_name mn;
	struct buf p = BUF_INIT(4096);

	memcpy(s, data, size);
	s[size] = '\0';
	if (maildir_name_parse(s, &mn) && mn.baselen > strlen(s))
		__builtin_trap();
	if (maildir_folder_path("/root", s, &p) && strstr(buf_cstr(&p), "/.."))
		__builtin_trap();
	buf_free(&p);
	free(s);
	return 0;
}
