/* pop3d: POP3 on 110 (STLS) and 995 (implicit TLS), one client per process.
 * Until the daemon skeleton (common/daemon.h) is on main, pop3d binds and accepts for itself:
 *   pop3d -c INSTANCE_DIR [-o name=value]... [-l ADDR:PORT]... [-L ADDR:PORT]...
 * -l listens for plain POP3 with STLS, -L for implicit TLS; ADDR is an IPv4 address or [IPv6]. A child is
 * forked per connection. Logins go through pop3d_test_passwd_file (temporary, see pop3_auth.h). */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "log.h"
#include "pop3_session.h"
#include "tls.h"

#define MAX_LISTEN 16

struct listener {
	int fd;
	bool tls;
};

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static int listen_on(const char *spec)
{
	struct buf host = BUF_INIT(256);
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE, .ai_socktype = SOCK_STREAM },
	                *ai;
	int fd, on = 1, rc;

	if (!colon)
		fatalx("listen address %s: use ADDR:PORT", spec);
	if (spec[0] == '[' && colon > spec && colon[-1] == ']')
		buf_append(&host, spec + 1, (size_t)(colon - spec - 2));
	else
		buf_append(&host, spec, (size_t)(colon - spec));
	if ((rc = getaddrinfo(buf_cstr(&host), colon + 1, &hints, &ai)) != 0)
		fatalx("listen address %s: %s", spec, gai_strerror(rc));
	if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		fatal("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0)
		fatal("bind %s", spec);
	freeaddrinfo(ai);
	buf_free(&host);
	return fd;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

static void usage(void)
{
	fprintf(stderr, "usage: pop3d -c INSTANCE_DIR [-o name=value]... [-l ADDR:PORT]... [-L ADDR:PORT]...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct listener ls[MAX_LISTEN];
	size_t nls = 0;
	const char *dir = NULL;
	struct buf err = BUF_INIT(BUF_NOLIMIT), warn = BUF_INIT(BUF_NOLIMIT);
	struct config *cfg = config_new();
	struct pop3_opts o = { 0 };
	struct pop3_authfile af;
	struct pop3_auth_ops ops;
	bool want_tls = false;
	int ch;

	log_init("pop3d");
	char **over = xcalloc((size_t)argc + 1, sizeof(*over));
	size_t nover = 0;
	while ((ch = getopt(argc, argv, "c:o:l:L:")) != -1) {
		switch (ch) {
		case 'c':
			dir = optarg;
			break;
		case 'o':
			over[nover++] = optarg;
			break;
		case 'l':
		case 'L':
			if (nls == MAX_LISTEN)
				fatalx("too many listeners");
			ls[nls].fd = listen_on(optarg);
			ls[nls++].tls = ch == 'L';
			want_tls |= ch == 'L';
			break;
		default:
			usage();
		}
	}
	if (!dir || nls == 0)
		usage();
	if (!config_load_dir(cfg, dir, NULL, &err, &warn))
		fatalx("%s", buf_cstr(&err));
	for (size_t i = 0; i < nover; i++)
		if (!config_set_override(cfg, over[i], &err))
			fatalx("%s", buf_cstr(&err));
	free(over);
	if (warn.len)
		log_warn("%s", buf_cstr(&warn));
	if (log_to_dest(config_str(cfg, "log_destination"), config_str(cfg, "log_file")) != 0)
		fatal("log destination %s", config_str(cfg, "log_destination"));
	log_set_debug(config_bool(cfg, "debug"));

	o.hostname = config_str(cfg, "myhostname");
	o.apop = config_bool(cfg, "pop3d_apop");
	o.plaintext_anywhere = config_bool(cfg, "pop3d_plaintext_login");
	o.max_bad = (unsigned)config_int(cfg, "pop3d_max_bad_commands", 1, 1000);
	o.timeout_ms = (int)config_time(cfg, "pop3d_timeout", 1, 86400) * 1000;
	o.drop_privs = true;
	af.path = xstrdup(config_str(cfg, "pop3d_test_passwd_file"));
	af.maildir_base = xstrdup(config_str(cfg, "mail_directory"));
	if (!af.path[0])
		fatalx("pop3d_test_passwd_file is not set (pop3d needs it until the auth daemon is available)");
	pop3_authfile_ops(&af, &ops);
	log_warn("logins are checked against %s (a temporary backend for tests, not the auth daemon)", af.path);
	o.auth = &ops;
	const char *cert = config_str(cfg, "tls_cert_file"), *key = config_str(cfg, "tls_key_file");
	if (want_tls || access(cert, R_OK) == 0) {
		if (!(o.tls = tls_server_ctx_new(cert, key, &err))) {
			if (want_tls)
				fatalx("TLS: %s", buf_cstr(&err));
			log_warn("no STLS: %s", buf_cstr(&err));
		}
	}

	struct sigaction sa = { .sa_handler = on_term };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	struct pollfd pfd[MAX_LISTEN];
	for (size_t i = 0; i < nls; i++)
		pfd[i] = (struct pollfd){ .fd = ls[i].fd, .events = POLLIN };
	log_info("ready");
	while (!stopping) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (poll(pfd, nls, 1000) <= 0)
			continue;
		for (size_t i = 0; i < nls; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			struct sockaddr_storage peer;
			socklen_t plen = sizeof(peer);
			int fd = accept4(ls[i].fd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			pid_t pid = fork();
			if (pid < 0) {
				log_error("fork: %s", strerror(errno));
				close(fd);
				continue;
			}
			if (pid > 0) {
				close(fd);
				continue;
			}
			/* child: one client, and no orphan when the listener goes away */
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			for (size_t j = 0; j < nls; j++)
				close(ls[j].fd);
			char host[NI_MAXHOST] = "?";
			getnameinfo((struct sockaddr *)&peer, plen, host, sizeof(host), NULL, 0, NI_NUMERICHOST);
			o.implicit_tls = ls[i].tls;
			pop3_session_run(stream_new(fd), &o, is_loopback(&peer), host);
			tls_ctx_free(&o.tls);
			config_free(&cfg);
			free(af.path);
			free(af.maildir_base);
			buf_free(&err);
			buf_free(&warn);
			_exit(0);
		}
	}
	log_info("stopping");
	tls_ctx_free(&o.tls);
	config_free(&cfg);
	free(af.path);
	free(af.maildir_base);
	buf_free(&err);
	buf_free(&warn);
	return 0;
}
