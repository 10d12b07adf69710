/* Maildir++ folders as IMAP mailboxes; see mailboxes.h. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "fsutil.h"
#include "log.h"
#include "maildir.h"
#include "mailboxes.h"
#include "mbox.h"
#include "str.h"

#define SUBS_MAX	(1024u * 1024)

static const struct {
	const char *name, *use;
} special[] = {
	{ "Sent", "\\Sent" }, { "Drafts", "\\Drafts" }, { "Trash", "\\Trash" }, { "Junk", "\\Junk" },
	{ "Archive", "\\Archive" },
};

const char *imapd_special_use(const char *name)
{
	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		if (strcmp(name, special[i].name) == 0)
			return special[i].use;
	return NULL;
}

/* ---- name lists ---- */

void imapd_names_add(struct imapd_names *n, const char *name)
{
	if (n->count == n->cap) {
		size_t ncap = n->cap ? n->cap * 2 : 16;
		n->v = xreallocarray(n->v, ncap, sizeof(*n->v));
		n->cap = ncap;
	}
	n->v[n->count++] = xstrdup(name);
}

bool imapd_names_has(const struct imapd_names *n, const char *name)
{
	for (size_t i = 0; i < n->count; i++)
		if (strcmp(n->v[i], name) == 0)
			return true;
	return false;
}

void imapd_names_free(struct imapd_names *n)
{
	for (size_t i = 0; i < n->count; i++)
		free(n->v[i]);
	xfree(&n->v);
	n->count = n->cap = 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- paths ---- */

bool imapd_mailbox_path(const char *root, const char *name, struct buf *path)
{
	buf_reset(path);
	return maildir_folder_path(root, name, path);
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool imapd_mailbox_exists_at(const char *path)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	bool ok = buf_printf(&p, "%s/cur", path) && is_dir(buf_cstr(&p));
	buf_free(&p);
	return ok;
}

bool imapd_mailbox_exists(const char *root, const char *name)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	bool ok = imapd_mailbox_path(root, name, &p) && buf_puts(&p, "/cur") && is_dir(buf_cstr(&p));
	buf_free(&p);
	return ok;
}

/* ".A.B" -> "A/B" when that is a valid folder name (so odd directories a user made by hand are ignored). */
static bool dirent_name(const char *root, const char *d, struct buf *name)
{
	struct buf check = BUF_INIT(BUF_NOLIMIT);
	bool ok;

	buf_reset(name);
	if (d[0] != '.' || d[1] == '\0' || d[1] == '.')
		return false;
	for (const char *p = d + 1; *p; p++)
		buf_putc(name, *p == '.' ? '/' : *p);
	ok = !str_eq_ci(buf_cstr(name), "INBOX") && maildir_folder_path(root, buf_cstr(name), &check) &&
	     strcmp(strrchr(buf_cstr(&check), '/') + 1, d) == 0;
	buf_free(&check);
	return ok;
}

void imapd_mailboxes_list(const char *root, struct imapd_names *out)
{
	struct buf name = BUF_INIT(4096), path = BUF_INIT(BUF_NOLIMIT);
	size_t first;
	DIR *dir;

	imapd_names_add(out, "INBOX");
	first = out->count;
	dir = opendir(root);
	if (!dir)
		goto done;
	struct dirent *de;
	while ((de = readdir(dir)) != NULL) {
		if (!dirent_name(root, de->d_name, &name))
			continue;
		buf_reset(&path);
		buf_printf(&path, "%s/%s/cur", root, de->d_name);
		if (is_dir(buf_cstr(&path)))
			imapd_names_add(out, buf_cstr(&name));
	}
	closedir(dir);
	qsort(out->v + first, out->count - first, sizeof(*out->v), cmp_str);
done:
	buf_free(&name);
	buf_free(&path);
}

/* ---- create, delete, rename ---- */

enum imapd_mbox_result imapd_mailbox_create(const char *root, const char *name, struct buf *err)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	enum imapd_mbox_result r;

	if (str_eq_ci(name, "INBOX") || imapd_mailbox_exists(root, name))
		r = IMAPD_MBOX_EXISTS;
	else if (!imapd_mailbox_path(root, name, &p))
		r = IMAPD_MBOX_BADNAME;
	else if (!maildir_make(buf_cstr(&p), 0700, err))
		r = IMAPD_MBOX_FAILED;
	else if (!fsutil_fsync_dir(root))
		r = IMAPD_MBOX_FAILED;
	else {
		/* a new folder: whatever arrives is new to the next session that selects it */
		imapd_recent_set(buf_cstr(&p), 0);
		r = IMAPD_MBOX_OK;
	}
	buf_free(&p);
	return r;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 || errno == ENOENT ? 0 : -1;
}

enum imapd_mbox_result imapd_mailbox_delete(const char *root, const char *name, struct buf *err)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT), trash = BUF_INIT(BUF_NOLIMIT);
	enum imapd_mbox_result r = IMAPD_MBOX_OK;

	if (str_eq_ci(name, "INBOX")) {
		r = IMAPD_MBOX_BADNAME;
	} else if (!imapd_mailbox_exists(root, name) || !imapd_mailbox_path(root, name, &p)) {
		r = IMAPD_MBOX_NONEXISTENT;
	} else {
		/* rename away first: the folder vanishes at once even if removing its files is cut short, and a
		 * name starting with ".." is never listed */
		buf_printf(&trash, "%s/..deleted.%ld.%ld", root, (long)getpid(), (long)time(NULL));
		if (rename(buf_cstr(&p), buf_cstr(&trash)) != 0) {
			buf_printf(err, "rename %s: %s", buf_cstr(&p), strerror(errno));
			r = IMAPD_MBOX_FAILED;
		} else {
			fsutil_fsync_dir(root);
			if (nftw(buf_cstr(&trash), rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
				log_warn("imapd: removing %s: %s", buf_cstr(&trash), strerror(errno));
		}
	}
	buf_free(&p);
	buf_free(&trash);
	return r;
}

/* Move every message file of the folder root's sub (new or cur) into the same sub of dst. */
static bool move_messages(const char *root, const char *dst, const char *sub, struct buf *err)
{
	struct buf from = BUF_INIT(BUF_NOLIMIT), a = BUF_INIT(BUF_NOLIMIT), b = BUF_INIT(BUF_NOLIMIT);
	bool ok = true;
	DIR *d;

	buf_printf(&from, "%s/%s", root, sub);
	d = opendir(buf_cstr(&from));
	if (!d) {
		buf_free(&from);
		return errno == ENOENT;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		buf_reset(&a);
		buf_reset(&b);
		buf_printf(&a, "%s/%s", buf_cstr(&from), de->d_name);
		buf_printf(&b, "%s/%s/%s", dst, sub, de->d_name);
		if (rename(buf_cstr(&a), buf_cstr(&b)) != 0 && errno != ENOENT) {
			buf_printf(err, "rename %s: %s", buf_cstr(&a), strerror(errno));
			ok = false;
			break;
		}
	}
	closedir(d);
	buf_reset(&b);
	buf_printf(&b, "%s/%s", dst, sub);
	if (ok)
		ok = fsutil_fsync_dir(buf_cstr(&b)) && fsutil_fsync_dir(buf_cstr(&from));
	buf_free(&from);
	buf_free(&a);
	buf_free(&b);
	return ok;
}

enum imapd_mbox_result imapd_mailbox_rename(const char *root, const char *from, const char *to, struct buf *err)
{
	struct buf pf = BUF_INIT(BUF_NOLIMIT), pt = BUF_INIT(BUF_NOLIMIT);
	struct buf a = BUF_INIT(BUF_NOLIMIT), b = BUF_INIT(BUF_NOLIMIT);
	struct imapd_names all = { 0 }, src = { 0 }, dst = { 0 };
	enum imapd_mbox_result r = IMAPD_MBOX_OK;

	if (!imapd_mailbox_path(root, to, &pt) || str_eq_ci(to, "INBOX")) {
		r = str_eq_ci(to, "INBOX") ? IMAPD_MBOX_EXISTS : IMAPD_MBOX_BADNAME;
		goto out;
	}
	if (imapd_mailbox_exists(root, to)) {
		r = IMAPD_MBOX_EXISTS;
		goto out;
	}
	if (str_eq_ci(from, "INBOX")) {
		r = imapd_mailbox_create(root, to, err);
		if (r == IMAPD_MBOX_OK && (!move_messages(root, buf_cstr(&pt), "cur", err) ||
					   !move_messages(root, buf_cstr(&pt), "new", err))) {
			/* all or nothing: what moved goes back, and the new folder goes */
			struct buf e2 = BUF_INIT(1024);
			if (!move_messages(buf_cstr(&pt), root, "cur", &e2) ||
			    !move_messages(buf_cstr(&pt), root, "new", &e2) ||
			    imapd_mailbox_delete(root, to, &e2) != IMAPD_MBOX_OK)
				log_error("imapd: RENAME INBOX rollback: %s", buf_cstr(&e2));
			buf_free(&e2);
			r = IMAPD_MBOX_FAILED;
		}
		goto out;
	}
	if (!imapd_mailbox_path(root, from, &pf)) {
		r = IMAPD_MBOX_NONEXISTENT;
		goto out;
	}
	/* every directory to move is named and checked before the first rename, and a rename that fails puts back
	 * the ones already done: the hierarchy moves as a whole or not at all */
	imapd_mailboxes_list(root, &all);
	size_t flen = strlen(from);
	for (size_t i = 0; i < all.count; i++) {
		const char *n = all.v[i];
		struct stat st;
		if (strcmp(n, from) != 0 && !(strncmp(n, from, flen) == 0 && n[flen] == '/'))
			continue;
		buf_reset(&b);
		buf_printf(&b, "%s%s", to, n + flen);
		if (!imapd_mailbox_path(root, n, &pf) || !imapd_mailbox_path(root, buf_cstr(&b), &a)) {
			r = IMAPD_MBOX_BADNAME;
			goto out;
		}
		if (lstat(buf_cstr(&a), &st) == 0) {
			r = IMAPD_MBOX_EXISTS;
			goto out;
		}
		imapd_names_add(&src, buf_cstr(&pf));
		imapd_names_add(&dst, buf_cstr(&a));
	}
	if (src.count == 0) {
		/* neither the folder nor anything below it (a parent that is only a prefix moves its children) */
		r = IMAPD_MBOX_NONEXISTENT;
		goto out;
	}
	size_t done;
	for (done = 0; done < src.count; done++)
		if (rename(src.v[done], dst.v[done]) != 0) {
			/* a child whose new directory name is too long for the file system: the name's fault */
			r = errno == ENAMETOOLONG ? IMAPD_MBOX_BADNAME : IMAPD_MBOX_FAILED;
			buf_printf(err, "rename %s: %s", src.v[done], strerror(errno));
			break;
		}
	if (r != IMAPD_MBOX_OK)
		while (done-- > 0)
			if (rename(dst.v[done], src.v[done]) != 0)
				log_error("imapd: RENAME rollback: rename %s back to %s: %s", dst.v[done], src.v[done],
					  strerror(errno));
	if (!fsutil_fsync_dir(root))
		r = IMAPD_MBOX_FAILED;
out:
	imapd_names_free(&all);
	imapd_names_free(&src);
	imapd_names_free(&dst);
	buf_free(&pf);
	buf_free(&pt);
	buf_free(&a);
	buf_free(&b);
	return r;
}

/* ---- subscriptions ---- */

void imapd_subscriptions_read(const char *root, struct imapd_names *out)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT), data = BUF_INIT(SUBS_MAX);

	buf_printf(&path, "%s/%s", root, IMAPD_SUBSCRIPTIONS_FILE);
	if (fsutil_read_file(buf_cstr(&path), SUBS_MAX, &data)) {
		char *s = data.data ? data.data : (char *)"";
		while (*s) {
			char *nl = strchr(s, '\n');
			if (nl)
				*nl = '\0';
			if (*s && !imapd_names_has(out, s))
				imapd_names_add(out, s);
			if (!nl)
				break;
			s = nl + 1;
		}
	}
	buf_free(&path);
	buf_free(&data);
}

static bool subs_write(const char *root, const struct imapd_names *n, struct buf *err)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT), data = BUF_INIT(SUBS_MAX);
	bool ok = true;

	buf_printf(&path, "%s/%s", root, IMAPD_SUBSCRIPTIONS_FILE);
	for (size_t i = 0; i < n->count && ok; i++)
		ok = buf_printf(&data, "%s\n", n->v[i]);
	if (!ok)
		buf_puts(err, "too many subscriptions");
	else
		ok = fsutil_write_atomic(buf_cstr(&path), data.data ? data.data : "", data.len, 0600, err);
	buf_free(&path);
	buf_free(&data);
	return ok;
}

bool imapd_subscribe(const char *root, const char *name, bool on, struct buf *err)
{
	struct imapd_names n = { 0 }, keep = { 0 };
	bool ok;

	imapd_subscriptions_read(root, &n);
	if (on) {
		if (!imapd_names_has(&n, name))
			imapd_names_add(&n, name);
		ok = subs_write(root, &n, err);
	} else {
		for (size_t i = 0; i < n.count; i++)
			if (strcmp(n.v[i], name) != 0)
				imapd_names_add(&keep, n.v[i]);
		ok = subs_write(root, &keep, err);
	}
	imapd_names_free(&n);
	imapd_names_free(&keep);
	return ok;
}

bool imapd_mailboxes_prepare(const char *root, struct buf *err)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT);
	struct imapd_names subs = { 0 };
	bool ok = maildir_make(root, 0700, err);

	buf_printf(&p, "%s/%s", root, IMAPD_SUBSCRIPTIONS_FILE);
	if (ok && access(buf_cstr(&p), F_OK) != 0) {
		imapd_names_add(&subs, "INBOX");
		for (size_t i = 0; i < sizeof(special) / sizeof(special[0]) && ok; i++) {
			enum imapd_mbox_result r = imapd_mailbox_create(root, special[i].name, err);
			ok = r == IMAPD_MBOX_OK || r == IMAPD_MBOX_EXISTS;
			imapd_names_add(&subs, special[i].name);
		}
		if (ok)
			ok = subs_write(root, &subs, err);
	}
	if (ok)
		imapd_recent_init(root);
	imapd_names_free(&subs);
	buf_free(&p);
	return ok;
}

void imapd_recent_read(const char *path, struct imapd_recent *r)
{
	struct buf f = BUF_INIT(BUF_NOLIMIT), data = BUF_INIT(16 * (IMAPD_RECENT_LIST_MAX + 1));

	memset(r, 0, sizeof(*r));
	buf_printf(&f, "%s/%s", path, IMAPD_RECENT_FILE);
	if (fsutil_read_file(buf_cstr(&f), data.max, &data) && data.len) {
		const char *s = data.data, *end = data.data + data.len;
		for (bool first = true; s < end; first = false) {
			const char *nl = memchr(s, '\n', (size_t)(end - s));
			uint64_t v;
			if (!nl || !str_to_u64n(s, (size_t)(nl - s), UINT32_MAX, &v))
				break;	/* a damaged tail: what was read stands */
			if (first) {
				r->mark = (uint32_t)v;
			} else if (r->n < IMAPD_RECENT_LIST_MAX) {
				if (!r->also)
					r->also = xcalloc(IMAPD_RECENT_LIST_MAX, sizeof(*r->also));
				r->also[r->n++] = (uint32_t)v;
			}
			s = nl + 1;
		}
	}
	buf_free(&f);
	buf_free(&data);
}

bool imapd_recent_has(const struct imapd_recent *r, uint32_t uid)
{
	if (uid > r->mark)
		return true;
	for (size_t i = 0; i < r->n; i++)
		if (r->also[i] == uid)
			return true;
	return false;
}

void imapd_recent_free(struct imapd_recent *r)
{
	xfree(&r->also);
	r->n = 0;
}

static void recent_write(const char *path, uint32_t mark, const uint32_t *also, size_t n)
{
	struct buf f = BUF_INIT(BUF_NOLIMIT), data = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);

	buf_printf(&f, "%s/%s", path, IMAPD_RECENT_FILE);
	buf_printf(&data, "%u\n", mark);
	for (size_t i = 0; i < n; i++)
		buf_printf(&data, "%u\n", also[i]);
	if (!fsutil_write_atomic(buf_cstr(&f), data.data, data.len, 0600, &err))
		log_warn("imapd: %s", buf_cstr(&err));
	buf_free(&f);
	buf_free(&data);
	buf_free(&err);
}

void imapd_recent_set(const char *path, uint32_t uid)
{
	recent_write(path, uid, NULL, 0);
}

/* The base of a Maildir file name: what stays the same from new/ to cur/ (",U=", ",S=" and ":2," go). */
static size_t name_base(const char *name)
{
	return strcspn(name, ",:");
}

void imapd_recent_init(const char *path)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	struct imapd_names fresh = { 0 };	/* bases of the names in new/, sorted */
	struct mbox *mb;
	DIR *d;

	buf_printf(&p, "%s/%s", path, IMAPD_RECENT_FILE);
	if (access(buf_cstr(&p), F_OK) == 0 || errno != ENOENT)
		goto out;
	/* what waits in new/ now is new to every session; the sync below moves it to cur/, so look first */
	buf_reset(&p);
	buf_printf(&p, "%s/new", path);
	if ((d = opendir(buf_cstr(&p))) != NULL) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL && fresh.count < IMAPD_RECENT_LIST_MAX)
			if (de->d_name[0] != '.') {
				imapd_names_add(&fresh, de->d_name);
				fresh.v[fresh.count - 1][name_base(de->d_name)] = '\0';
			}
		closedir(d);
		if (fresh.count)
			qsort(fresh.v, fresh.count, sizeof(*fresh.v), cmp_str);
	}
	if ((mb = mbox_open(path, &err)) == NULL) {
		log_error("imapd: %s", buf_cstr(&err));
		goto out;
	}
	/* new/ files get their UIDs before the cur/ files a first sync finds, so a threshold alone cannot say it:
	 * the mark covers every message, and those that came from new/ are listed as still recent */
	uint32_t *also = xcalloc(IMAPD_RECENT_LIST_MAX, sizeof(*also));
	size_t n = 0;
	for (size_t i = 0; i < mbox_count(mb) && n < IMAPD_RECENT_LIST_MAX; i++) {
		const struct mbox_msg *m = mbox_get(mb, i);
		char *base = xstrndup(m->name, name_base(m->name));
		if (fresh.count && bsearch(&base, fresh.v, fresh.count, sizeof(*fresh.v), cmp_str))
			also[n++] = m->uid;
		free(base);
	}
	recent_write(path, mbox_uidnext(mb) - 1, also, n);
	free(also);
	mbox_close(&mb);
out:
	imapd_names_free(&fresh);
	buf_free(&p);
	buf_free(&err);
}

bool imapd_mailbox_counts(const char *path, struct imapd_counts *out)
{
	struct buf p = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);
	struct mbox *mb;

	memset(out, 0, sizeof(*out));
	buf_printf(&p, "%s/cur", path);
	if (!is_dir(buf_cstr(&p))) {
		buf_free(&p);
		buf_free(&err);
		return false;
	}
	buf_free(&p);
	imapd_recent_init(path);
	if ((mb = mbox_open(path, &err)) == NULL) {
		log_error("imapd: %s", buf_cstr(&err));
		buf_free(&err);
		return false;
	}
	buf_free(&err);
	imapd_mbox_counts(mb, out);
	struct imapd_recent r;
	imapd_recent_read(path, &r);
	for (size_t i = 0; i < mbox_count(mb); i++)
		out->recent += imapd_recent_has(&r, mbox_get(mb, i)->uid);
	imapd_recent_free(&r);
	mbox_close(&mb);
	return true;
}

void imapd_mbox_counts(struct mbox *mb, struct imapd_counts *out)
{
	out->messages = (uint32_t)mbox_count(mb);
	out->unseen = 0;
	for (size_t i = 0; i < mbox_count(mb); i++)
		if (!strchr(mbox_get(mb, i)->flags, 'S'))
			out->unseen++;
	out->uidvalidity = mbox_uidvalidity(mb);
	out->uidnext = mbox_uidnext(mb);
	out->highestmodseq = mbox_highestmodseq(mb);
}
