/* master: the supervisor. `master -c DIR [-f] [-d]` reads DIR's main.cf and master.cf, takes the instance lock,
 * binds every listener, writes the pid file and then forks daemons on demand (see service.c). Without -f it
 * detaches and its first process exits only once everything is bound (0) or start-up failed (1, with the reason
 * on stderr), which is what `postern start` waits for. SIGHUP reloads, SIGTERM stops. */
#include "master.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "daemon.h"
#include "log.h"
#include "privs.h"

struct master_state master;

/* Configuration warnings (unknown parameters), one log line each. */
static void log_warnings(struct buf *warn)
{
	for (char *w = warn->data, *nl; w && *w; w = nl ? nl + 1 : NULL) {
		if ((nl = strchr(w, '\n')) != NULL)
			*nl = '\0';
		if (*w)
			log_warn("%s", w);
	}
	buf_reset(warn);
}

static int lock_fd = -1;
static int ready_fd = -1;
static char *pid_path;
static struct event *stop_timer;

static void usage(void)
{
	fatalx("usage: master -c INSTANCE_DIR [-f] [-d]   (normally run by 'postern start')");
}

static void remove_pid_file(void)
{
	if (pid_path)
		unlink(pid_path);
}

/* fatal() in master: leave no orphans and no stale pid file behind. */
static void on_fatal(void)
{
	master_kill_all(SIGTERM);
	remove_pid_file();
}

static char *pid_dir_file(const char *name)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&p, "%s/%s", config_str(master.cfg, "pid_directory"), name);
	return buf_steal(&p, NULL);
}

static void write_pid_file(void)
{
	char *tmp = pid_dir_file("master.pid.tmp"), line[32];
	int fd, n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());

	pid_path = pid_dir_file("master.pid");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		fatal("create %s", tmp);
	if (write(fd, line, (size_t)n) != n || fsync(fd) < 0)
		fatal("write %s", tmp);
	close(fd);
	if (rename(tmp, pid_path) < 0)
		fatal("rename %s to %s", tmp, pid_path);
	if ((fd = open(config_str(master.cfg, "pid_directory"), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(fd);
		close(fd);
	}
	free(tmp);
}

static void take_lock(void)
{
	char *path = pid_dir_file("master.lock");

	lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (lock_fd < 0)
		fatal("open lock file %s", path);
	if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		char *pidf = pid_dir_file("master.pid"), buf[32] = "";
		int fd = open(pidf, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t r = read(fd, buf, sizeof(buf) - 1);
			buf[r > 0 ? r : 0] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			close(fd);
		}
		if (errno == EWOULDBLOCK || errno == EAGAIN || errno == 0)
			fatalx("master is already running for %s (pid %s; lock %s held): use 'postern stop' first",
			       master.dir, buf[0] ? buf : "unknown", path);
		fatal("lock %s", path);
	}
	free(path);
}

static void ensure_dir(const char *path, mode_t mode, bool chown_owner)
{
	struct stat st;
	struct buf err = BUF_INIT(1024);
	uid_t uid;
	gid_t gid;

	if (stat(path, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			fatalx("%s is not a directory", path);
		return;
	}
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		fatal("mkdir %s", path);
	if (chown_owner && master.is_root &&
	    privs_lookup_user(config_str(master.cfg, "mail_owner"), &uid, &gid, &err) && chown(path, uid, gid) < 0)
		log_warn("chown %s: %s", path, strerror(errno));
	buf_free(&err);
}

static bool read_params(struct config *cfg, unsigned *throttle, unsigned *stop, unsigned *failures,
                        struct buf *err)
{
	int64_t t, s, f;

	if (!config_try_time(cfg, "master_throttle_time", 1, 86400, &t, err) ||
	    !config_try_time(cfg, "master_stop_timeout", 1, 3600, &s, err) ||
	    !config_try_int(cfg, "master_startup_failures", 1, 1000, &f, err))
		return false;
	*throttle = (unsigned)t;
	*stop = (unsigned)s;
	*failures = (unsigned)f;
	return true;
}

static struct svctab *load_table(struct config *cfg, struct buf *err)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT);
	struct svctab *tab = NULL;

	buf_printf(&path, "%s/master.cf", config_str(cfg, "config_directory"));
	if (!svctab_load_file(buf_cstr(&path), &tab, err))
		tab = NULL;
	buf_free(&path);
	return tab;
}

static void finish(void)
{
	remove_pid_file();
	log_info("stopped");
	event_base_loopexit(master.base, NULL);
}

static void on_stop_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	log_warn("%u processes still running %u s after SIGTERM: killing them", master_child_count(),
	         master.stop_timeout);
	master_kill_all(SIGKILL);
	while (master.children) {
		/* SIGKILL cannot be ignored: these waits end quickly */
		if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD)
			break;
		master_reap_children();
		master_kill_all(SIGKILL);
	}
	finish();
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
	struct timeval tv;
	(void)what;
	(void)arg;

	if (master.stopping)
		return;
	master.stopping = true;
	log_info("signal %d: stopping (%u processes)", (int)sig, master_child_count());
	master_status_close();
	master_services_shutdown();
	if (master.children == NULL) {
		finish();
		return;
	}
	tv.tv_sec = master.stop_timeout;
	tv.tv_usec = 0;
	stop_timer = evtimer_new(master.base, on_stop_deadline, NULL);
	if (stop_timer == NULL || evtimer_add(stop_timer, &tv) < 0)
		fatalx("cannot create stop timer");
}

static void on_chld(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	master_reap_children();
	if (master.stopping && master.children == NULL) {
		if (stop_timer)
			evtimer_del(stop_timer);
		finish();
	}
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct buf err = BUF_INIT(4096), warn = BUF_INIT(16384);
	struct config *cfg;
	struct svctab *tab;
	unsigned throttle, stop, failures;
	(void)sig;
	(void)what;
	(void)arg;

	if (master.stopping)
		return;
	log_info("reloading configuration");
	if ((cfg = daemon_config_load(master.dir, &err, &warn)) == NULL ||
	    !read_params(cfg, &throttle, &stop, &failures, &err) || (tab = load_table(cfg, &err)) == NULL) {
		log_error("reload failed, keeping the running configuration: %s", buf_cstr(&err));
		config_free(&cfg);
		buf_free(&err);
		buf_free(&warn);
		return;
	}
	log_warnings(&warn);
	master.old_tabs = xreallocarray(master.old_tabs, master.nold_tabs + 1, sizeof(*master.old_tabs));
	master.old_tabs[master.nold_tabs++] = master.tab;
	master.tab = tab;
	/* old services may still name sockets by the old private_directory: keep the old config until synced */
	struct config *old = master.cfg;
	master.cfg = cfg;
	master.throttle_time = throttle;
	master.stop_timeout = stop;
	master.startup_failures = failures;
	if (!master.foreground)
		daemon_setup_logging(master.cfg);
	master_listen_set_public_dir(config_str(master.cfg, "public_directory"));
	master_services_sync();
	config_free(&old);
	master_reap_children();	/* frees replaced tables once nothing points into them */
	buf_free(&err);
	buf_free(&warn);
}

/* Detach: the first process waits on a pipe until the daemon reports ready (exit 0) or dies (exit 1). */
static void detach(void)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC) < 0)
		fatal("pipe");
	if ((pid = fork()) < 0)
		fatal("fork");
	if (pid > 0) {
		ssize_t r;
		close(p[1]);
		do
			r = read(p[0], &c, 1);
		while (r < 0 && errno == EINTR);
		_exit(r == 1 ? 0 : 1);
	}
	close(p[0]);
	ready_fd = p[1];
	if (setsid() < 0)
		fatal("setsid");
}

static void stdio_to_null(bool keep_stderr)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		fatal("open /dev/null");
	dup2(fd, 0);
	dup2(fd, 1);
	if (!keep_stderr)
		dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

int main(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	struct buf err = BUF_INIT(4096), warn = BUF_INIT(16384);
	const char *dir = NULL;
	char real[PATH_MAX];
	bool debug = false;
	struct event *ev[5];
	int c;

	if (strcmp(base, "echo") == 0)
		return master_echo_main(argc, argv);
	log_init("master");
	while ((c = getopt(argc, argv, "c:fd")) != -1) {
		switch (c) {
		case 'c': dir = optarg; break;
		case 'f': master.foreground = true; break;
		case 'd': debug = true; break;
		default: usage();
		}
	}
	if (dir == NULL || optind != argc)
		usage();
	if (realpath(dir, real) == NULL)
		fatal("instance directory %s", dir);
	master.dir = xstrdup(real);
	master.is_root = privs_is_root();
	if ((master.cfg = daemon_config_load(master.dir, &err, &warn)) == NULL)
		fatalx("%s", buf_cstr(&err));
	log_warnings(&warn);
	if (!read_params(master.cfg, &master.throttle_time, &master.stop_timeout, &master.startup_failures, &err))
		fatalx("%s", buf_cstr(&err));
	if ((master.tab = load_table(master.cfg, &err)) == NULL)
		fatalx("%s", buf_cstr(&err));
	/* until ready, log to stderr: `postern start` shows the reason a start fails */
	log_set_debug(debug || config_bool(master.cfg, "debug"));

	if (!master.foreground)
		detach();
	stdio_to_null(true);
	ensure_dir(config_str(master.cfg, "pid_directory"), 0755, false);
	ensure_dir(config_str(master.cfg, "private_directory"), 0700, true);
	/* local submission: any user may connect to the sockets in here, never list or create files */
	ensure_dir(config_str(master.cfg, "public_directory"), 0711, false);
	master_listen_set_public_dir(config_str(master.cfg, "public_directory"));
	take_lock();
	log_set_fatal_hook(on_fatal);
	if ((master.base = event_base_new()) == NULL)
		fatalx("cannot create event base");
	signal(SIGPIPE, SIG_IGN);
	ev[0] = evsignal_new(master.base, SIGHUP, on_hup, NULL);
	ev[1] = evsignal_new(master.base, SIGTERM, on_term, NULL);
	ev[2] = evsignal_new(master.base, SIGINT, on_term, NULL);
	ev[3] = evsignal_new(master.base, SIGCHLD, on_chld, NULL);
	ev[4] = NULL;
	for (int i = 0; ev[i]; i++)
		if (evsignal_add(ev[i], NULL) < 0)
			fatalx("cannot register signal events");
	master.started = time(NULL);
	master_services_sync();
	if (!master_status_open(&err))
		fatalx("status socket: %s", buf_cstr(&err));
	write_pid_file();

	if (!master.foreground) {
		/* switch logs to their destination while stderr still reaches `postern start`: a log file that
		 * cannot be opened is reported there, not lost */
		daemon_setup_logging(master.cfg);
		if (write(ready_fd, "1", 1) != 1)
			log_warn("start-up report to the parent: %s", strerror(errno));
		close(ready_fd);
		stdio_to_null(false);
	}
	if (debug)
		log_set_debug(1);
	log_info("started for %s: %zu services in master.cf, pid %ld", master.dir, master.tab->n, (long)getpid());
	if (master.deferred_warning) {
		log_warn("%s", master.deferred_warning);
		xfree(&master.deferred_warning);
	}
	if (master.is_root) {
		uid_t uid;
		gid_t gid;
		if (privs_lookup_user(config_str(master.cfg, "mail_owner"), &uid, &gid, &err) && uid == 0)
			log_warn("mail_owner is %s (uid 0): daemons keep root; set mail_owner to an unprivileged user",
			         config_str(master.cfg, "mail_owner"));
	}
	if (!master.is_root)
		log_info("not running as root: every service runs as uid %ld; user columns and mail_owner are ignored",
		         (long)geteuid());
	event_base_dispatch(master.base);

	for (int i = 0; ev[i]; i++)
		event_free(ev[i]);
	master_services_free_all();
	if (stop_timer)
		event_free(stop_timer);
	event_base_free(master.base);
	svctab_free(&master.tab);
	config_free(&master.cfg);
	free(pid_path);
	free(master.dir);
	buf_free(&err);
	buf_free(&warn);
	return 0;
}
