/* auth: the only process that reads password hashes. Answers VERIFY and LOOKUP requests (accounts_auth.h) on the
 * private socket "auth" for smtpd, pop3d, imapd and local; one resident process on the event skeleton. Replies to
 * clients that keep failing are held back (throttle.h) on a timer, so other requests are not blocked meanwhile. */
#include <event2/event.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accounts_auth.h"
#include "alloc.h"
#include "auth.h"
#include "config.h"
#include "daemon.h"
#include "ipc.h"
#include "log.h"
#include "service.h"

struct auth_app {
	struct auth_server *server;
	struct auth_service *service;
	struct ipc_server **ipc;
	size_t nipc;
	struct ipc_peer_policy policy;
	uid_t uids[2];
};

/* Still root. System users' hashes are in /etc/shadow, readable by root and its group ("shadow" on Debian):
 * auth keeps that one group instead of root, and so sees password changes at once. */
static void auth_pre_drop(struct daemon_ctx *ctx)
{
	struct stat st;

	if (!config_bool(ctx->cfg, "auth_system_users") || geteuid() != 0)
		return;
	if (stat("/etc/shadow", &st) != 0) {
		log_warn("auth_system_users: /etc/shadow: %m; system users can log in only with hashes in /etc/passwd");
		return;
	}
	if (st.st_gid == 0 || !(st.st_mode & S_IRGRP)) {
		log_warn("auth_system_users: /etc/shadow is readable by root only (give it a group such as \"shadow\" "
		         "with read access); system users cannot log in");
		return;
	}
	ctx->keep_group = st.st_gid;
}

static void auth_init(struct daemon_ctx *ctx)
{
	struct auth_app *app = xcalloc(1, sizeof *app);
	struct auth_settings set;
	struct passwd *pw;
	struct stat st;

	memset(&set, 0, sizeof set);
	set.db_path = config_str(ctx->cfg, "accounts_database");
	set.system_users = config_bool(ctx->cfg, "auth_system_users");
	set.throttle.max_delay = (unsigned)config_time(ctx->cfg, "auth_throttle_max_delay", 0, 3600);
	set.throttle.decay = (unsigned)config_time(ctx->cfg, "auth_throttle_decay", 1, 7 * 86400);
	set.throttle.max_entries = (size_t)config_int(ctx->cfg, "auth_throttle_entries", 1, 10000000);
	set.cache_entries = (size_t)config_int(ctx->cfg, "auth_cache_size", 0, 10000000);
	set.cache_ttl = (unsigned)config_time(ctx->cfg, "auth_cache_ttl", 0, 7 * 86400);
	app->server = auth_server_new(&set);

	/* Who may ask: root, our own user (mail_owner once dropped), mail_owner by name, and the instance owner
	 * (a dev instance runs everything as the invoking user). */
	app->policy.allow_root = true;
	app->policy.allow_same_uid = true;
	if ((pw = getpwnam(config_str(ctx->cfg, "mail_owner"))) != NULL)
		app->uids[app->policy.nuids++] = pw->pw_uid;
	if (stat(ctx->instance_dir, &st) == 0)
		app->uids[app->policy.nuids++] = st.st_uid;
	app->policy.uids = app->uids;
	ctx->app = app;
	log_info("auth: accounts in %s%s", set.db_path, set.system_users ? ", system users allowed" : "");
}

static void auth_start(struct daemon_ctx *ctx)
{
	struct auth_app *app = ctx->app;
	struct ipc_server_opts opts;

	memset(&opts, 0, sizeof opts);
	opts.proto = &accounts_auth_proto;
	app->service = auth_service_new(ctx->base, app->server);
	opts.handler = auth_service_handler;
	opts.arg = app->service;
	opts.max_frame = 64 * 1024;
	opts.idle_timeout_ms = 0;
	opts.policy = &app->policy;
	app->nipc = ctx->nlisten;
	app->ipc = xcalloc(ctx->nlisten ? ctx->nlisten : 1, sizeof *app->ipc);
	for (size_t i = 0; i < ctx->nlisten; i++)
		if ((app->ipc[i] = ipc_server_new(ctx->base, ctx->listen_fds[i], &opts)) == NULL)
			fatalx("auth: cannot serve listener %zu", i);
	/* One resident process serves every client, so master should never start another for a waiting
	 * connection: report "served" once, then idle for good. */
	daemon_report(DAEMON_STATE_BUSY);
	daemon_report(DAEMON_STATE_IDLE);
}

/* Last step of a stop, a moment after auth_stop: the released replies have been written by then. */
static void finish_stop(evutil_socket_t fd, short what, void *arg)
{
	struct daemon_ctx *ctx = arg;
	struct auth_app *app = ctx->app;
	(void)fd;
	(void)what;

	for (size_t i = 0; i < app->nipc; i++)
		ipc_server_free(&app->ipc[i]);
	free(app->ipc);
	auth_service_free(&app->service);
	auth_server_free(&app->server);
	free(app);
	ctx->app = NULL;
	event_base_loopexit(ctx->base, NULL);
}

static void auth_stop(struct daemon_ctx *ctx)
{
	struct auth_app *app = ctx->app;
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200 * 1000 };

	/* Answer what is held back at once rather than leave clients hanging; requests arriving meanwhile are
	 * answered without delay (daemon_stopping()). */
	auth_service_release_all(app->service);
	if (event_base_once(ctx->base, -1, EV_TIMEOUT, finish_stop, ctx, &tv) != 0)
		finish_stop(-1, 0, ctx);
}

int main(int argc, char **argv)
{
	static const struct daemon_ops ops = {
		.name = "auth",
		.mode = DAEMON_EVENT,
		.pre_drop = auth_pre_drop,
		.init = auth_init,
		.start = auth_start,
		.stop = auth_stop,
	};
	return daemon_main(argc, argv, &ops);
}
