/* sendmail, newaliases: the postern binary called as /usr/sbin/sendmail (or `postern sendmail`). A message is
 * never written to the queue from here: it is submitted over SMTP on the local submission socket
 * (public_directory/submit), where smtpd in local mode takes the uid from SO_PEERCRED. So local mail enters the
 * queue through the same code as network mail, and the queue stays unwritable by users. When the system is
 * down the message is refused loudly (EX_TEMPFAIL and a message on stderr), never dropped. */
#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "commands.h"
#include "config.h"
#include "esmtp.h"
#include "log.h"
#include "queue.h"
#include "sendmail.h"
#include "str.h"
#include "table.h"

#define SUBMIT_TIMEOUT 300	/* seconds for any one reply; a stuck server must not hang a cron job forever */
#define CHUNK 65536

struct conn {
	int fd;
	bool verbose;
	struct buf in;		/* bytes read from the socket, not yet consumed */
	struct buf reply;	/* the last reply, lines joined by "\n" */
	int code;
	bool eightbit, smtputf8, dsn;	/* EHLO keywords */
};

static void warnx_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warnx_(const char *fmt, ...)
{
	va_list ap;
	fputs("sendmail: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static bool load_config(const char *dir, struct config **cfgp)
{
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	struct config *cfg = config_new();
	const char *d = cli_instance_dir(dir);

	if (!config_load_dir(cfg, d, NULL, &err, NULL)) {
		warnx_("cannot read the configuration in %s: %s", d, buf_cstr(&err));
		buf_free(&err);
		config_free(&cfg);
		return false;
	}
	buf_free(&err);
	*cfgp = cfg;
	return true;
}

/* Connect to public_directory/submit. -1 with a message on stderr when the mail system is not running. */
static int submit_connect(struct config *cfg)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { SUBMIT_TIMEOUT, 0 };
	const char *dir = config_str(cfg, "public_directory");
	int fd, n;

	n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/submit", dir);
	if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
		warnx_("%s/submit: socket path too long", dir);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		warnx_("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		warnx_("the mail system is not running (cannot connect to %s: %s); the message was not sent",
		       sun.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static bool write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Read one whole reply (all its lines). false when the connection broke or the reply is malformed. */
static bool read_reply(struct conn *c)
{
	buf_reset(&c->reply);
	for (;;) {
		char *nl = c->in.len ? memchr(c->in.data, '\n', c->in.len) : NULL;
		if (!nl) {
			char tmp[4096];
			ssize_t r = read(c->fd, tmp, sizeof(tmp));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0 || !buf_append(&c->in, tmp, (size_t)r))
				return false;
			continue;
		}
		size_t len = (size_t)(nl - c->in.data) + 1, l = len - 1;
		if (l > 0 && c->in.data[l - 1] == '\r')
			l--;
		const char *d = c->in.data;
		if (l < 3 || d[0] < '2' || d[0] > '5' || d[1] < '0' || d[1] > '9' || d[2] < '0' || d[2] > '9' ||
		    (l > 3 && d[3] != ' ' && d[3] != '-'))
			return false;
		if (c->verbose)
			fprintf(stderr, "<<< %s\n", log_safe(c->in.data, l, 512));
		if (c->reply.len)
			buf_putc(&c->reply, '\n');
		if (!buf_append(&c->reply, c->in.data, l))
			return false;
		bool last = l == 3 || c->in.data[3] == ' ';
		c->code = (c->in.data[0] - '0') * 100 + (c->in.data[1] - '0') * 10 + (c->in.data[2] - '0');
		buf_consume(&c->in, len);
		if (last)
			return true;
	}
}

static bool command(struct conn *c, const char *line)
{
	if (c->verbose)
		fprintf(stderr, ">>> %s\n", line);
	return write_all(c->fd, line, strlen(line)) && write_all(c->fd, "\r\n", 2) && read_reply(c);
}

static int status_of(int code)
{
	return code / 100 == 4 ? EX_TEMPFAIL : EX_UNAVAILABLE;
}

/* An address as given on the command line or found by -t, qualified with myorigin when it has no domain. */
static char *qualify(const char *a, const char *origin)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	size_t n = strlen(a);
	if (n >= 2 && a[0] == '<' && a[n - 1] == '>') {
		a++;
		n -= 2;
	}
	buf_append(&b, a, n);
	if (n > 0 && a[n - 1] == '@')
		buf_puts(&b, origin);
	else if (!memchr(a, '@', n))
		buf_printf(&b, "@%s", origin);
	return buf_steal(&b, NULL);
}

static bool has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 128)
			return true;
	return false;
}

struct message {
	struct sendmail_filter filter;
	struct buf text;	/* filtered text read so far, not yet sent */
	size_t hdr_end;
	bool blank;
	bool eof;
};

/* Read stdin until the header section is complete. false with EX_ status in *rc on error. */
static bool read_header_section(struct message *m, int *rc)
{
	char tmp[CHUNK];
	for (;;) {
		m->hdr_end = sendmail_header_end(m->text.data ? m->text.data : "", m->text.len, m->eof, &m->blank);
		if (m->hdr_end != (size_t)-1)
			return true;
		if (m->text.len > SENDMAIL_HEADER_MAX) {
			warnx_("the message header section is longer than %d bytes; not sent", SENDMAIL_HEADER_MAX);
			*rc = EX_DATAERR;
			return false;
		}
		ssize_t r = read(0, tmp, sizeof(tmp));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			warnx_("reading the message: %s; not sent", strerror(errno));
			*rc = EX_IOERR;
			return false;
		}
		if (r == 0 || m->filter.done) {
			sendmail_filter_end(&m->filter, &m->text);
			m->eof = true;
		} else {
			sendmail_filter(&m->filter, tmp, (size_t)r, &m->text);
			if (m->filter.done)
				m->eof = true;
		}
	}
}

/* Send the message text after DATA: the prepared header section, then the rest of stdin, encoded. */
static bool send_text(struct conn *c, struct message *m, const struct buf *head, int *rc)
{
	struct buf out = BUF_INIT(BUF_NOLIMIT);
	bool bol = true, ok = true;
	char tmp[CHUNK];
	size_t rest = m->text.len - m->hdr_end;

	sendmail_smtp_encode(&bol, head->data ? head->data : "", head->len, &out);
	/* a body that did not start with an empty line gets one, so it is not taken for headers we added */
	if (!m->blank && rest > 0)
		sendmail_smtp_encode(&bol, "\n", 1, &out);
	sendmail_smtp_encode(&bol, m->text.data + m->hdr_end, rest, &out);
	buf_free(&m->text);
	while (ok) {
		if (out.len >= CHUNK || m->eof) {
			if (m->eof)
				sendmail_smtp_encode_end(&bol, &out);
			ok = write_all(c->fd, out.data, out.len);
			buf_reset(&out);
			if (m->eof)
				break;
		}
		ssize_t r = read(0, tmp, sizeof(tmp));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			warnx_("reading the message: %s; not sent", strerror(errno));
			*rc = EX_IOERR;
			buf_free(&out);
			return false;	/* the connection is dropped without the final dot: nothing is queued */
		}
		struct buf f = BUF_INIT(BUF_NOLIMIT);
		if (r == 0)
			sendmail_filter_end(&m->filter, &f);
		else
			sendmail_filter(&m->filter, tmp, (size_t)r, &f);
		if (r == 0 || m->filter.done)
			m->eof = true;
		sendmail_smtp_encode(&bol, f.data ? f.data : "", f.len, &out);
		buf_free(&f);
	}
	buf_free(&out);
	if (!ok) {
		warnx_("the submit connection broke while sending; the message was not sent");
		*rc = EX_TEMPFAIL;
	}
	return ok;
}

static const char *login_name(void)
{
	static char num[32];
	struct passwd *pw = getpwuid(getuid());
	if (pw && pw->pw_name && *pw->pw_name)
		return pw->pw_name;
	snprintf(num, sizeof(num), "uid%lu", (unsigned long)getuid());
	return num;
}

static int deliver(const struct sendmail_opts *o, struct config *cfg)
{
	struct message m = { .text = BUF_INIT(SENDMAIL_HEADER_MAX + 2 * CHUNK) };
	struct sendmail_headers h, cl = { 0 };
	struct buf head = BUF_INIT(BUF_NOLIMIT), line = BUF_INIT(BUF_NOLIMIT), tmp = BUF_INIT(BUF_NOLIMIT);
	struct conn c = { .fd = -1, .verbose = o->verbose, .in = BUF_INIT(SENDMAIL_REPLY_MAX),
	                  .reply = BUF_INIT(SENDMAIL_REPLY_MAX) };
	const char *origin = config_str(cfg, "myorigin");
	char **rcpts = NULL, *sender = NULL;
	size_t nrcpts = 0, accepted = 0;
	int rc = 0, fail = 0;

	sendmail_filter_init(&m.filter, o->ignore_dots);
	if (!read_header_section(&m, &rc)) {
		buf_free(&m.text);
		return rc;
	}
	sendmail_headers_scan(m.text.data ? m.text.data : "", m.hdr_end, o->extract, &h, &head);
	sendmail_missing_headers(&h, login_name(), o->fullname, origin, config_str(cfg, "myhostname"),
	                         (long)time(NULL), &head);
	for (size_t i = 0; i < o->nrcpts; i++) {
		size_t bad = cl.bad;
		sendmail_collect(&cl, o->rcpts[i], strlen(o->rcpts[i]));
		if (cl.bad > bad) {
			warnx_("bad recipient address '%s'; not sent", log_safe(o->rcpts[i], strlen(o->rcpts[i]), 300));
			rc = EX_DATAERR;
			goto out;
		}
	}
	rcpts = xcalloc(cl.nrcpts + h.nrcpts + 1, sizeof(*rcpts));
	for (size_t i = 0; i < cl.nrcpts; i++)
		rcpts[nrcpts++] = qualify(cl.rcpts[i], origin);
	for (size_t i = 0; i < h.nrcpts; i++)
		rcpts[nrcpts++] = qualify(h.rcpts[i], origin);
	if (h.bad)
		warnx_("%zu unparsable address%s in To/Cc/Bcc ignored", h.bad, h.bad == 1 ? "" : "es");
	if (nrcpts == 0) {
		warnx_("no recipients found in the message headers; not sent");
		rc = EX_NOUSER;
		goto out;
	}
	sender = o->sender ? (*o->sender ? qualify(o->sender, origin) : xstrdup("")) : qualify(login_name(), origin);
	for (const char *p = sender; *p; p++) {
		/* smtpd judges the syntax; here only what would break the command line itself */
		if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == 127) {
			warnx_("bad sender address '%s'; not sent", log_safe(sender, strlen(sender), 300));
			rc = EX_USAGE;
			goto out;
		}
	}

	if ((c.fd = submit_connect(cfg)) < 0) {
		rc = EX_TEMPFAIL;
		goto out;
	}
	if (!read_reply(&c) || c.code != 220 || !command(&c, "EHLO localhost") || c.code != 250)
		goto refused;
	for (const char *l = buf_cstr(&c.reply); l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *nl = strchr(l, '\n');
		if ((nl ? (size_t)(nl - l) : strlen(l)) < 4)
			continue;	/* a bare "250" carries no keyword */
		c.eightbit |= str_has_prefix_ci(l + 4, "8BITMIME");
		c.smtputf8 |= str_has_prefix_ci(l + 4, "SMTPUTF8");
		c.dsn |= str_has_prefix_ci(l + 4, "DSN");
	}
	buf_printf(&line, "MAIL FROM:<%s>", sender);
	if (c.eightbit)
		buf_puts(&line, " BODY=8BITMIME");
	bool utf8 = has_8bit(sender);
	for (size_t i = 0; i < nrcpts; i++)
		utf8 |= has_8bit(rcpts[i]);
	if (utf8 && c.smtputf8)
		buf_puts(&line, " SMTPUTF8");
	if (o->envid && c.dsn) {
		esmtp_xtext_encode(o->envid, strlen(o->envid), &tmp);
		buf_printf(&line, " ENVID=%s", buf_cstr(&tmp));
	}
	if (!command(&c, buf_cstr(&line)) || c.code != 250)
		goto refused;
	buf_reset(&tmp);
	if (o->notify && c.dsn)
		sendmail_notify_value(o->notify, &tmp);
	for (size_t i = 0; i < nrcpts; i++) {
		buf_reset(&line);
		buf_printf(&line, "RCPT TO:<%s>", rcpts[i]);
		if (tmp.len)
			buf_printf(&line, " NOTIFY=%s", buf_cstr(&tmp));
		if (!command(&c, buf_cstr(&line)))
			goto broken;
		if (c.code / 100 == 2) {
			accepted++;
			continue;
		}
		warnx_("%s: recipient refused: %s", log_safe(rcpts[i], strlen(rcpts[i]), 300),
		       log_safe(c.reply.data, c.reply.len, 1000));
		if (fail == 0 || c.code / 100 == 4)
			fail = status_of(c.code) == EX_TEMPFAIL ? EX_TEMPFAIL : EX_NOUSER;
	}
	if (accepted == 0) {
		rc = fail;
		warnx_("no recipient was accepted; the message was not sent");
		command(&c, "QUIT");
		goto out;
	}
	if (!command(&c, "DATA"))
		goto broken;
	if (c.code != 354)
		goto refused;
	if (!send_text(&c, &m, &head, &rc))
		goto out;
	if (!read_reply(&c))
		goto broken;
	if (c.code / 100 != 2)
		goto refused;
	if (o->verbose)
		fprintf(stderr, "sendmail: %s\n", log_safe(c.reply.data, c.reply.len, 1000));
	command(&c, "QUIT");
	/* refused recipients were reported above; the message went to the others, so a retry would duplicate it */
	rc = 0;
	goto out;
refused:
	if (c.reply.len == 0)
		goto broken;
	warnx_("the message was refused: %s", log_safe(c.reply.data, c.reply.len, 1000));
	rc = status_of(c.code);
	command(&c, "QUIT");
	goto out;
broken:
	warnx_("the submit connection broke or spoke nonsense; the message was not sent");
	rc = EX_TEMPFAIL;
out:
	if (c.fd >= 0)
		close(c.fd);
	for (size_t i = 0; i < nrcpts; i++)
		free(rcpts[i]);
	free(rcpts);
	free(sender);
	sendmail_headers_free(&h);
	sendmail_headers_free(&cl);
	buf_free(&m.text);
	buf_free(&head);
	buf_free(&line);
	buf_free(&tmp);
	buf_free(&c.in);
	buf_free(&c.reply);
	return rc;
}

/* -bs: the caller speaks SMTP itself; we only carry bytes between stdin/stdout and the submit socket. */
static int smtp_proxy(struct config *cfg)
{
	int fd = submit_connect(cfg);
	bool in_open = true;
	char tmp[CHUNK];

	if (fd < 0) {
		static const char msg[] = "421 4.3.2 the mail system is not running\r\n";
		write_all(1, msg, sizeof(msg) - 1);
		return EX_TEMPFAIL;
	}
	for (;;) {
		struct pollfd p[2] = { { fd, POLLIN, 0 }, { 0, POLLIN, 0 } };
		if (poll(p, in_open ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents) {
			ssize_t r = read(fd, tmp, sizeof(tmp));
			if (r <= 0 || !write_all(1, tmp, (size_t)r))
				break;
		}
		if (in_open && p[1].revents) {
			ssize_t r = read(0, tmp, sizeof(tmp));
			if (r <= 0) {
				in_open = false;
				shutdown(fd, SHUT_WR);
			} else if (!write_all(fd, tmp, (size_t)r)) {
				break;
			}
		}
	}
	close(fd);
	return 0;
}

static int newaliases(struct config *cfg)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(BUF_NOLIMIT), warn = BUF_INIT(BUF_NOLIMIT);
	size_t count = 0;
	int rc = 0;

	buf_printf(&path, "%s/aliases", config_str(cfg, "config_directory"));
	if (!table_compile(buf_cstr(&path), NULL, TABLE_ALIASES, &count, &err, &warn)) {
		fprintf(stderr, "newaliases: %s\n", buf_cstr(&err));
		rc = EX_DATAERR;
	} else {
		printf("newaliases: %s.lmdb: %zu alias%s\n", buf_cstr(&path), count, count == 1 ? "" : "es");
	}
	if (warn.len)
		fprintf(stderr, "newaliases: warning: %s%s", buf_cstr(&warn),
		        warn.data[warn.len - 1] == '\n' ? "" : "\n");
	buf_free(&path);
	buf_free(&err);
	buf_free(&warn);
	return rc;
}

int cmd_sendmail(int argc, char **argv)
{
	struct sendmail_opts o;
	struct buf err = BUF_INIT(BUF_NOLIMIT);
	struct config *cfg = NULL;
	int rc;

	if (!sendmail_parse_args(argc, argv, &o, &err)) {
		warnx_("%s", buf_cstr(&err));
		fprintf(stderr, "usage: sendmail [-t] [-i] [-f sender] [-F name] [-N dsn] [-V envid] [-C dir] "
		                "[-bs|-bp|-bi|-q] [--] [recipient...]\n");
		buf_free(&err);
		return EX_USAGE;
	}
	buf_free(&err);
	if (o.mode == SENDMAIL_VERSION) {
		printf("postern sendmail\n");
		sendmail_opts_free(&o);
		return 0;
	}
	/* a reader that went away must not kill us mid-transaction with SIGPIPE: write errors are reported */
	signal(SIGPIPE, SIG_IGN);
	if (!load_config(o.dir, &cfg)) {
		sendmail_opts_free(&o);
		return EX_CONFIG;
	}
	switch (o.mode) {
	case SENDMAIL_SMTP:
		rc = smtp_proxy(cfg);
		break;
	case SENDMAIL_MAILQ:
		rc = queue_print(cfg, QLIST_MAILQ, stdout, stderr);
		break;
	case SENDMAIL_NEWALIASES:
		rc = newaliases(cfg);
		break;
	case SENDMAIL_FLUSH: {
		/* the same request as `postern queue flush`: qmgr retries every deferred message now. Only a running
		 * qmgr: stopped, nothing would be delivered now, and saying so is the honest answer. Postfix's
		 * sendmail -q (postqueue -f) fails the same way, with the same words and EX_UNAVAILABLE. */
		int fd = qclient_connect(cfg);
		if (fd < 0) {
			fprintf(stderr, "sendmail: Cannot flush mail queue - mail system is down (qmgr: %s); "
			        "'postern queue flush' marks deferred mail for the next start\n", strerror(errno));
			rc = EX_UNAVAILABLE;
			break;
		}
		close(fd);
		char *v[] = { "queue", "flush", "-c", (char *)cli_instance_dir(o.dir), NULL };
		rc = cmd_queue(4, v);
		break;
	}
	default:
		rc = deliver(&o, cfg);
		break;
	}
	config_free(&cfg);
	sendmail_opts_free(&o);
	return rc;
}

int cmd_mailq(int argc, char **argv)
{
	char *v[] = { "mailq", NULL, NULL, NULL };
	if (argc > 1 && strcmp(argv[1], "-C") == 0 && argc == 3) {
		v[1] = "-C";
		v[2] = argv[2];
		return cmd_sendmail(3, v);
	}
	if (argc > 1) {
		fprintf(stderr, "usage: mailq [-C dir]\n");
		return EX_USAGE;
	}
	return cmd_sendmail(1, v);
}

int cmd_newaliases(int argc, char **argv)
{
	char *v[] = { "newaliases", NULL, NULL, NULL };
	if (argc > 1 && strcmp(argv[1], "-C") == 0 && argc == 3) {
		v[1] = "-C";
		v[2] = argv[2];
		return cmd_sendmail(3, v);
	}
	if (argc > 1) {
		fprintf(stderr, "usage: newaliases [-C dir]\n");
		return EX_USAGE;
	}
	return cmd_sendmail(1, v);
}
