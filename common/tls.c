/* TLS contexts and OpenSSL error text: see tls.h. */
#include "tls.h"

#include <errno.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "alloc.h"
#include "fsutil.h"
#include "log.h"

/* TLS 1.2 suites: ECDHE/DHE key exchange with AEAD only (TLS 1.3 suites are all of that kind already). Mail
 * peers are old and varied, but nothing that lacks these deserves more than plaintext fallback. */
#define TLS_CIPHERS_12 \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

const char *tls_errors(struct buf *b)
{
	unsigned long e;
	const char *file, *func, *data;
	int line, flags;
	bool any = false;

	while ((e = ERR_get_error_all(&file, &line, &func, &data, &flags)) != 0) {
		char text[256];

		ERR_error_string_n(e, text, sizeof(text));
		(void)buf_printf(b, "%s%s", any ? "; " : "", text);
		if (data && (flags & ERR_TXT_STRING) && *data)
			(void)buf_printf(b, " (%s)", data);
		any = true;
	}
	if (!any)
		(void)buf_puts(b, "no OpenSSL error");
	return buf_cstr(b);
}

/* Settings both sides share. */
static SSL_CTX *ctx_common(const SSL_METHOD *method, struct buf *err)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	ctx = SSL_CTX_new(method);
	if (ctx == NULL) {
		(void)buf_puts(err, "SSL_CTX_new: ");
		tls_errors(err);
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) || !SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12)) {
		(void)buf_puts(err, "TLS policy: ");
		tls_errors(err);
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* Compression leaks plaintext lengths (CRIME); renegotiation is a CPU lever for clients and a source of
	 * state confusion we do not need. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	return ctx;
}

struct tls_pem {
	char *cert_file, *key_file;	/* for messages */
	struct buf cert, key;		/* the files' bytes; key wiped when freed */
	SSL_CTX *ctx;			/* made on first use */
};

/* PEM files are small; anything bigger is not a certificate chain. */
#define PEM_MAX (1024 * 1024)

struct tls_pem *tls_pem_load(const char *cert_chain_file, const char *key_file, struct buf *err)
{
	struct tls_pem *p = xcalloc(1, sizeof(*p));

	p->cert_file = xstrdup(cert_chain_file);
	p->key_file = xstrdup(key_file);
	buf_init(&p->cert, PEM_MAX);
	buf_init(&p->key, PEM_MAX);
	if (!fsutil_read_file(cert_chain_file, PEM_MAX, &p->cert)) {
		(void)buf_printf(err, "certificate chain %s: %s", cert_chain_file, strerror(errno));
		tls_pem_free(&p);
	} else if (!fsutil_read_file(key_file, PEM_MAX, &p->key)) {
		(void)buf_printf(err, "private key %s: %s", key_file, strerror(errno));
		tls_pem_free(&p);
	}
	return p;
}

void tls_pem_free(struct tls_pem **pp)
{
	struct tls_pem *p = *pp;
	if (p == NULL)
		return;
	if (p->key.data)
		OPENSSL_cleanse(p->key.data, p->key.len);
	buf_free(&p->key);
	buf_free(&p->cert);
	SSL_CTX_free(p->ctx);
	free(p->cert_file);
	free(p->key_file);
	free(p);
	*pp = NULL;
}

/* The leaf certificate, then the rest of the chain, then the key, from memory. */
static bool use_pem(SSL_CTX *ctx, const struct tls_pem *p, struct buf *err)
{
	BIO *b = BIO_new_mem_buf(p->cert.data ? p->cert.data : "", (int)p->cert.len);
	X509 *x = b ? PEM_read_bio_X509_AUX(b, NULL, NULL, NULL) : NULL;
	EVP_PKEY *k = NULL;
	bool ok = false;

	if (x == NULL || SSL_CTX_use_certificate(ctx, x) != 1) {
		(void)buf_printf(err, "certificate chain %s: ", p->cert_file);
		goto out;
	}
	X509_free(x);
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
			(void)buf_printf(err, "certificate chain %s: ", p->cert_file);
			goto out;
		}
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
		(void)buf_printf(err, "certificate chain %s: ", p->cert_file);
		goto out;
	}
	ERR_clear_error();	/* the end of the chain */
	BIO_free(b);
	b = BIO_new_mem_buf(p->key.data ? p->key.data : "", (int)p->key.len);
	if (b == NULL || (k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) == NULL) {
		(void)buf_printf(err, "private key %s: ", p->key_file);
		goto out;
	}
	if (SSL_CTX_use_PrivateKey(ctx, k) != 1) {
		/* OpenSSL notices a key of another certificate here already; say it in words an admin acts on. */
		if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
			(void)buf_printf(err, "private key %s does not match certificate %s: ", p->key_file,
					 p->cert_file);
		else
			(void)buf_printf(err, "private key %s: ", p->key_file);
		goto out;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		(void)buf_printf(err, "private key %s does not match certificate %s: ", p->key_file, p->cert_file);
		goto out;
	}
	ok = true;
	x = NULL;
out:
	X509_free(x);
	EVP_PKEY_free(k);
	BIO_free(b);
	if (!ok)
		tls_errors(err);
	return ok;
}

SSL_CTX *tls_pem_ctx(struct tls_pem *p, struct buf *err)
{
	if (p->ctx)
		return p->ctx;
	SSL_CTX *ctx = ctx_common(TLS_server_method(), err);
	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	/* Each process serves one client and exits, so a session cache or tickets would only add key material
	 * that outlives the connection; TLS 1.3 tickets are switched off separately. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (!use_pem(ctx, p, err)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return p->ctx = ctx;
}

SSL_CTX *tls_server_ctx_new(const char *cert_chain_file, const char *key_file, struct buf *err)
{
	struct tls_pem *p = tls_pem_load(cert_chain_file, key_file, err);
	SSL_CTX *ctx = p ? tls_pem_ctx(p, err) : NULL;

	if (p)
		p->ctx = NULL;	/* the caller's now */
	tls_pem_free(&p);
	return ctx;
}

SSL_CTX *tls_client_ctx_new(const char *cafile, struct buf *err)
{
	SSL_CTX *ctx = ctx_common(TLS_client_method(), err);
	int ok;

	if (ctx == NULL)
		return NULL;
	ok = cafile ? SSL_CTX_load_verify_locations(ctx, cafile, NULL) : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		(void)buf_printf(err, "trusted certificates %s: ", cafile ? cafile : "(system store)");
		tls_errors(err);
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* Verification runs and its result is kept; the policy (require or just log) is the caller's. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

void tls_ctx_free(SSL_CTX **ctxp)
{
	SSL_CTX_free(*ctxp);
	*ctxp = NULL;
}

bool tls_verify_result(SSL *ssl, struct buf *err)
{
	X509 *peer;
	long v;

	if (ssl == NULL) {
		(void)buf_puts(err, "no TLS session");
		return false;
	}
	peer = SSL_get1_peer_certificate(ssl);
	if (peer == NULL) {
		(void)buf_puts(err, "peer sent no certificate");
		return false;
	}
	X509_free(peer);
	v = SSL_get_verify_result(ssl);
	if (v != X509_V_OK) {
		(void)buf_printf(err, "certificate verification failed: %s", X509_verify_cert_error_string(v));
		return false;
	}
	return true;
}

bool tls_peer_cn(SSL *ssl, struct buf *out)
{
	X509 *peer;
	X509_NAME *name;
	int idx;
	bool ok = false;

	if (ssl == NULL || (peer = SSL_get1_peer_certificate(ssl)) == NULL)
		return false;
	name = X509_get_subject_name(peer);
	idx = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
	if (idx >= 0) {
		ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
		/* The name is peer-chosen bytes: escaped before anyone logs or prints it. */
		ok = buf_append_printable(out, ASN1_STRING_get0_data(d), (size_t)ASN1_STRING_length(d), 256);
	}
	X509_free(peer);
	return ok;
}
