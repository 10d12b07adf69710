/* Delivery to a command named by an alias, :include: list or .forward ("|command"): /bin/sh -c runs it as the
 * target's owner (never root) in its own process group, with a clean environment (SENDER, RECIPIENT, LOCAL,
 * DOMAIN, EXTENSION, HOME, USER, SHELL, PATH, set by the local daemon) and the message on stdin after the
 * Return-Path and Delivered-To lines. Its exit status maps to a result like sysexits(3); its first output line
 * explains a failure. A command over its time limit is killed with its whole group. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "deliver.h"
#include "log.h"

#define LPIPE_OUTPUT_MAX 4096	/* command output kept for the reason text; the rest is read and dropped */
#define LPIPE_CHUNK 65536
#define LPIPE_EX_NOUSER 67
#define LPIPE_EX_TEMPFAIL 75

enum ldeliver_status lpipe_status(int wstatus, bool timed_out, const char *first_line, unsigned limit,
                                  struct buf *dsn, struct buf *text)
{
	const char *why = first_line && *first_line ? first_line : NULL;

	if (timed_out) {
		buf_puts(dsn, "4.3.0");
		buf_printf(text, "command time limit exceeded (%u s)", limit);
		return LDELIVER_TEMPFAIL;
	}
	if (WIFSIGNALED(wstatus)) {
		buf_puts(dsn, "4.3.0");
		buf_printf(text, "command killed by signal %d", WTERMSIG(wstatus));
		return LDELIVER_TEMPFAIL;
	}
	int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 1;
	switch (code) {
	case 0:
		buf_puts(dsn, "2.0.0");
		buf_puts(text, "delivered to command");
		return LDELIVER_OK;
	case LPIPE_EX_TEMPFAIL:
		buf_puts(dsn, "4.3.0");
		buf_printf(text, "command temporarily failed (exit 75)%s%s", why ? ": " : "", why ? why : "");
		return LDELIVER_TEMPFAIL;
	case LPIPE_EX_NOUSER:
		buf_puts(dsn, "5.1.1");
		buf_printf(text, "command: user unknown (exit 67)%s%s", why ? ": " : "", why ? why : "");
		return LDELIVER_FAIL;
	default:
		buf_puts(dsn, "5.3.0");
		buf_printf(text, "command failed (exit %d)%s%s", code, why ? ": " : "", why ? why : "");
		return LDELIVER_FAIL;
	}
}

static noreturn void child_exec(const struct ldeliver_target *t, int in, int out)
{
	struct sigaction sa;
	sigset_t all;

	/* the daemon ignores SIGPIPE and may block signals: a command starts with the defaults */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &sa, NULL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	setsid();
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(LPIPE_EX_TEMPFAIL);
	/* nothing of the daemon's (the qmgr connection, the queue file) may reach the command, close-on-exec or not */
	if (close_range(3, ~0u, 0) != 0)
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	if (geteuid() == 0 && t->switch_user && t->uid != 0) {
		if (setgroups(1, &t->gid) != 0 || setgid(t->gid) != 0 || setuid(t->uid) != 0 || setuid(0) == 0) {
			dprintf(2, "cannot switch to uid %u: %s\n", (unsigned)t->uid, strerror(errno));
			_exit(LPIPE_EX_TEMPFAIL);
		}
	}
	if (geteuid() == 0) {
		dprintf(2, "refusing to run a command as root\n");
		_exit(LPIPE_EX_TEMPFAIL);
	}
	if (!t->home || chdir(t->home) != 0)
		if (chdir("/") != 0)
			_exit(LPIPE_EX_TEMPFAIL);
	char *const argv[] = { "sh", "-c", (char *)t->path, NULL };
	static char *const noenv[] = { NULL };
	execve("/bin/sh", argv, t->env ? t->env : noenv);
	dprintf(2, "cannot run /bin/sh: %s\n", strerror(errno));
	_exit(LPIPE_EX_TEMPFAIL);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The first output line, printable, for the bounce text and the log. */
static void first_line(const struct buf *out, struct buf *line)
{
	const char *s = buf_cstr(out);
	size_t n = strcspn(s, "\r\n");
	buf_append_printable(line, s, n, 200);
}

enum ldeliver_status lpipe_run(const struct ldeliver_msg *m, const struct ldeliver_target *t, struct buf *dsn,
                               struct buf *text)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 };
	struct buf data = BUF_INIT(BUF_NOLIMIT), output = BUF_INIT(BUF_NOLIMIT), line = BUF_INIT(BUF_NOLIMIT);
	pid_t pid;

	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || (pid = fork()) < 0) {
		buf_puts(dsn, "4.3.0");
		buf_printf(text, "cannot start command: %s", strerror(errno));
		for (int i = 0; i < 2; i++) {
			if (in[i] >= 0)
				close(in[i]);
			if (out[i] >= 0)
				close(out[i]);
		}
		return LDELIVER_TEMPFAIL;
	}
	if (pid == 0)
		child_exec(t, in[0], out[1]);
	/* a command that stops reading must give EPIPE, not kill us (the daemon skeleton ignores SIGPIPE already;
	 * this keeps the function safe on its own) */
	struct sigaction ign = { .sa_handler = SIG_IGN }, old_pipe;
	sigaction(SIGPIPE, &ign, &old_pipe);
	close(in[0]);
	close(out[1]);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);

	ldeliver_trace_headers(t->sender ? t->sender : m->sender, t->rcpt, &data);
	size_t sent = 0;
	uint64_t off = 0;
	bool read_fail = false, timed_out = false, out_open = true;
	int wfd = in[1];
	int64_t deadline = now_ms() + (int64_t)(t->time_limit ? t->time_limit : 1000) * 1000;
	char tmp[4096];
	/* feed stdin and drain the output together: a command that writes a lot before reading must not stall */
	/* until the message is written and the output closed: "|procmail >/dev/null 2>&1" closes its output first
	 * and still reads all of stdin */
	while (out_open || wfd >= 0) {
		if (wfd >= 0 && sent == data.len) {
			buf_reset(&data);
			sent = 0;
			if (off < m->content_len) {
				size_t want = m->content_len - off < LPIPE_CHUNK ? (size_t)(m->content_len - off) : LPIPE_CHUNK;
				size_t got;
				buf_reserve(&data, want);
				if (!ldeliver_read_at(m->fd, data.data, want, m->content_offset + off, &got) || got != want) {
					read_fail = true;
					break;
				}
				data.len = got;
				data.data[got] = '\0';
				off += got;
			} else {
				close(wfd);	/* end of message: the command sees EOF */
				wfd = -1;
			}
		}
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			timed_out = true;
			break;
		}
		if (wfd < 0 && !out_open)
			break;
		struct pollfd pf[2] = { { out_open ? out[0] : -1, POLLIN, 0 }, { wfd, POLLOUT, 0 } };
		int r = poll(pf, 2, left > 1000 ? 1000 : (int)left);
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		if (out_open && pf[0].revents) {
			ssize_t k = read(out[0], tmp, sizeof(tmp));
			if (k > 0 && output.len < LPIPE_OUTPUT_MAX)
				buf_append(&output, tmp, (size_t)k < LPIPE_OUTPUT_MAX - output.len ? (size_t)k :
				                                       LPIPE_OUTPUT_MAX - output.len);
			else if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
				out_open = false;
		}
		if (wfd >= 0 && pf[1].revents) {
			ssize_t k = write(wfd, data.data + sent, data.len - sent);
			if (k > 0) {
				sent += (size_t)k;
			} else if (k < 0 && errno != EAGAIN && errno != EINTR) {
				/* the command stopped reading (EPIPE): its exit status decides */
				close(wfd);
				wfd = -1;
			}
		}
	}
	if (wfd >= 0)
		close(wfd);
	close(out[0]);
	int status = 0;
	/* output closed: the command is normally exiting; one that lingers still has its time limit */
	while (!timed_out && !read_fail) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid || (w < 0 && errno != EINTR))
			break;
		if (now_ms() >= deadline) {
			timed_out = true;
			break;
		}
		usleep(10000);
	}
	if (timed_out || read_fail) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	enum ldeliver_status st;
	if (read_fail) {
		buf_puts(dsn, "4.3.0");
		buf_puts(text, "cannot read queue file");
		st = LDELIVER_TEMPFAIL;
	} else {
		first_line(&output, &line);
		st = lpipe_status(status, timed_out, buf_cstr(&line), t->time_limit, dsn, text);
	}
	if (timed_out)
		kill(-pid, SIGKILL);	/* what the command left running in its group */
	sigaction(SIGPIPE, &old_pipe, NULL);
	buf_free(&data);
	buf_free(&output);
	buf_free(&line);
	return st;
}
