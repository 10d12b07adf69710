/* auth: the daemon's request logic over the real wire encoding (verify, lookup, throttling, log lines). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accounts.h"
#include "accounts_auth.h"
#include "../../auth/auth.h"
#include "log.h"
#include "sasl.h"

static int64_t fake_now;
static int64_t fake_clock(void *arg)
{
	(void)arg;
	return fake_now;
}

struct fx {
	char dir[64], db[128], log[128];
	struct auth_server *srv;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	struct buf err = BUF_INIT(1024);
	struct accounts_opts o = { .mail_directory = "/srv/mail", .quota = 5000 };
	struct accounts *db;

	snprintf(f->dir, sizeof f->dir, "/tmp/test_auth.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->db, sizeof f->db, "%s/accounts.lmdb", f->dir);
	snprintf(f->log, sizeof f->log, "%s/log", f->dir);
	db = accounts_open(f->db, true, &err);
	if (db == NULL || accounts_add(db, "alice@example.org", "alicepw", &o, &err) != ACCOUNTS_OK ||
	    accounts_add(db, "dora@example.org", "dorapw", &o, &err) != ACCOUNTS_OK ||
	    accounts_set_enabled(db, "dora@example.org", false, &err) != ACCOUNTS_OK ||
	    accounts_set_apop(db, "alice@example.org", "tanstaaf", &err) != ACCOUNTS_OK)
		return -1;
	accounts_close(&db);
	buf_free(&err);

	struct auth_settings set = { .db_path = f->db };
	set.throttle.max_delay = 8;
	set.throttle.decay = 600;
	set.throttle.max_entries = 100;
	set.throttle.clock = fake_clock;
	fake_now = 1000;
	f->srv = auth_server_new(&set);
	log_init("auth");
	if (log_to_file(f->log) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char p[160];
	auth_server_free(&f->srv);
	log_to_stderr();
	unlink(f->db);
	snprintf(p, sizeof p, "%s-lock", f->db);
	unlink(p);
	unlink(f->log);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Encode and decode a message, as the socket would. */
static struct ipc_msg *wire(struct ipc_msg *m)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	struct ipc_msg *out = NULL;
	if (m->id == 0 && !(m->flags & IPC_F_REPLY))
		m->id = 7;
	assert_true(ipc_msg_encode(m, &b));
	if (!ipc_frame_decode(&accounts_auth_proto, b.data, b.len, IPC_MAX_FRAME_DEFAULT, -1, &out, &err))
		fail_msg("decode: %s", buf_cstr(&err));
	ipc_msg_free(&m);
	buf_free(&b);
	buf_free(&err);
	return out;
}

static enum accounts_auth_status ask(struct fx *f, struct ipc_msg *req, unsigned *delay, struct accounts_user *u,
                                     struct buf *reason)
{
	struct ipc_msg *in = wire(req);
	unsigned d;
	struct ipc_msg *reply = wire(auth_server_handle(f->srv, in, &d));
	struct accounts_user tmp;
	enum accounts_auth_status st;

	assert_true(reply->flags & IPC_F_REPLY);
	assert_int_equal(reply->id, 7);
	/* no answer ever carries a hash */
	st = accounts_auth_parse_result(reply, u ? u : &tmp, reason);
	if (u == NULL)
		accounts_user_free(&tmp);
	if (delay)
		*delay = d;
	ipc_msg_free(&in);
	ipc_msg_free(&reply);
	return st;
}

static enum accounts_auth_status verify(struct fx *f, const char *mech, const char *user, const char *pw,
                                        const char *rip, bool enc, unsigned *delay)
{
	struct accounts_auth_request rq = { .mech = mech, .user = user, .password = pw, .rip = rip, .encrypted = enc,
	                                    .service = "smtpd" };
	return ask(f, accounts_auth_verify_msg(&rq), delay, NULL, NULL);
}

static bool log_has(struct fx *f, const char *needle)
{
	static char text[65536];
	FILE *fp = fopen(f->log, "r");
	size_t n = fp ? fread(text, 1, sizeof text - 1, fp) : 0;
	if (fp)
		fclose(fp);
	text[n] = '\0';
	return strstr(text, needle) != NULL;
}

static void test_verify_password(void **state)
{
	struct fx *f = *state;
	struct accounts_user u;
	struct buf reason = BUF_INIT(1024);
	struct accounts_auth_request rq = { .mech = "LOGIN", .user = "Alice@Example.org", .password = "alicepw",
	                                    .rip = "192.0.2.1", .encrypted = true, .service = "imapd" };

	assert_int_equal(ask(f, accounts_auth_verify_msg(&rq), NULL, &u, &reason), ACCOUNTS_AUTH_OK);
	assert_string_equal(u.address, "alice@example.org");
	assert_string_equal(u.maildir, "/srv/mail/example.org/alice/");
	assert_int_equal(u.quota, 5000);
	assert_null(u.password_hash);
	accounts_user_free(&u);
	assert_true(log_has(f, "auth ok: user=<alice@example.org> rip=192.0.2.1 mech=LOGIN service=imapd"));

	assert_int_equal(verify(f, "PASSWORD", "alice@example.org", "wrong", "192.0.2.1", true, NULL),
	                 ACCOUNTS_AUTH_FAIL);
	assert_true(log_has(f, "auth failed: user=<alice@example.org> rip=192.0.2.1 mech=PASSWORD service=smtpd "
	                       "reason=bad password"));
	assert_int_equal(verify(f, "PLAIN", "nobody@example.org", "alicepw", "192.0.2.2", true, NULL),
	                 ACCOUNTS_AUTH_FAIL);
	assert_true(log_has(f, "user=<nobody@example.org> rip=192.0.2.2 mech=PLAIN service=smtpd reason=unknown user"));
	assert_int_equal(verify(f, "PLAIN", "dora@example.org", "dorapw", "192.0.2.3", true, NULL), ACCOUNTS_AUTH_FAIL);
	assert_true(log_has(f, "reason=account disabled"));
	/* system users are off by default */
	assert_int_equal(verify(f, "PLAIN", "root", "x", "192.0.2.4", true, NULL), ACCOUNTS_AUTH_FAIL);
	/* hostile user names are escaped in the log */
	assert_int_equal(verify(f, "PLAIN", "evil\nauth ok: user=<x>", "x", "192.0.2.5", true, NULL),
	                 ACCOUNTS_AUTH_FAIL);
	assert_true(log_has(f, "user=<evil\\x0aauth\\x20ok:\\x20user=\\x3cx\\x3e> rip=192.0.2.5"));
	/* no second rip= can be planted for fail2ban */
	assert_int_equal(verify(f, "PLAIN", "x> rip=10.9.9.9", "x", "192.0.2.6", true, NULL), ACCOUNTS_AUTH_FAIL);
	assert_false(log_has(f, " rip=10.9.9.9"));
	assert_true(log_has(f, "user=<x\\x3e\\x20rip=10.9.9.9> rip=192.0.2.6 "));
	buf_free(&reason);
}

static void test_plaintext_policy(void **state)
{
	struct fx *f = *state;
	struct buf reason = BUF_INIT(1024);
	struct accounts_user u;
	struct accounts_auth_request rq = { .mech = "PLAIN", .user = "alice@example.org", .password = "alicepw",
	                                    .rip = "198.51.100.1" };
	/* neither TLS nor loopback: refused even with the right password */
	assert_int_equal(ask(f, accounts_auth_verify_msg(&rq), NULL, &u, &reason), ACCOUNTS_AUTH_FAIL);
	assert_non_null(strstr(buf_cstr(&reason), "unencrypted"));
	rq.loopback = true;
	assert_int_equal(ask(f, accounts_auth_verify_msg(&rq), NULL, &u, NULL), ACCOUNTS_AUTH_OK);
	accounts_user_free(&u);
	/* the service's own policy (smtpd_auth_plaintext, ...) allows plaintext from anywhere */
	rq.loopback = false;
	rq.plaintext_ok = true;
	assert_int_equal(ask(f, accounts_auth_verify_msg(&rq), NULL, &u, NULL), ACCOUNTS_AUTH_OK);
	accounts_user_free(&u);
	buf_free(&reason);
}

static void test_plain_data_and_malformed(void **state)
{
	struct fx *f = *state;
	struct accounts_auth_request rq = { .mech = "PLAIN", .data = "\0alice@example.org\0alicepw", .datalen = 26,
	                                    .rip = "192.0.2.9", .encrypted = true };
	assert_int_equal(ask(f, accounts_auth_verify_msg(&rq), NULL, NULL, NULL), ACCOUNTS_AUTH_OK);
	rq.data = "bob@example.org\0alice@example.org\0alicepw";	/* acting as someone else */
	rq.datalen = 41;
	assert_int_equal(ask(f, accounts_auth_verify_msg(&rq), NULL, NULL, NULL), ACCOUNTS_AUTH_FAIL);
	rq.data = "alicepw";
	rq.datalen = 7;
	assert_int_equal(ask(f, accounts_auth_verify_msg(&rq), NULL, NULL, NULL), ACCOUNTS_AUTH_FAIL);
	assert_true(log_has(f, "reason=malformed PLAIN message"));
	/* unknown mechanism, missing password */
	assert_int_equal(verify(f, "CRAM-MD5", "alice@example.org", "x", "192.0.2.9", true, NULL), ACCOUNTS_AUTH_FAIL);
	assert_int_equal(verify(f, "LOGIN", "alice@example.org", NULL, "192.0.2.9", true, NULL), ACCOUNTS_AUTH_FAIL);
	assert_true(log_has(f, "reason=missing user or password"));
}

static void test_apop(void **state)
{
	struct fx *f = *state;
	char digest[SASL_APOP_DIGEST_LEN + 1];
	const char *ts = "<1896.697170952@dbc.mtview.ca.us>";
	struct accounts_auth_request rq = { .mech = "APOP", .user = "alice@example.org", .apop_ts = ts,
	                                    .rip = "203.0.113.5" };
	sasl_apop_digest(ts, "tanstaaf", digest);
	rq.apop_digest = digest;
	/* APOP does not send the password: fine without TLS */
	assert_int_equal(ask(f, accounts_auth_verify_msg(&rq), NULL, NULL, NULL), ACCOUNTS_AUTH_OK);
	rq.apop_ts = "<other@host>";
	assert_int_equal(ask(f, accounts_auth_verify_msg(&rq), NULL, NULL, NULL), ACCOUNTS_AUTH_FAIL);
	rq.apop_ts = ts;
	rq.user = "dora@example.org";	/* no APOP secret */
	assert_int_equal(ask(f, accounts_auth_verify_msg(&rq), NULL, NULL, NULL), ACCOUNTS_AUTH_FAIL);
	assert_true(log_has(f, "reason=no APOP secret set"));
	rq.apop_digest = NULL;
	assert_int_equal(ask(f, accounts_auth_verify_msg(&rq), NULL, NULL, NULL), ACCOUNTS_AUTH_FAIL);
}

static void test_throttling(void **state)
{
	struct fx *f = *state;
	unsigned d;
	unsigned want[] = { 0, 1, 2, 4, 8, 8 };
	for (int i = 0; i < 6; i++) {
		assert_int_equal(verify(f, "PLAIN", "alice@example.org", "bad", "192.0.2.50", true, &d),
		                 ACCOUNTS_AUTH_FAIL);
		assert_int_equal(d, want[i]);
	}
	/* the account is throttled from another address too (per-account table) */
	assert_int_equal(verify(f, "PLAIN", "ALICE@example.org", "bad", "192.0.2.51", true, &d), ACCOUNTS_AUTH_FAIL);
	assert_int_equal(d, 8);
	/* and the address is throttled for other accounts (per-IP table) */
	assert_int_equal(verify(f, "PLAIN", "x@example.org", "bad", "192.0.2.50", true, &d), ACCOUNTS_AUTH_FAIL);
	assert_int_equal(d, 8);
	/* a success is delayed too (so the delay does not give the answer away), then resets both */
	assert_int_equal(verify(f, "PLAIN", "alice@example.org", "alicepw", "192.0.2.50", true, &d), ACCOUNTS_AUTH_OK);
	assert_int_equal(d, 8);
	assert_int_equal(verify(f, "PLAIN", "alice@example.org", "bad", "192.0.2.50", true, &d), ACCOUNTS_AUTH_FAIL);
	assert_int_equal(d, 0);
	/* quiet time decays */
	fake_now += 600;
	assert_int_equal(verify(f, "PLAIN", "alice@example.org", "bad", "192.0.2.50", true, &d), ACCOUNTS_AUTH_FAIL);
	assert_int_equal(d, 0);
}

static void test_lookup(void **state)
{
	struct fx *f = *state;
	struct accounts_user u;
	struct buf reason = BUF_INIT(1024);

	assert_int_equal(ask(f, accounts_auth_lookup_msg("DORA@example.org"), NULL, &u, NULL), ACCOUNTS_AUTH_OK);
	assert_string_equal(u.address, "dora@example.org");
	assert_string_equal(u.maildir, "/srv/mail/example.org/dora/");
	assert_false(u.enabled);
	assert_null(u.password_hash);
	assert_null(u.apop_secret);
	accounts_user_free(&u);
	assert_int_equal(ask(f, accounts_auth_lookup_msg("zed@example.org"), NULL, &u, &reason), ACCOUNTS_AUTH_NOTFOUND);
	assert_int_equal(ask(f, accounts_auth_lookup_msg("not an address"), NULL, &u, NULL), ACCOUNTS_AUTH_NOTFOUND);
	assert_int_equal(ask(f, accounts_auth_lookup_msg("root"), NULL, &u, NULL), ACCOUNTS_AUTH_NOTFOUND);
	buf_free(&reason);
}

static struct ipc_msg *redeem_msg(const char *token)
{
	struct ipc_msg *m = ipc_msg_new(ACCOUNTS_AUTH_REDEEM);
	ipc_put_str(m, ACCOUNTS_AUTH_TAG_TOKEN, token);
	return m;
}

static void test_login_tokens(void **state)
{
	struct fx *f = *state;
	struct accounts_user u;
	struct accounts_auth_request rq = { .mech = "PASSWORD", .user = "alice@example.org", .password = "alicepw",
	                                    .rip = "192.0.2.40", .encrypted = true, .service = "imapd" };
	char token[64];

	/* only a pre-login process asks for one */
	assert_int_equal(ask(f, accounts_auth_verify_msg(&rq), NULL, &u, NULL), ACCOUNTS_AUTH_OK);
	assert_null(u.login_token);
	accounts_user_free(&u);
	rq.want_token = true;
	assert_int_equal(ask(f, accounts_auth_verify_msg(&rq), NULL, &u, NULL), ACCOUNTS_AUTH_OK);
	assert_non_null(u.login_token);
	assert_int_equal(strlen(u.login_token), 32);
	snprintf(token, sizeof token, "%s", u.login_token);
	accounts_user_free(&u);
	/* redeemed once, for the account that logged in */
	assert_int_equal(ask(f, redeem_msg(token), NULL, &u, NULL), ACCOUNTS_AUTH_OK);
	assert_string_equal(u.address, "alice@example.org");
	assert_string_equal(u.maildir, "/srv/mail/example.org/alice/");
	assert_true(u.enabled);
	accounts_user_free(&u);
	assert_int_equal(ask(f, redeem_msg(token), NULL, &u, NULL), ACCOUNTS_AUTH_NOTFOUND);
	assert_int_equal(ask(f, redeem_msg("00000000000000000000000000000000"), NULL, &u, NULL), ACCOUNTS_AUTH_NOTFOUND);
	assert_int_equal(ask(f, redeem_msg(""), NULL, &u, NULL), ACCOUNTS_AUTH_NOTFOUND);
	/* a failed login gets none */
	rq.password = "wrong";
	assert_int_equal(ask(f, accounts_auth_verify_msg(&rq), NULL, &u, NULL), ACCOUNTS_AUTH_FAIL);
	assert_null(u.login_token);
	accounts_user_free(&u);
}

static void test_missing_and_corrupt_db(void **state)
{
	struct fx *f = *state;
	char p[160];
	/* no database yet: every account is unknown, nothing breaks */
	auth_server_free(&f->srv);
	unlink(f->db);
	snprintf(p, sizeof p, "%s-lock", f->db);
	unlink(p);
	struct auth_settings set = { .db_path = f->db };
	set.throttle.max_delay = 8;
	set.throttle.decay = 600;
	set.throttle.max_entries = 100;
	f->srv = auth_server_new(&set);
	assert_int_equal(verify(f, "PLAIN", "alice@example.org", "alicepw", "192.0.2.1", true, NULL), ACCOUNTS_AUTH_FAIL);
	assert_int_equal(ask(f, accounts_auth_lookup_msg("alice@example.org"), NULL, NULL, NULL), ACCOUNTS_AUTH_NOTFOUND);
	/* the first account appears while auth runs */
	struct buf err = BUF_INIT(1024);
	struct accounts_opts o = { .mail_directory = "/m" };
	struct accounts *db = accounts_open(f->db, true, &err);
	assert_non_null(db);
	assert_int_equal(accounts_add(db, "alice@example.org", "alicepw", &o, &err), ACCOUNTS_OK);
	assert_int_equal(verify(f, "PLAIN", "alice@example.org", "alicepw", "192.0.2.1", true, NULL), ACCOUNTS_AUTH_OK);
	accounts_close(&db);
	/* a file that is not a database: TEMPFAIL, not a crash and not a silent "unknown user" */
	auth_server_free(&f->srv);
	unlink(f->db);
	unlink(p);
	FILE *fp = fopen(f->db, "w");
	fputs("garbage", fp);
	fclose(fp);
	f->srv = auth_server_new(&set);
	assert_int_equal(verify(f, "PLAIN", "alice@example.org", "alicepw", "192.0.2.1", true, NULL),
	                 ACCOUNTS_AUTH_TEMPFAIL);
	assert_int_equal(ask(f, accounts_auth_lookup_msg("alice@example.org"), NULL, NULL, NULL), ACCOUNTS_AUTH_TEMPFAIL);
	buf_free(&err);
}

static void test_parse_result_errors(void **state)
{
	(void)state;
	struct accounts_user u;
	struct buf reason = BUF_INIT(1024);
	struct ipc_msg *req = ipc_msg_new(ACCOUNTS_AUTH_LOOKUP);
	req->id = 3;
	struct ipc_msg *e = wire(ipc_msg_error(req, 5, "broken"));
	assert_int_equal(accounts_auth_parse_result(e, &u, &reason), ACCOUNTS_AUTH_TEMPFAIL);
	assert_non_null(strstr(buf_cstr(&reason), "broken"));
	ipc_msg_free(&e);
	/* OK without the account fields is not trusted */
	struct ipc_msg *r = ipc_msg_reply_to(req, ACCOUNTS_AUTH_RESULT);
	ipc_put_u32(r, ACCOUNTS_AUTH_TAG_STATUS, ACCOUNTS_AUTH_OK);
	r = wire(r);
	assert_int_equal(accounts_auth_parse_result(r, &u, NULL), ACCOUNTS_AUTH_TEMPFAIL);
	ipc_msg_free(&r);
	r = ipc_msg_reply_to(req, ACCOUNTS_AUTH_RESULT);
	ipc_put_u32(r, ACCOUNTS_AUTH_TAG_STATUS, 99);
	r = wire(r);
	assert_int_equal(accounts_auth_parse_result(r, &u, NULL), ACCOUNTS_AUTH_TEMPFAIL);
	ipc_msg_free(&r);
	ipc_msg_free(&req);
	buf_free(&reason);
	/* the blocking client reports an absent daemon as TEMPFAIL */
	struct buf err = BUF_INIT(1024);
	assert_int_equal(accounts_auth_lookup("/nonexistent/auth", "a@b.c", 1000, &u, &err), ACCOUNTS_AUTH_TEMPFAIL);
	assert_true(err.len > 0);
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_verify_password, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plaintext_policy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plain_data_and_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_throttling, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_and_corrupt_db, setup, teardown),
		cmocka_unit_test(test_parse_result_errors),
	};
	return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
