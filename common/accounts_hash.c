/* Password hashing and checking with libcrypt, and system (passwd/shadow) accounts; see accounts.h. */
#include "accounts.h"

#include <crypt.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <pwd.h>
#include <shadow.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"

/* A yescrypt hash of a throw-away password with libcrypt's default cost ("j9T"), so checking it costs what
 * checking a real account's default hash costs. */
static const char dummy_hash[] = "$y$j9T$d9TV3mOCJglFq39xDDyWM.$82GAFONeVPp0XYEWOL7Bbx/K3Grox6C2.TJ645AoHdA";

static bool scheme_ok(const char *scheme)
{
	return strcmp(scheme, "$y$") == 0 || strcmp(scheme, "$6$") == 0;
}

char *accounts_hash_password(const char *password, const char *scheme, struct buf *err)
{
	char *setting, *hash, *res = NULL;
	void *data = NULL;
	int size = 0;
	size_t plen = strlen(password);

	if (scheme == NULL)
		scheme = "$y$";
	if (!scheme_ok(scheme)) {
		buf_puts(err, "password scheme must be $y$ (yescrypt) or $6$ (SHA-512 crypt)");
		return NULL;
	}
	if (plen == 0 || plen > ACCOUNTS_PASSWORD_MAX) {
		buf_printf(err, "password must be 1 to %d bytes", ACCOUNTS_PASSWORD_MAX);
		return NULL;
	}
	/* count 0 = libcrypt's default cost; rbytes NULL = libcrypt reads the OS random source */
	setting = crypt_gensalt_ra(scheme, 0, NULL, 0);
	if (setting == NULL) {
		buf_printf(err, "crypt_gensalt(%s): %s", scheme, strerror(errno));
		return NULL;
	}
	hash = crypt_ra(password, setting, &data, &size);
	if (hash == NULL || hash[0] == '*' || strlen(hash) > ACCOUNTS_HASH_MAX)
		buf_printf(err, "crypt(%s) failed: %s", scheme, strerror(errno ? errno : EINVAL));
	else
		res = xstrdup(hash);
	if (data)
		explicit_bzero(data, (size_t)size);
	free(data);
	free(setting);
	return res;
}

bool accounts_check_hash(const char *password, const char *hash)
{
	void *data = NULL;
	int size = 0;
	const char *out;
	bool ok = false;

	/* "!" and "*" lock an account; hashes without "$id$" are DES-era and not worth accepting. */
	if (hash == NULL || hash[0] != '$' || strlen(password) > ACCOUNTS_PASSWORD_MAX)
		return false;
	out = crypt_ra(password, hash, &data, &size);
	if (out != NULL && out[0] != '*') {
		size_t n = strlen(hash);
		/* the length is fixed by the scheme, so only the bytes need a constant-time compare */
		ok = strlen(out) == n && CRYPTO_memcmp(out, hash, n) == 0;
	}
	if (data)
		explicit_bzero(data, (size_t)size);
	free(data);
	return ok;
}

void accounts_dummy_verify(const char *password)
{
	(void)accounts_check_hash(password, dummy_hash);
}

enum accounts_result accounts_system_get(const char *name, struct accounts_user *out, struct buf *err)
{
	struct passwd pw, *pwp = NULL;
	struct spwd sp, *spp = NULL;
	char *pwbuf, *spbuf;
	size_t bufsize = 16384;
	const char *hash;
	enum accounts_result res = ACCOUNTS_NOTFOUND;
	int rc;

	memset(out, 0, sizeof *out);
	if (name[0] == '\0' || strlen(name) > 32 || strchr(name, '@') || strchr(name, '/'))
		return ACCOUNTS_NOTFOUND;
	pwbuf = xmalloc(bufsize);
	spbuf = xmalloc(bufsize);
	rc = getpwnam_r(name, &pw, pwbuf, bufsize, &pwp);
	if (rc != 0) {
		buf_printf(err, "getpwnam(%s): %s", name, strerror(rc));
		res = ACCOUNTS_ERROR;
		goto out;
	}
	/* uid 0 in an answer means the virtual-mail user, and nobody should read mail as root anyway */
	if (pwp == NULL || pw.pw_uid == 0)
		goto out;
	hash = pw.pw_passwd;
	/* shadow is readable only by root; without it the account exists but cannot log in with a password */
	if (strcmp(hash, "x") == 0)
		hash = (getspnam_r(name, &sp, spbuf, bufsize, &spp) == 0 && spp != NULL) ? sp.sp_pwdp : "";
	if (strlen(hash) > ACCOUNTS_HASH_MAX)
		hash = "";
	out->address = xstrdup(name);
	out->password_hash = xstrdup(hash);
	out->uid = (uint32_t)pw.pw_uid;
	out->gid = (uint32_t)pw.pw_gid;
	out->enabled = true;
	{
		struct buf md = BUF_INIT(ACCOUNTS_PATH_MAX);
		if (pw.pw_dir[0] != '/' || !buf_printf(&md, "%s%sMaildir/", pw.pw_dir,
		                                         pw.pw_dir[strlen(pw.pw_dir) - 1] == '/' ? "" : "/")) {
			buf_printf(err, "%s: unusable home directory", name);
			buf_free(&md);
			accounts_user_free(out);
			res = ACCOUNTS_ERROR;
			goto out;
		}
		out->maildir = buf_steal(&md, NULL);
	}
	res = ACCOUNTS_OK;
out:
	explicit_bzero(spbuf, bufsize);
	free(pwbuf);
	free(spbuf);
	return res;
}
