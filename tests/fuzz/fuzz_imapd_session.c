/* Fuzz whole imapd sessions: the input is what a client sends (login with password "pw" succeeds), the server
 * runs on one end of a socketpair against a scratch Maildir, a thread drains its replies. Exercises every command
 * handler's argument checks and the folder code with hostile names. INBOX always holds a few messages (a
 * multipart one among them) so the selected state (FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE) runs on real data.
 * The scratch tree is wiped when it grows and removed at exit. */
#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "maildir.h"
#include "../../imapd/imapd.h"
#include "../../imapd/mailboxes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char scratch[64];
static char *maildir;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static void cleanup(void)
{
	if (scratch[0])
		nftw(scratch, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static bool auth(void *ctx, const char *user, const char *pass, bool encrypted, bool loopback,
		      struct imapd_login *out, bool *tempfail)
{
	(void)ctx;
	(void)tempfail;
	(void)encrypted;
	(void)loopback;
	if (strcmp(pass, "pw") != 0)
		return false;
	out->user = xstrdup(user);
	out->maildir = xstrdup(maildir);
	out->uid = getuid();
	out->gid = getgid();
	return true;
}

static void *drain(void *arg)
{
	int fd = *(int *)arg;
	char b[65536];
	while (read(fd, b, sizeof(b)) > 0)
		;
	return NULL;
}

static const char *const messages[] = {
	"From: A <a@example.org>\nTo: b@example.net\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\n"
	"Date: Tue, 1 Dec 2026 08:00:00 +0000\n\nhello body\n",
	"Subject: multi\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=xx\n\n--xx\n"
	"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\nw5xiZXI=\n--xx\n"
	"Content-Type: message/rfc822\n\nSubject: inner\n\ninner text\n--xx--\n",
	"no header at all\n",
};

/* INBOX gets its sample messages back when a session expunged or moved them away. */
static void fill_inbox(void)
{
	struct buf err = BUF_INIT(1024), p = BUF_INIT(BUF_NOLIMIT);
	size_t have = 0;

	if (!maildir_make(maildir, 0700, &err))
		abort();
	for (int i = 0; i < 2; i++) {
		buf_reset(&p);
		buf_printf(&p, "%s/%s", maildir, i ? "new" : "cur");
		DIR *d = opendir(buf_cstr(&p));
		struct dirent *de;
		while (d && (de = readdir(d)) != NULL)
			have += de->d_name[0] != '.';
		if (d)
			closedir(d);
	}
	for (size_t i = 0; have < 3 && i < sizeof(messages) / sizeof(messages[0]); i++, have++) {
		struct maildir_writer *w = maildir_begin(maildir, 0600, &err);
		if (!w || !maildir_write(w, messages[i], strlen(messages[i])) || !maildir_commit(&w, NULL, NULL, &err))
			abort();
	}
	buf_free(&err);
	buf_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!maildir) {
		log_init("fuzz_imapd");
		log_to_file("/dev/null");
		const char *tmp = getenv("TMPDIR");
		snprintf(scratch, sizeof(scratch), "%s/fuzz-imapd-XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
		if (!mkdtemp(scratch))
			abort();
		atexit(cleanup);
		size_t n = strlen(scratch) + 8;
		maildir = xmalloc(n);
		snprintf(maildir, n, "%s/m", scratch);
	}
	fill_inbox();
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	pthread_t th;
	if (pthread_create(&th, NULL, drain, &sv[0]) != 0)
		abort();
	/* the input fits the socket buffer: written whole before the session runs, then EOF */
	int w = dup(sv[0]);
	size_t off = 0;
	while (off < size) {
		ssize_t n = write(w, data + off, size - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(w, SHUT_WR);
	close(w);

	struct imapd_settings set = { .max_line = 4096, .max_literal = 65536, .max_literal_preauth = 1024,
		.timeout_ms = 2000, .max_bad = 50, .auth = auth };
	struct imapd_session sess;
	imapd_session_init(&sess, &set, sv[1], true);
	imapd_session_run(&sess);
	imapd_session_free(&sess);	/* closes sv[1]: the drain thread sees EOF */
	pthread_join(th, NULL);
	close(sv[0]);

	/* keep the tree small so runs stay fast */
	struct imapd_names n = { 0 };
	imapd_mailboxes_list(maildir, &n);
	static unsigned runs;
	/* copies pile up in other folders: start over now and then */
	if (n.count > 40 || ++runs % 500 == 0)
		cleanup();
	imapd_names_free(&n);
	return 0;
}
