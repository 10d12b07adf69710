/* Fuzz the whole smtpd session: arbitrary client bytes through a socketpair into smtpd_session_run(), as a
 * network client would send them, with the queue in a temporary directory. The first byte picks options
 * (trusted client or not, AUTH required, bare-newline policy, small limits) so every path is reachable. A thread
 * drains the replies so the session never blocks on output. */
#include <arpa/inet.h>
#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "../../smtpd/smtpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char qdir[64];
static char incoming[96];

static enum smtpd_verdict fake_check(const struct smtpd_auth_req *rq, struct buf *user)
{
	const char *authcid = rq->authcid, *passwd = rq->passwd;

	if (strcmp(passwd, "secret") != 0)
		return SMTPD_REJECT;
	buf_puts(user, authcid);
	return SMTPD_OK;
}

static void clean_incoming(void);

/* Leave nothing behind: the queue directory goes when the fuzzer exits. */
static void teardown(void)
{
	char p[128];

	clean_incoming();
	snprintf(p, sizeof(p), "%s/tmp", qdir);
	rmdir(p);
	rmdir(incoming);
	rmdir(qdir);
}

static void setup(void)
{
	char p[128];

	snprintf(qdir, sizeof(qdir), "/tmp/fuzz-smtpd-XXXXXX");
	if (!mkdtemp(qdir))
		abort();
	snprintf(p, sizeof(p), "%s/tmp", qdir);
	mkdir(p, 0700);
	snprintf(incoming, sizeof(incoming), "%s/incoming", qdir);
	mkdir(incoming, 0700);
	log_init("smtpd");
	log_to_file("/dev/null");
	smtpd_auth_check = fake_check;
	atexit(teardown);
}

static void clean_incoming(void)
{
	DIR *d = opendir(incoming);
	struct dirent *e;
	char p[512];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", incoming, e->d_name);
		unlink(p);
	}
	closedir(d);
}

struct feeder {
	int fd;
	const uint8_t *data;
	size_t size;
};

/* Write the input, then read replies until the session closes its end. */
static void *feed(void *arg)
{
	struct feeder *f = arg;
	size_t off = 0;
	char b[4096];

	while (off < f->size) {
		ssize_t w = write(f->fd, f->data + off, f->size - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	shutdown(f->fd, SHUT_WR);
	while (read(f->fd, b, sizeof(b)) > 0)
		;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct smtpd_settings set;
	struct smtpd_policy_conf pc;
	struct smtpd_policy *pol;
	struct buf err = BUF_INIT(1024);
	struct sockaddr_in sin;
	int sv[2];
	pthread_t th;
	uint8_t opt;

	if (size < 1 || size > 16384)
		return 0;
	if (!ready) {
		setup();
		ready = true;
	}
	opt = data[0];
	memset(&pc, 0, sizeof(pc));
	pc.mydestination = "example.test, localhost";
	pc.mynetworks = (opt & 1) ? "127.0.0.1/32" : "10.0.0.0/8, [2001:db8::]/32";
	pc.delimiters = "+";
	pol = smtpd_policy_new(&pc, &err);
	if (!pol)
		abort();
	memset(&set, 0, sizeof(set));
	set.hostname = "mx.example.test";
	set.banner = "mx.example.test ESMTP";
	set.size_limit = (opt & 2) ? 200 : 100000;
	set.rcpt_limit = (opt & 4) ? 2 : 1000;
	set.timeout_ms = 2000;
	set.hard_error_limit = 20;
	set.soft_error_limit = 10;
	set.junk_limit = 100;
	set.line_limit = (opt & 8) ? 64 : 2048;
	set.data_line_limit = (opt & 8) ? 0 : 1000;
	set.header_limit = (opt & 8) ? 1024 : 65536;
	set.tls_mode = (opt & 16) ? SMTPD_TLS_REQUIRE : SMTPD_TLS_OFFER;
	set.auth_required = opt & 32;
	set.bare_newline_reject = !(opt & 64);
	set.dsn = !(opt & 128);
	set.submission_fixups = true;
	set.queue_dir = qdir;
	set.policy = pol;
	set.no_sleep = true;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	struct feeder f = { sv[0], data + 1, size - 1 };
	if (pthread_create(&th, NULL, feed, &f) != 0)
		abort();
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	smtpd_session_run(sv[1], (struct sockaddr *)&sin, sizeof(sin), &set);	/* closes sv[1] */
	pthread_join(th, NULL);
	close(sv[0]);
	smtpd_policy_free(&pol);
	buf_free(&err);
	clean_incoming();
	return 0;
}
