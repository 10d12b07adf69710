/* The auth daemon's request logic, apart from its event loop so it can be unit-tested: turns one VERIFY or LOOKUP
 * request into a RESULT and the delay (seconds) to wait before sending it. auth/main.c feeds it from the socket. */
#ifndef POSTERN_AUTH_AUTH_H
#define POSTERN_AUTH_AUTH_H

#include <stdbool.h>

#include "ipc.h"
#include "throttle.h"

struct auth_settings {
	const char *db_path;		/* accounts_database */
	bool system_users;		/* auth_system_users */
	struct throttle_params throttle;	/* shared by the per-IP and the per-account tables */
	size_t cache_entries;		/* auth_cache_size: remembered verifications (cache.h); 0: none */
	unsigned cache_ttl;		/* auth_cache_ttl, seconds; 0: none */
};

struct auth_server;

struct auth_server *auth_server_new(const struct auth_settings *settings);
void auth_server_free(struct auth_server **s);
/* Answer req (already decoded against accounts_auth_proto). Always returns a reply message; *delay gets the
 * seconds to hold it back (throttling after failures). Logs outcomes in a fail2ban-friendly form:
 *   auth failed: user=<NAME> rip=1.2.3.4 mech=PLAIN service=smtpd reason=...
 *   auth ok: user=<NAME> rip=1.2.3.4 mech=PLAIN service=smtpd */
struct ipc_msg *auth_server_handle(struct auth_server *s, const struct ipc_msg *req, unsigned *delay);

/* auth_server_handle in three steps, so the slow one (a password hash check) can run on another thread: begin
 * returns the reply at once, or NULL with *job to pass to auth_job_run (any thread; touches nothing shared) and
 * then, back on the caller's thread, to auth_server_finish, which frees it and gives the reply and delay. */
struct auth_job;
struct ipc_msg *auth_server_begin(struct auth_server *s, const struct ipc_msg *req, unsigned *delay,
                                  struct auth_job **job);
void auth_job_run(struct auth_job *job);
struct ipc_msg *auth_server_finish(struct auth_server *s, struct auth_job *job, unsigned *delay);

#endif
