/* postern start | stop | reload | status | check: controlling master. start runs master from daemon_directory
 * and waits for its verdict; stop and reload signal the pid in pid_directory/master.pid after checking the
 * instance lock is really held; status reads master's status socket and counts the queue directories; check
 * inspects an instance at rest. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "cmd_ctl.h"
#include "commands.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "privs.h"
#include "str.h"
#include "svctab.h"

/* Common options of the control commands: -c DIR and, for start, --foreground. */
struct ctl_opts {
	const char *dir;
	bool foreground;
};

static int parse_opts(int argc, char **argv, bool allow_fg, struct ctl_opts *o, const char *usage)
{
	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			o->dir = argv[++i];
		} else if (allow_fg && (strcmp(argv[i], "--foreground") == 0 || strcmp(argv[i], "-f") == 0)) {
			o->foreground = true;
		} else {
			fprintf(stderr, "usage: postern %s %s\n", argv[0], usage);
			return EX_USAGE;
		}
	}
	o->dir = cli_instance_dir(o->dir);
	return 0;
}

static struct config *load_cfg(const char *dir)
{
	struct buf err = BUF_INIT(4096);
	struct config *cfg = daemon_config_load(dir, &err, NULL);

	if (cfg == NULL)
		fprintf(stderr, "postern: %s\n", buf_cstr(&err));
	buf_free(&err);
	return cfg;
}

static char *pid_file(struct config *cfg, const char *name)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&p, "%s/%s", config_str(cfg, "pid_directory"), name);
	return buf_steal(&p, NULL);
}

/* pid of the running master, or 0 when none holds the instance lock (a stale pid file means nothing). */
static pid_t master_pid(struct config *cfg)
{
	char *lock = pid_file(cfg, "master.lock"), *pidf = pid_file(cfg, "master.pid"), line[32] = "";
	int fd = open(lock, O_RDONLY | O_CLOEXEC);
	pid_t pid = 0;
	uint64_t v;

	if (fd >= 0) {
		if (flock(fd, LOCK_SH | LOCK_NB) < 0 && (errno == EWOULDBLOCK || errno == EAGAIN)) {
			int pf = open(pidf, O_RDONLY | O_CLOEXEC);
			if (pf >= 0) {
				ssize_t r = read(pf, line, sizeof(line) - 1);
				line[r > 0 ? r : 0] = '\0';
				line[strcspn(line, "\n")] = '\0';
				close(pf);
			}
			pid = str_to_u64(line, 0x7fffffff, &v) && v > 1 ? (pid_t)v : -1;
		}
		close(fd);
	}
	free(lock);
	free(pidf);
	return pid;
}

int cmd_start(int argc, char **argv)
{
	struct ctl_opts o;
	struct config *cfg;
	struct buf path = BUF_INIT(BUF_NOLIMIT);
	int rc = parse_opts(argc, argv, true, &o, "[-c DIR] [--foreground]");
	char real[PATH_MAX];
	pid_t pid;
	int status;

	if (rc)
		return rc;
	/* master and every child carry -c DIR on their command line: make it the absolute path */
	if (realpath(o.dir, real) == NULL) {
		fprintf(stderr, "postern: instance directory %s: %s (create it with: postern init %s)\n", o.dir,
		        strerror(errno), o.dir);
		return 1;
	}
	o.dir = real;
	if ((cfg = load_cfg(o.dir)) == NULL)
		return 1;
	if ((pid = master_pid(cfg)) != 0) {
		fprintf(stderr, "postern: already running for %s (master pid %ld)\n", o.dir, (long)pid);
		config_free(&cfg);
		return 1;
	}
	buf_printf(&path, "%s/master", config_str(cfg, "daemon_directory"));
	if (access(buf_cstr(&path), X_OK) < 0) {
		fprintf(stderr, "postern: %s: %s (check daemon_directory in main.cf)\n", buf_cstr(&path),
		        strerror(errno));
		config_free(&cfg);
		return 1;
	}
	char *args[] = { "master", "-c", (char *)o.dir, o.foreground ? "-f" : NULL, NULL };
	if (o.foreground) {
		execv(buf_cstr(&path), args);
		fprintf(stderr, "postern: exec %s: %s\n", buf_cstr(&path), strerror(errno));
		return 1;
	}
	fflush(NULL);
	if ((pid = fork()) < 0) {
		fprintf(stderr, "postern: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		execv(buf_cstr(&path), args);
		fprintf(stderr, "postern: exec %s: %s\n", buf_cstr(&path), strerror(errno));
		_exit(127);
	}
	/* master's first process exits when its daemon has bound everything (0) or failed (its reason is on our
	 * stderr already) */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "postern: start failed for %s (see above)\n", o.dir);
		rc = 1;
	} else {
		printf("postern: started for %s (master pid %ld)\n", o.dir, (long)master_pid(cfg));
	}
	buf_free(&path);
	config_free(&cfg);
	return rc;
}

static int signal_master(int argc, char **argv, int sig, pid_t *pidp, struct config **cfgp)
{
	struct ctl_opts o;
	int rc = parse_opts(argc, argv, false, &o, "[-c DIR]");

	if (rc)
		return rc;
	if ((*cfgp = load_cfg(o.dir)) == NULL)
		return 1;
	*pidp = master_pid(*cfgp);
	if (*pidp == 0) {
		fprintf(stderr, "postern: not running for %s\n", o.dir);
		return 1;
	}
	if (*pidp < 0) {
		fprintf(stderr, "postern: master holds the lock of %s but its pid file is unreadable\n", o.dir);
		return 1;
	}
	if (kill(*pidp, sig) < 0) {
		fprintf(stderr, "postern: signal master pid %ld: %s\n", (long)*pidp, strerror(errno));
		return 1;
	}
	return 0;
}

int cmd_stop(int argc, char **argv)
{
	struct config *cfg = NULL;
	pid_t pid;
	int rc = signal_master(argc, argv, SIGTERM, &pid, &cfg);
	int64_t limit;

	if (rc) {
		config_free(&cfg);
		return rc;
	}
	struct buf err = BUF_INIT(1024);
	if (!config_try_time(cfg, "master_stop_timeout", 1, 3600, &limit, &err))
		limit = 10;
	buf_free(&err);
	/* master enforces its own deadline with SIGKILL; allow it that and a margin */
	for (int64_t i = 0; i < (limit + 10) * 10; i++) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		if (master_pid(cfg) == 0) {
			printf("postern: stopped\n");
			config_free(&cfg);
			return 0;
		}
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "postern: master pid %ld still running after %lld s\n", (long)pid, (long long)limit + 10);
	config_free(&cfg);
	return 1;
}

int cmd_reload(int argc, char **argv)
{
	struct config *cfg = NULL;
	pid_t pid;
	int rc = signal_master(argc, argv, SIGHUP, &pid, &cfg);

	if (rc == 0)
		printf("postern: reload requested (master pid %ld); errors go to the log\n", (long)pid);
	config_free(&cfg);
	return rc;
}

/* Value of key=... in a status line, copied into out. */
static const char *field(const char *line, const char *key, char *out, size_t outsize)
{
	size_t kl = strlen(key);
	const char *p = line;

	out[0] = '\0';
	while ((p = strstr(p, key)) != NULL) {
		if ((p == line || p[-1] == ' ') && p[kl] == '=') {
			size_t n = strcspn(p + kl + 1, " \n");
			if (n >= outsize)
				n = outsize - 1;
			memcpy(out, p + kl + 1, n);
			out[n] = '\0';
			break;
		}
		p += kl;
	}
	return out;
}

/* Queue files in queue_directory/NAME, or -1 when the directory cannot be read. Only counts names: status must
 * stay cheap on a big queue, so nothing is opened or parsed. */
static long count_queue(struct config *cfg, const char *name)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	struct dirent *de;
	long n = 0;
	DIR *d;

	buf_printf(&p, "%s/%s", config_str(cfg, "queue_directory"), name);
	d = opendir(buf_cstr(&p));
	buf_free(&p);
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void print_queue_counts(struct config *cfg)
{
	static const char *const dirs[] = { "incoming", "active", "deferred", "hold", "corrupt" };

	fputs("queue:", stdout);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		long n = count_queue(cfg, dirs[i]);
		if (n < 0)
			printf(" %s ?", dirs[i]);	/* unreadable or missing: postern check says why */
		else
			printf(" %s %ld", dirs[i], n);
	}
	fputc('\n', stdout);
}

int cmd_status(int argc, char **argv)
{
	struct ctl_opts o;
	struct config *cfg;
	struct sockaddr_un sun;
	struct buf in = BUF_INIT(1024 * 1024);
	char chunk[4096], *path;
	int rc = parse_opts(argc, argv, false, &o, "[-c DIR]"), fd;
	pid_t pid;
	ssize_t r;

	if (rc)
		return rc;
	if ((cfg = load_cfg(o.dir)) == NULL)
		return 1;
	if ((pid = master_pid(cfg)) == 0) {
		printf("postern: not running for %s\n", o.dir);
		print_queue_counts(cfg);
		config_free(&cfg);
		return 3;
	}
	path = pid_file(cfg, "master.sock");
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	str_copy(sun.sun_path, sizeof(sun.sun_path), path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "postern: master pid %ld runs but %s does not answer: %s\n", (long)pid, path,
		        strerror(errno));
		rc = 1;
		goto out;
	}
	while ((r = read(fd, chunk, sizeof(chunk))) > 0)
		if (!buf_append(&in, chunk, (size_t)r))
			break;
	printf("postern: running for %s (master pid %ld)\n", o.dir, (long)pid);
	printf("%-14s %-5s %-9s %5s %5s %5s %8s  %s\n", "SERVICE", "TYPE", "STATE", "PROCS", "BUSY", "IDLE",
	       "RESTARTS", "LISTEN");
	for (char *line = in.data; line && *line;) {
		char *nl = strchr(line, '\n');
		char name[80], type[8], state[16], procs[16], busy[16], idle[16], restarts[16], listen[512];
		if (nl)
			*nl = '\0';
		if (strncmp(line, "service ", 8) == 0)
			printf("%-14s %-5s %-9s %5s %5s %5s %8s  %s\n", field(line, "name", name, sizeof(name)),
			       field(line, "type", type, sizeof(type)), field(line, "state", state, sizeof(state)),
			       field(line, "procs", procs, sizeof(procs)), field(line, "busy", busy, sizeof(busy)),
			       field(line, "idle", idle, sizeof(idle)),
			       field(line, "restarts", restarts, sizeof(restarts)),
			       field(line, "listen", listen, sizeof(listen)));
		line = nl ? nl + 1 : NULL;
	}
	print_queue_counts(cfg);
out:
	if (fd >= 0)
		close(fd);
	buf_free(&in);
	free(path);
	config_free(&cfg);
	return rc;
}

int cmd_check(int argc, char **argv)
{
	struct ctl_opts o;
	int rc = parse_opts(argc, argv, false, &o, "[-c DIR]");

	if (rc)
		return rc;
	return ctl_check_instance(o.dir, stdout) == 0 ? 0 : 1;
}

