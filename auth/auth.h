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
};

struct auth_server;

struct auth_server *auth_server_new(const struct auth_settings *settings);
void auth_server_free(struct auth_server **s);
/* Answer req (already decoded against accounts_auth_proto). Always returns a reply message; *delay gets the
 * seconds to hold it back (throttling after failures). Logs outcomes in a fail2ban-friendly form:
 *   auth failed: user=<NAME> rip=1.2.3.4 mech=PLAIN service=smtpd reason=...
 *   auth ok: user=<NAME> rip=1.2.3.4 mech=PLAIN service=smtpd */
struct ipc_msg *auth_server_handle(struct auth_server *s, const struct ipc_msg *req, unsigned *delay);

#endif
