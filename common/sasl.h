/* Server side of SASL for smtpd, pop3d and imapd: strict base64, the PLAIN and LOGIN exchanges (RFC 4616 and the
 * de-facto LOGIN), the POP3 APOP digest check, and a mechanism table that says which mechanisms send the password
 * in the clear, so callers offer those only on encrypted or loopback connections. The protocol daemons run the
 * exchange; the credentials it yields go to the auth daemon to be checked. */
#ifndef POSTERN_SASL_H
#define POSTERN_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define SASL_AUTHID_MAX 255		/* authzid and authcid */
#define SASL_PASSWD_MAX 1024
#define SASL_RESPONSE_MAX 4096		/* decoded bytes of one client response */
#define SASL_APOP_DIGEST_LEN 32

/* Strict base64 (RFC 4648 alphabet, '=' padding required, no white space, unused bits zero): false on any
 * deviation or when out's cap would be passed. Appends to out. The empty string decodes to nothing. */
bool sasl_base64_decode(const char *in, size_t len, struct buf *out);
bool sasl_base64_encode(const void *in, size_t len, struct buf *out);

struct sasl_mech {
	const char *name;
	bool plaintext;		/* the password crosses the wire recoverably: needs TLS or loopback */
};
/* Case-insensitive lookup; NULL for mechanisms we do not implement. */
const struct sasl_mech *sasl_mech_find(const char *name);
bool sasl_mech_allowed(const struct sasl_mech *mech, bool encrypted, bool loopback);
/* Space-separated names of the mechanisms allowed on this connection (for EHLO / CAPABILITY); empty if none. */
void sasl_mech_list(struct buf *out, bool encrypted, bool loopback);

/* Credentials a finished exchange produced. authzid is empty or equal to authcid (we do not support acting as
 * someone else). Strings are NUL-terminated. */
struct sasl_creds {
	char authcid[SASL_AUTHID_MAX + 1];
	char passwd[SASL_PASSWD_MAX + 1];
};

/* Parse a decoded PLAIN message authzid NUL authcid NUL passwd. false with err (safe to log: no password) when
 * there are not exactly two NULs, a part is too long, authcid or passwd is empty, or authzid names someone else. */
bool sasl_plain_parse(const void *data, size_t len, struct sasl_creds *out, struct buf *err);

enum sasl_status {
	SASL_CONTINUE,	/* send the challenge (base64 text, maybe empty) and call sasl_step with the reply */
	SASL_DONE,	/* creds are filled in: check them */
	SASL_FAIL,	/* malformed exchange; err says why */
	SASL_CANCEL,	/* the client sent "*" */
};

/* One exchange in progress; zero it or call sasl_start. Holds the password: call sasl_clear when done. */
struct sasl_session {
	const struct sasl_mech *mech;
	int state;
	struct sasl_creds creds;
};

void sasl_start(struct sasl_session *s, const struct sasl_mech *mech);
/* Feed one client response as received (base64 text without CRLF). The first call passes the initial response
 * from the AUTH command, or resp == NULL when there was none; "=" there means an empty initial response.
 * challenge is reset and gets the base64 challenge to send on SASL_CONTINUE. */
enum sasl_status sasl_step(struct sasl_session *s, const char *resp, size_t len, struct buf *challenge,
                           struct buf *err);
void sasl_clear(struct sasl_session *s);	/* wipes the credentials */

/* APOP (RFC 1939): digest = lower-case hex MD5 of timestamp (the banner's <...> including brackets) followed by
 * the shared secret. verify accepts upper- or lower-case hex and compares in constant time. */
void sasl_apop_digest(const char *timestamp, const char *secret, char out[SASL_APOP_DIGEST_LEN + 1]);
bool sasl_apop_verify(const char *timestamp, const char *secret, const char *digest);

#endif
