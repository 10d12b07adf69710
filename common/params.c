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
	{ "accounts_database", "$data_directory/accounts.lmdb", "the account database (postern user)" },
	{ "auth_system_users", "no", "also accept system (passwd/shadow) users, by login name without a domain" },
	{ "auth_password_scheme", "yescrypt", "hash for new passwords: yescrypt or sha512-crypt" },
	{ "auth_throttle_max_delay", "30s", "cap of the doubling delay after failed logins" },
	{ "auth_throttle_decay", "15m", "quiet time after which a client's or account's failure count halves" },
	{ "auth_throttle_entries", "10000", "clients and accounts remembered for throttling (oldest forgotten first)" },
	{ "auth_cache_size", "10000", "successful logins remembered so a repeated login skips the password hash (0: off)" },
	{ "auth_cache_ttl", "1h", "how long a remembered login is trusted; a password change ends it at once (0: off)" },

	/* ---- smtpd ---- */
	{ "smtpd_banner", "$myhostname ESMTP", "greeting text after 220" },
	{ "message_size_limit", "10240000", "largest message accepted, in bytes (at MAIL SIZE= and while reading)" },
	{ "smtpd_recipient_limit", "1000", "recipients per message; more get 452 4.5.3" },
	{ "smtpd_timeout", "300s", "how long smtpd waits for each command or piece of message data" },
	{ "smtpd_hard_error_limit", "20", "errors after which smtpd disconnects the client" },
	{ "smtpd_soft_error_limit", "10", "errors after which every error reply is delayed" },
	{ "smtpd_error_sleep_time", "1s", "the delay after each error past the soft limit" },
	{ "smtpd_junk_command_limit", "100", "NOOP, VRFY, HELP and unknown commands allowed per session" },
	{ "smtpd_line_length_limit", "2048", "longest SMTP command line, in bytes" },
	{ "smtpd_data_line_limit", "1000", "longest DATA line including CRLF (RFC 5321); 0: no limit" },
	{ "smtpd_header_size_limit", "102400", "header bytes smtpd examines for Message-ID and Date" },
	{ "smtpd_auth_required", "no", "AUTH before MAIL, and the sender must belong to the login (submission)" },
	{ "smtpd_auth_plaintext", "no", "offer AUTH PLAIN/LOGIN without TLS to non-loopback clients (auth must agree)" },
	{ "smtpd_submission_fixups", "yes", "add a missing Message-ID and Date to mail from authenticated clients" },
	{ "smtpd_forbid_bare_newline", "yes", "refuse DATA with bare CR or LF (SMTP smuggling); no: normalize it" },
	{ "smtpd_dsn", "yes", "advertise DSN (RFC 3461)" },
	{ "smtpd_tls", "yes", "offer STARTTLS using tls_cert_file and tls_key_file (also on tls=none services)" },
	{ "smtpd_client_connection_limit", "50", "sessions at once from one client address outside mynetworks; 0: no limit" },
	{ "smtpd_peername_lookup", "yes", "forward-confirmed reverse DNS of each client (else it is \"unknown\")" },
	{ "smtpd_client_access", "", "access map (postern map) by client name, address and networks: OK, REJECT, ..." },
	{ "smtpd_helo_access", "", "access map by HELO name and its parent domains" },
	{ "smtpd_sender_access", "", "access map by MAIL FROM address, @domain, domain, user@ (null sender: <>)" },
	{ "smtpd_recipient_access", "", "access map by RCPT TO address (same forms as the sender map)" },
	{ "smtpd_delay_reject", "yes", "give client, HELO and sender access verdicts at RCPT, not when they happen" },
	{ "smtpd_sender_authentication", "yes", "SPF, DKIM, DMARC and Authentication-Results on the MX port" },
	{ "smtpd_dmarc_enforce", "no", "refuse mail failing DMARC with p=reject (550 5.7.1); no: only record it" },
	{ "smtpd_spf_reject", "no", "refuse mail whose MAIL FROM fails SPF (-all) unless DMARC passes (550 5.7.23)" },
	{ "smtpd_sender_auth_timeout", "30s", "after the data: most time for SPF, DKIM key and DMARC lookups; then temperror" },
	{ "queue_minfree", "0", "free queue space below which MAIL gets 452 4.3.1; 0: 1.5 x message_size_limit" },
	{ "smtpd_tls_required", "no", "refuse mail commands until STARTTLS (Postfix security level encrypt)" },

	/* ---- cli: local submission (sendmail) ---- */
	{ "smtpd_local_submission", "no",
	  "smtpd serves sendmail on public/submit: client = its uid (SO_PEERCRED), relays like mynetworks" },
	/* ---- queue and qmgr ---- */
	{ "minimal_backoff_time", "300s", "first retry delay of a deferred recipient (then doubled each attempt)" },
	{ "maximal_backoff_time", "3600s", "cap of the doubling retry delay" },
	{ "maximal_queue_lifetime", "5d", "a recipient still deferred after this long is bounced" },
	{ "delay_warning_time", "0h", "warn the sender (DSN action delayed) once mail is still deferred after this long; 0: never" },
	{ "queue_time_scale", "1", "testing only: every queue delay above is divided by this" },
	{ "queue_scan_interval", "30s", "how often qmgr scans incoming/ for mail whose wakeup was lost" },
	{ "qmgr_concurrency_limit", "20", "deliveries in progress at once, all destinations together" },
	{ "default_destination_concurrency_limit", "20", "deliveries in progress at once to one destination" },
	{ "default_destination_recipient_limit", "50", "recipients handed to a transport in one request" },
	{ "local_delivery_timeout", "10m", "qmgr gives up waiting for a local delivery answer after this" },
	{ "bounce_size_limit", "50000", "largest original message returned in full inside a bounce" },
	{ "virtual_mailbox_domains", "", "domains whose mail goes to accounts (besides mydestination)" },

	/* ---- local ---- */
	{ "alias_maps", "$config_directory/aliases.lmdb", "the compiled aliases table (postern map compile --aliases)" },
	{ "recipient_delimiter", "+", "characters that start an address extension (user+ext); empty for none" },
	{ "local_system_users", "yes", "deliver to system (passwd) users of mydestination domains in ~/Maildir" },
	{ "local_forward_files", "yes", "honour a system user's ~/.forward (addresses, |commands, /files, :include:)" },
	{ "local_postmaster_maildir", "$mail_directory/postmaster/", "postmaster mail when no alias or account takes it" },
	{ "local_alias_depth_limit", "20", "nesting limit of alias expansion" },
	{ "default_privs", "nobody", "user that runs alias commands and writes alias files when root owns the aliases" },
	{ "command_time_limit", "1000s", "time limit of a command an alias or .forward delivers to" },
	{ "quota_exceeded_action", "defer", "a message that does not fit an account's quota: defer (4.2.2) or bounce (5.2.2)" },
	{ "deliver_to_extension_folder", "yes", "user+tag@domain goes to the Maildir folder .tag when it exists" },

	/* ---- smtp ---- */
	{ "relayhost", "", "send all remote mail to this next hop ([host]:port: no MX lookup); empty: MX of the domain" },
	{ "transport_maps", "", "table: domain (or .parent) -> smtp:[host]:port, overriding relayhost" },
	{ "smtp_helo_name", "$myhostname", "name sent in EHLO/HELO" },
	{ "smtp_port", "25", "port of MX hosts and of next hops given without one" },
	{ "smtp_mx_address_limit", "10", "most addresses tried for one delivery" },
	{ "smtp_address_preference", "any", "family tried first among addresses of equal MX preference: ipv4, ipv6 or any (random)" },
	{ "smtp_connection_reuse_time", "10s", "keep a connection open this long for the next message to the same address; 0: never" },
	{ "smtp_connect_timeout", "30s", "time limit for a TCP connection to a server" },
	{ "smtp_helo_timeout", "300s", "time limit for the greeting and the EHLO/HELO reply" },
	{ "smtp_starttls_timeout", "300s", "time limit for STARTTLS and the TLS handshake" },
	{ "smtp_mail_timeout", "300s", "time limit for the MAIL FROM reply" },
	{ "smtp_rcpt_timeout", "300s", "time limit for each RCPT TO reply" },
	{ "smtp_data_init_timeout", "120s", "time limit for the DATA reply and for each write of the content" },
	{ "smtp_data_done_timeout", "600s", "time limit for the reply after the end of data" },
	{ "smtp_quit_timeout", "300s", "time limit for the QUIT reply" },
	{ "smtp_tls_security_level", "may", "none, may (opportunistic STARTTLS), encrypt, or verify (chain and MX name)" },
	{ "smtp_tls_policy_maps", "", "table: domain (or .parent) -> none|may|encrypt|verify, overriding the level" },
	{ "smtp_tls_CAfile", "", "trusted roots (PEM) for verify; empty: the system store" },
	{ "smtp_sasl_password_maps", "", "root-only table: [host]:port, host or domain -> user:password for client AUTH" },
	{ "smtp_sasl_tls_required", "yes", "send AUTH credentials only over TLS" },

	/* ---- pop3d and imapd ---- */
	{ "imapd_max_line_length", "64k", "longest IMAP command line outside literals" },
	{ "imapd_append_limit", "64m", "largest literal data of one command after login (APPENDLIMIT)" },
	{ "imapd_preauth_literal_limit", "8k", "largest literal data of one command before login" },
	{ "imapd_timeout", "30m", "idle time before imapd drops a client (RFC 3501 asks for at least 30 minutes)" },
	{ "imapd_preauth_timeout", "60s", "idle time before imapd drops a client that has not logged in" },
	{ "imapd_max_bad_commands", "20", "BAD replies before imapd drops a client" },
	{ "imapd_plaintext_login", "no", "allow LOGIN and AUTHENTICATE without TLS from non-loopback clients" },
	{ "pop3d_apop", "no", "offer APOP (a timestamp in the POP3 greeting)" },
	{ "pop3d_plaintext_login", "no", "allow USER/PASS and plaintext SASL without TLS from non-loopback clients" },
	{ "pop3d_timeout", "10m", "POP3 idle timeout (RFC 1939: at least 10 minutes)" },
	{ "pop3d_max_bad_commands", "20", "bad POP3 commands before the session is closed" },
	{ "pop3d_test_passwd_file", "", "tests only: check logins against user:password:maildir[:uid:gid] lines, not auth" },

	/* ---- spf, dkim, dmarc ---- */
	{ "dkim_keys", "", "signing key table (postern map): DOMAIN -> SELECTOR:KEYFILE; empty: no signing" },
	{ "public_suffix_list", "/usr/share/publicsuffix/public_suffix_list.dat",
	  "Public Suffix List for DMARC organisational domains" },

	{ NULL, NULL, NULL }
};
