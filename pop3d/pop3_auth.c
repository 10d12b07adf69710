/* Credential checks for pop3d: the temporary password-file backend and the SASL pieces (base64, PLAIN, APOP). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "alloc.h"
#include "fsutil.h"
#include "log.h"
#include "pop3_auth.h"
#include "str.h"

#define AUTHFILE_MAX (1024 * 1024)

void pop3_user_clear(struct pop3_user *u)
{
	xfree(&u->name);
	xfree(&u->maildir);
	u->have_ids = false;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64val(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;
	return p ? (int)(p - b64) : -1;
}

bool pop3_b64_decode(const char *in, size_t len, struct buf *out)
{
	if (len % 4 != 0)
		return false;
	for (size_t i = 0; i < len; i += 4) {
		int v[4], pad = 0;
		for (int j = 0; j < 4; j++) {
			if (in[i + j] == '=' && i + 4 == len && j >= 2) {
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad || (v[j] = b64val(in[i + j])) < 0)
				return false;
		}
		if (pad == 1 && (v[2] & 3))
			return false;
		if (pad == 2 && ((v[1] & 15) || in[i + 2] != '='))
			return false;
		unsigned char o[3] = { (unsigned char)(v[0] << 2 | v[1] >> 4), (unsigned char)((v[1] & 15) << 4 | v[2] >> 2),
		                       (unsigned char)((v[2] & 3) << 6 | v[3]) };
		if (!buf_append(out, o, (size_t)(3 - pad)))
			return false;
	}
	return true;
}

void pop3_b64_encode(const void *in, size_t len, struct buf *out)
{
	const unsigned char *p = in;

	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < len ? p[i + 2] : 0);
		buf_putc(out, b64[v >> 18 & 63]);
		buf_putc(out, b64[v >> 12 & 63]);
		buf_putc(out, i + 1 < len ? b64[v >> 6 & 63] : '=');
		buf_putc(out, i + 2 < len ? b64[v & 63] : '=');
	}
}

bool pop3_plain_parse(const char *data, size_t len, struct buf *user, struct buf *pass)
{
	const char *n1 = memchr(data, '\0', len), *n2;

	if (!n1 || !(n2 = memchr(n1 + 1, '\0', len - (size_t)(n1 + 1 - data))))
		return false;
	size_t zlen = (size_t)(n1 - data), ulen = (size_t)(n2 - n1 - 1), plen = len - (size_t)(n2 + 1 - data);
	if (memchr(n2 + 1, '\0', plen) || ulen == 0 || plen == 0)
		return false;
	if (zlen && (zlen != ulen || memcmp(data, n1 + 1, ulen) != 0))
		return false;	/* acting as someone else is not supported */
	buf_reset(user);
	buf_reset(pass);
	return buf_append(user, n1 + 1, ulen) && buf_append(pass, n2 + 1, plen);
}

void pop3_apop_digest(const char *timestamp, const char *secret, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	if (!c || !EVP_DigestInit_ex(c, EVP_md5(), NULL) || !EVP_DigestUpdate(c, timestamp, strlen(timestamp)) ||
	    !EVP_DigestUpdate(c, secret, strlen(secret)) || !EVP_DigestFinal_ex(c, md, &mdlen) || mdlen != 16)
		fatalx("MD5 for APOP is not available");
	EVP_MD_CTX_free(c);
	for (unsigned i = 0; i < 16; i++) {
		out[2 * i] = "0123456789abcdef"[md[i] >> 4];
		out[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
	}
	out[32] = '\0';
}

/* Find user in the file; on success *pw points at a copy of the password. */
static enum pop3_auth_result file_lookup(struct pop3_authfile *af, const char *user, char **pw, struct pop3_user *out)
{
	struct buf b = BUF_INIT(AUTHFILE_MAX);
	enum pop3_auth_result r = POP3_AUTH_FAIL;
	char *line, *save = NULL;

	if (!fsutil_read_file(af->path, AUTHFILE_MAX, &b)) {
		log_error("%s: %s", af->path, strerror(errno));
		return POP3_AUTH_TEMPFAIL;
	}
	for (line = b.len ? b.data : NULL; line; line = save) {
		char *f[6];
		save = strchr(line, '\n');
		if (save)
			*save++ = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		/* fields are separated by ':'; the password may not hold one */
		size_t n = 0;
		for (char *p = line; n < 6;) {
			f[n++] = p;
			p = strchr(p, ':');
			if (!p)
				break;
			*p++ = '\0';
		}
		if ((n != 3 && n != 5) || strcmp(f[0], user) != 0)
			continue;
		uint64_t uid, gid;
		if (n == 5 && (!str_to_u64(f[3], UINT32_MAX - 1, &uid) || !str_to_u64(f[4], UINT32_MAX - 1, &gid)))
			break;
		struct buf md = BUF_INIT(BUF_NOLIMIT);
		if (f[2][0] == '/')
			buf_puts(&md, f[2]);
		else
			buf_printf(&md, "%s/%s", af->maildir_base, f[2]);
		out->name = xstrdup(user);
		out->maildir = buf_steal(&md, NULL);
		out->have_ids = n == 5;
		if (n == 5) {
			out->uid = (uid_t)uid;
			out->gid = (gid_t)gid;
		}
		*pw = xstrdup(f[1]);
		r = POP3_AUTH_OK;
		break;
	}
	OPENSSL_cleanse(b.data, b.len);
	buf_free(&b);
	return r;
}

static enum pop3_auth_result file_plain(void *ctx, const struct pop3_auth_client *cl, const char *user,
                                        const char *pass, struct pop3_user *out)
{
	(void)cl;
	char *pw = NULL;
	enum pop3_auth_result r = file_lookup(ctx, user, &pw, out);

	if (r == POP3_AUTH_OK) {
		size_t a = strlen(pw), b = strlen(pass);
		if (a != b || CRYPTO_memcmp(pw, pass, a) != 0) {
			pop3_user_clear(out);
			r = POP3_AUTH_FAIL;
		}
		OPENSSL_cleanse(pw, a);
		free(pw);
	}
	return r;
}

static enum pop3_auth_result file_apop(void *ctx, const struct pop3_auth_client *cl, const char *user,
                                       const char *timestamp, const char *digest, struct pop3_user *out)
{
	(void)cl;
	char *pw = NULL, want[33];
	enum pop3_auth_result r = file_lookup(ctx, user, &pw, out);

	if (r != POP3_AUTH_OK)
		return r;
	pop3_apop_digest(timestamp, pw, want);
	OPENSSL_cleanse(pw, strlen(pw));
	free(pw);
	if (strlen(digest) != 32)
		goto fail;
	/* constant time, hex digits of either case */
	unsigned diff = 0;
	for (int i = 0; i < 32; i++)
		diff |= (unsigned)(str_ascii_lower((unsigned char)digest[i]) ^ want[i]);
	if (diff == 0)
		return POP3_AUTH_OK;
fail:
	pop3_user_clear(out);
	return POP3_AUTH_FAIL;
}

void pop3_authfile_ops(struct pop3_authfile *af, struct pop3_auth_ops *ops)
{
	ops->plain = file_plain;
	ops->apop = file_apop;
	ops->ctx = af;
}
