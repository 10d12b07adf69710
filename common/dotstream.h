/* SMTP DATA framing (RFC 5321 4.5.2): an incremental, I/O-free decoder for smtpd (feed bytes in any chunking,
 * get unstuffed message bytes and "end of data seen") and an encoder for pop3d RETR and the smtp client.
 *
 * SMTP smuggling defence: the ONLY end of data is CR LF "." CR LF, counting the start of DATA as a CR LF. Nothing
 * else ends the message in any mode: LF.LF, LF.CRLF, CRLF.LF, CR.CR, CRLF.CR CR LF, ".\r\r\n" and friends are
 * content. Their bare CR and bare LF bytes are always rewritten to CR LF in the output (so no later hop can read
 * them as line ends of a different kind) and flagged; DOT_BARE_REJECT makes those flags an error the caller
 * answers with 550/554 once it has read to the real end of data (Postfix smtpd_forbid_bare_newline = reject),
 * DOT_BARE_NORMALIZE accepts the rewritten message (= normalize).
 *
 * Decoding rules, byte by byte:
 *   - CR LF ends a line; the next line is a "full" line start.
 *   - LF without CR before it (bare LF) and CR without LF after it (bare CR) become CR LF, but the line after them
 *     is not a full line start: a dot there is kept and cannot begin the end-of-data line.
 *   - At a full line start, "." followed by CR LF ends the data; "." followed by any other byte than CR or LF is
 *     removed (dot-unstuffing); "." followed by a bare LF or bare CR is kept (a one-dot content line).
 *   - Line length counts wire bytes including the stuffing dot and the terminator; a line longer than line_max
 *     (RFC 5321: 1000) sets DOT_F_LINE_TOO_LONG, and output beyond max_size is not stored but DOT_F_TOO_BIG is
 *     set; decoding goes on to the end of data in both cases so the session stays in step. */
#ifndef POSTERN_DOTSTREAM_H
#define POSTERN_DOTSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "stream.h"

enum dot_bare_policy { DOT_BARE_REJECT, DOT_BARE_NORMALIZE };

enum dot_flag {
	DOT_F_BARE_LF = 1 << 0,
	DOT_F_BARE_CR = 1 << 1,
	DOT_F_LINE_TOO_LONG = 1 << 2,
	DOT_F_TOO_BIG = 1 << 3,
};

#define DOT_LINE_MAX_RFC 1000	/* RFC 5321 4.5.3.1.6, including CR LF */

enum dot_status { DOT_MORE, DOT_END };

struct dot_decoder {
	int state;
	enum dot_bare_policy policy;
	size_t line_max;	/* 0: no limit */
	uint64_t max_size;	/* 0: no limit */
	size_t linelen;		/* wire bytes of the current line so far */
	uint64_t in_bytes;	/* wire bytes consumed, including the end-of-data line */
	uint64_t out_bytes;	/* message bytes produced, including those past max_size that were not stored */
	unsigned flags;		/* enum dot_flag bits */
};

void dot_decoder_init(struct dot_decoder *d, enum dot_bare_policy policy, size_t line_max, uint64_t max_size);
/* Decodes from in, appending message bytes to out, until the input is used up (DOT_MORE) or the end of data has
 * been consumed (DOT_END). *consumed says how much of in was used; bytes after the end of data are left for the
 * caller (pipelined commands). After DOT_END further calls consume nothing. If out's own cap refuses bytes they
 * are counted as past max_size. */
enum dot_status dot_decode(struct dot_decoder *d, const void *in, size_t n, struct buf *out, size_t *consumed);
/* True when the message must be refused: too big, a line too long (when line_max is set), or bare CR/LF under
 * DOT_BARE_REJECT. Meaningful after DOT_END. */
bool dot_decoder_failed(const struct dot_decoder *d);

/* The encoder: dot-stuffs lines that start with ".", turns bare LF and bare CR into CR LF, and ends the data
 * with a line holding only "." (adding CR LF first if the text did not end with a line end). */
struct dot_encoder {
	bool bol;	/* at a line start */
	bool cr;	/* a CR is held back until we see whether LF follows */
};

void dot_encoder_init(struct dot_encoder *e);
/* false when out's cap refused bytes (out is then incomplete). */
bool dot_encode(struct dot_encoder *e, const void *in, size_t n, struct buf *out);
bool dot_encode_finish(struct dot_encoder *e, struct buf *out);
/* The same, written to a stream (buffered; call stream_flush() when the reply is complete). */
enum stream_result dot_write(struct stream *s, struct dot_encoder *e, const void *p, size_t n);
enum stream_result dot_write_end(struct stream *s, struct dot_encoder *e);

#endif
