/* The one wire format for every UNIX socket between Postern processes (docs/ARCHITECTURE.md, "IPC"), its
 * sockets, and the clients and servers built on it: the CLI and smtpd use the blocking ipc_call(); resident
 * daemons (qmgr, auth) run an ipc_server and ipc_client on libevent. Decoding is strict and table-driven:
 * the receiver's struct ipc_proto says which message types and fields exist, and anything else is an error.
 *
 * A protocol and a call, in short:
 *   enum { AUTH_CHECK = 1, AUTH_RESULT = 2 };
 *   static const struct ipc_field_def check_f[] = {
 *       { 1, IPC_T_STR, IPC_REQUIRED, "user" }, { 2, IPC_T_BYTES, IPC_REQUIRED, "secret" }, { 0 } };
 *   static const struct ipc_field_def result_f[] = { { 1, IPC_T_U32, IPC_REQUIRED, "ok" }, { 0 } };
 *   static const struct ipc_msg_def auth_msgs[] = {
 *       { AUTH_CHECK, "check", check_f, 0 }, { AUTH_RESULT, "result", result_f, 0 }, { 0 } };
 *   static const struct ipc_proto auth_proto = { "auth", auth_msgs };
 *
 *   struct ipc_msg *q = ipc_msg_new(AUTH_CHECK), *r;
 *   ipc_put_str(q, 1, user); ipc_put_bytes(q, 2, pw, pwlen);
 *   if (ipc_call(fd, &auth_proto, q, &r, 5000, &err)) { ipc_get_u32(r, 1, &ok); ipc_msg_free(&r); }
 *   ipc_msg_free(&q); */
#ifndef POSTERN_IPC_H
#define POSTERN_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

/* ---- wire constants (bump IPC_VERSION whenever the frame or field encoding changes) ---- */
#define IPC_MAGIC0 'P'
#define IPC_MAGIC1 'I'
#define IPC_VERSION 1
#define IPC_HDR_LEN 24
#define IPC_FIELD_HDR_LEN 8
#define IPC_MAX_FRAME_DEFAULT (16u * 1024 * 1024)	/* header + payload */
#define IPC_MAX_FRAME_LIMIT (256u * 1024 * 1024)	/* no connection may configure more */

/* Header flags. Unknown bits are an error. */
#define IPC_F_REPLY 0x0001u	/* answers the request with the same id */
#define IPC_F_FD 0x0002u	/* one file descriptor travels with this frame (SCM_RIGHTS) */
#define IPC_F_KNOWN (IPC_F_REPLY | IPC_F_FD)

/* Message types 0xffff0000 and above are the ipc layer's own; every receiver accepts them. */
#define IPC_TYPE_ERROR 0xffff0001u	/* reply: the request failed; fields below */
#define IPC_TAG_ERR_CODE 1	/* u32, required */
#define IPC_TAG_ERR_TEXT 2	/* str, required */

enum ipc_ftype { IPC_T_U32 = 1, IPC_T_U64 = 2, IPC_T_STR = 3, IPC_T_BYTES = 4 };

/* Field flags in the receiver's table. */
#define IPC_REQUIRED 0x01	/* must appear at least once */
#define IPC_REPEATED 0x02	/* may appear more than once; read in order with struct ipc_iter */

struct ipc_field_def {
	uint16_t tag;		/* 1..65535; 0 ends the list */
	uint8_t type;		/* enum ipc_ftype */
	uint8_t flags;		/* IPC_REQUIRED, IPC_REPEATED */
	const char *name;	/* for error messages */
};

/* Message flags in the receiver's table. */
#define IPC_MSG_FD 0x01		/* may carry a descriptor; without it a received descriptor is an error */

struct ipc_msg_def {
	uint32_t type;				/* 1..0xfffeffff */
	const char *name;			/* NULL ends the table */
	const struct ipc_field_def *fields;	/* ends with tag 0; NULL for none */
	unsigned flags;				/* IPC_MSG_FD */
};

/* What a receiver understands: one table per protocol (qmgr, auth, ...), replies included. */
struct ipc_proto {
	const char *name;
	const struct ipc_msg_def *msgs;
};

struct ipc_field {
	uint16_t tag;
	uint8_t type;
	uint32_t len;
	const uint8_t *data;	/* decoded messages: NUL-terminated copy, so strings are C strings */
};

/* One message: built by a sender (ipc_msg_new + ipc_put_*) or produced by the decoder. */
struct ipc_msg {
	uint32_t type;
	uint16_t flags;		/* IPC_F_REPLY; IPC_F_FD is derived from fd */
	uint64_t id;		/* request id; 0 = one-way, no reply wanted */
	int fd;			/* descriptor sent or received with the message, -1 for none; owned by the msg */
	struct buf payload;	/* encoded fields (builder) */
	struct ipc_field *fields;	/* decoded messages only */
	size_t nfields;
	uint8_t *arena;		/* decoded field values, each followed by a NUL */
};

/* ---- building ---- */
struct ipc_msg *ipc_msg_new(uint32_t type);
/* A reply to req: same id, IPC_F_REPLY set. */
struct ipc_msg *ipc_msg_reply_to(const struct ipc_msg *req, uint32_t type);
struct ipc_msg *ipc_msg_error(const struct ipc_msg *req, uint32_t code, const char *text);
void ipc_msg_free(struct ipc_msg **m);	/* closes a still-owned fd */
/* Puts panic when the message would pass IPC_MAX_FRAME_LIMIT (the sender built something absurd: a bug). */
void ipc_put_u32(struct ipc_msg *m, uint16_t tag, uint32_t v);
void ipc_put_u64(struct ipc_msg *m, uint16_t tag, uint64_t v);
void ipc_put_str(struct ipc_msg *m, uint16_t tag, const char *s);	/* must not contain NUL */
void ipc_put_strn(struct ipc_msg *m, uint16_t tag, const char *s, size_t len);
void ipc_put_bytes(struct ipc_msg *m, uint16_t tag, const void *p, size_t len);
/* Attach a descriptor (the message takes ownership; it is closed by ipc_msg_free or after sending). */
void ipc_msg_set_fd(struct ipc_msg *m, int fd);
/* Take the received descriptor out of the message (caller owns it); -1 when none. */
int ipc_msg_take_fd(struct ipc_msg *m);
/* Append the whole frame (header + payload) to out; false when out's cap is too small. */
bool ipc_msg_encode(const struct ipc_msg *m, struct buf *out);

/* ---- decoding ---- */
struct ipc_hdr {
	uint16_t version;
	uint16_t flags;
	uint32_t type;
	uint32_t len;		/* payload bytes */
	uint64_t id;
};
/* Check a frame header (IPC_HDR_LEN bytes) without looking at the payload: magic, version, flags, and the
 * size against max_frame (0: IPC_MAX_FRAME_DEFAULT), so an oversized frame is refused before anything is
 * allocated for it. Once the magic matched, h is filled even on failure (to answer a version mismatch). */
bool ipc_hdr_decode(const void *p, size_t max_frame, struct ipc_hdr *h, struct buf *err);
/* Decode exactly one frame occupying all of len bytes (more or fewer is an error) against proto.
 * fd (or -1) is the descriptor that arrived with it; on failure it is closed. */
bool ipc_frame_decode(const struct ipc_proto *proto, const void *p, size_t len, size_t max_frame, int fd,
                      struct ipc_msg **out, struct buf *err);
/* Validate the payload of h's frame against proto and build the message (used by both decoders). */
bool ipc_payload_decode(const struct ipc_proto *proto, const struct ipc_hdr *h, const void *payload, int fd,
                        struct ipc_msg **out, struct buf *err);
const char *ipc_type_name(const struct ipc_proto *proto, uint32_t type);

/* ---- reading a decoded message ---- */
/* Each returns true and stores the first field with tag, or false when absent. Required fields were checked
 * by the decoder, so for them false cannot happen. Strings are NUL-terminated; len may be NULL. */
bool ipc_get_u32(const struct ipc_msg *m, uint16_t tag, uint32_t *out);
bool ipc_get_u64(const struct ipc_msg *m, uint16_t tag, uint64_t *out);
bool ipc_get_str(const struct ipc_msg *m, uint16_t tag, const char **out, size_t *len);
bool ipc_get_bytes(const struct ipc_msg *m, uint16_t tag, const void **out, size_t *len);
size_t ipc_count(const struct ipc_msg *m, uint16_t tag);
/* Repeated fields, in the order the sender put them. */
struct ipc_iter {
	const struct ipc_msg *msg;
	uint16_t tag;
	size_t pos;
};
void ipc_iter_init(struct ipc_iter *it, const struct ipc_msg *m, uint16_t tag);
bool ipc_iter_u32(struct ipc_iter *it, uint32_t *out);
bool ipc_iter_u64(struct ipc_iter *it, uint64_t *out);
bool ipc_iter_str(struct ipc_iter *it, const char **out, size_t *len);
bool ipc_iter_bytes(struct ipc_iter *it, const void **out, size_t *len);
/* For an IPC_TYPE_ERROR message: its code and text. False for any other message. */
bool ipc_msg_is_error(const struct ipc_msg *m, uint32_t *code, const char **text);

/* ---- incremental frame reader: bytes (and descriptors) in, whole messages out ----
 * After any error the byte stream is out of step: drop the connection and free the reader. */
struct ipc_reader {
	const struct ipc_proto *proto;
	size_t max_frame;
	struct buf in;		/* never holds more than the current frame */
	struct ipc_hdr hdr;
	bool have_hdr;
	int fd;			/* descriptor received for the current frame, -1 for none */
};
void ipc_reader_init(struct ipc_reader *r, const struct ipc_proto *proto, size_t max_frame);
void ipc_reader_free(struct ipc_reader *r);
/* How many more bytes the current frame needs; reading no more than this keeps descriptors with their frame. */
size_t ipc_reader_want(const struct ipc_reader *r);
/* Feed at most ipc_reader_want() bytes (false and err otherwise, or when a header is bad). */
bool ipc_reader_feed(struct ipc_reader *r, const void *p, size_t n, struct buf *err);
/* A descriptor that arrived with the current frame; a second one for the same frame is an error. */
bool ipc_reader_feed_fd(struct ipc_reader *r, int fd, struct buf *err);
/* 1 and *out when a whole frame is decoded, 0 when more bytes are needed, -1 with err on a bad frame. */
int ipc_reader_next(struct ipc_reader *r, struct ipc_msg **out, struct buf *err);
/* Read from a socket into the reader (recvmsg, with descriptors): >0 bytes read, 0 on EOF, -1 with errno
 * (EAGAIN when nothing is there) or with errno = EPROTO and err set on a bad frame. */
ssize_t ipc_reader_read(struct ipc_reader *r, int sock, struct buf *err);

/* ---- UNIX sockets ---- */
/* Remove a stale socket at path (refusing a non-socket: EEXIST, or a socket someone still listens on:
 * EADDRINUSE), bind, chmod to mode, listen. Returns the listening fd (close-on-exec, blocking), or -1 with
 * errno. Ownership is the caller's (bind as the user that should own it, or chown afterwards). */
int ipc_listen(const char *path, mode_t mode, int backlog);
/* Connect within timeout_ms (negative: wait forever). Returns a non-blocking close-on-exec fd, or -1. */
int ipc_connect(const char *path, int timeout_ms);
/* The peer's credentials (SO_PEERCRED: as of connect()); any pointer may be NULL. False with errno. */
bool ipc_peer_cred(int fd, uid_t *uid, gid_t *gid, pid_t *pid);

/* Who may talk to a socket. The kernel reports only the peer's primary gid. */
struct ipc_peer_policy {
	bool allow_root;
	bool allow_same_uid;	/* the uid this process runs as */
	const uid_t *uids;
	size_t nuids;
	const gid_t *gids;
	size_t ngids;
};
bool ipc_peer_allowed(const struct ipc_peer_policy *pol, uid_t uid, gid_t gid);
/* Read the peer's credentials and apply pol; false with the reason in err. */
bool ipc_peer_check(int fd, const struct ipc_peer_policy *pol, struct buf *err);

/* ---- blocking I/O, for short-lived processes ---- */
/* Send one frame (and its descriptor, which is then closed) within timeout_ms; false with err. */
bool ipc_send(int sock, struct ipc_msg *m, int timeout_ms, struct buf *err);
/* Receive one frame within timeout_ms: 1 with *out, 0 on a clean EOF before any byte, -1 with err. */
int ipc_recv(int sock, const struct ipc_proto *proto, size_t max_frame, int timeout_ms, struct ipc_msg **out,
             struct buf *err);
/* Send request (an id is assigned when it has none) and wait for the reply with the same id, all within
 * timeout_ms. An IPC_TYPE_ERROR reply gives false with "peer: TEXT" in err. After any failure the
 * connection's state is unknown: close it. Ownership of request stays with the caller. */
bool ipc_call(int sock, const struct ipc_proto *proto, struct ipc_msg *request, struct ipc_msg **reply,
              int timeout_ms, struct buf *err);
uint64_t ipc_next_id(void);	/* process-wide, never 0 */

/* ---- event-driven server (libevent) ---- */
struct event_base;
struct ipc_server;
struct ipc_req;
/* Called once per received message. The handler owns rq until it calls ipc_reply()/ipc_reply_error(),
 * now or later (the connection may be gone by then; the reply is then dropped). msg is freed after the
 * handler returns: copy what a deferred answer needs, and take a descriptor with ipc_msg_take_fd(). */
typedef void ipc_handler_fn(struct ipc_req *rq, struct ipc_msg *msg, void *arg);

#define IPC_MAX_PENDING_DEFAULT 1000

struct ipc_server_opts {
	const struct ipc_proto *proto;
	ipc_handler_fn *handler;
	void *arg;
	size_t max_frame;		/* 0: IPC_MAX_FRAME_DEFAULT */
	int idle_timeout_ms;		/* 0: none; a connection idle this long is closed */
	size_t max_conns;		/* 0: no limit */
	size_t max_pending;		/* requests of one connection the handler may hold; 0: default */
	const struct ipc_peer_policy *policy;	/* NULL: root or our own uid */
};
/* Serve the listening socket lfd (made non-blocking; not closed by ipc_server_free). Free the server from
 * outside its handler (e.g. after the loop exits); requests still held by the daemon then must still be
 * answered (the answers are dropped) to free them. */
struct ipc_server *ipc_server_new(struct event_base *base, int lfd, const struct ipc_server_opts *opts);
void ipc_server_free(struct ipc_server **s);
size_t ipc_server_conn_count(const struct ipc_server *s);
/* Answer rq with reply (taken over; its id and reply flag are set here) and release rq. For one-way
 * requests (id 0) the reply is dropped; reply may be NULL only for them. Call exactly once per rq. */
void ipc_reply(struct ipc_req *rq, struct ipc_msg *reply);
void ipc_reply_error(struct ipc_req *rq, uint32_t code, const char *text);
void ipc_req_peer(const struct ipc_req *rq, uid_t *uid, gid_t *gid, pid_t *pid);
uint64_t ipc_req_id(const struct ipc_req *rq);

/* ---- event-driven client (libevent) ---- */
struct ipc_client;
/* reply is NULL on failure (timeout, connection lost, error reply) with the reason in err; the callback owns
 * reply. */
typedef void ipc_reply_fn(struct ipc_msg *reply, const char *err, void *arg);
/* Called once when the connection fails or the peer closes it; pending requests have been failed before. */
typedef void ipc_close_fn(const char *why, void *arg);
/* Take over connected socket fd (closed by ipc_client_free). */
struct ipc_client *ipc_client_new(struct event_base *base, int fd, const struct ipc_proto *proto, size_t max_frame,
                                  ipc_close_fn *on_close, void *arg);
/* Queue req (taken over). With cb NULL it is sent one-way (id 0); otherwise cb runs exactly once, with the
 * reply or after timeout_ms (<= 0: no timeout). False when the connection is already closed (req freed). */
bool ipc_client_request(struct ipc_client *c, struct ipc_msg *req, int timeout_ms, ipc_reply_fn *cb, void *arg);
/* Pending requests fail with "client closed". Safe to call from any callback of this client. */
void ipc_client_free(struct ipc_client **c);
size_t ipc_client_pending(const struct ipc_client *c);

#endif
