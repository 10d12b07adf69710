/* mailq (sendmail -bp) from disk: the classic Postfix-style listing (common/qlist.c) of the queue directories,
 * read with the queue-file parser, so it works whether or not the mail system is running. sendmail.c lists
 * through qmgr first (cli/queue_client.c); this is the stopped-system path, and what the unit tests drive.
 * Only root and the mail owner can read the queue; everyone else gets a clear "permission denied". */
#include <sysexits.h>

#include "qlist.h"
#include "queue.h"
#include "sendmail.h"

int mailq_list(const char *queue_dir, FILE *out, FILE *errf)
{
	size_t count;
	unsigned long long bytes;
	struct buf tail = BUF_INIT(BUF_NOLIMIT);
	int rc = qdisk_list(queue_dir, QLIST_MAILQ, out, errf, &count, &bytes);
	if (rc == 0) {
		qlist_trailer(QLIST_MAILQ, count, bytes, &tail);
		fwrite(tail.data, 1, tail.len, out);
	}
	buf_free(&tail);
	return rc;
}
