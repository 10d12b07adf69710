/* postern init DIR: create a complete, self-contained instance (the layout of "The instance directory" in
 * docs/ARCHITECTURE.md): directories with their modes, etc/main.cf, etc/master.cf, etc/aliases, a self-signed
 * certificate and a demo account. Run by an administrator once per instance, by `make run`, and by the
 * integration tests for every test instance.
 *
 * postern init --system: the installed layout, configuration in /etc/postern and the rest in /var/spool/postern.
 * Like Postfix's post-install it creates only what is missing and never rewrites an existing file, so `make
 * install` and the systemd unit run it on every install and start; accounts start empty (no demo account). */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "accounts.h"
#include "alloc.h"
#include "buf.h"
#include "commands.h"
#include "fsutil.h"
#include "log.h"
#include "maildir.h"
#include "str.h"
#include "table.h"
#include "x509.h"

#define INIT_NAME_MAX 253
#define INIT_PASSWORD_LEN 16
#define INIT_MAX_PORT_OPTS 32
#define INIT_SYSTEM_CONFIG "/etc/postern"
#define INIT_SYSTEM_SPOOL "/var/spool/postern"

/* Public listeners. Development instances listen on loopback only, on unprivileged ports. */
struct init_service {
	const char *name;
	int dev_port;
	int std_port;
	const char *tls;	/* starttls: offered after the greeting; implicit: TLS from the first byte */
	const char *command;
	const char *override;	/* one -o name=value, or NULL */
	bool system_users;	/* --system runs it as root: logins of system users switch to their uid */
};

static const struct init_service init_services[] = {
	{ "smtp", 2525, 25, "starttls", "smtpd", NULL, false },
	{ "submission", 2587, 587, "starttls", "smtpd", "smtpd_auth_required=yes", false },
	{ "smtps", 2465, 465, "implicit", "smtpd", "smtpd_auth_required=yes", false },
	{ "pop3", 1110, 110, "starttls", "pop3d", NULL, true },
	{ "pop3s", 1995, 995, "implicit", "pop3d", NULL, true },
	{ "imap", 1143, 143, "starttls", "imapd", NULL, true },
	{ "imaps", 1993, 993, "implicit", "imapd", NULL, true },
};
#define INIT_NSERVICES (sizeof(init_services) / sizeof(init_services[0]))

/* Internal services: UNIX sockets in private/, named like the service. */
struct init_internal {
	const char *name;
	const char *system_user;	/* user column of a system instance; a dev instance runs everything as one */
	const char *maxproc, *maxuse, *idle;
	const char *command;
};

static const struct init_internal init_internal[] = {
	{ "qmgr", "-", "1", "0", "0", "qmgr" },
	{ "auth", "-", "1", "0", "0", "auth" },
	{ "smtp", "-", "50", "100", "100s", "smtp" },
	{ "local", "root", "20", "100", "100s", "local" },	/* switches to the recipient itself */
};

struct init_dir {
	const char *path;	/* relative to the instance directory */
	mode_t mode;
	bool owned_by_mail_owner;	/* chown to mail_owner when root */
};

/* Below the configuration directory (DIR/etc, or /etc/postern for --system). */
static const struct init_dir init_conf_dirs[] = {
	{ "", 0755, false },
	{ "tls", 0755, false },
};

static const struct init_dir init_dirs[] = {
	{ "queue", 0700, true },
	{ "queue/tmp", 0700, true },
	{ "queue/incoming", 0700, true },
	{ "queue/active", 0700, true },
	{ "queue/deferred", 0700, true },
	{ "queue/hold", 0700, true },
	{ "queue/corrupt", 0700, true },
	{ "private", 0700, true },
	{ "public", 0711, true },	/* the submission socket's own mode decides who may connect */
	{ "data", 0700, true },
	{ "mail", 0700, true },
	{ "log", 0750, true },
	{ "pid", 0755, false },	/* written by master, which keeps root */
};

struct init_opts {
	char *dir;	/* absolute; the spool directory of a system instance */
	char *confdir;	/* DIR/etc, or /etc/postern */
	char *hostname;
	char *domain;
	char *user;
	bool dev;
	bool system;	/* --system: create what is missing in the installed layout, keep the rest */
	unsigned created;	/* --system: files and directories made by this run */
	bool root;
	bool no_system_user;	/* root, but no "postern" user yet: fell back to a development instance */
	int ports[INIT_NSERVICES];
	uid_t owner_uid;
	gid_t owner_gid;
	char *daemon_dir;
	char password[INIT_PASSWORD_LEN + 1];
};

static const struct cli_command init_cmd = {
	"init", cmd_init,
	"DIR|--system [--domain D] [--hostname H] [--port NAME=PORT]... [--user USER] [--dev]  create a new instance "
	"in DIR, or complete the installed one (/etc/postern, /var/spool/postern)"
};

/* DNS names as they go into main.cf and the certificate: letters, digits, '-', '.'; labels of 1 to 63. */
static bool init_dns_name_ok(const char *s)
{
	size_t n = strlen(s), label = 0;
	if (n == 0 || n > INIT_NAME_MAX || s[0] == '.' || s[0] == '-' || s[n - 1] == '.' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return false;
		if (c == '.' && (s[i + 1] == '.' || s[i + 1] == '-'))
			return false;
		if (c == '-' && s[i + 1] == '.')
			return false;
		label = c == '.' ? 0 : label + 1;
		if (label > 63)
			return false;
	}
	return true;
}

/* The directory lands unquoted in main.cf values and on daemon command lines: refuse anything that would be
 * split, expanded ($) or read as a comment there. */
static bool init_path_ok(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '$' || *p == '#' || *p == ',' || *p == '\\' || *p == '"' ||
		    *p == '\'')
			return false;
	return true;
}

static const struct init_service *init_find_service(const char *name, size_t len, size_t *index)
{
	for (size_t i = 0; i < INIT_NSERVICES; i++)
		if (strlen(init_services[i].name) == len && memcmp(init_services[i].name, name, len) == 0) {
			*index = i;
			return &init_services[i];
		}
	return NULL;
}

static bool init_parse_port(struct init_opts *o, const char *arg, bool *set)
{
	const char *eq = strchr(arg, '=');
	uint64_t port;
	size_t idx;

	if (!eq || !init_find_service(arg, (size_t)(eq - arg), &idx)) {
		fprintf(stderr, "postern init: --port %s: expected NAME=PORT with NAME one of:", log_safe(arg, strlen(arg), 80));
		for (size_t i = 0; i < INIT_NSERVICES; i++)
			fprintf(stderr, " %s", init_services[i].name);
		fputc('\n', stderr);
		return false;
	}
	if (!str_to_u64(eq + 1, 65535, &port) || port == 0) {
		fprintf(stderr, "postern init: --port %s: the port must be a number from 1 to 65535\n",
		        log_safe(arg, strlen(arg), 80));
		return false;
	}
	o->ports[idx] = (int)port;
	set[idx] = true;
	return true;
}

/* Make dir absolute without resolving symlinks or requiring it to exist; strip trailing slashes. */
static char *init_absolute(const char *dir)
{
	struct buf b = BUF_INIT(PATH_MAX - 1);
	char *cwd;

	if (dir[0] != '/') {
		if ((cwd = getcwd(NULL, 0)) == NULL)
			fatal("getcwd");
		if (!buf_puts(&b, cwd) || (strcmp(cwd, "/") != 0 && !buf_putc(&b, '/'))) {
			free(cwd);
			buf_free(&b);
			return NULL;
		}
		free(cwd);
	}
	if (!buf_puts(&b, dir)) {
		buf_free(&b);
		return NULL;
	}
	while (b.len > 1 && b.data[b.len - 1] == '/')
		buf_truncate(&b, b.len - 1);
	return buf_steal(&b, NULL);
}

/* Where master should find the daemons: beside this postern binary (a build tree), or the libexec directory of
 * the prefix it was installed into. */
static char *init_daemon_dir(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	struct buf b = BUF_INIT(PATH_MAX);
	char *slash;
	struct stat st;

	if (n <= 0 || (size_t)n >= sizeof(exe) - 1)
		return NULL;
	exe[n] = '\0';
	if ((slash = strrchr(exe, '/')) == NULL)
		return NULL;
	*slash = '\0';
	buf_printf(&b, "%s/master", exe);
	if (access(buf_cstr(&b), X_OK) != 0) {
		/* PREFIX/sbin/postern -> PREFIX/libexec/postern */
		char *up = strrchr(exe, '/');
		buf_reset(&b);
		if (up && strcmp(up, "/sbin") == 0 && buf_append(&b, exe, (size_t)(up - exe)) &&
		    buf_puts(&b, "/libexec/postern") && stat(buf_cstr(&b), &st) == 0 && S_ISDIR(st.st_mode))
			return buf_steal(&b, NULL);
	}
	buf_free(&b);
	return xstrdup(exe);
}

static void init_default_names(struct init_opts *o)
{
	char host[256];

	if (!o->hostname) {
		if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0' || !init_dns_name_ok(host))
			str_copy(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		o->hostname = xstrdup(host);
	}
	if (!o->domain) {
		const char *dot = strchr(o->hostname, '.');
		o->domain = xstrdup(dot ? dot + 1 : "localdomain");
	}
	str_lower(o->hostname);
	str_lower(o->domain);
}

/* Decide who runs the instance. A non-root instance always runs as the invoking user. Root gets a system
 * instance run by "postern" (or --user); with --dev, or when that user does not exist yet, a development
 * instance run by root on loopback, so `make run` works in a fresh container. */
static bool init_choose_owner(struct init_opts *o)
{
	struct passwd *pw;

	if (!o->root) {
		if ((pw = getpwuid(geteuid())) == NULL) {
			fprintf(stderr, "postern init: the invoking user (uid %ld) has no passwd entry\n", (long)geteuid());
			return false;
		}
		if (o->user && strcmp(o->user, pw->pw_name) != 0) {
			fprintf(stderr, "postern init: --user %s: only root can create an instance run by another user\n",
			        log_safe(o->user, strlen(o->user), 64));
			return false;
		}
		o->dev = true;
	} else if (!o->user) {
		if (o->dev) {
			pw = getpwuid(geteuid());
		} else if ((pw = getpwnam("postern")) == NULL) {
			o->dev = o->no_system_user = true;
			pw = getpwuid(geteuid());
		}
		if (!pw) {
			fprintf(stderr, "postern init: uid %ld has no passwd entry\n", (long)geteuid());
			return false;
		}
	} else if ((pw = getpwnam(o->user)) == NULL) {
		fprintf(stderr, "postern init: --user %s: no such user\n", log_safe(o->user, strlen(o->user), 64));
		return false;
	}
	if (!init_path_ok(pw->pw_name)) {
		fprintf(stderr, "postern init: user name '%s' cannot be used in main.cf\n",
		        log_safe(pw->pw_name, strlen(pw->pw_name), 64));
		return false;
	}
	free(o->user);
	o->user = xstrdup(pw->pw_name);
	o->owner_uid = pw->pw_uid;
	o->owner_gid = pw->pw_gid;
	return true;
}

static bool init_parse(int argc, char **argv, struct init_opts *o)
{
	bool port_set[INIT_NSERVICES] = { false };
	const char *dir = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL, *eq;
		char name[16];

		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			if (dir) {
				fprintf(stderr, "postern init: only one DIR may be given\n");
				return false;
			}
			dir = (strcmp(a, "--") == 0 && i + 1 < argc) ? argv[++i] : a;
			continue;
		}
		if (strcmp(a, "--dev") == 0) {
			o->dev = true;
			continue;
		}
		if (strcmp(a, "--system") == 0) {
			o->system = true;
			continue;
		}
		/* --name VALUE or --name=VALUE */
		if ((eq = strchr(a, '=')) != NULL) {
			if ((size_t)(eq - a) >= sizeof(name))
				goto unknown;
			memcpy(name, a, (size_t)(eq - a));
			name[eq - a] = '\0';
			val = eq + 1;
		} else {
			if (!str_copy(name, sizeof(name), a))
				goto unknown;
			if (i + 1 >= argc) {
				fprintf(stderr, "postern init: %s needs a value\n", name);
				return false;
			}
			val = argv[++i];
		}
		if (strcmp(name, "--domain") == 0) {
			free(o->domain);
			o->domain = xstrdup(val);
		} else if (strcmp(name, "--hostname") == 0) {
			free(o->hostname);
			o->hostname = xstrdup(val);
		} else if (strcmp(name, "--user") == 0) {
			free(o->user);
			o->user = xstrdup(val);
		} else if (strcmp(name, "--port") == 0) {
			if (!init_parse_port(o, val, port_set))
				return false;
		} else {
			goto unknown;
		}
		continue;
unknown:
		fprintf(stderr, "postern init: unknown option %s\n", log_safe(a, strlen(a), 64));
		return false;
	}
	if (o->system) {
		if (dir || o->dev) {
			fprintf(stderr, "postern init: --system takes no DIR and no --dev\n");
			return false;
		}
		if (geteuid() != 0) {
			fprintf(stderr, "postern init: --system must be run as root\n");
			return false;
		}
		dir = INIT_SYSTEM_SPOOL;
	}
	if (!dir || !*dir)
		return false;
	if ((o->dir = init_absolute(dir)) == NULL || !init_path_ok(o->dir)) {
		fprintf(stderr, "postern init: %s: the directory name must be shorter than %d bytes and must not "
		        "contain white space, control characters or any of $#,\\\"'\n", log_safe(dir, strlen(dir), 200),
		        PATH_MAX);
		return false;
	}
	if (strcmp(o->dir, "/") == 0) {
		fprintf(stderr, "postern init: refusing to use / as an instance directory\n");
		return false;
	}
	if ((o->hostname && !init_dns_name_ok(o->hostname)) || (o->domain && !init_dns_name_ok(o->domain))) {
		const char *bad = o->hostname && !init_dns_name_ok(o->hostname) ? o->hostname : o->domain;
		fprintf(stderr, "postern init: '%s' is not a valid domain name\n", log_safe(bad, strlen(bad), 80));
		return false;
	}
	o->confdir = o->system ? xstrdup(INIT_SYSTEM_CONFIG) : NULL;
	if (!o->confdir) {
		struct buf c = BUF_INIT(BUF_NOLIMIT);
		buf_printf(&c, "%s/etc", o->dir);
		o->confdir = buf_steal(&c, NULL);
	}
	o->root = geteuid() == 0;
	if (!init_choose_owner(o))
		return false;
	if (o->system && o->no_system_user) {
		fprintf(stderr, "postern init: --system: user 'postern' does not exist; create it first (make install "
		        "does: useradd --system --home-dir %s --no-create-home --shell /usr/sbin/nologin postern) "
		        "or pass --user\n", INIT_SYSTEM_SPOOL);
		return false;
	}
	for (size_t i = 0; i < INIT_NSERVICES; i++)
		if (!port_set[i])
			o->ports[i] = o->dev ? init_services[i].dev_port : init_services[i].std_port;
	for (size_t i = 0; i < INIT_NSERVICES; i++)
		for (size_t j = i + 1; j < INIT_NSERVICES; j++)
			if (o->ports[i] == o->ports[j]) {
				fprintf(stderr, "postern init: %s and %s would both use port %d\n", init_services[i].name,
				        init_services[j].name, o->ports[i]);
				return false;
			}
	init_default_names(o);
	return true;
}

/* DIR may exist only as an empty directory: init never mixes a new instance into existing files. Returns 1 when
 * DIR was created here, 0 when it existed empty, -1 (message printed) when it cannot be used. */
static int init_prepare_dir(const char *dir)
{
	struct dirent *e;
	struct stat st;
	DIR *d;

	if (lstat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			fprintf(stderr, "postern init: %s exists and is not a directory\n", dir);
			return -1;
		}
		if ((d = opendir(dir)) == NULL) {
			fprintf(stderr, "postern init: %s: %s\n", dir, strerror(errno));
			return -1;
		}
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			closedir(d);
			fprintf(stderr, "postern init: %s already exists and is not empty: refusing to create an instance "
			        "over existing files (give a new or empty directory)\n", dir);
			return -1;
		}
		closedir(d);
		return 0;
	}
	if (errno != ENOENT) {
		fprintf(stderr, "postern init: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	/* Missing parents are created as with mkdir -p; the last component is the instance. */
	if (!fsutil_mkdir_p(dir, 0755)) {
		fprintf(stderr, "postern init: mkdir %s: %s\n", dir, strerror(errno));
		return -1;
	}
	return 1;
}

static int init_remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	if (ftw->level > 0 && remove(path) < 0)
		fprintf(stderr, "postern init: cleanup: remove %s: %s\n", path, strerror(errno));
	return 0;
}

/* Undo a failed init. Everything below DIR is ours: DIR was new or empty when we started. */
static void init_cleanup(const char *dir, int created)
{
	(void)nftw(dir, init_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (created == 1)
		(void)rmdir(dir);
}

/* --system says what it made, one line each, so a run from make install or the systemd unit leaves a record. */
static void init_made(struct init_opts *o, const char *path)
{
	o->created++;
	if (o->system)
		printf("postern init: created %s\n", path);
}

/* path exists (following symlinks: an administrator may have moved mail or the queue elsewhere)? A system
 * instance is completed, never rewritten: what exists is kept as it is, and `postern check` reports bad modes. */
static bool init_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static bool init_mkdir(struct init_opts *o, const char *base, const struct init_dir *d)
{
	struct buf path = BUF_INIT(PATH_MAX);
	struct stat st;
	bool ok = true;

	buf_printf(&path, d->path[0] ? "%s/%s" : "%s%s", base, d->path);
	if (stat(buf_cstr(&path), &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			fprintf(stderr, "postern init: %s exists and is not a directory\n", buf_cstr(&path));
			ok = false;
		}
		goto out;
	}
	/* mkdir's mode passes through the umask; chmod sets exactly what the layout asks for. */
	if (mkdir(buf_cstr(&path), 0700) < 0 || chmod(buf_cstr(&path), d->mode) < 0) {
		fprintf(stderr, "postern init: mkdir %s: %s\n", buf_cstr(&path), strerror(errno));
		ok = false;
	} else if (o->root && d->owned_by_mail_owner && chown(buf_cstr(&path), o->owner_uid, o->owner_gid) < 0) {
		fprintf(stderr, "postern init: chown %s: %s\n", buf_cstr(&path), strerror(errno));
		ok = false;
	} else {
		init_made(o, buf_cstr(&path));
	}
out:
	buf_free(&path);
	return ok;
}

static bool init_mkdirs(struct init_opts *o)
{
	bool ok = true;

	/* a development DIR was checked empty (or made) by init_prepare_dir; it is opened up to the layout's mode */
	if (!o->system && chmod(o->dir, 0755) < 0) {
		fprintf(stderr, "postern init: chmod %s: %s\n", o->dir, strerror(errno));
		return false;
	}
	if (o->system && !init_exists(o->dir)) {
		if (!fsutil_mkdir_p(o->dir, 0755) || chmod(o->dir, 0755) < 0) {
			fprintf(stderr, "postern init: mkdir %s: %s\n", o->dir, strerror(errno));
			return false;
		}
		init_made(o, o->dir);
	}
	for (size_t i = 0; ok && i < sizeof(init_conf_dirs) / sizeof(init_conf_dirs[0]); i++)
		ok = init_mkdir(o, o->confdir, &init_conf_dirs[i]);
	for (size_t i = 0; ok && i < sizeof(init_dirs) / sizeof(init_dirs[0]); i++)
		ok = init_mkdir(o, o->dir, &init_dirs[i]);
	return ok;
}

/* base/rel, unless it exists already (kept, never overwritten). */
static bool init_write_file(struct init_opts *o, const char *base, const char *rel, const struct buf *content,
                            mode_t mode)
{
	struct buf path = BUF_INIT(PATH_MAX), err = BUF_INIT(BUF_NOLIMIT);
	bool ok = true;

	buf_printf(&path, "%s/%s", base, rel);
	if (!init_exists(buf_cstr(&path))) {
		if ((ok = fsutil_write_atomic(buf_cstr(&path), buf_cstr(content), content->len, mode, &err)))
			init_made(o, buf_cstr(&path));
		else
			fprintf(stderr, "postern init: %s\n", buf_cstr(&err));
	}
	buf_free(&path);
	buf_free(&err);
	return ok;
}

static void init_main_cf(const struct init_opts *o, struct buf *b)
{
	char date[32];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y-%m-%d", &tm);
	buf_printf(b, "# Postern main.cf, written by `postern init` on %s.\n", date);
	buf_puts(b, "# name = value; `postern config` lists every parameter with its default.\n\n");
	buf_printf(b, "instance_directory = %s\n", o->dir);
	if (o->daemon_dir)
		buf_printf(b, "daemon_directory = %s\n", o->daemon_dir);
	buf_printf(b, "myhostname = %s\n", o->hostname);
	buf_printf(b, "mydomain = %s\n", o->domain);
	buf_puts(b, "mydestination = $myhostname, $mydomain, localhost.$mydomain, localhost\n");
	buf_puts(b, "# Clients that may relay without authentication: this host only. Widening this makes an open\n"
	            "# relay unless every added network is one you control.\n");
	buf_puts(b, "mynetworks = 127.0.0.0/8, [::1]/128\n");
	buf_printf(b, "mail_owner = %s\n", o->user);
	if (o->dev)
		buf_puts(b, "log_destination = $instance_directory/log/postern.log\n");
	else
		buf_puts(b, "log_destination = syslog\n");
	if (o->system)
		buf_puts(b, "# The host's users log in with their login name and password and read ~/Maildir, as with\n"
		            "# Dovecot; pop3/imap in master.cf run as root for that (privilege-separated login).\n"
		            "auth_system_users = yes\n");
	buf_puts(b, "tls_cert_file = $config_directory/tls/cert.pem\n");
	buf_puts(b, "tls_key_file = $config_directory/tls/key.pem\n");
}

static void init_master_cf(const struct init_opts *o, struct buf *b)
{
	struct buf listen = BUF_INIT(64);

	buf_puts(b, "# Postern master.cf: the services master runs. \"-\" takes the default; see docs/ARCHITECTURE.md.\n"
	            "# type inet: listen = host:port (*:port for every address); type unix: a socket name in private/.\n"
	            "# tls: none, starttls (offered after the greeting) or implicit (TLS from the first byte).\n"
	            "# Lines starting with white space continue the previous entry.\n#\n");
	buf_puts(b, "# service    type listen            tls       user chroot maxproc maxuse idle command\n");
	for (size_t i = 0; i < INIT_NSERVICES; i++) {
		const struct init_service *s = &init_services[i];
		buf_reset(&listen);
		buf_printf(&listen, "%s:%d", o->dev ? "127.0.0.1" : "*", o->ports[i]);
		buf_printf(b, "%-12s inet %-17s %-9s %-4s -      100     100    100s %s\n", s->name, buf_cstr(&listen),
		           s->tls, o->system && s->system_users ? "root" : "-", s->command);
		if (s->override)
			buf_printf(b, "    -o %s\n", s->override);
	}
	buf_puts(b, "# internal services (UNIX sockets in private/)\n");
	for (size_t i = 0; i < sizeof(init_internal) / sizeof(init_internal[0]); i++) {
		const struct init_internal *u = &init_internal[i];
		buf_printf(b, "%-12s unix %-17s -         %-4s -      %-7s %-6s %-4s %s\n", u->name, u->name,
		           o->dev ? "-" : u->system_user, u->maxproc, u->maxuse, u->idle, u->command);
	}
	buf_puts(b, "# local submission: sendmail speaks SMTP to public/submit; smtpd takes the uid from the socket\n"
	            "submit       unix public/submit     -         -    -      100     100    100s smtpd\n"
	            "    -o smtpd_local_submission=yes\n");
	buf_free(&listen);
}

static void init_aliases(const struct init_opts *o, struct buf *b)
{
	buf_puts(b, "# aliases: \"name: target, target...\" per line; `postern newaliases` compiles it into\n"
	            "# aliases.lmdb. Mail to postmaster must always reach a person (RFC 5321).\n");
	if (o->system)
		buf_puts(b, "postmaster: root\n");
	else
		buf_printf(b, "postmaster: demo@%s\n", o->domain);
}

/* A password a person can copy: no look-alike characters. Rejection sampling keeps the choice uniform. */
static void init_password(char *out, size_t len)
{
	static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	const unsigned n = sizeof(alphabet) - 1;
	const unsigned limit = 256 - 256 % n;
	unsigned char rnd[64];
	size_t have = 0;

	while (have < len) {
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			fatal("getrandom");
		for (size_t i = 0; i < sizeof(rnd) && have < len; i++)
			if (rnd[i] < limit)
				out[have++] = alphabet[rnd[i] % n];
	}
	out[len] = '\0';
	explicit_bzero(rnd, sizeof(rnd));
}

/* The demo account's Maildir (the accounts module's default place, mail/DOMAIN/demo/), so POP3 and IMAP show an
 * empty mailbox before the first delivery. Owned by mail_owner, which reads and delivers virtual mail. */
static bool init_demo_maildir(const struct init_opts *o)
{
	static const char *const sub[] = { "", "/tmp", "/new", "/cur" };
	struct buf domain = BUF_INIT(PATH_MAX), root = BUF_INIT(PATH_MAX), p = BUF_INIT(PATH_MAX),
	           err = BUF_INIT(BUF_NOLIMIT);
	bool ok = true;

	buf_printf(&domain, "%s/mail/%s", o->dir, o->domain);
	buf_printf(&root, "%s/demo", buf_cstr(&domain));
	if (!maildir_make(buf_cstr(&root), 0700, &err)) {
		fprintf(stderr, "postern init: %s\n", buf_cstr(&err));
		ok = false;
	}
	if (ok && chmod(buf_cstr(&domain), 0700) < 0) {
		fprintf(stderr, "postern init: chmod %s: %s\n", buf_cstr(&domain), strerror(errno));
		ok = false;
	}
	for (size_t i = 0; ok && o->root && i <= sizeof(sub) / sizeof(sub[0]); i++) {
		buf_reset(&p);
		/* the Maildir and its subdirectories, then the domain directory above it */
		if (i < sizeof(sub) / sizeof(sub[0]))
			buf_printf(&p, "%s%s", buf_cstr(&root), sub[i]);
		else
			buf_puts(&p, buf_cstr(&domain));
		if (chown(buf_cstr(&p), o->owner_uid, o->owner_gid) < 0) {
			fprintf(stderr, "postern init: chown %s: %s\n", buf_cstr(&p), strerror(errno));
			ok = false;
		}
	}
	buf_free(&domain);
	buf_free(&root);
	buf_free(&p);
	buf_free(&err);
	return ok;
}

/* demo@DOMAIN in data/accounts.lmdb, so a new instance can be tried with a mail client at once; a system
 * instance gets an empty database (`postern user add` fills it). The database and its lock file belong to
 * mail_owner: the auth daemon reads them after dropping privileges. */
static bool init_accounts(struct init_opts *o)
{
	static const char *const files[] = { "accounts.lmdb", "accounts.lmdb-lock" };
	struct buf db_path = BUF_INIT(PATH_MAX), mail = BUF_INIT(PATH_MAX), addr = BUF_INIT(PATH_MAX),
	           p = BUF_INIT(PATH_MAX), err = BUF_INIT(BUF_NOLIMIT);
	struct accounts_opts opts;
	struct accounts *db;
	enum accounts_result r = ACCOUNTS_ERROR;
	bool ok = false;

	buf_printf(&db_path, "%s/data/accounts.lmdb", o->dir);
	buf_printf(&mail, "%s/mail", o->dir);
	buf_printf(&addr, "demo@%s", o->domain);
	memset(&opts, 0, sizeof(opts));
	opts.mail_directory = buf_cstr(&mail);
	if (init_exists(buf_cstr(&db_path))) {
		ok = true;
		goto out;
	}
	if ((db = accounts_open(buf_cstr(&db_path), true, &err)) != NULL) {
		r = o->system ? ACCOUNTS_OK : accounts_add(db, buf_cstr(&addr), o->password, &opts, &err);
		accounts_close(&db);
	}
	if (r != ACCOUNTS_OK) {
		fprintf(stderr, "postern init: demo account %s: %s\n", buf_cstr(&addr),
		        err.len ? buf_cstr(&err) : accounts_result_str(r));
		goto out;
	}
	ok = true;
	init_made(o, buf_cstr(&db_path));
	for (size_t i = 0; o->root && i < sizeof(files) / sizeof(files[0]); i++) {
		buf_reset(&p);
		buf_printf(&p, "%s/data/%s", o->dir, files[i]);
		if (chown(buf_cstr(&p), o->owner_uid, o->owner_gid) < 0 && errno != ENOENT) {
			fprintf(stderr, "postern init: chown %s: %s\n", buf_cstr(&p), strerror(errno));
			ok = false;
		}
	}
out:
	buf_free(&db_path);
	buf_free(&mail);
	buf_free(&addr);
	buf_free(&p);
	buf_free(&err);
	return ok;
}

/* The self-signed certificate, unless there is one: a pair half present is an administrator's doing, not ours. */
static bool init_certificate(struct init_opts *o)
{
	struct buf cert = BUF_INIT(PATH_MAX), key = BUF_INIT(PATH_MAX), err = BUF_INIT(BUF_NOLIMIT);
	bool ok = true, have_cert, have_key;

	buf_printf(&cert, "%s/tls/cert.pem", o->confdir);
	buf_printf(&key, "%s/tls/key.pem", o->confdir);
	have_cert = init_exists(buf_cstr(&cert));
	have_key = init_exists(buf_cstr(&key));
	if (have_cert != have_key) {
		fprintf(stderr, "postern init: %s exists but %s does not: put the missing one in place or remove the "
		        "other for a new self-signed pair\n", have_cert ? buf_cstr(&cert) : buf_cstr(&key),
		        have_cert ? buf_cstr(&key) : buf_cstr(&cert));
		ok = false;
	} else if (!have_cert) {
		/* The daemons that terminate TLS run as mail_owner: when root creates the instance for another user,
		 * that user's group may read the key (root keeps ownership so a daemon cannot rewrite it). */
		ok = x509_create_selfsigned(buf_cstr(&cert), buf_cstr(&key), o->hostname, X509_SELFSIGNED_DAYS,
		                            o->root && o->owner_uid != 0 ? o->owner_gid : (gid_t)-1, &err);
		if (!ok)
			fprintf(stderr, "postern init: %s\n", buf_cstr(&err));
		else
			init_made(o, buf_cstr(&cert));
	}
	buf_free(&cert);
	buf_free(&key);
	buf_free(&err);
	return ok;
}

static bool init_create(struct init_opts *o)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(BUF_NOLIMIT), aliases = BUF_INIT(PATH_MAX),
	           compiled = BUF_INIT(PATH_MAX);
	bool ok = false;

	if (!init_mkdirs(o))
		goto out;
	init_main_cf(o, &b);
	if (!init_write_file(o, o->confdir, "main.cf", &b, 0644))
		goto out;
	buf_reset(&b);
	init_master_cf(o, &b);
	if (!init_write_file(o, o->confdir, "master.cf", &b, 0644))
		goto out;
	buf_reset(&b);
	init_aliases(o, &b);
	if (!init_write_file(o, o->confdir, "aliases", &b, 0644))
		goto out;
	/* compiled now so local delivery finds postmaster before anyone runs newaliases */
	buf_printf(&aliases, "%s/aliases", o->confdir);
	buf_printf(&compiled, "%s/aliases.lmdb", o->confdir);
	if (!init_exists(buf_cstr(&compiled))) {
		if (!table_compile(buf_cstr(&aliases), NULL, TABLE_ALIASES, NULL, &err, NULL)) {
			fprintf(stderr, "postern init: %s\n", buf_cstr(&err));
			goto out;
		}
		init_made(o, buf_cstr(&compiled));
	}
	if (!init_certificate(o))
		goto out;
	if (!o->system) {
		if (!init_demo_maildir(o))
			goto out;
		init_password(o->password, INIT_PASSWORD_LEN);
	}
	if (!init_accounts(o))
		goto out;
	ok = true;
out:
	buf_free(&b);
	buf_free(&err);
	buf_free(&aliases);
	buf_free(&compiled);
	return ok;
}

static void init_report(const struct init_opts *o)
{
	if (o->system) {
		if (o->created == 0)
			printf("postern init: the system instance (%s, %s) is complete; nothing was changed\n", o->confdir,
			       o->dir);
		else
			printf("postern init: system instance completed: configuration in %s, spool in %s, daemons run as "
			       "%s; existing files were kept\nstart it with: systemctl start postern (or postern start)\n",
			       o->confdir, o->dir, o->user);
		return;
	}
	printf("created a %s instance in %s\n", o->dev ? "development" : "system", o->dir);
	printf("  hostname %s, domain %s, daemons run as %s\n", o->hostname, o->domain, o->user);
	printf("  listening on %s:", o->dev ? "127.0.0.1" : "every address");
	for (size_t i = 0; i < INIT_NSERVICES; i++)
		printf(" %s=%d", init_services[i].name, o->ports[i]);
	printf("\n  self-signed certificate for %s in %s/etc/tls/ (replace it with a real one for public use)\n",
	       o->hostname, o->dir);
	printf("demo account: demo@%s password: %s\n", o->domain, o->password);
	printf("  (the password is shown only this once)\n");
	printf("start it with: postern start -c %s\n", o->dir);
	if (o->no_system_user)
		fprintf(stderr, "postern init: warning: user 'postern' does not exist, so this is a development instance "
		        "run by root on loopback ports; for a system instance create the user first (make install "
		        "does) or pass --user\n");
}

int cmd_init(int argc, char **argv)
{
	struct init_opts o;
	int created, rc = EX_CANTCREAT;

	memset(&o, 0, sizeof(o));
	if (!init_parse(argc, argv, &o)) {
		rc = cli_usage(&init_cmd);
		goto out;
	}
	o.daemon_dir = init_daemon_dir();
	if (o.daemon_dir && !init_path_ok(o.daemon_dir)) {
		fprintf(stderr, "postern init: warning: daemon directory %s cannot be written to main.cf; "
		        "set daemon_directory by hand\n", log_safe(o.daemon_dir, strlen(o.daemon_dir), 200));
		xfree(&o.daemon_dir);
	}
	if (o.system) {
		if (!init_create(&o)) {
			fprintf(stderr, "postern init: the system instance is incomplete; what was made is kept\n");
			goto out;
		}
		init_report(&o);
		rc = 0;
		goto out;
	}
	if ((created = init_prepare_dir(o.dir)) < 0)
		goto out;
	if (!init_create(&o)) {
		init_cleanup(o.dir, created);
		fprintf(stderr, "postern init: nothing was created in %s\n", o.dir);
		goto out;
	}
	init_report(&o);
	rc = 0;
out:
	explicit_bzero(o.password, sizeof(o.password));
	free(o.dir);
	free(o.confdir);
	free(o.hostname);
	free(o.domain);
	free(o.user);
	free(o.daemon_dir);
	return rc;
}
