/* Internals of the master supervisor, shared by its files: main.c (start, lock, signals, stop), service.c
 * (per-service state: listeners, children, spawning, throttling, reload), listen.c (binding sockets),
 * status.c (the status socket read by `postern status`), echo.c (a built-in test daemon). */
#ifndef POSTERN_MASTER_H
#define POSTERN_MASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "config.h"
#include "svctab.h"

struct event_base;
struct event;

/* Per-service runtime state. A service outlives a reload when its name and type stay in master.cf. */
struct master_service {
	struct svc_entry *e;		/* points into master_state.tab */
	char *path;			/* program: daemon_directory/command */
	char *user;			/* resolved user name */
	int *fds;			/* listening sockets, flattened over e->listen */
	size_t nfds;
	struct event **lev;		/* read events on fds, enabled while a new process may be needed */
	bool watching;
	int status_rd, status_wr;	/* the service's status pipe (children write, master reads) */
	struct event *status_ev;
	unsigned nproc, nidle;		/* current-generation children */
	unsigned nall;			/* all children still alive, old generations included */
	unsigned failures;		/* consecutive start-up failures */
	unsigned restarts;		/* abnormal exits since master started */
	unsigned long forks;
	bool throttled;
	struct event *throttle_ev;
	bool retired;			/* removed by a reload; freed when its last child is gone */
	struct master_service *next;
};

struct master_child {
	pid_t pid;
	struct master_service *svc;
	unsigned gen;
	bool idle;
	bool served;			/* reported busy at least once */
	struct timespec started;
	struct master_child *next;
};

struct master_state {
	char *dir;			/* instance directory, absolute */
	struct config *cfg;
	struct svctab *tab;
	struct master_service *services;
	struct master_child *children;
	struct svctab **old_tabs;	/* tables replaced by reloads, kept while retired services point into them */
	size_t nold_tabs;
	char *deferred_warning;		/* start-up warning logged once logging goes to its destination */
	unsigned throttle_time, stop_timeout, startup_failures;	/* from main.cf */
	unsigned gen;
	bool foreground;
	bool stopping;
	bool is_root;
	struct event_base *base;
	time_t started;
};

extern struct master_state master;

/* listen.c */
/* Bind every listener of e (inet: while root; unix: under private_dir). false with err, nothing left open. */
bool master_listen_bind(const struct svc_entry *e, const char *private_dir, int **fds, size_t *nfds,
                        struct buf *err);
void master_listen_close(const struct svc_entry *e, const char *private_dir, int *fds, size_t nfds);
/* Where public/NAME sockets go (public_directory); set before binding, again on reload. */
void master_listen_set_public_dir(const char *dir);

/* service.c */
/* (Re)build the services from master.tab: new ones are bound, kept ones keep matching sockets, removed
 * ones retire. Old children get SIGHUP. Errors binding a service are logged and that service is skipped. */
void master_services_sync(void);
void master_reap_children(void);
/* SIGTERM every child and close every listener (stop). */
void master_services_shutdown(void);
void master_kill_all(int sig);
/* Release everything at exit (keeps leak checkers quiet). */
void master_services_free_all(void);
unsigned master_child_count(void);

/* status.c */
bool master_status_open(struct buf *err);
void master_status_close(void);
void master_status_format(struct buf *out);

/* echo.c: a tiny SINGLE-mode test daemon (greets, echoes lines), run when master is invoked as "echo". */
int master_echo_main(int argc, char **argv);

#endif
