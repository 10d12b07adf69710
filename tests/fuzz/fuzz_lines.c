/* Fuzz the stream line reader through a real pipe: every stream_read_line()/stream_read_exact() result is
 * checked against a plain re-parse of the same bytes (line content, CRLF vs LF, TOOLONG past maxlen with the
 * first maxlen bytes kept, the rest of an over-long line skipped, EOF mid-line). */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)
#define INPUT_MAX 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fds[2];
	size_t maxlen, pos = 0, written = 0;
	unsigned mode;
	struct stream *s;
	struct buf line = BUF_INIT(BUF_NOLIMIT);

	if (size < 2)
		return 0;
	maxlen = data[0] == 255 ? 5000 : data[0];
	mode = data[1];
	data += 2;
	size -= 2;
	if (size > INPUT_MAX)
		size = INPUT_MAX;
	if (pipe(fds) != 0)
		__builtin_trap();
	(void)fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
	while (written < size) {
		ssize_t w = write(fds[1], data + written, size - written);
		CHECK(w > 0);
		written += (size_t)w;
	}
	close(fds[1]);
	s = stream_new(fds[0]);
	stream_set_timeouts(s, 1000, 1000);

	for (unsigned op = 0;; op++) {
		/* some modes interleave fixed-size reads, as BDAT does between command lines */
		if ((mode & 1) && op % 3 == 2) {
			size_t n = (op * 7 + mode) % 13;
			buf_reset(&line);
			enum stream_result r = stream_read_exact(s, &line, n);
			if (size - pos < n) {
				CHECK(r == STREAM_EOF);
				break;
			}
			CHECK(r == STREAM_OK);
			CHECK(line.len == n && (n == 0 || memcmp(line.data, data + pos, n) == 0));
			pos += n;
			continue;
		}
		enum stream_result r = stream_read_line(s, &line, maxlen);
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		if (nl == NULL) {
			size_t rest = size - pos, keep = rest < maxlen ? rest : maxlen;
			CHECK(r == STREAM_EOF);
			CHECK(stream_last_eol(s) == STREAM_EOL_NONE);
			CHECK(line.len == keep && (keep == 0 || memcmp(line.data, data + pos, keep) == 0));
			break;
		}
		size_t len = (size_t)(nl - (data + pos));
		bool crlf = len > 0 && data[pos + len - 1] == '\r';
		if (crlf)
			len--;
		CHECK(stream_last_eol(s) == (crlf ? STREAM_EOL_CRLF : STREAM_EOL_LF));
		if (len > maxlen) {
			CHECK(r == STREAM_TOOLONG);
			CHECK(line.len == maxlen);
		} else {
			CHECK(r == STREAM_OK);
			CHECK(line.len == len);
		}
		CHECK(line.len == 0 || memcmp(line.data, data + pos, line.len) == 0);
		CHECK(line.len <= maxlen);
		pos = (size_t)(nl - data) + 1;
	}
	CHECK(stream_bytes_in(s) == size);
	CHECK(stream_pending(s) == 0);
	stream_free(&s);
	buf_free(&line);
	return 0;
}
