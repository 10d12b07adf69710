/* Fuzz the address parsers: envelope paths and MAIL/RCPT arguments (strict, with and without UTF-8 and the
 * lenient flags) and header lists (lenient). The first byte picks the parser and flags. Besides memory safety,
 * checks that a canonical form parses back to itself, so canon is always a valid, stable envelope address. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "alloc.h"
#include "buf.h"
#include "str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_addr(const struct addr *a, unsigned flags)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	struct addr again;

	if (a->local == NULL || a->domain == NULL || a->canon == NULL)
		__builtin_trap();
	if (strlen(a->local) != a->local_len || strlen(a->domain) != a->domain_len)
		__builtin_trap();	/* no NUL inside a parsed address */
	if (a->utf8 && !(flags & ADDR_F_SMTPUTF8))
		__builtin_trap();
	/* RFC 5321 limits the local part as written, quotes and backslashes included: a decoded local part of 63
	 * octets may need 65 once quoted. IPv6 canon may grow a little; header local parts may be longer than SMTP
	 * allows. */
	const char *at = strrchr(a->canon, '@');
	size_t wire_local = at && a->domain_len ? (size_t)(at - a->canon) : strlen(a->canon);
	if (a->null || wire_local > ADDR_LOCAL_MAX || strlen(a->canon) > 240)
		return;
	if (a->domain_len == 0) {
		if (!str_eq_ci(a->local, "postmaster"))
			return;	/* a domainless header address ("root") is no envelope path */
		flags |= ADDR_F_POSTMASTER;
	}
	buf_putc(&b, '<');
	buf_puts(&b, a->canon);
	buf_putc(&b, '>');
	if (addr_parse_path(b.data, b.len, flags, &again) != ADDR_OK)
		__builtin_trap();
	if (strcmp(again.canon, a->canon) != 0 || !addr_eq(a, &again, true))
		__builtin_trap();
	addr_free(&again);
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned sel = data[0];
	unsigned flags = (sel >> 2) & (ADDR_F_SMTPUTF8 | ADDR_F_UNBRACKETED | ADDR_F_POSTMASTER | ADDR_F_SKIP_BAD |
	                               ADDR_F_EMPTY_GROUPS | ADDR_F_COMMENT_NAMES);
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	struct addr a;
	size_t off;

	/* the parsers must never read past n: hand them an exact-size heap copy so ASan sees any overrun */
	char *copy = xmalloc(n ? n : 1);
	memcpy(copy, s, n);
	switch (sel & 3) {
	case 0:
		if (addr_parse_path(copy, n, flags, &a) == ADDR_OK) {
			check_addr(&a, flags);
			addr_free(&a);
		} else if (a.local || a.domain || a.canon) {
			__builtin_trap();
		}
		break;
	case 1:
	case 2:
		if (addr_parse_cmd(copy, n, (sel & 3) == 1 ? "FROM" : "TO", flags, &a, &off) == ADDR_OK) {
			if (off > n)
				__builtin_trap();
			check_addr(&a, flags);
			addr_free(&a);
		}
		break;
	default: {
		struct addr_list l = ADDR_LIST_INIT;
		enum addr_err e = addr_parse_header(copy, n, flags, &l, &off);
		if (e != ADDR_OK && off > n)
			__builtin_trap();
		for (size_t i = 0; i < l.n; i++) {
			if (l.v[i].empty_group) {
				if (!(flags & ADDR_F_EMPTY_GROUPS) || l.v[i].group == NULL || l.v[i].a.canon[0] != '\0')
					__builtin_trap();
				continue;
			}
			if (l.v[i].nodomain != (l.v[i].a.domain_len == 0))
				__builtin_trap();
			if (l.v[i].route && l.v[i].route[0] != '@')
				__builtin_trap();
			if (l.v[i].display && !(flags & ADDR_F_COMMENT_NAMES) && !l.v[i].display[0])
				__builtin_trap();
			check_addr(&l.v[i].a, flags & ADDR_F_SMTPUTF8);
		}
		addr_list_free(&l);
		break;
	}
	}
	free(copy);
	(void)addr_utf8_valid(data, size);
	return 0;
}
