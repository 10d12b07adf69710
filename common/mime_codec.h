/* Content transfer encodings (base64, quoted-printable) as streaming coders with a few bytes of state, so a large
 * part is decoded or encoded chunk by chunk and never held twice; RFC 2047 encoded-words and charset conversion
 * to UTF-8. Called by the MIME tree users (IMAP BINARY/SEARCH later, 7-bit conversion, DSNs, filenames). */
#ifndef POSTERN_MIME_CODEC_H
#define POSTERN_MIME_CODEC_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Every coder appends to out and returns false only when out's cap was hit (the state is then undefined).
 * Feed input in any chunking, then call the _final function once. */

struct mime_b64_dec {
	unsigned acc;       /* pending bits */
	int bits;           /* how many pending bits */
	bool ended;         /* saw '=' padding: data after it is ignored */
	size_t invalid;     /* bytes that are neither alphabet, padding nor white space (skipped) */
};
void mime_b64_dec_init(struct mime_b64_dec *d);
bool mime_b64_decode(struct mime_b64_dec *d, const void *in, size_t n, struct buf *out);
/* False (still appending nothing more) when the input stopped mid-quantum in a way that lost bits. */
bool mime_b64_dec_final(struct mime_b64_dec *d);

struct mime_b64_enc {
	unsigned char pend[3];
	int npend;
	int col;            /* output column, for 76-character lines */
	int linelen;        /* 0: no line breaks (RFC 2047 words) */
};
/* linelen is the output line length (76 for bodies, rounded down to a multiple of 4; 0 for none). Lines end
 * with LF: messages are stored with LF. */
void mime_b64_enc_init(struct mime_b64_enc *e, int linelen);
bool mime_b64_encode(struct mime_b64_enc *e, const void *in, size_t n, struct buf *out);
bool mime_b64_enc_final(struct mime_b64_enc *e, struct buf *out);

struct mime_qp_dec {
	char hold[80];      /* an '=' with up to one hex digit, or trailing white space that may precede a line end */
	size_t nhold;
	size_t invalid;     /* malformed escapes (passed through literally, as RFC 2045 §6.7 suggests) */
};
void mime_qp_dec_init(struct mime_qp_dec *d);
bool mime_qp_decode(struct mime_qp_dec *d, const void *in, size_t n, struct buf *out);
bool mime_qp_dec_final(struct mime_qp_dec *d, struct buf *out);

struct mime_qp_enc {
	int col;
	bool binary;        /* encode CR and LF too (no hard line breaks) */
	char ws;            /* a space or tab held back: it is encoded if a line end follows */
	bool cr;            /* text mode: a CR held back, dropped if LF follows */
};
/* Text mode: LF and CRLF are hard line breaks (written as LF), trailing white space is encoded, lines are kept
 * within 76 characters with soft breaks, "From ", "." and "-" at a line start are encoded so no MTA mangles
 * them and no line looks like a MIME boundary. */
void mime_qp_enc_init(struct mime_qp_enc *e, bool binary);
bool mime_qp_encode(struct mime_qp_enc *e, const void *in, size_t n, struct buf *out);
bool mime_qp_enc_final(struct mime_qp_enc *e, struct buf *out);

/* One-shot helpers on whole buffers. */
bool mime_b64_decode_all(const void *in, size_t n, struct buf *out);   /* false also on invalid input */
bool mime_b64_encode_all(const void *in, size_t n, int linelen, struct buf *out);
bool mime_qp_decode_all(const void *in, size_t n, struct buf *out);
bool mime_qp_encode_all(const void *in, size_t n, bool binary, struct buf *out);

/* ---- charsets and RFC 2047 (mime_words.c) ---- */

/* Convert n bytes in charset to UTF-8 and append them. Unknown charsets and invalid sequences become U+FFFD
 * per bad byte (the text stays readable and valid UTF-8); returns false only when out's cap was hit. "us-ascii"
 * and "utf-8" are checked without iconv. */
bool mime_charset_to_utf8(const char *charset, const void *in, size_t n, struct buf *out);
/* Decode RFC 2047 encoded-words in an unstructured header value (Subject, display names) and append UTF-8:
 * "=?charset[*lang]?B|Q?text?=" words are decoded, white space between two adjacent encoded words is dropped,
 * malformed words are kept literally, other bytes are taken as UTF-8 (invalid ones replaced). Folding line ends
 * are removed. */
bool mime_words_decode(const char *s, size_t n, struct buf *out);
/* Encode a UTF-8 text for an unstructured header: unchanged when it is printable ASCII, else as "=?utf-8?q?...?="
 * words of at most 75 characters separated by folding ("\n "). */
bool mime_words_encode(const char *s, size_t n, struct buf *out);

#endif
