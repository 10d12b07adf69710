/* `postern check`: everything that would stop an instance from starting or make it unsafe, each problem on
 * its own line saying what is wrong, where, and what to do. Read-only: it never repairs anything. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "cmd_ctl.h"
#include "config.h"
#include "daemon.h"
#include "privs.h"
#include "svctab.h"
#include "x509.h"

#define CHECK_CERT_WARN_DAYS 30	/* time enough to renew before clients start refusing */

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

static void warning(struct checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warning(struct checker *c, const char *fmt, ...)
{
	va_list ap;

	fputs("warning: ", c->out);
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

/* Only when both files are readable: check_tls has already said why one is not. */
static void check_cert(struct checker *c, const char *cert, const char *key)
{
	struct buf err = BUF_INIT(2048);
	struct x509_info info;
	long long left;

	if (access(cert, R_OK) < 0)
		goto out;
	if (!x509_cert_info(cert, &info, &err)) {
		problem(c, "tls_cert_file %s: %s; replace it with a PEM certificate", cert, buf_cstr(&err));
		goto out;
	}
	left = x509_seconds_left(&info, time(NULL));
	if (left < 0)
		problem(c, "tls_cert_file %s expired %lld days ago; renew the certificate (postern init makes a new "
		        "self-signed one for a test instance) and run postern reload", cert, -left / 86400);
	else if (left < (long long)CHECK_CERT_WARN_DAYS * 86400)
		warning(c, "tls_cert_file %s expires in %lld days; renew it and run postern reload", cert,
		        left / 86400);
	if (access(key, R_OK) < 0)
		goto out;
	buf_reset(&err);
	if (!x509_check_key_matches(cert, key, &err))
		problem(c, "tls_key_file %s does not belong to tls_cert_file %s (%s); install the key the certificate "
		        "was issued for, or a certificate for this key", key, cert, buf_cstr(&err));
out:
	buf_free(&err);
}

/* A root-made instance gives the key to root with group read for mail_owner's group (postern init does): the
 * daemons that terminate TLS run as mail_owner and read it, and none of them can rewrite it. */
static bool check_key_group_ok(struct config *cfg, const struct stat *st)
{
	struct passwd *pw = getpwnam(config_str(cfg, "mail_owner"));
	return pw && st->st_uid == 0 && pw->pw_uid != 0 && st->st_gid == pw->pw_gid && (st->st_mode & 077) == 040;
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
	else if ((st.st_mode & 077) && !check_key_group_ok(cfg, &st))
		problem(c, "tls_key_file %s has mode %04o: the private key must not be readable by others; run: chmod "
		        "600 %s", key, (unsigned)(st.st_mode & 07777), key);
	check_cert(c, cert, key);
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

/* Compiled tables are what the daemons read: a source edited after the last compile is silently ignored. */
struct table_check {
	struct checker *c;
	struct buf seen;	/* "\n"-separated sources already reported on, so alias_maps and aliases count once */
	const char *aliases;	/* config_directory/aliases: its fix is newaliases */
};

static void check_table(struct table_check *tc, const char *param, const char *item)
{
	struct buf src = BUF_INIT(BUF_NOLIMIT), db = BUF_INIT(BUF_NOLIMIT), key = BUF_INIT(BUF_NOLIMIT);
	size_t n = strlen(item);
	bool named_db = n > 5 && strcmp(item + n - 5, ".lmdb") == 0;
	struct stat ss, ds;

	if (item[0] != '/')
		goto out;	/* not a file (an inline value or a table type this check does not know) */
	if (named_db) {
		buf_append(&src, item, n - 5);
		buf_puts(&db, item);
	} else {
		buf_puts(&src, item);
		buf_printf(&db, "%s.lmdb", item);
	}
	buf_printf(&key, "\n%s\n", buf_cstr(&src));
	if (tc->seen.len && memmem(tc->seen.data, tc->seen.len, key.data, key.len))
		goto out;
	buf_printf(&tc->seen, "%s\n", buf_cstr(&src));
	if (stat(buf_cstr(&src), &ss) < 0)
		goto out;	/* only the compiled form exists: nothing to compare */
	bool aliases = strcmp(param, "alias_maps") == 0 || strcmp(buf_cstr(&src), tc->aliases) == 0;
	const char *fix = aliases ? "run newaliases (postern map compile FILE --aliases)" : "run postern map compile FILE";
	if (stat(buf_cstr(&db), &ds) < 0) {
		if (named_db)	/* a daemon will try to open exactly this file */
			problem(tc->c, "%s: %s is not compiled (%s missing); %s with FILE=%s", param, buf_cstr(&src),
			        buf_cstr(&db), fix, buf_cstr(&src));
		goto out;
	}
	if (ss.st_mtim.tv_sec > ds.st_mtim.tv_sec ||
	    (ss.st_mtim.tv_sec == ds.st_mtim.tv_sec && ss.st_mtim.tv_nsec > ds.st_mtim.tv_nsec))
		problem(tc->c, "%s: %s was changed after %s was compiled, so the change is not in effect; %s with FILE=%s",
		        param, buf_cstr(&src), buf_cstr(&db), fix, buf_cstr(&src));
out:
	buf_free(&src);
	buf_free(&db);
	buf_free(&key);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void table_param(const char *name, const char *value, bool set, void *arg)
{
	struct table_check *tc = arg;
	struct config *tmp;
	char **items;
	size_t count;

	(void)set;
	if (!ends_with(name, "_maps") && !ends_with(name, "_access"))
		return;
	/* config_list splits by the same rules the daemons use; a scratch config holds the expanded value */
	tmp = config_new();
	config_set(tmp, name, value, "check");
	items = config_list(tmp, name, &count);
	for (size_t i = 0; i < count; i++)
		check_table(tc, name, items[i]);
	config_list_free(&items);
	config_free(&tmp);
}

static void check_tables(struct checker *c, struct config *cfg)
{
	struct buf aliases = BUF_INIT(BUF_NOLIMIT);
	struct table_check tc = { c, BUF_INIT(BUF_NOLIMIT), NULL };

	buf_printf(&aliases, "%s/aliases", config_str(cfg, "config_directory"));
	tc.aliases = buf_cstr(&aliases);
	buf_puts(&tc.seen, "\n");
	config_foreach(cfg, table_param, &tc);
	check_table(&tc, "aliases", tc.aliases);	/* newaliases writes it even when alias_maps names another */
	buf_free(&tc.seen);
	buf_free(&aliases);
}

/* The queue directories qmgr, smtpd and local move files between; postern init makes them mode 0700, owned by
 * mail_owner. A missing one stops delivery; a readable one exposes mail. */
static void check_queue(struct checker *c, struct config *cfg)
{
	static const char *const dirs[] = { "tmp", "incoming", "active", "deferred", "hold", "corrupt" };
	const char *qdir = config_str(cfg, "queue_directory"), *owner = config_str(cfg, "mail_owner");
	struct buf p = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	bool know_uid;
	struct stat st;
	uid_t uid;
	gid_t gid;

	/* an unprivileged instance has its own user as mail_owner; an unknown user is reported elsewhere */
	know_uid = privs_lookup_user(owner, &uid, &gid, &err);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		buf_reset(&p);
		buf_printf(&p, "%s/%s", qdir, dirs[i]);
		if (stat(buf_cstr(&p), &st) < 0) {
			problem(c, "queue directory %s: %s; run: mkdir -m 0700 %s%s%s (or postern init again)",
			        buf_cstr(&p), strerror(errno), buf_cstr(&p), privs_is_root() ? " && chown " : "",
			        privs_is_root() ? owner : "");
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			problem(c, "queue directory %s is not a directory; move it away and run: mkdir -m 0700 %s",
			        buf_cstr(&p), buf_cstr(&p));
			continue;
		}
		if ((st.st_mode & 07777) != 0700)
			problem(c, "queue directory %s has mode %04o, not 0700; run: chmod 0700 %s", buf_cstr(&p),
			        (unsigned)(st.st_mode & 07777), buf_cstr(&p));
		if (know_uid && st.st_uid != uid)
			problem(c, "queue directory %s is owned by uid %ld, not mail_owner %s; run: chown %s %s",
			        buf_cstr(&p), (long)st.st_uid, owner, owner, buf_cstr(&p));
	}
	buf_free(&p);
	buf_free(&err);
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
	bool running = master_running(cfg), tls = false, queue = false;
	bool sysusers = config_bool(cfg, "auth_system_users");
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
		if (strcmp(e->command, "qmgr") == 0 || strcmp(e->command, "smtpd") == 0 ||
		    strcmp(e->command, "local") == 0 || strcmp(e->command, "smtp") == 0)
			queue = true;
		/* a mailbox server as mail_owner can open only mailboxes mail_owner owns, never a system user's */
		const char *su = e->user ? e->user : config_str(cfg, "mail_owner");
		if (sysusers && (strcmp(e->command, "pop3d") == 0 || strcmp(e->command, "imapd") == 0) &&
		    strcmp(su, "root") != 0)
			warning(c, "%s: service %s runs as %s, so system users (auth_system_users = yes) cannot read their "
			        "mail through it; set its user column to root (logins are still handled as mail_owner)",
			        e->origin, e->name, su);
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
	if (queue)	/* an instance without mail services (master alone) has no use for the queue */
		check_queue(c, cfg);
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
	check_tables(&c, cfg);
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
