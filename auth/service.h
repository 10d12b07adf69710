/* The auth daemon's socket side: an ipc_server handler that answers through auth_server_handle() and holds a
 * throttled reply on a libevent timer instead of blocking, so one slow client never delays the others.
 * auth/main.c wires it to the skeleton; tests drive it on their own event loop. */
#ifndef POSTERN_AUTH_SERVICE_H
#define POSTERN_AUTH_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "auth.h"
#include "ipc.h"

struct event_base;
struct auth_service;

/* srv stays owned by the caller and must outlive the service. */
struct auth_service *auth_service_new(struct event_base *base, struct auth_server *srv);
/* Frees the service; replies still held are sent first. */
void auth_service_free(struct auth_service **svc);
/* The ipc_server handler; its arg is the struct auth_service. */
void auth_service_handler(struct ipc_req *rq, struct ipc_msg *msg, void *arg);
/* Send every held reply now, and from now on answer without delay (for a stop). */
void auth_service_release_all(struct auth_service *svc);
size_t auth_service_held(const struct auth_service *svc);

#endif
