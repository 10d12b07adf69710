/* The parameter table: every main.cf parameter with its default and a one-line description.
 * One section per module; add a parameter in your module's section (keeps merges apart). */
#include <stddef.h>

#include "config.h"

const struct config_param config_params[] = {
	/* ---- instance and identity ---- */
	{ "instance_directory", "/var/spool/postern", "top of the instance: queue, sockets, data, mail, logs" },
	{ "config_directory", "$instance_directory/etc", "where main.cf, master.cf and aliases live" },
	{ "queue_directory", "$instance_directory/queue", "the mail queue" },
	{ "private_directory", "$instance_directory/private", "UNIX sockets between Postern daemons" },
	{ "public_directory", "$instance_directory/public", "the local submission socket" },
	{ "data_directory", "$instance_directory/data", "LMDB tables: accounts, maps" },
	{ "mail_directory", "$instance_directory/mail", "Maildirs of virtual accounts" },
	{ "pid_directory", "$instance_directory/pid", "master.pid and master.lock" },
	{ "daemon_directory", "/usr/local/libexec/postern", "where master finds the daemon programs" },
	{ "myhostname", "localhost", "this host's fully qualified name (greeting, Received headers)" },
	{ "mydomain", "localdomain", "the local domain" },
	{ "myorigin", "$myhostname", "domain appended to unqualified sender addresses" },
	{ "mydestination", "$myhostname, localhost.$mydomain, localhost", "domains delivered locally" },
	{ "mynetworks", "127.0.0.0/8, [::1]/128", "clients trusted to relay" },
	{ "mail_owner", "postern", "unprivileged user the daemons run as" },

	/* ---- logging ---- */
	{ "log_destination", "syslog", "syslog, stderr, or a file path" },
	{ "log_file", "$instance_directory/log/postern.log", "log file used when no syslog socket exists" },
	{ "debug", "no", "log debug lines" },

	/* ---- master ---- */
	{ "master_throttle_time", "60s", "no new processes for a service this long after it failed at start-up" },
	{ "master_stop_timeout", "10s", "how long stop and SIGTERM wait for sessions to finish before SIGKILL" },
	{ "master_startup_failures", "3", "consecutive start-up failures of a service that throttle it" },

	/* ---- tls ---- */
	{ "tls_cert_file", "$config_directory/tls/cert.pem", "server certificate chain (PEM)" },
	{ "tls_key_file", "$config_directory/tls/key.pem", "server private key (PEM)" },

	/* ---- dns ---- */
	{ "dns_nameservers", "", "resolvers as host or host:port, comma separated; empty: /etc/resolv.conf" },
	{ "dns_timeout", "5s", "time limit of one DNS lookup, retries included" },
	{ "dns_retries", "2", "attempts per nameserver after the first (c-ares doubles the wait each round)" },

	/* ---- tables ---- */

	/* ---- auth ---- */

	/* ---- smtpd ---- */

	/* ---- queue and qmgr ---- */

	/* ---- local ---- */

	/* ---- smtp ---- */

	/* ---- pop3d and imapd ---- */

	/* ---- spf, dkim, dmarc ---- */
	{ "dkim_keys", "", "signing key table (postern map): DOMAIN -> SELECTOR:KEYFILE; empty: no signing" },
	{ "public_suffix_list", "/usr/share/publicsuffix/public_suffix_list.dat",
	  "Public Suffix List for DMARC organisational domains" },

	{ NULL, NULL, NULL }
};
