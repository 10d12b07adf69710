/* imapd IDLE (RFC 2177): the session waits on the client and on inotify watches of the selected folder's new/
 * and cur/ at once, so deliveries, other sessions' APPEND, STORE (a rename in cur/) and EXPUNGE (an unlink) wake
 * it at once and are announced through the normal selected-state update; there is no polling loop. The client's
 * silence is bounded by imapd_timeout as for any command, so a client that renews its IDLE before then (RFC 2177:
 * every 29 minutes against the 30 minutes of RFC 3501) is never logged out. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "cmdtab.h"
#include "daemon.h"
#include "log.h"
#include "selected.h"
#include "str.h"

#define IDLE_DONE_MAX 64		/* "DONE" and some slack; anything longer is not DONE */
#define IDLE_SETTLE_MS 30		/* gather the events of one change (a delivery is several) before a sync */
#define IDLE_SETTLE_ROUNDS 10
#define IDLE_FALLBACK_MS 1000		/* without inotify (instance limit reached): look once a second */
#define IDLE_EVENTS (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB)

/* inotify descriptor watching path/new and path/cur, or -1 (then the caller looks periodically). */
static int watch_folder(const char *path)
{
	static bool warned;
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	if (fd < 0) {
		if (!warned)
			log_warn("imapd: IDLE: inotify: %m (fs.inotify.max_user_instances?); checking every second");
		warned = true;
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		buf_reset(&p);
		buf_printf(&p, "%s/%s", path, i ? "cur" : "new");
		if (inotify_add_watch(fd, buf_cstr(&p), IDLE_EVENTS) < 0) {
			log_warn("imapd: IDLE: inotify watch %s: %m", buf_cstr(&p));
			close(fd);
			fd = -1;
			break;
		}
	}
	buf_free(&p);
	return fd;
}

/* Read every queued event (their contents do not matter: any change means a sync), waiting a moment for the
 * rest of a change that comes in several steps. */
static void drain(int fd)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	buf_reserve(&b, 8192);
	/* a steady stream of changes (a mail flood) must not hold the update back for good */
	int rounds = 0;
	do {
		while (read(fd, b.data, b.cap) > 0)
			;
	} while (++rounds < IDLE_SETTLE_ROUNDS && poll(&pfd, 1, IDLE_SETTLE_MS) > 0);
	buf_free(&b);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void imapd_cmd_idle(struct imapd_session *sess, const struct imap_arg *args, size_t nargs, bool uid)
{
	struct buf line = BUF_INIT(IDLE_DONE_MAX + 1);
	int ifd = -1;

	(void)args;
	(void)uid;
	if (nargs) {
		imapd_bad(sess, "IDLE takes no arguments");
		return;
	}
	if (sess->sel && sess->sel->mb)
		ifd = watch_folder(sess->sel->path);
	stream_puts(sess->s, "+ idling\r\n");
	/* what happened before the watches existed is reported now, so nothing falls between sync and watch */
	if (sess->sel && sess->sel->mb)
		imapd_sel_update(sess, true);
	/* only the client's silence counts, not the wake-ups for changes */
	int64_t deadline = sess->set->timeout_ms < 0 ? 0 : now_ms() + sess->set->timeout_ms;
	for (;;) {
		if (stream_flush(sess->s) != STREAM_OK) {
			sess->state = IMAPD_LOGOUT;
			goto out;
		}
		bool changed = false;
		int64_t left = deadline ? deadline - now_ms() : -1;
		int wait = left < 0 ? (deadline ? 0 : -1) : left > INT32_MAX ? INT32_MAX : (int)left;
		bool fallback = ifd < 0 && sess->sel && sess->sel->mb;
		if (fallback && (wait < 0 || wait > IDLE_FALLBACK_MS))
			wait = IDLE_FALLBACK_MS;
		/* a stop or reload does not wait for an idling client */
		stream_set_interrupt(sess->s, daemon_stopping);
		enum stream_result r = stream_wait_input(sess->s, ifd, wait, &changed);
		stream_set_interrupt(sess->s, NULL);
		if (r == STREAM_INTERRUPTED) {
			imapd_untagged(sess, "BYE Server shutting down");
			sess->state = IMAPD_LOGOUT;
			goto out;
		}
		if (r == STREAM_TIMEOUT && fallback && (!deadline || now_ms() < deadline)) {
			imapd_sel_update(sess, true);
			continue;
		}
		if (r == STREAM_TIMEOUT) {
			imapd_untagged(sess, "BYE idle for too long");
			sess->state = IMAPD_LOGOUT;
			goto out;
		}
		if (r != STREAM_OK) {
			sess->state = IMAPD_LOGOUT;
			goto out;
		}
		if (changed) {
			drain(ifd);
			if (sess->sel && sess->sel->mb)
				imapd_sel_update(sess, true);
			continue;
		}
		r = stream_read_line(sess->s, &line, IDLE_DONE_MAX);
		if (r == STREAM_TOOLONG) {
			imapd_bad(sess, "IDLE ends with DONE");
			goto out;
		}
		if (r != STREAM_OK) {
			sess->state = IMAPD_LOGOUT;
			goto out;
		}
		if (str_eq_ci(buf_cstr(&line), "DONE"))
			imapd_ok(sess, "IDLE terminated");
		else
			imapd_bad(sess, "IDLE ends with DONE");
		goto out;
	}
out:
	if (ifd >= 0)
		close(ifd);
	buf_free(&line);
}
