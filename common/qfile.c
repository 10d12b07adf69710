/* Queue files: see qfile.h for the format. The writer buffers, converts CRLF to LF, and makes the file durable
 * (fsync file, link or rename into incoming/, fsync directory) before anyone may say "queued". The reader trusts nothing in the file. */
#include "qfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "alloc.h"
#include "anonfile.h"
#include "fsutil.h"
#include "log.h"
#include "str.h"

#define WBUF_FLUSH (64 * 1024)

struct qfile_writer {
	int fd;
	char *queue_dir;
	char *tmp_path;          /* the temp file's name, or for an unnamed one its directory (for messages) */
	bool anon;               /* unnamed (anonfile): nothing to unlink, linked in at commit */
	char id[QFILE_ID_MAX];
	struct buf out;          /* pending bytes not yet written */
	uint64_t content_len;
	bool in_content;
	bool pending_cr;         /* content ended in CR: decide when the next byte arrives */
	bool failed;
	struct buf error;
};

static const char b36[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

static void put_b36(struct buf *b, uint64_t v, int width)
{
	char tmp[16];
	int n = 0;
	do {
		tmp[n++] = b36[v % 36];
		v /= 36;
	} while (v && n < (int)sizeof(tmp));
	while (n < width && n < (int)sizeof(tmp))
		tmp[n++] = '0';
	while (n > 0)
		buf_putc(b, tmp[--n]);
}

bool qfile_id_valid(const char *id)
{
	size_t n = strlen(id);
	if (n < 11 || n >= QFILE_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'Z')))
			return false;
	return true;
}

static bool fail(struct qfile_writer *w, const char *what)
{
	if (!w->failed) {
		w->failed = true;
		buf_reset(&w->error);
		buf_printf(&w->error, "%s %s: %s", what, w->tmp_path, strerror(errno));
	}
	return false;
}

static bool flush_out(struct qfile_writer *w)
{
	size_t off = 0;
	while (off < w->out.len) {
		ssize_t n = write(w->fd, w->out.data + off, w->out.len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail(w, "write");
		}
		off += (size_t)n;
	}
	buf_reset(&w->out);
	return true;
}

static bool out_append(struct qfile_writer *w, const void *p, size_t n)
{
	if (w->failed)
		return false;
	if (w->out.len + n > WBUF_FLUSH && !flush_out(w))
		return false;
	if (n > WBUF_FLUSH) {	/* large block: write through */
		if (!flush_out(w))
			return false;
		const char *s = p;
		while (n > 0) {
			ssize_t k = write(w->fd, s, n);
			if (k < 0) {
				if (errno == EINTR)
					continue;
				return fail(w, "write");
			}
			s += k;
			n -= (size_t)k;
		}
		return true;
	}
	if (!buf_append(&w->out, p, n))
		panic("qfile: write buffer limit");
	return true;
}

/* A root tool (postern queue inject) writing into a queue that belongs to mail_owner: the file must be qmgr's,
 * like the directory it goes into, or qmgr cannot open it once it is in active/. */
static bool give_to_queue_owner(int fd, const char *queue_dir)
{
	if (geteuid() != 0)
		return true;
	struct buf dir = BUF_INIT(BUF_NOLIMIT);
	struct stat st;
	buf_printf(&dir, "%s/tmp", queue_dir);
	bool ok = stat(buf_cstr(&dir), &st) == 0 && (st.st_uid == 0 || fchown(fd, st.st_uid, st.st_gid) == 0);
	buf_free(&dir);
	return ok;
}

struct qfile_writer *qfile_create(const char *queue_dir, struct buf *err)
{
	static unsigned counter;
	struct qfile_writer *w = xcalloc(1, sizeof(*w));
	struct timeval tv;
	struct stat st;
	struct buf path = BUF_INIT(BUF_NOLIMIT), id = BUF_INIT(QFILE_ID_MAX - 1);

	gettimeofday(&tv, NULL);
	buf_printf(&path, "%s/tmp", queue_dir);
	w->fd = anonfile_open(buf_cstr(&path), 0600);
	w->anon = w->fd >= 0;
	if (!w->anon) {
		buf_printf(&path, "/%ld.%ld.%u", (long)getpid(), (long)tv.tv_usec, counter++);
		w->fd = open(buf_cstr(&path), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	}
	if (w->fd >= 0 && !give_to_queue_owner(w->fd, queue_dir)) {
		int e = errno;
		if (!w->anon)
			unlink(buf_cstr(&path));
		close(w->fd);
		w->fd = -1;
		errno = e;
	}
	if (w->fd < 0 || fstat(w->fd, &st) < 0) {
		buf_printf(err, "create %s: %s", buf_cstr(&path), strerror(errno));
		if (w->fd >= 0) {
			close(w->fd);
			if (!w->anon)
				unlink(buf_cstr(&path));
		}
		buf_free(&path);
		free(w);
		return NULL;
	}
	w->tmp_path = buf_steal(&path, NULL);
	w->queue_dir = xstrdup(queue_dir);
	put_b36(&id, (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec, 10);
	put_b36(&id, (uint64_t)st.st_ino, 1);
	str_copy(w->id, sizeof(w->id), buf_cstr(&id));
	buf_free(&id);
	buf_init(&w->out, BUF_NOLIMIT);
	buf_init(&w->error, 4096);
	out_append(w, "PQF1", 4);
	char t[64];
	snprintf(t, sizeof(t), "%ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec);
	qfile_put_str(w, QREC_TIME, t);
	return w;
}

const char *qfile_writer_id(const struct qfile_writer *w)
{
	return w->id;
}

const char *qfile_writer_error(const struct qfile_writer *w)
{
	return buf_cstr(&w->error);
}

bool qfile_put(struct qfile_writer *w, enum qfile_rec type, const void *data, size_t len)
{
	unsigned char hdr[5];

	if (w->in_content)
		panic("qfile_put after content");
	if (len > QFILE_RECORD_MAX) {
		errno = EMSGSIZE;
		return fail(w, "record too long for");
	}
	hdr[0] = (unsigned char)type;
	hdr[1] = (unsigned char)(len >> 24);
	hdr[2] = (unsigned char)(len >> 16);
	hdr[3] = (unsigned char)(len >> 8);
	hdr[4] = (unsigned char)len;
	return out_append(w, hdr, sizeof(hdr)) && out_append(w, data, len);
}

bool qfile_put_str(struct qfile_writer *w, enum qfile_rec type, const char *s)
{
	return qfile_put(w, type, s, strlen(s));
}

bool qfile_put_rcpt(struct qfile_writer *w, const char *addr, unsigned notify, const char *orcpt)
{
	struct buf r = BUF_INIT(QFILE_RECORD_MAX);
	bool ok = buf_puts(&r, addr) && buf_putc(&r, 0) && buf_printf(&r, "%u", notify) && buf_putc(&r, 0) &&
	          buf_puts(&r, orcpt ? orcpt : "");
	if (!ok) {
		buf_free(&r);
		errno = EMSGSIZE;
		return fail(w, "recipient too long for");
	}
	ok = qfile_put(w, QREC_RCPT, r.data, r.len);
	buf_free(&r);
	return ok;
}

/* The end record carries the content length, unknown until commit: it is written as fixed-width digits and
 * patched with pwrite() at commit, while the file is still an unnamed temp file nobody else reads. */
#define END_DIGITS 20

static bool begin_content(struct qfile_writer *w)
{
	char zeros[END_DIGITS];
	if (w->in_content)
		return true;
	memset(zeros, '0', sizeof(zeros));
	if (!qfile_put(w, QREC_END, zeros, sizeof(zeros)))
		return false;
	w->in_content = true;
	return true;
}

bool qfile_write(struct qfile_writer *w, const void *data, size_t len)
{
	const char *p = data, *end = p + len, *start = p;

	if (!begin_content(w))
		return false;
	if (len == 0)
		return !w->failed;
	if (w->pending_cr) {
		w->pending_cr = false;
		if (*p != '\n') {	/* a lone CR is content, keep it */
			if (!out_append(w, "\r", 1))
				return false;
			w->content_len++;
		}
	}
	while (p < end) {
		const char *cr = memchr(p, '\r', (size_t)(end - p));
		if (cr == NULL)
			break;
		if (cr + 1 == end) {	/* CR at the end: wait for the next byte */
			if (!out_append(w, start, (size_t)(cr - start)))
				return false;
			w->content_len += (uint64_t)(cr - start);
			w->pending_cr = true;
			return true;
		}
		if (cr[1] == '\n') {	/* drop the CR of CRLF */
			if (!out_append(w, start, (size_t)(cr - start)))
				return false;
			w->content_len += (uint64_t)(cr - start);
			start = cr + 1;
		}
		p = cr + 1;
	}
	if (!out_append(w, start, (size_t)(end - start)))
		return false;
	w->content_len += (uint64_t)(end - start);
	return true;
}

size_t qfile_content_size(const struct qfile_writer *w)
{
	return (size_t)w->content_len + (w->pending_cr ? 1 : 0);
}

static void writer_free(struct qfile_writer **wp)
{
	struct qfile_writer *w = *wp;
	if (w->fd >= 0)
		close(w->fd);
	buf_free(&w->out);
	buf_free(&w->error);
	free(w->tmp_path);
	free(w->queue_dir);
	free(w);
	*wp = NULL;
}

void qfile_abort(struct qfile_writer **wp)
{
	if (*wp == NULL)
		return;
	if (!(*wp)->anon)
		unlink((*wp)->tmp_path);
	writer_free(wp);
}

bool qfile_commit(struct qfile_writer **wp, struct buf *err)
{
	struct qfile_writer *w = *wp;
	struct buf dst = BUF_INIT(BUF_NOLIMIT), dir = BUF_INIT(BUF_NOLIMIT);
	char digits[END_DIGITS + 1];
	off_t end_off;
	bool ok = false;

	if (!begin_content(w))
		goto out;
	if (w->pending_cr) {
		w->pending_cr = false;
		if (!out_append(w, "\r", 1))
			goto out;
		w->content_len++;
	}
	if (!flush_out(w))
		goto out;
	/* The end record's digits sit just before the content: patch them now that the length is known. */
	end_off = lseek(w->fd, 0, SEEK_CUR);
	if (end_off < 0) {
		fail(w, "seek");
		goto out;
	}
	snprintf(digits, sizeof(digits), "%0*" PRIu64, END_DIGITS, w->content_len);
	if (pwrite(w->fd, digits, END_DIGITS, end_off - (off_t)w->content_len - END_DIGITS) != END_DIGITS) {
		fail(w, "write");
		goto out;
	}
	if (fsync(w->fd) < 0) {
		fail(w, "fsync");
		goto out;
	}
	buf_printf(&dst, "%s/incoming/%s", w->queue_dir, w->id);
	buf_printf(&dir, "%s/incoming", w->queue_dir);
	if (w->anon ? !anonfile_link(w->fd, buf_cstr(&dst)) : rename(w->tmp_path, buf_cstr(&dst)) < 0) {
		fail(w, w->anon ? "link" : "rename");
		goto out;
	}
	if (!fsutil_fsync_dir(buf_cstr(&dir))) {
		/* The name may not be durable: take it back so the client retries rather than trusting it. */
		int saved = errno;
		unlink(buf_cstr(&dst));
		errno = saved;
		fail(w, "fsync directory for");
		goto out;
	}
	ok = true;
out:
	if (!ok) {
		buf_puts(err, buf_cstr(&w->error));
		if (!w->anon)
			unlink(w->tmp_path);
	}
	buf_free(&dst);
	buf_free(&dir);
	writer_free(wp);
	return ok;
}

/* Reading ---------------------------------------------------------------------------------------- */

void qfile_envelope_free(struct qfile_envelope *env)
{
	for (size_t i = 0; i < env->nrcpts; i++) {
		free(env->rcpts[i].addr);
		free(env->rcpts[i].orcpt);
	}
	free(env->rcpts);
	free(env->id);
	free(env->sender);
	free(env->envid);
	free(env->ret);
	free(env->body);
	free(env->client_addr);
	free(env->client_name);
	free(env->helo);
	free(env->auth_user);
	free(env->tls);
	free(env->protocol);
	free(env->origin);
	memset(env, 0, sizeof(*env));
	env->uid = -1;
}

static bool corrupt(struct buf *err, const char *what, uint64_t off)
{
	buf_printf(err, "corrupt queue file: %s at offset %" PRIu64, what, off);
	return false;
}

static bool set_once(char **field, const unsigned char *d, size_t n, struct buf *err, uint64_t off)
{
	if (*field != NULL)
		return corrupt(err, "duplicate record", off);
	if (memchr(d, '\0', n))
		return corrupt(err, "NUL in text record", off);
	*field = xstrndup((const char *)d, n);
	return true;
}

static bool parse_rcpt(struct qfile_envelope *env, const unsigned char *d, size_t n, struct buf *err, uint64_t off)
{
	const unsigned char *z1 = memchr(d, '\0', n), *z2;
	uint64_t notify;

	if (z1 == NULL || (z2 = memchr(z1 + 1, '\0', n - (size_t)(z1 + 1 - d))) == NULL)
		return corrupt(err, "malformed recipient", off);
	if (!str_to_u64n((const char *)z1 + 1, (size_t)(z2 - z1 - 1), 15, &notify))
		return corrupt(err, "malformed recipient notify", off);
	if (memchr(z2 + 1, '\0', n - (size_t)(z2 + 1 - d)))
		return corrupt(err, "malformed recipient", off);
	if (env->nrcpts >= QFILE_MAX_RCPTS)
		return corrupt(err, "too many recipients", off);
	env->rcpts = xreallocarray(env->rcpts, env->nrcpts + 1, sizeof(*env->rcpts));
	struct qfile_rcpt *r = &env->rcpts[env->nrcpts++];
	r->addr = xstrndup((const char *)d, (size_t)(z1 - d));
	r->notify = (unsigned)notify;
	size_t olen = n - (size_t)(z2 + 1 - d);
	r->orcpt = olen ? xstrndup((const char *)z2 + 1, olen) : NULL;
	return true;
}

/* Parse records from p[0..len); total is the whole file size when known (for the content length check). */
static bool parse_records(const unsigned char *p, size_t len, uint64_t total, struct qfile_envelope *env,
                          struct buf *err)
{
	size_t off = 4;
	bool have_time = false;

	memset(env, 0, sizeof(*env));
	env->uid = -1;
	if (len < 4 || memcmp(p, "PQF1", 4) != 0)
		return corrupt(err, "bad magic", 0);
	for (;;) {
		if (len - off < 5)
			return corrupt(err, "truncated record header", off);
		unsigned type = p[off];
		size_t n = (size_t)p[off + 1] << 24 | (size_t)p[off + 2] << 16 | (size_t)p[off + 3] << 8 | p[off + 4];
		size_t roff = off;
		if (n > QFILE_RECORD_MAX || n > len - off - 5)
			return corrupt(err, "truncated record", off);
		const unsigned char *d = p + off + 5;
		off += 5 + n;
		bool ok = true;
		switch (type) {
		case QREC_TIME: {
			char t[32];
			if (n == 0 || n >= sizeof(t) || have_time)
				return corrupt(err, "bad time record", roff);
			memcpy(t, d, n);
			t[n] = '\0';
			char *e;
			env->arrival = strtod(t, &e);
			if (*e != '\0')
				return corrupt(err, "bad time record", roff);
			have_time = true;
			break;
		}
		case QREC_SENDER: ok = set_once(&env->sender, d, n, err, roff); break;
		case QREC_RCPT: ok = parse_rcpt(env, d, n, err, roff); break;
		case QREC_ENVID: ok = set_once(&env->envid, d, n, err, roff); break;
		case QREC_RET: ok = set_once(&env->ret, d, n, err, roff); break;
		case QREC_BODY: ok = set_once(&env->body, d, n, err, roff); break;
		case QREC_SMTPUTF8: env->smtputf8 = true; break;
		case QREC_CLIENT_ADDR: ok = set_once(&env->client_addr, d, n, err, roff); break;
		case QREC_CLIENT_NAME: ok = set_once(&env->client_name, d, n, err, roff); break;
		case QREC_HELO: ok = set_once(&env->helo, d, n, err, roff); break;
		case QREC_AUTH_USER: ok = set_once(&env->auth_user, d, n, err, roff); break;
		case QREC_TLS: ok = set_once(&env->tls, d, n, err, roff); break;
		case QREC_PROTOCOL: ok = set_once(&env->protocol, d, n, err, roff); break;
		case QREC_ORIGIN: ok = set_once(&env->origin, d, n, err, roff); break;
		case QREC_UID: {
			uint64_t uid;
			if (!str_to_u64n((const char *)d, n, 0xffffffffu, &uid))
				return corrupt(err, "bad uid record", roff);
			env->uid = (long)uid;
			break;
		}
		case QREC_END: {
			uint64_t clen;
			if (!str_to_u64n((const char *)d, n, UINT64_MAX / 2, &clen))
				return corrupt(err, "bad end record", roff);
			if (!have_time || env->sender == NULL)
				return corrupt(err, "envelope without time or sender", roff);
			if (env->nrcpts == 0)
				return corrupt(err, "envelope without recipients", roff);
			env->content_offset = off;
			env->content_len = clen;
			if (total != off + clen)
				return corrupt(err, "content length does not match file size", roff);
			return true;
		}
		default:
			return corrupt(err, "unknown record type", roff);
		}
		if (!ok)
			return false;
	}
}

bool qfile_parse(const void *data, size_t len, struct qfile_envelope *env, struct buf *err)
{
	bool ok = parse_records(data, len, len, env, err);
	if (!ok)
		qfile_envelope_free(env);
	return ok;
}

bool qfile_read_envelope(int fd, struct qfile_envelope *env, struct buf *err)
{
	struct stat st;
	struct buf b = BUF_INIT(64u << 20);
	bool ok;

	memset(env, 0, sizeof(*env));
	env->uid = -1;
	if (fstat(fd, &st) < 0) {
		buf_printf(err, "fstat: %s", strerror(errno));
		return false;
	}
	/* Read envelope records until the end record; the content is not read. */
	for (;;) {
		char chunk[16384];
		ssize_t n = pread(fd, chunk, sizeof(chunk), (off_t)b.len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			buf_printf(err, "read: %s", strerror(errno));
			buf_free(&b);
			return false;
		}
		if (n == 0 || !buf_append(&b, chunk, (size_t)n))
			break;
		/* Stop once the end record is inside what we have: cheap scan of record headers. */
		size_t off = 4;
		bool found = false;
		while (b.len >= 4 && off + 5 <= b.len) {
			const unsigned char *p = (const unsigned char *)b.data + off;
			size_t rl = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
			if (rl > QFILE_RECORD_MAX)
				break;
			if (off + 5 + rl > b.len)
				break;
			if (p[0] == QREC_END) {
				found = true;
				break;
			}
			off += 5 + rl;
		}
		if (found)
			break;
	}
	/* parse_records needs the envelope part plus knowledge of the file size for the length check. */
	ok = parse_records((const unsigned char *)b.data, b.len, (uint64_t)st.st_size, env, err);
	buf_free(&b);
	if (!ok) {
		qfile_envelope_free(env);
		return false;
	}
	if (lseek(fd, (off_t)env->content_offset, SEEK_SET) < 0) {
		buf_printf(err, "seek: %s", strerror(errno));
		qfile_envelope_free(env);
		return false;
	}
	return true;
}
