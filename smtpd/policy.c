/* Relay control and recipient validation for RCPT TO, and the sender check on submission. Local domains are
 * mydestination plus the domains that have accounts (virtual domains); mail for other domains is relayed only for
 * mynetworks or authenticated clients. Recipients in local domains must exist: an account, an alias, a system
 * user (mydestination only) or postmaster. virtual_mailbox_domains adds domains whose users are accounts only.
 * A lookup that fails is a temporary error, never "unknown user". */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accounts.h"
#include "addr.h"
#include "alloc.h"
#include "log.h"
#include "smtpd.h"
#include "str.h"
#include "table.h"

struct cidr {
	int family;
	unsigned char addr[16];
	unsigned prefix;
};

struct smtpd_policy {
	struct cidr *nets;
	size_t nnets;
	char **mydest;
	size_t nmydest;
	char **vconf;			/* virtual_mailbox_domains */
	size_t nvconf;
	char *accounts_path;
	struct accounts *accounts;
	char **vdomains;		/* domains with at least one account */
	size_t nvdomains;
	struct stat vdomains_st;	/* of accounts_path when vdomains was built */
	bool vdomains_loaded;
	char *aliases_path;
	struct table *aliases;
	char *delims;
	bool system_users;
};

static bool cidr_parse(const char *item, struct cidr *c)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *slash = strchr(item, '/');
	size_t hl = slash ? (size_t)(slash - item) : strlen(item);
	uint64_t prefix;

	if (hl >= 2 && item[0] == '[' && item[hl - 1] == ']') {
		item++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return false;
	memcpy(host, item, hl);
	host[hl] = '\0';
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, host, c->addr) == 1) {
		c->family = AF_INET;
		c->prefix = 32;
	} else if (inet_pton(AF_INET6, host, c->addr) == 1) {
		c->family = AF_INET6;
		c->prefix = 128;
	} else {
		return false;
	}
	if (slash) {
		if (!str_to_u64(slash + 1, c->prefix, &prefix))
			return false;
		c->prefix = (unsigned)prefix;
	}
	return true;
}

static bool cidr_match(const struct cidr *c, int family, const unsigned char *a)
{
	unsigned full = c->prefix / 8, rest = c->prefix % 8;

	if (c->family != family)
		return false;
	if (memcmp(c->addr, a, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (c->addr[full] & mask) == (a[full] & mask);
}

static bool nets_parse(const char *list, struct cidr **out, size_t *n, struct buf *err)
{
	char *copy = xstrdup(list);
	char *fields[1024];
	size_t nf = str_split(copy, ", \t\r\n", fields, 1024);

	if (nf > 1024) {
		buf_printf(err, "mynetworks: more than 1024 entries");
		free(copy);
		return false;
	}
	*out = xcalloc(nf ? nf : 1, sizeof(**out));
	*n = 0;
	for (size_t i = 0; i < nf; i++) {
		if (!cidr_parse(fields[i], &(*out)[*n])) {
			buf_printf(err, "mynetworks: \"%s\" is not an address or network", log_safe(fields[i], strlen(fields[i]), 100));
			xfree(out);
			free(copy);
			return false;
		}
		(*n)++;
	}
	free(copy);
	return true;
}

static bool sa_match(const struct cidr *nets, size_t n, const struct sockaddr *sa)
{
	int family;
	unsigned char a[16];

	if (sa->sa_family == AF_INET) {
		family = AF_INET;
		memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(in6)) {
			family = AF_INET;
			memcpy(a, in6->s6_addr + 12, 4);
		} else {
			family = AF_INET6;
			memcpy(a, in6->s6_addr, 16);
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (cidr_match(&nets[i], family, a))
			return true;
	return false;
}

bool smtpd_cidr_match_text(const char *list, const char *addr, struct buf *err, bool *match)
{
	struct cidr *nets;
	size_t n;
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else {
		buf_printf(err, "bad address");
		return false;
	}
	if (!nets_parse(list, &nets, &n, err))
		return false;
	*match = sa_match(nets, n, (struct sockaddr *)&ss);
	free(nets);
	return true;
}

static char **list_lower(const char *list, size_t *n)
{
	char *copy = xstrdup(list);
	size_t cnt = str_split(copy, ", \t\r\n", NULL, 0);
	char **fields = xcalloc(cnt + 1, sizeof(*fields));
	char **out = xcalloc(cnt + 1, sizeof(*out));

	free(copy);
	copy = xstrdup(list);
	cnt = str_split(copy, ", \t\r\n", fields, cnt);
	for (size_t i = 0; i < cnt; i++) {
		out[i] = xstrdup(fields[i]);
		str_lower(out[i]);
	}
	*n = cnt;
	free(fields);
	free(copy);
	return out;
}

static void list_free(char ***l, size_t *n)
{
	for (size_t i = 0; *l && i < *n; i++)
		free((*l)[i]);
	xfree(l);
	*n = 0;
}

struct smtpd_policy *smtpd_policy_new(const struct smtpd_policy_conf *conf, struct buf *err)
{
	struct smtpd_policy *p = xcalloc(1, sizeof(*p));

	if (!nets_parse(conf->mynetworks ? conf->mynetworks : "", &p->nets, &p->nnets, err)) {
		free(p);
		return NULL;
	}
	p->mydest = list_lower(conf->mydestination ? conf->mydestination : "", &p->nmydest);
	p->vconf = list_lower(conf->virtual_domains ? conf->virtual_domains : "", &p->nvconf);
	p->accounts_path = conf->accounts_db && *conf->accounts_db ? xstrdup(conf->accounts_db) : NULL;
	p->aliases_path = conf->aliases && *conf->aliases ? xstrdup(conf->aliases) : NULL;
	p->delims = xstrdup(conf->delimiters ? conf->delimiters : "");
	p->system_users = conf->system_users;
	return p;
}

void smtpd_policy_free(struct smtpd_policy **pp)
{
	struct smtpd_policy *p = *pp;

	if (!p)
		return;
	free(p->nets);
	list_free(&p->mydest, &p->nmydest);
	list_free(&p->vconf, &p->nvconf);
	list_free(&p->vdomains, &p->nvdomains);
	if (p->accounts)
		accounts_close(&p->accounts);
	if (p->aliases)
		table_close(&p->aliases);
	free(p->accounts_path);
	free(p->aliases_path);
	free(p->delims);
	xfree(pp);
}

bool smtpd_policy_mynetworks(struct smtpd_policy *p, const struct sockaddr *sa)
{
	return sa_match(p->nets, p->nnets, sa);
}

static bool in_list(char **l, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (str_eq_ci(l[i], s))
			return true;
	return false;
}

/* Open the account database when it exists; a missing database means "no accounts", an unreadable one is an
 * error (SMTPD_TEMPFAIL). */
static enum smtpd_verdict accounts_ready(struct smtpd_policy *p)
{
	struct buf err = BUF_INIT(1024);

	if (p->accounts || !p->accounts_path)
		return SMTPD_OK;
	if (access(p->accounts_path, F_OK) != 0 && errno == ENOENT)
		return SMTPD_OK;
	p->accounts = accounts_open(p->accounts_path, false, &err);
	if (!p->accounts) {
		log_error("cannot open %s: %s", p->accounts_path, buf_cstr(&err));
		buf_free(&err);
		return SMTPD_TEMPFAIL;
	}
	buf_free(&err);
	return SMTPD_OK;
}

static bool collect_domain(const struct accounts_user *u, void *arg)
{
	struct smtpd_policy *p = arg;
	const char *at = strrchr(u->address, '@');

	if (at && at[1] && !in_list(p->vdomains, p->nvdomains, at + 1)) {
		p->vdomains = xreallocarray(p->vdomains, p->nvdomains + 2, sizeof(*p->vdomains));
		p->vdomains[p->nvdomains++] = xstrdup(at + 1);
		p->vdomains[p->nvdomains] = NULL;
	}
	return true;
}

/* The set of virtual domains, rebuilt when the database file changes (postern user add is seen at once). */
static enum smtpd_verdict vdomains_ready(struct smtpd_policy *p)
{
	struct stat st;
	struct buf err = BUF_INIT(1024);

	if (!p->accounts_path || stat(p->accounts_path, &st) != 0) {
		list_free(&p->vdomains, &p->nvdomains);
		p->vdomains_loaded = true;
		return SMTPD_OK;
	}
	if (p->vdomains_loaded && st.st_ino == p->vdomains_st.st_ino && st.st_size == p->vdomains_st.st_size &&
	    st.st_mtim.tv_sec == p->vdomains_st.st_mtim.tv_sec && st.st_mtim.tv_nsec == p->vdomains_st.st_mtim.tv_nsec)
		return SMTPD_OK;
	if (accounts_ready(p) != SMTPD_OK)
		return SMTPD_TEMPFAIL;
	list_free(&p->vdomains, &p->nvdomains);
	if (p->accounts && accounts_foreach(p->accounts, collect_domain, p, &err) != ACCOUNTS_OK) {
		log_error("%s: %s", p->accounts_path, buf_cstr(&err));
		buf_free(&err);
		return SMTPD_TEMPFAIL;
	}
	buf_free(&err);
	p->vdomains_st = st;
	p->vdomains_loaded = true;
	return SMTPD_OK;
}

/* Split canon "local@domain" at the last '@'; local is stripped of its extension. Caller frees both. */
static void split_addr(const struct smtpd_policy *p, const char *canon, char **base, char **domain)
{
	const char *at = strrchr(canon, '@');
	char *local = at ? xstrndup(canon, (size_t)(at - canon)) : xstrdup(canon);
	char *ext = NULL;

	*domain = xstrdup(at ? at + 1 : "");
	str_lower(*domain);
	addr_split_extension(local, p->delims, base, &ext);
	free(ext);
	free(local);
}

static enum smtpd_verdict account_exists(struct smtpd_policy *p, const char *base, const char *domain)
{
	struct buf addr = BUF_INIT(1024), norm = BUF_INIT(1024), err = BUF_INIT(1024);
	struct accounts_user u;
	enum smtpd_verdict v = SMTPD_REJECT;

	if (accounts_ready(p) != SMTPD_OK)
		return SMTPD_TEMPFAIL;
	if (!p->accounts)
		return SMTPD_REJECT;
	buf_printf(&addr, "%s@%s", base, domain);
	if (accounts_normalize(buf_cstr(&addr), &norm, &err)) {
		memset(&u, 0, sizeof(u));
		buf_reset(&err);
		switch (accounts_get(p->accounts, buf_cstr(&norm), &u, &err)) {
		case ACCOUNTS_OK:
			v = u.enabled ? SMTPD_OK : SMTPD_REJECT;
			accounts_user_free(&u);
			break;
		case ACCOUNTS_NOTFOUND:
			break;
		default:
			log_error("account lookup %s: %s", buf_cstr(&norm), buf_cstr(&err));
			v = SMTPD_TEMPFAIL;
			break;
		}
	}
	buf_free(&addr);
	buf_free(&norm);
	buf_free(&err);
	return v;
}

static enum smtpd_verdict alias_exists(struct smtpd_policy *p, const char *local)
{
	struct buf err = BUF_INIT(1024), value = BUF_INIT(1 << 20);
	enum smtpd_verdict v = SMTPD_REJECT;

	if (!p->aliases_path)
		return SMTPD_REJECT;
	if (!p->aliases) {
		if (access(p->aliases_path, F_OK) != 0 && errno == ENOENT)
			return SMTPD_REJECT;	/* no aliases compiled: nothing to find */
		p->aliases = table_open(p->aliases_path, &err);
		if (!p->aliases) {
			log_error("cannot open %s: %s", p->aliases_path, buf_cstr(&err));
			buf_free(&err);
			return SMTPD_TEMPFAIL;
		}
	}
	switch (table_lookup_addr(p->aliases, local, p->delims, TABLE_ADDR_LOCAL, &value, NULL)) {
	case TABLE_FOUND:
		v = SMTPD_OK;
		break;
	case TABLE_NOTFOUND:
		break;
	case TABLE_ERROR:
		log_error("alias lookup %s: %s", log_safe(local, strlen(local), 100), table_error(p->aliases));
		v = SMTPD_TEMPFAIL;
		break;
	}
	buf_free(&err);
	buf_free(&value);
	return v;
}

static bool system_user_exists(const char *base)
{
	char *lower = xstrdup(base);
	struct passwd *pw;

	str_lower(lower);
	pw = getpwnam(lower);
	free(lower);
	return pw != NULL;
}

enum smtpd_verdict smtpd_policy_rcpt(struct smtpd_policy *p, const struct smtpd_session *ss, const char *canon,
                                     struct buf *reply)
{
	char *base, *domain;
	enum smtpd_verdict v = SMTPD_OK;
	bool mydest, virt;

	split_addr(p, canon, &base, &domain);
	if (*domain == '\0')	/* <Postmaster> (RFC 5321 4.5.1) */
		goto out;
	if (vdomains_ready(p) != SMTPD_OK) {
		v = SMTPD_TEMPFAIL;
		goto out;
	}
	mydest = in_list(p->mydest, p->nmydest, domain);
	virt = in_list(p->vdomains, p->nvdomains, domain) || in_list(p->vconf, p->nvconf, domain);
	if (!mydest && !virt) {
		if (!ss->trusted && !ss->auth_user)
			v = SMTPD_REJECT;
		goto out;
	}
	if (str_eq_ci(base, "postmaster") || str_eq_ci(base, "abuse"))
		goto out;
	v = account_exists(p, base, domain);
	if (v == SMTPD_REJECT && mydest) {
		/* The alias table is keyed by the local part with its extension; table_lookup_addr strips it. */
		const char *at = strrchr(canon, '@');
		char *local = xstrndup(canon, (size_t)(at - canon));
		v = alias_exists(p, local);
		free(local);
		if (v == SMTPD_REJECT && p->system_users && system_user_exists(base))
			v = SMTPD_OK;
	}
	if (v == SMTPD_REJECT) {
		buf_printf(reply, "550 5.1.1 <%s>: Recipient address rejected: User unknown", canon);
		goto out_free;
	}
out:
	if (v == SMTPD_REJECT)
		buf_printf(reply, "554 5.7.1 <%s>: Relay access denied", canon);
out_free:
	if (v == SMTPD_TEMPFAIL)
		buf_printf(reply, "451 4.3.0 <%s>: Temporary lookup failure", canon);
	free(base);
	free(domain);
	return v;
}

enum smtpd_verdict smtpd_policy_sender(struct smtpd_policy *p, const struct smtpd_session *ss, const char *canon,
                                       struct buf *reply)
{
	char *base, *domain;
	bool ok;
	const char *login = ss->auth_user ? ss->auth_user : "";

	if (*canon == '\0')	/* the null sender is for bounces; it names nobody */
		return SMTPD_OK;
	split_addr(p, canon, &base, &domain);
	if (strchr(login, '@')) {
		size_t bl = strlen(base);
		ok = str_eqn_ci(login, base, bl) && login[bl] == '@' && str_eq_ci(login + bl + 1, domain);
	} else {
		/* a system user owns LOGIN@ every mydestination domain */
		ok = str_eq_ci(login, base) && in_list(p->mydest, p->nmydest, domain);
	}
	free(base);
	free(domain);
	if (ok)
		return SMTPD_OK;
	buf_printf(reply, "553 5.7.1 <%s>: Sender address rejected: not owned by user %s", canon,
	           log_safe(login, strlen(login), 255));
	return SMTPD_REJECT;
}
