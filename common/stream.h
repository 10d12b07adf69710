/* Buffered, timed connection I/O for daemons that serve one client per process (smtpd, pop3d, imapd, the smtp
 * client): blocking-style calls over a non-blocking fd with poll() timeouts, optionally wrapped in TLS.
 * Line reads are bounded: an over-long line is reported and skipped, never silently cut or grown without limit. */
#ifndef POSTERN_STREAM_H
#define POSTERN_STREAM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "buf.h"

enum stream_result {
	STREAM_OK,
	STREAM_EOF,	/* peer closed (for TLS: close_notify or a plain close) */
	STREAM_TIMEOUT,	/* no progress within the timeout */
	STREAM_TOOLONG,	/* line longer than allowed (rest skipped), or read_exact target full */
	STREAM_ERROR,	/* I/O or TLS error; stream_error_text() says which */
	STREAM_INTERRUPTED,	/* a signal arrived while waiting and the stream_set_interrupt() check said stop */
};

/* How the last line from stream_read_line() ended: SMTP smuggling defences must tell CRLF from a bare LF. */
enum stream_eol { STREAM_EOL_NONE, STREAM_EOL_CRLF, STREAM_EOL_LF };

#define STREAM_TIMEOUT_NONE (-1)

struct stream;

/* Takes ownership of fd (sets it non-blocking; stream_free closes it). Ignores SIGPIPE process-wide if its
 * disposition is still the default, since TLS writes cannot pass MSG_NOSIGNAL. Timeouts default to 300 s. */
struct stream *stream_new(int fd);
/* Frees the TLS state (best-effort close_notify, never blocks), closes the fd, sets *sp to NULL.
 * Unflushed output is dropped: call stream_flush() first when it matters. */
void stream_free(struct stream **sp);
int stream_fd(const struct stream *s);
const char *stream_error_text(const struct stream *s);

/* Milliseconds; STREAM_TIMEOUT_NONE waits forever. A timeout bounds each wait for the peer, so a call that
 * keeps making progress (a large BDAT chunk, a long RETR) is not cut off. */
void stream_set_timeouts(struct stream *s, int read_ms, int write_ms);
/* When on, the timeouts bound each whole call instead (Postfix smtpd_per_record_deadline): a peer that trickles
 * one byte at a time cannot keep a line read or a flush going for longer than the timeout. */
void stream_set_deadline_mode(struct stream *s, bool on);
/* While stop is set (NULL: never), a wait for the peer that a signal interrupts ends with STREAM_INTERRUPTED
 * when stop() is true, and so does one that would start with stop() already true: a daemon told to shut down
 * is not held by an idle client. Set it only around waits where dropping the client loses nothing. */
void stream_set_interrupt(struct stream *s, bool (*stop)(void));

/* One line without its terminator into line (reset first). maxlen counts the bytes before CR LF (or LF).
 * A longer line gives STREAM_TOOLONG after the rest of it has been read and dropped up to its LF; line then
 * holds its first maxlen bytes (for logging). STREAM_EOF mid-line leaves the partial bytes in line.
 * STREAM_TIMEOUT mid-line loses nothing: the partial line stays buffered and a later call continues it.
 * A CR that is not directly before the LF stays in the line: callers decide about bare CR. */
enum stream_result stream_read_line(struct stream *s, struct buf *line, size_t maxlen);
/* How the line from the last stream_read_line() ended (STREAM_EOL_NONE after EOF mid-line). */
enum stream_eol stream_last_eol(const struct stream *s);

/* Exactly n bytes appended to out (BDAT chunks, IMAP literals). When out's cap refuses them the bytes are still
 * read and dropped, and the result is STREAM_TOOLONG, so the protocol stays in step. On STREAM_TIMEOUT or
 * STREAM_EOF the bytes received so far are in out. */
enum stream_result stream_read_exact(struct stream *s, struct buf *out, size_t n);
/* Raw access for incremental parsers (the DATA decoder): waits until input is buffered and points *p at it;
 * the caller then calls stream_consume() with what it used, leaving the rest buffered (pipelined commands). */
enum stream_result stream_peek(struct stream *s, const void **p, size_t *len);
void stream_consume(struct stream *s, size_t n);

/* Bytes received but not yet consumed (our buffer plus TLS-decrypted bytes): non-zero after a command means the
 * client pipelined. */
size_t stream_pending(const struct stream *s);
/* Wait until the peer sent something (input already buffered counts at once) or extra_fd (ignored when < 0)
 * is readable, for at most timeout_ms (STREAM_TIMEOUT_NONE: no limit). *extra tells whether extra_fd is ready:
 * IMAP IDLE waits on the client and on inotify at once. STREAM_OK, STREAM_TIMEOUT, STREAM_INTERRUPTED (see
 * stream_set_interrupt) or STREAM_ERROR. */
enum stream_result stream_wait_input(struct stream *s, int extra_fd, int timeout_ms, bool *extra);
/* True when a whole line is already received, so that reading it will not wait for the peer; never waits.
 * Replies to pipelined commands may stay buffered while this holds, but must be flushed before any wait for
 * input: a client that has sent only part of its next command may be waiting for them before it sends the rest. */
bool stream_line_pending(struct stream *s);
/* Move everything stream_pending() counts to out (a login handing its connection to another process); false when
 * out's cap refused some of it. Does not wait. */
bool stream_take_input(struct stream *s, struct buf *out);
/* Put n bytes before any unread input, as if they had just been received (the other end of that handover). */
void stream_push_input(struct stream *s, const void *p, size_t n);
/* Drop everything stream_pending() counts; returns how many bytes were dropped. Does not wait. */
size_t stream_discard_input(struct stream *s);

/* Output is buffered until stream_flush() (or until the buffer fills). Errors are sticky: after a failed write
 * every later write or flush returns the same result without I/O. */
enum stream_result stream_write(struct stream *s, const void *p, size_t n);
enum stream_result stream_puts(struct stream *s, const char *str);
enum stream_result stream_printf(struct stream *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
enum stream_result stream_vprintf(struct stream *s, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
enum stream_result stream_flush(struct stream *s);

/* A codec between the application bytes and the connection (inside TLS when TLS is on): IMAP COMPRESS=DEFLATE.
 * decode takes encoded bytes from *in (advancing *in and *inlen) and writes at most outcap plain bytes; it is also
 * called with nothing new so that output it held back comes out; false (reason in err) for corrupt input.
 * encode appends the encoding of n bytes to out and then flushes as asked: SYNC makes everything so far
 * decodable, FULL also resets the encoder's history. */
enum stream_codec_flush { STREAM_CODEC_NONE, STREAM_CODEC_SYNC, STREAM_CODEC_FULL };
struct stream_codec {
	bool (*decode)(void *ctx, const unsigned char **in, size_t *inlen, void *out, size_t outcap, size_t *outlen,
		       struct buf *err);
	bool (*encode)(void *ctx, const void *in, size_t n, enum stream_codec_flush flush, struct buf *out);
	void (*free)(void *ctx);
	void *ctx;
};
/* Start the codec (the stream owns ctx from now on and frees it); input already buffered is taken as encoded.
 * Flush what must go out unencoded first. Once per stream. */
void stream_set_codec(struct stream *s, const struct stream_codec *c);
bool stream_has_codec(const struct stream *s);
/* Everything written so far is encoded now, with a FULL flush: nothing after this point can refer back to it
 * (imapd calls it after each tagged response, so one command's secrets cannot shape the next one's size). */
void stream_codec_boundary(struct stream *s);

uint64_t stream_bytes_in(const struct stream *s);	/* application bytes (after TLS decryption) */
uint64_t stream_bytes_out(const struct stream *s);

/* Server side of STARTTLS (or implicit TLS when called right after accept): flushes pending output, then
 * refuses if plaintext input is buffered (a client that pipelined commands after STARTTLS, the "STARTTLS
 * command injection" attack): that input is discarded and STREAM_ERROR returned without a handshake, so the
 * caller decides whether to drop the client or call again to proceed. Otherwise runs the handshake under the
 * stream's timeouts. On failure the connection is unusable and should be closed. */
enum stream_result stream_starttls_server(struct stream *s, SSL_CTX *ctx);
/* Client side; servername (may be NULL) is sent as SNI when it is a name, and set as the name the certificate
 * must match (check with tls_verify_result(stream_ssl(s), ...)): the handshake itself never fails on
 * verification, so opportunistic TLS keeps working and the caller applies its policy. */
enum stream_result stream_starttls_client(struct stream *s, SSL_CTX *ctx, const char *servername);
bool stream_is_tls(const struct stream *s);
SSL *stream_ssl(const struct stream *s);	/* NULL before TLS */
/* Protocol ("TLSv1.3"), cipher name and its secret bits, for Received headers and logs; false without TLS.
 * The strings stay valid while the stream lives. */
bool stream_tls_info(const struct stream *s, const char **proto, const char **cipher, int *bits);

#endif
