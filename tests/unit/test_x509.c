/* x509: self-signed creation (files, modes, names, validity), key/certificate matching, expiry reporting. */
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
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "tls.h"
#include "x509.h"

struct paths {
	char dir[64];
	char cert[128];
	char key[128];
	char cert2[128];
	char key2[128];
};

static int setup(void **state)
{
	struct paths *p = calloc(1, sizeof(*p));
	if (!p)
		return -1;
	snprintf(p->dir, sizeof(p->dir), "/tmp/test_x509.XXXXXX");
	if (!mkdtemp(p->dir)) {
		free(p);
		return -1;
	}
	snprintf(p->cert, sizeof(p->cert), "%s/cert.pem", p->dir);
	snprintf(p->key, sizeof(p->key), "%s/key.pem", p->dir);
	snprintf(p->cert2, sizeof(p->cert2), "%s/cert2.pem", p->dir);
	snprintf(p->key2, sizeof(p->key2), "%s/key2.pem", p->dir);
	*state = p;
	return 0;
}

static int teardown(void **state)
{
	struct paths *p = *state;
	DIR *d = opendir(p->dir);
	struct dirent *e;
	char path[512];

	while (d && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", p->dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(p->dir);
	free(p);
	return 0;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Only the two files we asked for: no temporary file may be left behind. */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	while (d && (e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	if (d)
		closedir(d);
	return n;
}

static void test_create_and_inspect(void **state)
{
	struct paths *p = *state;
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	struct x509_info info;
	struct stat st;
	time_t now = time(NULL);

	assert_true(x509_create_selfsigned(p->cert, p->key, "mx.example.org", 825, (gid_t)-1, &err));
	assert_int_equal(err.len, 0);
	assert_int_equal(count_entries(p->dir), 2);
	assert_int_equal(stat(p->key, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(p->cert, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);

	assert_true(x509_cert_info(p->cert, &info, &err));
	assert_string_equal(info.subject_cn, "mx.example.org");
	/* valid from about an hour ago for 825 days */
	assert_true(info.not_before <= now && info.not_before >= now - 3700);
	long long left = x509_seconds_left(&info, now);
	assert_true(left > 825LL * 86400 - 120 && left <= 825LL * 86400 + 120);
	/* expiry is reported as negative once the date has passed */
	assert_true(x509_seconds_left(&info, info.not_after + 10) == -10);

	assert_true(x509_check_key_matches(p->cert, p->key, &err));
	assert_int_equal(err.len, 0);
	buf_free(&err);
}

static void test_names_in_certificate(void **state)
{
	struct paths *p = *state;
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	assert_true(x509_create_selfsigned(p->cert, p->key, "mail.test", 30, (gid_t)-1, &err));

	FILE *f = fopen(p->cert, "r");
	assert_non_null(f);
	X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(cert);
	assert_int_equal(X509_check_host(cert, "mail.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(cert, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_ip_asc(cert, "::1", 0), 1);
	assert_int_equal(X509_check_host(cert, "other.test", 0, 0, NULL), 0);
	/* self-signed: it verifies with its own key, and is not a CA */
	assert_int_equal(X509_verify(cert, X509_get0_pubkey(cert)), 1);
	assert_int_equal(X509_check_ca(cert), 0);
	assert_int_equal(X509_check_purpose(cert, X509_PURPOSE_SSL_SERVER, 0), 1);
	X509_free(cert);
	buf_free(&err);
}

static void test_localhost_not_duplicated(void **state)
{
	struct paths *p = *state;
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	assert_true(x509_create_selfsigned(p->cert, p->key, "localhost", 1, (gid_t)-1, &err));
	FILE *f = fopen(p->cert, "r");
	assert_non_null(f);
	X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(cert);
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	assert_non_null(names);
	assert_int_equal(sk_GENERAL_NAME_num(names), 3);	/* localhost, 127.0.0.1, ::1 */
	GENERAL_NAMES_free(names);
	X509_free(cert);
	buf_free(&err);
}

/* Names longer than a CN may hold (64) are still certified, through subjectAltName alone. */
static void test_long_hostname(void **state)
{
	struct paths *p = *state;
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	struct x509_info info;
	char host[200];

	memset(host, 'a', sizeof(host));
	for (size_t i = 60; i < sizeof(host) - 1; i += 61)
		host[i] = '.';
	host[sizeof(host) - 1] = '\0';
	assert_true(x509_create_selfsigned(p->cert, p->key, host, 10, (gid_t)-1, &err));
	assert_true(x509_cert_info(p->cert, &info, &err));
	assert_string_equal(info.subject_cn, "");
	FILE *f = fopen(p->cert, "r");
	assert_non_null(f);
	X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(cert);
	assert_int_equal(X509_check_host(cert, host, 0, 0, NULL), 1);
	X509_free(cert);
	/* exactly 64 still gets a CN */
	host[64] = '\0';
	assert_true(x509_create_selfsigned(p->cert, p->key, host, 10, (gid_t)-1, &err));
	assert_true(x509_cert_info(p->cert, &info, &err));
	assert_string_equal(info.subject_cn, host);
	/* 254 characters is not a host name */
	char huge[255];
	memset(huge, 'b', sizeof(huge));
	for (size_t i = 50; i < sizeof(huge) - 1; i += 51)
		huge[i] = '.';
	huge[sizeof(huge) - 1] = '\0';
	assert_false(x509_create_selfsigned(p->cert, p->key, huge, 10, (gid_t)-1, &err));
	buf_free(&err);
}

static void test_mismatched_key(void **state)
{
	struct paths *p = *state;
	struct buf err = BUF_INIT(BUF_NOLIMIT);

	assert_true(x509_create_selfsigned(p->cert, p->key, "a.example", 10, (gid_t)-1, &err));
	assert_true(x509_create_selfsigned(p->cert2, p->key2, "a.example", 10, (gid_t)-1, &err));
	assert_false(x509_check_key_matches(p->cert, p->key2, &err));
	assert_non_null(strstr(buf_cstr(&err), "does not match"));
	buf_reset(&err);
	assert_false(x509_check_key_matches(p->cert2, p->key, &err));
	buf_reset(&err);
	assert_true(x509_check_key_matches(p->cert2, p->key2, &err));

	/* overwriting replaces the pair atomically: the old key no longer matches the new certificate */
	assert_true(x509_create_selfsigned(p->cert, p->key2, "a.example", 10, (gid_t)-1, &err));
	assert_true(x509_check_key_matches(p->cert, p->key2, &err));
	assert_false(x509_check_key_matches(p->cert2, p->key2, &err));
	buf_free(&err);
}

static void test_key_group_mode(void **state)
{
	struct paths *p = *state;
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	struct stat st;

	assert_true(x509_create_selfsigned(p->cert, p->key, "g.example", 10, getgid(), &err));
	assert_int_equal(stat(p->key, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_gid, getgid());
	buf_free(&err);
}

static void test_bad_hostnames_refused(void **state)
{
	struct paths *p = *state;
	static const char *bad[] = { "", "a,DNS:evil.example", "a b", ".lead", "trail.", "dou..ble", "-x",
		                     "new\nline", "x/y",
		                     "a234567890123456789012345678901234567890123456789012345678901234.example" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf err = BUF_INIT(BUF_NOLIMIT);
		assert_false(x509_create_selfsigned(p->cert, p->key, bad[i], 10, (gid_t)-1, &err));
		assert_non_null(strstr(buf_cstr(&err), "not a valid host name"));
		assert_null(strchr(buf_cstr(&err), '\n'));
		buf_free(&err);
	}
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	assert_false(x509_create_selfsigned(p->cert, p->key, "ok.example", 0, (gid_t)-1, &err));
	assert_int_equal(count_entries(p->dir), 0);
	buf_free(&err);
}

static void test_unreadable_inputs(void **state)
{
	struct paths *p = *state;
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	struct x509_info info;

	/* missing file: the message names it */
	assert_false(x509_cert_info(p->cert, &info, &err));
	assert_non_null(strstr(buf_cstr(&err), p->cert));
	buf_reset(&err);

	write_text(p->cert, "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n");
	assert_false(x509_cert_info(p->cert, &info, &err));
	assert_true(err.len > 0);
	buf_reset(&err);

	assert_false(x509_cert_info_pem("", 0, &info, &err));
	buf_reset(&err);

	/* a certificate but a garbage key */
	assert_true(x509_create_selfsigned(p->cert, p->key, "k.example", 10, (gid_t)-1, &err));
	write_text(p->key, "garbage\n");
	assert_false(x509_check_key_matches(p->cert, p->key, &err));
	assert_non_null(strstr(buf_cstr(&err), p->key));
	buf_reset(&err);
	/* key and certificate swapped */
	assert_false(x509_check_key_matches(p->key, p->cert, &err));
	buf_free(&err);
}

static void test_info_from_memory(void **state)
{
	struct paths *p = *state;
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	struct x509_info info;
	char pem[8192];

	assert_true(x509_create_selfsigned(p->cert, p->key, "mem.example", 2, (gid_t)-1, &err));
	FILE *f = fopen(p->cert, "r");
	assert_non_null(f);
	size_t n = fread(pem, 1, sizeof(pem), f);
	fclose(f);
	assert_true(n > 100);
	assert_true(x509_cert_info_pem(pem, n, &info, &err));
	assert_string_equal(info.subject_cn, "mem.example");
	/* a truncated PEM is an error, not a crash */
	assert_false(x509_cert_info_pem(pem, n / 2, &info, &err));
	buf_free(&err);
}

/* Drive both ends of a handshake through memory BIOs until both finish or one fails. */
static bool handshake(SSL *client, SSL *server)
{
	for (int round = 0; round < 100; round++) {
		int c = SSL_do_handshake(client), sv = SSL_do_handshake(server);
		if (c == 1 && sv == 1)
			return true;
		if ((c <= 0 && SSL_get_error(client, c) != SSL_ERROR_WANT_READ) ||
		    (sv <= 0 && SSL_get_error(server, sv) != SSL_ERROR_WANT_READ))
			return false;
	}
	return false;
}

/* The generated pair is usable by the TLS module, and a client that trusts the certificate verifies it for the
 * host name, localhost and 127.0.0.1 -- but not for another name. */
static void test_tls_handshake(void **state)
{
	struct paths *p = *state;
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	static const char *names[] = { "mx.example.org", "localhost", "127.0.0.1", "other.example.org" };

	assert_true(x509_create_selfsigned(p->cert, p->key, "mx.example.org", 30, (gid_t)-1, &err));
	SSL_CTX *sctx = tls_server_ctx_new(p->cert, p->key, &err);
	assert_non_null(sctx);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
		assert_non_null(cctx);
		assert_int_equal(SSL_CTX_load_verify_locations(cctx, p->cert, NULL), 1);
		SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
		SSL *client = SSL_new(cctx), *server = SSL_new(sctx);
		BIO *cb, *sb;
		assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
		SSL_set_bio(client, cb, cb);
		SSL_set_bio(server, sb, sb);
		SSL_set_connect_state(client);
		SSL_set_accept_state(server);
		if (i == 2)
			assert_int_equal(X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(client), names[i]), 1);
		else
			assert_int_equal(SSL_set1_host(client, names[i]), 1);
		bool ok = handshake(client, server);
		if (i < 3) {
			assert_true(ok);
			assert_int_equal(SSL_get_verify_result(client), X509_V_OK);
		} else {
			assert_false(ok);
			assert_int_equal(SSL_get_verify_result(client), X509_V_ERR_HOSTNAME_MISMATCH);
		}
		SSL_free(client);
		SSL_free(server);
		SSL_CTX_free(cctx);
	}
	tls_ctx_free(&sctx);
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_and_inspect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names_in_certificate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_localhost_not_duplicated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_hostname, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mismatched_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_group_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_hostnames_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable_inputs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_info_from_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_handshake, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
