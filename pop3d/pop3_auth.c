/* The password-file backend of pop3d, for tests (the real one is pop3_authd.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "alloc.h"
#include "fsutil.h"
#include "log.h"
#include "pop3_auth.h"
#include "sasl.h"
#include "str.h"

#define AUTHFILE_MAX (1024 * 1024)

void pop3_user_clear(struct pop3_user *u)
{
	xfree(&u->name);
	xfree(&u->maildir);
	if (u->token)
		explicit_bzero(u->token, strlen(u->token));
	xfree(&u->token);
	u->have_ids = false;
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
	char *pw = NULL;
	enum pop3_auth_result r = file_lookup(ctx, user, &pw, out);
	bool ok;

	if (r != POP3_AUTH_OK)
		return r;
	ok = sasl_apop_verify(timestamp, pw, digest);
	OPENSSL_cleanse(pw, strlen(pw));
	free(pw);
	if (ok)
		return POP3_AUTH_OK;
	pop3_user_clear(out);
	return POP3_AUTH_FAIL;
}

void pop3_authfile_ops(struct pop3_authfile *af, struct pop3_auth_ops *ops)
{
	ops->plain = file_plain;
	ops->apop = file_apop;
	ops->ctx = af;
}
