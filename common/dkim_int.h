/* Internal to the dkim*.c files: the key structure and the raw signature operations. */
#ifndef POSTERN_DKIM_INT_H
#define POSTERN_DKIM_INT_H

#include <openssl/evp.h>

#include "dkim.h"

struct dkim_key {
	EVP_PKEY *pkey;
	enum dkim_alg alg;
};

bool dkim_pkey_sign(EVP_PKEY *pk, enum dkim_alg alg, const unsigned char hash[32], struct buf *sig);
bool dkim_pkey_verify(EVP_PKEY *pk, enum dkim_alg alg, const unsigned char hash[32], const unsigned char *sig,
                      size_t siglen);
/* SHA-256 over the selected header fields (h= names, bottom-up instances) and the signature field itself
 * (sigfield, already with an empty b= value, no final CRLF). */
bool dkim_header_hash(struct dkim_field *f, size_t nf, const char *h, size_t hlen, enum dkim_canon c,
                      const char *sigfield, size_t siglen, unsigned char hash[32]);

#endif
