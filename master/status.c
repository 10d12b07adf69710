/* The status socket (pid_directory/master.sock) read by `postern status`: master answers each connection with
 * a text report and closes it. One line per record, space-separated key=value fields (values never contain
 * spaces), so the CLI and tests parse it without a grammar:
 *   master pid=N uid=N started=EPOCH generation=N
 *   service name=NAME type=inet|unix state=running|throttled listen=A,B procs=N busy=N idle=N maxproc=N
 *           restarts=N forks=N resident=yes|no
 * Only root and the user master runs as may connect (SO_PEERCRED). */
#include "master.h"

#include <errno.h>
#include <event2/event.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"

static int status_fd = -1;
static struct event *status_ev;
static struct sockaddr_un status_addr;

void master_status_format(struct buf *out)
{
	buf_printf(out, "master pid=%ld uid=%ld started=%ld generation=%u\n", (long)getpid(), (long)geteuid(),
	           (long)master.started, master.gen);
	for (const struct master_service *s = master.services; s; s = s->next) {
		if (s->retired)
			continue;
		buf_printf(out, "service name=%s type=%s state=%s listen=", s->e->name, svctab_type_name(s->e->type),
		           s->throttled ? "throttled" : "running");
		for (size_t i = 0; i < s->e->nlisten; i++)
			buf_printf(out, "%s%s", i ? "," : "", s->e->listen[i].text);
		buf_printf(out, " procs=%u busy=%u idle=%u maxproc=%u restarts=%u forks=%lu resident=%s\n", s->nproc,
		           s->nproc - s->nidle, s->nidle, s->e->maxproc, s->restarts, s->forks,
		           s->e->resident ? "yes" : "no");
	}
}

static void on_status_conn(evutil_socket_t lfd, short what, void *arg)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct timeval tv = { 1, 0 };
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	size_t off = 0;
	int fd;
	(void)what;
	(void)arg;

	if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || (cred.uid != 0 && cred.uid != geteuid())) {
		log_warn("status socket: refused connection from uid %ld", (long)cred.uid);
		close(fd);
		return;
	}
	/* the report is small; a client that does not read gets cut off after a second rather than stall master */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	master_status_format(&out);
	while (off < out.len) {
		ssize_t w = write(fd, out.data + off, out.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	buf_free(&out);
	close(fd);
}

bool master_status_open(struct buf *err)
{
	const char *dir = config_str(master.cfg, "pid_directory");
	struct stat st;

	memset(&status_addr, 0, sizeof(status_addr));
	status_addr.sun_family = AF_UNIX;
	if ((size_t)snprintf(status_addr.sun_path, sizeof(status_addr.sun_path), "%s/master.sock", dir) >=
	    sizeof(status_addr.sun_path)) {
		buf_printf(err, "%s/master.sock: path too long for a socket", dir);
		return false;
	}
	if (lstat(status_addr.sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(status_addr.sun_path);
	if ((status_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
	    bind(status_fd, (struct sockaddr *)&status_addr, sizeof(status_addr)) < 0 || listen(status_fd, 16) < 0) {
		buf_printf(err, "%s: %s", status_addr.sun_path, strerror(errno));
		if (status_fd >= 0)
			close(status_fd);
		status_fd = -1;
		return false;
	}
	chmod(status_addr.sun_path, 0666);	/* SO_PEERCRED decides who gets an answer */
	status_ev = event_new(master.base, status_fd, EV_READ | EV_PERSIST, on_status_conn, NULL);
	if (status_ev == NULL || event_add(status_ev, NULL) < 0)
		fatalx("cannot create status socket event");
	return true;
}

void master_status_close(void)
{
	if (status_fd < 0)
		return;
	event_free(status_ev);
	status_ev = NULL;
	close(status_fd);
	unlink(status_addr.sun_path);
	status_fd = -1;
}
