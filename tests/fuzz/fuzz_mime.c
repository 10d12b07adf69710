/* Fuzz the MIME tree parser and everything built on it: BODYSTRUCTURE, BODY, ENVELOPE of every message node,
 * every section of every part, 7-bit conversion. Besides memory safety, checks the tree's offsets stay inside
 * the input, the IMAP strings are well formed (balanced parentheses outside strings and literals), 7-bit
 * conversion keeps the structure, and a DSN carrying the input keeps its own. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "imap_body.h"
#include "mime.h"
#include "mime_dsn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parentheses balance outside quoted strings and literals, and quoted strings hold no CR, LF or 8-bit bytes. */
static void check_imap(const struct buf *b)
{
	const char *s = b->data ? b->data : "";
	size_t n = b->len;
	long depth = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '"') {
			for (i++; i < n && s[i] != '"'; i++) {
				if (s[i] == '\\')
					i++;
				else if (s[i] == '\r' || s[i] == '\n' || (unsigned char)s[i] >= 0x80 || s[i] == 0)
					__builtin_trap();
			}
			if (i >= n)
				__builtin_trap();
		} else if (c == '{') {
			size_t len = 0;
			for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
				len = len * 10 + (size_t)(s[i] - '0');
			if (i + 2 >= n + 1 || s[i] != '}' || s[i + 1] != '\r' || s[i + 2] != '\n')
				__builtin_trap();
			i += 2 + len;
			if (i >= n)
				__builtin_trap();
		} else if (c == '(') {
			depth++;
		} else if (c == ')') {
			if (--depth < 0)
				__builtin_trap();
		}
	}
	if (depth != 0)
		__builtin_trap();
}

static void walk(const struct mime_message *m, const struct mime_part *p, unsigned *path, size_t depth)
{
	for (unsigned k = 1; p; p = p->next, k++) {
		if (p->hdr_off + p->hdr_size != p->body_off || p->body_off > m->len || p->body_size > m->len - p->body_off)
			__builtin_trap();
		if (p->hdr_size_crlf < p->hdr_size || p->body_size_crlf < p->body_size ||
		    p->body_lines > p->body_size || p->depth > MIME_MAX_DEPTH)
			__builtin_trap();
		/* children stay inside their parent's body */
		if (p->parent && (p->hdr_off < p->parent->body_off ||
		                  p->body_off + p->body_size > p->parent->body_off + p->parent->body_size))
			__builtin_trap();
		if (p->flags & MIME_PART_MESSAGE) {
			struct mime_header h = MIME_HEADER_INIT;
			struct buf b = BUF_INIT(BUF_NOLIMIT);
			mime_part_header(m, p->children, &h);
			if (!imap_envelope(&h, &b))
				__builtin_trap();
			buf_free(&b);
			mime_header_free(&h);
		}
		if (depth < 6) {
			path[depth] = k;
			/* build "a.b.c" and fetch it with every suffix */
			static const char *const suffix[] = { "", ".MIME", ".HEADER", ".TEXT", ".HEADER.FIELDS (Subject)",
			                                      ".HEADER.FIELDS.NOT (Content-Type X)" };
			for (size_t s = 0; s < sizeof(suffix) / sizeof(suffix[0]); s++) {
				char text[128];
				int tl = 0;
				for (size_t i = 0; i <= depth; i++)
					tl += snprintf(text + tl, sizeof(text) - (size_t)tl, "%s%u", i ? "." : "", path[i]);
				snprintf(text + tl, sizeof(text) - (size_t)tl, "%s", suffix[s]);
				struct imap_section sec;
				if (!imap_section_parse(text, strlen(text), &sec))
					__builtin_trap();
				struct imap_section_data d;
				if (imap_section_fetch(m, &sec, &d) && !d.built && (d.off > m->len || d.len > m->len - d.off))
					__builtin_trap();
				imap_section_data_free(&d);
				imap_section_free(&sec);
			}
		}
		walk(m, p->children, path, depth + 1 < 6 ? depth + 1 : 6);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data;
	struct mime_message m;
	mime_message_parse(&m, msg, size);
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	if (!imap_bodystructure(&m, true, &b))
		__builtin_trap();
	check_imap(&b);
	buf_reset(&b);
	if (!imap_bodystructure(&m, false, &b))
		__builtin_trap();
	check_imap(&b);
	buf_reset(&b);
	struct mime_header h = MIME_HEADER_INIT;
	mime_part_header(&m, m.root, &h);
	if (!imap_envelope(&h, &b))
		__builtin_trap();
	check_imap(&b);
	mime_header_free(&h);
	unsigned path[8];
	walk(&m, m.root, path, 0);

	/* 7-bit conversion keeps the structure */
	buf_reset(&b);
	bool changed;
	if (!mime_7bit_convert(msg, size, &b, &changed))
		__builtin_trap();
	if (!changed && (b.len != size || (size && memcmp(b.data, msg, size) != 0)))
		__builtin_trap();
	if (changed && m.nparts < MIME_MAX_PARTS / 2) {
		struct mime_message m2;
		mime_message_parse(&m2, b.data, b.len);
		if (m2.nparts != m.nparts)
			__builtin_trap();
		mime_message_free(&m2);
	}
	/* a DSN returning this message keeps its three parts whatever the message holds */
	buf_reset(&b);
	struct mime_dsn_rcpt r = { .final_rcpt = "u@example.org", .action = MIME_DSN_FAILED, .status = "5.1.1",
	                           .diagnostic = "550 no" };
	struct mime_dsn d = { "mx.example.org", "MAILER-DAEMON@mx.example.org", "s@example.com", NULL, "QID", NULL,
	                      0, 1795444970, &r, 1, size & 1, 0, msg, size };
	if (!mime_dsn_build(&d, &b, NULL))
		__builtin_trap();
	struct mime_message m3;
	mime_message_parse(&m3, b.data, b.len);
	if (m3.root->nchildren != 3 || (m3.root->flags & MIME_PART_NO_END))
		__builtin_trap();
	const struct mime_part *p3 = m3.root->children->next->next;
	/* the builder may add a line end; a message without a blank line then reads the one before the closing
	 * boundary as the end of its header */
	if (p3->body_size > size + 2)
		__builtin_trap();
	if ((size & 1) && (p3->body_size < size || memcmp(b.data + p3->body_off, msg, size) != 0))
		__builtin_trap();
	mime_message_free(&m3);
	buf_free(&b);
	mime_message_free(&m);
	return 0;
}
