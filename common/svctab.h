/* The service table (master.cf): which daemons master runs, on which sockets, as whom, how many, and for how
 * long. Parsed by master at start and on reload, and by `postern check`; master hands each child the parts of
 * its entry it needs on the command line. Column layout and defaults are documented in docs/ARCHITECTURE.md. */
#ifndef POSTERN_SVCTAB_H
#define POSTERN_SVCTAB_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

enum svc_type { SVC_INET, SVC_UNIX };
enum svc_tls { SVC_TLS_NONE, SVC_TLS_STARTTLS, SVC_TLS_IMPLICIT };

#define SVCTAB_MAX_LISTEN 16		/* listeners of one service */
#define SVCTAB_MAX_MAXPROC 10000
#define SVCTAB_MAX_MAXUSE 1000000
#define SVCTAB_MAX_IDLE (7 * 86400)
#define SVCTAB_DEFAULT_MAXPROC 100
#define SVCTAB_DEFAULT_MAXUSE 100
#define SVCTAB_DEFAULT_IDLE 100
#define SVCTAB_FILE_MAX (1024 * 1024)	/* a larger master.cf is refused, not read */

/* One listening address. inet: host is NULL for "*" (all IPv4 and IPv6), else an address or name (IPv6
 * without the brackets); port is 1..65535. unix: host is NULL and name is the socket file name. */
struct svc_listen {
	char *text;	/* as written, for logs and status ("*:25", "[::1]:2525", "qmgr") */
	char *host;
	unsigned port;
	char *name;
};

struct svc_entry {
	char *name;
	enum svc_type type;
	struct svc_listen *listen;
	size_t nlisten;
	enum svc_tls tls;
	char *user;		/* NULL: mail_owner */
	char *chroot;		/* NULL: no chroot */
	unsigned maxproc;
	unsigned maxuse;	/* 0: unlimited */
	unsigned idle;		/* seconds; 0 (with maxproc 1): resident */
	bool resident;
	char *command;		/* program name in daemon_directory */
	char **overrides;	/* "name=value" from -o, in order */
	size_t noverrides;
	char **args;		/* remaining arguments, in order */
	size_t nargs;
	char *origin;		/* "FILE:LINE" of the entry's first line */
};

struct svctab {
	struct svc_entry *entries;
	size_t n;
};

/* Parse a whole master.cf held in memory. fname is how errors name the file. On any error returns false with
 * "FILE:LINE: what is wrong" in err (the first error only) and *out untouched. */
bool svctab_parse(const char *text, size_t len, const char *fname, struct svctab **out, struct buf *err);
/* Read and parse path (capped at SVCTAB_FILE_MAX). */
bool svctab_load_file(const char *path, struct svctab **out, struct buf *err);
void svctab_free(struct svctab **tab);

const struct svc_entry *svctab_find(const struct svctab *tab, const char *name, enum svc_type type);
const char *svctab_type_name(enum svc_type type);
const char *svctab_tls_name(enum svc_tls tls);
bool svctab_tls_from_name(const char *s, enum svc_tls *out);
/* A unix listener written "public/NAME" is the socket NAME in public_directory (mode 0666 in a 0755 directory:
 * any local user may connect, e.g. local submission for sendmail); every other unix socket lives in
 * private_directory. Returns NAME for a public listener, NULL otherwise. */
#define SVCTAB_PUBLIC_PREFIX "public/"
const char *svctab_public_name(const struct svc_listen *l);
/* True when both entries listen on exactly the same sockets (decides what a reload must rebind). */
bool svctab_listen_equal(const struct svc_listen *a, const struct svc_listen *b);

#endif
