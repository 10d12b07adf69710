/* `postern check`: everything that would stop an instance from starting or make it unsafe, each problem on
 * its own line saying what is wrong, where, and what to do. Read-only: it never repairs anything. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "cmd_ctl.h"
#include "config.h"
#include "daemon.h"
#include "privs.h"
#include "svctab.h"

struct checker {
	FILE *out;
	int problems;
};

static void problem(struct checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct checker *c, const char *fmt, ...)
{
	va_list ap;

	fputs("problem: ", c->out);
	va_start(ap, fmt);
	vfprintf(c->out, fmt, ap);
	va_end(ap);
	fputc('\n', c->out);
	c->problems++;
}

static void note(struct checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct checker *c, const char *fmt, ...)
{
	va_list ap;

	fputs("note: ", c->out);
	va_start(ap, fmt);
	vfprintf(c->out, fmt, ap);
	va_end(ap);
	fputc('\n', c->out);
}

static const char *where(struct config *cfg, const char *name)
{
	const char *o = config_origin(cfg, name);
	return o ? o : "default";
}

static void check_values(struct checker *c, struct config *cfg)
{
	static const char *const times[][2] = {
		{ "master_throttle_time", "86400" }, { "master_stop_timeout", "3600" }, { "dns_timeout", "3600" },
	};
	struct buf err = BUF_INIT(2048);
	int64_t v;
	bool b;

	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		buf_reset(&err);
		if (!config_try_time(cfg, times[i][0], 1, atoll(times[i][1]), &v, &err))
			problem(c, "%s", buf_cstr(&err));
	}
	buf_reset(&err);
	if (!config_try_int(cfg, "master_startup_failures", 1, 1000, &v, &err))
		problem(c, "%s", buf_cstr(&err));
	buf_reset(&err);
	if (!config_try_bool(cfg, "debug", &b, &err))
		problem(c, "%s", buf_cstr(&err));
	buf_free(&err);
}

static void check_dir(struct checker *c, struct config *cfg, const char *param, mode_t forbidden, bool owner)
{
	const char *path = config_str(cfg, param);
	struct buf err = BUF_INIT(1024);
	struct stat st;
	uid_t uid;
	gid_t gid;

	if (stat(path, &st) < 0) {
		problem(c, "%s %s (set at %s): %s; create it (postern init does) or fix %s", param, path,
		        where(cfg, param), strerror(errno), param);
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		problem(c, "%s %s is not a directory", param, path);
		return;
	}
	if (st.st_mode & forbidden)
		problem(c, "%s %s has mode %04o; run: chmod %04o %s", param, path, (unsigned)(st.st_mode & 07777),
		        (unsigned)(st.st_mode & 07777 & ~forbidden), path);
	if (owner && privs_is_root() &&
	    privs_lookup_user(config_str(cfg, "mail_owner"), &uid, &gid, &err) && st.st_uid != uid)
		problem(c, "%s %s is owned by uid %ld, not mail_owner %s; run: chown %s %s", param, path,
		        (long)st.st_uid, config_str(cfg, "mail_owner"), config_str(cfg, "mail_owner"), path);
	buf_free(&err);
}

static void check_tls(struct checker *c, struct config *cfg)
{
	const char *cert = config_str(cfg, "tls_cert_file"), *key = config_str(cfg, "tls_key_file");
	struct stat st;

	if (access(cert, R_OK) < 0)
		problem(c, "tls_cert_file %s (set at %s): %s; TLS services need a certificate (postern init makes a "
		        "self-signed one)", cert, where(cfg, "tls_cert_file"), strerror(errno));
	if (stat(key, &st) < 0 || access(key, R_OK) < 0)
		problem(c, "tls_key_file %s (set at %s): %s; TLS services need the private key", key,
		        where(cfg, "tls_key_file"), strerror(errno));
	else if (st.st_mode & 077)
		problem(c, "tls_key_file %s has mode %04o: the private key must not be readable by others; run: chmod "
		        "600 %s", key, (unsigned)(st.st_mode & 07777), key);
}

/* Can we bind this listener now? In use is fine when our own master holds it. */
static void check_port(struct checker *c, const struct svc_entry *e, const struct svc_listen *l, bool running)
{
	struct sockaddr_in6 in6;
	struct sockaddr_in in4;
	int fd, one = 1, rc;

	if (l->host != NULL && strcmp(l->host, "127.0.0.1") != 0 && strcmp(l->host, "::1") != 0)
		return;	/* specific addresses may not exist on this host until it is configured; master reports it */
	if (l->host && strchr(l->host, ':')) {
		memset(&in6, 0, sizeof(in6));
		in6.sin6_family = AF_INET6;
		in6.sin6_addr = in6addr_loopback;
		in6.sin6_port = htons((uint16_t)l->port);
		fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&in6, sizeof(in6));
	} else {
		memset(&in4, 0, sizeof(in4));
		in4.sin_family = AF_INET;
		in4.sin_addr.s_addr = htonl(l->host ? INADDR_LOOPBACK : INADDR_ANY);
		in4.sin_port = htons((uint16_t)l->port);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&in4, sizeof(in4));
	}
	if (rc < 0) {
		if (errno == EADDRINUSE && running)
			;	/* held by our own master */
		else if (errno == EADDRINUSE)
			problem(c, "%s: service %s: port %u is in use by another program; stop it or change the port",
			        e->origin, e->name, l->port);
		else if (errno == EACCES)
			problem(c, "%s: service %s: port %u needs root; start as root or use a port above 1023",
			        e->origin, e->name, l->port);
		else
			problem(c, "%s: service %s: cannot bind %s: %s", e->origin, e->name, l->text, strerror(errno));
	}
	if (fd >= 0)
		close(fd);
}

static bool master_running(struct config *cfg)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	bool running = false;
	int fd;

	buf_printf(&p, "%s/master.lock", config_str(cfg, "pid_directory"));
	if ((fd = open(buf_cstr(&p), O_RDONLY | O_CLOEXEC)) >= 0) {
		running = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
		close(fd);
	}
	buf_free(&p);
	return running;
}

static void check_services(struct checker *c, struct config *cfg)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(4096), missing = BUF_INIT(BUF_NOLIMIT);
	struct svctab *tab = NULL;
	const char *ddir = config_str(cfg, "daemon_directory");
	bool running = master_running(cfg), tls = false;
	uid_t uid;
	gid_t gid;

	buf_printf(&path, "%s/master.cf", config_str(cfg, "config_directory"));
	if (!svctab_load_file(buf_cstr(&path), &tab, &err)) {
		problem(c, "%s", buf_cstr(&err));
		goto out;
	}
	buf_reset(&path);
	buf_printf(&path, "%s/master", ddir);
	if (access(buf_cstr(&path), X_OK) < 0)
		problem(c, "daemon_directory %s (set at %s) has no master program: %s; point daemon_directory at the "
		        "installed or built programs", ddir, where(cfg, "daemon_directory"), strerror(errno));
	for (size_t i = 0; i < tab->n; i++) {
		const struct svc_entry *e = &tab->entries[i];
		buf_reset(&path);
		buf_printf(&path, "%s/%s", ddir, e->command);
		if (access(buf_cstr(&path), X_OK) < 0) {
			buf_printf(&missing, "%s%s/%s", missing.len ? ", " : "", e->name, svctab_type_name(e->type));
			continue;
		}
		if (e->tls != SVC_TLS_NONE)
			tls = true;
		if (e->user && privs_is_root() && !privs_lookup_user(e->user, &uid, &gid, &err))
			problem(c, "%s: service %s: %s", e->origin, e->name, buf_cstr(&err));
		if (e->chroot && access(e->chroot, X_OK) < 0)
			problem(c, "%s: service %s: chroot %s: %s", e->origin, e->name, e->chroot, strerror(errno));
		if (e->type == SVC_INET)
			for (size_t j = 0; j < e->nlisten; j++)
				check_port(c, e, &e->listen[j], running);
	}
	if (missing.len)
		note(c, "not installed in %s, master will skip: %s", ddir, buf_cstr(&missing));
	if (tls)
		check_tls(c, cfg);
	svctab_free(&tab);
out:
	buf_free(&path);
	buf_free(&err);
	buf_free(&missing);
}

int ctl_check_instance(const char *dir, FILE *out)
{
	struct checker c = { out, 0 };
	struct buf err = BUF_INIT(4096), warn = BUF_INIT(16384);
	struct config *cfg;
	struct stat st;
	uid_t uid;
	gid_t gid;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		problem(&c, "instance directory %s: %s; create it with: postern init %s", dir,
		        S_ISDIR(st.st_mode) ? strerror(errno) : "not a directory", dir);
		goto done;
	}
	if ((cfg = daemon_config_load(dir, &err, &warn)) == NULL) {
		problem(&c, "%s", buf_cstr(&err));
		goto done;
	}
	for (char *w = warn.data, *nl; w && *w; w = nl ? nl + 1 : NULL) {
		if ((nl = strchr(w, '\n')) != NULL)
			*nl = '\0';
		if (*w)
			problem(&c, "%s", w);
	}
	check_values(&c, cfg);
	if (st.st_mode & 022)
		problem(&c, "instance directory %s is writable by group or others; run: chmod go-w %s", dir, dir);
	if (privs_is_root() && !privs_lookup_user(config_str(cfg, "mail_owner"), &uid, &gid, &err))
		problem(&c, "mail_owner (set at %s): %s", where(cfg, "mail_owner"), buf_cstr(&err));
	else if (privs_is_root() && uid == 0)
		note(&c, "mail_owner %s (set at %s) is uid 0: daemons will keep root; fine for a test instance, "
		     "not for a server", config_str(cfg, "mail_owner"), where(cfg, "mail_owner"));
	check_dir(&c, cfg, "config_directory", 022, false);
	check_dir(&c, cfg, "queue_directory", 022, true);
	check_dir(&c, cfg, "private_directory", 077, true);
	check_dir(&c, cfg, "pid_directory", 022, false);
	check_services(&c, cfg);
	config_free(&cfg);
done:
	if (c.problems == 0)
		fprintf(out, "postern check: %s: no problems found\n", dir);
	else
		fprintf(out, "postern check: %s: %d problem%s\n", dir, c.problems, c.problems == 1 ? "" : "s");
	buf_free(&err);
	buf_free(&warn);
	return c.problems;
}
