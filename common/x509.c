/* Self-signed certificate creation and certificate/key inspection; see x509.h. */
#include "x509.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "alloc.h"
#include "fsutil.h"
#include "log.h"
#include "str.h"

#define X509_HOSTNAME_MAX 253
#define X509_CN_MAX 64	/* ub-common-name, RFC 5280 */
#define X509_FILE_MAX (1024 * 1024)	/* a certificate chain or key file is never larger */

/* Append "what: " and the newest OpenSSL error (or "unknown error") to err, and clear the error queue so a
 * later failure does not report this one. */
static void ossl_err(struct buf *err, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char text[256];

	if (e) {
		ERR_error_string_n(e, text, sizeof(text));
		buf_printf(err, "%s: %s", what, text);
	} else {
		buf_printf(err, "%s: unknown OpenSSL error", what);
	}
	ERR_clear_error();
}

static bool hostname_ok(const char *h)
{
	size_t n = strlen(h), label = 0;

	if (n == 0 || n > X509_HOSTNAME_MAX || h[0] == '.' || h[0] == '-' || h[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)h[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '.'))
			return false;
		if (c == '.' && h[i + 1] == '.')
			return false;
		label = c == '.' ? 0 : label + 1;
		if (label > 63)
			return false;
	}
	return true;
}

/* Write data to path crash-safely: a temporary file beside it (O_EXCL, final mode and group set before any
 * byte is written so a key is never briefly readable), fsync, rename, fsync the directory. */
static bool write_atomic(const char *path, const void *data, size_t len, mode_t mode, gid_t gid, struct buf *err)
{
	struct buf tmp = BUF_INIT(PATH_MAX);
	struct buf dir = BUF_INIT(PATH_MAX);
	const char *slash = strrchr(path, '/');
	const char *p = data;
	int fd = -1, dfd = -1;
	bool ok = false;

	if (!buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid())) {
		buf_printf(err, "%s: path too long", path);
		goto out;
	}
	if (slash == path)
		buf_puts(&dir, "/");
	else if (slash)
		buf_append(&dir, path, (size_t)(slash - path));
	else
		buf_puts(&dir, ".");
	(void)unlink(tmp.data);	/* a leftover of a crashed run with the same pid */
	fd = open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		buf_printf(err, "create %s: %s", tmp.data, strerror(errno));
		goto out;
	}
	if (gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) < 0) {
		buf_printf(err, "chown %s: %s", tmp.data, strerror(errno));
		goto out;
	}
	if (fchmod(fd, mode) < 0) {
		buf_printf(err, "chmod %s: %s", tmp.data, strerror(errno));
		goto out;
	}
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			buf_printf(err, "write %s: %s", tmp.data, w < 0 ? strerror(errno) : "short write");
			goto out;
		}
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) < 0) {
		buf_printf(err, "fsync %s: %s", tmp.data, strerror(errno));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		buf_printf(err, "close %s: %s", tmp.data, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp.data, path) < 0) {
		buf_printf(err, "rename %s to %s: %s", tmp.data, path, strerror(errno));
		goto out;
	}
	if ((dfd = open(buf_cstr(&dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(dfd) < 0) {
		buf_printf(err, "fsync directory %s: %s", buf_cstr(&dir), strerror(errno));
		goto out;
	}
	ok = true;
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (!ok && tmp.data)
		(void)unlink(tmp.data);
	buf_free(&tmp);
	buf_free(&dir);
	return ok;
}

/* Serialize a BIO_s_mem's contents to path; the memory is wiped afterwards because it may hold a key. */
static bool write_bio(BIO *bio, const char *path, mode_t mode, gid_t gid, struct buf *err)
{
	char *data;
	long n = BIO_get_mem_data(bio, &data);

	if (n <= 0) {
		buf_printf(err, "%s: nothing to write", path);
		return false;
	}
	bool ok = write_atomic(path, data, (size_t)n, mode, gid, err);
	OPENSSL_cleanse(data, (size_t)n);
	return ok;
}

static bool add_ext(X509 *cert, int nid, const char *value, struct buf *err)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL) {
		ossl_err(err, "certificate extension");
		return false;
	}
	int ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	if (!ok) {
		ossl_err(err, "add certificate extension");
		return false;
	}
	return true;
}

static bool push_dns(GENERAL_NAMES *names, const char *dns)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();

	if (!gn || !s || !ASN1_STRING_set(s, dns, (int)strlen(dns))) {
		GENERAL_NAME_free(gn);
		ASN1_IA5STRING_free(s);
		return false;
	}
	GENERAL_NAME_set0_value(gn, GEN_DNS, s);
	if (!sk_GENERAL_NAME_push(names, gn)) {
		GENERAL_NAME_free(gn);
		return false;
	}
	return true;
}

static bool push_ip(GENERAL_NAMES *names, const char *ip)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_OCTET_STRING *a = a2i_IPADDRESS(ip);

	if (!gn || !a) {
		GENERAL_NAME_free(gn);
		ASN1_OCTET_STRING_free(a);
		return false;
	}
	GENERAL_NAME_set0_value(gn, GEN_IPADD, a);
	if (!sk_GENERAL_NAME_push(names, gn)) {
		GENERAL_NAME_free(gn);
		return false;
	}
	return true;
}

/* subjectAltName is built from GENERAL_NAME objects rather than a "DNS:..." config string, so no hostname can
 * smuggle extra entries in through a comma. */
static bool add_san(X509 *cert, const char *hostname, struct buf *err)
{
	GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
	bool ok = names && push_dns(names, hostname) &&
	          (strcmp(hostname, "localhost") == 0 || push_dns(names, "localhost")) &&
	          push_ip(names, "127.0.0.1") && push_ip(names, "::1") &&
	          X509_add1_ext_i2d(cert, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1;

	GENERAL_NAMES_free(names);
	if (!ok)
		ossl_err(err, "subjectAltName");
	return ok;
}

static bool set_serial(X509 *cert, struct buf *err)
{
	unsigned char rnd[16];
	BIGNUM *bn = NULL;
	bool ok = false;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		ossl_err(err, "random serial number");
		return false;
	}
	rnd[0] &= 0x7f;	/* serials must be positive */
	rnd[0] |= 0x01;	/* and non-zero */
	if ((bn = BN_bin2bn(rnd, sizeof(rnd), NULL)) != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)))
		ok = true;
	else
		ossl_err(err, "serial number");
	BN_free(bn);
	return ok;
}

bool x509_create_selfsigned(const char *cert_path, const char *key_path, const char *hostname, int days,
                            gid_t key_gid, struct buf *err)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	X509_NAME *name;
	BIO *kbio = NULL, *cbio = NULL;
	bool ok = false;

	if (!hostname_ok(hostname)) {
		buf_printf(err, "certificate: '%s' is not a valid host name", log_safe(hostname, strlen(hostname), 80));
		return false;
	}
	if (days <= 0 || days > 36500) {
		buf_printf(err, "certificate: validity of %d days is out of range", days);
		return false;
	}
	ERR_clear_error();
	if ((key = EVP_EC_gen("P-256")) == NULL) {
		ossl_err(err, "generate EC P-256 key");
		goto out;
	}
	if ((cert = X509_new()) == NULL || !X509_set_version(cert, X509_VERSION_3)) {
		ossl_err(err, "new certificate");
		goto out;
	}
	if (!set_serial(cert, err))
		goto out;
	/* An hour of back-dating tolerates clients whose clocks run a little slow. */
	if (!X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
	    !X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, NULL) || !X509_set_pubkey(cert, key)) {
		ossl_err(err, "certificate validity");
		goto out;
	}
	/* A CN holds at most 64 characters; longer names live only in subjectAltName, which is what clients check. */
	name = X509_get_subject_name(cert);
	if ((strlen(hostname) <= X509_CN_MAX &&
	     !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname, -1, -1, 0)) ||
	    !X509_set_issuer_name(cert, name)) {
		ossl_err(err, "certificate subject");
		goto out;
	}
	if (!add_ext(cert, NID_basic_constraints, "critical,CA:FALSE", err) ||
	    !add_ext(cert, NID_key_usage, "critical,digitalSignature", err) ||
	    !add_ext(cert, NID_ext_key_usage, "serverAuth", err) ||
	    !add_ext(cert, NID_subject_key_identifier, "hash", err) || !add_san(cert, hostname, err))
		goto out;
	if (!X509_sign(cert, key, EVP_sha256())) {
		ossl_err(err, "sign certificate");
		goto out;
	}
	if ((kbio = BIO_new(BIO_s_mem())) == NULL || (cbio = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_PrivateKey(kbio, key, NULL, NULL, 0, NULL, NULL) || !PEM_write_bio_X509(cbio, cert)) {
		ossl_err(err, "encode certificate");
		goto out;
	}
	/* Key first: a certificate file without its key would look like a finished, broken installation. */
	if (!write_bio(kbio, key_path, key_gid == (gid_t)-1 ? 0600 : 0640, key_gid, err) ||
	    !write_bio(cbio, cert_path, 0644, (gid_t)-1, err))
		goto out;
	ok = true;
out:
	BIO_free(kbio);
	BIO_free(cbio);
	X509_free(cert);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return ok;
}

static bool read_file(const char *path, struct buf *out, struct buf *err)
{
	if (fsutil_read_file(path, X509_FILE_MAX, out))
		return true;
	buf_printf(err, "%s: %s", path, errno == EFBIG ? "file too large" : strerror(errno));
	return false;
}

static X509 *parse_cert(const void *pem, size_t len, const char *what, struct buf *err)
{
	X509 *cert = NULL;
	BIO *bio;

	if (len > X509_FILE_MAX) {
		buf_printf(err, "%s: larger than %d bytes", what, X509_FILE_MAX);
		return NULL;
	}
	ERR_clear_error();
	if ((bio = BIO_new_mem_buf(pem, (int)len)) != NULL)
		cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!cert)
		ossl_err(err, what);
	ERR_clear_error();
	return cert;
}

static bool asn1_to_time(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return false;
	*out = timegm(&tm);
	return true;
}

static bool fill_info(X509 *cert, struct x509_info *info, const char *what, struct buf *err)
{
	X509_NAME *subject = X509_get_subject_name(cert);
	int idx;

	memset(info, 0, sizeof(*info));
	if (!asn1_to_time(X509_get0_notBefore(cert), &info->not_before) ||
	    !asn1_to_time(X509_get0_notAfter(cert), &info->not_after)) {
		buf_printf(err, "%s: unreadable validity dates", what);
		ERR_clear_error();
		return false;
	}
	if (subject && (idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1)) >= 0) {
		ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
		unsigned char *utf8 = NULL;
		int n = s ? ASN1_STRING_to_UTF8(&utf8, s) : -1;
		if (n > 0) {
			/* The CN is shown to an administrator: keep it printable. */
			struct buf cn = BUF_INIT(BUF_NOLIMIT);
			buf_append_printable(&cn, utf8, (size_t)n, 120);
			str_copy(info->subject_cn, sizeof(info->subject_cn), buf_cstr(&cn));
			buf_free(&cn);
		}
		OPENSSL_free(utf8);
	}
	ERR_clear_error();
	return true;
}

bool x509_cert_info_pem(const void *pem, size_t len, struct x509_info *info, struct buf *err)
{
	X509 *cert = parse_cert(pem, len, "certificate", err);
	bool ok;

	if (!cert)
		return false;
	ok = fill_info(cert, info, "certificate", err);
	X509_free(cert);
	return ok;
}

bool x509_cert_info(const char *cert_path, struct x509_info *info, struct buf *err)
{
	struct buf data = BUF_INIT(X509_FILE_MAX);
	X509 *cert;
	bool ok = false;

	if (!read_file(cert_path, &data, err))
		goto out;
	if ((cert = parse_cert(data.data, data.len, cert_path, err)) == NULL)
		goto out;
	ok = fill_info(cert, info, cert_path, err);
	X509_free(cert);
out:
	buf_free(&data);
	return ok;
}

long long x509_seconds_left(const struct x509_info *info, time_t now)
{
	return (long long)info->not_after - (long long)now;
}

bool x509_check_key_matches(const char *cert_path, const char *key_path, struct buf *err)
{
	struct buf cdata = BUF_INIT(X509_FILE_MAX);
	struct buf kdata = BUF_INIT(X509_FILE_MAX);
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	BIO *bio = NULL;
	bool ok = false;

	if (!read_file(cert_path, &cdata, err) || (cert = parse_cert(cdata.data, cdata.len, cert_path, err)) == NULL)
		goto out;
	if (!read_file(key_path, &kdata, err))
		goto out;
	ERR_clear_error();
	if ((bio = BIO_new_mem_buf(kdata.data, (int)kdata.len)) != NULL)
		key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (!key) {
		ossl_err(err, key_path);
		goto out;
	}
	if (EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1) {
		buf_printf(err, "%s does not match the certificate in %s", key_path, cert_path);
		goto out;
	}
	ok = true;
out:
	BIO_free(bio);
	EVP_PKEY_free(key);
	X509_free(cert);
	if (kdata.data)
		OPENSSL_cleanse(kdata.data, kdata.len);
	buf_free(&kdata);
	buf_free(&cdata);
	ERR_clear_error();
	return ok;
}
