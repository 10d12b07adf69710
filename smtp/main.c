/* smtp: delivery to other mail servers (DAEMON_SINGLE: one qmgr connection per process, master runs up to
 * maxproc of them). It speaks the same delivery protocol as local (qproto.h, LP_DELIVER -> LP_RESULT): for each
 * request it reads the queue file, groups the recipients by domain, finds the next hop (transport_maps, then
 * relayhost, then the domain's MX), tries its addresses in order (session.c) and answers one result per
 * recipient. A recipient the next hop accepted gets a receipt (common/receipt.h) before qmgr hears of it, so a
 * retry after a crash reports it delivered instead of sending it again. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "alloc.h"
#include "config.h"
#include "daemon.h"
#include "dns.h"
#include "ipc.h"
#include "log.h"
#include "nexthop.h"
#include "qfile.h"
#include "qproto.h"
#include "receipt.h"
#include "session.h"
#include "str.h"
#include "table.h"
#include "tls.h"

#define SMTP_IDLE_MS 60000	/* a qmgr connection with no request for this long is closed */

static struct {
	char *queue_dir, *relayhost, *transport_path, *policy_path, *cafile, *myhostname, *helo_name, *sasl_path;
	struct table *transport, *policy, *sasl;
	struct stat sasl_st;		/* the password table's file as opened before the privilege drop */
	struct dns_options dns;
	struct smtp_session_opts sopts;
	unsigned port;
	size_t max_addrs;
	enum smtp_addr_pref addr_pref;
	enum smtp_tls_level level;
	SSL_CTX *tls_ctx;
	struct ipc_peer_policy peers;
	uid_t owner_uid;
	int reuse_ms;			/* 0: no connection reuse */
	struct smtp_conn *conn;		/* kept open after the last delivery */
	struct timespec conn_since;
} S;

static int64_t ms_since(const struct timespec *t)
{
	struct timespec n;
	clock_gettime(CLOCK_MONOTONIC, &n);
	return (int64_t)(n.tv_sec - t->tv_sec) * 1000 + (n.tv_nsec - t->tv_nsec) / 1000000;
}

/* Drop the kept connection once it has been idle for the reuse time: servers do not wait for us forever. */
static void conn_expire(bool now_anyway)
{
	if (S.conn && (now_anyway || ms_since(&S.conn_since) >= S.reuse_ms))
		smtp_conn_close(&S.conn, &S.sopts);
}

static struct dns_result *lookup(enum dns_type type, const char *name, void *arg)
{
	(void)arg;
	return dns_lookup(&S.dns, type, name);
}

/* Lookup of domain, then of each parent as ".parent" (Postfix's transport map convention). */
static enum table_result map_domain(struct table **t, const char *path, const char *domain, struct buf *value)
{
	if (!*path)
		return TABLE_NOTFOUND;
	struct buf err = BUF_INIT(512);
	if (!*t && !(*t = table_open(path, &err))) {
		log_warn("%s: %s", path, buf_cstr(&err));
		buf_free(&err);
		return TABLE_ERROR;
	}
	buf_free(&err);
	enum table_result r = table_lookup(*t, domain, value);
	for (const char *d = strchr(domain, '.'); r == TABLE_NOTFOUND && d; d = strchr(d + 1, '.'))
		r = table_lookup(*t, d, value);
	if (r == TABLE_ERROR)
		log_warn("%s: %s", path, table_error(*t));
	return r;
}

/* Addresses go into SMTP commands verbatim: a control byte (CR, LF) or an angle bracket would let a crafted
 * address add commands of its own, so such an address is never sent, whatever the queue file says. */
static bool addr_sendable(const char *a)
{
	for (; *a; a++)
		if ((unsigned char)*a < 0x20 || *a == 0x7f || *a == '<' || *a == '>')
			return false;
	return true;
}

static const char *rcpt_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : "";
}

static double now(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* Claim recipient idx of message id: true when an earlier attempt already got the next hop's 250 for it. */
static bool receipt_claim(const char *id, uint32_t idx, struct smtp_rcpt *r, struct qreceipt *rc)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT);
	buf_printf(&path, "%s/receipts/%s/%u-smtp", S.queue_dir, id, (unsigned)idx);
	bool done = qreceipt_begin(rc, buf_cstr(&path), NULL, NULL);
	buf_free(&path);
	if (done) {
		r->code = 2;
		str_copy(r->dsn, sizeof(r->dsn), "2.0.0");
		buf_puts(&r->text, "sent before a restart (receipt)");
	} else if (rc->resumed) {
		/* the window SMTP cannot close (RFC 1047): the attempt may have ended between the end of data and
		 * the receipt, so the next hop may already have it */
		log_warn("%s: to=<%s>: an earlier attempt was cut off after it began; sending again, possibly a duplicate",
		         id, log_safe(r->addr, strlen(r->addr), 256));
	}
	return done;
}

/* Deliver the recipients of m whose domain is domain (others are left open); rc are their receipts (indexed
 * like m's recipients), settled as soon as the sessions are over. */
static void deliver_domain(struct smtp_message *all, const char *domain, double arrival, const char *relay_default,
                           struct qreceipt *rc)
{
	struct smtp_message m = *all;
	size_t *map = xcalloc(all->nrcpts, sizeof(*map));
	struct smtp_rcpt *rv = xcalloc(all->nrcpts, sizeof(*rv));
	m.rcpts = rv;
	m.nrcpts = 0;
	for (size_t i = 0; i < all->nrcpts; i++)
		if (!all->rcpts[i].code && str_eq_ci(rcpt_domain(all->rcpts[i].addr), domain)) {
			map[m.nrcpts] = i;
			rv[m.nrcpts] = all->rcpts[i];
			buf_init(&rv[m.nrcpts].text, 2048);
			m.nrcpts++;
		}

	struct buf spec = BUF_INIT(1024), err = BUF_INIT(1024), relay = BUF_INIT(512);
	struct smtp_nexthop nh = { NULL, 0, false };
	struct smtp_targets tg;
	memset(&tg, 0, sizeof(tg));
	buf_init(&tg.why, 64);
	buf_puts(&relay, "none");
	enum table_result tr = map_domain(&S.transport, S.transport_path, domain, &spec);
	enum smtp_tls_level level = S.level;
	struct buf pol = BUF_INIT(256);
	enum table_result pr = map_domain(&S.policy, S.policy_path, domain, &pol);
	if (pr == TABLE_FOUND) {
		char *w = str_trim(pol.data);
		w[strcspn(w, " \t")] = '\0';
		if (!smtp_tls_level_parse(w, &level)) {
			log_warn("smtp_tls_policy_maps: unknown level \"%s\" for %s; using encrypt", log_safe(w, strlen(w), 64),
			         domain);
			level = SMTP_TLS_ENCRYPT;	/* a typo must not silently lower the protection asked for */
		}
	}
	if (tr == TABLE_ERROR || pr == TABLE_ERROR) {
		smtp_rcpts_fail(&m, 4, "4.3.0", "lookup table not available");
		goto out;
	}
	const char *sp = tr == TABLE_FOUND ? buf_cstr(&spec) : *S.relayhost ? S.relayhost : "";
	if (!smtp_nexthop_parse(sp, &nh, &err)) {
		smtp_rcpts_fail(&m, 4, "4.3.5", buf_cstr(&err));
		goto out;
	}
	if (!nh.host)
		nh.host = xstrdup(relay_default ? relay_default : domain);
	smtp_resolve(&(struct smtp_resolve_opts){ .dns = lookup, .myhostname = S.myhostname, .default_port = S.port,
	                                          .max_addrs = S.max_addrs, .addr_pref = S.addr_pref },
	             &nh, &tg);
	if (!tg.n) {
		smtp_rcpts_fail(&m, tg.code, tg.dsn, buf_cstr(&tg.why));
		goto out;
	}
	if (level != SMTP_TLS_NONE && !S.tls_ctx) {
		if (!(S.tls_ctx = tls_client_ctx_new(*S.cafile ? S.cafile : NULL, &err))) {
			log_warn("TLS client context: %s", buf_cstr(&err));
			if (level >= SMTP_TLS_ENCRYPT) {
				smtp_rcpts_fail(&m, 4, "4.7.5", "TLS is required but not available");
				goto out;
			}
			level = SMTP_TLS_NONE;
		}
	}
	struct smtp_session_opts so = S.sopts;
	so.tls = level;
	so.tls_ctx = S.tls_ctx;
	struct buf cred = BUF_INIT(4096);
	if (S.sasl) {
		/* credentials by the next hop as written ("[relay]:587"), then its host, then the domain */
		enum table_result cr = TABLE_NOTFOUND;
		const char *keys[3] = { sp, nh.host, domain };
		for (int k = 0; k < 3 && cr == TABLE_NOTFOUND; k++)
			if (*keys[k])
				cr = table_lookup(S.sasl, keys[k], &cred);
		if (cr == TABLE_ERROR) {
			log_warn("smtp_sasl_password_maps: %s", table_error(S.sasl));
			smtp_rcpts_fail(&m, 4, "4.3.0", "password table not available");
			buf_free(&cred);
			goto out;
		}
		char *colon = cr == TABLE_FOUND ? strchr(cred.data, ':') : NULL;
		if (colon) {
			*colon = '\0';
			so.auth_user = cred.data;
			so.auth_pass = colon + 1;
		} else if (cr == TABLE_FOUND) {
			log_warn("smtp_sasl_password_maps: the entry for %s is not user:password", domain);
		}
	}
	struct smtp_attempt at = { 4, "4.4.1", BUF_INIT(2048) };
	bool done = false;
	struct smtp_conn **cache = S.reuse_ms > 0 ? &S.conn : NULL;
	conn_expire(false);
	/* a connection kept from the last delivery goes first when it is to one of this destination's addresses */
	size_t first = 0;
	for (size_t i = 0; S.conn && i < tg.n; i++)
		if (smtp_conn_for(S.conn, &tg.v[i], level, so.auth_user)) {
			first = i;
			break;
		}
	for (size_t k = 0; k < tg.n && !done; k++) {
		size_t i = k == 0 ? first : k <= first ? k - 1 : k;
		buf_reset(&relay);
		smtp_target_name(&tg.v[i], &relay);
		done = smtp_session_try(&so, &tg.v[i], &m, &at, cache);
		if (!done)
			log_info("%s: %s", all->queue_id, buf_cstr(&at.why));
		if (!done && so.tls == SMTP_TLS_MAY && strcmp(at.dsn, "4.7.5") == 0) {
			/* opportunistic TLS that failed is no reason to give up: plaintext is what "may" allows */
			so.tls = SMTP_TLS_NONE;
			done = smtp_session_try(&so, &tg.v[i], &m, &at, cache);
			so.tls = SMTP_TLS_MAY;
			if (!done)
				log_info("%s: %s", all->queue_id, buf_cstr(&at.why));
		}
	}
	if (!done)
		smtp_rcpts_fail(&m, at.code, at.dsn, buf_cstr(&at.why));
	if (cred.data)
		OPENSSL_cleanse(cred.data, cred.len);
	buf_free(&cred);
	if (S.conn)
		clock_gettime(CLOCK_MONOTONIC, &S.conn_since);
	buf_free(&at.why);
out:
	/* first of all: the receipts narrow the window in which a crash makes a duplicate */
	for (size_t j = 0; j < m.nrcpts; j++)
		qreceipt_end(&rc[map[j]], rv[j].code == 2);
	for (size_t j = 0; j < m.nrcpts; j++) {
		struct smtp_rcpt *r = &rv[j];
		const char *status = r->code == 2 ? "sent" : r->code == 4 ? "deferred" : "bounced";
		log_info("%s: to=<%s>, relay=%s, delay=%.2f, dsn=%s, status=%s (%s)", all->queue_id,
		         log_safe(r->addr, strlen(r->addr), 256), buf_cstr(&relay), now() - arrival, r->dsn, status,
		         buf_cstr(&r->text));
		struct smtp_rcpt *dst = &all->rcpts[map[j]];
		dst->code = r->code;
		memcpy(dst->dsn, r->dsn, sizeof(dst->dsn));
		buf_reset(&dst->text);
		buf_puts(&dst->text, buf_cstr(&r->text));
		buf_free(&r->text);
	}
	smtp_targets_free(&tg);
	smtp_nexthop_free(&nh);
	buf_free(&spec);
	buf_free(&pol);
	buf_free(&err);
	buf_free(&relay);
	free(rv);
	free(map);
}

static struct ipc_msg *handle(struct ipc_msg *req)
{
	const char *id = "", *sender = "";
	struct ipc_msg *reply = ipc_msg_reply_to(req, LP_RESULT);
	struct buf err = BUF_INIT(1024);
	struct qfile_envelope env;

	ipc_get_str(req, LP_F_QUEUE_ID, &id, NULL);
	ipc_get_str(req, LP_F_SENDER, &sender, NULL);
	int fd = qproto_open_job(req, S.queue_dir, &env, &err);
	bool have_env = fd >= 0;
	const char *fail = have_env ? NULL : buf_cstr(&err);
	size_t n = ipc_count(req, LP_F_RCPT);
	if (ipc_count(req, LP_F_IDX) != n)
		fail = "request has different numbers of recipients and indexes";
	struct smtp_rcpt *rv = xcalloc(n ? n : 1, sizeof(*rv));
	uint32_t *idxv = xcalloc(n ? n : 1, sizeof(*idxv));
	struct qreceipt *rc = xcalloc(n ? n : 1, sizeof(*rc));
	struct ipc_iter ii, ir;
	ipc_iter_init(&ii, req, LP_F_IDX);
	ipc_iter_init(&ir, req, LP_F_RCPT);
	for (size_t i = 0; i < n; i++) {
		ipc_iter_u32(&ii, &idxv[i]);
		ipc_iter_str(&ir, &rv[i].addr, NULL);
		buf_init(&rv[i].text, 2048);
		/* DSN details come from the queue file's copy of this recipient */
		if (have_env && idxv[i] < env.nrcpts) {
			rv[i].notify = env.rcpts[idxv[i]].notify;
			rv[i].orcpt = env.rcpts[idxv[i]].orcpt;
		}
	}
	struct smtp_message m = { .queue_id = id, .sender = sender, .fd = fd, .rcpts = rv, .nrcpts = n };
	if (!fail && !addr_sendable(sender)) {
		smtp_rcpts_fail(&m, 5, "5.1.7", "sender address contains characters that cannot be sent in SMTP");
	} else if (fail) {
		smtp_rcpts_fail(&m, 4, "4.3.0", fail);
	} else {
		m.envid = env.envid;
		m.ret = env.ret;
		m.eightbit = env.body && str_eq_ci(env.body, "8BITMIME");
		m.smtputf8 = env.smtputf8;
		m.offset = env.content_offset;
		m.len = env.content_len;
		for (size_t i = 0; i < n; i++) {
			if (rv[i].code)
				continue;
			const char *d = rcpt_domain(rv[i].addr);
			if (!addr_sendable(rv[i].addr)) {
				rv[i].code = 5;
				str_copy(rv[i].dsn, sizeof(rv[i].dsn), "5.1.3");
				buf_puts(&rv[i].text, "recipient address contains characters that cannot be sent in SMTP");
				continue;
			}
			if (!*d) {
				rv[i].code = 5;
				str_copy(rv[i].dsn, sizeof(rv[i].dsn), "5.1.3");
				buf_puts(&rv[i].text, "recipient address has no domain");
				continue;
			}
		}
		for (size_t i = 0; i < n; i++) {
			rc[i].fd = -1;
			if (!rv[i].code && receipt_claim(id, idxv[i], &rv[i], &rc[i]))
				log_info("%s: to=<%s>, relay=none, dsn=2.0.0, status=sent (before a restart: receipt)", id,
				         log_safe(rv[i].addr, strlen(rv[i].addr), 256));
		}
		/* all checks first: a delivery takes every open recipient of its domain */
		for (size_t i = 0; i < n; i++) {
			if (rv[i].code)
				continue;
			char *dom = xstrdup(rcpt_domain(rv[i].addr));
			deliver_domain(&m, dom, env.arrival, NULL, rc);
			free(dom);
		}
		for (size_t i = 0; i < n; i++)
			qreceipt_end(&rc[i], rv[i].code == 2);	/* none is left open; this only makes sure */
	}
	for (size_t i = 0; i < n; i++) {
		ipc_put_u32(reply, LP_F_R_IDX, idxv[i]);
		ipc_put_u32(reply, LP_F_R_CODE, (uint32_t)rv[i].code);
		ipc_put_str(reply, LP_F_R_DSN, rv[i].dsn);
		ipc_put_str(reply, LP_F_R_TEXT, buf_cstr(&rv[i].text));
		buf_free(&rv[i].text);
	}
	free(rv);
	free(idxv);
	free(rc);
	if (have_env)
		qfile_envelope_free(&env);
	if (fd >= 0)
		close(fd);
	buf_free(&err);
	return reply;
}

static void serve(int fd, const struct daemon_peer *peer, struct daemon_ctx *ctx)
{
	(void)peer;
	(void)ctx;
	struct buf err = BUF_INIT(1024);
	if (!ipc_peer_check(fd, &S.peers, &err)) {
		log_warn("refused connection: %s", buf_cstr(&err));
		buf_free(&err);
		return;
	}
	for (;;) {
		struct ipc_msg *req = NULL;
		buf_reset(&err);
		if (S.conn) {
			/* wait for the next request no longer than the kept connection may idle */
			int64_t left = S.reuse_ms - ms_since(&S.conn_since);
			struct pollfd p = { fd, POLLIN, 0 };
			if (left <= 0 || poll(&p, 1, (int)left) == 0)
				conn_expire(true);
		}
		int r = ipc_recv(fd, &qproto_local, 0, SMTP_IDLE_MS, &req, &err);
		if (r <= 0) {
			if (r < 0)
				log_warn("qmgr connection: %s", buf_cstr(&err));
			break;
		}
		struct ipc_msg *reply = handle(req);
		ipc_msg_free(&req);
		bool ok = ipc_send(fd, reply, 10000, &err);
		ipc_msg_free(&reply);
		if (!ok) {
			log_warn("qmgr connection: %s", buf_cstr(&err));
			break;
		}
	}
	/* the kept connection outlives this qmgr connection (qmgr connects once per job): the next request to this
	 * process may use it, and conn_expire() closes it once it is too old */
	buf_free(&err);
}

/* The password map is readable by root only: open it before the privilege drop, and remember which file it
 * was, so a replaced table is noticed (sasl_changed) by a process that can no longer open it. */
static void pre_drop(struct daemon_ctx *ctx)
{
	const char *path = config_str(ctx->cfg, "smtp_sasl_password_maps");
	if (!*path)
		return;
	struct buf err = BUF_INIT(512);
	if (!(S.sasl = table_open(path, &err)))
		fatalx("smtp_sasl_password_maps: %s", buf_cstr(&err));
	if (stat(table_path(S.sasl), &S.sasl_st) != 0)
		fatal("smtp_sasl_password_maps: %s", table_path(S.sasl));
	buf_free(&err);
}

static bool sasl_changed(void)
{
	struct stat st;
	if (stat(table_path(S.sasl), &st) != 0)
		return true;
	return st.st_dev != S.sasl_st.st_dev || st.st_ino != S.sasl_st.st_ino || st.st_size != S.sasl_st.st_size ||
	       st.st_mtim.tv_sec != S.sasl_st.st_mtim.tv_sec || st.st_mtim.tv_nsec != S.sasl_st.st_mtim.tv_nsec;
}

/* Before taking the next qmgr connection: a password map that was replaced since this process opened it (as
 * root) cannot be reopened after the privilege drop, so this process steps aside and master starts a fresh one
 * that reads the new table; the waiting connection goes to that one. A process still running as root reopens
 * tables by itself (table_lookup). */
static bool pre_accept(struct daemon_ctx *ctx)
{
	(void)ctx;
	if (!S.sasl || geteuid() == 0 || !sasl_changed())
		return true;
	log_info("smtp_sasl_password_maps: %s has changed; exiting so a new process reads it", table_path(S.sasl));
	return false;
}

static void close_at_exit(void)
{
	conn_expire(true);
}

static int ms(struct config *cfg, const char *name)
{
	return (int)config_time(cfg, name, 1, 86400) * 1000;
}

static void init(struct daemon_ctx *ctx)
{
	struct config *cfg = ctx->cfg;
	S.queue_dir = xstrdup(config_str(cfg, "queue_directory"));
	S.relayhost = xstrdup(config_str(cfg, "relayhost"));
	S.transport_path = xstrdup(config_str(cfg, "transport_maps"));
	S.policy_path = xstrdup(config_str(cfg, "smtp_tls_policy_maps"));
	S.cafile = xstrdup(config_str(cfg, "smtp_tls_CAfile"));
	S.myhostname = xstrdup(config_str(cfg, "myhostname"));
	S.helo_name = xstrdup(config_str(cfg, "smtp_helo_name"));
	S.port = (unsigned)config_int(cfg, "smtp_port", 1, 65535);
	S.max_addrs = (size_t)config_int(cfg, "smtp_mx_address_limit", 1, 1000);
	S.reuse_ms = (int)config_time(cfg, "smtp_connection_reuse_time", 0, 300) * 1000;
	const char *ap = config_str(cfg, "smtp_address_preference");
	if (!smtp_addr_pref_parse(ap, &S.addr_pref))
		fatalx("smtp_address_preference: unknown value \"%s\" (any, ipv4, ipv6)", ap);
	atexit(close_at_exit);
	dns_options_from_config(cfg, &S.dns);
	const char *lvl = config_str(cfg, "smtp_tls_security_level");
	if (!smtp_tls_level_parse(lvl, &S.level))
		fatalx("smtp_tls_security_level: unknown level \"%s\" (none, may, encrypt, verify)", lvl);
	struct buf err = BUF_INIT(256);
	struct smtp_nexthop nh;
	if (!smtp_nexthop_parse(S.relayhost, &nh, &err))
		fatalx("relayhost: %s", buf_cstr(&err));
	smtp_nexthop_free(&nh);
	buf_free(&err);
	S.sopts = (struct smtp_session_opts){
		.helo_name = S.helo_name, .myhostname = S.myhostname,
		.connect_ms = ms(cfg, "smtp_connect_timeout"), .helo_ms = ms(cfg, "smtp_helo_timeout"),
		.starttls_ms = ms(cfg, "smtp_starttls_timeout"), .mail_ms = ms(cfg, "smtp_mail_timeout"),
		.rcpt_ms = ms(cfg, "smtp_rcpt_timeout"), .data_ms = ms(cfg, "smtp_data_init_timeout"),
		.data_done_ms = ms(cfg, "smtp_data_done_timeout"), .quit_ms = ms(cfg, "smtp_quit_timeout"),
		.auth_tls_required = config_bool(cfg, "smtp_sasl_tls_required"),
	};
	const char *owner = config_str(cfg, "mail_owner");
	struct passwd *pw = getpwnam(owner);
	S.owner_uid = pw ? pw->pw_uid : geteuid();
	S.peers = (struct ipc_peer_policy){ .allow_root = true, .allow_same_uid = true, .uids = &S.owner_uid,
		                            .nuids = 1 };
}

int main(int argc, char **argv)
{
	static const struct daemon_ops ops = {
		.name = "smtp", .mode = DAEMON_SINGLE, .pre_drop = pre_drop, .init = init, .pre_accept = pre_accept,
		.serve = serve,
	};
	return daemon_main(argc, argv, &ops);
}
