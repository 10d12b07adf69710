/* DKIM signing: one DKIM-Signature field for a whole message, relaxed or simple canonicalisation, From
 * oversigned, no l= (a length limit lets anyone append content under our signature). */
#include <openssl/evp.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "dkim.h"
#include "dkim_int.h"
#include "str.h"

#define DKIM_MAX_HEADER (256u * 1024)

const char *const dkim_signed_headers[] = {
	"From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID", "In-Reply-To", "References",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "List-Id",
	"List-Unsubscribe", "List-Unsubscribe-Post", "Sender", NULL
};

static bool field_is(const struct dkim_field *f, const char *name, size_t nlen)
{
	return f->nlen == nlen && str_eqn_ci(f->p, name, nlen);
}

bool dkim_header_hash(struct dkim_field *f, size_t nf, const char *h, size_t hlen, enum dkim_canon c,
                      const char *sigfield, size_t siglen, unsigned char hash[32])
{
	struct buf data = BUF_INIT(DKIM_MAX_HEADER);
	bool ok = true;
	size_t i = 0;

	for (size_t k = 0; k < nf; k++)
		f[k].used = false;
	while (i < hlen && ok) {
		size_t s = i;
		while (i < hlen && h[i] != ':')
			i++;
		size_t e = i++;
		/* h= names may carry FWS around the colons */
		while (s < e && (h[s] == ' ' || h[s] == '\t' || h[s] == '\r' || h[s] == '\n'))
			s++;
		while (e > s && (h[e - 1] == ' ' || h[e - 1] == '\t' || h[e - 1] == '\r' || h[e - 1] == '\n'))
			e--;
		if (e == s)
			continue;
		/* section 5.4.2: the last unused instance, working up from the bottom; none left: the null string */
		for (size_t k = nf; k-- > 0;) {
			if (!f[k].used && field_is(&f[k], h + s, e - s)) {
				f[k].used = true;
				ok = dkim_canon_header(c, f[k].p, f[k].len, true, &data);
				break;
			}
		}
	}
	ok = ok && dkim_canon_header(c, sigfield, siglen, false, &data);
	if (ok) {
		unsigned int n = 0;
		ok = EVP_Digest(data.data, data.len, hash, &n, EVP_sha256(), NULL) == 1 && n == 32;
	}
	buf_free(&data);
	return ok;
}

/* Append s to the field, folding at about 76 columns. */
static bool fold_append(struct buf *out, size_t *col, const char *s, size_t n)
{
	bool ok = true;
	while (n && ok) {
		size_t room = *col < 76 ? 76 - *col : 0;
		if (room == 0) {
			ok = buf_puts(out, "\r\n\t");
			*col = 8;
			continue;
		}
		size_t take = n < room ? n : room;
		ok = buf_append(out, s, take);
		*col += take;
		s += take;
		n -= take;
	}
	return ok;
}

bool dkim_sign(const struct dkim_sign_options *o, const char *msg, size_t len, struct buf *out, struct buf *err)
{
	return dkim_sign_parts(o, msg, len, NULL, 0, out, err);
}

bool dkim_sign_parts(const struct dkim_sign_options *o, const char *head, size_t hlen, const char *more,
                     size_t mlen, struct buf *out, struct buf *err)
{
	struct dkim_field *f;
	size_t body_off, nf = dkim_split_header(head, hlen, &f, &body_off);
	struct buf hl = BUF_INIT(4096), field = BUF_INIT(DKIM_MAX_HEADER), sig = BUF_INIT(1024);
	unsigned char bh[32], hh[32];
	bool ok = true, has_from = false;
	time_t now = o->now ? o->now : time(NULL);

	for (size_t i = 0; dkim_signed_headers[i] && ok; i++) {
		const char *name = dkim_signed_headers[i];
		size_t count = 0, nlen = strlen(name);
		for (size_t k = 0; k < nf; k++)
			count += field_is(&f[k], name, nlen);
		if (i == 0) {
			has_from = count > 0;
			count++;	/* oversign: a second From would break the signature */
		}
		for (size_t k = 0; k < count && ok; k++)
			ok = buf_printf(&hl, "%s%s", hl.len ? ":" : "", name);
	}
	if (!has_from) {
		buf_puts(err, "message has no From header field");
		ok = false;
	}
	if (ok) {
		struct dkim_body *b = dkim_body_new(o->bcanon, UINT64_MAX);
		dkim_body_update(b, head + body_off, hlen - body_off);
		if (mlen)
			dkim_body_update(b, more, mlen);
		dkim_body_final(b, bh, NULL);
		dkim_body_free(&b);
	}
	if (ok) {
		str_lower(hl.data);
		size_t col = 16;
		ok = buf_printf(&field, "DKIM-Signature: v=1; a=%s; c=%s/%s; d=%s; s=%s;\r\n\tt=%lld;",
		                o->key->alg == DKIM_RSA_SHA256 ? "rsa-sha256" : "ed25519-sha256",
		                o->hcanon == DKIM_CANON_RELAXED ? "relaxed" : "simple",
		                o->bcanon == DKIM_CANON_RELAXED ? "relaxed" : "simple", o->domain, o->selector,
		                (long long)now);
		if (ok && o->expire_secs)
			ok = buf_printf(&field, " x=%lld;", (long long)now + o->expire_secs);
		ok = ok && buf_puts(&field, "\r\n\th=");
		col = 10;
		ok = ok && fold_append(&field, &col, hl.data, hl.len) && buf_puts(&field, ";\r\n\tbh=") &&
		     dkim_b64_encode(bh, sizeof(bh), &field) && buf_puts(&field, ";\r\n\tb=");
	}
	if (ok && !dkim_header_hash(f, nf, hl.data, hl.len, o->hcanon, field.data, field.len, hh)) {
		buf_puts(err, "header too large to sign");
		ok = false;
	}
	if (ok && !dkim_pkey_sign(o->key->pkey, o->key->alg, hh, &sig)) {
		buf_puts(err, "signing failed");
		ok = false;
	}
	if (ok) {
		struct buf b64 = BUF_INIT(BUF_NOLIMIT);
		size_t col = 10;
		ok = dkim_b64_encode((unsigned char *)sig.data, sig.len, &b64) &&
		     fold_append(&field, &col, b64.data, b64.len) && buf_puts(&field, "\r\n") &&
		     buf_append(out, field.data, field.len);
		buf_free(&b64);
	}
	free(f);
	buf_free(&hl);
	buf_free(&field);
	buf_free(&sig);
	return ok;
}
