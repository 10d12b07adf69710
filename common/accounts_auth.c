/* The auth protocol table and its client side; see accounts_auth.h. */
#include "accounts_auth.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"

static const struct ipc_field_def verify_fields[] = {
	{ ACCOUNTS_AUTH_TAG_MECH, IPC_T_STR, IPC_REQUIRED, "mech" },
	{ ACCOUNTS_AUTH_TAG_USER, IPC_T_STR, 0, "user" },
	{ ACCOUNTS_AUTH_TAG_PASSWORD, IPC_T_STR, 0, "password" },
	{ ACCOUNTS_AUTH_TAG_DATA, IPC_T_BYTES, 0, "data" },
	{ ACCOUNTS_AUTH_TAG_RIP, IPC_T_STR, IPC_REQUIRED, "rip" },
	{ ACCOUNTS_AUTH_TAG_FLAGS, IPC_T_U32, 0, "flags" },
	{ ACCOUNTS_AUTH_TAG_SERVICE, IPC_T_STR, 0, "service" },
	{ ACCOUNTS_AUTH_TAG_APOP_TS, IPC_T_STR, 0, "apop_ts" },
	{ ACCOUNTS_AUTH_TAG_APOP_DIGEST, IPC_T_STR, 0, "apop_digest" },
	{ 0, 0, 0, NULL },
};

static const struct ipc_field_def lookup_fields[] = {
	{ ACCOUNTS_AUTH_TAG_USER, IPC_T_STR, IPC_REQUIRED, "user" },
	{ ACCOUNTS_AUTH_TAG_SERVICE, IPC_T_STR, 0, "service" },
	{ 0, 0, 0, NULL },
};

static const struct ipc_field_def redeem_fields[] = {
	{ ACCOUNTS_AUTH_TAG_TOKEN, IPC_T_STR, IPC_REQUIRED, "token" },
	{ 0, 0, 0, NULL },
};

static const struct ipc_field_def result_fields[] = {
	{ ACCOUNTS_AUTH_TAG_STATUS, IPC_T_U32, IPC_REQUIRED, "status" },
	{ ACCOUNTS_AUTH_TAG_ADDRESS, IPC_T_STR, 0, "address" },
	{ ACCOUNTS_AUTH_TAG_MAILDIR, IPC_T_STR, 0, "maildir" },
	{ ACCOUNTS_AUTH_TAG_UID, IPC_T_U32, 0, "uid" },
	{ ACCOUNTS_AUTH_TAG_GID, IPC_T_U32, 0, "gid" },
	{ ACCOUNTS_AUTH_TAG_QUOTA, IPC_T_U64, 0, "quota" },
	{ ACCOUNTS_AUTH_TAG_ENABLED, IPC_T_U32, 0, "enabled" },
	{ ACCOUNTS_AUTH_TAG_REASON, IPC_T_STR, 0, "reason" },
	{ ACCOUNTS_AUTH_TAG_TOKEN, IPC_T_STR, 0, "token" },
	{ 0, 0, 0, NULL },
};

static const struct ipc_msg_def auth_msgs[] = {
	{ ACCOUNTS_AUTH_VERIFY, "verify", verify_fields, 0 },
	{ ACCOUNTS_AUTH_LOOKUP, "lookup", lookup_fields, 0 },
	{ ACCOUNTS_AUTH_REDEEM, "redeem", redeem_fields, 0 },
	{ ACCOUNTS_AUTH_RESULT, "result", result_fields, 0 },
	{ 0, NULL, NULL, 0 },
};

const struct ipc_proto accounts_auth_proto = { "auth", auth_msgs };

struct ipc_msg *accounts_auth_verify_msg(const struct accounts_auth_request *rq)
{
	struct ipc_msg *m = ipc_msg_new(ACCOUNTS_AUTH_VERIFY);
	uint32_t flags = (rq->encrypted ? ACCOUNTS_AUTH_F_ENCRYPTED : 0) | (rq->loopback ? ACCOUNTS_AUTH_F_LOOPBACK : 0) |
	                 (rq->plaintext_ok ? ACCOUNTS_AUTH_F_PLAINTEXT_OK : 0) |
	                 (rq->want_token ? ACCOUNTS_AUTH_F_WANT_TOKEN : 0);

	ipc_put_str(m, ACCOUNTS_AUTH_TAG_MECH, rq->mech);
	if (rq->user)
		ipc_put_str(m, ACCOUNTS_AUTH_TAG_USER, rq->user);
	if (rq->password)
		ipc_put_str(m, ACCOUNTS_AUTH_TAG_PASSWORD, rq->password);
	if (rq->data)
		ipc_put_bytes(m, ACCOUNTS_AUTH_TAG_DATA, rq->data, rq->datalen);
	ipc_put_str(m, ACCOUNTS_AUTH_TAG_RIP, rq->rip ? rq->rip : "unknown");
	ipc_put_u32(m, ACCOUNTS_AUTH_TAG_FLAGS, flags);
	if (rq->service)
		ipc_put_str(m, ACCOUNTS_AUTH_TAG_SERVICE, rq->service);
	if (rq->apop_ts)
		ipc_put_str(m, ACCOUNTS_AUTH_TAG_APOP_TS, rq->apop_ts);
	if (rq->apop_digest)
		ipc_put_str(m, ACCOUNTS_AUTH_TAG_APOP_DIGEST, rq->apop_digest);
	return m;
}

struct ipc_msg *accounts_auth_lookup_msg(const char *address)
{
	struct ipc_msg *m = ipc_msg_new(ACCOUNTS_AUTH_LOOKUP);
	ipc_put_str(m, ACCOUNTS_AUTH_TAG_USER, address);
	return m;
}

enum accounts_auth_status accounts_auth_parse_result(const struct ipc_msg *reply, struct accounts_user *out,
                                                     struct buf *reason)
{
	uint32_t status, code, v;
	uint64_t q;
	const char *s;

	memset(out, 0, sizeof *out);
	if (ipc_msg_is_error(reply, &code, &s)) {
		if (reason)
			buf_printf(reason, "auth: %s", s);
		return ACCOUNTS_AUTH_TEMPFAIL;
	}
	if (reply->type != ACCOUNTS_AUTH_RESULT || !ipc_get_u32(reply, ACCOUNTS_AUTH_TAG_STATUS, &status) ||
	    status > ACCOUNTS_AUTH_NOTFOUND) {
		if (reason)
			buf_puts(reason, "auth: unexpected reply");
		return ACCOUNTS_AUTH_TEMPFAIL;
	}
	if (reason && ipc_get_str(reply, ACCOUNTS_AUTH_TAG_REASON, &s, NULL))
		buf_puts(reason, s);
	if (ipc_get_str(reply, ACCOUNTS_AUTH_TAG_ADDRESS, &s, NULL))
		out->address = xstrdup(s);
	if (ipc_get_str(reply, ACCOUNTS_AUTH_TAG_MAILDIR, &s, NULL))
		out->maildir = xstrdup(s);
	if (ipc_get_u32(reply, ACCOUNTS_AUTH_TAG_UID, &v))
		out->uid = v;
	if (ipc_get_u32(reply, ACCOUNTS_AUTH_TAG_GID, &v))
		out->gid = v;
	if (ipc_get_u64(reply, ACCOUNTS_AUTH_TAG_QUOTA, &q))
		out->quota = q;
	if (ipc_get_u32(reply, ACCOUNTS_AUTH_TAG_ENABLED, &v))
		out->enabled = v != 0;
	if (ipc_get_str(reply, ACCOUNTS_AUTH_TAG_TOKEN, &s, NULL))
		out->login_token = xstrdup(s);
	if (status == ACCOUNTS_AUTH_OK && (out->address == NULL || out->maildir == NULL)) {
		accounts_user_free(out);
		if (reason)
			buf_puts(reason, "auth: reply without account fields");
		return ACCOUNTS_AUTH_TEMPFAIL;
	}
	return (enum accounts_auth_status)status;
}

static enum accounts_auth_status call(const char *socket_path, struct ipc_msg *req, int timeout_ms,
                                      struct accounts_user *out, struct buf *err)
{
	struct ipc_msg *reply = NULL;
	enum accounts_auth_status st = ACCOUNTS_AUTH_TEMPFAIL;
	int fd;

	memset(out, 0, sizeof *out);
	if ((fd = ipc_connect(socket_path, timeout_ms)) < 0) {
		buf_printf(err, "connect to %s: %s", socket_path, strerror(errno));
	} else {
		if (ipc_call(fd, &accounts_auth_proto, req, &reply, timeout_ms, err))
			st = accounts_auth_parse_result(reply, out, err);
		close(fd);
	}
	ipc_msg_free(&reply);
	ipc_msg_free(&req);
	return st;
}

enum accounts_auth_status accounts_auth_verify(const char *socket_path, const struct accounts_auth_request *rq,
                                               int timeout_ms, struct accounts_user *out, struct buf *err)
{
	struct ipc_msg *req = accounts_auth_verify_msg(rq);
	enum accounts_auth_status st = call(socket_path, req, timeout_ms, out, err);
	return st;
}

enum accounts_auth_status accounts_auth_lookup(const char *socket_path, const char *address, int timeout_ms,
                                               struct accounts_user *out, struct buf *err)
{
	return call(socket_path, accounts_auth_lookup_msg(address), timeout_ms, out, err);
}

enum accounts_auth_status accounts_auth_redeem(const char *socket_path, const char *token, int timeout_ms,
                                               struct accounts_user *out, struct buf *err)
{
	struct ipc_msg *m = ipc_msg_new(ACCOUNTS_AUTH_REDEEM);

	ipc_put_str(m, ACCOUNTS_AUTH_TAG_TOKEN, token);
	return call(socket_path, m, timeout_ms, out, err);
}
