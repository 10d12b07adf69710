/* smtpd's internal interfaces: the settings a session runs with, the session itself, and the pieces that act on
 * it (commands.c, data.c, policy.c, received.c, auth.c, notify.c, access.c, authcheck.c, peername.c, space.c). smtpd/main.c fills the settings from the
 * configuration and runs one session per accepted connection; the unit tests and the fuzzer run sessions over
 * socketpairs.
 *
 * Session states: CONNECTED (greeting sent) -EHLO/HELO-> READY -MAIL-> MAIL -RCPT-> RCPT -DATA-> READY, or
 * RCPT -BDAT-> BDAT -BDAT LAST-> READY. RSET and EHLO go back to READY; STARTTLS back to CONNECTED with
 * everything forgotten; QUIT, too many errors, a timeout or a lost client to CLOSING. Replies to pipelined
 * commands are buffered until the session would wait for input. Limits: smtpd_line_length_limit (500 5.5.2),
 * message_size_limit (552 5.3.4 at MAIL SIZE= and while reading), smtpd_recipient_limit (452 4.5.3),
 * smtpd_timeout (421 4.4.2), smtpd_hard_error_limit (421 4.7.0 and hang up), smtpd_soft_error_limit with
 * smtpd_error_sleep_time (each further error reply is delayed), smtpd_junk_command_limit.
 *
 * After qfile_commit() smtpd sends qmgr (private/qmgr, if the socket exists) one one-way QP_WAKEUP frame
 * (common/qproto.h); failures are only logged at debug level. */
#ifndef POSTERN_SMTPD_SMTPD_H
#define POSTERN_SMTPD_SMTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "buf.h"
#include "cmdtab.h"
#include "esmtp.h"
#include "qfile.h"
#include "stream.h"

/* How TLS is used on this service (master.cf tls column): offered, required before mail, or from the start. */
enum smtpd_tls_mode { SMTPD_TLS_OFFER, SMTPD_TLS_REQUIRE, SMTPD_TLS_IMPLICIT };

struct smtpd_policy;
struct smtpd_authcheck;
struct psl;
struct dkim_signer;
struct smtpd_access;
struct dns_options;

/* Everything a session needs from outside; read-only for the session. */
struct smtpd_settings {
	const char *hostname;		/* greeting, Received, Message-ID */
	const char *banner;		/* text after "220 " */
	uint64_t size_limit;		/* message_size_limit; 0: none */
	size_t rcpt_limit;		/* recipients per message */
	int timeout_ms;			/* each wait for the client */
	unsigned hard_error_limit;	/* errors before we hang up */
	unsigned soft_error_limit;	/* errors after which each error reply is delayed */
	int error_sleep_ms;
	unsigned junk_limit;		/* NOOP/VRFY/HELP/... that do not move a transaction */
	size_t line_limit;		/* command line bytes, terminator excluded */
	size_t data_line_limit;		/* DATA line bytes including CR LF (RFC 5321: 1000); 0: none */
	size_t header_limit;		/* header section kept in memory while looking for Message-ID/Date */
	enum smtpd_tls_mode tls_mode;
	SSL_CTX *tls_ctx;		/* NULL: no STARTTLS offered (and IMPLICIT cannot work) */
	bool auth_required;		/* submission: AUTH before MAIL, sender must belong to the login */
	bool auth_plaintext;		/* offer AUTH PLAIN/LOGIN without TLS to non-loopback clients too */
	bool submission_fixups;		/* add missing Message-ID and Date to mail from authenticated clients */
	bool bare_newline_reject;	/* DATA with bare CR or LF: refuse (else normalize) */
	bool dsn;			/* advertise DSN */
	/* Local submission (public/submit, sendmail): the client is identified by its uid from SO_PEERCRED,
	 * which is recorded in the queue file and logged; it may relay like mynetworks. */
	bool local_submission;
	const char *queue_dir;
	uint64_t queue_minfree;		/* MAIL gets 452 4.3.1 below this much free space (space.c) */
	const char *qmgr_socket;	/* NULL: do not notify */
	struct smtpd_policy *policy;	/* relay and recipient decisions; NULL: accept everything (fuzzer) */
	bool no_sleep;			/* fuzzer: never pause */
	struct smtpd_access *access;	/* access maps; NULL: none */
	bool delay_reject;		/* smtpd_delay_reject: client, HELO and sender verdicts wait for RCPT */
	bool sender_auth;		/* smtpd_sender_authentication: SPF, DKIM, DMARC on the MX port */
	bool dmarc_enforce;		/* smtpd_dmarc_enforce: DMARC p=reject failures get 550 5.7.1 */
	bool spf_reject;		/* smtpd_spf_reject: an SPF fail without a DMARC pass gets 550 5.7.23 */
	int authcheck_timeout_ms;	/* smtpd_sender_auth_timeout: SPF, DKIM, DMARC lookups after the data; 0: 30 s */
	const struct psl *psl;		/* public suffix list for DMARC; NULL: no DMARC */
	struct dkim_signer *dkim;	/* dkim_keys: signs mail of logged-in, mynetworks and local clients; NULL: none */
	bool peername_lookup;		/* smtpd_peername_lookup: forward-confirmed reverse DNS of the client */
	const struct dns_options *dns;	/* resolver settings; NULL: no DNS at all (fuzzer) */
	int connlimit_fd;		/* shared slot file of connlimit.c; -1: no per-client limit */
	unsigned connlimit;		/* smtpd_client_connection_limit: sessions at once per client address */
};

enum smtpd_state {
	SMTPD_S_CONNECTED,	/* greeting sent, no EHLO/HELO yet */
	SMTPD_S_READY,		/* EHLO/HELO done, no transaction */
	SMTPD_S_MAIL,		/* MAIL accepted, no recipient yet */
	SMTPD_S_RCPT,		/* at least one recipient accepted */
	SMTPD_S_BDAT,		/* inside a BDAT sequence (a chunk without LAST was received) */
	SMTPD_S_CLOSING,	/* QUIT, fatal error or lost client: the loop ends */
};

struct smtpd_rcpt {
	char *addr;		/* canonical form */
	unsigned notify;	/* ESMTP_NOTIFY_* */
	char *orcpt;		/* "type;addr", NULL when not given */
};

struct smtpd_session {
	const struct smtpd_settings *set;
	struct stream *s;
	enum smtpd_state state;
	/* client */
	char client_addr[64];	/* numeric */
	char client_name[256];	/* forward-confirmed reverse name (peername.c), else "unknown" */
	bool loopback;
	bool trusted;		/* in mynetworks, or a local submission */
	long peer_uid;		/* local submission: the client's uid (SO_PEERCRED); -1 otherwise */
	bool access_denied;	/* client refused at connect: only QUIT is answered (RFC 5321 3.1) */
	long long connslot;	/* offset of the slot held in connlimit_fd; -1 when none */
	char *helo;
	bool esmtp;
	char *auth_user;	/* after a successful AUTH */
	/* the transaction */
	char *sender;		/* canonical, "" for <> */
	struct esmtp_mail mail;
	struct smtpd_rcpt *rcpts;
	size_t nrcpts, rcpts_cap;
	struct qfile_writer *qw;	/* BDAT: the message being received */
	uint64_t bdat_size;
	bool bdat_failed;	/* a chunk could not be stored: answer the rest with 451 / 552 */
	char bdat_fail_reply[96];
	struct smtpd_msgsink *sink;
	struct smtpd_authcheck *authcheck;	/* SPF checks of this transaction (authcheck.c) */
	/* counters */
	unsigned errors;
	unsigned junk;
	unsigned messages;
	const char *last_cmd;	/* for "lost connection after X" */
	struct buf line;
};

/* session.c */
/* Runs a whole SMTP session on fd (taken over and closed) from the greeting to QUIT or disconnect.
 * peer may be NULL (fuzzer: "unknown", not loopback). */
/* Connections per client address (connlimit.c): concurrent sessions from one address hold OFD record locks on
 * one shared file, one byte per session at an offset derived from the address. The kernel drops a lock when its
 * holder closes or dies, so a killed smtpd never leaves a count behind and the file never grows. */
int smtpd_connlimit_open(const char *path);
/* The offset of a free slot now held for addr, -1 when all limit slots are taken (too many sessions), -2 on a
 * locking error (the caller lets the client in: the limit is a defence, not a reason to refuse mail). */
long long smtpd_connlimit_acquire(int fd, const char *addr, unsigned limit);
void smtpd_connlimit_release(int fd, long long slot);

void smtpd_session_run(int fd, const struct sockaddr *peer, socklen_t peerlen, const struct smtpd_settings *set);
/* Write one reply line (CRLF added); the text must hold no CR/LF. Multi-line replies call smtpd_reply_cont()
 * for all lines but the last. Output is flushed when the client has no more pipelined input. */
void smtpd_reply(struct smtpd_session *ss, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void smtpd_reply_cont(struct smtpd_session *ss, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An error reply: counts toward the error limits and pauses when past the soft limit. */
void smtpd_reply_error(struct smtpd_session *ss, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void smtpd_flush(struct smtpd_session *ss);
/* Drop the transaction (MAIL, RCPTs, a BDAT message in progress); the state goes back to READY when a HELO was
 * seen, CONNECTED otherwise. */
void smtpd_transaction_reset(struct smtpd_session *ss);
/* Forget everything the client told us (STARTTLS). */
void smtpd_session_reset_all(struct smtpd_session *ss);
/* Handle a stream failure while reading: timeout replies 421, EOF logs; the session goes to CLOSING. */
void smtpd_read_failed(struct smtpd_session *ss, enum stream_result r);
const char *smtpd_state_name(enum smtpd_state st);

/* commands.c */
void smtpd_command(struct smtpd_session *ss, const struct smtpd_cmd *cmd);

/* data.c */
void smtpd_cmd_data(struct smtpd_session *ss, const struct smtpd_cmd *cmd);
void smtpd_cmd_bdat(struct smtpd_session *ss, const struct smtpd_cmd *cmd);
void smtpd_data_abort(struct smtpd_session *ss);

/* notify.c */
/* Tell qmgr that message id is in incoming/ (one one-way frame); silent when qmgr is not running. */
void smtpd_notify_qmgr(const struct smtpd_settings *set, const char *id);

/* received.c */
/* The protocol name for Received "with" (RFC 3848, RFC 6531): SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP... */
const char *smtpd_protocol_name(const struct smtpd_session *ss);
/* Append the Received header (folded, CRLF line ends) for message id to out. now: seconds since the epoch. */
void smtpd_received(const struct smtpd_session *ss, const char *id, int64_t now, struct buf *out);
/* RFC 5322 date of now in local time ("Mon, 23 Nov 2026 15:04:14 +0000"). */
void smtpd_rfc5322_date(int64_t now, struct buf *out);
/* Does the header section (CRLF or LF lines, no body) hold a field with this name? */
bool smtpd_header_has(const char *hdr, size_t len, const char *name);

/* peername.c */
/* The forward-confirmed host name of numeric address addr into out (lowercase, no root dot), "unknown" when
 * there is no PTR, none of the first few PTR names resolves back to addr, or DNS fails. Blocking, bounded by
 * opt's timeout per lookup. */
void smtpd_peername(const struct dns_options *opt, const char *addr, char *out, size_t outlen);

/* access.c */
enum smtpd_access_stage {
	SMTPD_ACCESS_CLIENT,
	SMTPD_ACCESS_HELO,
	SMTPD_ACCESS_SENDER,
	SMTPD_ACCESS_RECIPIENT,
	SMTPD_ACCESS_NSTAGES
};
enum smtpd_access_result {
	SMTPD_ACCESS_DUNNO,	/* no entry (or DUNNO): go on with the next check */
	SMTPD_ACCESS_OK,	/* OK: this stage passes, its less specific keys are not looked at */
	SMTPD_ACCESS_REJECT,	/* 5xx in reply */
	SMTPD_ACCESS_DEFER,	/* 4xx in reply (also a map that cannot be read) */
};
/* paths[stage]: compiled table or NULL/"" for none. Tables are opened on first use (after fork). */
struct smtpd_access *smtpd_access_new(const char *const paths[SMTPD_ACCESS_NSTAGES], const char *delims);
void smtpd_access_free(struct smtpd_access **a);
/* Look subject up in the stage's map by Postfix's rules. CLIENT: subject is the address, name the verified
 * host name (or "unknown"); HELO: the HELO name; SENDER/RECIPIENT: the canonical address ("" = null sender).
 * For REJECT/DEFER reply holds the complete reply line. */
enum smtpd_access_result smtpd_access_check(struct smtpd_access *a, enum smtpd_access_stage st,
                                            const char *subject, const char *name, struct buf *reply);
/* Turn a map value into a verdict (reply: the whole reply line for REJECT/DEFER). Exposed for the fuzzer. */
enum smtpd_access_result smtpd_access_action(const char *value, const char *subject, enum smtpd_access_stage st,
                                             const char *mapname, struct buf *reply);
/* commands.c: the client, HELO and sender stages in order (RCPT with smtpd_delay_reject). False when one refused;
 * reply holds the reply and *defer says whether it is temporary. */
bool smtpd_access_early(struct smtpd_session *ss, bool client, bool helo, bool sender, struct buf *reply,
                        bool *defer);

/* authcheck.c */
/* Is this session's mail checked (MX port, not submission, not logged in, not mynetworks)? */
bool smtpd_authcheck_wanted(const struct smtpd_session *ss);
/* MAIL accepted: start the SPF checks of MAIL FROM and HELO (nothing when not wanted). */
void smtpd_authcheck_start(struct smtpd_session *ss);
void smtpd_authcheck_free(struct smtpd_session *ss);
/* The whole message (header and body as received) is in: wait for SPF, verify DKIM (only when complete), check
 * DMARC, append Authentication-Results and Received-SPF to top. False with the reply when DMARC p=reject is
 * enforced and failed, or SPF failed with smtpd_spf_reject and DMARC did not pass. Frees the transaction's
 * check; qid is for the log. */
bool smtpd_authcheck_finish(struct smtpd_session *ss, const char *qid, const char *msg, size_t len, bool complete,
                            struct buf *top, struct buf *reply);

/* space.c */
/* Is there room on the queue filesystem for a message of declared bytes (0: not declared)? The free space must
 * be at least queue_minfree, and 1.5 x declared above that. True when statvfs fails (the write will tell).
 * avail_out, if not NULL, receives the free bytes. */
bool smtpd_space_ok(const struct smtpd_settings *set, uint64_t declared, uint64_t *avail_out);

/* policy.c */
enum smtpd_verdict { SMTPD_OK, SMTPD_REJECT, SMTPD_TEMPFAIL };
struct smtpd_policy_conf {
	const char *mydestination;	/* list, commas and/or white space */
	const char *virtual_domains;	/* virtual_mailbox_domains: more account-only domains */
	const char *mynetworks;
	const char *accounts_db;	/* NULL: none */
	const char *aliases;		/* compiled aliases table, NULL: none */
	const char *delimiters;		/* recipient_delimiter */
	bool system_users;		/* local parts of mydestination domains may be passwd users */
};
/* NULL with err when mynetworks does not parse. */
struct smtpd_policy *smtpd_policy_new(const struct smtpd_policy_conf *conf, struct buf *err);
void smtpd_policy_free(struct smtpd_policy **p);
bool smtpd_policy_mynetworks(struct smtpd_policy *p, const struct sockaddr *sa);
/* RCPT: reply text (without the code prefix decided here) goes into reply. */
enum smtpd_verdict smtpd_policy_rcpt(struct smtpd_policy *p, const struct smtpd_session *ss, const char *canon,
                                     struct buf *reply);
/* MAIL on submission: may this login use this sender? */
enum smtpd_verdict smtpd_policy_sender(struct smtpd_policy *p, const struct smtpd_session *ss, const char *canon,
                                       struct buf *reply);
/* Parse a mynetworks list into p (tests). */
bool smtpd_cidr_match_text(const char *list, const char *addr, struct buf *err, bool *match);

/* auth.c */
void smtpd_cmd_auth(struct smtpd_session *ss, const struct smtpd_cmd *cmd);
bool smtpd_auth_offered(const struct smtpd_session *ss);
/* The mechanism names for the EHLO AUTH line, appended to out. */
void smtpd_auth_mechs(const struct smtpd_session *ss, struct buf *out);
/* One set of credentials from a finished SASL exchange, with what the checker needs to know about the client. */
struct smtpd_auth_req {
	const char *mech;	/* "PLAIN", "LOGIN" */
	const char *authcid;
	const char *passwd;
	const char *rip;	/* client address */
	bool encrypted, loopback;
	bool plaintext_ok;	/* smtpd_auth_plaintext: auth is told this service allows it */
};
/* Check a login: SMTPD_OK (the canonical login name into user), SMTPD_REJECT (bad credentials) or SMTPD_TEMPFAIL.
 * The default asks the auth daemon; tests and the fuzzer put a fake in its place. */
extern enum smtpd_verdict (*smtpd_auth_check)(const struct smtpd_auth_req *rq, struct buf *user);
enum smtpd_verdict smtpd_auth_check_daemon(const struct smtpd_auth_req *rq, struct buf *user);
/* Where the auth daemon listens and how long to wait for it (its answers to failures are delayed on purpose). */
void smtpd_auth_set_daemon(const char *socket_path, int timeout_ms);

#endif
