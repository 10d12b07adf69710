/* Internal to the ipc module: one non-blocking connection's output queue (frames with their descriptors),
 * shared by the libevent server (ipc_server.c) and client (ipc_client.c), and the one place that sends a
 * descriptor. Not for other modules. */
#ifndef POSTERN_IPC_CHAN_H
#define POSTERN_IPC_CHAN_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "ipc.h"

struct ipc_outframe {
	struct ipc_outframe *next;
	struct buf data;
	size_t off;		/* bytes already written */
	int fd;			/* sent with the first byte, then closed; -1 for none */
};

struct ipc_outq {
	struct ipc_outframe *head, **tailp;
	size_t bytes;		/* queued, not yet written */
};

/* One sendmsg() of p (never blocking, never SIGPIPE), with fd attached when fd >= 0. */
ssize_t ipc_chan_send(int sock, const void *p, size_t len, int fd);

void ipc_outq_init(struct ipc_outq *q);
void ipc_outq_free(struct ipc_outq *q);
/* Encode m into the queue, taking its descriptor; false when it cannot be encoded (too large). */
bool ipc_outq_push(struct ipc_outq *q, struct ipc_msg *m);
/* Write as much as the socket takes: 1 when the queue is empty, 0 when the socket is full, -1 with errno. */
int ipc_outq_flush(struct ipc_outq *q, int sock);

#endif
