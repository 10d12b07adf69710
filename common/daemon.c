/* The daemon skeleton; see daemon.h for the protocol with master.
 * Signals in DAEMON_SINGLE mode: SIGTERM and SIGHUP close the listening sockets at once (so a reload or stop
 * frees the port even while a session runs) and let the current session finish; the process then exits.
 * SA_RESTART keeps the session's blocking I/O undisturbed; epoll_wait() between sessions still sees EINTR, and so do a
 * session's waits for its client's next command, which end at once (stream_set_interrupt(s, daemon_stopping)). */
#include "daemon.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "privs.h"
#include "str.h"

#define DAEMON_MAX_LISTEN SVCTAB_MAX_LISTEN

static volatile sig_atomic_t stop_requested;
static int status_fd = -1;
static int sig_listen_fds[DAEMON_MAX_LISTEN];
static volatile sig_atomic_t sig_nlisten;

void daemon_detach_child(struct daemon_ctx *ctx)
{
	sigset_t all, old;

	/* the stop handler closes sig_listen_fds: empty the list first, or it would close numbers reused since */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	sig_nlisten = 0;
	sigprocmask(SIG_SETMASK, &old, NULL);
	for (size_t i = 0; i < ctx->nlisten; i++)
		close(ctx->listen_fds[i]);
	ctx->nlisten = 0;
	if (status_fd >= 0)
		close(status_fd);
	status_fd = -1;
}

bool daemon_stopping(void)
{
	return stop_requested != 0;
}

void daemon_report(enum daemon_state state)
{
	struct daemon_status st;
	ssize_t w;

	if (status_fd < 0)
		return;
	memset(&st, 0, sizeof(st));
	st.pid = (uint32_t)getpid();
	st.state = (uint8_t)state;
	do
		w = write(status_fd, &st, sizeof(st));
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)sizeof(st)) {
		/* master is gone: nobody accounts for us any more, so do not take new work */
		log_warn("status pipe to master: %s; exiting", w < 0 ? strerror(errno) : "short write");
		exit(0);
	}
}

char *daemon_main_cf_path(const char *dir)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	struct stat st;

	buf_printf(&p, "%s/etc/main.cf", dir);
	if (stat(buf_cstr(&p), &st) < 0) {
		struct buf alt = BUF_INIT(BUF_NOLIMIT);
		buf_printf(&alt, "%s/main.cf", dir);
		if (stat(buf_cstr(&alt), &st) == 0) {
			buf_free(&p);
			return buf_steal(&alt, NULL);
		}
		buf_free(&alt);
	}
	return buf_steal(&p, NULL);
}

struct config *daemon_config_load(const char *dir, struct buf *err, struct buf *warn)
{
	struct config *cfg = config_new();
	char *path = daemon_main_cf_path(dir);
	size_t plen = strlen(path), dlen = strlen(dir);
	bool etc_layout = plen > 12 && strcmp(path + plen - 12, "/etc/main.cf") == 0 && plen == dlen + 12;

	/* Set before loading so $instance_directory in main.cf expands; in the DIR/etc layout DIR wins over any
	 * assignment in the file, since -c is how master tells children where the instance is. */
	config_set(cfg, "instance_directory", dir, "-c");
	if (!config_load_file(cfg, path, err, warn)) {
		config_free(&cfg);
		free(path);
		return NULL;
	}
	if (etc_layout)
		config_set(cfg, "instance_directory", dir, "-c");
	else if (config_raw(cfg, "config_directory") == NULL)
		config_set(cfg, "config_directory", dir, "-c");	/* master.cf and aliases sit beside main.cf */
	free(path);
	return cfg;
}

void daemon_setup_logging(struct config *cfg)
{
	bool dbg = false;
	struct buf err = BUF_INIT(1024);

	if (config_try_bool(cfg, "debug", &dbg, &err))
		log_set_debug(dbg);
	else
		log_warn("%s", buf_cstr(&err));
	if (log_to_dest(config_str(cfg, "log_destination"), config_str(cfg, "log_file")) < 0) {
		int e = errno;
		log_to_stderr();
		log_warn("log_destination %s: %s; logging to stderr", config_str(cfg, "log_destination"), strerror(e));
	}
	buf_free(&err);
}

static void on_stop_signal(int sig)
{
	int saved = errno;
	(void)sig;
	if (!stop_requested) {
		stop_requested = 1;
		for (int i = 0; i < sig_nlisten; i++)
			close(sig_listen_fds[i]);
		sig_nlisten = 0;
	}
	errno = saved;
}

static void peer_describe(struct daemon_peer *peer)
{
	const struct sockaddr *sa = (const struct sockaddr *)&peer->addr;

	peer->port = 0;
	str_copy(peer->addr_text, sizeof(peer->addr_text), "unix");
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, peer->addr_text, sizeof(peer->addr_text));
		peer->port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, peer->addr_text, sizeof(peer->addr_text));
		peer->port = ntohs(in6->sin6_port);
	}
}

/* Idle processes of one service wait on the same listening sockets. With poll() every one of them woke for
 * each connection and all but one lost the accept4() race (EAGAIN): 4 of 5 accepts failed with 5 idle smtpd.
 * EPOLLEXCLUSIVE wakes one waiter per connection; level-triggered, so a backlog is drained on the next wait,
 * and a process that exits without accepting (pre_accept) leaves the socket readable for a fresh one. */
static int run_single(const struct daemon_ops *ops, struct daemon_ctx *ctx)
{
	struct epoll_event ev, evs[DAEMON_MAX_LISTEN + 1];
	unsigned uses = 0;
	int timeout = ctx->idle ? (int)ctx->idle * 1000 : -1;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		fatal("epoll_create1");
	for (size_t i = 0; i < ctx->nlisten; i++) {
		int fl = fcntl(ctx->listen_fds[i], F_GETFL);
		/* several processes wait on one socket: the losers of a race must not block in accept() */
		if (fl < 0 || fcntl(ctx->listen_fds[i], F_SETFL, fl | O_NONBLOCK) < 0)
			fatal("listening socket %d", ctx->listen_fds[i]);
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | EPOLLEXCLUSIVE;
		ev.data.u64 = i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, ctx->listen_fds[i], &ev) < 0)
			fatal("epoll_ctl listening socket %d", ctx->listen_fds[i]);
	}
	if (status_fd >= 0) {
		memset(&ev, 0, sizeof(ev));
		ev.events = 0;	/* EPOLLERR/EPOLLHUP are always reported: master went away */
		ev.data.u64 = DAEMON_MAX_LISTEN;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, status_fd, &ev) < 0)
			fatal("epoll_ctl status fd %d", status_fd);
	}
	while (!stop_requested) {
		bool ready[DAEMON_MAX_LISTEN] = { false };
		bool master_gone = false;
		int r = epoll_wait(ep, evs, (int)(ctx->nlisten + 1), timeout);

		if (stop_requested)
			break;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			fatal("epoll_wait");
		}
		if (r == 0) {
			log_debug("idle for %u s: exiting", ctx->idle);
			break;
		}
		for (int k = 0; k < r; k++) {
			if (evs[k].data.u64 == DAEMON_MAX_LISTEN)
				master_gone = true;
			else
				ready[evs[k].data.u64] = true;
		}
		if (master_gone) {
			log_debug("master went away: exiting");
			break;
		}
		for (size_t i = 0; i < ctx->nlisten && !stop_requested; i++) {
			struct daemon_peer peer;
			int fd;

			if (!ready[i])
				continue;
			if (ops->pre_accept && !ops->pre_accept(ctx))
				goto out;
			memset(&peer, 0, sizeof(peer));
			peer.addrlen = sizeof(peer.addr);
			/* the connection is blocking for serve(): Linux does not pass O_NONBLOCK on through accept */
			fd = accept4(ctx->listen_fds[i], (struct sockaddr *)&peer.addr, &peer.addrlen, SOCK_CLOEXEC);
			if (fd < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED ||
				    errno == EPROTO || errno == EBADF)
					continue;
				if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
					log_warn("accept: %s; exiting so master can start a fresh process", strerror(errno));
					goto out;
				}
				fatal("accept");
			}
			peer.listen_index = i;
			peer_describe(&peer);
			daemon_report(DAEMON_STATE_BUSY);
			ops->serve(fd, &peer, ctx);
			close(fd);
			uses++;
			if (ctx->maxuse && uses >= ctx->maxuse) {
				log_debug("served %u connections: exiting", uses);
				goto out;
			}
			if (stop_requested)
				break;
			daemon_report(DAEMON_STATE_IDLE);
			break;	/* back to epoll_wait: one connection at a time, fairly across listeners */
		}
	}
out:
	close(ep);
	return 0;
}

struct event_stop {
	const struct daemon_ops *ops;
	struct daemon_ctx *ctx;
};

static void on_event_stop(evutil_socket_t sig, short what, void *arg)
{
	struct event_stop *es = arg;

	(void)what;
	log_debug("signal %d: finishing", (int)sig);
	stop_requested = 1;
	if (es->ops->stop)
		es->ops->stop(es->ctx);
	else
		event_base_loopexit(es->ctx->base, NULL);
}

static void on_status_error(evutil_socket_t fd, short what, void *arg)
{
	struct daemon_ctx *ctx = arg;
	(void)fd;
	(void)what;
	log_debug("master went away: exiting");
	stop_requested = 1;
	event_base_loopexit(ctx->base, NULL);
}

static int run_event(const struct daemon_ops *ops, struct daemon_ctx *ctx)
{
	struct event_stop es = { ops, ctx };
	struct event *term, *hup, *pipe_ev = NULL;

	term = evsignal_new(ctx->base, SIGTERM, on_event_stop, &es);
	hup = evsignal_new(ctx->base, SIGHUP, on_event_stop, &es);
	if (term == NULL || hup == NULL || evsignal_add(term, NULL) < 0 || evsignal_add(hup, NULL) < 0)
		fatalx("cannot register signal events");
	if (status_fd >= 0) {
		/* EV_CLOSED on a pipe's write end reports the reader (master) closing */
		pipe_ev = event_new(ctx->base, status_fd, EV_CLOSED | EV_PERSIST, on_status_error, ctx);
		if (pipe_ev == NULL || event_add(pipe_ev, NULL) < 0) {
			if (pipe_ev)
				event_free(pipe_ev);
			pipe_ev = NULL;
		}
	}
	ops->start(ctx);
	if (event_base_dispatch(ctx->base) < 0)
		fatalx("event loop failed");
	if (pipe_ev)
		event_free(pipe_ev);
	event_free(term);
	event_free(hup);
	return 0;
}

static void usage(const char *name)
{
	fatalx("usage: %s -c INSTANCE_DIR -s SERVICE [-n NLISTEN] [-t none|starttls|implicit] [-m MAXUSE] [-i IDLE] "
	       "[-u USER] [-r CHROOT] [-o name=value]... [-d] [ARGS...] (normally started by master)", name);
}

static unsigned num_arg(const char *name, const char *opt, const char *s, unsigned max)
{
	uint64_t v;
	if (!str_to_u64(s, max, &v))
		fatalx("%s: bad -%s value '%s'", name, opt, log_safe(s, strlen(s), 40));
	return (unsigned)v;
}

int daemon_main(int argc, char **argv, const struct daemon_ops *ops)
{
	struct daemon_ctx ctx;
	struct buf err = BUF_INIT(4096), warn = BUF_INIT(16384);
	struct sigaction sa;
	char **overrides = xcalloc((size_t)argc + 1, sizeof(char *));
	size_t noverrides = 0;
	unsigned nlisten = 0;
	bool debug_flag = false, from_master = false;
	pid_t parent = getppid();
	int c;

	memset(&ctx, 0, sizeof(ctx));
	log_init(ops->name);
	ctx.tls = SVC_TLS_NONE;
	ctx.keep_group = (gid_t)-1;
	ctx.maxuse = SVCTAB_DEFAULT_MAXUSE;
	ctx.idle = SVCTAB_DEFAULT_IDLE;
	opterr = 0;
	optind = 1;
	while ((c = getopt(argc, argv, "+c:s:n:t:m:i:u:r:o:d")) != -1) {
		switch (c) {
		case 'c': ctx.instance_dir = optarg; break;
		case 's': ctx.service = optarg; break;
		case 'n':
			nlisten = num_arg(ops->name, "n", optarg, DAEMON_MAX_LISTEN);
			from_master = true;
			break;
		case 't':
			if (!svctab_tls_from_name(optarg, &ctx.tls))
				fatalx("%s: bad -t value '%s'", ops->name, log_safe(optarg, strlen(optarg), 40));
			break;
		case 'm': ctx.maxuse = num_arg(ops->name, "m", optarg, SVCTAB_MAX_MAXUSE); break;
		case 'i': ctx.idle = num_arg(ops->name, "i", optarg, SVCTAB_MAX_IDLE); break;
		case 'u': ctx.user = optarg; break;
		case 'r': ctx.chroot_dir = optarg; break;
		case 'o': overrides[noverrides++] = optarg; break;
		case 'd': debug_flag = true; break;
		default: usage(ops->name);
		}
	}
	if (ctx.instance_dir == NULL || ctx.service == NULL)
		usage(ops->name);
	ctx.argc = argc - optind;
	ctx.argv = argv + optind;

	if ((ctx.cfg = daemon_config_load(ctx.instance_dir, &err, &warn)) == NULL)
		fatalx("%s", buf_cstr(&err));
	for (size_t i = 0; i < noverrides; i++)
		if (!config_set_override(ctx.cfg, overrides[i], &err))
			fatalx("service %s: %s", ctx.service, buf_cstr(&err));
	free(overrides);
	daemon_setup_logging(ctx.cfg);
	if (debug_flag)
		log_set_debug(1);

	/* The master protocol: status pipe and listeners at fixed numbers (absent when run by hand without -n).
	 * Configuration warnings are master's to log, once, not every child's. */
	if (from_master) {
		if (fcntl(DAEMON_STATUS_FD, F_GETFD) < 0)
			fatal("status pipe fd %d", DAEMON_STATUS_FD);
		status_fd = DAEMON_STATUS_FD;
		fcntl(status_fd, F_SETFD, FD_CLOEXEC);
	}
	ctx.listen_fds = xcalloc(nlisten + 1, sizeof(int));
	for (unsigned i = 0; i < nlisten; i++) {
		int fd = DAEMON_LISTEN_FD + (int)i;
		if (fcntl(fd, F_GETFD) < 0)
			fatal("listening socket fd %d (service %s expects %u)", fd, ctx.service, nlisten);
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		ctx.listen_fds[i] = fd;
		sig_listen_fds[i] = fd;
	}
	ctx.nlisten = nlisten;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	if (ops->mode == DAEMON_SINGLE) {
		sa.sa_handler = on_stop_signal;
		sa.sa_flags = SA_RESTART;
		sigfillset(&sa.sa_mask);
		sig_nlisten = (sig_atomic_t)nlisten;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
	}

	if (ops->pre_drop)
		ops->pre_drop(&ctx);
	privs_drop_keep_group(ctx.user ? ctx.user : config_str(ctx.cfg, "mail_owner"), ctx.chroot_dir, ctx.keep_group);
	/* the drop cleared the parent-death signal; set it again, and catch a master that died meanwhile */
	if (from_master) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			fatalx("master exited during start-up");
	}
	if (ops->mode == DAEMON_EVENT) {
		ctx.base = event_base_new();
		if (ctx.base == NULL)
			fatalx("cannot create event base");
	}
	if (ops->init)
		ops->init(&ctx);
	log_debug("service %s ready: %zu listeners, maxuse %u, idle %u", ctx.service, ctx.nlisten, ctx.maxuse, ctx.idle);

	if (ops->mode == DAEMON_SINGLE) {
		if (ops->serve == NULL)
			panic("daemon %s: SINGLE mode without serve()", ops->name);
		c = run_single(ops, &ctx);
	} else {
		if (ops->start == NULL)
			panic("daemon %s: EVENT mode without start()", ops->name);
		c = run_event(ops, &ctx);
		event_base_free(ctx.base);
	}
	free(ctx.listen_fds);
	config_free(&ctx.cfg);
	buf_free(&err);
	buf_free(&warn);
	return c;
}
