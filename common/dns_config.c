/* dns_options from main.cf (dns_nameservers, dns_timeout, dns_retries). Kept apart from dns.c so programs that
 * resolve without a configuration (tests, tools) do not pull in the config module. */
#include "config.h"
#include "dns.h"

void dns_options_from_config(struct config *cfg, struct dns_options *opt)
{
	opt->nameservers = config_str(cfg, "dns_nameservers");
	/* config_time() is in seconds; the limit keeps timeout_ms within an unsigned */
	opt->timeout_ms = (unsigned)config_time(cfg, "dns_timeout", 1, 3600) * 1000u;
	opt->retries = (unsigned)config_int(cfg, "dns_retries", 0, 10);
}
