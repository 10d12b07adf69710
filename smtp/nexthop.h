/* Where a message for a domain goes: the next-hop specification ("[host]:port" from relayhost or a transport
 * map entry "smtp:[host]:port", or the domain itself) and the ordered list of addresses to try: MX hosts by
 * preference (random among equal ones, as dns.c returns them), A/AAAA when there is no MX, a null MX or an MX
 * that is ourselves as permanent errors. Used by the smtp daemon once per delivery request; DNS comes through a
 * callback so the unit tests can give canned answers. */
#ifndef POSTERN_SMTP_NEXTHOP_H
#define POSTERN_SMTP_NEXTHOP_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "dns.h"

#define SMTP_DEFAULT_PORT 25

struct smtp_nexthop {
	char *host;		/* domain or host name, or a numeric address */
	unsigned port;		/* 0: the default port */
	bool no_mx;		/* "[host]": connect to the host's own addresses, no MX lookup */
};

/* Parse "host", "host:port", "[host]", "[host]:port", "[ipv6:ADDR]" or "[ADDR]", optionally after "smtp:".
 * "smtp:" or "" alone gives host NULL (deliver to the recipient domain). false with err on bad syntax or a
 * transport other than smtp. */
bool smtp_nexthop_parse(const char *spec, struct smtp_nexthop *nh, struct buf *err);
void smtp_nexthop_free(struct smtp_nexthop *nh);

struct smtp_target {
	char *host;		/* the MX (or relay) name, for logs and TLS verification (A-labels for an IDN) */
	struct dns_addr addr;
	unsigned port;
	unsigned pref;		/* MX preference (0 for a host without MX) */
};

struct smtp_targets {
	struct smtp_target *v;
	size_t n;
	/* when n == 0: the failure for every recipient */
	int code;		/* 4 or 5 */
	char dsn[12];
	struct buf why;
};

typedef struct dns_result *smtp_dns_fn(enum dns_type type, const char *name, void *arg);

/* smtp_address_preference: which address family goes first among addresses of equal MX preference. ANY
 * shuffles them, so an outage of one family delays mail without stopping it (Postfix's default). */
enum smtp_addr_pref { SMTP_ADDR_ANY, SMTP_ADDR_IPV4, SMTP_ADDR_IPV6 };
bool smtp_addr_pref_parse(const char *s, enum smtp_addr_pref *out);

struct smtp_resolve_opts {
	smtp_dns_fn *dns;
	void *dns_arg;
	const char *myhostname;	/* an MX with this name is us: mail loops */
	unsigned default_port;
	size_t max_addrs;	/* stop after this many addresses (0: 10) */
	enum smtp_addr_pref addr_pref;
};

/* Fill t for nh. Always returns with either t->n > 0 or t->code/dsn/why set. A UTF-8 host (an internationalized
 * recipient domain) is looked up, and named in t, as A-labels. */
void smtp_resolve(const struct smtp_resolve_opts *o, const struct smtp_nexthop *nh, struct smtp_targets *t);
void smtp_targets_free(struct smtp_targets *t);
/* "host[addr]:port" for logs. */
void smtp_target_name(const struct smtp_target *t, struct buf *out);

#endif
