/* Binding the listening sockets master hands to its children. "*:port" becomes two sockets, [::] with
 * IPV6_V6ONLY and 0.0.0.0, so both families work whatever net.ipv6.bindv6only says. */
#include "master.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"

#define MASTER_BACKLOG 128

static void push_fd(int **fds, size_t *n, int fd)
{
	*fds = xreallocarray(*fds, *n + 1, sizeof(int));
	(*fds)[(*n)++] = fd;
}

static int bind_addr(const struct sockaddr *sa, socklen_t len, const char *text, struct buf *err)
{
	int one = 1;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		buf_printf(err, "%s: socket: %s", text, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, sa, len) < 0 || listen(fd, MASTER_BACKLOG) < 0) {
		buf_printf(err, "%s: cannot bind: %s", text, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static bool bind_inet(const struct svc_listen *l, int **fds, size_t *n, struct buf *err)
{
	if (l->host == NULL) {
		struct sockaddr_in6 in6;
		struct sockaddr_in in4;
		int fd;

		memset(&in6, 0, sizeof(in6));
		in6.sin6_family = AF_INET6;
		in6.sin6_addr = in6addr_any;
		in6.sin6_port = htons((uint16_t)l->port);
		fd = bind_addr((struct sockaddr *)&in6, sizeof(in6), l->text, err);
		if (fd >= 0)
			push_fd(fds, n, fd);
		else if (errno == EAFNOSUPPORT)
			buf_reset(err);	/* a host without IPv6: IPv4 alone is fine */
		else
			return false;
		memset(&in4, 0, sizeof(in4));
		in4.sin_family = AF_INET;
		in4.sin_addr.s_addr = htonl(INADDR_ANY);
		in4.sin_port = htons((uint16_t)l->port);
		if ((fd = bind_addr((struct sockaddr *)&in4, sizeof(in4), l->text, err)) < 0)
			return false;
		push_fd(fds, n, fd);
		return true;
	}
	struct addrinfo hints, *res = NULL;
	char port[8];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", l->port);
	if ((rc = getaddrinfo(l->host, port, &hints, &res)) != 0) {
		buf_printf(err, "%s: cannot resolve %s: %s", l->text, l->host, gai_strerror(rc));
		return false;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = bind_addr(ai->ai_addr, ai->ai_addrlen, l->text, err);
		if (fd < 0) {
			freeaddrinfo(res);
			return false;
		}
		push_fd(fds, n, fd);
	}
	freeaddrinfo(res);
	return true;
}

static bool unix_path(const char *dir, const char *name, struct sockaddr_un *sun, struct buf *err)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if ((size_t)snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%s", dir, name) >= sizeof(sun->sun_path)) {
		buf_printf(err, "%s/%s: socket path longer than %zu bytes (use a shorter instance directory)", dir,
		           name, sizeof(sun->sun_path) - 1);
		return false;
	}
	return true;
}

/* Sockets named public/NAME (local submission) live in the public directory, which every local user can reach;
 * all others in the private one. */
static char *public_dir;

void master_listen_set_public_dir(const char *dir)
{
	free(public_dir);
	public_dir = dir ? xstrdup(dir) : NULL;
}

static bool socket_path(const struct svc_listen *l, const char *private_dir, struct sockaddr_un *sun,
                        struct buf *err)
{
	const char *pub = svctab_public_name(l);
	if (pub && public_dir)
		return unix_path(public_dir, pub, sun, err);
	return unix_path(private_dir, l->name, sun, err);
}

static bool bind_unix(const struct svc_listen *l, const char *dir, int **fds, size_t *n, struct buf *err)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd;

	if (!socket_path(l, dir, &sun, err))
		return false;
	/* a socket left by a master that crashed; anything else at that name is not ours to remove */
	if (lstat(sun.sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(sun.sun_path);
	if ((fd = bind_addr((struct sockaddr *)&sun, sizeof(sun), sun.sun_path, err)) < 0)
		return false;
	/* access is controlled by the private directory's mode; every service user must be able to connect */
	if (chmod(sun.sun_path, 0666) < 0)
		log_warn("chmod %s: %s", sun.sun_path, strerror(errno));
	push_fd(fds, n, fd);
	return true;
}

bool master_listen_bind(const struct svc_entry *e, const char *private_dir, int **fds, size_t *nfds,
                        struct buf *err)
{
	int *v = NULL;
	size_t n = 0;

	for (size_t i = 0; i < e->nlisten; i++) {
		bool ok = e->type == SVC_INET ? bind_inet(&e->listen[i], &v, &n, err)
		                              : bind_unix(&e->listen[i], private_dir, &v, &n, err);
		if (!ok) {
			for (size_t j = 0; j < n; j++)
				close(v[j]);
			free(v);
			return false;
		}
	}
	*fds = v;
	*nfds = n;
	return true;
}

void master_listen_close(const struct svc_entry *e, const char *private_dir, int *fds, size_t nfds)
{
	struct buf err = BUF_INIT(1024);

	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	if (e->type == SVC_UNIX) {
		for (size_t i = 0; i < e->nlisten; i++) {
			struct sockaddr_un sun;
			if (socket_path(&e->listen[i], private_dir, &sun, &err))
				unlink(sun.sun_path);
		}
	}
	buf_free(&err);
}
