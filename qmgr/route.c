/* Recipient routing. Domains compare in ASCII case-insensitively; a trailing root dot is the same domain. */
#include <string.h>

#include "alloc.h"
#include "route.h"
#include "str.h"

const char *qroute_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : "";
}

static bool domain_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la && a[la - 1] == '.')
		la--;
	if (lb && b[lb - 1] == '.')
		lb--;
	return la == lb && str_eqn_ci(a, b, la);
}

bool qroute_is_local_domain(const struct qroute *r, const char *domain)
{
	for (size_t i = 0; i < r->nlocal; i++)
		if (domain_eq(r->local_domains[i], domain))
			return true;
	for (size_t i = 0; i < r->nvirtual; i++)
		if (domain_eq(r->virtual_domains[i], domain))
			return true;
	return false;
}

enum qroute_transport qroute_recipient(const struct qroute *r, const char *addr)
{
	const char *d = qroute_domain(addr);

	if (*d == '\0' || qroute_is_local_domain(r, d))
		return QROUTE_LOCAL;
	if (r->is_account && r->is_account(addr, r->arg))
		return QROUTE_LOCAL;
	return QROUTE_SMTP;
}

char *qroute_destination(const struct qroute *r, const char *addr)
{
	if (qroute_recipient(r, addr) == QROUTE_LOCAL)
		return xstrdup("local");
	char *d = xstrdup(qroute_domain(addr));
	str_lower(d);
	return d;
}
