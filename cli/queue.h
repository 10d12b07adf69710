/* The queue as the CLI sees it: through qmgr on private/qmgr while Postern runs (cli/queue_client.c), or
 * directly on disk when it is stopped (cli/queue_disk.c), with the same output either way. Used by
 * postern queue (cli/cmd_queue.c), mailq and sendmail -bp/-q. */
#ifndef POSTERN_CLI_QUEUE_H
#define POSTERN_CLI_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "config.h"
#include "qlist.h"

/* What an administrative request acts on: one ID, or a selection. */
enum queue_op { QOP_FLUSH, QOP_HOLD, QOP_RELEASE, QOP_DELETE, QOP_REQUEUE };

/* ---- through qmgr ---- */
/* Connect to qmgr; -1 with errno (ENOENT, ECONNREFUSED: not running) when it cannot be reached. */
int qclient_connect(struct config *cfg);
/* Print the listing in format f to out; counts for the trailer. false with err. */
bool qclient_list(int fd, enum qlist_format f, FILE *out, size_t *count, unsigned long long *bytes,
                  struct buf *err);
/* One request; id NULL acts on every message (DELETE: on select, "ALL" or "deferred"). Returns the number of
 * messages affected, -1 for an unknown ID, -2 for another failure (err). */
int qclient_op(int fd, enum queue_op op, const char *id, const char *select, struct buf *err);

/* ---- on disk ---- */
/* Print the listing of the queue under qdir (incoming, active, deferred, hold; in arrival order). Returns an
 * exit status (EX_NOPERM when the queue cannot be read). */
int qdisk_list(const char *qdir, enum qlist_format f, FILE *out, FILE *errf, size_t *count,
               unsigned long long *bytes);
/* Print corrupt/'s files, labelled, after a human listing. */
void qdisk_list_corrupt(const char *qdir, FILE *out);
/* Take the instance lock master holds while it runs, so master cannot start while we change the queue.
 * Returns the lock's fd, QDISK_NOLOCK when there is no lock file (master never ran), or -1 when master
 * runs or the lock cannot be taken (err says which). */
#define QDISK_NOLOCK (-2)
int qdisk_lock(struct config *cfg, struct buf *err);
/* The same requests as qclient_op, done on the files and state.lmdb. Same return values. */
int qdisk_op(const char *qdir, enum queue_op op, const char *id, const char *select, struct buf *err);
/* Where message id is: "incoming", "active", "deferred", "hold" or "corrupt"; NULL when not queued. */
const char *qdisk_find(const char *qdir, const char *id);

/* List in format f: through qmgr when it answers, else from disk; then corrupt files (human forms). */
int queue_print(struct config *cfg, enum qlist_format f, FILE *out, FILE *errf);

#endif
