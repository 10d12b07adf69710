/* imapd Maildir++ folders: listing ignores odd directories, create/delete/rename rules, subscriptions file,
 * first-login folders, counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "../../imapd/mailboxes.h"

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
	snprintf(root, sizeof(root), "%s/imapd-mbx-XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
	return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void mkd(const char *rel)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	assert_true(fsutil_mkdir_p(p, 0700));
}

static char *listing(void)
{
	struct imapd_names n = { 0 };
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	imapd_mailboxes_list(root, &n);
	for (size_t i = 0; i < n.count; i++)
		buf_printf(&b, "%s%s", i ? "," : "", n.v[i]);
	imapd_names_free(&n);
	return buf_steal(&b, NULL);
}

#define LISTING(want) do { char *l_ = listing(); assert_string_equal(l_, (want)); free(l_); } while (0)

static void test_prepare_and_list(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(1024);
	assert_true(imapd_mailboxes_prepare(root, &err));
	LISTING("INBOX,Archive,Drafts,Junk,Sent,Trash");
	/* a second login does not bring back a deleted special folder */
	assert_int_equal(imapd_mailbox_delete(root, "Junk", &err), IMAPD_MBOX_OK);
	assert_true(imapd_mailboxes_prepare(root, &err));
	LISTING("INBOX,Archive,Drafts,Sent,Trash");
	/* odd directories are not folders */
	mkd(".noCur");
	mkd("..deleted.1.2/cur");
	mkd(".a..b/cur");
	mkd(".INBOX/cur");
	mkd(".inbox/cur");
	mkd(".x./cur");
	mkd("plain/cur");
	mkd(".Lists.postern/cur");
	LISTING("INBOX,Archive,Drafts,Lists/postern,Sent,Trash");
	struct imapd_names subs = { 0 };
	imapd_subscriptions_read(root, &subs);
	assert_int_equal(subs.count, 6);
	assert_string_equal(subs.v[0], "INBOX");
	imapd_names_free(&subs);
	assert_string_equal(imapd_special_use("Sent"), "\\Sent");
	assert_null(imapd_special_use("sent"));
	buf_free(&err);
}

static void test_create_delete_rename(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(1024);
	assert_true(imapd_mailboxes_prepare(root, &err));
	assert_int_equal(imapd_mailbox_create(root, "INBOX", &err), IMAPD_MBOX_EXISTS);
	assert_int_equal(imapd_mailbox_create(root, "a.b", &err), IMAPD_MBOX_BADNAME);
	assert_int_equal(imapd_mailbox_create(root, "a//b", &err), IMAPD_MBOX_BADNAME);
	assert_int_equal(imapd_mailbox_create(root, "/a", &err), IMAPD_MBOX_BADNAME);
	assert_int_equal(imapd_mailbox_create(root, "a/b", &err), IMAPD_MBOX_OK);
	assert_int_equal(imapd_mailbox_create(root, "a", &err), IMAPD_MBOX_OK);
	assert_int_equal(imapd_mailbox_create(root, "a/b/c", &err), IMAPD_MBOX_OK);
	assert_int_equal(imapd_mailbox_rename(root, "a", "z", &err), IMAPD_MBOX_OK);
	LISTING("INBOX,Archive,Drafts,Junk,Sent,Trash,z,z/b,z/b/c");
	assert_int_equal(imapd_mailbox_rename(root, "nope", "q", &err), IMAPD_MBOX_NONEXISTENT);
	assert_int_equal(imapd_mailbox_rename(root, "z", "Sent", &err), IMAPD_MBOX_EXISTS);
	assert_int_equal(imapd_mailbox_rename(root, "z", "INBOX", &err), IMAPD_MBOX_EXISTS);
	assert_int_equal(imapd_mailbox_rename(root, "z", "bad.name", &err), IMAPD_MBOX_BADNAME);
	assert_int_equal(imapd_mailbox_delete(root, "z", &err), IMAPD_MBOX_OK);
	LISTING("INBOX,Archive,Drafts,Junk,Sent,Trash,z/b,z/b/c");
	assert_int_equal(imapd_mailbox_delete(root, "z", &err), IMAPD_MBOX_NONEXISTENT);
	assert_int_equal(imapd_mailbox_delete(root, "INBOX", &err), IMAPD_MBOX_BADNAME);
	/* nothing left over from the delete */
	char p[256];
	snprintf(p, sizeof(p), "%s/.z", root);
	assert_int_not_equal(access(p, F_OK), 0);
	buf_free(&err);
}

static void test_subscriptions_and_counts(void **state)
{
	(void)state;
	struct buf err = BUF_INIT(1024);
	assert_true(imapd_mailboxes_prepare(root, &err));
	assert_true(imapd_subscribe(root, "x/y", true, &err));
	assert_true(imapd_subscribe(root, "x/y", true, &err));	/* twice is once */
	assert_true(imapd_subscribe(root, "Sent", false, &err));
	struct imapd_names subs = { 0 };
	imapd_subscriptions_read(root, &subs);
	assert_int_equal(subs.count, 6);
	assert_false(imapd_names_has(&subs, "Sent"));
	assert_true(imapd_names_has(&subs, "x/y"));
	imapd_names_free(&subs);

	struct imapd_counts c;
	char p[256];
	snprintf(p, sizeof(p), "%s/.Nope", root);
	assert_false(imapd_mailbox_counts(p, &c));
	assert_true(imapd_mailbox_counts(root, &c));
	assert_int_equal(c.messages, 0);
	uint32_t v = c.uidvalidity;
	assert_true(v != 0);
	/* a file that is not a Maildir message name is not counted */
	snprintf(p, sizeof(p), "%s/cur/.hidden", root);
	FILE *f = fopen(p, "w");
	fclose(f);
	snprintf(p, sizeof(p), "%s/cur/123.M1.host:2,RS", root);
	f = fopen(p, "w");
	fclose(f);
	assert_true(imapd_mailbox_counts(root, &c));
	assert_int_equal(c.messages, 1);
	assert_int_equal(c.unseen, 0);
	assert_int_equal(c.uidvalidity, v);	/* kept */
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_prepare_and_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_delete_rename, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscriptions_and_counts, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
