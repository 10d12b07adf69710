/* SMTP DATA decoder and encoder: see dotstream.h for the rules. The decoder is a byte-at-a-time state machine
 * whose output depends only on its state and the byte, so any chunking of the input gives the same result. */
#include "dotstream.h"

#include <string.h>

enum dot_state {
	S_BOL,		/* at a full line start (after CR LF, or the start of data) */
	S_BOL_DOT,	/* "." at a full line start */
	S_BOL_DOT_CR,	/* "." CR at a full line start: LF now ends the data */
	S_TEXT,		/* inside a line, or at the start of a line that followed a bare CR or LF */
	S_CR,		/* CR inside a line, held until we know whether LF follows */
	S_DONE,
};

void dot_decoder_init(struct dot_decoder *d, enum dot_bare_policy policy, size_t line_max, uint64_t max_size)
{
	memset(d, 0, sizeof(*d));
	d->state = S_BOL;
	d->policy = policy;
	d->line_max = line_max;
	d->max_size = max_size;
}

/* Stores exactly the first max_size message bytes (and no more than out's cap), whatever the chunking. */
static void emit(struct dot_decoder *d, struct buf *out, const void *p, size_t n)
{
	size_t room = n;

	if (!(d->flags & DOT_F_TOO_BIG)) {
		if (d->max_size && d->max_size - d->out_bytes < room)
			room = (size_t)(d->max_size - d->out_bytes);
		if (out->max - out->len < room)
			room = out->max - out->len;
		if (!buf_append(out, p, room) || room < n)
			d->flags |= DOT_F_TOO_BIG;
	}
	d->out_bytes += n;
}

static void count(struct dot_decoder *d, size_t n)
{
	d->linelen += n;
	if (d->line_max && d->linelen > d->line_max)
		d->flags |= DOT_F_LINE_TOO_LONG;
}

/* A line ended by a bare CR or LF: written as CR LF, and what follows is not a full line start. */
static void bare_end(struct dot_decoder *d, struct buf *out, unsigned flag, bool keep_dot)
{
	d->flags |= flag;
	emit(d, out, keep_dot ? ".\r\n" : "\r\n", keep_dot ? 3 : 2);
	d->linelen = 0;
	d->state = S_TEXT;
}

enum dot_status dot_decode(struct dot_decoder *d, const void *in, size_t n, struct buf *out, size_t *consumed)
{
	const unsigned char *p = in;
	size_t i = 0;

	while (i < n && d->state != S_DONE) {
		unsigned char c = p[i];

		/* A held CR followed by anything but LF was a bare CR: settle it, then handle c afresh. */
		if (d->state == S_CR && c != '\n')
			bare_end(d, out, DOT_F_BARE_CR, false);
		else if (d->state == S_BOL_DOT_CR && c != '\n')
			bare_end(d, out, DOT_F_BARE_CR, true);

		if (d->state == S_TEXT && c != '\r' && c != '\n') {
			size_t j = i;
			while (j < n && p[j] != '\r' && p[j] != '\n')
				j++;
			count(d, j - i);
			emit(d, out, p + i, j - i);
			i = j;
			continue;
		}
		count(d, 1);
		i++;
		switch (d->state) {
		case S_BOL:
		case S_TEXT:
			if (c == '.' && d->state == S_BOL)
				d->state = S_BOL_DOT;
			else if (c == '\r')
				d->state = S_CR;
			else if (c == '\n')
				bare_end(d, out, DOT_F_BARE_LF, false);
			else {
				emit(d, out, &c, 1);
				d->state = S_TEXT;
			}
			break;
		case S_BOL_DOT:
			if (c == '\r')
				d->state = S_BOL_DOT_CR;
			else if (c == '\n')
				bare_end(d, out, DOT_F_BARE_LF, true);
			else {
				emit(d, out, &c, 1);	/* the stuffing dot is dropped */
				d->state = S_TEXT;
			}
			break;
		case S_BOL_DOT_CR:	/* c is LF: CR LF "." CR LF */
			d->state = S_DONE;
			break;
		case S_CR:		/* c is LF */
			emit(d, out, "\r\n", 2);
			d->linelen = 0;
			d->state = S_BOL;
			break;
		default:
			break;
		}
	}
	d->in_bytes += i;
	*consumed = i;
	return d->state == S_DONE ? DOT_END : DOT_MORE;
}

bool dot_decoder_failed(const struct dot_decoder *d)
{
	unsigned bad = DOT_F_TOO_BIG | DOT_F_LINE_TOO_LONG;

	if (d->policy == DOT_BARE_REJECT)
		bad |= DOT_F_BARE_LF | DOT_F_BARE_CR;
	return (d->flags & bad) != 0;
}

void dot_encoder_init(struct dot_encoder *e)
{
	e->bol = true;
	e->cr = false;
}

bool dot_encode(struct dot_encoder *e, const void *in, size_t n, struct buf *out)
{
	const unsigned char *p = in;
	bool ok = true;
	size_t i = 0;

	while (i < n) {
		unsigned char c = p[i];

		if (e->cr) {
			/* CR LF, or a bare CR made into CR LF */
			ok &= buf_append(out, "\r\n", 2);
			e->cr = false;
			e->bol = true;
			if (c == '\n') {
				i++;
				continue;
			}
		}
		if (c == '\r') {
			e->cr = true;
			i++;
		} else if (c == '\n') {
			ok &= buf_append(out, "\r\n", 2);
			e->bol = true;
			i++;
		} else {
			size_t j = i;

			if (e->bol && c == '.')
				ok &= buf_putc(out, '.');
			while (j < n && p[j] != '\r' && p[j] != '\n')
				j++;
			ok &= buf_append(out, p + i, j - i);
			e->bol = false;
			i = j;
		}
	}
	return ok;
}

bool dot_encode_finish(struct dot_encoder *e, struct buf *out)
{
	bool ok = true;

	if (e->cr || !e->bol)
		ok &= buf_append(out, "\r\n", 2);
	ok &= buf_append(out, ".\r\n", 3);
	dot_encoder_init(e);
	return ok;
}

enum stream_result dot_write(struct stream *s, struct dot_encoder *e, const void *p, size_t n)
{
	struct buf tmp = BUF_INIT(BUF_NOLIMIT);
	enum stream_result r = STREAM_OK;
	const char *c = p;

	/* In slices, so a large message costs a bounded amount of memory. */
	while (n > 0 && r == STREAM_OK) {
		size_t take = n < 65536 ? n : 65536;

		buf_reset(&tmp);
		(void)dot_encode(e, c, take, &tmp);
		r = stream_write(s, tmp.data, tmp.len);
		c += take;
		n -= take;
	}
	buf_free(&tmp);
	return r;
}

enum stream_result dot_write_end(struct stream *s, struct dot_encoder *e)
{
	struct buf tmp = BUF_INIT(BUF_NOLIMIT);
	enum stream_result r;

	(void)dot_encode_finish(e, &tmp);
	r = stream_write(s, tmp.data, tmp.len);
	buf_free(&tmp);
	return r;
}
