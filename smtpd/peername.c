/* The client's host name for logs and the Received header, forward-confirmed: a PTR name counts only when its
 * own A/AAAA records hold the client's address, so a client cannot name itself after someone else by its
 * reverse zone. Called once per connection by session.c when smtpd_peername_lookup is on. */
#include <arpa/inet.h>
#include <string.h>

#include "dns.h"
#include "log.h"
#include "smtpd.h"
#include "str.h"

/* At most this many PTR names are tried: each costs a forward lookup while the client waits for its greeting. */
#define PEERNAME_MAX_PTRS 4

/* A host name we are willing to log and put in a header: LDH labels (and '_', seen in the wild), no empty
 * label. Lowercased into out without the root dot. */
static bool name_ok(const char *name, char *out, size_t outlen)
{
	size_t n = strlen(name);

	if (n && name[n - 1] == '.')
		n--;
	if (n == 0 || n >= outlen || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (c == '.') {
			if (i == 0 || name[i - 1] == '.')
				return false;
		} else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		             c == '_')) {
			return false;
		}
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[n] = '\0';
	return true;
}

static bool forward_has(const struct dns_options *opt, const char *name, int family, const void *want)
{
	struct dns_result *r = dns_lookup(opt, family == AF_INET ? DNS_A : DNS_AAAA, name);
	bool found = false;

	for (size_t i = 0; r->status == DNS_OK && i < r->n && !found; i++) {
		const struct dns_addr *a = &r->addr[i];
		if (a->family != family)
			continue;
		found = family == AF_INET ? memcmp(&a->u.v4, want, 4) == 0 : memcmp(&a->u.v6, want, 16) == 0;
	}
	dns_result_free(&r);
	return found;
}

void smtpd_peername(const struct dns_options *opt, const char *addr, char *out, size_t outlen)
{
	unsigned char bin[16];
	int family;
	char name[256];

	str_copy(out, outlen, "unknown");
	if (inet_pton(AF_INET, addr, bin) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, addr, bin) == 1)
		family = AF_INET6;
	else
		return;
	struct dns_result *r = dns_lookup(opt, DNS_PTR, addr);
	if (r->status != DNS_OK) {
		/* "unknown" either way; the log tells a missing PTR from a resolver in trouble */
		log_debug("reverse lookup of %s: %s", addr, r->error ? r->error : dns_status_str(r->status));
		dns_result_free(&r);
		return;
	}
	for (size_t i = 0; i < r->n && i < PEERNAME_MAX_PTRS; i++) {
		if (!name_ok(r->ptr[i], name, sizeof(name))) {
			log_info("%s: PTR name is not a host name: %s", addr, log_safe(r->ptr[i], strlen(r->ptr[i]), 100));
			continue;
		}
		if (forward_has(opt, name, family, bin)) {
			str_copy(out, outlen, name);
			break;
		}
		log_info("%s: hostname %s does not resolve to this address", addr, name);
	}
	dns_result_free(&r);
}
