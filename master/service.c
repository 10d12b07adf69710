/* Per-service supervision: spawning children with the master protocol's descriptors, busy/idle accounting from
 * the status pipe, starting another process only when every one is busy (the kernel backlog holds waiting
 * clients meanwhile), reaping, crash-loop throttling, resident services, and merging a reloaded master.cf. */
#include "master.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "daemon.h"
#include "log.h"
#include "privs.h"

static void update_watch(struct master_service *s);
static void throttle(struct master_service *s);

static double elapsed(const struct timespec *since)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static const char *svc_label(const struct master_service *s)
{
	static char label[2][160];
	static int slot;
	char *l = label[slot++ & 1];
	snprintf(l, sizeof(label[0]), "%s/%s", s->e->name, svctab_type_name(s->e->type));
	return l;
}

unsigned master_child_count(void)
{
	unsigned n = 0;
	for (struct master_child *c = master.children; c; c = c->next)
		n++;
	return n;
}

/* Child side of a spawn: put the status pipe and listeners at their fixed numbers and exec the program. */
static void exec_child(struct master_service *s, char **argv)
{
	int high = DAEMON_LISTEN_FD + (int)s->nfds + 1;
	int *tmp = xcalloc(s->nfds + 1, sizeof(int));
	sigset_t none;
	struct sigaction dfl;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* first out of the way (sources may sit inside the target range), then into place */
	tmp[0] = fcntl(s->status_wr, F_DUPFD_CLOEXEC, high);
	for (size_t i = 0; i < s->nfds; i++)
		tmp[i + 1] = fcntl(s->fds[i], F_DUPFD_CLOEXEC, high);
	for (size_t i = 0; i <= s->nfds; i++)
		if (tmp[i] < 0 || dup2(tmp[i], DAEMON_STATUS_FD + (int)i) < 0)
			_exit(126);
	/* a detached master's stderr is still the terminal or pipe of `postern start` until it reports ready;
	 * children must not hold that open (the caller would wait for EOF forever) */
	if (!master.foreground) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0 && null != STDERR_FILENO) {
			dup2(null, STDERR_FILENO);
			close(null);
		}
	}
	close_range((unsigned)DAEMON_LISTEN_FD + (unsigned)s->nfds, ~0U, CLOSE_RANGE_CLOEXEC);
	execv(s->path, argv);
	_exit(127);
}

static char **build_argv(struct master_service *s)
{
	const struct svc_entry *e = s->e;
	size_t max = 24 + 2 * e->noverrides + e->nargs, n = 0;
	char **argv = xcalloc(max, sizeof(char *));
	char num[4][24];

	snprintf(num[0], sizeof(num[0]), "%zu", s->nfds);
	snprintf(num[1], sizeof(num[1]), "%u", e->maxuse);
	snprintf(num[2], sizeof(num[2]), "%u", e->idle);
	argv[n++] = xstrdup(e->command);
	argv[n++] = xstrdup("-c");
	argv[n++] = xstrdup(master.dir);
	argv[n++] = xstrdup("-s");
	argv[n++] = xstrdup(e->name);
	argv[n++] = xstrdup("-n");
	argv[n++] = xstrdup(num[0]);
	argv[n++] = xstrdup("-t");
	argv[n++] = xstrdup(svctab_tls_name(e->tls));
	argv[n++] = xstrdup("-m");
	argv[n++] = xstrdup(num[1]);
	argv[n++] = xstrdup("-i");
	argv[n++] = xstrdup(num[2]);
	argv[n++] = xstrdup("-u");
	argv[n++] = xstrdup(s->user);
	if (e->chroot) {
		argv[n++] = xstrdup("-r");
		argv[n++] = xstrdup(e->chroot);
	}
	if (master.foreground) {
		argv[n++] = xstrdup("-o");
		argv[n++] = xstrdup("log_destination=stderr");
	}
	for (size_t i = 0; i < e->noverrides; i++) {
		argv[n++] = xstrdup("-o");
		argv[n++] = xstrdup(e->overrides[i]);
	}
	argv[n++] = xstrdup("--");
	for (size_t i = 0; i < e->nargs; i++)
		argv[n++] = xstrdup(e->args[i]);
	argv[n] = NULL;
	return argv;
}

static void free_argv(char **argv)
{
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

static void spawn(struct master_service *s)
{
	struct master_child *c;
	char **argv = build_argv(s);
	pid_t pid = fork();

	if (pid < 0) {
		log_error("service %s: fork: %s", svc_label(s), strerror(errno));
		free_argv(argv);
		return;
	}
	if (pid == 0)
		exec_child(s, argv);
	free_argv(argv);
	c = xcalloc(1, sizeof(*c));
	c->pid = pid;
	c->svc = s;
	c->gen = master.gen;
	c->idle = true;
	clock_gettime(CLOCK_MONOTONIC, &c->started);
	c->next = master.children;
	master.children = c;
	s->nproc++;
	s->nidle++;
	s->nall++;
	s->forks++;
	log_debug("service %s: started process %ld", svc_label(s), (long)pid);
}

static void on_listen_ready(evutil_socket_t fd, short what, void *arg)
{
	struct master_service *s = arg;
	(void)fd;
	(void)what;
	if (s->nidle == 0 && s->nproc < s->e->maxproc && !s->throttled && !master.stopping)
		spawn(s);
	update_watch(s);
}

/* Watch the listeners only while a connection would find no idle process and another may be started. */
static void update_watch(struct master_service *s)
{
	bool want = !s->retired && !master.stopping && !s->throttled && !s->e->resident && s->nidle == 0 &&
	            s->nproc < s->e->maxproc;

	if (s->e->resident && !s->retired && !master.stopping && !s->throttled && s->nall == 0)
		spawn(s);
	if (want == s->watching)
		return;
	for (size_t i = 0; i < s->nfds; i++) {
		if (want)
			event_add(s->lev[i], NULL);
		else
			event_del(s->lev[i]);
	}
	s->watching = want;
}

static struct master_child *find_child(pid_t pid)
{
	for (struct master_child *c = master.children; c; c = c->next)
		if (c->pid == pid)
			return c;
	return NULL;
}

static void on_status(evutil_socket_t fd, short what, void *arg)
{
	struct master_service *s = arg;
	struct daemon_status st[64];
	ssize_t r;
	(void)what;

	r = read(fd, st, sizeof(st));
	if (r <= 0)
		return;
	for (size_t i = 0; i < (size_t)r / sizeof(st[0]); i++) {
		struct master_child *c = find_child((pid_t)st[i].pid);
		if (c == NULL || c->svc != s) {
			/* a last report can arrive after the process was reaped */
			log_debug("service %s: status from unknown process %lu", svc_label(s), (unsigned long)st[i].pid);
			continue;
		}
		if (st[i].state != DAEMON_STATE_BUSY && st[i].state != DAEMON_STATE_IDLE) {
			log_warn("service %s: bad status byte %d from process %ld", svc_label(s), st[i].state,
			         (long)c->pid);
			continue;
		}
		bool idle = st[i].state == DAEMON_STATE_IDLE;
		if (!idle) {
			c->served = true;
			s->failures = 0;
		}
		if (c->gen == master.gen && idle != c->idle) {
			if (idle)
				s->nidle++;
			else
				s->nidle--;
		}
		c->idle = idle;
	}
	update_watch(s);
}

static void on_throttle_end(evutil_socket_t fd, short what, void *arg)
{
	struct master_service *s = arg;
	(void)fd;
	(void)what;
	s->throttled = false;
	/* one more failure throttles again at once */
	s->failures = master.startup_failures - 1;
	log_info("service %s: throttle ended", svc_label(s));
	update_watch(s);
}

static void free_service(struct master_service *s)
{
	for (size_t i = 0; i < s->nfds; i++)
		if (s->lev[i])
			event_free(s->lev[i]);
	free(s->lev);
	if (s->status_ev)
		event_free(s->status_ev);
	if (s->throttle_ev)
		event_free(s->throttle_ev);
	if (s->status_rd >= 0)
		close(s->status_rd);
	if (s->status_wr >= 0)
		close(s->status_wr);
	free(s->fds);
	free(s->path);
	free(s->user);
	free(s);
}

static void close_listeners(struct master_service *s)
{
	if (s->nfds == 0)
		return;
	for (size_t i = 0; i < s->nfds; i++)
		if (s->lev[i])
			event_free(s->lev[i]);
	free(s->lev);
	s->lev = NULL;
	master_listen_close(s->e, config_str(master.cfg, "private_directory"), s->fds, s->nfds);
	free(s->fds);
	s->fds = NULL;
	s->nfds = 0;
	s->watching = false;
}

static bool bind_listeners(struct master_service *s)
{
	struct buf err = BUF_INIT(2048);

	if (!master_listen_bind(s->e, config_str(master.cfg, "private_directory"), &s->fds, &s->nfds, &err)) {
		if (master.gen == 1)	/* at start a port we cannot have is fatal; on reload the rest keeps running */
			fatalx("service %s (%s): %s", svc_label(s), s->e->origin, buf_cstr(&err));
		log_error("service %s (%s): %s; service not started", svc_label(s), s->e->origin, buf_cstr(&err));
		buf_free(&err);
		return false;
	}
	s->lev = xcalloc(s->nfds, sizeof(*s->lev));
	for (size_t i = 0; i < s->nfds; i++)
		if ((s->lev[i] = event_new(master.base, s->fds[i], EV_READ | EV_PERSIST, on_listen_ready, s)) == NULL)
			fatalx("cannot create listener event");
	buf_free(&err);
	return true;
}

/* Ask the current children of s to finish (SIGHUP: exit after the current session) and stop counting them. */
static void retire_children(struct master_service *s)
{
	for (struct master_child *c = master.children; c; c = c->next)
		if (c->svc == s && c->gen != master.gen)
			kill(c->pid, SIGHUP);
	s->nproc = s->nidle = 0;
}

static void unlink_service(struct master_service *s)
{
	for (struct master_service **pp = &master.services; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
}

static void retire(struct master_service *s)
{
	close_listeners(s);
	if (s->throttle_ev)
		event_del(s->throttle_ev);
	s->retired = true;
	retire_children(s);
	if (s->nall == 0) {
		unlink_service(s);
		free_service(s);
	}
}

static struct master_service *find_service(const char *name, enum svc_type type)
{
	for (struct master_service *s = master.services; s; s = s->next)
		if (!s->retired && s->e->type == type && strcmp(s->e->name, name) == 0)
			return s;
	return NULL;
}

static bool same_listeners(const struct svc_entry *a, const struct svc_entry *b)
{
	if (a->nlisten != b->nlisten)
		return false;
	for (size_t i = 0; i < a->nlisten; i++)
		if (!svctab_listen_equal(&a->listen[i], &b->listen[i]))
			return false;
	return true;
}

/* Program path and user of an entry; false (with a reason) when the service cannot run. */
static bool resolve(const struct svc_entry *e, char **path, char **user, struct buf *skipped)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	const char *u = e->user ? e->user : config_str(master.cfg, "mail_owner");
	uid_t uid;
	gid_t gid;

	buf_printf(&p, "%s/%s", config_str(master.cfg, "daemon_directory"), e->command);
	if (access(buf_cstr(&p), X_OK) < 0) {
		buf_printf(skipped, "%s%s/%s (%s)", skipped->len ? ", " : "", e->name, svctab_type_name(e->type),
		           e->command);
		buf_free(&p);
		return false;
	}
	if (master.is_root && !privs_lookup_user(u, &uid, &gid, &err)) {
		log_error("service %s/%s (%s): %s; service not started", e->name, svctab_type_name(e->type), e->origin,
		          buf_cstr(&err));
		buf_free(&p);
		buf_free(&err);
		return false;
	}
	*path = buf_steal(&p, NULL);
	*user = xstrdup(u);
	buf_free(&err);
	return true;
}

static struct master_service *new_service(struct svc_entry *e)
{
	struct master_service *s = xcalloc(1, sizeof(*s));
	int p[2];

	s->e = e;
	if (pipe2(p, O_CLOEXEC) < 0)
		fatal("pipe");
	s->status_rd = p[0];
	s->status_wr = p[1];
	fcntl(s->status_rd, F_SETFL, O_NONBLOCK);
	s->status_ev = event_new(master.base, s->status_rd, EV_READ | EV_PERSIST, on_status, s);
	s->throttle_ev = evtimer_new(master.base, on_throttle_end, s);
	if (s->status_ev == NULL || s->throttle_ev == NULL || event_add(s->status_ev, NULL) < 0)
		fatalx("cannot create service events");
	/* appended: status lists services in master.cf order */
	struct master_service **pp = &master.services;
	while (*pp)
		pp = &(*pp)->next;
	*pp = s;
	return s;
}

void master_services_sync(void)
{
	struct buf skipped = BUF_INIT(BUF_NOLIMIT);
	struct master_service *s, *next;

	master.gen++;
	/* removed services first: their sockets may be wanted by a new entry */
	for (s = master.services; s; s = next) {
		next = s->next;
		if (!s->retired && svctab_find(master.tab, s->e->name, s->e->type) == NULL) {
			log_info("service %s removed", svc_label(s));
			retire(s);
		}
	}
	for (s = master.services; s; s = s->next) {
		const struct svc_entry *ne;
		if (s->retired)
			continue;
		ne = svctab_find(master.tab, s->e->name, s->e->type);
		if (!same_listeners(s->e, ne))
			close_listeners(s);
	}
	for (size_t i = 0; i < master.tab->n; i++) {
		struct svc_entry *e = &master.tab->entries[i];
		char *path, *user;

		s = find_service(e->name, e->type);
		if (!resolve(e, &path, &user, &skipped)) {
			if (s)
				retire(s);
			continue;
		}
		if (s == NULL)
			s = new_service(e);
		s->e = e;
		free(s->path);
		free(s->user);
		s->path = path;
		s->user = user;
		retire_children(s);
		if (s->nfds == 0 && !bind_listeners(s)) {
			retire(s);
			continue;
		}
		if (s->throttled) {
			s->throttled = false;
			event_del(s->throttle_ev);
		}
		s->failures = 0;
	}
	if (skipped.len) {
		struct buf w = BUF_INIT(BUF_NOLIMIT);
		buf_printf(&w, "skipping services whose program is not in daemon_directory %s: %s",
		           config_str(master.cfg, "daemon_directory"), buf_cstr(&skipped));
		if (master.gen == 1 && !master.foreground) {
			free(master.deferred_warning);
			master.deferred_warning = buf_steal(&w, NULL);
		} else {
			log_warn("%s", buf_cstr(&w));
		}
		buf_free(&w);
	}
	buf_free(&skipped);
	for (s = master.services; s; s = s->next)
		if (!s->retired)
			update_watch(s);
}

static void throttle(struct master_service *s)
{
	struct timeval tv = { (time_t)master.throttle_time, 0 };

	s->throttled = true;
	event_add(s->throttle_ev, &tv);
	log_warn("service %s: %u consecutive start-up failures; no new processes for %u s (check its log lines "
	         "and master.cf at %s)", svc_label(s), s->failures, master.throttle_time, s->e->origin);
}

void master_reap_children(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct master_child *c = NULL, **pp;
		struct master_service *s;
		bool current, abnormal, external;
		double lived;

		for (pp = &master.children; *pp; pp = &(*pp)->next)
			if ((*pp)->pid == pid) {
				c = *pp;
				*pp = c->next;
				break;
			}
		if (c == NULL)
			continue;
		s = c->svc;
		lived = elapsed(&c->started);
		current = c->gen == master.gen && !s->retired;
		s->nall--;
		if (current) {
			s->nproc--;
			if (c->idle)
				s->nidle--;
		}
		abnormal = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
		external = WIFSIGNALED(status) && (WTERMSIG(status) == SIGKILL || WTERMSIG(status) == SIGTERM ||
		                                   WTERMSIG(status) == SIGHUP || WTERMSIG(status) == SIGINT);
		if (WIFSIGNALED(status))
			log_warn("service %s: process %ld killed by signal %d (%s)", svc_label(s), (long)pid,
			         WTERMSIG(status), strsignal(WTERMSIG(status)));
		else if (WEXITSTATUS(status) != 0)
			log_warn("service %s: process %ld exited with status %d%s", svc_label(s), (long)pid,
			         WEXITSTATUS(status),
			         WEXITSTATUS(status) == 127 ? " (could not execute the program)" : "");
		else
			log_debug("service %s: process %ld exited", svc_label(s), (long)pid);
		if (current && !master.stopping) {
			if (abnormal)
				s->restarts++;
			/* Exiting cleanly before serving anything is a start-up failure too when it is quick: a resident
			 * service must never exit on its own, and an on-demand one that leaves at once would otherwise
			 * be restarted for the same waiting client in a tight loop (idle times are at least 1 s). */
			bool failed = !external && !c->served && (abnormal || lived < (s->e->resident ? 10.0 : 0.9));
			if (failed) {
				s->failures++;
				if (s->failures >= master.startup_failures && !s->throttled)
					throttle(s);
			} else if (!abnormal || c->served) {
				s->failures = 0;
			}
		}
		free(c);
		if (s->retired && s->nall == 0) {
			unlink_service(s);
			free_service(s);
		} else if (!s->retired) {
			update_watch(s);
		}
	}
	if (master.nold_tabs) {
		bool any_retired = false;
		for (struct master_service *r = master.services; r; r = r->next)
			any_retired |= r->retired;
		if (!any_retired) {
			for (size_t i = 0; i < master.nold_tabs; i++)
				svctab_free(&master.old_tabs[i]);
			master.nold_tabs = 0;
		}
	}
}

void master_kill_all(int sig)
{
	for (struct master_child *c = master.children; c; c = c->next)
		kill(c->pid, sig);
}

void master_services_shutdown(void)
{
	for (struct master_service *s = master.services; s; s = s->next) {
		close_listeners(s);
		if (s->throttle_ev)
			event_del(s->throttle_ev);
	}
	master_kill_all(SIGTERM);
}

void master_services_free_all(void)
{
	while (master.children) {
		struct master_child *c = master.children;
		master.children = c->next;
		free(c);
	}
	while (master.services) {
		struct master_service *s = master.services;
		master.services = s->next;
		close_listeners(s);
		free_service(s);
	}
	for (size_t i = 0; i < master.nold_tabs; i++)
		svctab_free(&master.old_tabs[i]);
	free(master.old_tabs);
	master.old_tabs = NULL;
	master.nold_tabs = 0;
}
