/* ipc: codec round trips and strict rejection, the incremental reader, and the blocking side over UNIX sockets
 * (listen, connect, peer credentials, descriptor passing, calls and their timeouts). The libevent server and
 * client are tested in test_ipc_event.c. */
#include "ipc_test_common.h"

/* ---- codec ---- */

static void test_roundtrip(void **state)
{
	(void)state;
	struct ipc_msg *m = deliver_msg(), *d = NULL;
	struct buf b = encode(m), err = BUF_INIT(1024);
	const char *s;
	const void *p;
	size_t len;
	uint64_t u64;
	uint32_t u32;
	struct ipc_iter it;

	assert_true(ipc_frame_decode(&test_proto, b.data, b.len, IPC_MAX_FRAME_DEFAULT, -1, &d, &err));
	assert_int_equal(d->type, T_DELIVER);
	assert_int_equal(d->id, 77);
	assert_int_equal(d->flags, 0);
	assert_int_equal(d->fd, -1);
	assert_true(ipc_get_str(d, D_QID, &s, &len));
	assert_string_equal(s, "4AbC9");
	assert_int_equal(len, 5);
	assert_true(ipc_get_u64(d, D_SIZE, &u64));
	assert_true(u64 == UINT64_MAX);
	assert_true(ipc_get_u32(d, D_FLAGS, &u32));
	assert_true(u32 == UINT32_MAX);
	assert_int_equal(ipc_count(d, D_RCPT), 3);
	assert_int_equal(ipc_count(d, D_BLOB), 2);
	assert_int_equal(ipc_count(d, 99), 0);

	/* repeated fields come back in the order they were put, interleaving ignored */
	ipc_iter_init(&it, d, D_RCPT);
	assert_true(ipc_iter_str(&it, &s, &len));
	assert_string_equal(s, "a@example.org");
	assert_true(ipc_iter_str(&it, &s, &len));
	assert_string_equal(s, "");
	assert_int_equal(len, 0);
	assert_true(ipc_iter_str(&it, &s, NULL));
	assert_string_equal(s, "c@example.org");
	assert_false(ipc_iter_str(&it, &s, NULL));
	assert_false(ipc_iter_str(&it, &s, NULL));

	ipc_iter_init(&it, d, D_BLOB);
	assert_true(ipc_iter_bytes(&it, &p, &len));
	assert_int_equal(len, 5);
	assert_memory_equal(p, "\0\1\2\xff\0", 5);
	assert_true(ipc_iter_bytes(&it, &p, &len));
	assert_int_equal(len, 0);
	assert_false(ipc_iter_bytes(&it, &p, &len));
	assert_true(ipc_get_bytes(d, D_BLOB, &p, &len));
	assert_int_equal(len, 5);

	/* reply helpers keep the id and set the reply flag; error messages carry code and text */
	struct ipc_msg *r = ipc_msg_error(d, 42, "no such queue file");
	struct buf rb = encode(r);
	struct ipc_msg *rd = NULL;
	uint32_t code;
	assert_true(ipc_frame_decode(&test_proto, rb.data, rb.len, 0 + IPC_MAX_FRAME_DEFAULT, -1, &rd, &err));
	assert_int_equal(rd->id, 77);
	assert_true(rd->flags & IPC_F_REPLY);
	assert_true(ipc_msg_is_error(rd, &code, &s));
	assert_int_equal(code, 42);
	assert_string_equal(s, "no such queue file");
	assert_false(ipc_msg_is_error(d, NULL, NULL));
	assert_string_equal(ipc_type_name(&test_proto, T_DELIVER), "deliver");
	assert_string_equal(ipc_type_name(&test_proto, 1234), "unknown");

	/* an empty message is a valid frame of exactly the header */
	struct ipc_msg *e = ipc_msg_new(T_QUIT), *ed = NULL;
	struct buf eb = encode(e);
	assert_int_equal(eb.len, IPC_HDR_LEN);
	assert_true(ipc_frame_decode(&test_proto, eb.data, eb.len, IPC_MAX_FRAME_DEFAULT, -1, &ed, &err));
	assert_int_equal(ed->nfields, 0);

	ipc_msg_free(&e);
	ipc_msg_free(&ed);
	ipc_msg_free(&r);
	ipc_msg_free(&rd);
	ipc_msg_free(&m);
	ipc_msg_free(&d);
	assert_null(d);
	buf_free(&b);
	buf_free(&rb);
	buf_free(&eb);
	buf_free(&err);
}

static void test_wire_layout(void **state)
{
	(void)state;
	/* the documented byte layout, so other implementations (tests in Python) can speak it */
	struct ipc_msg *m = ipc_msg_new(0x01020304);
	m->id = 0x1122334455667788ull;
	ipc_put_u32(m, 0x0a0b, 0xdeadbeef);
	struct buf b = encode(m);
	static const uint8_t want[] = {
		'P', 'I', 1, 0, 0, 0, 0, 0, 4, 3, 2, 1, 12, 0, 0, 0,
		0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
		0x0b, 0x0a, 1, 0, 4, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde,
	};
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));
	ipc_msg_free(&m);
	buf_free(&b);
}

static void test_truncated_every_length(void **state)
{
	(void)state;
	struct ipc_msg *m = deliver_msg(), *d;
	struct buf b = encode(m), err = BUF_INIT(4096);

	for (size_t len = 0; len < b.len; len++) {
		d = NULL;
		buf_reset(&err);
		assert_false(ipc_frame_decode(&test_proto, b.data, len, IPC_MAX_FRAME_DEFAULT, -1, &d, &err));
		assert_null(d);
		assert_true(strstr(buf_cstr(&err), "truncated") != NULL);
	}
	/* a payload length that cuts a field short: shrink the declared length by every amount */
	for (size_t cut = 1; cut < b.len - IPC_HDR_LEN; cut++) {
		struct buf t = BUF_INIT(BUF_NOLIMIT);
		uint8_t *h;
		buf_append(&t, b.data, b.len - cut);
		h = (uint8_t *)t.data;
		put32(h + 12, (uint32_t)(b.len - cut - IPC_HDR_LEN));
		d = NULL;
		buf_reset(&err);
		/* only cuts at field boundaries can decode, and then a required rcpt may still be present */
		if (ipc_frame_decode(&test_proto, t.data, t.len, IPC_MAX_FRAME_DEFAULT, -1, &d, &err)) {
			assert_true(ipc_count(d, D_RCPT) >= 1);
			ipc_msg_free(&d);
		}
		buf_free(&t);
	}
	/* the incremental reader fed any strict prefix just asks for more */
	for (size_t len = 0; len < b.len; len++) {
		struct ipc_reader r;
		size_t off = 0;
		ipc_reader_init(&r, &test_proto, 0);
		while (off < len) {
			size_t n = len - off < ipc_reader_want(&r) ? len - off : ipc_reader_want(&r);
			assert_true(ipc_reader_feed(&r, b.data + off, n, &err));
			off += n;
		}
		assert_int_equal(ipc_reader_next(&r, &d, &err), 0);
		assert_int_equal(ipc_reader_want(&r), len < IPC_HDR_LEN ? IPC_HDR_LEN - len : b.len - len);
		ipc_reader_free(&r);
	}
	ipc_msg_free(&m);
	buf_free(&b);
	buf_free(&err);
}

static void test_trailing_rejected(void **state)
{
	(void)state;
	struct ipc_msg *m = deliver_msg();
	struct buf b = encode(m);

	buf_putc(&b, 0);
	expect_reject(b.data, b.len, "trailing");
	/* trailing bytes inside the declared payload: a partial field header */
	for (int extra = 1; extra < IPC_FIELD_HDR_LEN; extra++) {
		put32((uint8_t *)b.data + 12, (uint32_t)(b.len - IPC_HDR_LEN));
		expect_reject(b.data, b.len, "truncated field header");
		buf_putc(&b, 0);
	}
	/* the reader is never fed past the frame it is on */
	struct ipc_reader r;
	struct buf err = BUF_INIT(1024);
	ipc_reader_init(&r, &test_proto, 0);
	assert_false(ipc_reader_feed(&r, b.data, IPC_HDR_LEN + 1000000, &err));
	ipc_reader_free(&r);
	ipc_msg_free(&m);
	buf_free(&b);
	buf_free(&err);
}

static void test_oversized_before_alloc(void **state)
{
	(void)state;
	uint8_t h[IPC_HDR_LEN] = { 'P', 'I', 1, 0, 0, 0, 0, 0, T_PING, 0, 0, 0 };
	struct buf err = BUF_INIT(1024);
	struct ipc_hdr hdr;
	struct ipc_reader r;
	struct ipc_msg *m;

	put32(h + 12, 100u * 1024 * 1024);
	assert_false(ipc_hdr_decode(h, IPC_MAX_FRAME_DEFAULT, &hdr, &err));
	assert_non_null(strstr(buf_cstr(&err), "exceeds"));
	/* exactly at the limit is allowed, one more byte is not */
	put32(h + 12, 4096 - IPC_HDR_LEN);
	assert_true(ipc_hdr_decode(h, 4096, &hdr, &err));
	put32(h + 12, 4096 - IPC_HDR_LEN + 1);
	assert_false(ipc_hdr_decode(h, 4096, &hdr, &err));
	/* even a configured limit cannot pass the hard one, and 0xffffffff does not wrap */
	put32(h + 12, UINT32_MAX);
	assert_false(ipc_hdr_decode(h, SIZE_MAX, &hdr, &err));

	put32(h + 12, 100u * 1024 * 1024);
	ipc_reader_init(&r, &test_proto, 0);
	buf_reset(&err);
	assert_false(ipc_reader_feed(&r, h, sizeof(h), &err));
	assert_true(r.in.cap < 4096);
	ipc_reader_free(&r);

	/* over a socket: the header alone is refused at once, no wait for the payload */
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[0], h, sizeof(h)), sizeof(h));
	buf_reset(&err);
	int64_t t0 = mono_ms();
	assert_int_equal(ipc_recv(sv[1], &test_proto, 0, 5000, &m, &err), -1);
	assert_true(mono_ms() - t0 < 1000);
	assert_non_null(strstr(buf_cstr(&err), "exceeds"));
	close(sv[0]);
	close(sv[1]);
	buf_free(&err);
}

static void test_strict_rejections(void **state)
{
	(void)state;
	struct ipc_msg *m;
	struct buf b;

	m = ipc_msg_new(99);
	b = encode(m);
	expect_reject(b.data, b.len, "unknown message type 99");
	buf_free(&b);
	ipc_msg_free(&m);

	m = ipc_msg_new(T_PING);
	ipc_put_u32(m, F_SEQ, 1);
	ipc_put_u32(m, 9, 1);
	b = encode(m);
	expect_reject(b.data, b.len, "unknown field tag 9");
	buf_free(&b);
	ipc_msg_free(&m);

	m = ipc_msg_new(T_PING);
	ipc_put_u64(m, F_SEQ, 1);
	b = encode(m);
	expect_reject(b.data, b.len, "seq is u64, expected u32");
	buf_free(&b);
	ipc_msg_free(&m);

	m = ipc_msg_new(T_PING);
	ipc_put_bytes(m, F_TEXT, "x", 1);
	ipc_put_u32(m, F_SEQ, 1);
	b = encode(m);
	expect_reject(b.data, b.len, "text is bytes, expected string");
	buf_free(&b);
	ipc_msg_free(&m);

	m = ipc_msg_new(T_PING);
	ipc_put_bytes(m, F_SEQ, "x", 1);
	b = encode(m);
	expect_reject(b.data, b.len, "seq is bytes, expected u32");
	/* the same frame with the field's type byte patched to u32 but length 1 */
	b.data[IPC_HDR_LEN + 2] = IPC_T_U32;
	expect_reject(b.data, b.len, "bad length 1");
	/* reserved byte of a field header */
	b.data[IPC_HDR_LEN + 2] = IPC_T_STR;
	b.data[IPC_HDR_LEN + 3] = 1;
	expect_reject(b.data, b.len, "reserved field byte");
	buf_free(&b);
	ipc_msg_free(&m);

	m = ipc_msg_new(T_PING);
	ipc_put_u32(m, F_SEQ, 1);
	ipc_put_bytes(m, F_TEXT, "a\0b", 3);
	b = encode(m);
	b.data[IPC_HDR_LEN + 12 + 2] = IPC_T_STR;
	expect_reject(b.data, b.len, "NUL byte");
	buf_free(&b);
	ipc_msg_free(&m);

	m = ipc_msg_new(T_PING);
	ipc_put_u32(m, F_SEQ, 1);
	ipc_put_u32(m, F_SEQ, 2);
	b = encode(m);
	expect_reject(b.data, b.len, "seq repeated");
	buf_free(&b);
	ipc_msg_free(&m);

	m = ipc_msg_new(T_DELIVER);
	ipc_put_str(m, D_QID, "q");
	ipc_put_u64(m, D_SIZE, 1);
	b = encode(m);
	expect_reject(b.data, b.len, "required field rcpt missing");
	buf_free(&b);
	ipc_msg_free(&m);

	m = ipc_msg_new(T_PING);
	ipc_put_u32(m, F_SEQ, 1);
	b = encode(m);
	b.data[0] = 'X';
	expect_reject(b.data, b.len, "bad magic");
	b.data[0] = 'P';
	b.data[4] = 0x80;
	expect_reject(b.data, b.len, "unknown IPC header flags");
	b.data[4] = 0;
	b.data[6] = 1;
	expect_reject(b.data, b.len, "reserved IPC header bytes");
	b.data[6] = 0;
	memset(b.data + 8, 0, 4);
	expect_reject(b.data, b.len, "type 0");
	b.data[8] = T_PING;
	/* a field length pointing past the payload */
	put32((uint8_t *)b.data + IPC_HDR_LEN + 4, 5);
	expect_reject(b.data, b.len, "claims 5 bytes");
	put32((uint8_t *)b.data + IPC_HDR_LEN + 4, UINT32_MAX);
	expect_reject(b.data, b.len, "claims");
	/* a descriptor announced but not received */
	put32((uint8_t *)b.data + IPC_HDR_LEN + 4, 4);
	b.data[4] = IPC_F_FD;
	expect_reject(b.data, b.len, "announced descriptor missing");
	buf_free(&b);
	ipc_msg_free(&m);
}

static void test_version_mismatch(void **state)
{
	(void)state;
	struct ipc_msg *m = ipc_msg_new(T_QUIT);
	struct buf b = encode(m);

	b.data[2] = 2;
	expect_reject(b.data, b.len, "IPC version mismatch: peer speaks version 2, we speak version 1");
	b.data[2] = 1;
	b.data[3] = 1;
	expect_reject(b.data, b.len, "version 257");
	buf_free(&b);
	ipc_msg_free(&m);
}

static void test_reader_chunks(void **state)
{
	(void)state;
	struct ipc_msg *a = deliver_msg(), *z = ipc_msg_new(T_QUIT), *d;
	struct buf stream = encode(a), err = BUF_INIT(1024);
	struct ipc_reader r;

	ipc_msg_encode(z, &stream);
	ipc_msg_encode(a, &stream);
	/* every chunk size from 1 to the whole stream yields the same three messages */
	for (size_t chunk = 1; chunk <= stream.len; chunk++) {
		size_t off = 0, got = 0;
		ipc_reader_init(&r, &test_proto, 0);
		while (off < stream.len) {
			size_t n = stream.len - off;
			if (n > chunk)
				n = chunk;
			if (n > ipc_reader_want(&r))
				n = ipc_reader_want(&r);
			assert_true(ipc_reader_feed(&r, stream.data + off, n, &err));
			off += n;
			while (ipc_reader_next(&r, &d, &err) == 1) {
				assert_int_equal(d->type, got == 1 ? T_QUIT : T_DELIVER);
				if (got != 1)
					assert_int_equal(ipc_count(d, D_RCPT), 3);
				got++;
				ipc_msg_free(&d);
			}
		}
		assert_int_equal(got, 3);
		ipc_reader_free(&r);
	}
	ipc_msg_free(&a);
	ipc_msg_free(&z);
	buf_free(&stream);
	buf_free(&err);
}

/* ---- sockets, blocking ---- */

static void test_socketpair_call_and_fd(void **state)
{
	(void)state;
	int sv[2], p[2];
	struct buf err = BUF_INIT(1024);
	struct ipc_msg *req, *rep = NULL;
	pid_t pid;
	uint32_t seq;
	const char *s;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* echo server: answers PING with PONG; for FD reads the descriptor and answers with its content */
		struct ipc_msg *m, *r;
		close(sv[0]);
		while (ipc_recv(sv[1], &test_proto, 0, 2000, &m, &err) == 1) {
			r = ipc_msg_reply_to(m, T_PONG);
			if (m->type == T_FD) {
				char text[64] = "";
				int fd = ipc_msg_take_fd(m);
				ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
				if (n > 0)
					text[n] = '\0';
				close(fd);
				ipc_put_u32(r, F_SEQ, 0);
				ipc_put_str(r, F_TEXT, text);
			} else {
				ipc_get_u32(m, F_SEQ, &seq);
				ipc_put_u32(r, F_SEQ, seq + 1);
			}
			if (!ipc_send(sv[1], r, 2000, &err))
				_exit(2);
			ipc_msg_free(&r);
			ipc_msg_free(&m);
		}
		_exit(err.len ? 3 : 0);
	}
	close(sv[1]);
	for (uint32_t i = 0; i < 5; i++) {
		req = ipc_msg_new(T_PING);
		ipc_put_u32(req, F_SEQ, i * 10);
		assert_ok(ipc_call(sv[0], &test_proto, req, &rep, 1000, &err), &err);
		assert_true(req->id != 0);
		assert_int_equal(rep->id, req->id);
		assert_true(ipc_get_u32(rep, F_SEQ, &seq));
		assert_int_equal(seq, i * 10 + 1);
		ipc_msg_free(&req);
		ipc_msg_free(&rep);
	}
	/* descriptor passing: the peer reads what we wrote into a pipe it never opened */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(write(p[1], "through the socket", 18), 18);
	close(p[1]);
	req = ipc_msg_new(T_FD);
	ipc_msg_set_fd(req, p[0]);
	assert_ok(ipc_call(sv[0], &test_proto, req, &rep, 1000, &err), &err);
	assert_int_equal(req->fd, -1);	/* sent and closed */
	assert_true(ipc_get_str(rep, F_TEXT, &s, NULL));
	assert_string_equal(s, "through the socket");
	ipc_msg_free(&req);
	ipc_msg_free(&rep);

	close(sv[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	buf_free(&err);
}

static void test_fd_received_in_process(void **state)
{
	(void)state;
	int sv[2], p[2];
	struct buf err = BUF_INIT(1024);
	struct ipc_msg *m = ipc_msg_new(T_FD), *d = NULL;
	char c = 0;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(pipe(p), 0);
	ipc_msg_set_fd(m, p[1]);
	assert_true(ipc_send(sv[0], m, 500, &err));
	assert_int_equal(ipc_recv(sv[1], &test_proto, 0, 500, &d, &err), 1);
	assert_true(d->fd >= 0);
	assert_true(fcntl(d->fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(write(d->fd, "z", 1), 1);
	assert_int_equal(read(p[0], &c, 1), 1);
	assert_int_equal(c, 'z');
	ipc_msg_free(&d);	/* closes the received descriptor: the pipe now reads EOF */
	assert_int_equal(read(p[0], &c, 1), 0);

	/* a descriptor the header does not announce is refused (and closed) */
	struct ipc_msg *q = ipc_msg_new(T_QUIT);
	struct buf b = encode(q);
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct iovec iov = { b.data, b.len };
	struct msghdr mh = { 0 };
	int pp[2];
	assert_int_equal(pipe(pp), 0);
	memset(&cbuf, 0, sizeof(cbuf));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf.space;
	mh.msg_controllen = sizeof(cbuf.space);
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &pp[1], sizeof(int));
	assert_int_equal(sendmsg(sv[0], &mh, 0), (ssize_t)b.len);
	close(pp[1]);
	buf_reset(&err);
	assert_int_equal(ipc_recv(sv[1], &test_proto, 0, 500, &d, &err), -1);
	assert_non_null(strstr(buf_cstr(&err), "not announced"));
	assert_int_equal(read(pp[0], &c, 1), 0);	/* our copy was closed: EOF */
	close(pp[0]);

	/* a descriptor with a message whose table entry does not allow one */
	ipc_msg_free(&q);
	q = ipc_msg_new(T_QUIT);
	assert_int_equal(pipe(pp), 0);
	ipc_msg_set_fd(q, pp[1]);
	assert_true(ipc_send(sv[0], q, 500, &err));
	buf_reset(&err);
	assert_int_equal(ipc_recv(sv[1], &test_proto, 0, 500, &d, &err), -1);
	assert_non_null(strstr(buf_cstr(&err), "descriptor is not allowed"));
	assert_int_equal(read(pp[0], &c, 1), 0);
	close(pp[0]);

	/* two descriptors with one frame: refused, both closed */
	int fds[2];
	ipc_msg_free(&q);
	q = ipc_msg_new(T_FD);
	buf_reset(&b);
	q->fd = 0;	/* only to get the FD flag into the encoding; not ours to close */
	assert_true(ipc_msg_encode(q, &b));
	q->fd = -1;
	assert_int_equal(pipe(pp), 0);
	fds[0] = pp[1];
	fds[1] = dup(pp[1]);
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(2 * sizeof(int))];
	} cbuf2;
	memset(&cbuf2, 0, sizeof(cbuf2));
	iov.iov_base = b.data;
	iov.iov_len = b.len;
	mh.msg_control = cbuf2.space;
	mh.msg_controllen = sizeof(cbuf2.space);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	if (sendmsg(sv[0], &mh, 0) != (ssize_t)b.len)
		fail_msg("sendmsg: %s", strerror(errno));
	close(fds[0]);
	close(fds[1]);
	buf_reset(&err);
	assert_int_equal(ipc_recv(sv[1], &test_proto, 0, 500, &d, &err), -1);
	assert_non_null(strstr(buf_cstr(&err), "more than one descriptor"));
	assert_int_equal(read(pp[0], &c, 1), 0);	/* every copy of the write end was closed */
	close(pp[0]);

	ipc_msg_free(&q);
	buf_free(&b);
	ipc_msg_free(&m);
	close(p[0]);
	close(sv[0]);
	close(sv[1]);
	buf_free(&err);
}

static void test_call_timeout(void **state)
{
	(void)state;
	int sv[2];
	struct buf err = BUF_INIT(1024);
	struct ipc_msg *req = ipc_msg_new(T_PING), *rep = NULL;
	int64_t t0, dt;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ipc_put_u32(req, F_SEQ, 1);
	t0 = mono_ms();
	assert_false(ipc_call(sv[0], &test_proto, req, &rep, 200, &err));
	dt = mono_ms() - t0;
	assert_null(rep);
	assert_non_null(strstr(buf_cstr(&err), "timed out"));
	assert_true(dt >= 190 && dt < 1000);

	/* a peer that hangs up instead of answering */
	buf_reset(&err);
	close(sv[1]);
	req->id = 0;
	assert_false(ipc_call(sv[0], &test_proto, req, &rep, 200, &err));
	assert_true(err.len > 0);
	close(sv[0]);

	/* a reply with the wrong id is refused */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct ipc_msg *bad = ipc_msg_new(T_PONG);
	bad->flags = IPC_F_REPLY;
	bad->id = 999999;
	ipc_put_u32(bad, F_SEQ, 1);
	assert_true(ipc_send(sv[1], bad, 200, &err));
	buf_reset(&err);
	req->id = 0;
	assert_false(ipc_call(sv[0], &test_proto, req, &rep, 200, &err));
	assert_non_null(strstr(buf_cstr(&err), "out of order"));
	ipc_msg_free(&bad);
	close(sv[0]);
	close(sv[1]);
	ipc_msg_free(&req);
	buf_free(&err);
}

static void test_peer_cred_and_policy(void **state)
{
	(void)state;
	int sv[2];
	uid_t uid;
	gid_t gid;
	pid_t pid;
	struct buf err = BUF_INIT(1024);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_true(ipc_peer_cred(sv[0], &uid, &gid, &pid));
	assert_int_equal(uid, geteuid());
	assert_int_equal(gid, getegid());
	assert_int_equal(pid, getpid());
	assert_true(ipc_peer_cred(sv[0], NULL, NULL, NULL));

	struct ipc_peer_policy none = { 0 };
	assert_false(ipc_peer_check(sv[0], &none, &err));
	assert_non_null(strstr(buf_cstr(&err), "not allowed"));
	struct ipc_peer_policy same = { .allow_same_uid = true };
	assert_true(ipc_peer_check(sv[0], &same, &err));
	close(sv[0]);
	close(sv[1]);

	uid_t uids[] = { 1001, 1002 };
	gid_t gids[] = { 50 };
	struct ipc_peer_policy pol = { .allow_root = true, .uids = uids, .nuids = 2, .gids = gids, .ngids = 1 };
	assert_true(ipc_peer_allowed(&pol, 0, 999));
	assert_true(ipc_peer_allowed(&pol, 1002, 999));
	assert_true(ipc_peer_allowed(&pol, 4242, 50));
	assert_false(ipc_peer_allowed(&pol, 4242, 51));
	pol.allow_root = false;
	assert_false(ipc_peer_allowed(&pol, 0, 0));
	assert_int_equal(ipc_peer_cred(-1, &uid, NULL, NULL), false);
	buf_free(&err);
}

static void test_listen_connect(void **state)
{
	(void)state;
	char path[128], file[128];
	struct buf err = BUF_INIT(1024);
	struct stat st;
	int lfd, fd;
	pid_t pid;

	sock_path(path, sizeof(path));
	lfd = ipc_listen(path, 0600, 8);
	assert_true(lfd >= 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	/* a live socket is not stale */
	assert_int_equal(ipc_listen(path, 0600, 8), -1);
	assert_int_equal(errno, EADDRINUSE);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* forked server: two calls on two connections, then exit. The probe of the "live socket" check
		 * above arrives first as a connection closed without a frame: skipped. */
		for (int i = 0; i < 2; i++) {
			struct ipc_msg *m, *r;
			int c = accept(lfd, NULL, NULL);
			uid_t u;
			pid_t pp;
			if (c < 0 || !ipc_peer_cred(c, &u, NULL, &pp) || pp != getppid())
				_exit(2);
			int rc = ipc_recv(c, &test_proto, 0, 2000, &m, &err);
			if (rc == 0) {
				close(c);
				i--;
				continue;
			}
			if (rc != 1)
				_exit(3);
			r = ipc_msg_reply_to(m, T_PONG);
			ipc_put_u32(r, F_SEQ, 7);
			ipc_put_u32(r, F_UID, (uint32_t)u);
			if (!ipc_send(c, r, 2000, &err))
				_exit(4);
			ipc_msg_free(&r);
			ipc_msg_free(&m);
			close(c);
		}
		_exit(0);
	}
	close(lfd);
	for (int i = 0; i < 2; i++) {
		struct ipc_msg *req = ipc_msg_new(T_PING), *rep = NULL;
		uint32_t v;
		pid_t peer;
		fd = ipc_connect(path, 1000);
		assert_true(fd >= 0);
		assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
		assert_true(ipc_peer_cred(fd, NULL, NULL, &peer));
		/* the server side's credentials are those of whoever called listen(): this process */
		assert_int_equal(peer, getpid());
		ipc_put_u32(req, F_SEQ, 1);
		assert_ok(ipc_call(fd, &test_proto, req, &rep, 2000, &err), &err);
		assert_true(ipc_get_u32(rep, F_UID, &v));
		assert_int_equal(v, geteuid());
		ipc_msg_free(&req);
		ipc_msg_free(&rep);
		close(fd);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* nobody listens any more: the socket is stale and gets replaced; connecting to it now fails */
	assert_int_equal(ipc_connect(path, 100), -1);
	lfd = ipc_listen(path, 0660, 8);
	assert_true(lfd >= 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);
	close(lfd);
	unlink(path);
	assert_int_equal(ipc_connect(path, 100), -1);
	assert_int_equal(errno, ENOENT);

	/* a regular file is never removed */
	snprintf(file, sizeof(file), "%s/file", tmpdir);
	fd = open(file, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(ipc_listen(file, 0600, 8), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(stat(file, &st), 0);

	char longpath[200];
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(ipc_listen(longpath, 0600, 8), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	assert_int_equal(ipc_connect(longpath, 10), -1);
	buf_free(&err);
}

static void test_connect_backlog_timeout(void **state)
{
	(void)state;
	char path[128];
	int lfd, fds[64], n = 0, rc = 0;
	int64_t t0 = 0;

	sock_path(path, sizeof(path));
	lfd = ipc_listen(path, 0600, 1);
	assert_true(lfd >= 0);
	/* nobody accepts: once the backlog is full, connect gives up at its deadline */
	for (n = 0; n < 64; n++) {
		t0 = mono_ms();
		rc = fds[n] = ipc_connect(path, 60);
		if (rc < 0)
			break;
	}
	assert_true(n < 64);
	assert_int_equal(errno, ETIMEDOUT);
	assert_true(mono_ms() - t0 >= 55);
	assert_true(mono_ms() - t0 < 1000);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_wire_layout),
		cmocka_unit_test(test_truncated_every_length),
		cmocka_unit_test(test_trailing_rejected),
		cmocka_unit_test(test_oversized_before_alloc),
		cmocka_unit_test(test_strict_rejections),
		cmocka_unit_test(test_version_mismatch),
		cmocka_unit_test(test_reader_chunks),
		cmocka_unit_test(test_socketpair_call_and_fd),
		cmocka_unit_test(test_fd_received_in_process),
		cmocka_unit_test(test_call_timeout),
		cmocka_unit_test(test_peer_cred_and_policy),
		cmocka_unit_test_setup_teardown(test_listen_connect, setup_tmp, teardown_tmp),
		cmocka_unit_test_setup_teardown(test_connect_backlog_timeout, setup_tmp, teardown_tmp),
	};
	signal(SIGPIPE, SIG_IGN);
	log_set_debug(0);
	return cmocka_run_group_tests_name("ipc", tests, NULL, NULL);
}
