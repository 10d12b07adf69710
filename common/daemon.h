/* The daemon skeleton: every program master starts is a few callbacks handed to daemon_main(), which owns the
 * master protocol (arguments, inherited sockets, status pipe), configuration, logging, privilege drop, process
 * reuse, idle exit and signals. Daemons (smtpd, qmgr, ...) call it from main(); master and the CLI use
 * daemon_config_load() so that every program reads the instance configuration the same way. */
#ifndef POSTERN_DAEMON_H
#define POSTERN_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "config.h"
#include "svctab.h"

/* File descriptors a child gets from master: the write end of its service's status pipe, then its listening
 * sockets in master.cf order (DAEMON_LISTEN_FD .. DAEMON_LISTEN_FD + n - 1, n given by -n). */
#define DAEMON_STATUS_FD 3
#define DAEMON_LISTEN_FD 4

/* One status message on the pipe: written atomically (smaller than PIPE_BUF), native byte order. */
enum daemon_state { DAEMON_STATE_IDLE = 'I', DAEMON_STATE_BUSY = 'B' };
struct daemon_status {
	uint32_t pid;
	uint8_t state;
	uint8_t pad[3];
};

enum daemon_mode {
	DAEMON_SINGLE,	/* one connection at a time: the skeleton accepts and calls serve() */
	DAEMON_EVENT,	/* libevent loop: the daemon registers its own handlers on the listening sockets */
};

struct daemon_peer {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char addr_text[64];	/* numeric address, or "unix" */
	unsigned port;		/* 0 for unix sockets */
	size_t listen_index;	/* which of the service's listeners accepted it */
};

struct event_base;

struct daemon_ctx {
	struct config *cfg;
	const char *instance_dir;
	const char *service;	/* master.cf service name (-s) */
	enum svc_tls tls;	/* -t */
	unsigned maxuse;	/* -m, 0 = unlimited */
	unsigned idle;		/* -i seconds, 0 = never exit when idle */
	const char *user;	/* -u, NULL: mail_owner */
	const char *chroot_dir;	/* -r */
	int *listen_fds;
	size_t nlisten;
	int argc;		/* arguments after the standard options */
	char **argv;
	struct event_base *base;	/* DAEMON_EVENT only */
	void *app;		/* the daemon's own state */
	gid_t keep_group;	/* set by pre_drop: one supplementary group kept after the drop; (gid_t)-1: none */
};

struct daemon_ops {
	const char *name;	/* program name for logs */
	enum daemon_mode mode;
	/* Still root (when started as root): open keys, bind privileged things. May be NULL. */
	void (*pre_drop)(struct daemon_ctx *ctx);
	/* After the privilege drop, before the first connection. May be NULL. */
	void (*init)(struct daemon_ctx *ctx);
	/* DAEMON_SINGLE: handle one accepted connection, blocking; the skeleton closes fd afterwards. */
	void (*serve)(int fd, const struct daemon_peer *peer, struct daemon_ctx *ctx);
	/* DAEMON_EVENT: register events on ctx->base (accept on ctx->listen_fds ...). */
	void (*start)(struct daemon_ctx *ctx);
	/* DAEMON_EVENT: SIGTERM or SIGHUP arrived: stop accepting, finish, then event_base_loopexit(). NULL: exit
	 * the loop at once. */
	void (*stop)(struct daemon_ctx *ctx);
	/* DAEMON_SINGLE: called when a connection is waiting, before accept(). false: exit instead, leaving the
	 * connection to another process (e.g. a table opened before the privilege drop has changed and only a
	 * fresh process can read it; Postfix's pre_accept). May be NULL. */
	bool (*pre_accept)(struct daemon_ctx *ctx);
};

/* Parses the standard arguments (-c DIR -s SERVICE -n NLISTEN -t TLS -m MAXUSE -i IDLE -u USER -r CHROOT
 * -o name=value ... -d, then the service's own arguments), sets everything up and runs the mode's loop.
 * Returns the process exit status. */
int daemon_main(int argc, char **argv, const struct daemon_ops *ops);

/* DAEMON_EVENT daemons tell master when they are busy or idle (the skeleton does it for DAEMON_SINGLE). */
void daemon_report(enum daemon_state state);
/* In a child forked to serve one connection (a pre-login process): close the listening sockets and the status
 * pipe, so it neither accepts other clients nor speaks for the service to master. */
void daemon_detach_child(struct daemon_ctx *ctx);
/* True once SIGTERM or SIGHUP asked this process to finish. */
bool daemon_stopping(void);

/* Load the instance configuration: DIR/etc/main.cf with instance_directory = DIR, or DIR/main.cf (installed
 * layout: main.cf names instance_directory, and config_directory defaults to DIR). NULL with "FILE:LINE: ..."
 * in err on failure; warnings (unknown parameters) go to warn when not NULL. */
struct config *daemon_config_load(const char *instance_dir, struct buf *err, struct buf *warn);
/* Path of the main.cf that daemon_config_load() reads for this directory. Caller frees. */
char *daemon_main_cf_path(const char *instance_dir);
/* Apply log_destination, log_file and debug from cfg. */
void daemon_setup_logging(struct config *cfg);

#endif
