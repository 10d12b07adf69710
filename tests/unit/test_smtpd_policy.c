/* smtpd relay and recipient policy against a real account database and a compiled aliases table: local and
 * virtual domains, extensions, disabled accounts, system users, relay by network or login, lookups that fail
 * (temporary, never "unknown user"), and the submission sender check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accounts.h"
#include "buf.h"
#include "table.h"
#include "../../smtpd/smtpd.h"

struct pfx {
	char dir[64];
	char accounts[128];
	char aliases_src[128];
	char aliases[160];
	struct smtpd_policy_conf pc;
	struct smtpd_policy *p;
	struct smtpd_session ss;
};

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void add_account(struct pfx *f, const char *addr, bool disabled)
{
	struct buf err = BUF_INIT(1024);
	struct accounts *db = accounts_open(f->accounts, true, &err);
	struct accounts_opts o;

	assert_non_null(db);
	memset(&o, 0, sizeof(o));
	o.mail_directory = f->dir;
	o.scheme = "$6$";	/* cheaper than yescrypt; the hash is not what is tested here */
	o.disabled = disabled;
	if (accounts_add(db, addr, "pw", &o, &err) != ACCOUNTS_OK)
		fail_msg("accounts_add %s: %s", addr, buf_cstr(&err));
	accounts_close(&db);
	buf_free(&err);
}

static void pfx_init(struct pfx *f)
{
	struct buf err = BUF_INIT(1024);

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/smtpd-policy-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->accounts, sizeof(f->accounts), "%s/accounts.lmdb", f->dir);
	snprintf(f->aliases_src, sizeof(f->aliases_src), "%s/aliases", f->dir);
	snprintf(f->aliases, sizeof(f->aliases), "%s.lmdb", f->aliases_src);
	write_file(f->aliases_src, "staff: root\nsales: someone@elsewhere.test\n");
	if (!table_compile(f->aliases_src, NULL, TABLE_ALIASES, NULL, &err, NULL))
		fail_msg("%s", buf_cstr(&err));
	add_account(f, "alice@virtual.test", false);
	add_account(f, "bob@virtual.test", true);
	f->pc.mydestination = "example.test localhost";
	f->pc.virtual_domains = "listed.test";
	f->pc.mynetworks = "10.0.0.0/8";
	f->pc.accounts_db = f->accounts;
	f->pc.aliases = f->aliases;
	f->pc.delimiters = "+";
	f->pc.system_users = true;
	f->p = smtpd_policy_new(&f->pc, &err);
	assert_non_null(f->p);
	buf_free(&err);
}

static void pfx_done(struct pfx *f)
{
	char cmd[128];

	smtpd_policy_free(&f->p);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
}

/* Returns the verdict; the reply's first 9 bytes ("550 5.1.1") are compared when want is not NULL. */
static enum smtpd_verdict rcpt(struct pfx *f, const char *addr, const char *want)
{
	struct buf reply = BUF_INIT(1024);
	enum smtpd_verdict v = smtpd_policy_rcpt(f->p, &f->ss, addr, &reply);

	if (want && strncmp(buf_cstr(&reply), want, strlen(want)) != 0)
		fail_msg("%s: expected \"%s\", got \"%s\"", addr, want, buf_cstr(&reply));
	if (!want && v != SMTPD_OK)
		fail_msg("%s: refused: %s", addr, buf_cstr(&reply));
	buf_free(&reply);
	return v;
}

static void test_local_and_virtual_recipients(void **state)
{
	(void)state;
	struct pfx f;
	pfx_init(&f);
	rcpt(&f, "alice@virtual.test", NULL);
	rcpt(&f, "Alice+news@VIRTUAL.test", NULL);
	assert_int_equal(rcpt(&f, "carol@virtual.test", "550 5.1.1"), SMTPD_REJECT);
	assert_int_equal(rcpt(&f, "bob@virtual.test", "550 5.1.1"), SMTPD_REJECT);	/* disabled */
	rcpt(&f, "postmaster@virtual.test", NULL);
	rcpt(&f, "staff@example.test", NULL);		/* alias */
	rcpt(&f, "staff+x@example.test", NULL);		/* alias, extension stripped */
	rcpt(&f, "root@example.test", NULL);		/* system user */
	rcpt(&f, "Postmaster", NULL);			/* <Postmaster> without a domain */
	assert_int_equal(rcpt(&f, "no-such-user-4711@example.test", "550 5.1.1"), SMTPD_REJECT);
	/* a virtual_mailbox_domains domain without accounts is still local: unknown, not relay */
	assert_int_equal(rcpt(&f, "x@Listed.test", "550 5.1.1"), SMTPD_REJECT);
	rcpt(&f, "postmaster@listed.test", NULL);
	/* aliases and system users belong to mydestination only */
	assert_int_equal(rcpt(&f, "staff@virtual.test", "550 5.1.1"), SMTPD_REJECT);
	assert_int_equal(rcpt(&f, "root@virtual.test", "550 5.1.1"), SMTPD_REJECT);
	pfx_done(&f);
}

static void test_relay(void **state)
{
	(void)state;
	struct pfx f;
	pfx_init(&f);
	assert_int_equal(rcpt(&f, "x@remote.test", "554 5.7.1 <x@remote.test>: Relay access denied"), SMTPD_REJECT);
	f.ss.trusted = true;
	rcpt(&f, "x@remote.test", NULL);
	f.ss.trusted = false;
	f.ss.auth_user = "alice@virtual.test";
	rcpt(&f, "x@remote.test", NULL);
	/* even a logged-in client cannot invent local users */
	assert_int_equal(rcpt(&f, "carol@virtual.test", "550 5.1.1"), SMTPD_REJECT);
	f.ss.auth_user = NULL;
	pfx_done(&f);
}

static void test_new_domain_seen_at_once(void **state)
{
	(void)state;
	struct pfx f;
	pfx_init(&f);
	assert_int_equal(rcpt(&f, "dave@new.test", "554 5.7.1"), SMTPD_REJECT);
	add_account(&f, "dave@new.test", false);
	rcpt(&f, "dave@new.test", NULL);
	assert_int_equal(rcpt(&f, "erin@new.test", "550 5.1.1"), SMTPD_REJECT);
	pfx_done(&f);
}

static void test_lookup_failures_are_temporary(void **state)
{
	(void)state;
	struct pfx f;
	char path[256];
	pfx_init(&f);
	/* a broken aliases table: users that would need it get 451, never 550 */
	snprintf(path, sizeof(path), "%s", f.aliases);
	unlink(path);
	write_file(path, "this is not an LMDB file at all, but long enough to look like one to a careless reader");
	smtpd_policy_free(&f.p);
	struct buf err = BUF_INIT(1024);
	f.p = smtpd_policy_new(&f.pc, &err);
	assert_int_equal(rcpt(&f, "staff@example.test", "451 4.3.0"), SMTPD_TEMPFAIL);
	rcpt(&f, "alice@virtual.test", NULL);	/* accounts still answer */
	smtpd_policy_free(&f.p);
	/* an account database that cannot be opened: every local domain defers */
	snprintf(path, sizeof(path), "%s/notadb", f.dir);
	assert_int_equal(mkdir(path, 0700), 0);
	f.pc.accounts_db = path;
	f.p = smtpd_policy_new(&f.pc, &err);
	assert_int_equal(rcpt(&f, "alice@virtual.test", "451 4.3.0"), SMTPD_TEMPFAIL);
	/* a missing one is simply "no accounts" */
	smtpd_policy_free(&f.p);
	snprintf(path, sizeof(path), "%s/missing.lmdb", f.dir);
	f.pc.accounts_db = path;
	f.pc.aliases = NULL;
	f.p = smtpd_policy_new(&f.pc, &err);
	assert_int_equal(rcpt(&f, "alice@virtual.test", "554 5.7.1"), SMTPD_REJECT);
	rcpt(&f, "root@example.test", NULL);
	buf_free(&err);
	pfx_done(&f);
}

static enum smtpd_verdict sender(struct pfx *f, const char *login, const char *addr)
{
	struct buf reply = BUF_INIT(1024);
	f->ss.auth_user = (char *)login;
	enum smtpd_verdict v = smtpd_policy_sender(f->p, &f->ss, addr, &reply);
	if (v != SMTPD_OK)
		assert_true(strncmp(buf_cstr(&reply), "553 5.7.1 ", 10) == 0);
	f->ss.auth_user = NULL;
	buf_free(&reply);
	return v;
}

static void test_sender_belongs_to_login(void **state)
{
	(void)state;
	struct pfx f;
	pfx_init(&f);
	assert_int_equal(sender(&f, "alice@virtual.test", "alice@virtual.test"), SMTPD_OK);
	assert_int_equal(sender(&f, "alice@virtual.test", "ALICE+list@Virtual.Test"), SMTPD_OK);
	assert_int_equal(sender(&f, "alice@virtual.test", ""), SMTPD_OK);
	assert_int_equal(sender(&f, "alice@virtual.test", "bob@virtual.test"), SMTPD_REJECT);
	assert_int_equal(sender(&f, "alice@virtual.test", "alice@virtual.test.evil"), SMTPD_REJECT);
	assert_int_equal(sender(&f, "alice@virtual.test", "alic@virtual.test"), SMTPD_REJECT);
	assert_int_equal(sender(&f, "root", "root@example.test"), SMTPD_OK);
	assert_int_equal(sender(&f, "root", "root@localhost"), SMTPD_OK);
	assert_int_equal(sender(&f, "root", "root@virtual.test"), SMTPD_REJECT);
	assert_int_equal(sender(&f, "root", "rootx@example.test"), SMTPD_REJECT);
	pfx_done(&f);
}

static void test_bad_mynetworks(void **state)
{
	(void)state;
	struct smtpd_policy_conf pc;
	struct buf err = BUF_INIT(1024);
	memset(&pc, 0, sizeof(pc));
	pc.mynetworks = "127.0.0.0/8 localhost";
	assert_null(smtpd_policy_new(&pc, &err));
	assert_non_null(strstr(buf_cstr(&err), "\"localhost\""));
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local_and_virtual_recipients),
		cmocka_unit_test(test_relay),
		cmocka_unit_test(test_new_domain_seen_at_once),
		cmocka_unit_test(test_lookup_failures_are_temporary),
		cmocka_unit_test(test_sender_belongs_to_login),
		cmocka_unit_test(test_bad_mynetworks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
