/* A built-in test daemon so master and the skeleton can be tested end to end before (and without) the real
 * daemons: master runs it when invoked under the name "echo" (a link in daemon_directory). SINGLE mode greets
 * with its service, pid, uid, tls mode and myhostname (so tests see -o overrides) and echoes lines until QUIT; with the argument "event" it is an EVENT-mode
 * daemon that greets and closes each connection (a stand-in for resident services). */
#include "master.h"

#include <errno.h>
#include <event2/event.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "daemon.h"
#include "log.h"

#define ECHO_LINE_MAX 1024
#define ECHO_TIMEOUT_MS 60000

static bool write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static void greet(int fd, struct daemon_ctx *ctx)
{
	struct buf out = BUF_INIT(512);
	buf_printf(&out, "220 echo service=%s pid=%ld uid=%ld tls=%s host=%s\r\n", ctx->service, (long)getpid(),
	           (long)geteuid(), svctab_tls_name(ctx->tls), config_str(ctx->cfg, "myhostname"));
	write_all(fd, out.data, out.len);
	buf_free(&out);
}

static void echo_serve(int fd, const struct daemon_peer *peer, struct daemon_ctx *ctx)
{
	struct buf in = BUF_INIT(ECHO_LINE_MAX);
	char chunk[512];

	log_info("connect from %s port %u", peer->addr_text, peer->port);
	greet(fd, ctx);
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		char *nl;
		ssize_t r;

		while ((nl = memchr(in.data ? in.data : "", '\n', in.len)) != NULL) {
			size_t len = (size_t)(nl - in.data);
			struct buf out = BUF_INIT(ECHO_LINE_MAX + 16);
			if (len && in.data[len - 1] == '\r')
				len--;
			if (len == 4 && strncmp(in.data, "QUIT", 4) == 0) {
				write_all(fd, "221 bye\r\n", 9);
				buf_free(&in);
				return;
			}
			buf_puts(&out, "250 ");
			buf_append(&out, in.data, len);
			buf_puts(&out, "\r\n");
			buf_consume(&in, (size_t)(nl - in.data) + 1);
			bool ok = write_all(fd, out.data, out.len);
			buf_free(&out);
			if (!ok)
				goto done;
		}
		if (poll(&p, 1, ECHO_TIMEOUT_MS) <= 0 && errno != EINTR)
			goto done;
		r = read(fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			goto done;
		if (!buf_append(&in, chunk, (size_t)r)) {
			write_all(fd, "500 line too long\r\n", 19);
			goto done;
		}
	}
done:
	buf_free(&in);
}

static struct event **accept_ev;

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct daemon_ctx *ctx = arg;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	(void)what;

	if (fd < 0)
		return;
	daemon_report(DAEMON_STATE_BUSY);
	greet(fd, ctx);
	close(fd);
	daemon_report(DAEMON_STATE_IDLE);
}

static void echo_start(struct daemon_ctx *ctx)
{
	accept_ev = xcalloc(ctx->nlisten + 1, sizeof(*accept_ev));
	for (size_t i = 0; i < ctx->nlisten; i++) {
		evutil_make_socket_nonblocking(ctx->listen_fds[i]);
		accept_ev[i] = event_new(ctx->base, ctx->listen_fds[i], EV_READ | EV_PERSIST, on_accept, ctx);
		if (accept_ev[i] == NULL || event_add(accept_ev[i], NULL) < 0)
			fatalx("cannot add accept event");
	}
}

static void echo_stop(struct daemon_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nlisten; i++)
		event_free(accept_ev[i]);
	free(accept_ev);
	accept_ev = NULL;
	event_base_loopexit(ctx->base, NULL);
}

int master_echo_main(int argc, char **argv)
{
	static const struct daemon_ops single = { .name = "echo", .mode = DAEMON_SINGLE, .serve = echo_serve };
	static const struct daemon_ops event = { .name = "echo", .mode = DAEMON_EVENT, .start = echo_start,
	                                         .stop = echo_stop };
	bool ev = argc > 1 && strcmp(argv[argc - 1], "event") == 0;

	return daemon_main(argc, argv, ev ? &event : &single);
}
