/* Fuzz the privilege-separated login's handover frame as the root parent reads it (prelogin_decode): the first
 * byte chooses whether a descriptor "came along", the rest is the frame. Whatever is accepted must hold what the
 * parent relies on before it switches users: a uid other than 0, an absolute Maildir, TLS exactly when a socket
 * came with it, and it must encode back to a frame that decodes the same.
 * Seeds in tests/fuzz/seeds/prelogin/ are made by the builder: compile this file with -DPRELOGIN_FUZZ_SEEDS
 * against libpostern.a and run it with the seed directory as argument. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "prelogin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf err = BUF_INIT(1024), again = BUF_INIT(BUF_NOLIMIT);
	struct prelogin_login l, l2;
	bool with_fd;

	if (size < 1)
		return 0;
	with_fd = data[0] & 1;
	if (prelogin_decode(data + 1, size - 1, with_fd, &l, &err)) {
		if (l.uid == 0 || l.maildir[0] != '/' || l.tls != with_fd || l.fd != -1)
			__builtin_trap();
		if (!prelogin_encode(&l, l.tls, &again) || !prelogin_decode(again.data, again.len, with_fd, &l2, &err))
			__builtin_trap();
		if (strcmp(l.user, l2.user) || strcmp(l.maildir, l2.maildir) || l.uid != l2.uid || l.gid != l2.gid ||
		    (l.tag == NULL) != (l2.tag == NULL) || (l.tag && strcmp(l.tag, l2.tag)) ||
		    (l.token == NULL) != (l2.token == NULL) || (l.token && strcmp(l.token, l2.token)) ||
		    l.input.len != l2.input.len || (l.input.len && memcmp(l.input.data, l2.input.data, l.input.len)))
			__builtin_trap();
		prelogin_login_clear(&l2);
		prelogin_login_clear(&l);
	}
	buf_free(&again);
	buf_free(&err);
	return 0;
}

#ifdef PRELOGIN_FUZZ_SEEDS
static void seed(const char *dir, const char *name, bool tls, const char *user, const char *maildir, const char *tag,
                 const char *input)
{
	struct prelogin_login l;
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	char path[512];
	FILE *f;

	prelogin_login_init(&l);
	l.user = (char *)user;
	l.maildir = (char *)maildir;
	l.uid = 1000;
	l.gid = 1000;
	l.tag = (char *)tag;
	l.token = (char *)"0123456789abcdef0123456789abcdef";
	if (input)
		buf_puts(&l.input, input);
	buf_putc(&b, tls ? 1 : 0);
	prelogin_encode(&l, tls, &b);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(b.data, 1, b.len, f) != b.len || fclose(f) != 0)
		perror(path);
	buf_free(&b);
	buf_free(&l.input);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	seed(argv[1], "pop3-plain", false, "fred", "/home/fred/Maildir/", NULL, NULL);
	seed(argv[1], "imap-tls-pipelined", true, "bob@example.org", "/srv/mail/example.org/bob", "a001",
	     "a002 SELECT INBOX\r\na003 LOGOUT\r\n");
	seed(argv[1], "imap-plain", false, "alice", "/home/alice/Maildir", "x", NULL);
	return 0;
}
#endif
