/* auth request logic; see auth.h. The only code that compares passwords with hashes. */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "accounts.h"
#include "accounts_auth.h"
#include "cache.h"
#include "alloc.h"
#include "log.h"
#include "sasl.h"
#include "str.h"

/* Login tokens of recent successful VERIFYs, for the root side of privilege-separated logins (REDEEM). A ring:
 * when it is full the oldest token is forgotten, which only makes a very late handover fail. */
#define AUTH_TOKENS 256
#define AUTH_TOKEN_HEX 32
struct login_token {
	char token[AUTH_TOKEN_HEX + 1];
	char *address;		/* NULL: free slot */
	time_t expires;		/* CLOCK_MONOTONIC seconds */
};

struct auth_server {
	char *db_path;
	bool system_users;
	struct accounts *db;
	struct throttle *by_ip, *by_user;
	struct auth_cache *cache;
	struct login_token tokens[AUTH_TOKENS];
	size_t next_token;
};

static time_t mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void token_clear(struct login_token *t)
{
	explicit_bzero(t->token, sizeof t->token);
	free(t->address);
	t->address = NULL;
}

/* A fresh token for address, kept for ACCOUNTS_AUTH_TOKEN_TTL seconds; NULL when no randomness is to be had. */
static const char *token_issue(struct auth_server *s, const char *address)
{
	struct login_token *t = &s->tokens[s->next_token++ % AUTH_TOKENS];
	unsigned char rnd[AUTH_TOKEN_HEX / 2];

	token_clear(t);
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
		log_error("auth: getrandom for a login token: %m");
		return NULL;
	}
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(t->token + 2 * i, 3, "%02x", rnd[i]);
	explicit_bzero(rnd, sizeof rnd);
	t->address = xstrdup(address);
	t->expires = mono_now() + ACCOUNTS_AUTH_TOKEN_TTL;
	return t->token;
}

/* The account a token stands for (caller frees), and the token is gone; NULL when unknown or expired. */
static char *token_redeem(struct auth_server *s, const char *token)
{
	time_t now = mono_now();
	char *address = NULL;

	if (strlen(token) != AUTH_TOKEN_HEX)
		return NULL;
	for (size_t i = 0; i < AUTH_TOKENS; i++) {
		struct login_token *t = &s->tokens[i];
		if (t->address == NULL || CRYPTO_memcmp(t->token, token, AUTH_TOKEN_HEX) != 0)
			continue;
		if (t->expires >= now) {
			address = t->address;
			t->address = NULL;
		}
		token_clear(t);
	}
	return address;
}

struct auth_server *auth_server_new(const struct auth_settings *settings)
{
	struct auth_server *s = xcalloc(1, sizeof *s);
	s->db_path = xstrdup(settings->db_path);
	s->system_users = settings->system_users;
	s->by_ip = throttle_new(&settings->throttle);
	s->by_user = throttle_new(&settings->throttle);
	s->cache = auth_cache_new(settings->cache_entries, settings->cache_ttl);
	return s;
}

void auth_server_free(struct auth_server **sp)
{
	struct auth_server *s = *sp;
	if (s == NULL)
		return;
	accounts_close(&s->db);
	for (size_t i = 0; i < AUTH_TOKENS; i++)
		token_clear(&s->tokens[i]);
	throttle_free(&s->by_ip);
	throttle_free(&s->by_user);
	auth_cache_free(&s->cache);
	free(s->db_path);
	free(s);
	*sp = NULL;
}

/* The database is opened on first use, and again after a failure: an instance may get its first account
 * (and so its database file) while auth runs. */
static enum accounts_result open_db(struct auth_server *s, struct buf *err)
{
	if (s->db)
		return ACCOUNTS_OK;
	if (access(s->db_path, F_OK) != 0 && errno == ENOENT)
		return ACCOUNTS_NOTFOUND;
	s->db = accounts_open(s->db_path, false, err);
	return s->db ? ACCOUNTS_OK : ACCOUNTS_ERROR;
}

/* An address goes to the account database, a bare login name to the system's users when allowed. */
static enum accounts_result find_user(struct auth_server *s, const char *name, struct accounts_user *u,
                                      struct buf *err)
{
	struct buf norm = BUF_INIT(ACCOUNTS_ADDRESS_MAX), e = BUF_INIT(256);
	enum accounts_result r;

	memset(u, 0, sizeof *u);
	if (strchr(name, '@') == NULL) {
		r = s->system_users ? accounts_system_get(name, u, err) : ACCOUNTS_NOTFOUND;
	} else if (!accounts_normalize(name, &norm, &e)) {
		r = ACCOUNTS_NOTFOUND;
	} else if ((r = open_db(s, err)) == ACCOUNTS_OK) {
		r = accounts_get(s->db, norm.data, u, err);
	}
	buf_free(&norm);
	buf_free(&e);
	return r;
}

/* Throttle key of a user name: the normalized address when it is one, else the name in lower case. */
static void user_key(const char *name, struct buf *key)
{
	struct buf e = BUF_INIT(256);
	if (!accounts_normalize(name, key, &e)) {
		buf_reset(key);
		buf_append(key, name, strnlen(name, THROTTLE_KEY_MAX));
		if (key->data)
			str_lower(key->data);
	}
	buf_free(&e);
}

static void fill_result(struct ipc_msg *m, enum accounts_auth_status st, const struct accounts_user *u,
                        const char *reason)
{
	ipc_put_u32(m, ACCOUNTS_AUTH_TAG_STATUS, st);
	if (u && u->address) {
		ipc_put_str(m, ACCOUNTS_AUTH_TAG_ADDRESS, u->address);
		ipc_put_str(m, ACCOUNTS_AUTH_TAG_MAILDIR, u->maildir);
		ipc_put_u32(m, ACCOUNTS_AUTH_TAG_UID, u->uid);
		ipc_put_u32(m, ACCOUNTS_AUTH_TAG_GID, u->gid);
		ipc_put_u64(m, ACCOUNTS_AUTH_TAG_QUOTA, u->quota);
		ipc_put_u32(m, ACCOUNTS_AUTH_TAG_ENABLED, u->enabled);
	}
	if (reason)
		ipc_put_str(m, ACCOUNTS_AUTH_TAG_REASON, reason);
}

static struct ipc_msg *result(const struct ipc_msg *req, enum accounts_auth_status st, const struct accounts_user *u,
                              const char *reason)
{
	struct ipc_msg *m = ipc_msg_reply_to(req, ACCOUNTS_AUTH_RESULT);
	fill_result(m, st, u, reason);
	return m;
}

struct verify_in {
	const char *mech, *rip, *service;
	uint32_t flags;
	const char *user, *password;
	const char *apop_ts, *apop_digest;
	struct sasl_creds plain;	/* PLAIN with DATA: parsed here */
};

/* Pull the credentials out of the request; NULL or the reason the request is unusable. */
static const char *read_verify(const struct ipc_msg *req, struct verify_in *in, struct buf *err)
{
	const void *data;
	size_t datalen;

	ipc_get_str(req, ACCOUNTS_AUTH_TAG_MECH, &in->mech, NULL);
	ipc_get_str(req, ACCOUNTS_AUTH_TAG_RIP, &in->rip, NULL);
	if (!ipc_get_str(req, ACCOUNTS_AUTH_TAG_SERVICE, &in->service, NULL))
		in->service = "unknown";
	if (!ipc_get_u32(req, ACCOUNTS_AUTH_TAG_FLAGS, &in->flags))
		in->flags = 0;
	ipc_get_str(req, ACCOUNTS_AUTH_TAG_USER, &in->user, NULL);
	ipc_get_str(req, ACCOUNTS_AUTH_TAG_PASSWORD, &in->password, NULL);
	ipc_get_str(req, ACCOUNTS_AUTH_TAG_APOP_TS, &in->apop_ts, NULL);
	ipc_get_str(req, ACCOUNTS_AUTH_TAG_APOP_DIGEST, &in->apop_digest, NULL);

	if (strcmp(in->mech, "PLAIN") == 0 && ipc_get_bytes(req, ACCOUNTS_AUTH_TAG_DATA, &data, &datalen)) {
		if (!sasl_plain_parse(data, datalen, &in->plain, err))
			return "malformed PLAIN message";
		in->user = in->plain.authcid;
		in->password = in->plain.passwd;
		return NULL;
	}
	if (strcmp(in->mech, "APOP") == 0)
		return in->user && in->apop_ts && in->apop_digest ? NULL : "APOP without user, timestamp or digest";
	if (strcmp(in->mech, "PLAIN") == 0 || strcmp(in->mech, "LOGIN") == 0 || strcmp(in->mech, "PASSWORD") == 0)
		return in->user && in->password && in->user[0] && in->password[0] ? NULL : "missing user or password";
	return "unknown mechanism";
}

/* Log fields are parsed by fail2ban-style tools: besides control bytes, '<', '>', space and backslash in a
 * client-chosen name are escaped too, so "x> rip=10.0.0.1" cannot plant a second rip= in the line. */
#define FIELD_SLOTS 4
static const char *field(const char *s, size_t cap)
{
	static struct buf slots[FIELD_SLOTS] = { BUF_INIT(2048), BUF_INIT(2048), BUF_INIT(2048), BUF_INIT(2048) };
	static unsigned next;
	struct buf *b = &slots[next++ % FIELD_SLOTS];
	size_t n = strnlen(s, cap + 1);

	buf_reset(b);
	for (size_t i = 0; i < n && i < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x21 || c > 0x7e || c == '<' || c == '>' || c == '\\')
			buf_printf(b, "\\x%02x", c);
		else
			buf_putc(b, c);
	}
	if (n > cap)
		buf_puts(b, "...");
	return buf_cstr(b);
}

static void log_failure(const struct verify_in *in, const char *reason)
{
	log_warn("auth failed: user=<%s> rip=%s mech=%s service=%s reason=%s", field(in->user ? in->user : "", 100),
	         field(in->rip, 64), field(in->mech, 16), field(in->service, 32), reason);
}

/* A verification that needs a password hash checked: everything the slow step and the answer need, copied out
 * of the request (which is gone by the time a worker thread has finished). */
struct auth_job {
	uint64_t id;			/* of the request, for the reply */
	uint32_t flags;			/* ACCOUNTS_AUTH_F_* of the request */
	char *user, *rip, *mech, *service;
	char *password;			/* wiped before it is freed */
	char *hash;			/* NULL: unknown user (a dummy hash is checked instead, at the same cost) */
	struct accounts_user u;
	struct buf key;			/* throttle key of the user */
	unsigned delay;
	unsigned char mac[AUTH_CACHE_MAC];	/* of the password, for the verification cache */
	bool match;			/* the outcome of auth_job_run */
};

static char *dup_or_empty(const char *s)
{
	return xstrdup(s ? s : "");
}

static void job_free(struct auth_job *job)
{
	if (job->password) {
		explicit_bzero(job->password, strlen(job->password));
		free(job->password);
	}
	free(job->hash);
	free(job->user);
	free(job->rip);
	free(job->mech);
	free(job->service);
	accounts_user_free(&job->u);
	buf_free(&job->key);
	explicit_bzero(job->mac, sizeof job->mac);
	free(job);
}

void auth_job_run(struct auth_job *job)
{
	if (job->hash == NULL) {
		accounts_dummy_verify(job->password);
		job->match = false;
	} else {
		job->match = accounts_check_hash(job->password, job->hash);
	}
	explicit_bzero(job->password, strlen(job->password));
}

/* Throttle bookkeeping, the log line and the RESULT, once the outcome is known. */
static struct ipc_msg *conclude(struct auth_server *s, const struct verify_in *in, const char *key,
                                const struct accounts_user *u, const char *reason, uint64_t id, bool cached)
{
	struct ipc_msg *m = ipc_msg_new(ACCOUNTS_AUTH_RESULT);

	m->id = id;
	m->flags = IPC_F_REPLY;
	if (reason == NULL && !u->enabled)
		reason = "account disabled";
	if (reason == NULL) {
		throttle_success(s->by_ip, in->rip);
		throttle_success(s->by_user, key);
		log_info("auth ok: user=<%s> rip=%s mech=%s service=%s%s", field(u->address, 100), field(in->rip, 64),
		         field(in->mech, 16), field(in->service, 32), cached ? " cached=yes" : "");
		fill_result(m, ACCOUNTS_AUTH_OK, u, NULL);
		const char *token = in->flags & ACCOUNTS_AUTH_F_WANT_TOKEN ? token_issue(s, u->address) : NULL;
		if (token)
			ipc_put_str(m, ACCOUNTS_AUTH_TAG_TOKEN, token);
	} else {
		throttle_failure(s->by_ip, in->rip);
		throttle_failure(s->by_user, key);
		log_failure(in, reason);
		fill_result(m, ACCOUNTS_AUTH_FAIL, NULL, reason);
	}
	return m;
}

struct ipc_msg *auth_server_finish(struct auth_server *s, struct auth_job *job, unsigned *delay)
{
	struct verify_in in = { .mech = job->mech, .rip = job->rip, .service = job->service, .user = job->user,
		                .flags = job->flags };
	const char *reason = NULL;
	struct ipc_msg *reply;

	if (job->hash == NULL)
		reason = "unknown user";
	else if (!job->match)
		reason = "bad password";
	if (reason == NULL && job->u.enabled)
		auth_cache_put(s->cache, job->u.address, job->hash, job->mac);
	reply = conclude(s, &in, buf_cstr(&job->key), &job->u, reason, job->id, false);
	*delay = job->delay;
	job_free(job);
	return reply;
}

static struct ipc_msg *handle_verify(struct auth_server *s, const struct ipc_msg *req, unsigned *delay,
                                     struct auth_job **jobp)
{
	struct verify_in in;
	struct buf err = BUF_INIT(1024), key = BUF_INIT(THROTTLE_KEY_MAX);
	struct accounts_user u;
	enum accounts_result r;
	const char *bad, *reason = NULL;
	struct ipc_msg *reply;
	unsigned d;

	memset(&in, 0, sizeof in);
	memset(&u, 0, sizeof u);
	if ((bad = read_verify(req, &in, &err)) != NULL) {
		*delay = throttle_delay(s->by_ip, in.rip);
		throttle_failure(s->by_ip, in.rip);
		log_failure(&in, bad);
		reply = result(req, ACCOUNTS_AUTH_FAIL, NULL, bad);
		goto out;
	}
	/* the protocol daemons already refuse this; checked again so no caller can forget */
	if (strcmp(in.mech, "APOP") != 0 &&
	    !(in.flags & (ACCOUNTS_AUTH_F_ENCRYPTED | ACCOUNTS_AUTH_F_LOOPBACK | ACCOUNTS_AUTH_F_PLAINTEXT_OK))) {
		log_failure(&in, "plaintext password on an unencrypted connection");
		reply = result(req, ACCOUNTS_AUTH_FAIL, NULL, "plaintext password on an unencrypted connection");
		goto out;
	}
	user_key(in.user, &key);
	*delay = throttle_delay(s->by_ip, in.rip);
	if ((d = throttle_delay(s->by_user, buf_cstr(&key))) > *delay)
		*delay = d;

	r = find_user(s, in.user, &u, &err);
	if (r == ACCOUNTS_ERROR) {
		log_error("auth: cannot check user=<%s>: %s", field(in.user, 100), buf_cstr(&err));
		reply = result(req, ACCOUNTS_AUTH_TEMPFAIL, NULL, "account database error");
		*delay = 0;
		goto out;
	}
	if (strcmp(in.mech, "APOP") == 0) {
		/* an unknown user costs an MD5 too */
		bool match = sasl_apop_verify(in.apop_ts, r == ACCOUNTS_OK && u.apop_secret ? u.apop_secret : "x",
		                              in.apop_digest);
		if (r != ACCOUNTS_OK)
			reason = "unknown user";
		else if (u.apop_secret == NULL)
			reason = "no APOP secret set";
		else if (!match)
			reason = "bad password";
		reply = conclude(s, &in, buf_cstr(&key), &u, reason, req->id, false);
		goto out;
	}
	unsigned char mac[AUTH_CACHE_MAC] = { 0 };
	if (r == ACCOUNTS_OK && u.enabled && auth_cache_enabled(s->cache)) {
		auth_cache_mac(s->cache, in.password, mac);
		if (auth_cache_hit(s->cache, u.address, u.password_hash, mac)) {
			reply = conclude(s, &in, buf_cstr(&key), &u, NULL, req->id, true);
			explicit_bzero(mac, sizeof mac);
			goto out;
		}
	}
	/* The hash check (tens of milliseconds for yescrypt) is the caller's to run, off its event loop. */
	struct auth_job *job = xcalloc(1, sizeof *job);
	job->id = req->id;
	job->flags = in.flags;
	job->user = dup_or_empty(in.user);
	job->rip = dup_or_empty(in.rip);
	job->mech = dup_or_empty(in.mech);
	job->service = dup_or_empty(in.service);
	job->password = xstrdup(in.password);
	if (r == ACCOUNTS_OK) {
		job->hash = xstrdup(u.password_hash ? u.password_hash : "");
		job->u = u;
		memset(&u, 0, sizeof u);
	}
	job->key = key;
	buf_init(&key, THROTTLE_KEY_MAX);
	job->delay = *delay;
	memcpy(job->mac, mac, sizeof mac);
	explicit_bzero(mac, sizeof mac);
	*jobp = job;
	reply = NULL;
out:
	explicit_bzero(&in.plain, sizeof in.plain);
	accounts_user_free(&u);
	buf_free(&err);
	buf_free(&key);
	return reply;
}

static struct ipc_msg *handle_lookup_of(struct auth_server *s, const struct ipc_msg *req, const char *user)
{
	struct buf err = BUF_INIT(1024);
	struct accounts_user u;
	struct ipc_msg *reply;
	enum accounts_result r;

	r = find_user(s, user, &u, &err);
	if (r == ACCOUNTS_OK) {
		reply = result(req, ACCOUNTS_AUTH_OK, &u, NULL);
	} else if (r == ACCOUNTS_NOTFOUND) {
		reply = result(req, ACCOUNTS_AUTH_NOTFOUND, NULL, "no such account");
	} else {
		log_error("auth: lookup user=<%s>: %s", field(user, 100), buf_cstr(&err));
		reply = result(req, ACCOUNTS_AUTH_TEMPFAIL, NULL, "account database error");
	}
	accounts_user_free(&u);
	buf_free(&err);
	return reply;
}

static struct ipc_msg *handle_lookup(struct auth_server *s, const struct ipc_msg *req)
{
	const char *user = "";

	ipc_get_str(req, ACCOUNTS_AUTH_TAG_USER, &user, NULL);
	return handle_lookup_of(s, req, user);
}

static struct ipc_msg *handle_redeem(struct auth_server *s, const struct ipc_msg *req)
{
	const char *token = "";
	char *address;
	struct ipc_msg *reply;

	ipc_get_str(req, ACCOUNTS_AUTH_TAG_TOKEN, &token, NULL);
	if ((address = token_redeem(s, token)) == NULL) {
		log_warn("auth: login token unknown, used or expired");
		return result(req, ACCOUNTS_AUTH_NOTFOUND, NULL, "unknown, used or expired login token");
	}
	reply = handle_lookup_of(s, req, address);
	free(address);
	return reply;
}

struct ipc_msg *auth_server_begin(struct auth_server *s, const struct ipc_msg *req, unsigned *delay,
                                  struct auth_job **job)
{
	*delay = 0;
	*job = NULL;
	switch (req->type) {
	case ACCOUNTS_AUTH_VERIFY:
		return handle_verify(s, req, delay, job);
	case ACCOUNTS_AUTH_LOOKUP:
		return handle_lookup(s, req);
	case ACCOUNTS_AUTH_REDEEM:
		return handle_redeem(s, req);
	default:
		return ipc_msg_error(req, 1, "auth: unexpected message type");
	}
}

struct ipc_msg *auth_server_handle(struct auth_server *s, const struct ipc_msg *req, unsigned *delay)
{
	struct auth_job *job;
	struct ipc_msg *reply = auth_server_begin(s, req, delay, &job);

	if (reply)
		return reply;
	auth_job_run(job);
	return auth_server_finish(s, job, delay);
}
