/* DKIM private keys: PEM loading, generation for "postern dkim keygen", and the public half as the DNS TXT
 * record to publish. Everything goes through OpenSSL's EVP interface. */
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "dkim.h"
#include "dkim_int.h"
#include "log.h"

#define DKIM_MAX_KEYFILE 65536

static void ssl_reason(struct buf *err, const char *what)
{
	unsigned long e = ERR_get_error();
	char msg[256];
	ERR_error_string_n(e, msg, sizeof(msg));
	buf_printf(err, "%s: %s", what, e ? msg : "unknown error");
	ERR_clear_error();
}

static struct dkim_key *wrap(EVP_PKEY *pk, struct buf *err)
{
	struct dkim_key *k;
	int id = EVP_PKEY_get_base_id(pk);

	if (id == EVP_PKEY_RSA) {
		if (EVP_PKEY_get_bits(pk) < 1024) {
			buf_puts(err, "RSA key shorter than 1024 bits");
			EVP_PKEY_free(pk);
			return NULL;
		}
	} else if (id != EVP_PKEY_ED25519) {
		buf_puts(err, "key is neither RSA nor Ed25519");
		EVP_PKEY_free(pk);
		return NULL;
	}
	k = xcalloc(1, sizeof(*k));
	k->pkey = pk;
	k->alg = id == EVP_PKEY_RSA ? DKIM_RSA_SHA256 : DKIM_ED25519_SHA256;
	return k;
}

struct dkim_key *dkim_key_from_pem(const char *pem, size_t len, struct buf *err)
{
	if (len > DKIM_MAX_KEYFILE) {
		buf_puts(err, "key file too large");
		return NULL;
	}
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		fatalx("dkim: out of memory");
	EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!pk) {
		ssl_reason(err, "not a PEM private key");
		return NULL;
	}
	return wrap(pk, err);
}

struct dkim_key *dkim_key_load(const char *path, struct buf *err)
{
	FILE *f = fopen(path, "r");
	struct buf b = BUF_INIT(DKIM_MAX_KEYFILE);
	char chunk[4096];
	size_t n;
	bool ok = true;

	if (!f) {
		buf_printf(err, "%s: %m", path);
		return NULL;
	}
	while (ok && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ok = buf_append(&b, chunk, n);
	if (ferror(f))
		ok = false;
	fclose(f);
	struct dkim_key *k = NULL;
	if (!ok) {
		buf_printf(err, "%s: cannot read (or larger than %u bytes)", path, DKIM_MAX_KEYFILE);
	} else {
		k = dkim_key_from_pem(buf_cstr(&b), b.len, err);
		if (!k) {
			struct buf e2 = BUF_INIT(512);
			buf_printf(&e2, "%s: %s", path, buf_cstr(err));
			buf_reset(err);
			buf_puts(err, buf_cstr(&e2));
			buf_free(&e2);
		}
	}
	OPENSSL_cleanse(b.data, b.cap);
	buf_free(&b);
	return k;
}

struct dkim_key *dkim_key_generate(enum dkim_alg alg)
{
	EVP_PKEY *pk = alg == DKIM_RSA_SHA256 ? EVP_RSA_gen(2048) : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	struct buf err = BUF_INIT(256);
	if (!pk)
		fatalx("dkim: key generation failed");
	struct dkim_key *k = wrap(pk, &err);
	if (!k)
		panic("dkim: generated key rejected: %s", buf_cstr(&err));
	buf_free(&err);
	return k;
}

enum dkim_alg dkim_key_alg(const struct dkim_key *k)
{
	return k->alg;
}

bool dkim_key_pem(const struct dkim_key *k, struct buf *out)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p;
	bool ok;
	if (!bio)
		fatalx("dkim: out of memory");
	ok = PEM_write_bio_PKCS8PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL) == 1;
	long n = BIO_get_mem_data(bio, &p);
	ok = ok && n > 0 && buf_append(out, p, (size_t)n);
	BIO_free(bio);
	return ok;
}

bool dkim_key_dns_record(const struct dkim_key *k, struct buf *out)
{
	unsigned char *der = NULL, raw[32];
	size_t rawlen = sizeof(raw);
	bool ok;

	if (k->alg == DKIM_ED25519_SHA256) {
		/* RFC 8463 section 4: p= is the bare 32-byte public key */
		if (EVP_PKEY_get_raw_public_key(k->pkey, raw, &rawlen) != 1)
			return false;
		return buf_puts(out, "v=DKIM1; k=ed25519; p=") && dkim_b64_encode(raw, rawlen, out);
	}
	int n = i2d_PUBKEY(k->pkey, &der);
	if (n <= 0)
		return false;
	ok = buf_puts(out, "v=DKIM1; k=rsa; p=") && dkim_b64_encode(der, (size_t)n, out);
	OPENSSL_free(der);
	return ok;
}

void dkim_key_free(struct dkim_key **kp)
{
	if (!*kp)
		return;
	EVP_PKEY_free((*kp)->pkey);
	xfree(kp);
}

/* Sign or verify the SHA-256 header hash: RSA PKCS#1 v1.5 over the hash with the SHA-256 DigestInfo, and
 * Ed25519 (pure) over the 32 hash bytes as RFC 8463 section 3 says. */
bool dkim_pkey_sign(EVP_PKEY *pk, enum dkim_alg alg, const unsigned char hash[32], struct buf *sig)
{
	size_t n = 0;
	bool ok = false;
	if (alg == DKIM_ED25519_SHA256) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		if (ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, pk) == 1 &&
		    EVP_DigestSign(ctx, NULL, &n, hash, 32) == 1 && buf_reserve(sig, n) &&
		    EVP_DigestSign(ctx, (unsigned char *)sig->data + sig->len, &n, hash, 32) == 1) {
			sig->len += n;
			ok = true;
		}
		EVP_MD_CTX_free(ctx);
	} else {
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);
		if (ctx && EVP_PKEY_sign_init(ctx) == 1 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
		    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
		    EVP_PKEY_sign(ctx, NULL, &n, hash, 32) == 1 && buf_reserve(sig, n) &&
		    EVP_PKEY_sign(ctx, (unsigned char *)sig->data + sig->len, &n, hash, 32) == 1) {
			sig->len += n;
			ok = true;
		}
		EVP_PKEY_CTX_free(ctx);
	}
	ERR_clear_error();
	return ok;
}

bool dkim_pkey_verify(EVP_PKEY *pk, enum dkim_alg alg, const unsigned char hash[32], const unsigned char *sig,
                      size_t siglen)
{
	bool ok = false;
	if (alg == DKIM_ED25519_SHA256) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
		     EVP_DigestVerify(ctx, sig, siglen, hash, 32) == 1;
		EVP_MD_CTX_free(ctx);
	} else {
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);
		ok = ctx && EVP_PKEY_verify_init(ctx) == 1 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
		     EVP_PKEY_verify(ctx, sig, siglen, hash, 32) == 1;
		EVP_PKEY_CTX_free(ctx);
	}
	ERR_clear_error();
	return ok;
}
