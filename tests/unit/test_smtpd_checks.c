/* smtpd policy checks around a session, driven over a socketpair as in test_smtpd_session.c: free queue space
 * at MAIL (a real small tmpfs when run as root), reverse DNS of the client, access maps and sender
 * authentication headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "alloc.h"
#include "ipc.h"
#include "qproto.h"
#include "buf.h"
#include "dns.h"
#include "dkim.h"
#include "psl.h"
#include "table.h"
#include "log.h"
#include "qfile.h"
#include "../../smtpd/smtpd.h"

struct fx {
	char dir[64];
	char qdir[128];
	char logpath[128];
	struct smtpd_settings set;
	struct smtpd_policy_conf pc;
	const char *peer;	/* client IPv4 address the session believes in, NULL: none */
	pid_t pid;
	int fd;
	struct buf in;		/* bytes read from the session, not yet returned */
};

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/smtpd-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->qdir, sizeof(f->qdir), "%s/queue", f->dir);
	snprintf(f->logpath, sizeof(f->logpath), "%s/log", f->dir);
	assert_int_equal(mkdir(f->qdir, 0700), 0);
	char p[192];
	snprintf(p, sizeof(p), "%s/tmp", f->qdir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/incoming", f->qdir);
	assert_int_equal(mkdir(p, 0700), 0);
	f->set.hostname = "mx.example.test";
	f->set.banner = "mx.example.test ESMTP";
	f->set.size_limit = 100000;
	f->set.rcpt_limit = 1000;
	f->set.timeout_ms = 5000;
	f->set.hard_error_limit = 20;
	f->set.soft_error_limit = 10;
	f->set.error_sleep_ms = 0;
	f->set.junk_limit = 100;
	f->set.line_limit = 2048;
	f->set.data_line_limit = 1000;
	f->set.header_limit = 65536;
	f->set.bare_newline_reject = true;
	f->set.dsn = true;
	f->set.submission_fixups = true;
	f->set.queue_dir = f->qdir;
	f->pc.mydestination = "example.test, localhost";
	f->pc.mynetworks = "127.0.0.1/32, [::1]/128";
	f->pc.delimiters = "+";
	f->peer = "127.0.0.1";
	f->fd = -1;
	buf_init(&f->in, 1 << 20);
}

static void fx_start(struct fx *f)
{
	int sv[2];
	struct buf err = BUF_INIT(1024);

	f->set.policy = smtpd_policy_new(&f->pc, &err);
	assert_non_null(f->set.policy);
	buf_free(&err);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		struct sockaddr_in sin;
		close(sv[0]);
		log_init("smtpd");
		log_to_file(f->logpath);
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		if (f->peer)
			inet_pton(AF_INET, f->peer, &sin.sin_addr);
		smtpd_session_run(sv[1], f->peer ? (struct sockaddr *)&sin : NULL, sizeof(sin), &f->set);
		smtpd_policy_free(&f->set.policy);
		_exit(0);
	}
	close(sv[1]);
	f->fd = sv[0];
}

/* Wait for the session to end; returns its exit status. */
static int fx_wait(struct fx *f)
{
	int st = 0;

	if (f->pid > 0) {
		assert_int_equal(waitpid(f->pid, &st, 0), f->pid);
		f->pid = 0;
	}
	return st;
}

static void rm_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char p[512];

	if (!d) {
		unlink(path);
		return;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		rm_tree(p);
	}
	closedir(d);
	rmdir(path);
}

static void fx_done(struct fx *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->pid > 0) {
		kill(f->pid, SIGKILL);
		fx_wait(f);
	}
	smtpd_policy_free(&f->set.policy);
	buf_free(&f->in);
	(void)umount2(f->qdir, MNT_DETACH);	/* the full-disk test's tmpfs, even after a failed assertion */
	rm_tree(f->dir);
}

static void csend(struct fx *f, const char *s)
{
	size_t n = strlen(s), off = 0;
	while (off < n) {
		ssize_t w = write(f->fd, s + off, n - off);
		assert_true(w > 0);
		off += (size_t)w;
	}
}

/* Fill f->in; false on EOF or after 10 s. */
static bool cfill(struct fx *f)
{
	struct pollfd p = { f->fd, POLLIN, 0 };
	char b[4096];

	if (poll(&p, 1, 10000) <= 0)
		return false;
	ssize_t r = read(f->fd, b, sizeof(b));
	if (r <= 0)
		return false;
	assert_true(buf_append(&f->in, b, (size_t)r));
	return true;
}

/* One whole reply (all its lines); returns the last line without CRLF (static), "" on EOF. */
static const char *creply(struct fx *f)
{
	static char last[1024];

	for (;;) {
		char *nl = f->in.len ? memchr(f->in.data, '\n', f->in.len) : NULL;
		if (!nl) {
			if (!cfill(f))
				return "";
			continue;
		}
		size_t len = (size_t)(nl - f->in.data) + 1;
		bool final = len >= 4 && f->in.data[3] == ' ';
		size_t cl = len >= 2 ? len - 2 : 0;
		if (cl >= sizeof(last))
			cl = sizeof(last) - 1;
		memcpy(last, f->in.data, cl);
		last[cl] = '\0';
		buf_consume(&f->in, len);
		if (final)
			return last;
	}
}

/* All reply lines of one reply, joined with "\n". Caller frees. */
static char *creply_all(struct fx *f)
{
	struct buf all = BUF_INIT(BUF_NOLIMIT);

	for (;;) {
		char *nl = f->in.len ? memchr(f->in.data, '\n', f->in.len) : NULL;
		if (!nl) {
			if (!cfill(f))
				break;
			continue;
		}
		size_t len = (size_t)(nl - f->in.data) + 1;
		bool final = len >= 4 && f->in.data[3] == ' ';
		buf_append(&all, f->in.data, len - 2);
		buf_putc(&all, '\n');
		buf_consume(&f->in, len);
		if (final)
			break;
	}
	return buf_steal(&all, NULL);
}

static void expect(struct fx *f, const char *prefix)
{
	const char *r = creply(f);
	if (strncmp(r, prefix, strlen(prefix)) != 0)
		fail_msg("expected reply \"%s...\", got \"%s\"", prefix, r);
}

static void send_expect(struct fx *f, const char *cmd, const char *prefix)
{
	csend(f, cmd);
	expect(f, prefix);
}

static bool at_eof(struct fx *f)
{
	while (cfill(f))
		;
	return true;
}

static size_t count_files(struct fx *f, const char *sub)
{
	char p[192];
	DIR *d;
	struct dirent *e;
	size_t n = 0;

	snprintf(p, sizeof(p), "%s/%s", f->qdir, sub);
	d = opendir(p);
	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Read back queue file id: envelope into env, content into content. */
static void read_queue(struct fx *f, const char *id, struct qfile_envelope *env, struct buf *content)
{
	char p[256];
	struct buf err = BUF_INIT(1024);
	char b[4096];
	ssize_t r;

	snprintf(p, sizeof(p), "%s/incoming/%s", f->qdir, id);
	int fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	memset(env, 0, sizeof(*env));
	if (!qfile_read_envelope(fd, env, &err))
		fail_msg("queue file %s: %s", id, buf_cstr(&err));
	while ((r = read(fd, b, sizeof(b))) > 0)
		assert_true(buf_append(content, b, (size_t)r));
	close(fd);
	buf_free(&err);
}

/* "250 2.0.0 Ok: queued as ID" -> ID (static) */
static const char *queued_id(const char *reply)
{
	static char id[64];
	const char *p = strstr(reply, "queued as ");
	assert_non_null(p);
	size_t n = strspn(p + 10, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ");
	assert_true(n > 0 && n < sizeof(id));
	memcpy(id, p + 10, n);
	id[n] = '\0';
	return id;
}

static char *log_text(struct fx *f)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	char t[4096];
	ssize_t r;
	int fd = open(f->logpath, O_RDONLY);
	if (fd >= 0) {
		while ((r = read(fd, t, sizeof(t))) > 0)
			buf_append(&b, t, (size_t)r);
		close(fd);
	}
	buf_putc(&b, '\0');
	return buf_steal(&b, NULL);
}

/* ---- free space ---------------------------------------------------------------------------------------------- */

static char creply_last[1024];

/* One message to postmaster; the final reply is kept in creply_last. */
static void send_one(struct fx *f, const char *want)
{
	send_expect(f, "MAIL FROM:<a@remote.test>\r\n", "250");
	send_expect(f, "RCPT TO:<postmaster@example.test>\r\n", "250");
	send_expect(f, "DATA\r\n", "354");
	csend(f, "Subject: x\r\n\r\nbody\r\n.\r\n");
	const char *r = creply(f);
	snprintf(creply_last, sizeof(creply_last), "%s", r);
	if (strncmp(r, want, strlen(want)) != 0)
		fail_msg("expected reply \"%s...\", got \"%s\"", want, r);
}

/* Fill the filesystem of dir with one file until the write fails (ENOSPC). */
static void fill_up(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	char b[65536];

	assert_true(fd >= 0);
	memset(b, 'x', sizeof(b));
	while (write(fd, b, sizeof(b)) > 0)
		;
	close(fd);
}

static void test_space_statvfs_rules(void **state)
{
	(void)state;
	struct fx f;
	uint64_t avail = 0;

	fx_init(&f);
	f.set.queue_minfree = 0;
	assert_true(smtpd_space_ok(&f.set, 0, &avail));
	assert_true(avail > 0);
	/* more than is free, declared: refused; the floor above what is free: refused */
	assert_false(smtpd_space_ok(&f.set, avail, NULL));
	assert_true(smtpd_space_ok(&f.set, avail / 2, NULL));
	f.set.queue_minfree = avail + 1;
	assert_false(smtpd_space_ok(&f.set, 0, NULL));
	f.set.queue_minfree = avail / 2;
	assert_false(smtpd_space_ok(&f.set, avail / 3 + 4096, NULL));
	/* a queue directory that cannot be examined does not stop mail */
	f.set.queue_dir = "/nonexistent/queue";
	assert_true(smtpd_space_ok(&f.set, UINT64_MAX, NULL));
	f.set.queue_dir = f.qdir;
	fx_done(&f);
}

/* A real full filesystem: a 3 MB tmpfs as the queue (root only). MAIL gets 452 4.3.1 while it is full, the
 * message queued before is intact, and mail is accepted again once space returns. */
static void test_space_full_tmpfs(void **state)
{
	(void)state;
	struct fx f;
	char filler[192];

	if (geteuid() != 0) {
		print_message("not root: the full-disk test needs to mount a small tmpfs\n");
		skip();
	}
	fx_init(&f);
	rm_tree(f.qdir);
	assert_int_equal(mkdir(f.qdir, 0700), 0);
	if (mount("smtpdtest", f.qdir, "tmpfs", 0, "size=3m,mode=0700") != 0) {
		fx_done(&f);
		print_message("cannot mount tmpfs: %s\n", strerror(errno));
		skip();
	}
	char p[192];
	snprintf(p, sizeof(p), "%s/tmp", f.qdir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/incoming", f.qdir);
	assert_int_equal(mkdir(p, 0700), 0);
	f.set.queue_minfree = 256 * 1024;
	f.set.size_limit = 5000000;

	/* one message while there is room */
	fx_start(&f);
	expect(&f, "220");
	send_expect(&f, "EHLO c.test\r\n", "250");
	send_one(&f, "250 2.0.0 Ok: queued as");
	assert_int_equal(count_files(&f, "incoming"), 1);

	/* full: refused at MAIL, also with a declared SIZE; nothing half-written appears */
	snprintf(filler, sizeof(filler), "%s/filler", f.qdir);
	fill_up(filler);
	send_expect(&f, "MAIL FROM:<a@remote.test>\r\n", "452 4.3.1 Insufficient system storage");
	send_expect(&f, "MAIL FROM:<a@remote.test> SIZE=10\r\n", "452 4.3.1");
	send_expect(&f, "RCPT TO:<postmaster@example.test>\r\n", "503");
	assert_int_equal(count_files(&f, "incoming"), 1);
	assert_int_equal(count_files(&f, "tmp"), 0);
	char *id_path = NULL;
	{
		DIR *d;
		struct dirent *e;
		snprintf(p, sizeof(p), "%s/incoming", f.qdir);
		d = opendir(p);
		assert_non_null(d);
		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				id_path = strdup(e->d_name);
		closedir(d);
	}
	assert_non_null(id_path);
	struct qfile_envelope env;
	struct buf content = BUF_INIT(BUF_NOLIMIT);
	read_queue(&f, id_path, &env, &content);
	assert_string_equal(env.sender, "a@remote.test");
	assert_non_null(memmem(content.data, content.len, "\nbody", 5));
	qfile_envelope_free(&env);
	buf_free(&content);
	free(id_path);

	/* space back: accepted again in the same session; a SIZE larger than the room left is refused */
	assert_int_equal(unlink(filler), 0);
	send_one(&f, "250 2.0.0 Ok: queued as");
	assert_int_equal(count_files(&f, "incoming"), 2);
	send_expect(&f, "MAIL FROM:<a@remote.test> SIZE=2500000\r\n", "452 4.3.1");
	send_expect(&f, "QUIT\r\n", "221");
	fx_wait(&f);
	char *log = log_text(&f);
	assert_non_null(strstr(log, "Insufficient system storage"));
	free(log);
	fx_done(&f);
}


/* ---- dnsmasq on a free loopback port (as in test_dns.c) ------------------------------------------------------ */

static const char *const dnsmasq_paths[] = { "/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq", NULL };
static pid_t dnsmasq_pid = -1;
static char servers[64];
static char dnslog[64];
static struct dns_options dnsopt;
/* extra dnsmasq arguments added by the tests of later sections (TXT records) */
static const char *dns_extra[32];
static size_t ndns_extra;

static int free_port(void)
{
	for (int attempt = 0; attempt < 20; attempt++) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t len = sizeof(a);
		int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0), port = -1;
		if (bind(u, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(u, (struct sockaddr *)&a, &len) == 0 &&
		    bind(t, (struct sockaddr *)&a, sizeof(a)) == 0)
			port = ntohs(a.sin_port);
		close(u);
		close(t);
		if (port > 0)
			return port;
	}
	return -1;
}

static int start_dnsmasq(void **state)
{
	(void)state;
	const char *bin = NULL;
	char portarg[32], ptr6[160], ptr6arg[200];
	struct buf pn = BUF_INIT(256);
	int port;

	for (size_t i = 0; dnsmasq_paths[i]; i++)
		if (access(dnsmasq_paths[i], X_OK) == 0)
			bin = dnsmasq_paths[i];
	if (!bin || (port = free_port()) < 0)
		return 0;	/* the DNS tests skip */
	snprintf(portarg, sizeof(portarg), "--port=%d", port);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", port);
	snprintf(dnslog, sizeof(dnslog), "/tmp/test_smtpd_checks.%d.log", (int)getpid());
	assert_true(dns_ptr_name("2001:db8::5", &pn));
	snprintf(ptr6, sizeof(ptr6), "%s", buf_cstr(&pn));
	snprintf(ptr6arg, sizeof(ptr6arg), "--ptr-record=%s,six.test", ptr6);
	buf_free(&pn);
	const char *argv[64] = {
		bin, "-k", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=", portarg,
		"--listen-address=127.0.0.1", "--bind-interfaces", "--log-facility=-",
		"--local=/test/", "--local=/2.0.192.in-addr.arpa/", "--local=/8.b.d.0.1.0.0.2.ip6.arpa/",
		/* forward-confirmed, a PTR that lies, two PTRs of which the second confirms, IPv6 */
		"--ptr-record=9.2.0.192.in-addr.arpa,Good.Test.", "--host-record=good.test,192.0.2.9",
		"--ptr-record=10.2.0.192.in-addr.arpa,liar.test", "--host-record=liar.test,192.0.2.99",
		"--ptr-record=12.2.0.192.in-addr.arpa,other.test", "--ptr-record=12.2.0.192.in-addr.arpa,second.test",
		"--host-record=second.test,192.0.2.12",
		ptr6arg, "--host-record=six.test,2001:db8::5",
	};
	size_t n = 0;
	while (argv[n])
		n++;
	for (size_t i = 0; i < ndns_extra && n < 60; i++)
		argv[n++] = dns_extra[i];
	if (geteuid() == 0)
		argv[n++] = "--user=root";
	argv[n] = NULL;
	dnsmasq_pid = fork();
	if (dnsmasq_pid < 0)
		return -1;
	if (dnsmasq_pid == 0) {
		int fd = open(dnslog, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
			                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int s = socket(AF_INET, SOCK_STREAM, 0), ok = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(s);
		if (ok) {
			dnsopt.nameservers = servers;
			dnsopt.timeout_ms = 3000;
			dnsopt.retries = 1;
			return 0;
		}
		if (waitpid(dnsmasq_pid, NULL, WNOHANG) == dnsmasq_pid) {
			fprintf(stderr, "dnsmasq exited at start; its log is %s\n", dnslog);
			dnsmasq_pid = -1;
			return -1;
		}
		usleep(50000);
	}
	return -1;
}

static int stop_dnsmasq(void **state)
{
	(void)state;
	if (dnsmasq_pid > 0) {
		kill(dnsmasq_pid, SIGTERM);
		waitpid(dnsmasq_pid, NULL, 0);
		dnsmasq_pid = -1;
		unlink(dnslog);
	}
	return 0;
}

static bool need_dns(void)
{
	if (dnsmasq_pid > 0)
		return true;
	print_message("dnsmasq not available: DNS test skipped\n");
	return false;
}

/* ---- reverse DNS ---------------------------------------------------------------------------------------------- */

static void test_peername_direct(void **state)
{
	(void)state;
	char name[256];

	if (!need_dns())
		skip();
	smtpd_peername(&dnsopt, "192.0.2.9", name, sizeof(name));
	assert_string_equal(name, "good.test");
	smtpd_peername(&dnsopt, "192.0.2.10", name, sizeof(name));
	assert_string_equal(name, "unknown");	/* liar.test resolves elsewhere */
	smtpd_peername(&dnsopt, "192.0.2.11", name, sizeof(name));
	assert_string_equal(name, "unknown");	/* no PTR */
	smtpd_peername(&dnsopt, "192.0.2.12", name, sizeof(name));
	assert_string_equal(name, "second.test");
	smtpd_peername(&dnsopt, "2001:db8::5", name, sizeof(name));
	assert_string_equal(name, "six.test");
	smtpd_peername(&dnsopt, "not-an-address", name, sizeof(name));
	assert_string_equal(name, "unknown");
	/* a resolver that does not answer: unknown, within the time limit */
	struct dns_options dead = { "127.0.0.1:1", 500, 0 };
	smtpd_peername(&dead, "192.0.2.9", name, sizeof(name));
	assert_string_equal(name, "unknown");
}

/* The name reaches the log and the Received header; with the lookup off it stays unknown. */
static void test_peername_in_session(void **state)
{
	(void)state;
	struct fx f;

	if (!need_dns())
		skip();
	for (int on = 1; on >= 0; on--) {
		fx_init(&f);
		f.peer = "192.0.2.9";
		f.set.dns = &dnsopt;
		f.set.peername_lookup = on;
		fx_start(&f);
		expect(&f, "220");
		send_expect(&f, "EHLO client.test\r\n", "250");
		send_one(&f, "250 2.0.0 Ok: queued as");
		const char *id = queued_id(creply_last);
		struct qfile_envelope env;
		struct buf content = BUF_INIT(BUF_NOLIMIT);
		read_queue(&f, id, &env, &content);
		buf_putc(&content, '\0');
		if (on) {
			assert_non_null(strstr(content.data, "Received: from client.test (good.test [192.0.2.9])"));
			assert_string_equal(env.client_name, "good.test");
		} else {
			assert_non_null(strstr(content.data, "Received: from client.test (unknown [192.0.2.9])"));
		}
		qfile_envelope_free(&env);
		buf_free(&content);
		send_expect(&f, "QUIT\r\n", "221");
		fx_wait(&f);
		char *log = log_text(&f);
		assert_non_null(strstr(log, on ? "connect from good.test[192.0.2.9]" : "connect from unknown[192.0.2.9]"));
		free(log);
		fx_done(&f);
	}
}

/* ---- access maps ---------------------------------------------------------------------------------------------- */

/* Write src into dir/name and compile it; returns the table path (static buffer per call site is not needed:
 * the caller copies). */
static char *make_map(const char *dir, const char *name, const char *src)
{
	char p[256];
	struct buf err = BUF_INIT(4096), warn = BUF_INIT(4096);

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *fp = fopen(p, "w");
	assert_non_null(fp);
	fputs(src, fp);
	fclose(fp);
	if (!table_compile(p, NULL, TABLE_POSTMAP, NULL, &err, &warn))
		fail_msg("compile %s: %s", p, buf_cstr(&err));
	buf_free(&err);
	buf_free(&warn);
	return strdup(p);
}

static enum smtpd_access_result chk(struct smtpd_access *a, enum smtpd_access_stage st, const char *subj,
                                    const char *name, const char *want_reply)
{
	struct buf reply = BUF_INIT(2048);
	enum smtpd_access_result r = smtpd_access_check(a, st, subj, name, &reply);
	if (want_reply && strcmp(buf_cstr(&reply), want_reply) != 0)
		fail_msg("%s: reply \"%s\", want \"%s\"", subj, buf_cstr(&reply), want_reply);
	buf_free(&reply);
	return r;
}

static void test_access_lookup_rules(void **state)
{
	(void)state;
	struct fx f;

	fx_init(&f);
	char *client = make_map(f.dir, "client",
	                        "192.0.2.1 OK\n"
	                        "192.0.2 REJECT no thanks\n"
	                        "192.0 DEFER\n"
	                        "10 550 5.7.0 go away\n"
	                        "172.16 421 later\n"
	                        "2001:db8:0:0:0:0:0:1 OK\n"
	                        "2001:db8 REJECT\n"
	                        "bad.example REJECT\n"
	                        "198.51.100.7 FROB\n"
	                        "203.0.113 DUNNO\n"
	                        "203 REJECT\n");
	char *helo = make_map(f.dir, "helo", "localhost REJECT you are not me\nfine.test OK\n");
	char *sender = make_map(f.dir, "sender",
	                        "friend@bad.test OK\n"
	                        "bad.test REJECT\n"
	                        "@worse.test DEFER try later\n"
	                        "abuse@ REJECT\n"
	                        "user+tag@ext.test REJECT tagged\n"
	                        "<> 550 no bounces here\n");
	const char *paths[SMTPD_ACCESS_NSTAGES] = { client, helo, sender, NULL };
	struct smtpd_access *a = smtpd_access_new(paths, "+");

	assert_int_equal(chk(a, SMTPD_ACCESS_CLIENT, "192.0.2.1", "unknown", ""), SMTPD_ACCESS_OK);
	assert_int_equal(chk(a, SMTPD_ACCESS_CLIENT, "192.0.2.5", "unknown",
	                     "554 5.7.1 <unknown[192.0.2.5]>: Client host rejected: no thanks"), SMTPD_ACCESS_REJECT);
	assert_int_equal(chk(a, SMTPD_ACCESS_CLIENT, "192.0.3.1", "unknown",
	                     "450 4.7.1 <unknown[192.0.3.1]>: Client host rejected: Access denied"), SMTPD_ACCESS_DEFER);
	assert_int_equal(chk(a, SMTPD_ACCESS_CLIENT, "10.1.2.3", "unknown", "550 5.7.0 go away"), SMTPD_ACCESS_REJECT);
	assert_int_equal(chk(a, SMTPD_ACCESS_CLIENT, "172.16.0.1", "unknown", "421 4.7.1 later"), SMTPD_ACCESS_DEFER);
	assert_int_equal(chk(a, SMTPD_ACCESS_CLIENT, "2001:db8::1", "unknown", ""), SMTPD_ACCESS_OK);
	assert_int_equal(chk(a, SMTPD_ACCESS_CLIENT, "2001:db8::2", "unknown", NULL), SMTPD_ACCESS_REJECT);
	assert_int_equal(chk(a, SMTPD_ACCESS_CLIENT, "2001:db9::2", "unknown", ""), SMTPD_ACCESS_DUNNO);
	assert_int_equal(chk(a, SMTPD_ACCESS_CLIENT, "198.51.100.1", "unknown", ""), SMTPD_ACCESS_DUNNO);
	/* the host name and its parents come first; an unverified name is never looked up */
	assert_int_equal(chk(a, SMTPD_ACCESS_CLIENT, "198.51.100.1", "mx.Bad.example", NULL), SMTPD_ACCESS_REJECT);
	/* a typo in the map defers rather than letting the client through */
	assert_int_equal(chk(a, SMTPD_ACCESS_CLIENT, "198.51.100.7", "unknown", "451 4.3.5 Server configuration error"),
	                 SMTPD_ACCESS_DEFER);
	/* DUNNO stops the search: the less specific 203 is not consulted */
	assert_int_equal(chk(a, SMTPD_ACCESS_CLIENT, "203.0.113.9", "unknown", ""), SMTPD_ACCESS_DUNNO);
	assert_int_equal(chk(a, SMTPD_ACCESS_CLIENT, "203.1.1.1", "unknown", NULL), SMTPD_ACCESS_REJECT);

	assert_int_equal(chk(a, SMTPD_ACCESS_HELO, "localhost", NULL,
	                     "554 5.7.1 <localhost>: Helo command rejected: you are not me"), SMTPD_ACCESS_REJECT);
	assert_int_equal(chk(a, SMTPD_ACCESS_HELO, "a.fine.test", NULL, ""), SMTPD_ACCESS_OK);

	/* user@domain beats domain; @domain; user@; extension; null sender */
	assert_int_equal(chk(a, SMTPD_ACCESS_SENDER, "friend@bad.test", NULL, ""), SMTPD_ACCESS_OK);
	assert_int_equal(chk(a, SMTPD_ACCESS_SENDER, "other@bad.test", NULL,
	                     "554 5.7.1 <other@bad.test>: Sender address rejected: Access denied"), SMTPD_ACCESS_REJECT);
	assert_int_equal(chk(a, SMTPD_ACCESS_SENDER, "x@sub.bad.test", NULL, NULL), SMTPD_ACCESS_REJECT);
	assert_int_equal(chk(a, SMTPD_ACCESS_SENDER, "x@worse.test", NULL,
	                     "450 4.7.1 <x@worse.test>: Sender address rejected: try later"), SMTPD_ACCESS_DEFER);
	assert_int_equal(chk(a, SMTPD_ACCESS_SENDER, "abuse@anywhere.test", NULL, NULL), SMTPD_ACCESS_REJECT);
	assert_int_equal(chk(a, SMTPD_ACCESS_SENDER, "user+tag@ext.test", NULL, NULL), SMTPD_ACCESS_REJECT);
	assert_int_equal(chk(a, SMTPD_ACCESS_SENDER, "user@ext.test", NULL, ""), SMTPD_ACCESS_DUNNO);
	assert_int_equal(chk(a, SMTPD_ACCESS_SENDER, "", NULL, "550 5.7.1 no bounces here"), SMTPD_ACCESS_REJECT);
	/* no recipient map */
	assert_int_equal(chk(a, SMTPD_ACCESS_RECIPIENT, "x@bad.test", NULL, ""), SMTPD_ACCESS_DUNNO);
	smtpd_access_free(&a);
	assert_null(a);

	/* a configured map that does not exist (yet): defer, and pick it up once it is compiled */
	char missing[256];
	snprintf(missing, sizeof(missing), "%s/later", f.dir);
	const char *p2[SMTPD_ACCESS_NSTAGES] = { NULL, NULL, NULL, missing };
	a = smtpd_access_new(p2, NULL);
	assert_int_equal(chk(a, SMTPD_ACCESS_RECIPIENT, "x@y.test", NULL, "451 4.3.0 Temporary lookup failure"),
	                 SMTPD_ACCESS_DEFER);
	free(make_map(f.dir, "later", "x@y.test REJECT\n"));
	assert_int_equal(chk(a, SMTPD_ACCESS_RECIPIENT, "x@y.test", NULL, NULL), SMTPD_ACCESS_REJECT);
	smtpd_access_free(&a);
	free(client);
	free(helo);
	free(sender);
	fx_done(&f);
}

/* smtpd_delay_reject = yes: the client is refused only at RCPT; HELO and MAIL pass. */
static void test_access_delayed(void **state)
{
	(void)state;
	struct fx f;

	char mdir[64] = "/tmp/smtpd-maps-XXXXXX";	/* outlives each session's fixture */
	assert_non_null(mkdtemp(mdir));
	fx_init(&f);
	f.peer = "192.0.2.5";
	char *client = make_map(mdir, "client", "192.0.2 REJECT go away\n");
	char *rcpt = make_map(mdir, "rcpt", "abuse@example.test 550 5.7.1 not here\n");
	const char *paths[SMTPD_ACCESS_NSTAGES] = { client, NULL, NULL, rcpt };
	f.set.access = smtpd_access_new(paths, "+");
	f.set.delay_reject = true;
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "EHLO c.test\r\n", "250");
	send_expect(&f, "MAIL FROM:<a@remote.test>\r\n", "250");
	send_expect(&f, "RCPT TO:<postmaster@example.test>\r\n",
	            "554 5.7.1 <unknown[192.0.2.5]>: Client host rejected: go away");
	send_expect(&f, "QUIT\r\n", "221");
	fx_wait(&f);
	char *log = log_text(&f);
	assert_non_null(strstr(log, "NOQUEUE: reject: RCPT from unknown[192.0.2.5]: 554 5.7.1"));
	free(log);
	smtpd_access_free(&f.set.access);
	fx_done(&f);

	/* a client the map lets through still meets the recipient map, then the relay rules */
	fx_init(&f);
	f.peer = "198.51.100.1";
	f.set.access = smtpd_access_new(paths, "+");
	f.set.delay_reject = true;
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "EHLO c.test\r\n", "250");
	send_expect(&f, "MAIL FROM:<a@remote.test>\r\n", "250");
	send_expect(&f, "RCPT TO:<abuse@example.test>\r\n", "550 5.7.1 not here");
	send_expect(&f, "RCPT TO:<someone@elsewhere.test>\r\n", "554 5.7.1");
	send_expect(&f, "RCPT TO:<postmaster@example.test>\r\n", "250");
	send_expect(&f, "QUIT\r\n", "221");
	fx_wait(&f);
	smtpd_access_free(&f.set.access);
	fx_done(&f);
	free(client);
	free(rcpt);
	rm_tree(mdir);
}

/* smtpd_delay_reject = no: the client refusal replaces the greeting and only QUIT is answered; HELO and sender
 * maps answer their own commands. */
static void test_access_immediate(void **state)
{
	(void)state;
	struct fx f;

	char mdir[64] = "/tmp/smtpd-maps-XXXXXX";	/* outlives each session's fixture */
	assert_non_null(mkdtemp(mdir));
	fx_init(&f);
	f.peer = "192.0.2.5";
	char *client = make_map(mdir, "client", "192.0.2 REJECT go away\n192.0.2.6 OK\n");
	char *helo = make_map(mdir, "helo", "mx.example.test REJECT that is my name\n");
	char *sender = make_map(mdir, "sender", "spam.test DEFER\n");
	const char *paths[SMTPD_ACCESS_NSTAGES] = { client, helo, sender, NULL };
	f.set.access = smtpd_access_new(paths, "+");
	f.set.delay_reject = false;
	fx_start(&f);
	expect(&f, "554 5.7.1 <unknown[192.0.2.5]>: Client host rejected: go away");
	send_expect(&f, "EHLO c.test\r\n", "503 5.7.0 Error: access denied for unknown[192.0.2.5]");
	send_expect(&f, "MAIL FROM:<a@remote.test>\r\n", "503 5.7.0");
	send_expect(&f, "QUIT\r\n", "221");
	fx_wait(&f);
	smtpd_access_free(&f.set.access);
	fx_done(&f);

	fx_init(&f);
	f.peer = "192.0.2.6";
	f.set.access = smtpd_access_new(paths, "+");
	f.set.delay_reject = false;
	fx_start(&f);
	expect(&f, "220 ");
	send_expect(&f, "EHLO mx.example.test\r\n", "554 5.7.1 <mx.example.test>: Helo command rejected: that is my name");
	send_expect(&f, "MAIL FROM:<a@remote.test>\r\n", "503 5.5.1 Error: send HELO/EHLO first");
	send_expect(&f, "EHLO c.test\r\n", "250");
	send_expect(&f, "MAIL FROM:<a@spam.test>\r\n", "450 4.7.1 <a@spam.test>: Sender address rejected");
	send_expect(&f, "RCPT TO:<postmaster@example.test>\r\n", "503 5.5.1");
	send_one(&f, "250 2.0.0 Ok: queued as");
	send_expect(&f, "QUIT\r\n", "221");
	fx_wait(&f);
	smtpd_access_free(&f.set.access);
	fx_done(&f);
	free(client);
	free(helo);
	free(sender);
	rm_tree(mdir);
}

/* ---- sender authentication ------------------------------------------------------------------------------------ */

static struct dkim_key *dkim_test_key;
static char dkim_txt_arg[512];

/* Called before dnsmasq starts: the key record it will serve. */
static void auth_records(void)
{
	struct buf rec = BUF_INIT(4096);

	dkim_test_key = dkim_key_generate(DKIM_ED25519_SHA256);
	assert_non_null(dkim_test_key);
	assert_true(dkim_key_dns_record(dkim_test_key, &rec));
	snprintf(dkim_txt_arg, sizeof(dkim_txt_arg), "--txt-record=sel._domainkey.spf.test,%s", buf_cstr(&rec));
	buf_free(&rec);
	dns_extra[ndns_extra++] = dkim_txt_arg;
	dns_extra[ndns_extra++] = "--txt-record=spf.test,v=spf1 ip4:192.0.2.9 -all";
	dns_extra[ndns_extra++] = "--txt-record=_dmarc.spf.test,v=DMARC1; p=reject";
	dns_extra[ndns_extra++] = "--txt-record=fail.test,v=spf1 -all";
	dns_extra[ndns_extra++] = "--txt-record=_dmarc.fail.test,v=DMARC1; p=reject";
	dns_extra[ndns_extra++] = "--txt-record=client.test,v=spf1 a:good.test -all";
}

/* A message from From with a DKIM signature by spf.test when sign is set; CRLF lines; dot-stuffing not needed. */
static char *auth_message(const char *from, bool sign, const char *extra_headers)
{
	struct buf m = BUF_INIT(BUF_NOLIMIT), out = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(1024);

	buf_printf(&m, "%sFrom: <%s>\r\nTo: <postmaster@example.test>\r\nSubject: checked\r\n"
	           "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\nMessage-ID: <1@x.test>\r\n\r\nhello\r\n",
	           extra_headers ? extra_headers : "", from);
	if (sign) {
		struct dkim_sign_options o = { "spf.test", "sel", dkim_test_key, 0, 0, DKIM_CANON_RELAXED,
		                               DKIM_CANON_RELAXED };
		if (!dkim_sign(&o, m.data, m.len, &out, &err))
			fail_msg("dkim_sign: %s", buf_cstr(&err));
	}
	buf_append(&out, m.data, m.len);
	buf_free(&m);
	buf_free(&err);
	return buf_steal(&out, NULL);
}

/* Send one message; returns the queued content (caller frees) or NULL when the final reply is not 250. */
static char *auth_session(struct fx *f, const char *mailfrom, const char *msg, const char *want)
{
	char cmd[512];
	char *content = NULL;

	fx_start(f);
	expect(f, "220");
	send_expect(f, "EHLO client.test\r\n", "250");
	snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>\r\n", mailfrom);
	send_expect(f, cmd, "250");
	send_expect(f, "RCPT TO:<postmaster@example.test>\r\n", "250");
	send_expect(f, "DATA\r\n", "354");
	csend(f, msg);
	csend(f, ".\r\n");
	const char *r = creply(f);
	if (strncmp(r, want, strlen(want)) != 0)
		fail_msg("expected reply \"%s...\", got \"%s\"", want, r);
	if (strncmp(r, "250", 3) == 0) {
		struct qfile_envelope env;
		struct buf c = BUF_INIT(BUF_NOLIMIT);
		read_queue(f, queued_id(r), &env, &c);
		buf_putc(&c, '\0');
		qfile_envelope_free(&env);
		content = buf_steal(&c, NULL);
	}
	send_expect(f, "QUIT\r\n", "221");
	fx_wait(f);
	return content;
}

static struct psl *test_psl;

static void auth_fx(struct fx *f, const char *peer)
{
	fx_init(f);
	f->peer = peer;
	f->set.dns = &dnsopt;
	f->set.sender_auth = true;
	f->set.psl = test_psl;
}

/* The header block of content (through the empty line), NUL-terminated in place. */
static char *header_of(char *content)
{
	char *e = strstr(content, "\r\n\r\n");
	if (!e)
		e = strstr(content, "\n\n");
	assert_non_null(e);
	e[2] = '\0';
	return content;
}

static void test_auth_pass_and_forgery_removed(void **state)
{
	(void)state;
	struct fx f;

	if (!need_dns())
		skip();
	auth_fx(&f, "192.0.2.9");
	char *msg = auth_message("a@spf.test", true,
	                         "Authentication-Results: mx.example.test; dkim=pass header.d=bank.test\r\n"
	                         "Authentication-Results: other.test; spf=pass smtp.mailfrom=x@other.test\r\n");
	char *c = auth_session(&f, "a@spf.test", msg, "250 2.0.0 Ok: queued as");
	header_of(c);
	/* ours on top, then Received-SPF, then Received */
	assert_true(strncmp(c, "Authentication-Results: mx.example.test;", 40) == 0);
	assert_non_null(strstr(c, "spf=pass"));
	assert_non_null(strstr(c, "smtp.mailfrom=a@spf.test"));
	assert_non_null(strstr(c, "dkim=pass"));
	assert_non_null(strstr(c, "header.d=spf.test"));
	assert_non_null(strstr(c, "dmarc=pass"));
	assert_non_null(strstr(c, "header.from=spf.test"));
	assert_non_null(strstr(c, "smtp.helo=client.test"));	/* the HELO identity too */
	char *rspf = strstr(c, "\nReceived-SPF: pass");
	char *rcvd = strstr(c, "\nReceived: from client.test");
	assert_non_null(rspf);
	assert_non_null(rcvd);
	assert_true(rspf < rcvd);
	/* the forged one claiming our id is gone, the foreign one stays */
	assert_null(strstr(c, "bank.test"));
	assert_non_null(strstr(c, "Authentication-Results: other.test; spf=pass"));
	assert_null(strstr(c + 10, "Authentication-Results: mx.example.test"));
	free(c);
	free(msg);
	fx_done(&f);
}

static void test_auth_dmarc_fail(void **state)
{
	(void)state;
	struct fx f;

	if (!need_dns())
		skip();
	/* recorded only */
	auth_fx(&f, "192.0.2.9");
	char *msg = auth_message("b@fail.test", false, NULL);
	char *c = auth_session(&f, "b@fail.test", msg, "250 2.0.0 Ok: queued as");
	header_of(c);
	assert_non_null(strstr(c, "spf=fail"));
	assert_non_null(strstr(c, "dkim=none"));
	assert_non_null(strstr(c, "dmarc=fail"));
	assert_non_null(strstr(c, "Received-SPF: fail"));
	free(c);
	fx_done(&f);

	/* enforced: refused after the data, nothing queued */
	auth_fx(&f, "192.0.2.9");
	f.set.dmarc_enforce = true;
	c = auth_session(&f, "b@fail.test", msg, "550 5.7.1 Email rejected per DMARC policy for fail.test");
	assert_null(c);
	assert_int_equal(count_files(&f, "incoming"), 0);
	assert_int_equal(count_files(&f, "tmp"), 0);
	fx_done(&f);

	/* a DKIM signature by an aligned domain rescues an SPF failure: the From is spf.test, MAIL FROM fail.test */
	free(msg);
	auth_fx(&f, "192.0.2.9");
	f.set.dmarc_enforce = true;
	msg = auth_message("a@spf.test", true, NULL);
	c = auth_session(&f, "b@fail.test", msg, "250 2.0.0 Ok: queued as");
	header_of(c);
	assert_non_null(strstr(c, "spf=fail"));
	assert_non_null(strstr(c, "dmarc=pass"));
	free(c);
	free(msg);
	fx_done(&f);
}

/* mynetworks clients, logged-in users and the submission service are not checked; neither is a disabled setting */
static void test_auth_not_applied(void **state)
{
	(void)state;
	struct fx f;

	if (!need_dns())
		skip();
	char *msg = auth_message("b@fail.test", false,
	                         "Authentication-Results: mx.example.test; dkim=pass header.d=bank.test\r\n");
	for (int i = 0; i < 2; i++) {
		auth_fx(&f, i == 0 ? "127.0.0.1" : "192.0.2.9");
		if (i == 1)
			f.set.sender_auth = false;
		f.set.dmarc_enforce = true;
		char *c = auth_session(&f, "b@fail.test", msg, "250 2.0.0 Ok: queued as");
		header_of(c);
		assert_null(strstr(c, "Received-SPF"));
		assert_true(strncmp(c, "Received: ", 10) == 0);
		free(c);
		fx_done(&f);
	}
	free(msg);
}

/* BDAT chunks are held the same way; a forged header split across chunks is still found. */
static void test_auth_bdat(void **state)
{
	(void)state;
	struct fx f;
	char cmd[64];

	if (!need_dns())
		skip();
	auth_fx(&f, "192.0.2.9");
	char *msg = auth_message("a@spf.test", true, "Authentication-Results: mx.example.test; dmarc=pass\r\n");
	size_t len = strlen(msg), half = len / 2;
	fx_start(&f);
	expect(&f, "220");
	send_expect(&f, "EHLO client.test\r\n", "250");
	send_expect(&f, "MAIL FROM:<a@spf.test>\r\n", "250");
	send_expect(&f, "RCPT TO:<postmaster@example.test>\r\n", "250");
	snprintf(cmd, sizeof(cmd), "BDAT %zu\r\n", half);
	csend(&f, cmd);
	assert_int_equal(write(f.fd, msg, half), (ssize_t)half);
	expect(&f, "250 2.0.0 Ok");
	snprintf(cmd, sizeof(cmd), "BDAT %zu LAST\r\n", len - half);
	csend(&f, cmd);
	assert_int_equal(write(f.fd, msg + half, len - half), (ssize_t)(len - half));
	const char *r = creply(&f);
	assert_true(strncmp(r, "250 2.0.0 Ok: queued as", 23) == 0);
	struct qfile_envelope env;
	struct buf c = BUF_INIT(BUF_NOLIMIT);
	read_queue(&f, queued_id(r), &env, &c);
	buf_putc(&c, '\0');
	header_of(c.data);
	assert_true(strncmp(c.data, "Authentication-Results: mx.example.test;", 40) == 0);
	assert_non_null(strstr(c.data, "dkim=pass"));
	assert_non_null(strstr(c.data, "dmarc=pass (p=reject"));
	assert_null(strstr(c.data + 10, "Authentication-Results: mx.example.test"));
	qfile_envelope_free(&env);
	buf_free(&c);
	send_expect(&f, "QUIT\r\n", "221");
	fx_wait(&f);
	free(msg);
	fx_done(&f);
}

/* Who is checked: only the MX port, unauthenticated clients outside mynetworks, with DNS configured. */
static void test_auth_wanted(void **state)
{
	(void)state;
	struct fx f;
	struct smtpd_session ss;

	fx_init(&f);
	f.set.dns = &dnsopt;
	f.set.sender_auth = true;
	memset(&ss, 0, sizeof(ss));
	ss.set = &f.set;
	snprintf(ss.client_addr, sizeof(ss.client_addr), "192.0.2.9");
	assert_true(smtpd_authcheck_wanted(&ss));
	ss.trusted = true;
	assert_false(smtpd_authcheck_wanted(&ss));
	ss.trusted = false;
	ss.auth_user = (char *)"user@example.test";
	assert_false(smtpd_authcheck_wanted(&ss));
	ss.auth_user = NULL;
	f.set.auth_required = true;
	assert_false(smtpd_authcheck_wanted(&ss));
	f.set.auth_required = false;
	f.set.tls_mode = SMTPD_TLS_IMPLICIT;
	assert_false(smtpd_authcheck_wanted(&ss));
	f.set.tls_mode = SMTPD_TLS_OFFER;
	f.set.dns = NULL;
	assert_false(smtpd_authcheck_wanted(&ss));
	f.set.dns = &dnsopt;
	f.set.sender_auth = false;
	assert_false(smtpd_authcheck_wanted(&ss));
	fx_done(&f);
}

/* The null sender is checked as postmaster@HELO. */
static void test_auth_null_sender(void **state)
{
	(void)state;
	struct fx f;

	if (!need_dns())
		skip();
	auth_fx(&f, "192.0.2.9");
	char *msg = auth_message("mailer-daemon@client.test", false, NULL);
	char *c = auth_session(&f, "", msg, "250 2.0.0 Ok: queued as");
	header_of(c);
	assert_non_null(strstr(c, "spf=pass"));
	assert_non_null(strstr(c, "smtp.helo=client.test"));
	assert_non_null(strstr(c, "Received-SPF: pass"));
	free(c);
	free(msg);
	fx_done(&f);
}

int main(void)
{
	/* harness helpers shared with test_smtpd_session.c that not every test here uses */
	(void)creply_all;
	(void)at_eof;

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_space_statvfs_rules),
		cmocka_unit_test(test_space_full_tmpfs),
		cmocka_unit_test(test_peername_direct),
		cmocka_unit_test(test_peername_in_session),
		cmocka_unit_test(test_access_lookup_rules),
		cmocka_unit_test(test_access_delayed),
		cmocka_unit_test(test_access_immediate),
		cmocka_unit_test(test_auth_pass_and_forgery_removed),
		cmocka_unit_test(test_auth_dmarc_fail),
		cmocka_unit_test(test_auth_not_applied),
		cmocka_unit_test(test_auth_null_sender),
		cmocka_unit_test(test_auth_wanted),
		cmocka_unit_test(test_auth_bdat),
	};
	signal(SIGPIPE, SIG_IGN);
	auth_records();
	test_psl = psl_parse("", 0);
	int rc = cmocka_run_group_tests(tests, start_dnsmasq, stop_dnsmasq);
	psl_free(&test_psl);
	dkim_key_free(&dkim_test_key);
	return rc;
}
