/* DKIM (RFC 6376, RFC 8463): signing outgoing mail with rsa-sha256 or ed25519-sha256 and verifying every
 * DKIM-Signature of incoming mail. Called by smtpd after the data phase (verify: results for DMARC and
 * Authentication-Results) and by the outbound path for mail from our own users (sign). Messages are whole
 * header+body byte ranges with CRLF or bare LF line ends (a bare LF counts as CRLF, as on the wire). */
#ifndef POSTERN_DKIM_H
#define POSTERN_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct buf;
struct dns_options;

/* ---- tag lists (section 3.2), shared by signatures and key records ---- */
#define DKIM_MAX_TAGS 32
struct dkim_tag {
	const char *name, *value;	/* pointers into the caller's text */
	size_t nlen, vlen;		/* value with surrounding folding white space removed */
};
struct dkim_taglist {
	size_t n;
	struct dkim_tag tags[DKIM_MAX_TAGS];
};
/* Strict parse: tag names ALPHA *(ALPHA/DIGIT/"_"), values of VALCHARs with inner FWS, no tag twice, at most
 * DKIM_MAX_TAGS tags, an optional final ';'. False with a reason in err. */
bool dkim_taglist_parse(const char *text, size_t len, struct dkim_taglist *tl, struct buf *err);
const struct dkim_tag *dkim_taglist_get(const struct dkim_taglist *tl, const char *name);

/* ---- canonicalisation (section 3.4) ---- */
enum dkim_canon { DKIM_CANON_SIMPLE, DKIM_CANON_RELAXED };

/* One header field (name, colon, value with its folding, the final line end) canonicalised and appended;
 * with_crlf false leaves off the final CRLF (the DKIM-Signature field being signed). */
bool dkim_canon_header(enum dkim_canon c, const char *field, size_t len, bool with_crlf, struct buf *out);

/* Streaming body canonicalisation into a SHA-256 hash. limit caps the canonical bytes hashed (l=);
 * UINT64_MAX for none. Trailing empty lines are held back until more text arrives. */
struct dkim_body;
struct dkim_body *dkim_body_new(enum dkim_canon c, uint64_t limit);
void dkim_body_update(struct dkim_body *b, const char *p, size_t len);
/* Ends the body: hash (32 bytes) and the count of canonical bytes in the whole body (to compare with l=). */
void dkim_body_final(struct dkim_body *b, unsigned char hash[32], uint64_t *total);
void dkim_body_free(struct dkim_body **b);

/* ---- keys ---- */
enum dkim_alg { DKIM_RSA_SHA256, DKIM_ED25519_SHA256 };
struct dkim_key;	/* a private key for signing */
/* Load a PEM private key (RSA of at least 1024 bits, or Ed25519); NULL with a reason in err. */
struct dkim_key *dkim_key_load(const char *path, struct buf *err);
struct dkim_key *dkim_key_from_pem(const char *pem, size_t len, struct buf *err);
/* Generate: RSA 2048 or Ed25519. */
struct dkim_key *dkim_key_generate(enum dkim_alg alg);
enum dkim_alg dkim_key_alg(const struct dkim_key *k);
/* PEM (PKCS#8) of the private key, and the DNS TXT record text "v=DKIM1; k=...; p=..." to publish. */
bool dkim_key_pem(const struct dkim_key *k, struct buf *out);
bool dkim_key_dns_record(const struct dkim_key *k, struct buf *out);
void dkim_key_free(struct dkim_key **k);

/* ---- signing ---- */
struct dkim_sign_options {
	const char *domain;		/* d= */
	const char *selector;		/* s= */
	const struct dkim_key *key;
	time_t now;			/* t=; 0: the current time */
	unsigned expire_secs;		/* x= is t= plus this; 0: no x= */
	enum dkim_canon hcanon, bcanon;	/* relaxed/relaxed is the usual choice */
};
/* The header names signed when present; From is listed once more than it occurs (oversigned), so a From
 * added later breaks the signature. l= is never emitted. */
extern const char *const dkim_signed_headers[];
/* Append a complete "DKIM-Signature: ...\r\n" field for msg (header block, blank line, body). */
bool dkim_sign(const struct dkim_sign_options *o, const char *msg, size_t len, struct buf *out, struct buf *err);
/* The same for a message in two pieces, head then more (smtpd: its own header lines and the client's header
 * in one buffer, the body where it was received, so the body is not copied). The whole header block must lie
 * in head. */
bool dkim_sign_parts(const struct dkim_sign_options *o, const char *head, size_t hlen, const char *more,
                     size_t mlen, struct buf *out, struct buf *err);

/* ---- verification ---- */
enum dkim_result { DKIM_NONE, DKIM_PASS, DKIM_FAIL, DKIM_NEUTRAL, DKIM_TEMPERROR, DKIM_PERMERROR };

struct dkim_sig_result {
	enum dkim_result result;
	char *domain;		/* d= (NULL when the signature could not be parsed that far) */
	char *selector;		/* s= */
	char *identity;		/* i= (or "@" d=) */
	char *b_prefix;		/* the first characters of b= for header.b */
	enum dkim_alg alg;
	bool body_limited;	/* l= was given and the body had more content than it covers */
	char reason[160];
};

/* The key lookup: fill rec with the TXT record text of name (several records: joined with a NUL, which
 * makes the record invalid as section 3.6.2.2 wants); return the DNS status as dns.h's enum dns_status. */
typedef int dkim_key_fetch(const char *name, struct buf *rec, void *arg);
/* The default fetch through dns_lookup() with arg a const struct dns_options *. */
int dkim_fetch_dns(const char *name, struct buf *rec, void *arg);
/* What a fetch does with a TXT answer (for fetch functions doing their own lookups): the record text into rec,
 * the status returned, res freed. */
struct dns_result;
int dkim_key_record(struct dns_result *res, struct buf *rec);

/* Verify every DKIM-Signature of msg (at most max_sigs; further ones are ignored). Results are returned in
 * header order; *n is their count (0: no signature, result "none"). now 0: the current time. */
struct dkim_sig_result *dkim_verify(const char *msg, size_t len, dkim_key_fetch *fetch, void *arg, time_t now,
                                    size_t max_sigs, size_t *n);
void dkim_results_free(struct dkim_sig_result **r, size_t n);

const char *dkim_result_str(enum dkim_result r);

/* Internal to dkim*.c: header field list of a message, and base64 helpers. */
struct dkim_field {
	const char *p;
	size_t len;		/* through the line end */
	size_t nlen;		/* name length (without trailing white space) */
	bool used;
};
size_t dkim_split_header(const char *msg, size_t len, struct dkim_field **fields, size_t *body_off);
bool dkim_b64_decode(const char *s, size_t len, struct buf *out);	/* white space ignored */
bool dkim_b64_encode(const unsigned char *p, size_t len, struct buf *out);

#endif
