/* The trace header smtpd puts on every message (RFC 5321 4.4, protocol names from RFC 3848 and RFC 6531) and the
 * small header helpers submission needs (does a field exist, an RFC 5322 date). */
#include <string.h>
#include <time.h>

#include "log.h"
#include "smtpd.h"
#include "str.h"

const char *smtpd_protocol_name(const struct smtpd_session *ss)
{
	static const char *const names[2][2][2][2] = {
		/* [utf8][esmtp][tls][auth] */
		{ { { "SMTP", "SMTP" }, { "SMTP", "SMTP" } }, { { "ESMTP", "ESMTPA" }, { "ESMTPS", "ESMTPSA" } } },
		{ { { "SMTP", "SMTP" }, { "SMTP", "SMTP" } },
		  { { "UTF8SMTP", "UTF8SMTPA" }, { "UTF8SMTPS", "UTF8SMTPSA" } } },
	};
	return names[ss->mail.smtputf8 ? 1 : 0][ss->esmtp ? 1 : 0][ss->s && stream_is_tls(ss->s) ? 1 : 0]
	            [ss->auth_user ? 1 : 0];
}

void smtpd_rfc5322_date(int64_t now, struct buf *out)
{
	time_t t = (time_t)now;
	struct tm tm;
	char s[64];
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

	localtime_r(&t, &tm);
	/* Names spelled out here: strftime's %a and %b follow the locale, RFC 5322 wants English. */
	if (strftime(s, sizeof(s), "%d %%s %Y %H:%M:%S %z", &tm) == 0)
		panic("smtpd: date too long");
	buf_printf(out, "%s, ", days[tm.tm_wday % 7]);
	/* s holds "%s" where the month goes */
	const char *mark = strstr(s, "%s");
	buf_append(out, s, (size_t)(mark - s));
	buf_puts(out, months[tm.tm_mon % 12]);
	buf_puts(out, mark + 2);
}

bool smtpd_header_has(const char *hdr, size_t len, const char *name)
{
	size_t nl = strlen(name);
	size_t i = 0;

	while (i < len) {
		/* i is at a line start; a blank line ends the header section */
		if (hdr[i] == '\n' || (hdr[i] == '\r' && i + 1 < len && hdr[i + 1] == '\n'))
			return false;
		if (hdr[i] != ' ' && hdr[i] != '\t' && len - i > nl && str_eqn_ci(hdr + i, name, nl)) {
			size_t j = i + nl;
			while (j < len && (hdr[j] == ' ' || hdr[j] == '\t'))
				j++;
			if (j < len && hdr[j] == ':')
				return true;
		}
		const char *nlp = memchr(hdr + i, '\n', len - i);
		if (!nlp)
			break;
		i = (size_t)(nlp - hdr) + 1;
	}
	return false;
}

/* Text from the client inside a header: printable ASCII only (a HELO name cannot break the header). */
static void put_safe(struct buf *out, const char *s, size_t cap)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n && i < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		buf_putc(out, (c > ' ' && c < 0x7f && c != '(' && c != ')' && c != '\\') ? c : '?');
	}
}

void smtpd_received(const struct smtpd_session *ss, const char *id, int64_t now, struct buf *out)
{
	buf_puts(out, "Received: from ");
	put_safe(out, ss->helo ? ss->helo : ss->client_addr, 255);
	buf_puts(out, " (");
	put_safe(out, ss->client_name, 64);
	buf_printf(out, " [%s])\r\n", ss->client_addr);
	if (ss->s && stream_is_tls(ss->s)) {
		const char *proto = "", *cipher = "";
		int bits = 0;
		stream_tls_info(ss->s, &proto, &cipher, &bits);
		buf_puts(out, "\t(using ");
		put_safe(out, proto, 32);
		buf_puts(out, " with cipher ");
		put_safe(out, cipher, 64);
		buf_printf(out, " (%d bits))\r\n", bits);
	}
	if (ss->peer_uid >= 0)
		buf_printf(out, "\t(from userid %ld)\r\n", ss->peer_uid);
	if (ss->auth_user) {
		buf_puts(out, "\t(Authenticated sender: ");
		put_safe(out, ss->auth_user, 255);
		buf_puts(out, ")\r\n");
	}
	buf_printf(out, "\tby %s (Postern) with %s id %s", ss->set->hostname, smtpd_protocol_name(ss), id);
	/* One recipient may be named; with several, naming one would leak it to the others (RFC 5321 7.2). */
	if (ss->nrcpts == 1 && strlen(ss->rcpts[0].addr) < 300 && !strpbrk(ss->rcpts[0].addr, "\r\n")) {
		buf_puts(out, "\r\n\tfor <");
		buf_puts(out, ss->rcpts[0].addr);
		buf_puts(out, ">");
	}
	buf_puts(out, "; ");
	smtpd_rfc5322_date(now, out);
	buf_puts(out, "\r\n");
}
