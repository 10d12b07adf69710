/* SASL server helpers; see sasl.h. */
#include "sasl.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

#include "log.h"
#include "str.h"

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

bool sasl_base64_decode(const char *in, size_t len, struct buf *out)
{
	size_t start = out->len;
	const unsigned char *p = (const unsigned char *)in;

	if (len % 4 != 0)
		return false;
	for (size_t i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		int v[4];
		int pad = 0;
		for (int j = 0; j < 4; j++) {
			if (p[i + j] == '=' && last && j >= 2) {
				v[j] = 0;
				pad++;
			} else if (pad || (v[j] = b64val(p[i + j])) < 0) {
				goto bad;	/* bad character, or data after '=' */
			}
		}
		unsigned char o[3] = { (unsigned char)(v[0] << 2 | v[1] >> 4), (unsigned char)(v[1] << 4 | v[2] >> 2),
		                       (unsigned char)(v[2] << 6 | v[3]) };
		/* canonical form only: the bits that padding drops must be zero */
		if ((pad == 2 && (v[1] & 0x0f)) || (pad == 1 && (v[2] & 0x03)))
			goto bad;
		if (!buf_append(out, o, (size_t)(3 - pad)))
			goto bad;
	}
	return true;
bad:
	if (out->data)
		explicit_bzero(out->data + start, out->len - start);
	buf_truncate(out, start);
	return false;
}

bool sasl_base64_encode(const void *in, size_t len, struct buf *out)
{
	const unsigned char *p = in;
	size_t start = out->len;

	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		size_t n = len - i < 3 ? len - i : 3;
		if (n > 1)
			v |= (unsigned)p[i + 1] << 8;
		if (n > 2)
			v |= p[i + 2];
		char o[4] = { b64chars[v >> 18 & 63], b64chars[v >> 12 & 63], n > 1 ? b64chars[v >> 6 & 63] : '=',
		              n > 2 ? b64chars[v & 63] : '=' };
		if (!buf_append(out, o, 4)) {
			buf_truncate(out, start);
			return false;
		}
	}
	return true;
}

/* ---- mechanisms ---- */

static const struct sasl_mech mechs[] = {
	{ "PLAIN", true },
	{ "LOGIN", true },
};
#define NMECHS (sizeof(mechs) / sizeof(mechs[0]))

const struct sasl_mech *sasl_mech_find(const char *name)
{
	for (size_t i = 0; i < NMECHS; i++)
		if (str_eq_ci(mechs[i].name, name))
			return &mechs[i];
	return NULL;
}

bool sasl_mech_allowed(const struct sasl_mech *mech, bool encrypted, bool loopback)
{
	return mech != NULL && (!mech->plaintext || encrypted || loopback);
}

void sasl_mech_list(struct buf *out, bool encrypted, bool loopback)
{
	buf_reset(out);
	for (size_t i = 0; i < NMECHS; i++)
		if (sasl_mech_allowed(&mechs[i], encrypted, loopback))
			buf_printf(out, "%s%s", out->len ? " " : "", mechs[i].name);
}

/* ---- PLAIN and LOGIN ---- */

static bool copy_part(char *dst, size_t dstsize, const char *src, size_t n)
{
	if (n >= dstsize || memchr(src, '\0', n) != NULL)
		return false;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return true;
}

bool sasl_plain_parse(const void *data, size_t len, struct sasl_creds *out, struct buf *err)
{
	const char *p = data, *end = p + len;
	const char *nul1, *nul2;
	size_t zlen, clen;

	memset(out, 0, sizeof *out);
	if ((nul1 = memchr(p, '\0', len)) == NULL || (nul2 = memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1))) == NULL) {
		buf_puts(err, "PLAIN: need authzid NUL authcid NUL password");
		return false;
	}
	if (memchr(nul2 + 1, '\0', (size_t)(end - nul2 - 1)) != NULL) {
		buf_puts(err, "PLAIN: too many NULs");
		return false;
	}
	zlen = (size_t)(nul1 - p);
	clen = (size_t)(nul2 - nul1 - 1);
	if (clen == 0 || !copy_part(out->authcid, sizeof out->authcid, nul1 + 1, clen)) {
		buf_puts(err, "PLAIN: empty or over-long authcid");
		goto fail;
	}
	if (!copy_part(out->passwd, sizeof out->passwd, nul2 + 1, (size_t)(end - nul2 - 1)) || out->passwd[0] == '\0') {
		buf_puts(err, "PLAIN: empty or over-long password");
		goto fail;
	}
	if (zlen != 0 && (zlen != clen || !str_eqn_ci(p, out->authcid, clen))) {
		buf_printf(err, "PLAIN: authzid %s differs from authcid", log_safe(p, zlen, 64));
		goto fail;
	}
	return true;
fail:
	explicit_bzero(out, sizeof *out);
	return false;
}

enum { ST_START, ST_PLAIN_WAIT, ST_LOGIN_USER, ST_LOGIN_PASS, ST_DONE };

void sasl_start(struct sasl_session *s, const struct sasl_mech *mech)
{
	explicit_bzero(s, sizeof *s);
	s->mech = mech;
	s->state = ST_START;
}

void sasl_clear(struct sasl_session *s)
{
	explicit_bzero(s, sizeof *s);
}

static enum sasl_status fail(struct sasl_session *s, struct buf *err, const char *why)
{
	buf_puts(err, why);
	explicit_bzero(&s->creds, sizeof s->creds);
	s->state = ST_DONE;
	return SASL_FAIL;
}

static void challenge_text(struct buf *challenge, const char *text)
{
	buf_reset(challenge);
	if (!sasl_base64_encode(text, strlen(text), challenge))
		panic("sasl: challenge buffer too small");
}

enum sasl_status sasl_step(struct sasl_session *s, const char *resp, size_t len, struct buf *challenge,
                           struct buf *err)
{
	struct buf dec = BUF_INIT(SASL_RESPONSE_MAX);
	enum sasl_status st = SASL_FAIL;
	bool initial = s->state == ST_START;

	buf_reset(challenge);
	if (s->mech == NULL)
		return fail(s, err, "no mechanism");
	if (s->state == ST_DONE)
		return fail(s, err, "exchange already finished");
	if (resp == NULL && !initial)
		return fail(s, err, "missing response");
	if (resp != NULL && len == 1 && resp[0] == '*') {
		explicit_bzero(&s->creds, sizeof s->creds);
		s->state = ST_DONE;
		return SASL_CANCEL;
	}
	if (resp != NULL && !(initial && len == 1 && resp[0] == '=') && !sasl_base64_decode(resp, len, &dec)) {
		buf_free(&dec);
		return fail(s, err, "malformed or over-long base64 response");
	}

	if (strcmp(s->mech->name, "PLAIN") == 0) {
		if (initial && resp == NULL) {
			s->state = ST_PLAIN_WAIT;
			st = SASL_CONTINUE;	/* empty challenge */
		} else if (sasl_plain_parse(dec.data ? dec.data : "", dec.len, &s->creds, err)) {
			s->state = ST_DONE;
			st = SASL_DONE;
		} else {
			st = fail(s, err, "");
		}
	} else if (strcmp(s->mech->name, "LOGIN") == 0) {
		if (initial && resp == NULL) {
			s->state = ST_LOGIN_USER;
			challenge_text(challenge, "Username:");
			st = SASL_CONTINUE;
		} else if (initial || s->state == ST_LOGIN_USER) {
			if (dec.len == 0 || !copy_part(s->creds.authcid, sizeof s->creds.authcid, dec.data, dec.len)) {
				st = fail(s, err, "LOGIN: empty, over-long or NUL-containing user name");
			} else {
				s->state = ST_LOGIN_PASS;
				challenge_text(challenge, "Password:");
				st = SASL_CONTINUE;
			}
		} else {
			if (dec.len == 0 || !copy_part(s->creds.passwd, sizeof s->creds.passwd, dec.data, dec.len)) {
				st = fail(s, err, "LOGIN: empty, over-long or NUL-containing password");
			} else {
				s->state = ST_DONE;
				st = SASL_DONE;
			}
		}
	} else {
		st = fail(s, err, "mechanism not implemented");
	}
	if (dec.data)
		explicit_bzero(dec.data, dec.len);
	buf_free(&dec);
	return st;
}

/* ---- APOP ---- */

void sasl_apop_digest(const char *timestamp, const char *secret, char out[SASL_APOP_DIGEST_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, timestamp, strlen(timestamp)) != 1 ||
	    EVP_DigestUpdate(ctx, secret, strlen(secret)) != 1 || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 ||
	    mdlen != 16)
		fatalx("sasl: MD5 digest failed (OpenSSL)");
	EVP_MD_CTX_free(ctx);
	for (unsigned i = 0; i < 16; i++) {
		out[2 * i] = "0123456789abcdef"[md[i] >> 4];
		out[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
	}
	out[SASL_APOP_DIGEST_LEN] = '\0';
	explicit_bzero(md, sizeof md);
}

bool sasl_apop_verify(const char *timestamp, const char *secret, const char *digest)
{
	char want[SASL_APOP_DIGEST_LEN + 1], got[SASL_APOP_DIGEST_LEN + 1];
	bool ok;

	if (strnlen(digest, SASL_APOP_DIGEST_LEN + 1) != SASL_APOP_DIGEST_LEN || secret == NULL || secret[0] == '\0')
		return false;
	for (int i = 0; i < SASL_APOP_DIGEST_LEN; i++) {
		int c = str_ascii_lower((unsigned char)digest[i]);
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		got[i] = (char)c;
	}
	got[SASL_APOP_DIGEST_LEN] = '\0';
	sasl_apop_digest(timestamp, secret, want);
	ok = CRYPTO_memcmp(want, got, SASL_APOP_DIGEST_LEN) == 0;
	explicit_bzero(want, sizeof want);
	return ok;
}
