/* Asynchronous DNS lookups (MX, A, AAAA, TXT, PTR) through c-ares on a libevent base, returning plain structs
 * with a status that tells "does not exist" from "try again later". Used by the SMTP client (MX and addresses),
 * smtpd (PTR, SPF/DNSBL TXT) and simple tools through the blocking dns_lookup(). */
#ifndef POSTERN_DNS_H
#define POSTERN_DNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct buf;
struct config;

enum dns_type { DNS_A, DNS_AAAA, DNS_MX, DNS_TXT, DNS_PTR };

enum dns_status {
	DNS_OK,		/* at least one record */
	DNS_NXDOMAIN,	/* the name does not exist (permanent) */
	DNS_NODATA,	/* the name exists but has no record of this type (permanent) */
	DNS_TEMPFAIL,	/* SERVFAIL, REFUSED, unreachable server, malformed reply: try again later */
	DNS_TIMEOUT,	/* no answer within the time limit: try again later */
	DNS_BADNAME,	/* the name (or address, for PTR) cannot be queried: permanent */
};

struct dns_mx {
	char *host;		/* "" for a null MX ("." : the domain accepts no mail, RFC 7505) */
	unsigned pref;
};

struct dns_addr {
	int family;		/* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} u;
};

/* One TXT record. RFC 7208 section 3.3: SPF evaluates the character-strings concatenated with nothing between
 * them (text); other users (DKIM is the same, some DNSBLs are not) may want the strings as published. The
 * bytes may include NUL: use the lengths. text and every string are also NUL-terminated. */
struct dns_txt {
	char *text;
	size_t len;
	size_t nstrings;
	char **strings;
	size_t *lens;
};

struct dns_result {
	enum dns_type type;
	enum dns_status status;
	char *name;		/* the name asked for (PTR: the address as given) */
	char *error;		/* for any status but DNS_OK: what went wrong, for logs and DSNs */
	size_t n;		/* number of records in the one array used by this type */
	struct dns_mx *mx;	/* DNS_MX: by preference, equal preferences in random order */
	struct dns_addr *addr;	/* DNS_A, DNS_AAAA */
	struct dns_txt *txt;	/* DNS_TXT */
	char **ptr;		/* DNS_PTR: host names */
};

struct dns_options {
	const char *nameservers;	/* "127.0.0.1:5353, [::1]:53"; NULL or "": the system's resolv.conf */
	unsigned timeout_ms;		/* limit for one lookup, retries included; 0: 5000 */
	unsigned retries;		/* extra attempts after the first, per server */
};
#define DNS_OPTIONS_DEFAULT { NULL, 5000, 2 }

/* Fill opt from dns_nameservers, dns_timeout and dns_retries (fatal on a bad value, like other daemon
 * start-up settings). opt->nameservers points into cfg. In dns_config.c, so dns.c does not need the config
 * module. */
void dns_options_from_config(struct config *cfg, struct dns_options *opt);

struct dns;
struct dns_query;

/* The callback owns res and frees it with dns_result_free(). It is always called from the event loop, never
 * from inside dns_query(). It may start new queries; it must not call dns_free(). */
typedef void dns_callback(struct dns_result *res, void *arg);

/* A resolver on base. NULL with a message in err when the options are invalid (e.g. a nameserver that is not
 * an IP address). */
struct dns *dns_new(struct event_base *base, const struct dns_options *opt, struct buf *err);
/* Pending queries are dropped without their callbacks being called. */
void dns_free(struct dns **d);

/* Start a lookup; for DNS_PTR, name is an IPv4 or IPv6 address. A UTF-8 name (an internationalized domain) is
 * asked for as its A-labels ("xn--..."); one that IDNA refuses is DNS_BADNAME. res->name is the name as given. The handle is valid until the callback has
 * been called or the query cancelled. */
struct dns_query *dns_query(struct dns *d, enum dns_type type, const char *name, dns_callback *cb, void *arg);
/* The callback will not be called; the handle is cleared. */
void dns_cancel(struct dns_query **q);

/* name as DNS asks for it: unchanged when it is ASCII, else converted to A-labels by IDNA2008 (UTS #46
 * mapping: case folded, NFC). false with the reason in err (may be NULL) when it cannot be converted. */
bool dns_name_ascii(const char *name, struct buf *out, struct buf *err);

/* Blocking convenience: runs its own event base until the answer (or the time limit). Never NULL. */
struct dns_result *dns_lookup(const struct dns_options *opt, enum dns_type type, const char *name);

void dns_result_free(struct dns_result **res);
const char *dns_status_str(enum dns_status st);	/* "ok", "nxdomain", "nodata", "tempfail", ... */
const char *dns_type_str(enum dns_type t);	/* "A", "MX", ... */
bool dns_status_temporary(enum dns_status st);	/* TEMPFAIL or TIMEOUT: retry later, do not bounce */

/* Turn a raw DNS reply (as received for a query of type about name) into a result, the way a live query
 * does. For tests and the fuzzer: replies are the one input here that comes from the network. */
struct dns_result *dns_result_from_reply(enum dns_type type, const char *name, const unsigned char *reply,
                                         size_t len);

/* The reverse-lookup name for an address ("4.3.2.1.in-addr.arpa", nibbles under ip6.arpa); false when addr
 * is not a numeric IPv4/IPv6 address. */
bool dns_ptr_name(const char *addr, struct buf *out);

#endif
