/* Fuzz the master.cf parser: any bytes either parse into a table whose invariants hold or give one error line
 * naming the file. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "svctab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct svctab *tab = NULL;
	struct buf err = BUF_INIT(4096);

	if (svctab_parse((const char *)data, size, "f.cf", &tab, &err)) {
		for (size_t i = 0; i < tab->n; i++) {
			const struct svc_entry *e = &tab->entries[i];
			if (e->nlisten == 0 || e->nlisten > SVCTAB_MAX_LISTEN || e->maxproc == 0 ||
			    (e->resident && e->maxproc != 1) || strchr(e->command, '/') ||
			    svctab_find(tab, e->name, e->type) != e)
				__builtin_trap();
			for (size_t j = 0; j < e->nlisten; j++)
				if (e->type == SVC_INET ? (e->listen[j].port == 0 || e->listen[j].port > 65535)
				                        : strchr(svctab_public_name(&e->listen[j]) ? svctab_public_name(&e->listen[j])
				                                                                   : e->listen[j].name, '/') != NULL)
					__builtin_trap();
			for (size_t j = 0; j < e->noverrides; j++)
				if (strchr(e->overrides[j], '=') == NULL)
					__builtin_trap();
		}
		svctab_free(&tab);
	} else if (strncmp(buf_cstr(&err), "f.cf:", 5) != 0) {
		__builtin_trap();
	}
	buf_free(&err);
	return 0;
}
