/* micro_mime: throughput of the MIME parser as imapd uses it (tree, BODYSTRUCTURE, ENVELOPE) over the test corpus
 * and over one large generated message. Built by "make bench-micro"; bench/micro runs it for docs/PERFORMANCE.md.
 *   micro_mime [CORPUS_DIR [SECONDS]]     (defaults: tests/data/mime, 1 s per measurement)
 * Prints one line per measurement: "NAME: BYTES bytes x RUNS in SECONDS s = MB/s, messages/s". */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "imap_body.h"
#include "mime.h"

struct msg {
	char *data;
	size_t len;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool slurp(const char *path, struct buf *out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	char tmp[65536];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_append(out, tmp, n);
	fclose(f);
	return true;
}

/* What a FETCH (BODYSTRUCTURE ENVELOPE) costs: the tree, the structure and the top-level envelope. */
static size_t fetch_once(const struct msg *m, struct buf *out)
{
	struct mime_message mm;
	struct mime_header h = MIME_HEADER_INIT;
	buf_reset(out);
	mime_message_parse(&mm, m->data, m->len);
	imap_bodystructure(&mm, true, out);
	mime_part_header(&mm, mm.root, &h);
	imap_envelope(&h, out);
	mime_header_free(&h);
	mime_message_free(&mm);
	return out->len;
}

static void measure(const char *name, const struct msg *v, size_t n, double seconds)
{
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	size_t bytes = 0, runs = 0, sink = 0;
	for (size_t i = 0; i < n; i++)
		bytes += v[i].len;
	double t0 = now(), t;
	do {
		for (size_t i = 0; i < n; i++)
			sink += fetch_once(&v[i], &out);
		runs++;
	} while ((t = now() - t0) < seconds);
	printf("%s: %zu bytes in %zu messages x %zu runs in %.2f s = %.1f MB/s, %.0f messages/s (%zu bytes out)\n",
	       name, bytes, n, runs, t, (double)bytes * (double)runs / t / 1e6, (double)(n * runs) / t, sink / runs);
	buf_free(&out);
}

/* A 20 MB message of the kind that is slow to parse: long text, several base64 attachments, a forwarded message
 * with its own multipart, and many short lines. */
static struct msg generate(void)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	buf_puts(&b, "From: Big Sender <big@example.com>\nTo: a@example.net, \"B\" <b@example.net>\n"
	             "Subject: large\nDate: Mon, 23 Nov 2026 10:00:00 +0000\nMIME-Version: 1.0\n"
	             "Content-Type: multipart/mixed; boundary=\"outer-boundary\"\n\n");
	buf_puts(&b, "--outer-boundary\nContent-Type: text/plain; charset=utf-8\n\n");
	for (int i = 0; i < 100000; i++)
		buf_printf(&b, "line %d of a long text part, with some words to make it look like prose.\n", i);
	for (int a = 0; a < 4; a++) {
		buf_printf(&b, "--outer-boundary\nContent-Type: application/octet-stream; name=\"f%d.bin\"\n"
		               "Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"f%d.bin\"\n\n",
		           a, a);
		for (int i = 0; i < 50000; i++)
			buf_puts(&b, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\n");
	}
	buf_puts(&b, "--outer-boundary\nContent-Type: message/rfc822\n\nFrom: inner@example.org\nSubject: inner\n"
	             "Content-Type: multipart/alternative; boundary=inner\n\n");
	for (int p = 0; p < 200; p++) {
		buf_puts(&b, "--inner\nContent-Type: text/plain\n\n");
		for (int i = 0; i < 200; i++)
			buf_puts(&b, "x\n");
	}
	buf_puts(&b, "--inner--\n--outer-boundary--\n");
	struct msg m;
	m.data = buf_steal(&b, &m.len);
	return m;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "tests/data/mime";
	double seconds = argc > 2 ? atof(argv[2]) : 1.0;
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "micro_mime: cannot open %s\n", dir);
		return 1;
	}
	struct msg *v = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 5 || strcmp(de->d_name + l - 4, ".eml") != 0)
			continue;
		struct buf path = BUF_INIT(BUF_NOLIMIT), data = BUF_INIT(BUF_NOLIMIT);
		buf_printf(&path, "%s/%s", dir, de->d_name);
		if (slurp(buf_cstr(&path), &data)) {
			v = xreallocarray(v, n + 1, sizeof(*v));
			v[n].data = buf_steal(&data, &v[n].len);
			n++;
		}
		buf_free(&path);
		buf_free(&data);
	}
	closedir(d);
	if (n == 0) {
		fprintf(stderr, "micro_mime: no .eml files in %s\n", dir);
		return 1;
	}
	measure("corpus", v, n, seconds);
	struct msg big = generate();
	measure("large", &big, 1, seconds);
	for (size_t i = 0; i < n; i++)
		free(v[i].data);
	free(v);
	free(big.data);
	return 0;
}
