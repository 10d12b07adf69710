/* Fuzz the imapd command parser: any bytes, fed whole and in pieces chosen by the first input byte, must give the
 * same sequence of results (byte-at-a-time equivalence) with small limits, and never overrun. Also runs sequence
 * set parsing, LIST matching, FETCH item and SEARCH key parsing on the parsed arguments. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "../../imapd/fetchargs.h"
#include "../../imapd/listmatch.h"
#include "../../imapd/searchargs.h"
#include "../../imapd/parser.h"
#include "../../imapd/seqset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct imap_arg *a, size_t n, struct buf *o, unsigned depth)
{
	for (size_t i = 0; i < n; i++) {
		buf_printf(o, "%d:%zu,", (int)a[i].type, a[i].len);
		if (a[i].type == IMAP_ARG_LIST) {
			if (depth > 8)
				__builtin_trap();
			walk(a[i].list, a[i].count, o, depth + 1);
			continue;
		}
		if (a[i].str[a[i].len] != '\0')
			__builtin_trap();
		buf_append(o, a[i].str, a[i].len);
		if (a[i].type == IMAP_ARG_ATOM) {
			struct imap_seqset set = { 0 };
			if (imap_seqset_parse(a[i].str, &set, 64)) {
				imap_seqset_resolve(&set, 1000);
				for (size_t k = 1; k < set.count; k++)
					if (set.r[k].lo <= set.r[k - 1].hi)
						__builtin_trap();
			}
			imap_seqset_free(&set);
			if (a[i].len < 64)
				(void)imap_list_match(a[i].str, "INBOX/a/b%c", '/');
		}
	}
}

static void run(const uint8_t *d, size_t len, size_t step, struct buf *out)
{
	struct imap_parser_limits lim = { .max_line = 200, .max_literal = 300, .max_depth = 8, .max_args = 50 };
	struct imap_parser *p = imap_parser_new(&lim);
	size_t off = 0;

	while (off < len) {
		size_t n = step && len - off > step ? step : len - off, used;
		enum imap_parse_result r = imap_parser_feed(p, d + off, n, &used);
		if (used > n)
			__builtin_trap();
		off += used;
		if (r == IMAP_PARSE_MORE) {
			if (used != n)
				__builtin_trap();
			continue;
		}
		buf_printf(out, "[%d]", (int)r);
		if (r == IMAP_PARSE_CONT)
			continue;
		if (r == IMAP_PARSE_FATAL)
			break;
		if (r == IMAP_PARSE_DONE) {
			size_t count;
			const struct imap_arg *args = imap_parser_args(p, &count);
			buf_printf(out, "%s %s ", imap_parser_tag(p), imap_parser_command(p));
			walk(args, count, out, 0);
			if (count >= 2) {
				struct imap_fetch f;
				struct buf err = BUF_INIT(1024);
				if (imap_fetch_parse(&args[1], &f, &err))
					buf_printf(out, "F%zu", f.count);
				imap_fetch_free(&f);
				buf_free(&err);
			}
			struct imap_search srch;
			struct buf serr = BUF_INIT(1024);
			bool badcs;
			if (imap_search_parse(args, count, &srch, &serr, &badcs)) {
				struct imap_search_msg m = { .seq = 2, .uid = 7, .size = 100, .internal_ymd = 20240101 };
				imap_search_resolve(&srch, 5, 9);
				buf_printf(out, "S%d", (int)imap_search_match(&srch, &m));
			}
			imap_search_free(&srch);
			buf_free(&serr);
		} else {
			buf_puts(out, imap_parser_error(p));
		}
		imap_parser_reset(p);
	}
	imap_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = data[0] % 7 + 1;
	struct buf a = BUF_INIT(BUF_NOLIMIT), b = BUF_INIT(BUF_NOLIMIT);

	run(data + 1, size - 1, 0, &a);
	run(data + 1, size - 1, step, &b);
	if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
		__builtin_trap();
	buf_free(&a);
	buf_free(&b);
	return 0;
}
