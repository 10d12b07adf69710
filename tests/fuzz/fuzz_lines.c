/* Fuzz the stream line reader through a real fd: every stream_read_line()/stream_read_exact() result is checked
 * against a plain re-parse of the same bytes (line content, CRLF vs LF, TOOLONG past maxlen with the first maxlen
 * bytes kept, the rest of an over-long line skipped, EOF mid-line). In "trickle" mode the input arrives in small
 * pieces over a socketpair with a zero read timeout, so reads time out mid-line again and again and must lose
 * nothing when called again. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)
#define INPUT_MAX 65536

struct feeder {
	int fd;
	const uint8_t *data;
	size_t size, written;
	uint32_t seed;
};

/* Trickle mode: called on every timeout; writes the next piece, or closes when all is written. */
static void feed_more(struct feeder *f)
{
	size_t take;

	CHECK(f->fd >= 0);	/* a timeout after the close would mean the reader lost track */
	if (f->written == f->size) {
		close(f->fd);
		f->fd = -1;
		return;
	}
	f->seed = f->seed * 1103515245u + 12345u;
	take = 1 + (f->seed >> 16) % 40;
	if (take > f->size - f->written)
		take = f->size - f->written;
	CHECK(write(f->fd, f->data + f->written, take) == (ssize_t)take);
	f->written += take;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fds[2];
	size_t maxlen, pos = 0;
	unsigned mode;
	bool trickle;
	struct stream *s;
	struct buf line = BUF_INIT(BUF_NOLIMIT);
	struct feeder f;

	if (size < 2)
		return 0;
	maxlen = data[0] == 255 ? 5000 : data[0];
	mode = data[1];
	trickle = mode & 2;
	data += 2;
	size -= 2;
	if (size > INPUT_MAX)
		size = INPUT_MAX;
	f.data = data;
	f.size = size;
	f.written = 0;
	f.seed = mode * 2654435761u;
	if (trickle) {
		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
		f.fd = fds[1];
	} else {
		CHECK(pipe(fds) == 0);
		(void)fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
		while (f.written < size) {
			ssize_t w = write(fds[1], data + f.written, size - f.written);
			CHECK(w > 0);
			f.written += (size_t)w;
		}
		close(fds[1]);
		f.fd = -1;
	}
	s = stream_new(fds[0]);
	stream_set_timeouts(s, trickle ? 0 : 1000, 1000);

	for (unsigned op = 0;; op++) {
		enum stream_result r;

		/* some modes interleave fixed-size reads, as BDAT does between command lines */
		if ((mode & 1) && op % 3 == 2) {
			size_t n = (op * 7 + mode) % 13;
			buf_reset(&line);
			while ((r = stream_read_exact(s, &line, n - line.len)) == STREAM_TIMEOUT)
				feed_more(&f);
			if (size - pos < n) {
				CHECK(r == STREAM_EOF);
				break;
			}
			CHECK(r == STREAM_OK);
			CHECK(line.len == n && (n == 0 || memcmp(line.data, data + pos, n) == 0));
			pos += n;
			continue;
		}
		while ((r = stream_read_line(s, &line, maxlen)) == STREAM_TIMEOUT)
			feed_more(&f);
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		if (nl == NULL) {
			size_t rest = size - pos, keep = rest < maxlen ? rest : maxlen;
			CHECK(r == STREAM_EOF);
			CHECK(stream_last_eol(s) == STREAM_EOL_NONE);
			/* a line that timed out while already too long keeps nothing of its start */
			CHECK(line.len <= keep && (line.len == 0 || memcmp(line.data, data + pos, line.len) == 0));
			if (!trickle)
				CHECK(line.len == keep);
			break;
		}
		size_t len = (size_t)(nl - (data + pos));
		bool crlf = len > 0 && data[pos + len - 1] == '\r';
		if (crlf)
			len--;
		if (len > maxlen) {
			CHECK(r == STREAM_TOOLONG);
			CHECK(line.len <= maxlen);
			if (!trickle)
				CHECK(line.len == maxlen);
		} else {
			CHECK(r == STREAM_OK);
			CHECK(line.len == len);
			CHECK(stream_last_eol(s) == (crlf ? STREAM_EOL_CRLF : STREAM_EOL_LF));
		}
		if (!trickle)
			CHECK(stream_last_eol(s) == (crlf ? STREAM_EOL_CRLF : STREAM_EOL_LF));
		CHECK(line.len == 0 || memcmp(line.data, data + pos, line.len) == 0);
		pos = (size_t)(nl - data) + 1;
	}
	CHECK(stream_bytes_in(s) == size);
	CHECK(stream_pending(s) == 0);
	if (f.fd >= 0)
		close(f.fd);
	stream_free(&s);
	buf_free(&line);
	return 0;
}
