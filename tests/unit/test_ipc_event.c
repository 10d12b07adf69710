/* ipc: the libevent server (many clients, frames split to single bytes, limits, peer policy, backpressure) and
 * the async client (correlation by id, timeouts, late replies, protocol errors, freeing from callbacks). */
#include "ipc_test_common.h"

#include <event2/event.h>



#define MAX_STASH 16
static struct ipc_req *stash[MAX_STASH];
static size_t nstash;
static struct event_base *srv_base;

static void test_handler(struct ipc_req *rq, struct ipc_msg *m, void *arg)
{
	struct ipc_msg *r;
	uint32_t seq = 0;
	uid_t uid;

	(void)arg;
	switch (m->type) {
	case T_PING:
		ipc_get_u32(m, F_SEQ, &seq);
		ipc_req_peer(rq, &uid, NULL, NULL);
		r = ipc_msg_reply_to(m, T_PONG);
		ipc_put_u32(r, F_SEQ, seq + 1);
		ipc_put_u32(r, F_UID, (uint32_t)uid);
		ipc_reply(rq, r);
		break;
	case T_FD: {
		char text[64] = "";
		int fd = ipc_msg_take_fd(m);
		ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
		if (n > 0)
			text[n] = '\0';
		if (fd >= 0)
			close(fd);
		r = ipc_msg_new(T_PONG);
		ipc_put_u32(r, F_SEQ, 0);
		ipc_put_str(r, F_TEXT, text);
		ipc_reply(rq, r);
		break;
	}
	case T_SLOW:
		/* answered later (or never, if the client gives up first) */
		if (nstash < MAX_STASH)
			stash[nstash++] = rq;
		else
			ipc_reply_error(rq, 9, "too slow");
		break;
	case T_QUIT:
		r = ipc_msg_new(T_PONG);
		ipc_put_u32(r, F_SEQ, 0);
		ipc_reply(rq, r);
		{
			/* a moment for the reply to be written: a stopped server drops unsent output */
			struct timeval tv = { 0, 50000 };
			event_base_loopexit(srv_base, &tv);
		}
		break;
	default:
		ipc_reply_error(rq, 5, "unsupported");
	}
}

static void release_stash(void)
{
	for (size_t i = 0; i < nstash; i++)
		ipc_reply_error(stash[i], 1, "late");
	nstash = 0;
}

/* Fork a server process on lfd running the libevent server; it exits 0 after T_QUIT. */
static pid_t spawn_event_server(int lfd, int idle_ms, size_t max_frame)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct ipc_server_opts o = { .proto = &test_proto, .handler = test_handler, .max_frame = max_frame,
		                             .idle_timeout_ms = idle_ms };
		struct ipc_server *s;
		struct timeval limit = { 10, 0 };

		srv_base = event_base_new();
		s = ipc_server_new(srv_base, lfd, &o);
		event_base_loopexit(srv_base, &limit);	/* never outlive a broken test */
		event_base_dispatch(srv_base);
		release_stash();
		ipc_server_free(&s);
		event_base_free(srv_base);
		close(lfd);
		_exit(0);
	}
	close(lfd);
	return pid;
}

static void quit_server(const char *path, pid_t pid)
{
	struct buf err = BUF_INIT(1024);
	struct ipc_msg *q = ipc_msg_new(T_QUIT), *r = NULL;
	int fd = ipc_connect(path, 1000), status;

	assert_true(fd >= 0);
	assert_ok(ipc_call(fd, &test_proto, q, &r, 2000, &err), &err);
	ipc_msg_free(&q);
	ipc_msg_free(&r);
	close(fd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	buf_free(&err);
}

static void ping(int fd, uint32_t seq)
{
	struct buf err = BUF_INIT(1024);
	struct ipc_msg *q = ipc_msg_new(T_PING), *r = NULL;
	uint32_t v;

	ipc_put_u32(q, F_SEQ, seq);
	if (!ipc_call(fd, &test_proto, q, &r, 2000, &err))
		fail_msg("ping: %s", buf_cstr(&err));
	assert_true(ipc_get_u32(r, F_SEQ, &v));
	assert_int_equal(v, seq + 1);
	ipc_msg_free(&q);
	ipc_msg_free(&r);
	buf_free(&err);
}

static void test_event_server_clients(void **state)
{
	(void)state;
	char path[128];
	struct buf err = BUF_INIT(1024), frame = BUF_INIT(BUF_NOLIMIT);
	struct ipc_msg *q, *r;
	int lfd, a, b;
	pid_t pid;

	sock_path(path, sizeof(path));
	lfd = ipc_listen(path, 0600, 8);
	assert_true(lfd >= 0);
	pid = spawn_event_server(lfd, 0, 0);

	/* two clients at once, requests interleaved and answered on the right connection */
	a = ipc_connect(path, 1000);
	b = ipc_connect(path, 1000);
	assert_true(a >= 0 && b >= 0);
	q = ipc_msg_new(T_PING);
	q->id = 100;
	ipc_put_u32(q, F_SEQ, 1000);
	assert_true(ipc_send(a, q, 1000, &err));
	ping(b, 5);
	assert_int_equal(ipc_recv(a, &test_proto, 0, 2000, &r, &err), 1);
	assert_int_equal(r->id, 100);
	assert_true(r->flags & IPC_F_REPLY);
	ipc_msg_free(&r);
	ping(a, 6);
	ipc_msg_free(&q);

	/* a client that sends its frame one byte at a time */
	q = ipc_msg_new(T_PING);
	q->id = 4242;
	ipc_put_u32(q, F_SEQ, 41);
	ipc_put_str(q, F_TEXT, "slowly, slowly");
	assert_true(ipc_msg_encode(q, &frame));
	for (size_t i = 0; i < frame.len; i++) {
		struct pollfd pfd = { b, POLLIN, 0 };
		assert_int_equal(write(b, frame.data + i, 1), 1);
		if (i % 8 == 0)
			assert_int_equal(poll(&pfd, 1, 2), 0);	/* no answer before the frame is complete */
	}
	assert_int_equal(ipc_recv(b, &test_proto, 0, 2000, &r, &err), 1);
	assert_int_equal(r->id, 4242);
	uint32_t v;
	assert_true(ipc_get_u32(r, F_SEQ, &v));
	assert_int_equal(v, 42);
	ipc_msg_free(&r);
	ipc_msg_free(&q);

	/* descriptor passing through the event server */
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "via libevent", 12), 12);
	close(p[1]);
	q = ipc_msg_new(T_FD);
	ipc_msg_set_fd(q, p[0]);
	assert_ok(ipc_call(a, &test_proto, q, &r, 2000, &err), &err);
	const char *s;
	assert_true(ipc_get_str(r, F_TEXT, &s, NULL));
	assert_string_equal(s, "via libevent");
	ipc_msg_free(&q);
	ipc_msg_free(&r);

	/* the same, with the descriptor on the first byte and the frame trickling in a byte at a time */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "trickle", 7), 7);
	close(p[1]);
	q = ipc_msg_new(T_FD);
	q->id = 31337;
	ipc_msg_set_fd(q, p[0]);
	buf_reset(&frame);
	assert_true(ipc_msg_encode(q, &frame));
	{
		union {
			struct cmsghdr align;
			char space[CMSG_SPACE(sizeof(int))];
		} cbuf;
		struct iovec iov = { frame.data, 1 };
		struct msghdr mh = { 0 };
		struct cmsghdr *cm;

		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cbuf.space;
		mh.msg_controllen = sizeof(cbuf.space);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &p[0], sizeof(int));
		assert_int_equal(sendmsg(a, &mh, 0), 1);
	}
	for (size_t i = 1; i < frame.len; i++) {
		struct pollfd pfd = { a, POLLIN, 0 };
		assert_int_equal(write(a, frame.data + i, 1), 1);
		if (i % 4 == 0)
			assert_int_equal(poll(&pfd, 1, 1), 0);
	}
	assert_int_equal(ipc_recv(a, &test_proto, 0, 2000, &r, &err), 1);
	assert_int_equal(r->id, 31337);
	assert_true(ipc_get_str(r, F_TEXT, &s, NULL));
	assert_string_equal(s, "trickle");
	ipc_msg_free(&q);	/* closes our copy of the read end */
	ipc_msg_free(&r);

	/* an unknown type gets an error reply naming it, then the connection is closed */
	q = ipc_msg_new(77);
	buf_reset(&err);
	assert_false(ipc_call(a, &test_proto, q, &r, 2000, &err));
	assert_non_null(strstr(buf_cstr(&err), "unknown message type 77"));
	assert_int_equal(ipc_recv(a, &test_proto, 0, 2000, &r, &err), 0);
	ipc_msg_free(&q);
	close(a);

	/* the ipc layer's own error message is only ever a reply: as a request it is refused */
	a = ipc_connect(path, 1000);
	q = ipc_msg_error(NULL, 3, "not a request");
	buf_reset(&err);
	assert_false(ipc_call(a, &test_proto, q, &r, 2000, &err));
	assert_non_null(strstr(buf_cstr(&err), "unexpected reply frame"));
	ipc_msg_free(&q);
	close(a);

	/* a handler error travels back as a failed call, and the connection stays usable */
	q = ipc_msg_new(T_DELIVER);
	ipc_put_str(q, D_QID, "x");
	ipc_put_u64(q, D_SIZE, 1);
	ipc_put_str(q, D_RCPT, "r");
	buf_reset(&err);
	assert_false(ipc_call(b, &test_proto, q, &r, 2000, &err));
	assert_non_null(strstr(buf_cstr(&err), "peer: unsupported (code 5)"));
	ipc_msg_free(&q);
	ping(b, 9);
	close(b);

	quit_server(path, pid);
	buf_free(&err);
	buf_free(&frame);
}

static void test_event_server_limits(void **state)
{
	(void)state;
	char path[128];
	struct buf err = BUF_INIT(1024);
	struct ipc_msg *m;
	uint8_t h[IPC_HDR_LEN] = { 'P', 'I', 1, 0, 0, 0, 0, 0, T_PING, 0, 0, 0 };
	int lfd, a, b, c;
	pid_t pid;
	int64_t t0;
	const char *text;

	sock_path(path, sizeof(path));
	lfd = ipc_listen(path, 0600, 8);
	assert_true(lfd >= 0);
	pid = spawn_event_server(lfd, 150, 4096);

	/* a frame over this server's 4096-byte limit: told so after the header, then hung up on */
	a = ipc_connect(path, 1000);
	put32(h + 12, 5000);
	h[16] = 76;
	assert_int_equal(write(a, h, sizeof(h)), sizeof(h));
	assert_int_equal(ipc_recv(a, &test_proto, 0, 2000, &m, &err), 1);
	assert_int_equal(m->id, 76);
	assert_true(ipc_msg_is_error(m, NULL, &text));
	assert_non_null(strstr(text, "exceeds the limit of 4096 bytes"));
	ipc_msg_free(&m);
	assert_int_equal(ipc_recv(a, &test_proto, 0, 2000, &m, &err), 0);
	close(a);

	/* no magic, nothing to answer: hung up on */
	a = ipc_connect(path, 1000);
	assert_int_equal(write(a, "GET / HTTP/1.0\r\n\r\n.....", 24), 24);
	assert_int_equal(ipc_recv(a, &test_proto, 0, 2000, &m, &err), 0);
	close(a);

	/* a wrong version: answered in ours, so that peer's decoder can name both versions, then hung up on */
	b = ipc_connect(path, 1000);
	put32(h + 12, 0);
	h[2] = 9;
	h[16] = 77;
	assert_int_equal(write(b, h, sizeof(h)), sizeof(h));
	assert_int_equal(ipc_recv(b, &test_proto, 0, 2000, &m, &err), 1);
	assert_int_equal(m->id, 77);
	assert_true(ipc_msg_is_error(m, NULL, &text));
	assert_non_null(strstr(text, "peer speaks version 9, we speak version 1"));
	ipc_msg_free(&m);
	assert_int_equal(ipc_recv(b, &test_proto, 0, 2000, &m, &err), 0);
	close(b);

	/* idle connections are closed after the idle timeout, busy ones are not */
	c = ipc_connect(path, 1000);
	t0 = mono_ms();
	ping(c, 1);
	assert_int_equal(ipc_recv(c, &test_proto, 0, 2000, &m, &err), 0);
	assert_true(mono_ms() - t0 >= 140);
	close(c);

	/* a request the server sits on longer than the idle timeout keeps the connection open */
	c = ipc_connect(path, 1000);
	struct ipc_msg *q = ipc_msg_new(T_SLOW), *r = NULL;
	buf_reset(&err);
	t0 = mono_ms();
	assert_false(ipc_call(c, &test_proto, q, &r, 250, &err));
	assert_non_null(strstr(buf_cstr(&err), "timed out"));
	assert_true(mono_ms() - t0 >= 240);
	ipc_msg_free(&q);
	close(c);

	quit_server(path, pid);
	buf_free(&err);
}

/* In one process: the libevent server and the async client on the same event base. */
struct cstate {
	int replies, failures, closes;
	uint32_t last_seq;
	char last_err[256];
	struct ipc_client **free_me;
};

static void on_reply(struct ipc_msg *r, const char *err, void *arg)
{
	struct cstate *st = arg;

	if (r) {
		st->replies++;
		ipc_get_u32(r, F_SEQ, &st->last_seq);
		ipc_msg_free(&r);
	} else {
		st->failures++;
		snprintf(st->last_err, sizeof(st->last_err), "%s", err);
	}
	if (st->free_me)
		ipc_client_free(st->free_me);
}

static void on_close(const char *why, void *arg)
{
	struct cstate *st = arg;
	(void)why;
	st->closes++;
}

/* Run the loop for ms, and for at least a few dozen rounds, so a request/reply chain completes even when the
 * machine is busy and the wall clock runs out after one round. */
static void run_for(struct event_base *base, int ms)
{
	int64_t end = mono_ms() + ms;

	for (int rounds = 0; rounds < 40 || mono_ms() < end; rounds++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		poll(NULL, 0, 1);
	}
}

static struct ipc_msg *ping_msg(uint32_t seq)
{
	struct ipc_msg *m = ipc_msg_new(T_PING);
	ipc_put_u32(m, F_SEQ, seq);
	return m;
}

static void test_async_client(void **state)
{
	(void)state;
	char path[128];
	struct cstate st = { 0 };
	struct ipc_server_opts o = { .proto = &test_proto, .handler = test_handler };
	struct ipc_server *s;
	struct ipc_client *c;
	int lfd;

	srv_base = event_base_new();
	sock_path(path, sizeof(path));
	lfd = ipc_listen(path, 0600, 8);
	assert_true(lfd >= 0);
	s = ipc_server_new(srv_base, lfd, &o);
	c = ipc_client_new(srv_base, ipc_connect(path, 1000), &test_proto, 0, on_close, &st);

	/* many requests in flight, each answered */
	for (uint32_t i = 0; i < 20; i++)
		assert_true(ipc_client_request(c, ping_msg(i * 2), 1000, on_reply, &st));
	assert_int_equal(ipc_client_pending(c), 20);
	run_for(srv_base, 100);
	assert_int_equal(st.replies, 20);
	assert_int_equal(ipc_client_pending(c), 0);
	assert_int_equal(ipc_server_conn_count(s), 1);

	/* a one-way message gets no reply and no callback */
	assert_true(ipc_client_request(c, ping_msg(1), 0, NULL, NULL));
	/* a request the server sits on times out on its own */
	assert_true(ipc_client_request(c, ipc_msg_new(T_SLOW), 100, on_reply, &st));
	run_for(srv_base, 200);
	assert_int_equal(st.failures, 1);
	assert_non_null(strstr(st.last_err, "no reply within 100 ms"));
	assert_int_equal(nstash, 1);
	/* the late answer is dropped and the connection carries on */
	release_stash();
	assert_true(ipc_client_request(c, ping_msg(50), 1000, on_reply, &st));
	run_for(srv_base, 100);
	assert_int_equal(st.replies, 21);
	assert_int_equal(st.last_seq, 51);
	assert_int_equal(st.closes, 0);

	/* an error reply fails the request with the peer's text */
	assert_true(ipc_client_request(c, ipc_msg_new(T_DELIVER), 1000, on_reply, &st));
	run_for(srv_base, 100);
	assert_int_equal(st.failures, 2);
	assert_non_null(strstr(st.last_err, "required field"));
	/* ... and the server hung up on that malformed request: pending ones fail, on_close runs */
	assert_int_equal(st.closes, 1);
	assert_false(ipc_client_request(c, ping_msg(1), 1000, on_reply, &st));
	ipc_client_free(&c);
	assert_null(c);

	/* the server going away fails what is pending; a callback may free the client */
	c = ipc_client_new(srv_base, ipc_connect(path, 1000), &test_proto, 0, on_close, &st);
	assert_true(ipc_client_request(c, ipc_msg_new(T_SLOW), 0, on_reply, &st));
	assert_true(ipc_client_request(c, ipc_msg_new(T_SLOW), 0, on_reply, &st));
	run_for(srv_base, 50);
	assert_int_equal(nstash, 2);
	st.free_me = &c;
	st.failures = 0;
	ipc_server_free(&s);
	release_stash();	/* the connection is gone: these answers are dropped */
	run_for(srv_base, 100);
	assert_int_equal(st.failures, 2);
	assert_null(c);

	/* freeing a client with requests pending runs their callbacks once */
	s = ipc_server_new(srv_base, lfd, &o);
	c = ipc_client_new(srv_base, ipc_connect(path, 1000), &test_proto, 0, NULL, NULL);
	st.free_me = NULL;
	st.failures = 0;
	assert_true(ipc_client_request(c, ipc_msg_new(T_SLOW), 1000, on_reply, &st));
	ipc_client_free(&c);
	assert_int_equal(st.failures, 1);
	assert_non_null(strstr(st.last_err, "client closed"));
	run_for(srv_base, 50);
	release_stash();

	ipc_server_free(&s);
	close(lfd);
	event_base_free(srv_base);
	srv_base = NULL;
}

static void test_server_peer_policy(void **state)
{
	(void)state;
	char path[128];
	struct ipc_peer_policy nobody = { 0 };
	struct ipc_server_opts o = { .proto = &test_proto, .handler = test_handler, .policy = &nobody,
	                             .max_conns = 1 };
	struct buf err = BUF_INIT(1024);
	struct ipc_server *s;
	struct ipc_msg *m;
	int lfd, fd, fd2;

	srv_base = event_base_new();
	sock_path(path, sizeof(path));
	lfd = ipc_listen(path, 0600, 8);
	s = ipc_server_new(srv_base, lfd, &o);
	fd = ipc_connect(path, 1000);
	run_for(srv_base, 50);
	assert_int_equal(ipc_server_conn_count(s), 0);
	assert_int_equal(ipc_recv(fd, &test_proto, 0, 100, &m, &err), 0);
	close(fd);
	ipc_server_free(&s);

	/* our own uid allowed, one connection at most */
	nobody.allow_same_uid = true;
	s = ipc_server_new(srv_base, lfd, &o);
	fd = ipc_connect(path, 1000);
	fd2 = ipc_connect(path, 1000);
	run_for(srv_base, 50);
	assert_int_equal(ipc_server_conn_count(s), 1);
	assert_int_equal(ipc_recv(fd2, &test_proto, 0, 100, &m, &err), 0);
	close(fd);
	close(fd2);
	run_for(srv_base, 50);
	assert_int_equal(ipc_server_conn_count(s), 0);
	ipc_server_free(&s);
	close(lfd);
	event_base_free(srv_base);
	srv_base = NULL;
	buf_free(&err);
}

static void test_server_backpressure(void **state)
{
	(void)state;
	char path[128];
	struct ipc_server_opts o = { .proto = &test_proto, .handler = test_handler, .max_frame = 4096 };
	struct buf stream = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	struct ipc_reader rd;
	struct ipc_server *s;
	struct ipc_msg *m;
	size_t flen, off = 0, sent, replies = 0;
	const size_t nmax = 200000;
	int lfd, fd, spins;

	srv_base = event_base_new();
	sock_path(path, sizeof(path));
	lfd = ipc_listen(path, 0600, 8);
	s = ipc_server_new(srv_base, lfd, &o);
	fd = ipc_connect(path, 1000);
	for (size_t i = 0; i < nmax; i++) {
		m = ping_msg((uint32_t)i);
		m->id = i + 1;
		ipc_msg_encode(m, &stream);
		ipc_msg_free(&m);
	}
	flen = stream.len / nmax;
	/* a client that only writes: the server must stop reading it rather than queue replies without end,
	 * so our writes eventually block */
	for (spins = 0; off < stream.len && spins < 100000; spins++) {
		ssize_t n = write(fd, stream.data + off, stream.len - off);
		if (n < 0) {
			assert_int_equal(errno, EAGAIN);
			event_base_loop(srv_base, EVLOOP_NONBLOCK);
			n = write(fd, stream.data + off, stream.len - off);
			if (n < 0)
				break;
		}
		off += (size_t)n;
		event_base_loop(srv_base, EVLOOP_NONBLOCK);
	}
	assert_true(off < stream.len);
	sent = off / flen;
	/* now read: every request written is answered, in order */
	ipc_reader_init(&rd, &test_proto, 0);
	for (spins = 0; replies < sent && spins < 1000000; spins++) {
		ssize_t n;
		if (off % flen != 0) {
			/* finish the frame cut by the full socket */
			n = write(fd, stream.data + off, flen - off % flen);
			if (n > 0)
				off += (size_t)n;
			if (off % flen == 0)
				sent++;
		}
		event_base_loop(srv_base, EVLOOP_NONBLOCK);
		n = ipc_reader_read(&rd, fd, &err);
		assert_true(n > 0 || (n < 0 && errno == EAGAIN));
		while (ipc_reader_next(&rd, &m, &err) == 1) {
			assert_int_equal(m->id, replies + 1);
			replies++;
			ipc_msg_free(&m);
		}
	}
	assert_int_equal(replies, sent);
	assert_true(sent > 100);
	assert_int_equal(ipc_server_conn_count(s), 1);
	ipc_reader_free(&rd);
	close(fd);
	ipc_server_free(&s);
	close(lfd);
	event_base_free(srv_base);
	srv_base = NULL;
	buf_free(&stream);
	buf_free(&err);
}

static void test_server_max_pending(void **state)
{
	(void)state;
	char path[128];
	struct ipc_server_opts o = { .proto = &test_proto, .handler = test_handler, .max_pending = 2 };
	struct buf err = BUF_INIT(1024);
	struct ipc_server *s;
	struct ipc_msg *m;
	int lfd, fd;

	srv_base = event_base_new();
	sock_path(path, sizeof(path));
	lfd = ipc_listen(path, 0600, 8);
	s = ipc_server_new(srv_base, lfd, &o);
	fd = ipc_connect(path, 1000);
	for (uint64_t i = 1; i <= 5; i++) {
		m = ipc_msg_new(T_SLOW);
		m->id = i;
		assert_ok(ipc_send(fd, m, 500, &err), &err);
		ipc_msg_free(&m);
	}
	/* the handler holds two: the rest wait in the socket until it lets go of some */
	run_for(srv_base, 50);
	assert_int_equal(nstash, 2);
	release_stash();
	run_for(srv_base, 50);
	assert_int_equal(nstash, 2);
	release_stash();
	run_for(srv_base, 50);
	assert_int_equal(nstash, 1);
	release_stash();
	run_for(srv_base, 50);
	for (uint64_t i = 1; i <= 5; i++) {
		assert_int_equal(ipc_recv(fd, &test_proto, 0, 500, &m, &err), 1);
		assert_int_equal(m->id, i);
		assert_true(ipc_msg_is_error(m, NULL, NULL));
		ipc_msg_free(&m);
	}
	close(fd);
	ipc_server_free(&s);
	close(lfd);
	event_base_free(srv_base);
	srv_base = NULL;
	buf_free(&err);
}

static void test_async_client_protocol_errors(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct cstate st = { 0 };
	struct buf err = BUF_INIT(1024);
	struct ipc_client *c;
	struct ipc_msg *m;
	int sv[2];

	/* the server sends a request (not a reply): protocol error, pending requests fail, on_close runs */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = ipc_client_new(base, sv[0], &test_proto, 0, on_close, &st);
	assert_true(ipc_client_request(c, ping_msg(1), 1000, on_reply, &st));
	m = ping_msg(2);
	m->id = 1;
	assert_true(ipc_send(sv[1], m, 100, &err));
	ipc_msg_free(&m);
	run_for(base, 50);
	assert_int_equal(st.failures, 1);
	assert_non_null(strstr(st.last_err, "unexpected frame"));
	assert_int_equal(st.closes, 1);
	ipc_client_free(&c);
	close(sv[1]);

	/* a reply to an id never issued */
	memset(&st, 0, sizeof(st));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = ipc_client_new(base, sv[0], &test_proto, 0, on_close, &st);
	assert_true(ipc_client_request(c, ping_msg(1), 1000, on_reply, &st));
	m = ping_msg(2);
	m->id = 5;
	m->flags = IPC_F_REPLY;
	assert_true(ipc_send(sv[1], m, 100, &err));
	ipc_msg_free(&m);
	run_for(base, 50);
	assert_int_equal(st.failures, 1);
	assert_int_equal(st.closes, 1);
	ipc_client_free(&c);
	close(sv[1]);

	/* garbage bytes */
	memset(&st, 0, sizeof(st));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = ipc_client_new(base, sv[0], &test_proto, 0, on_close, &st);
	assert_true(ipc_client_request(c, ping_msg(1), 1000, on_reply, &st));
	assert_int_equal(write(sv[1], "HTTP/1.1 200 OK\r\n\r\n....", 24), 24);
	run_for(base, 50);
	assert_int_equal(st.failures, 1);
	assert_non_null(strstr(st.last_err, "bad magic"));
	assert_int_equal(st.closes, 1);
	ipc_client_free(&c);
	close(sv[1]);

	/* a peer closing in the middle of a reply frame */
	memset(&st, 0, sizeof(st));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = ipc_client_new(base, sv[0], &test_proto, 0, on_close, &st);
	assert_true(ipc_client_request(c, ping_msg(1), 1000, on_reply, &st));
	run_for(base, 20);	/* the request is written and read before the peer goes */
	assert_int_equal(ipc_recv(sv[1], &test_proto, 0, 100, &m, &err), 1);
	ipc_msg_free(&m);
	assert_int_equal(write(sv[1], "PI\1\0", 4), 4);
	close(sv[1]);
	run_for(base, 50);
	assert_int_equal(st.failures, 1);
	if (strstr(st.last_err, "middle of a frame") == NULL)
		fail_msg("got: %s", st.last_err);
	ipc_client_free(&c);

	event_base_free(base);
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_event_server_clients, setup_tmp, teardown_tmp),
		cmocka_unit_test_setup_teardown(test_event_server_limits, setup_tmp, teardown_tmp),
		cmocka_unit_test_setup_teardown(test_async_client, setup_tmp, teardown_tmp),
		cmocka_unit_test_setup_teardown(test_server_peer_policy, setup_tmp, teardown_tmp),
		cmocka_unit_test_setup_teardown(test_server_backpressure, setup_tmp, teardown_tmp),
		cmocka_unit_test_setup_teardown(test_server_max_pending, setup_tmp, teardown_tmp),
		cmocka_unit_test(test_async_client_protocol_errors),
	};
	signal(SIGPIPE, SIG_IGN);
	log_set_debug(0);
	return cmocka_run_group_tests_name("ipc_event", tests, NULL, NULL);
}
