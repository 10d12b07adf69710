/* postern user: manage the account database (add, passwd, del, list, apop, enable, disable). Writes go straight
 * to accounts.lmdb; the auth daemon sees them at its next lookup, so no reload is needed. */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <termios.h>
#include <unistd.h>

#include "accounts.h"
#include "alloc.h"
#include "commands.h"
#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "maildir.h"
#include "privs.h"
#include "str.h"

static const char user_usage[] =
	"[-c DIR] add ADDRESS [--password-stdin] [--quota SIZE] [--maildir PATH] [--uid N --gid N | --system USER]\n"
	"       postern user [-c DIR] passwd ADDRESS [--password-stdin]\n"
	"       postern user [-c DIR] del ADDRESS\n"
	"       postern user [-c DIR] list\n"
	"       postern user [-c DIR] apop ADDRESS [--secret-stdin | --clear]\n"
	"       postern user [-c DIR] enable|disable ADDRESS";

struct user_args {
	const char *dir;
	bool password_stdin, secret_stdin, clear;
	const char *quota, *maildir, *uid, *gid, *system;
	char *pos[3];
	int npos;
};

struct user_ctx {
	struct config *cfg;
	char *dbpath;
	const char *mail_directory;
	const char *mail_owner;
	const char *scheme;	/* crypt prefix from auth_password_scheme */
};

static int usage(void)
{
	fprintf(stderr, "usage: postern user %s\n", user_usage);
	return EX_USAGE;
}

static bool parse_args(int argc, char **argv, struct user_args *a)
{
	static const struct option longopts[] = {
		{ "password-stdin", no_argument, NULL, 'p' },
		{ "secret-stdin", no_argument, NULL, 's' },
		{ "clear", no_argument, NULL, 'C' },
		{ "quota", required_argument, NULL, 'q' },
		{ "maildir", required_argument, NULL, 'm' },
		{ "uid", required_argument, NULL, 'u' },
		{ "gid", required_argument, NULL, 'g' },
		{ "system", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(a, 0, sizeof *a);
	optind = 1;
	opterr = 1;
	while ((c = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': a->dir = optarg; break;
		case 'p': a->password_stdin = true; break;
		case 's': a->secret_stdin = true; break;
		case 'C': a->clear = true; break;
		case 'q': a->quota = optarg; break;
		case 'm': a->maildir = optarg; break;
		case 'u': a->uid = optarg; break;
		case 'g': a->gid = optarg; break;
		case 'S': a->system = optarg; break;
		default: return false;
		}
	}
	for (; optind < argc; optind++) {
		if (a->npos == 3)
			return false;
		a->pos[a->npos++] = argv[optind];
	}
	return a->npos > 0;
}

/* SIZE: digits with an optional k, m, g or t (powers of 1024). */
static bool parse_size(const char *s, uint64_t *out)
{
	size_t n = strlen(s);
	unsigned shift = 0;
	uint64_t v;

	if (n > 0) {
		switch (str_ascii_lower((unsigned char)s[n - 1])) {
		case 'k': shift = 10; break;
		case 'm': shift = 20; break;
		case 'g': shift = 30; break;
		case 't': shift = 40; break;
		}
	}
	if (shift)
		n--;
	if (!str_to_u64n(s, n, UINT64_MAX >> shift, &v))
		return false;
	*out = v << shift;
	return true;
}

static bool parse_id(const char *s, uint32_t *out)
{
	uint64_t v;
	if (!str_to_u64(s, UINT32_MAX - 1, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

/* One line from f into out (capped), without its line end. false at EOF before any byte or when too long. */
static bool read_line(FILE *f, struct buf *out)
{
	int c;
	bool any = false;

	buf_reset(out);
	while ((c = getc(f)) != EOF) {
		any = true;
		if (c == '\n')
			break;
		if (!buf_putc(out, c)) {
			while ((c = getc(f)) != EOF && c != '\n')
				;
			return false;
		}
	}
	if (out->len && out->data[out->len - 1] == '\r')
		buf_truncate(out, out->len - 1);
	return any;
}

static void wipe(struct buf *b)
{
	if (b->data)
		explicit_bzero(b->data, b->cap);
	buf_free(b);
}

static bool prompt_noecho(const char *prompt, struct buf *out)
{
	struct termios old, quiet;
	bool ok;

	fputs(prompt, stderr);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &old) != 0)
		return false;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0)
		return false;
	ok = read_line(stdin, out);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	return ok;
}

/* A secret from stdin (one line) or, on a terminal, typed twice without echo. Nothing is ever made up. */
static bool get_secret(bool from_stdin, const char *what, struct buf *out)
{
	struct buf again = BUF_INIT(ACCOUNTS_PASSWORD_MAX + 1);
	char p1[64], p2[64];
	bool ok = false;

	if (from_stdin) {
		if (!read_line(stdin, out) || out->len == 0) {
			fprintf(stderr, "postern user: no %s on standard input (or longer than %d bytes)\n", what,
			        ACCOUNTS_PASSWORD_MAX);
			return false;
		}
		return true;
	}
	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "postern user: standard input is not a terminal: give the %s with --%s-stdin\n", what,
		        strcmp(what, "password") == 0 ? "password" : "secret");
		return false;
	}
	snprintf(p1, sizeof p1, "New %s: ", what);
	snprintf(p2, sizeof p2, "Retype new %s: ", what);
	if (!prompt_noecho(p1, out) || !prompt_noecho(p2, &again)) {
		fprintf(stderr, "postern user: could not read the %s\n", what);
	} else if (out->len == 0) {
		fprintf(stderr, "postern user: empty %s refused\n", what);
	} else if (out->len != again.len || memcmp(out->data, again.data, out->len) != 0) {
		fprintf(stderr, "postern user: the two entries differ\n");
	} else {
		ok = true;
	}
	wipe(&again);
	return ok;
}

static bool load_ctx(const char *dir, struct user_ctx *ctx)
{
	struct buf err = BUF_INIT(4096), warn = BUF_INIT(BUF_NOLIMIT), path = BUF_INIT(BUF_NOLIMIT);
	const char *data;
	bool ok = false;

	memset(ctx, 0, sizeof *ctx);
	ctx->cfg = config_new();
	if (!config_load_dir(ctx->cfg, cli_instance_dir(dir), NULL, &err, &warn)) {
		fprintf(stderr, "postern user: %s\n", buf_cstr(&err));
		goto out;
	}
	if (warn.len)
		fprintf(stderr, "%s", buf_cstr(&warn));
	if (!config_try_str(ctx->cfg, "accounts_database", &data, &err) ||
	    !config_try_str(ctx->cfg, "mail_directory", &ctx->mail_directory, &err) ||
	    !config_try_str(ctx->cfg, "mail_owner", &ctx->mail_owner, &err)) {
		fprintf(stderr, "postern user: %s\n", buf_cstr(&err));
		goto out;
	}
	const char *scheme;
	if (!config_try_str(ctx->cfg, "auth_password_scheme", &scheme, &err)) {
		fprintf(stderr, "postern user: %s\n", buf_cstr(&err));
		goto out;
	}
	if (strcmp(scheme, "yescrypt") == 0) {
		ctx->scheme = "$y$";
	} else if (strcmp(scheme, "sha512-crypt") == 0) {
		ctx->scheme = "$6$";
	} else {
		fprintf(stderr, "postern user: auth_password_scheme: use yescrypt or sha512-crypt, not %s\n", scheme);
		goto out;
	}
	ctx->dbpath = xstrdup(data);
	ok = true;
out:
	buf_free(&err);
	buf_free(&warn);
	buf_free(&path);
	return ok;
}

static void free_ctx(struct user_ctx *ctx)
{
	free(ctx->dbpath);
	config_free(&ctx->cfg);
}

/* Run as root, hand the database (and its lock file) to mail_owner: the auth daemon runs as that user. */
static void give_to_mail_owner(const struct user_ctx *ctx)
{
	struct passwd *pw;
	struct buf lock = BUF_INIT(BUF_NOLIMIT);

	if (geteuid() != 0 || (pw = getpwnam(ctx->mail_owner)) == NULL)
		return;
	buf_printf(&lock, "%s-lock", ctx->dbpath);
	if (chown(ctx->dbpath, pw->pw_uid, pw->pw_gid) != 0 || chown(buf_cstr(&lock), pw->pw_uid, pw->pw_gid) != 0)
		fprintf(stderr, "postern user: warning: chown %s to %s: %s\n", ctx->dbpath, ctx->mail_owner,
		        strerror(errno));
	buf_free(&lock);
}

static struct accounts *open_db(struct user_ctx *ctx, bool writable)
{
	struct buf err = BUF_INIT(4096);
	struct accounts *db;

	if (writable) {
		char *dir = xstrdup(ctx->dbpath);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			if (!fsutil_mkdir_p(dir, 0755))
				fprintf(stderr, "postern user: mkdir %s: %s\n", dir, strerror(errno));
		}
		free(dir);
	}
	db = accounts_open(ctx->dbpath, writable, &err);
	if (db == NULL) {
		fprintf(stderr, "postern user: %s\n", buf_cstr(&err));
		if (!writable)
			fprintf(stderr, "postern user: (no accounts yet? add one with 'postern user add')\n");
	} else if (writable) {
		give_to_mail_owner(ctx);
	}
	buf_free(&err);
	return db;
}

static int report(enum accounts_result r, const char *address, struct buf *err)
{
	switch (r) {
	case ACCOUNTS_OK:
		return 0;
	case ACCOUNTS_NOTFOUND:
		fprintf(stderr, "postern user: %s: no such account\n", address);
		return EX_NOUSER;
	case ACCOUNTS_EXISTS:
		fprintf(stderr, "postern user: %s: account exists\n", address);
		return EX_CANTCREAT;
	default:
		fprintf(stderr, "postern user: %s\n", err->len ? buf_cstr(err) : accounts_result_str(r));
		return EX_DATAERR;
	}
}

/* The new account's Maildir, made by its owner (uid 0 in the record: mail_owner) so that the first login finds
 * INBOX before any delivery. Made in a child that drops to the owner: a root CLI must not follow a path that
 * someone else controls while still root. A failure is a warning: delivery makes the Maildir later too. */
static void make_maildir(const struct user_ctx *ctx, struct accounts *db, const char *address)
{
	struct buf norm = BUF_INIT(ACCOUNTS_ADDRESS_MAX), err = BUF_INIT(4096);
	struct accounts_user u;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int status;

	memset(&u, 0, sizeof u);
	if (!accounts_normalize(address, &norm, &err) || accounts_get(db, buf_cstr(&norm), &u, &err) != ACCOUNTS_OK)
		goto out;
	uid = (uid_t)u.uid;
	gid = (gid_t)u.gid;
	if (geteuid() == 0 && uid == 0) {
		struct passwd *pw = getpwnam(ctx->mail_owner);
		if (pw == NULL) {
			fprintf(stderr, "postern user: warning: mail_owner %s does not exist: Maildir not made\n",
			        ctx->mail_owner);
			goto out;
		}
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	fflush(NULL);
	if ((pid = fork()) < 0) {
		fprintf(stderr, "postern user: warning: fork: %s: Maildir not made\n", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		privs_drop_ids(uid, gid, NULL, NULL);
		if (!maildir_make(u.maildir, 0700, &err)) {
			fprintf(stderr, "postern user: warning: %s\n", buf_cstr(&err));
			_exit(1);
		}
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
out:
	accounts_user_free(&u);
	buf_free(&norm);
	buf_free(&err);
}

/* Options are checked and the password read before the database is opened (and perhaps created). */
static int do_add(struct user_ctx *ctx, const struct user_args *a, const char *address)
{
	struct accounts *db = NULL;
	struct accounts_opts o = { .mail_directory = ctx->mail_directory, .maildir = a->maildir, .scheme = ctx->scheme };
	struct buf pw = BUF_INIT(ACCOUNTS_PASSWORD_MAX), err = BUF_INIT(4096), md = BUF_INIT(BUF_NOLIMIT);
	int rc = EX_USAGE;

	if (a->quota && !parse_size(a->quota, &o.quota)) {
		fprintf(stderr, "postern user: --quota: expected a size such as 500m or 2g\n");
		goto out;
	}
	if (a->maildir && a->maildir[0] != '/') {
		fprintf(stderr, "postern user: --maildir must be an absolute path\n");
		goto out;
	}
	if (a->system && (a->uid || a->gid)) {
		fprintf(stderr, "postern user: --system and --uid/--gid exclude each other\n");
		goto out;
	}
	if ((a->uid != NULL) != (a->gid != NULL) || (a->uid && (!parse_id(a->uid, &o.uid) ||
	                                                       !parse_id(a->gid, &o.gid)))) {
		fprintf(stderr, "postern user: give both --uid N and --gid N (numbers)\n");
		goto out;
	}
	if (a->system) {
		struct passwd *p = getpwnam(a->system);
		if (p == NULL) {
			fprintf(stderr, "postern user: --system %s: no such user\n", a->system);
			rc = EX_NOUSER;
			goto out;
		}
		o.uid = (uint32_t)p->pw_uid;
		o.gid = (uint32_t)p->pw_gid;
		if (o.maildir == NULL) {
			buf_printf(&md, "%s/Maildir/", p->pw_dir);
			o.maildir = buf_cstr(&md);
		}
	}
	if (!get_secret(a->password_stdin, "password", &pw)) {
		rc = EX_DATAERR;
		goto out;
	}
	if ((db = open_db(ctx, true)) == NULL) {
		rc = EX_CANTCREAT;
		goto out;
	}
	rc = report(accounts_add(db, address, buf_cstr(&pw), &o, &err), address, &err);
	if (rc == 0) {
		make_maildir(ctx, db, address);
		printf("added %s\n", address);
	}
out:
	accounts_close(&db);
	wipe(&pw);
	buf_free(&err);
	buf_free(&md);
	return rc;
}

static bool print_user(const struct accounts_user *u, void *arg)
{
	(void)arg;
	printf("%-40s %-8s %14llu %s\n", u->address, u->enabled ? "yes" : "no", (unsigned long long)u->quota,
	       u->maildir);
	return true;
}

static int run(struct user_ctx *ctx, const struct user_args *a)
{
	const char *cmd = a->pos[0], *address = a->npos > 1 ? a->pos[1] : NULL;
	bool list = strcmp(cmd, "list") == 0;
	struct buf err = BUF_INIT(4096), secret = BUF_INIT(ACCOUNTS_PASSWORD_MAX);
	struct accounts *db;
	int rc;

	if (list ? a->npos != 1 : a->npos != 2)
		return usage();
	if (!list && strcmp(cmd, "add") && strcmp(cmd, "passwd") && strcmp(cmd, "del") && strcmp(cmd, "apop") &&
	    strcmp(cmd, "enable") && strcmp(cmd, "disable")) {
		fprintf(stderr, "postern user: unknown sub-command '%s'\n", cmd);
		return usage();
	}
	if (strcmp(cmd, "add") && (a->quota || a->maildir || a->uid || a->gid || a->system))
		return usage();
	if ((strcmp(cmd, "apop") && (a->secret_stdin || a->clear)) || (a->secret_stdin && a->clear))
		return usage();
	struct buf norm = BUF_INIT(ACCOUNTS_ADDRESS_MAX);
	if (address && !accounts_normalize(address, &norm, &err)) {
		fprintf(stderr, "postern user: %s: %s\n", log_safe(address, strlen(address), 300), buf_cstr(&err));
		buf_free(&err);
		return EX_DATAERR;
	}
	if (address)
		address = buf_cstr(&norm);
	if (strcmp(cmd, "add") == 0) {
		rc = do_add(ctx, a, address);
		buf_free(&norm);
		buf_free(&err);
		return rc;
	}
	if ((db = open_db(ctx, !list)) == NULL) {
		buf_free(&norm);
		buf_free(&err);
		return list ? EX_NOINPUT : EX_CANTCREAT;
	}

	if (list) {
		printf("%-40s %-8s %14s %s\n", "ADDRESS", "ENABLED", "QUOTA", "MAILDIR");
		rc = report(accounts_foreach(db, print_user, NULL, &err), "", &err);
	} else if (strcmp(cmd, "passwd") == 0) {
		struct accounts_user u;
		/* check first, so nobody types a password for an account that is not there */
		rc = report(accounts_get(db, address, &u, &err), address, &err);
		accounts_user_free(&u);
		if (rc == 0) {
			if (get_secret(a->password_stdin, "password", &secret))
				rc = report(accounts_set_password(db, address, buf_cstr(&secret), ctx->scheme, &err), address,
				            &err);
			else
				rc = EX_DATAERR;
		}
	} else if (strcmp(cmd, "del") == 0) {
		rc = report(accounts_delete(db, address, &err), address, &err);
	} else if (strcmp(cmd, "apop") == 0) {
		if (a->clear) {
			rc = report(accounts_set_apop(db, address, NULL, &err), address, &err);
		} else if (get_secret(a->secret_stdin, "APOP secret", &secret)) {
			rc = report(accounts_set_apop(db, address, buf_cstr(&secret), &err), address, &err);
		} else {
			rc = EX_DATAERR;
		}
	} else {
		rc = report(accounts_set_enabled(db, address, strcmp(cmd, "enable") == 0, &err), address, &err);
	}
	accounts_close(&db);
	buf_free(&norm);
	wipe(&secret);
	buf_free(&err);
	return rc;
}

int cmd_user(int argc, char **argv)
{
	struct user_args a;
	struct user_ctx ctx;
	int rc;

	if (!parse_args(argc, argv, &a))
		return usage();
	if (!load_ctx(a.dir, &ctx)) {
		free_ctx(&ctx);
		return EX_CONFIG;
	}
	rc = run(&ctx, &a);
	free_ctx(&ctx);
	return rc;
}
