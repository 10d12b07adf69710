/* Buffered connection I/O with poll() timeouts over plain sockets and OpenSSL: see stream.h.
 * The fd is always non-blocking; every call that would block waits in poll() for at most the timeout, which is
 * also how SSL_read/SSL_write honour timeouts (they report WANT_READ/WANT_WRITE instead of blocking). */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "alloc.h"
#include "log.h"
#include "tls.h"

#define STREAM_RBUF_SIZE 16384
#define STREAM_WBUF_SIZE 16384
#define STREAM_ERR_MAX 1024
#define STREAM_DEFAULT_TIMEOUT_MS 300000
#define STREAM_STOP_CHECK_MS 500	/* with stream_set_interrupt(): how late a stop may be seen at worst */

struct stream {
	int fd;
	bool is_socket;		/* send() with MSG_NOSIGNAL; else write() (pipes in tests and tools) */
	bool is_tcp;		/* acknowledge each read at once (TCP_QUICKACK), see stream_read_some */
	SSL *ssl;
	struct buf rbuf;	/* input not yet consumed starts at rpos */
	size_t rpos;
	struct buf wbuf;
	int read_ms, write_ms;
	bool skip_line;		/* a too-long line timed out while being skipped: skip on at the next read */
	bool per_call;		/* timeouts bound whole calls (stream_set_deadline_mode) */
	int64_t call_deadline;	/* monotonic ms when the current call must end; 0: none */
	enum stream_result werr;	/* sticky write failure, STREAM_OK when none */
	enum stream_eol eol;
	bool (*stop)(void);	/* stream_set_interrupt() */
	uint64_t bytes_in, bytes_out;
	struct buf err;
	struct stream_codec codec;	/* decode NULL: none */
	struct buf zin;			/* encoded input not yet decoded, from zpos */
	size_t zpos;
	bool zmore;			/* the last decode filled its output: it may hold more */
	struct buf zout;		/* encoded output not yet written */
	bool zdirty;			/* bytes went to the encoder since its last flush */
};

static void set_err(struct stream *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_err(struct stream *s, const char *fmt, ...)
{
	va_list ap;

	buf_reset(&s->err);
	va_start(ap, fmt);
	(void)buf_vprintf(&s->err, fmt, ap);
	va_end(ap);
}

/* OpenSSL's reasons after a failed call; the queue is drained so the next call starts clean. */
static void set_tls_err(struct stream *s, const char *what)
{
	buf_reset(&s->err);
	(void)buf_printf(&s->err, "%s: ", what);
	(void)tls_errors(&s->err);
}

struct stream *stream_new(int fd)
{
	struct stream *s = xcalloc(1, sizeof(*s));
	struct sigaction sa;
	int flags, type;
	socklen_t tlen = sizeof(type);

	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	flags = fcntl(fd, F_GETFL);
	if (flags >= 0 && !(flags & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	s->fd = fd;
	s->is_socket = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0;
	/* Output is already gathered here and sent at flushes or in whole buffers, so Nagle only adds delay: on
	 * loopback (MSS 64 KiB) every buffer is a "small" segment, and the tail of a long reply (a POP3 UIDL
	 * listing, a FETCH) waited for the peer's delayed ACK, 40 ms. Fails harmlessly on non-TCP descriptors. */
	if (s->is_socket && type == SOCK_STREAM) {
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		s->is_tcp = true;
	}
	buf_init(&s->rbuf, BUF_NOLIMIT);	/* reads take 16 KiB; only a restored partial line (< maxlen) grows it */
	buf_init(&s->wbuf, STREAM_WBUF_SIZE);
	buf_init(&s->err, STREAM_ERR_MAX);
	s->read_ms = s->write_ms = STREAM_DEFAULT_TIMEOUT_MS;
	s->werr = STREAM_OK;
	s->eol = STREAM_EOL_NONE;
	return s;
}

void stream_free(struct stream **sp)
{
	struct stream *s = *sp;

	if (s == NULL)
		return;
	if (s->ssl) {
		/* One non-blocking attempt at close_notify; a peer that is gone must not make us wait. */
		ERR_clear_error();
		(void)SSL_shutdown(s->ssl);
		ERR_clear_error();
		SSL_free(s->ssl);
	}
	if (s->fd >= 0)
		close(s->fd);
	if (s->codec.free)
		s->codec.free(s->codec.ctx);
	buf_free(&s->zin);
	buf_free(&s->zout);
	/* consumed input stays in the buffer: a login's password must not outlive the connection */
	if (s->rbuf.data)
		OPENSSL_cleanse(s->rbuf.data, s->rbuf.cap);
	buf_free(&s->rbuf);
	buf_free(&s->wbuf);
	buf_free(&s->err);
	free(s);
	*sp = NULL;
}

int stream_fd(const struct stream *s) { return s->fd; }
const char *stream_error_text(const struct stream *s) { return buf_cstr(&s->err); }
enum stream_eol stream_last_eol(const struct stream *s) { return s->eol; }
uint64_t stream_bytes_in(const struct stream *s) { return s->bytes_in; }
uint64_t stream_bytes_out(const struct stream *s) { return s->bytes_out; }
bool stream_is_tls(const struct stream *s) { return s->ssl != NULL; }
SSL *stream_ssl(const struct stream *s) { return s->ssl; }

void stream_set_timeouts(struct stream *s, int read_ms, int write_ms)
{
	s->read_ms = read_ms;
	s->write_ms = write_ms;
}

void stream_set_interrupt(struct stream *s, bool (*stop)(void))
{
	s->stop = stop;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on the fd: STREAM_OK when ready, STREAM_TIMEOUT, STREAM_INTERRUPTED, or STREAM_ERROR.
 * Signals do not extend the wait: the remaining time is recomputed after EINTR. */
static enum stream_result wait_fd(struct stream *s, short events, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? 0 : now_ms() + timeout_ms;
	struct pollfd pfd;

	if (s->call_deadline && (deadline == 0 || s->call_deadline < deadline))
		deadline = s->call_deadline;
	for (;;) {
		int left = -1, n;

		if (deadline) {
			int64_t d = deadline - now_ms();
			left = d < 0 ? 0 : d > INT32_MAX ? INT32_MAX : (int)d;
		}
		/* checked before every poll, not only after EINTR: the signal may have come while we were busy; and
		 * the poll is cut into short slices so one that came just before it is seen soon all the same */
		if (s->stop && s->stop()) {
			set_err(s, "interrupted by shutdown");
			return STREAM_INTERRUPTED;
		}
		int slice = s->stop && (left < 0 || left > STREAM_STOP_CHECK_MS) ? STREAM_STOP_CHECK_MS : left;
		pfd.fd = s->fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, slice);
		if (n > 0)
			return STREAM_OK;	/* POLLERR/POLLHUP too: the next read or write reports what happened */
		if (n == 0 && slice != left)
			continue;
		if (n == 0) {
			set_err(s, "timeout waiting to %s (%s)", events & POLLIN ? "read" : "write",
				deadline == s->call_deadline ? "whole-call deadline" : "no progress");
			return STREAM_TIMEOUT;
		}
		if (errno != EINTR) {
			set_err(s, "poll: %s", strerror(errno));
			return STREAM_ERROR;
		}
	}
}

/* Entry of a public call that may wait: in deadline mode the whole call gets timeout_ms (+1 so that an active
 * deadline is never 0, which means none). */
static void begin_call(struct stream *s, int timeout_ms)
{
	s->call_deadline = s->per_call && timeout_ms >= 0 ? now_ms() + timeout_ms + 1 : 0;
}

void stream_set_deadline_mode(struct stream *s, bool on)
{
	s->per_call = on;
	s->call_deadline = 0;
}

/* Wait as an OpenSSL call asked: WANT_READ and WANT_WRITE can each happen on either side of the stream
 * (a TLS read may need to write, e.g. a key update), so the timeout follows the direction of the caller. */
static enum stream_result tls_wait(struct stream *s, int rc, int timeout_ms, const char *what)
{
	int e = SSL_get_error(s->ssl, rc);

	switch (e) {
	case SSL_ERROR_WANT_READ:
		return wait_fd(s, POLLIN, timeout_ms);
	case SSL_ERROR_WANT_WRITE:
		return wait_fd(s, POLLOUT, timeout_ms);
	case SSL_ERROR_ZERO_RETURN:
		return STREAM_EOF;
	case SSL_ERROR_SYSCALL:
		if (errno == EINTR && ERR_peek_error() == 0)
			return STREAM_OK;
		if (ERR_peek_error() == 0 && (rc == 0 || errno == 0 || errno == ECONNRESET || errno == EPIPE)) {
			set_err(s, "%s: connection closed by peer", what);
			return STREAM_EOF;
		}
		if (ERR_peek_error() == 0) {
			set_err(s, "%s: %s", what, strerror(errno));
			return STREAM_ERROR;
		}
		/* fall through */
	default:
		set_tls_err(s, what);
		return STREAM_ERROR;
	}
}

/* One read of at most n bytes: STREAM_OK with *got > 0, or why nothing came. */
static enum stream_result io_read(struct stream *s, void *p, size_t n, size_t *got)
{
	enum stream_result r;

	*got = 0;
	for (;;) {
		if (s->ssl) {
			int want = n > INT32_MAX ? INT32_MAX : (int)n, rc;

			ERR_clear_error();
			errno = 0;
			rc = SSL_read(s->ssl, p, want);
			if (rc > 0) {
				*got = (size_t)rc;
				break;
			}
			if ((r = tls_wait(s, rc, s->read_ms, "TLS read")) != STREAM_OK)
				return r;
			continue;
		}
		ssize_t rc = read(s->fd, p, n);
		if (rc > 0) {
			*got = (size_t)rc;
			break;
		}
		if (rc == 0)
			return STREAM_EOF;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			if (errno == ECONNRESET) {
				set_err(s, "read: connection reset by peer");
				return STREAM_EOF;
			}
			set_err(s, "read: %s", strerror(errno));
			return STREAM_ERROR;
		}
		if ((r = wait_fd(s, POLLIN, s->read_ms)) != STREAM_OK)
			return r;
	}
	/* Acknowledge what was just read now rather than after the delayed-ACK timer: a client that writes a
	 * message in several pieces without TCP_NODELAY (smtp-source, many MUAs) holds its last small piece (the
	 * final ".\r\n") until its earlier data is acknowledged, and we send nothing until the message is in —
	 * 40 ms per message otherwise. Quick-ack mode is not sticky, hence after every read. */
	if (s->is_tcp) {
		int one = 1;
		(void)setsockopt(s->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	}
	s->bytes_in += *got;
	return STREAM_OK;
}

/* Write all n bytes or fail. */
static enum stream_result io_write_all(struct stream *s, const void *p, size_t n)
{
	const char *c = p;
	enum stream_result r;

	while (n > 0) {
		size_t done;

		if (s->ssl) {
			int want = n > INT32_MAX ? INT32_MAX : (int)n, rc;

			ERR_clear_error();
			errno = 0;
			rc = SSL_write(s->ssl, c, want);
			if (rc <= 0) {
				if ((r = tls_wait(s, rc, s->write_ms, "TLS write")) != STREAM_OK)
					return r == STREAM_EOF ? STREAM_ERROR : r;
				continue;
			}
			done = (size_t)rc;
		} else {
			ssize_t rc = s->is_socket ? send(s->fd, c, n, MSG_NOSIGNAL) : write(s->fd, c, n);
			if (rc < 0) {
				if (errno == EINTR)
					continue;
				if (errno != EAGAIN && errno != EWOULDBLOCK) {
					set_err(s, "write: %s", strerror(errno));
					return STREAM_ERROR;
				}
				if ((r = wait_fd(s, POLLOUT, s->write_ms)) != STREAM_OK)
					return r;
				continue;
			}
			done = (size_t)rc;
		}
		c += done;
		n -= done;
		s->bytes_out += done;
	}
	return STREAM_OK;
}

/* fill() through the codec: decode what is there, read more encoded bytes only when that gives nothing. */
static enum stream_result fill_decoded(struct stream *s)
{
	enum stream_result r;

	for (;;) {
		const unsigned char *p = (const unsigned char *)s->zin.data + s->zpos;
		size_t avail = s->zin.len - s->zpos, got = 0;

		buf_reset(&s->err);
		if (!s->codec.decode(s->codec.ctx, &p, &avail, s->rbuf.data, s->rbuf.cap, &got, &s->err))
			return STREAM_ERROR;
		s->zpos = s->zin.len - avail;
		s->zmore = got == s->rbuf.cap;
		if (got > 0) {
			s->rbuf.len = got;
			return STREAM_OK;
		}
		buf_reset(&s->zin);
		s->zpos = 0;
		if (!buf_reserve(&s->zin, STREAM_RBUF_SIZE))
			panic("stream: read buffer");
		if ((r = io_read(s, s->zin.data, s->zin.cap, &got)) != STREAM_OK)
			return r;
		s->zin.len = got;
	}
}

/* Called only when everything buffered has been consumed: refills from the start of the buffer. */
static enum stream_result fill(struct stream *s)
{
	size_t got;
	enum stream_result r;

	buf_reset(&s->rbuf);
	s->rpos = 0;
	if (!buf_reserve(&s->rbuf, STREAM_RBUF_SIZE))
		panic("stream: read buffer");
	if (s->codec.decode)
		return fill_decoded(s);
	r = io_read(s, s->rbuf.data, s->rbuf.cap, &got);
	if (r != STREAM_OK)
		return r;
	s->rbuf.len = got;
	return STREAM_OK;
}

static size_t buffered(const struct stream *s)
{
	return s->rbuf.len - s->rpos;
}

/* Appends what fits under maxlen (and line's own cap); the first refusal marks the line too long for good. */
static void line_add(struct buf *line, const char *p, size_t n, size_t maxlen, bool *toolong)
{
	size_t room, take;

	if (*toolong || n == 0)
		return;
	room = maxlen - line->len;
	take = n < room ? n : room;
	if (!buf_append(line, p, take) || take < n)
		*toolong = true;
}

/* A line read that times out loses nothing: the bytes go back into the (then empty) read buffer, or, for a line
 * already too long, the skipping goes on at the next call, so a caller may simply call again. */
static void keep_partial(struct stream *s, const struct buf *line, bool toolong, bool cr_held)
{
	if (toolong) {
		s->skip_line = true;
		return;
	}
	buf_reset(&s->rbuf);
	s->rpos = 0;
	if ((line->len && !buf_append(&s->rbuf, line->data, line->len)) ||
	    (cr_held && !buf_putc(&s->rbuf, '\r')))
		panic("stream: cannot restore a partial line");
}

enum stream_result stream_read_line(struct stream *s, struct buf *line, size_t maxlen)
{
	bool toolong = s->skip_line;
	bool cr_held = false;	/* a CR ended the bytes seen so far: line end if LF follows, else content */
	enum stream_result r;

	buf_reset(line);
	s->eol = STREAM_EOL_NONE;
	s->skip_line = false;
	begin_call(s, s->read_ms);
	for (;;) {
		if (buffered(s) == 0 && (r = fill(s)) != STREAM_OK) {
			if (r == STREAM_TIMEOUT) {
				keep_partial(s, line, toolong, cr_held);
				return r;
			}
			if (cr_held)
				line_add(line, "\r", 1, maxlen, &toolong);
			return r;
		}
		const char *start = s->rbuf.data + s->rpos;
		size_t avail = buffered(s);
		const char *nl = memchr(start, '\n', avail);
		size_t take = nl ? (size_t)(nl - start) : avail;

		if (take > 0 && cr_held) {
			line_add(line, "\r", 1, maxlen, &toolong);
			cr_held = false;
		}
		if (take > 0 && start[take - 1] == '\r') {
			cr_held = true;
			line_add(line, start, take - 1, maxlen, &toolong);
		} else {
			line_add(line, start, take, maxlen, &toolong);
		}
		s->rpos += take + (nl ? 1 : 0);
		if (nl == NULL)
			continue;
		s->eol = cr_held ? STREAM_EOL_CRLF : STREAM_EOL_LF;
		return toolong ? STREAM_TOOLONG : STREAM_OK;
	}
}

enum stream_result stream_read_exact(struct stream *s, struct buf *out, size_t n)
{
	bool overflow = false;
	enum stream_result r;

	begin_call(s, s->read_ms);
	while (n > 0) {
		if (buffered(s) == 0 && (r = fill(s)) != STREAM_OK)
			return r;
		size_t take = buffered(s) < n ? buffered(s) : n;
		if (!overflow && !buf_append(out, s->rbuf.data + s->rpos, take))
			overflow = true;
		s->rpos += take;
		n -= take;
	}
	return overflow ? STREAM_TOOLONG : STREAM_OK;
}

enum stream_result stream_peek(struct stream *s, const void **p, size_t *len)
{
	enum stream_result r;

	*p = NULL;
	*len = 0;
	begin_call(s, s->read_ms);
	if (buffered(s) == 0 && (r = fill(s)) != STREAM_OK)
		return r;
	*p = s->rbuf.data + s->rpos;
	*len = buffered(s);
	return STREAM_OK;
}

void stream_consume(struct stream *s, size_t n)
{
	if (n > buffered(s))
		panic("stream_consume: %zu bytes asked, %zu buffered", n, buffered(s));
	s->rpos += n;
}

size_t stream_pending(const struct stream *s)
{
	size_t n = buffered(s) + (s->zin.len - s->zpos) + s->zmore;

	if (s->ssl)
		n += (size_t)SSL_pending(s->ssl);
	return n;
}

enum stream_result stream_wait_input(struct stream *s, int extra_fd, int timeout_ms, bool *extra)
{
	int64_t deadline = timeout_ms < 0 ? 0 : now_ms() + timeout_ms;
	struct pollfd pfd[2];

	*extra = false;
	if (stream_pending(s) > 0)
		return STREAM_OK;
	for (;;) {
		int left = -1, n;

		if (deadline) {
			int64_t d = deadline - now_ms();
			left = d < 0 ? 0 : d > INT32_MAX ? INT32_MAX : (int)d;
		}
		if (s->stop && s->stop()) {
			set_err(s, "interrupted by shutdown");
			return STREAM_INTERRUPTED;
		}
		int slice = s->stop && (left < 0 || left > STREAM_STOP_CHECK_MS) ? STREAM_STOP_CHECK_MS : left;
		pfd[0] = (struct pollfd){ .fd = s->fd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = extra_fd, .events = POLLIN };
		n = poll(pfd, extra_fd >= 0 ? 2 : 1, slice);
		if (n > 0) {
			*extra = extra_fd >= 0 && (pfd[1].revents & (POLLIN | POLLERR | POLLHUP));
			return STREAM_OK;
		}
		if (n == 0 && slice != left)
			continue;
		if (n == 0) {
			set_err(s, "timeout waiting to read (no progress)");
			return STREAM_TIMEOUT;
		}
		if (errno != EINTR) {
			set_err(s, "poll: %s", strerror(errno));
			return STREAM_ERROR;
		}
	}
}

bool stream_line_pending(struct stream *s)
{
	const void *p;
	size_t n;

	/* stream_peek() does not wait here: it reads only when TLS holds decrypted bytes. A line split between our
	 * buffer and OpenSSL's counts as not received, which costs at most an early flush. */
	return stream_pending(s) > 0 && stream_peek(s, &p, &n) == STREAM_OK && memchr(p, '\n', n) != NULL;
}

bool stream_take_input(struct stream *s, struct buf *out)
{
	bool ok = buf_append(out, s->rbuf.data ? s->rbuf.data + s->rpos : "", buffered(s));

	buf_reset(&s->rbuf);
	s->rpos = 0;
	while (ok && s->ssl && SSL_pending(s->ssl) > 0) {
		char chunk[4096];
		int rc;

		ERR_clear_error();
		rc = SSL_read(s->ssl, chunk, sizeof(chunk));
		if (rc <= 0) {
			ERR_clear_error();
			break;
		}
		s->bytes_in += (size_t)rc;
		ok = buf_append(out, chunk, (size_t)rc);
		OPENSSL_cleanse(chunk, sizeof(chunk));
	}
	return ok;
}

void stream_push_input(struct stream *s, const void *p, size_t n)
{
	struct buf nb = BUF_INIT(BUF_NOLIMIT);

	if (n == 0)
		return;
	if (!buf_append(&nb, p, n) || !buf_append(&nb, s->rbuf.data ? s->rbuf.data + s->rpos : "", buffered(s)))
		panic("stream_push_input: %zu bytes", n);
	buf_free(&s->rbuf);
	s->rbuf = nb;
	s->rpos = 0;
}

size_t stream_discard_input(struct stream *s)
{
	size_t n = buffered(s);

	buf_reset(&s->rbuf);
	s->rpos = 0;
	/* Decrypted bytes OpenSSL holds are read out without waiting: SSL_pending bytes never need the socket. */
	while (s->ssl && SSL_pending(s->ssl) > 0) {
		char scratch[4096];
		int rc;

		ERR_clear_error();
		rc = SSL_read(s->ssl, scratch, sizeof(scratch));
		if (rc <= 0) {
			ERR_clear_error();
			break;
		}
		s->bytes_in += (size_t)rc;
		n += (size_t)rc;
	}
	return n;
}

/* Pass the write buffer through the encoder into zout. */
static void encode_wbuf(struct stream *s, enum stream_codec_flush fl)
{
	if (s->wbuf.len == 0 && fl != STREAM_CODEC_NONE && !s->zdirty)
		return;
	if (!s->codec.encode(s->codec.ctx, s->wbuf.data, s->wbuf.len, fl, &s->zout))
		panic("stream: encoder failed");
	s->zdirty = fl == STREAM_CODEC_NONE;
	buf_reset(&s->wbuf);
}

enum stream_result stream_flush(struct stream *s)
{
	enum stream_result r;

	if (s->werr != STREAM_OK)
		return s->werr;
	if (s->codec.encode) {
		encode_wbuf(s, STREAM_CODEC_SYNC);
		if (s->zout.len == 0)
			return STREAM_OK;
		begin_call(s, s->write_ms);
		r = io_write_all(s, s->zout.data, s->zout.len);
		buf_reset(&s->zout);
		if (r != STREAM_OK)
			s->werr = r;
		return r;
	}
	if (s->wbuf.len == 0)
		return STREAM_OK;
	begin_call(s, s->write_ms);
	r = io_write_all(s, s->wbuf.data, s->wbuf.len);
	buf_reset(&s->wbuf);
	if (r != STREAM_OK)
		s->werr = r;
	return r;
}

void stream_set_codec(struct stream *s, const struct stream_codec *c)
{
	if (s->codec.decode)
		panic("stream_set_codec: a codec is active already");
	s->codec = *c;
	buf_init(&s->zin, BUF_NOLIMIT);
	buf_init(&s->zout, BUF_NOLIMIT);
	/* input the peer sent after the command that started the codec is already encoded */
	if (buffered(s) && !buf_append(&s->zin, s->rbuf.data + s->rpos, buffered(s)))
		panic("stream: read buffer");
	buf_reset(&s->rbuf);
	s->rpos = 0;
}

bool stream_has_codec(const struct stream *s)
{
	return s->codec.decode != NULL;
}

void stream_codec_boundary(struct stream *s)
{
	if (s->codec.encode && s->werr == STREAM_OK)
		encode_wbuf(s, STREAM_CODEC_FULL);
}

enum stream_result stream_write(struct stream *s, const void *p, size_t n)
{
	enum stream_result r;

	if (s->werr != STREAM_OK)
		return s->werr;
	if (buf_append(&s->wbuf, p, n))
		return STREAM_OK;
	if ((r = stream_flush(s)) != STREAM_OK)
		return r;
	if (buf_append(&s->wbuf, p, n))
		return STREAM_OK;
	/* Larger than the whole buffer: write it through rather than copy it in pieces. */
	begin_call(s, s->write_ms);
	if (s->codec.encode) {
		if (!s->codec.encode(s->codec.ctx, p, n, STREAM_CODEC_NONE, &s->zout))
			panic("stream: encoder failed");
		s->zdirty = true;
		r = io_write_all(s, s->zout.data, s->zout.len);
		buf_reset(&s->zout);
	} else {
		r = io_write_all(s, p, n);
	}
	if (r != STREAM_OK)
		s->werr = r;
	return r;
}

enum stream_result stream_puts(struct stream *s, const char *str)
{
	return stream_write(s, str, strlen(str));
}

enum stream_result stream_vprintf(struct stream *s, const char *fmt, va_list ap)
{
	struct buf tmp = BUF_INIT(BUF_NOLIMIT);
	enum stream_result r;

	if (!buf_vprintf(&tmp, fmt, ap))
		panic("stream_printf: cannot format \"%s\"", fmt);
	r = stream_write(s, tmp.data ? tmp.data : "", tmp.len);
	buf_free(&tmp);
	return r;
}

enum stream_result stream_printf(struct stream *s, const char *fmt, ...)
{
	va_list ap;
	enum stream_result r;

	va_start(ap, fmt);
	r = stream_vprintf(s, fmt, ap);
	va_end(ap);
	return r;
}

/* Runs SSL_accept/SSL_connect to completion under the write timeout for sends and read timeout for receives. */
static enum stream_result handshake(struct stream *s, const char *what)
{
	enum stream_result r;

	begin_call(s, s->read_ms);
	for (;;) {
		int rc, e;

		ERR_clear_error();
		errno = 0;
		rc = SSL_do_handshake(s->ssl);
		if (rc == 1)
			return STREAM_OK;
		e = SSL_get_error(s->ssl, rc);
		r = tls_wait(s, rc, e == SSL_ERROR_WANT_WRITE ? s->write_ms : s->read_ms, what);
		if (r == STREAM_EOF) {
			if (buf_cstr(&s->err)[0] == '\0')
				set_err(s, "%s: connection closed by peer", what);
			return STREAM_ERROR;
		}
		if (r != STREAM_OK)
			return r;
	}
}

static enum stream_result start_tls(struct stream *s, SSL_CTX *ctx, bool server, const char *servername)
{
	enum stream_result r;

	if (s->ssl) {
		set_err(s, "TLS already active");
		return STREAM_ERROR;
	}
	if ((r = stream_flush(s)) != STREAM_OK)
		return r;
	s->ssl = SSL_new(ctx);
	if (s->ssl == NULL) {
		set_tls_err(s, "SSL_new");
		return STREAM_ERROR;
	}
	if (!SSL_set_fd(s->ssl, s->fd)) {
		set_tls_err(s, "SSL_set_fd");
		return STREAM_ERROR;
	}
	/* A peer that closes without close_notify is an EOF to us: mail protocols end at QUIT, not at TLS level. */
	SSL_set_options(s->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_set_mode(s->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (server) {
		SSL_set_accept_state(s->ssl);
	} else {
		SSL_set_connect_state(s->ssl);
		if (servername && *servername) {
			unsigned char addr[16];
			bool is_ip = inet_pton(AF_INET, servername, addr) == 1 || inet_pton(AF_INET6, servername, addr) == 1;

			/* SNI carries host names only (RFC 6066); an address literal is still checked against the cert. */
			if (!is_ip && !SSL_set_tlsext_host_name(s->ssl, servername)) {
				set_tls_err(s, "SNI");
				return STREAM_ERROR;
			}
			if (is_ip ? !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), servername)
				  : !SSL_set1_host(s->ssl, servername)) {
				set_tls_err(s, "peer name");
				return STREAM_ERROR;
			}
		}
	}
	return handshake(s, server ? "TLS handshake (server)" : "TLS handshake (client)");
}

enum stream_result stream_starttls_server(struct stream *s, SSL_CTX *ctx)
{
	size_t n = stream_pending(s);

	if (!s->ssl && n > 0) {
		stream_discard_input(s);
		set_err(s, "%zu bytes of plaintext pipelined after STARTTLS discarded", n);
		return STREAM_ERROR;
	}
	return start_tls(s, ctx, true, NULL);
}

enum stream_result stream_starttls_client(struct stream *s, SSL_CTX *ctx, const char *servername)
{
	/* A server that answers before our handshake is broken or hostile; its bytes must not be read as TLS data. */
	if (!s->ssl && stream_pending(s) > 0) {
		size_t n = stream_discard_input(s);
		set_err(s, "server sent %zu unexpected bytes before the TLS handshake", n);
		return STREAM_ERROR;
	}
	return start_tls(s, ctx, false, servername);
}

bool stream_tls_info(const struct stream *s, const char **proto, const char **cipher, int *bits)
{
	const SSL_CIPHER *c;

	if (s->ssl == NULL || !SSL_is_init_finished(s->ssl) || (c = SSL_get_current_cipher(s->ssl)) == NULL)
		return false;
	if (proto)
		*proto = SSL_get_version(s->ssl);
	if (cipher)
		*cipher = SSL_CIPHER_get_name(c);
	if (bits)
		*bits = SSL_CIPHER_get_bits(c, NULL);
	return true;
}
