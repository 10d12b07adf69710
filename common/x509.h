/* Certificates for an instance: `postern init` creates a self-signed server certificate and key here, and
 * `postern check` uses the inspection functions to verify that the configured key matches the certificate and
 * to warn before the certificate expires. Only OpenSSL's public APIs are used; nothing here touches a peer. */
#ifndef POSTERN_X509_H
#define POSTERN_X509_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"

#define X509_SELFSIGNED_DAYS 825	/* the longest validity clients still accept for a server certificate */

/* Create an EC P-256 key and a self-signed certificate for hostname (CN, and subjectAltName DNS:hostname,
 * DNS:localhost, IP:127.0.0.1, IP:::1), valid from now for days days. Both files are written atomically (temp
 * file, fsync, rename, fsync directory). The key gets mode 0600, or 0640 with group key_gid when key_gid is not
 * (gid_t)-1 (root installs: readable by the mail_owner group). hostname must be a DNS name (letters, digits,
 * '-', '.'). Returns false with a message in err. */
bool x509_create_selfsigned(const char *cert_path, const char *key_path, const char *hostname, int days,
                            gid_t key_gid, struct buf *err);

/* What `postern check` reports about a certificate (the first one of a chain file). */
struct x509_info {
	time_t not_before;
	time_t not_after;
	char subject_cn[256];	/* "" when the subject has no CN; cut to fit */
};

/* Read the first certificate of a PEM file or PEM bytes; false with a message in err. */
bool x509_cert_info(const char *cert_path, struct x509_info *info, struct buf *err);
bool x509_cert_info_pem(const void *pem, size_t len, struct x509_info *info, struct buf *err);
/* Seconds until the certificate expires (negative when it already has). */
long long x509_seconds_left(const struct x509_info *info, time_t now);

/* True when the private key in key_path belongs to the first certificate in cert_path. false with a message
 * in err when it does not, or when either file cannot be read. */
bool x509_check_key_matches(const char *cert_path, const char *key_path, struct buf *err);

#endif
