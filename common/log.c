/* One-line-per-event logging; see log.h for the line format and destinations. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

#define LOG_LINE_MAX 4096

enum dest { DEST_STDERR, DEST_SYSLOG, DEST_FILE };

static char prog[64] = "postern";
static enum dest dest = DEST_STDERR;
static int log_fd = -1;
static int debug_on;
static void (*fatal_hook)(void);

static const char *level_name[] = { "debug", "info", "warning", "error", "fatal", "panic" };
static const int level_prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR, LOG_CRIT, LOG_CRIT };

void log_init(const char *progname)
{
	const char *slash = strrchr(progname, '/');
	if (slash)
		progname = slash + 1;
	snprintf(prog, sizeof(prog), "postern/%s", progname);
}

const char *log_progname(void)
{
	return prog;
}

static void close_current(void)
{
	if (dest == DEST_FILE && log_fd >= 0)
		close(log_fd);
	if (dest == DEST_SYSLOG)
		closelog();
	log_fd = -1;
}

void log_to_stderr(void)
{
	close_current();
	dest = DEST_STDERR;
}

void log_to_syslog(void)
{
	close_current();
	openlog(prog, LOG_PID | LOG_NDELAY, LOG_MAIL);
	dest = DEST_SYSLOG;
}

int log_to_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		return -1;
	close_current();
	log_fd = fd;
	dest = DEST_FILE;
	return 0;
}

int log_to_dest(const char *d, const char *fallback_file)
{
	struct stat st;

	if (strcmp(d, "stderr") == 0) {
		log_to_stderr();
		return 0;
	}
	if (strcmp(d, "syslog") == 0) {
		if (stat("/dev/log", &st) == 0 && S_ISSOCK(st.st_mode)) {
			log_to_syslog();
			return 0;
		}
		if (fallback_file == NULL) {
			log_to_stderr();
			return 0;
		}
		d = fallback_file;
	}
	return log_to_file(d);
}

void log_set_debug(int on)
{
	debug_on = on;
}

int log_debug_enabled(void)
{
	return debug_on;
}

void log_set_fatal_hook(void (*hook)(void))
{
	fatal_hook = hook;
}

/* Host name and pid are asked for once, not per line (a uname() and a getpid() system call each time, on
 * every line of a busy smtpd); a forked child finds the pid reset and asks again. */
static char host[256];
static long pid;

static void forget_pid(void)
{
	pid = 0;
}

static void identity(void)
{
	static int registered;

	if (!registered) {
		registered = 1;
		pthread_atfork(NULL, NULL, forget_pid);
	}
	if (!host[0] && (gethostname(host, sizeof(host) - 1) < 0 || !host[0]))
		snprintf(host, sizeof(host), "localhost");
	if (!pid)
		pid = (long)getpid();
}

static void emit(enum log_level level, const char *text)
{
	char line[LOG_LINE_MAX + 256];
	struct timeval tv;
	struct tm tm;
	int n;

	if (dest == DEST_SYSLOG) {
		syslog(level_prio[level], "%s: %s", level_name[level], text);
		return;
	}
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	identity();
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s[%ld]: %s: %s\n",
	             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	             (int)(tv.tv_usec / 1000), host, prog, pid, level_name[level], text);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* One write() per line: with O_APPEND, lines from concurrent processes never interleave. */
	ssize_t w = write(dest == DEST_FILE ? log_fd : STDERR_FILENO, line, (size_t)n);
	(void)w;
}

static void log_text(enum log_level level, char *text)
{
	/* Our own format strings never contain newlines; a stray one from a caller must not forge a log line. */
	for (char *p = text; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	emit(level, text);
}

void log_vlog(enum log_level level, const char *fmt, va_list ap)
{
	char text[LOG_LINE_MAX];
	int saved = errno;

	if (level == LOG_LEVEL_DEBUG && !debug_on)
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	log_text(level, text);
	errno = saved;
}

#define LOG_FN(name, level) \
	void name(const char *fmt, ...) \
	{ \
		va_list ap; \
		va_start(ap, fmt); \
		log_vlog(level, fmt, ap); \
		va_end(ap); \
	}

LOG_FN(log_debug, LOG_LEVEL_DEBUG)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_warn, LOG_LEVEL_WARN)
LOG_FN(log_error, LOG_LEVEL_ERROR)

static noreturn void die(enum log_level level, int with_errno, const char *fmt, va_list ap)
{
	char text[LOG_LINE_MAX];
	int saved = errno;
	static int dying;

	vsnprintf(text, sizeof(text), fmt, ap);
	if (with_errno && saved != 0) {
		size_t l = strlen(text);
		snprintf(text + l, sizeof(text) - l, ": %s", strerror(saved));
	}
	log_text(level, text);
	if (level == LOG_LEVEL_PANIC)
		abort();
	if (fatal_hook && !dying++)
		fatal_hook();
	exit(1);
}

#define DIE_FN(name, level, with_errno) \
	noreturn void name(const char *fmt, ...) \
	{ \
		va_list ap; \
		va_start(ap, fmt); \
		die(level, with_errno, fmt, ap); \
	}

DIE_FN(fatal, LOG_LEVEL_FATAL, 1)
DIE_FN(fatalx, LOG_LEVEL_FATAL, 0)
DIE_FN(panic, LOG_LEVEL_PANIC, 0)

const char *log_safe(const void *p, size_t n, size_t cap)
{
	static struct buf slots[LOG_SAFE_SLOTS] = {
		BUF_INIT(16384), BUF_INIT(16384), BUF_INIT(16384), BUF_INIT(16384)
	};
	static unsigned next;
	struct buf *b = &slots[next++ % LOG_SAFE_SLOTS];

	buf_reset(b);
	if (cap > 4000)
		cap = 4000;	/* 4 output bytes per input byte at worst: stays inside the slot's limit */
	buf_append_printable(b, p, n, cap);
	return buf_cstr(b);
}
