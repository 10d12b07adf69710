/* Logging for every Postern program: one line per event, to syslog, to the instance's log file, or to stderr.
 * Line form (file and stderr):  2026-11-23T14:42:50.123Z host postern/smtpd[1234]: info: QUEUEID: text
 * Lines about a message put its queue ID first, followed by ": ", so tools (postern trace, tests) can grep it.
 * Untrusted text must go through buf_append_printable() or log_safe() before it is logged. */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdnoreturn.h>

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR, LOG_LEVEL_FATAL, LOG_LEVEL_PANIC };

/* progname is the short name ("smtpd"); lines carry "postern/smtpd". Logs go to stderr until told otherwise. */
void log_init(const char *progname);
const char *log_progname(void);
void log_to_stderr(void);
void log_to_syslog(void);
/* Append to path (O_APPEND, one write per line, safe across processes); false with errno on failure. */
int log_to_file(const char *path);
/* Choose by config value: "syslog", "stderr" or a file path; "syslog" falls back to the file when no
 * /dev/log exists (containers). Returns 0, or -1 with errno. */
int log_to_dest(const char *dest, const char *fallback_file);
void log_set_debug(int on);
int log_debug_enabled(void);

void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_error(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_vlog(enum log_level level, const char *fmt, va_list ap) LOG_PRINTF(2, 0);
/* Runtime failure: logs "fatal: what: strerror(errno)" and exits 1. */
noreturn void fatal(const char *fmt, ...) LOG_PRINTF(1, 2);
/* Runtime failure where errno means nothing: logs "fatal: what" and exits 1. */
noreturn void fatalx(const char *fmt, ...) LOG_PRINTF(1, 2);
/* Broken invariant (a bug): logs "panic: what" and aborts, leaving a core. */
noreturn void panic(const char *fmt, ...) LOG_PRINTF(1, 2);

/* Printable, capped copy of untrusted bytes for one log call: returns a pointer into one of a few rotating
 * static slots (valid until LOG_SAFE_SLOTS further calls). Up to cap input bytes are shown. */
#define LOG_SAFE_SLOTS 4
const char *log_safe(const void *p, size_t n, size_t cap);

/* Hook run by fatal() before exit (e.g. to remove a pid file); NULL to clear. */
void log_set_fatal_hook(void (*hook)(void));

#endif
