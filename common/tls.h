/* OpenSSL contexts with Postern's policy (TLS 1.2 or newer, forward-secret AEAD ciphers, no compression, no
 * resumption state shared between processes) and OpenSSL error reporting into a buf. Daemons that terminate TLS
 * build a server context at start-up; the smtp client builds a client context; stream.c runs the handshakes. */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "buf.h"

/* Loads a PEM certificate chain (leaf first) and its private key and checks that they match. NULL with the
 * reason in err (file names and OpenSSL's words) on failure. */
SSL_CTX *tls_server_ctx_new(const char *cert_chain_file, const char *key_file, struct buf *err);
/* The same, in two steps, for a daemon that needs TLS only for some of its clients: tls_pem_load reads the
 * files (at start-up, while the key is still readable; no OpenSSL work, so a process that never does TLS does
 * not pay for its set-up in time or memory), tls_pem_ctx builds the context on first use and keeps it. */
struct tls_pem;
struct tls_pem *tls_pem_load(const char *cert_chain_file, const char *key_file, struct buf *err);
SSL_CTX *tls_pem_ctx(struct tls_pem *p, struct buf *err);
void tls_pem_free(struct tls_pem **p);
/* cafile: PEM bundle of trusted roots, or NULL for the system store. The handshake does not fail on an
 * unverified peer (opportunistic STARTTLS); check tls_verify_result() afterwards. */
SSL_CTX *tls_client_ctx_new(const char *cafile, struct buf *err);
void tls_ctx_free(SSL_CTX **ctxp);

/* After a client handshake: true when the peer sent a certificate that chains to a trusted root and matches the
 * name given to stream_starttls_client(); otherwise false with the reason in err. */
bool tls_verify_result(SSL *ssl, struct buf *err);
/* Subject common name of the peer certificate into out (printable), false when there is none. */
bool tls_peer_cn(SSL *ssl, struct buf *out);

/* Drains OpenSSL's error queue into b as "; "-separated text (appended); "no OpenSSL error" when empty.
 * Returns b's text. */
const char *tls_errors(struct buf *b);

#endif
