/* Where a recipient goes: the local transport (its domain is in mydestination or is a virtual mailbox domain)
 * or smtp (everything else, through the transport map or relayhost once the smtp client exists). qmgr asks
 * once per recipient when it schedules a delivery. */
#ifndef POSTERN_QMGR_ROUTE_H
#define POSTERN_QMGR_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

enum qroute_transport { QROUTE_LOCAL, QROUTE_SMTP };

struct qroute {
	char **local_domains;		/* mydestination (lower case) */
	size_t nlocal;
	char **virtual_domains;		/* virtual_mailbox_domains (lower case) */
	size_t nvirtual;
	/* Optional: true when the address has an account (so its domain is an account domain). */
	bool (*is_account)(const char *addr, void *arg);
	void *arg;
};

/* The domain of an address (after the last '@'), "" when there is none. */
const char *qroute_domain(const char *addr);
/* true when domain (any case, a trailing dot ignored) is one of ours. */
bool qroute_is_local_domain(const struct qroute *r, const char *domain);
/* Address without a domain, postmaster and MAILER-DAEMON included, is local. */
enum qroute_transport qroute_recipient(const struct qroute *r, const char *addr);
/* The destination concurrency is counted against: "local" or the lower-cased domain. Caller frees. */
char *qroute_destination(const struct qroute *r, const char *addr);

#endif
