/* imapd selected state (imapd/selected.c, keywords.c): the view over the shared index, sequence and UID sets,
 * flag renames, updates announced after other tools' changes (flags, expunges held back when not allowed, new
 * deliveries), internal dates put into names, and the per-folder keyword list with its 26-letter limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "maildir.h"
#include "../../imapd/flags.h"
#include "../../imapd/imapd.h"
#include "../../imapd/keywords.h"
#include "../../imapd/selected.h"

static char root[64];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static int setup(void **state)
{
	(void)state;
	const char *tmp = getenv("TMPDIR");
	snprintf(root, sizeof(root), "%s/imapd-sel-XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
	if (!mkdtemp(root))
		return -1;
	struct buf err = BUF_INIT(1024);
	bool ok = maildir_make(root, 0700, &err);
	buf_free(&err);
	return ok ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void deliver(const char *text)
{
	struct buf err = BUF_INIT(1024);
	struct maildir_writer *w = maildir_begin(root, 0600, &err);
	assert_non_null(w);
	assert_true(maildir_write(w, text, strlen(text)));
	assert_true(maildir_commit(&w, NULL, NULL, &err));
	buf_free(&err);
}

/* The name in cur/ of the file whose name contains ",U=uid" followed by ':'. */
static char *cur_name(uint32_t uid)
{
	char p[128], pat[32];
	snprintf(p, sizeof(p), "%s/cur", root);
	snprintf(pat, sizeof(pat), ",U=%u:", uid);
	DIR *d = opendir(p);
	struct dirent *de;
	char *found = NULL;
	while ((de = readdir(d)) != NULL)
		if (strstr(de->d_name, pat))
			found = xstrdup(de->d_name);
	closedir(d);
	return found;
}

struct env {
	struct imapd_settings set;
	struct imapd_session sess;
	int peer;
};

static void env_start(struct env *e)
{
	int sv[2];
	memset(e, 0, sizeof(*e));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	e->set.timeout_ms = 1000;
	imapd_session_init(&e->sess, &e->set, sv[0], true);
	e->peer = sv[1];
	fcntl(e->peer, F_SETFL, O_NONBLOCK);
	e->sess.login.user = xstrdup("fred");
	e->sess.sel = xcalloc(1, sizeof(*e->sess.sel));
	e->sess.sel->path = xstrdup(root);
	e->sess.sel->name = xstrdup("INBOX");
	e->sess.state = IMAPD_SELECTED;
	struct buf err = BUF_INIT(1024);
	assert_true(imapd_sel_open(e->sess.sel, &err));
	buf_free(&err);
}

/* What the session sent since the last call. */
static char *sent(struct env *e)
{
	static char b[8192];
	stream_flush(e->sess.s);
	ssize_t n = read(e->peer, b, sizeof(b) - 1);
	b[n > 0 ? n : 0] = '\0';
	return b;
}

static void env_stop(struct env *e)
{
	imapd_session_free(&e->sess);
	close(e->peer);
}

static void test_view_sets_flags_updates(void **state)
{
	(void)state;
	deliver("Subject: one\n\n1\n");
	deliver("Subject: two\n\n2\n");
	deliver("Subject: three\n\n3\n");
	struct env e;
	env_start(&e);
	struct imapd_selected *sel = e.sess.sel;
	assert_int_equal(sel->n, 3);
	assert_int_equal(sel->v[0].uid, 1);
	assert_int_equal(sel->v[2].uid, 3);
	assert_int_equal(sel->uidnext, 4);

	uint32_t *seqs;
	size_t n;
	assert_true(imapd_sel_set(&e.sess, "2:*", false, &seqs, &n));
	assert_int_equal(n, 2);
	assert_int_equal(seqs[0], 2);
	free(seqs);
	assert_true(imapd_sel_set(&e.sess, "3,1", false, &seqs, &n));
	assert_int_equal(n, 2);
	assert_int_equal(seqs[0], 1);	/* sorted */
	free(seqs);
	assert_false(imapd_sel_set(&e.sess, "4", false, &seqs, &n));	/* past EXISTS */
	assert_false(imapd_sel_set(&e.sess, "1:x", false, &seqs, &n));
	assert_true(imapd_sel_set(&e.sess, "2:10", true, &seqs, &n));	/* UIDs: missing ones skipped */
	assert_int_equal(n, 2);
	free(seqs);
	assert_true(imapd_sel_set(&e.sess, "9:*", true, &seqs, &n));	/* "n:*" past the top is the top */
	assert_int_equal(n, 1);
	assert_int_equal(seqs[0], 3);
	free(seqs);

	/* our flag change is a rename; nothing is announced for it */
	assert_true(imapd_sel_set_flags(&e.sess, 0, IMAP_FLAG_SEEN | IMAPD_KW_BIT('b')));
	char *nm = cur_name(1);
	assert_non_null(strstr(nm, ":2,Sb"));
	free(nm);
	imapd_sel_update(&e.sess, true);
	assert_string_equal(sent(&e), "");

	/* another tool flags message 2 and removes message 3; a delivery arrives */
	char from[256], to[256];
	nm = cur_name(2);
	snprintf(from, sizeof(from), "%s/cur/%s", root, nm);
	snprintf(to, sizeof(to), "%s/cur/%.*s:2,F", root, (int)strcspn(nm, ":"), nm);
	assert_int_equal(rename(from, to), 0);
	free(nm);
	/* a flag change by us on a file renamed meanwhile: the index learns the new name and it works */
	assert_true(imapd_sel_set_flags(&e.sess, 1, IMAP_FLAG_FLAGGED | IMAP_FLAG_ANSWERED));
	nm = cur_name(3);
	snprintf(from, sizeof(from), "%s/cur/%s", root, nm);
	assert_int_equal(unlink(from), 0);
	free(nm);
	deliver("Subject: four\n\n4\n");

	/* during FETCH/STORE/SEARCH: no EXPUNGE, the number stays */
	imapd_sel_update(&e.sess, false);
	const char *s = sent(&e);
	assert_null(strstr(s, "EXPUNGE"));
	assert_non_null(strstr(s, "* 4 EXISTS"));
	assert_int_equal(sel->n, 4);
	assert_true(sel->v[2].gone);
	assert_int_equal(imapd_sel_mbox_index(&e.sess, 2), (size_t)-1);
	struct buf data = BUF_INIT(BUF_NOLIMIT);
	assert_false(imapd_sel_read(&e.sess, 2, &data));
	assert_true(imapd_sel_read(&e.sess, 3, &data));
	assert_memory_equal(data.data, "Subject: four\n\n4\n", data.len);
	buf_free(&data);
	/* then at NOOP */
	imapd_sel_update(&e.sess, true);
	s = sent(&e);
	assert_non_null(strstr(s, "* 3 EXPUNGE"));
	assert_null(strstr(s, "EXISTS"));
	assert_int_equal(sel->n, 3);
	assert_int_equal(sel->v[2].uid, 4);

	/* a flag change by someone else is announced once */
	nm = cur_name(4);
	snprintf(from, sizeof(from), "%s/cur/%s", root, nm);
	snprintf(to, sizeof(to), "%s/cur/%.*s:2,T", root, (int)strcspn(nm, ":"), nm);
	assert_int_equal(rename(from, to), 0);
	free(nm);
	imapd_sel_update(&e.sess, true);
	/* (recent for this session, the first to see it) */
	assert_string_equal(sent(&e), "* 3 FETCH (FLAGS (\\Deleted \\Recent))\r\n");
	imapd_sel_update(&e.sess, true);
	assert_string_equal(sent(&e), "");
	env_stop(&e);
}

static void test_set_idate(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(1024);
	struct maildir_writer *w = maildir_begin(root, 0600, &err);
	char *name = NULL;
	assert_true(maildir_write(w, "x\n", 2));
	assert_true(maildir_commit(&w, "S", &name, &err));
	assert_true(imapd_set_idate(root, &name, 760686745));
	assert_true(strncmp(name, "760686745.", 10) == 0);
	assert_non_null(strstr(name, ":2,S"));
	char p[256];
	struct stat st;
	snprintf(p, sizeof(p), "%s/cur/%s", root, name);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal((long)st.st_mtime, 760686745L);
	free(name);
	buf_free(&err);
}

static void test_keywords(void **state)
{
	(void)state;
	char *kw[IMAPD_KEYWORDS_MAX] = { 0 };
	struct buf err = BUF_INIT(1024);

	assert_false(imapd_keywords_load(root, kw));
	assert_int_equal(imapd_keyword_letter(root, kw, "$Label1", false, &err), 0);
	assert_int_equal(imapd_keyword_letter(root, kw, "$Label1", true, &err), 'a');
	assert_int_equal(imapd_keyword_letter(root, kw, "$label1", true, &err), 'a');
	assert_int_equal(imapd_keyword_letter(root, kw, "Work", true, &err), 'b');
	/* another reader sees the same list */
	char *kw2[IMAPD_KEYWORDS_MAX] = { 0 };
	assert_true(imapd_keywords_load(root, kw2));
	assert_string_equal(kw2[1], "Work");
	assert_false(imapd_keywords_load(root, kw2));
	for (int i = 2; i < IMAPD_KEYWORDS_MAX; i++) {
		char n[16];
		snprintf(n, sizeof(n), "k%d", i);
		assert_int_equal(imapd_keyword_letter(root, kw2, n, true, &err), 'a' + i);
	}
	/* kw learns the new names from the file before adding (no letter given twice) */
	assert_int_equal(imapd_keyword_letter(root, kw, "one-too-many", true, &err), -1);
	assert_non_null(strstr(buf_cstr(&err), "[LIMIT]"));
	assert_int_equal(imapd_keyword_letter(root, kw, "k25", false, &err), 'z');

	/* flag lists from the wire */
	struct imap_arg items[3] = { { .type = IMAP_ARG_ATOM, .str = "\\Seen" }, { .type = IMAP_ARG_ATOM, .str = "WORK" },
		{ .type = IMAP_ARG_ATOM, .str = "k3" } };
	struct imap_arg list = { .type = IMAP_ARG_LIST, .list = items, .count = 3 };
	unsigned letters;
	bool bad;
	assert_true(imapd_keywords_from_args(root, kw, &list, false, &letters, &bad, &err));
	assert_int_equal(letters, (1u << 1) | (1u << 3));
	struct imap_arg q = { .type = IMAP_ARG_QUOTED, .str = "x" };
	assert_false(imapd_keywords_from_args(root, kw, &q, true, &letters, &bad, &err));
	assert_true(bad);
	for (int i = 0; i < IMAPD_KEYWORDS_MAX; i++) {
		free(kw[i]);
		free(kw2[i]);
	}
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_view_sets_flags_updates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_idate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keywords, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
