/* mime tree, ENVELOPE, BODY/BODYSTRUCTURE and sections against the corpus in tests/data/mime: every NAME.eml has
 * NAME.bs (BODYSTRUCTURE), NAME.body (BODY) and NAME.env (ENVELOPE) holding the expected strings. Run with
 * MIME_REGEN=1 to rewrite the expectation files after a reviewed change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "imap_body.h"
#include "mime.h"

#define DATA "tests/data/mime/"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_append(&b, tmp, n);
	fclose(f);
	buf_putc(&b, '\0');
	b.len--;
	return buf_steal(&b, len);
}

static void check_file(const char *name, const char *ext, const struct buf *got)
{
	char path[512];
	snprintf(path, sizeof(path), DATA "%s.%s", name, ext);
	if (getenv("MIME_REGEN")) {
		FILE *f = fopen(path, "wb");
		assert_non_null(f);
		fwrite(buf_cstr(got), 1, got->len, f);
		fputc('\n', f);
		fclose(f);
		return;
	}
	size_t len;
	char *want = slurp(path, &len);
	if (!want)
		fail_msg("missing expectation %s", path);
	if (len > 0 && want[len - 1] == '\n')
		want[--len] = '\0';
	if (len != got->len || memcmp(want, buf_cstr(got), len) != 0)
		fail_msg("%s.%s differs:\n got: %s\nwant: %s", name, ext, buf_cstr(got), want);
	free(want);
}

static void test_corpus(void **state)
{
	(void)state;
	DIR *d = opendir(DATA);
	assert_non_null(d);
	struct dirent *de;
	int count = 0;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l < 5 || strcmp(de->d_name + l - 4, ".eml") != 0)
			continue;
		char name[256];
		snprintf(name, sizeof(name), "%.*s", (int)(l - 4), de->d_name);
		char path[512];
		snprintf(path, sizeof(path), DATA "%s", de->d_name);
		size_t len;
		char *msg = slurp(path, &len);
		assert_non_null(msg);
		struct mime_message m;
		mime_message_parse(&m, msg, len);
		struct buf b = BUF_INIT(BUF_NOLIMIT);
		assert_true(imap_bodystructure(&m, true, &b));
		check_file(name, "bs", &b);
		buf_reset(&b);
		assert_true(imap_bodystructure(&m, false, &b));
		check_file(name, "body", &b);
		buf_reset(&b);
		struct mime_header h = MIME_HEADER_INIT;
		mime_part_header(&m, m.root, &h);
		assert_true(imap_envelope(&h, &b));
		check_file(name, "env", &b);
		mime_header_free(&h);
		buf_free(&b);
		mime_message_free(&m);
		free(msg);
		count++;
	}
	closedir(d);
	assert_true(count >= 10);
}

/* Sizes, line counts and offsets by hand on a small message. */
static void test_offsets(void **state)
{
	(void)state;
	const char *msg = "Subject: s\n"
	                  "Content-Type: multipart/mixed; boundary=b\n"
	                  "\n"
	                  "pre\n"
	                  "--b\n"
	                  "\n"
	                  "one\n"
	                  "\n"
	                  "--b\n"
	                  "Content-Type: text/plain\n"
	                  "\n"
	                  "two\n"
	                  "--b--\n"
	                  "epi\n";
	struct mime_message m;
	mime_message_parse(&m, msg, strlen(msg));
	const struct mime_part *r = m.root;
	assert_int_equal(r->hdr_off, 0);
	assert_int_equal(r->hdr_size, 11 + 42 + 1);
	assert_int_equal(r->hdr_lines, 3);
	assert_int_equal(r->hdr_size_crlf, r->hdr_size + 3);
	assert_int_equal(r->body_off, r->hdr_size);
	assert_int_equal(r->body_size, strlen(msg) - r->hdr_size);
	assert_int_equal(r->nchildren, 2);
	assert_true(r->flags & MIME_PART_MULTIPART);
	assert_false(r->flags & MIME_PART_NO_END);
	const struct mime_part *c1 = r->children, *c2 = c1->next;
	/* part 1: empty header (just the blank line), body "one\n" (the LF before the boundary is the boundary's) */
	assert_int_equal(c1->hdr_size, 1);
	assert_int_equal(c1->body_size, 4);
	assert_memory_equal(msg + c1->body_off, "one\n", 4);
	assert_int_equal(c1->body_size_crlf, 5);
	assert_int_equal(c1->body_lines, 1);
	assert_true(mime_part_is(c1, "text", "plain"));
	assert_int_equal(c2->body_size, 3);
	assert_memory_equal(msg + c2->body_off, "two", 3);
	assert_int_equal(c2->body_lines, 0);
	assert_int_equal(mime_crlf_size("a\nb\r\nc\n", 7), 9);
	mime_message_free(&m);

	/* a close delimiter right before the enclosing boundary keeps its line end (Dovecot counts it so) */
	const char *closed = "Content-Type: multipart/mixed; boundary=o\n\n--o\n"
	                     "Content-Type: multipart/alternative; boundary=i\n\n--i\n\nx\n--i--\n--o--\n";
	mime_message_parse(&m, closed, strlen(closed));
	const struct mime_part *inner = m.root->children;
	assert_int_equal(inner->body_size, strlen("--i\n\nx\n--i--\n"));
	assert_int_equal(inner->body_lines, 4);
	assert_int_equal(inner->children->body_size, 1);   /* "x": its line end belongs to "--i--" */
	mime_message_free(&m);
}

static void test_depth_limit(void **state)
{
	(void)state;
	size_t len;
	char *msg = slurp(DATA "deep.eml", &len);
	assert_non_null(msg);
	struct mime_message m;
	mime_message_parse(&m, msg, len);
	const struct mime_part *p = m.root;
	unsigned depth = 0;
	while (p->children) {
		p = p->children;
		depth++;
	}
	assert_int_equal(depth, MIME_MAX_DEPTH);
	assert_true(p->flags & MIME_PART_TOO_DEEP);
	mime_message_free(&m);
	free(msg);
}

/* A million tiny parts: the part cap holds and the work stays linear. */
static void test_many_parts(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	buf_puts(&b, "Content-Type: multipart/mixed; boundary=x\n\n");
	for (int i = 0; i < 200000; i++)
		buf_puts(&b, "--x\n\n");
	struct mime_message m;
	mime_message_parse(&m, b.data, b.len);
	assert_true(m.nparts <= MIME_MAX_PARTS);
	assert_true(m.root->flags & MIME_PART_TOO_DEEP);
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	assert_true(imap_bodystructure(&m, true, &out));
	buf_free(&out);
	mime_message_free(&m);
	buf_free(&b);
}

static void fetch_str(const struct mime_message *m, const char *section, const char *want)
{
	struct imap_section sec;
	if (!imap_section_parse(section, strlen(section), &sec))
		fail_msg("section %s did not parse", section);
	struct imap_section_data d;
	bool ok = imap_section_fetch(m, &sec, &d);
	if (!want) {
		if (ok)
			fail_msg("section %s should not exist", section);
		imap_section_free(&sec);
		return;
	}
	if (!ok)
		fail_msg("section %s not found", section);
	struct buf got = BUF_INIT(BUF_NOLIMIT);
	if (d.built)
		buf_append(&got, d.data.data, d.data.len);
	else
		buf_append(&got, m->data + d.off, d.len);
	if (strcmp(buf_cstr(&got), want) != 0)
		fail_msg("BODY[%s]: got \"%s\", want \"%s\"", section, buf_cstr(&got), want);
	buf_free(&got);
	imap_section_data_free(&d);
	imap_section_free(&sec);
}

static void test_sections(void **state)
{
	(void)state;
	size_t len;
	char *msg = slurp(DATA "nested.eml", &len);
	struct mime_message m;
	mime_message_parse(&m, msg, len);
	fetch_str(&m, "1", "hi\n");
	fetch_str(&m, "1.MIME", "Content-Type: text/x-custom; charset=us-ascii; q=\"a\\\"b\"\n"
	                        "Content-Language: en, de\nContent-Location: http://example.com/x.txt\n"
	                        "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\nContent-Disposition: inline; foo=bar\n\n");
	fetch_str(&m, "2.HEADER.FIELDS (subject FROM)", "From: inner@domain.org\nSubject: inner\n\n");
	fetch_str(&m, "2.HEADER.FIELDS.NOT (Content-Type To Date)", "From: inner@domain.org\nSubject: inner\n\n");
	fetch_str(&m, "2.1", "<b>x</b>");
	fetch_str(&m, "2.2", "plain");
	fetch_str(&m, "2.2.MIME", "Content-Type: text/plain\nContent-Transfer-Encoding: ?bogus\n\n");
	fetch_str(&m, "2.TEXT", "--in1\nContent-Type: text/html\nContent-Transfer-Encoding: 8bit\n\n<b>x</b>\n"
	                        "--in1\nContent-Type: text/plain\nContent-Transfer-Encoding: ?bogus\n\nplain\n"
	                        "--in1--\nInner epilogue\n");
	fetch_str(&m, "HEADER.FIELDS (Date)", "Date: Sat, 24 Mar 2007 23:00:00 +0200\n\n");
	fetch_str(&m, "3", NULL);
	fetch_str(&m, "1.HEADER", NULL);   /* not a message/rfc822 part */
	fetch_str(&m, "2.3", NULL);
	fetch_str(&m, "1.1", NULL);
	struct imap_section sec;
	assert_true(imap_section_parse("", 0, &sec));
	struct imap_section_data d;
	assert_true(imap_section_fetch(&m, &sec, &d));
	assert_int_equal(d.off, 0);
	assert_int_equal(d.len, len);
	mime_message_free(&m);
	free(msg);

	/* a non-multipart message has one part: its body */
	const char *simple = "Subject: x\n\nbody\n";
	mime_message_parse(&m, simple, strlen(simple));
	fetch_str(&m, "1", "body\n");
	fetch_str(&m, "TEXT", "body\n");
	fetch_str(&m, "HEADER", "Subject: x\n\n");
	fetch_str(&m, "1.MIME", "Subject: x\n\n");
	fetch_str(&m, "2", NULL);
	mime_message_free(&m);
}

static void test_section_syntax(void **state)
{
	(void)state;
	static const char *const bad[] = { "0", "1.", ".1", "1..2", "MIME", "HEADER.FIELDS", "HEADER.FIELDS ()",
	                                   "HEADER.FIELDS (a:b)", "TEXTX", "1.2.FOO", "header.fields(From)",
	                                   "HEADER.FIELDS (From", "01", "99999999999" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct imap_section sec;
		if (imap_section_parse(bad[i], strlen(bad[i]), &sec))
			fail_msg("section \"%s\" accepted", bad[i]);
	}
	struct imap_section sec;
	assert_true(imap_section_parse("4.2.header.fields.not (X-A \"Y-B\")", 33, &sec));
	assert_int_equal(sec.npath, 2);
	assert_int_equal(sec.path[0], 4);
	assert_int_equal(sec.kind, IMAP_SECTION_HEADER_FIELDS_NOT);
	assert_int_equal(sec.nfields, 2);
	assert_string_equal(sec.fields[1], "Y-B");
	imap_section_free(&sec);
}

static void test_strings(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	imap_append_string(&b, "a\"b\\c", 5);
	assert_string_equal(buf_cstr(&b), "\"a\\\"b\\\\c\"");
	buf_reset(&b);
	imap_append_string(&b, "caf\xc3\xa9", 5);
	assert_string_equal(buf_cstr(&b), "{5}\r\ncaf\xc3\xa9");
	buf_reset(&b);
	imap_append_string(&b, "a\0b\nc", 5);
	assert_int_equal(b.len, 12);
	assert_memory_equal(b.data, "{7}\r\na\xEF\xBF\xBD" "b\nc", 12);
	buf_reset(&b);
	imap_append_nstring(&b, NULL);
	assert_string_equal(buf_cstr(&b), "NIL");
	buf_free(&b);
}

static void envelope_of(const char *hdr, const char *want)
{
	struct mime_header h = MIME_HEADER_INIT;
	mime_header_parse(&h, hdr, strlen(hdr));
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(imap_envelope(&h, &b));
	if (strcmp(buf_cstr(&b), want) != 0)
		fail_msg("envelope of \"%s\":\n got: %s\nwant: %s", hdr, buf_cstr(&b), want);
	buf_free(&b);
	mime_header_free(&h);
}

static void test_envelope_cases(void **state)
{
	(void)state;
	/* Sender given: Reply-To still defaults to From */
	envelope_of("From: a@x\nSender: s@x\n\n",
	            "(NIL NIL ((NIL NIL \"a\" \"x\")) ((NIL NIL \"s\" \"x\")) ((NIL NIL \"a\" \"x\")) NIL NIL NIL NIL NIL)");
	/* encoded words stay encoded; 8-bit text goes as a literal; a domainless mailbox has host MISSING_DOMAIN */
	envelope_of("From: =?utf-8?q?J=C3=B6rg?= <j@x>\nSubject: caf\xc3\xa9\nTo: root\n\n",
	            "(NIL {5}\r\ncaf\xc3\xa9 ((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"x\")) "
	            "((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"x\")) ((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"x\")) "
	            "((NIL NIL \"root\" \"MISSING_DOMAIN\")) NIL NIL NIL NIL)");
	/* unparsable entries are dropped, the rest kept; a list with nothing valid is NIL */
	envelope_of("To: <<bad>>, good@x\nCc: <<<\nBcc: \"Q \\\" B\" <q@x>\n\n",
	            "(NIL NIL NIL NIL NIL ((NIL NIL \"good\" \"x\")) NIL ((\"Q \\\" B\" NIL \"q\" \"x\")) NIL NIL)");
	/* two groups, one empty-ended */
	envelope_of("To: A: a@x;, B: b@x, c@x;\n\n",
	            "(NIL NIL NIL NIL NIL ((NIL NIL \"A\" NIL)(NIL NIL \"a\" \"x\")(NIL NIL NIL NIL)"
	            "(NIL NIL \"B\" NIL)(NIL NIL \"b\" \"x\")(NIL NIL \"c\" \"x\")(NIL NIL NIL NIL)) NIL NIL NIL NIL)");
	/* empty Subject is "", absent is NIL; first of repeated fields wins */
	envelope_of("Subject:\nMessage-ID: <1@x>\nMessage-ID: <2@x>\n\n",
	            "(NIL \"\" NIL NIL NIL NIL NIL NIL NIL \"<1@x>\")");
}

/* Work stays linear: deep nesting with many lines that start like boundaries but are not. */
static void test_linear_time(void **state)
{
	(void)state;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	for (int k = 0; k < MIME_MAX_DEPTH; k++)
		buf_printf(&b, "Content-Type: multipart/mixed; boundary=boundary-%d\n\n--boundary-%d\n", k, k);
	buf_puts(&b, "\n");
	for (int i = 0; i < 300000; i++)
		buf_puts(&b, "--boundary-1x not a boundary line\n");
	clock_t t0 = clock();
	struct mime_message m;
	mime_message_parse(&m, b.data, b.len);
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	assert_true(imap_bodystructure(&m, true, &out));
	double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	assert_true(secs < 10.0);
	const struct mime_part *p = m.root;
	while (p->children)
		p = p->children;
	assert_int_equal(p->body_lines, 300000);
	buf_free(&out);
	mime_message_free(&m);
	buf_free(&b);
}

static void bodystructure_of(const char *msg, size_t len, const char *want)
{
	struct mime_message m;
	mime_message_parse(&m, msg, len);
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	assert_true(imap_bodystructure(&m, false, &b));
	if (strcmp(buf_cstr(&b), want) != 0)
		fail_msg("BODY:\n got: %s\nwant: %s", buf_cstr(&b), want);
	buf_free(&b);
	mime_message_free(&m);
}

static void test_limits(void **state)
{
	(void)state;
	/* a boundary over the limit: the multipart is not split, and still gets a valid BODY */
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	buf_puts(&b, "Content-Type: multipart/mixed; boundary=");
	for (int i = 0; i <= MIME_MAX_BOUNDARY; i++)
		buf_putc(&b, 'b');
	buf_puts(&b, "\n\n--");
	for (int i = 0; i <= MIME_MAX_BOUNDARY; i++)
		buf_putc(&b, 'b');
	buf_puts(&b, "\n\nx\n");
	bodystructure_of(b.data, b.len, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\"");
	/* no boundary parameter at all */
	const char *nob = "Content-Type: multipart/alternative\n\nbody\n";
	bodystructure_of(nob, strlen(nob), "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"alternative\"");
	/* an encoded message/rfc822 is not parsed as a message (RFC 2046 5.2.1 allows only identity encodings) */
	const char *enc = "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeAoKeQo=\n";
	bodystructure_of(enc, strlen(enc), "\"message\" \"rfc822\" NIL NIL NIL \"base64\" 22 "
	                 "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
	                 "\"7bit\" 0 0) 1");
	/* a header over the size limit: the rest is body */
	buf_reset(&b);
	while (b.len <= MIME_MAX_HEADER)
		buf_puts(&b, "X-Filler: 0123456789012345678901234567890123456789012345678901234567890123456789\n");
	buf_puts(&b, "\nbody\n");
	struct mime_message m;
	mime_message_parse(&m, b.data, b.len);
	assert_true(m.root->flags & MIME_PART_HDR_TRUNC);
	assert_true(m.root->hdr_size <= MIME_MAX_HEADER + 100);
	assert_int_equal(m.root->hdr_size + m.root->body_size, b.len);
	mime_message_free(&m);
	/* a part whose header ends right at the next boundary: no bytes counted twice or lost */
	const char *tight = "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\n"
	                    "Subject: x\n\n--b\nContent-Type: text/plain\n--b--\n";
	mime_message_parse(&m, tight, strlen(tight));
	assert_int_equal(m.root->nchildren, 2);
	const struct mime_part *c1 = m.root->children, *c2 = c1->next;
	assert_true(c1->flags & MIME_PART_MESSAGE);
	assert_int_equal(c1->children->hdr_size, 12);   /* the header keeps its blank line, the part grows */
	assert_int_equal(c1->children->hdr_lines, 2);
	assert_int_equal(c1->children->hdr_size_crlf, 14);
	assert_int_equal(c1->body_size, 12);
	assert_int_equal(c1->children->body_size, 0);
	assert_int_equal(c2->hdr_size, 25);
	assert_int_equal(c2->body_size, 0);
	assert_int_equal(c2->body_lines, 0);
	mime_message_free(&m);
	/* an inner part cut off by the outer boundary before its header started */
	const char *cut = "Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/mixed; boundary=i\n\n"
	                  "--i\n--o--\n";
	mime_message_parse(&m, cut, strlen(cut));
	c1 = m.root->children;
	assert_true(c1->flags & MIME_PART_NO_END);
	assert_int_equal(c1->nchildren, 1);
	assert_int_equal(c1->body_size, 3);
	assert_int_equal(c1->children->hdr_off, c1->body_off + 3);
	assert_int_equal(c1->children->hdr_size, 0);
	assert_int_equal(c1->children->body_size, 0);
	mime_message_free(&m);
	/* a folded transfer encoding (leading white space after unfolding) */
	const char *folded = "Content-Type: text/plain\nContent-Transfer-Encoding:\n  Quoted-Printable \n\nx=3D\n";
	mime_message_parse(&m, folded, strlen(folded));
	assert_string_equal(m.root->encoding, "Quoted-Printable");
	mime_message_free(&m);
	/* NUL and 8-bit flags */
	const char *nul = "Subject: \xff\n\na\0b";
	mime_message_parse(&m, nul, 15);
	assert_true(m.root->flags & MIME_PART_NUL);
	assert_true(m.root->flags & MIME_PART_HDR_8BIT);
	assert_false(m.root->flags & MIME_PART_8BIT);
	mime_message_free(&m);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_offsets),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_many_parts),
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_section_syntax),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_envelope_cases),
		cmocka_unit_test(test_linear_time),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
