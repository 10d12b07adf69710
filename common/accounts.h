/* The account database: one LMDB file (accounts.lmdb) mapping a normalized address to a versioned record with the
 * password hash, Maildir, delivery uid/gid, quota, enabled flag and optional APOP secret. Written by `postern user`
 * (and `postern init`); read by the auth daemon, the only process that looks at hashes, and for lookups. */
#ifndef POSTERN_ACCOUNTS_H
#define POSTERN_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Limits on what a record may hold; the decoder rejects anything larger. */
#define ACCOUNTS_ADDRESS_MAX 254	/* RFC 5321 path limit minus the brackets */
#define ACCOUNTS_LOCAL_MAX 64
#define ACCOUNTS_HASH_MAX 383		/* crypt output without its NUL */
#define ACCOUNTS_PATH_MAX 4095
#define ACCOUNTS_SECRET_MAX 255
#define ACCOUNTS_PASSWORD_MAX 1024	/* longer passwords are refused before hashing (cost and DoS bound) */
#define ACCOUNTS_RECORD_VERSION 1

struct accounts;

/* One account. Strings are owned by the struct (accounts_user_free releases them). */
struct accounts_user {
	char *address;		/* normalized: both parts lower case */
	char *password_hash;	/* crypt(3) string; "" means no password login is possible */
	char *maildir;		/* Maildir path, ends with '/' */
	uint32_t uid, gid;	/* 0 and 0: deliver and read as the shared virtual-mail user (mail_owner) */
	uint64_t quota;		/* bytes; 0 = no quota */
	bool enabled;
	/* APOP needs the shared secret itself (the server recomputes MD5(timestamp + secret)), so it is stored as
	 * given, not hashed: treat it as a separate, weaker credential. NULL = APOP not allowed. */
	char *apop_secret;
	int64_t created, changed;	/* seconds since the epoch */
	char *login_token;	/* only in auth's answer to a successful VERIFY: redeemable once (ACCOUNTS_AUTH_REDEEM) */
};

enum accounts_result {
	ACCOUNTS_OK = 0,
	ACCOUNTS_NOTFOUND,
	ACCOUNTS_BADPASS,	/* accounts_verify: wrong password (or no password set) */
	ACCOUNTS_DISABLED,	/* accounts_verify: right password, account disabled */
	ACCOUNTS_EXISTS,	/* accounts_add: address already present */
	ACCOUNTS_ERROR,		/* database or record error; text in err */
};

/* Options for accounts_add. Zeroed = defaults: Maildir under mail_directory, uid/gid 0, no quota, enabled. */
struct accounts_opts {
	const char *mail_directory;	/* base for the default Maildir $mail_directory/DOMAIN/LOCAL/ */
	const char *maildir;		/* explicit Maildir; overrides the default */
	uint32_t uid, gid;
	uint64_t quota;
	bool disabled;
	const char *scheme;		/* "$y$" (default) or "$6$" */
};

/* Open (read-only or read-write) the database file at path; read-write creates it (mode 0600). NULL with err on
 * failure. A handle sees writes committed by other handles and processes at its next call. Do not use a handle
 * across fork(): open it in the process that uses it. */
struct accounts *accounts_open(const char *path, bool writable, struct buf *err);
void accounts_close(struct accounts **db);

/* Syntax-check an address (dot-atom local part, no quoting; DNS-style domain) and lower-case it: Postern treats
 * local parts case-insensitively, like nearly every mail system, so User@Example.ORG and user@example.org are one
 * account. false with err when it is not acceptable as an account name. */
bool accounts_normalize(const char *address, struct buf *out, struct buf *err);

enum accounts_result accounts_get(struct accounts *db, const char *address, struct accounts_user *out,
                                  struct buf *err);
/* Insert or replace u (u->address must be normalized). Sets changed to now; keeps created of an existing record
 * (or sets it when new). */
enum accounts_result accounts_put(struct accounts *db, const struct accounts_user *u, struct buf *err);
enum accounts_result accounts_delete(struct accounts *db, const char *address, struct buf *err);
/* Calls fn for every account in address order; stops early when fn returns false. A corrupt record stops the
 * walk with ACCOUNTS_ERROR naming its key. */
enum accounts_result accounts_foreach(struct accounts *db, bool (*fn)(const struct accounts_user *u, void *arg),
                                      void *arg, struct buf *err);

/* Add an account with a password in one call (for `postern user add` and `postern init`). ACCOUNTS_EXISTS when
 * the address is taken. */
enum accounts_result accounts_add(struct accounts *db, const char *address, const char *password,
                                  const struct accounts_opts *opts, struct buf *err);
enum accounts_result accounts_set_password(struct accounts *db, const char *address, const char *password,
                                           const char *scheme, struct buf *err);
enum accounts_result accounts_set_enabled(struct accounts *db, const char *address, bool enabled, struct buf *err);
/* secret NULL removes APOP for the account. */
enum accounts_result accounts_set_apop(struct accounts *db, const char *address, const char *secret,
                                       struct buf *err);

/* Look up and check a password. Unknown addresses cost the same as known ones (a dummy hash is verified), so the
 * timing does not tell whether an account exists. On ACCOUNTS_OK and ACCOUNTS_DISABLED, out (if not NULL) holds
 * the account. */
enum accounts_result accounts_verify(struct accounts *db, const char *address, const char *password,
                                     struct accounts_user *out, struct buf *err);

/* Hash a password with libcrypt: scheme "$y$" (yescrypt, default when NULL) or "$6$" (SHA-512 crypt). Returns a
 * malloc'ed crypt string, or NULL with err (unknown scheme, password empty or too long, libcrypt failure). */
char *accounts_hash_password(const char *password, const char *scheme, struct buf *err);
/* true when password matches hash (any "$id$" scheme libcrypt supports; locked "!"/"*" hashes and old DES
 * hashes never match). The final comparison is constant-time. */
bool accounts_check_hash(const char *password, const char *hash);
/* Spend the time one yescrypt verification takes, for unknown users. */
void accounts_dummy_verify(const char *password);

/* System accounts (auth_system_users = yes): name is a login name from passwd; the hash comes from shadow when
 * readable. Maildir is HOME/Maildir/, uid/gid those of the user. */
enum accounts_result accounts_system_get(const char *name, struct accounts_user *out, struct buf *err);

/* The record format (public for tests and the fuzzer). decode is strict: wrong version, truncated or trailing
 * bytes, over-long or NUL-containing strings are errors, never a crash. address is not part of the record. */
void accounts_record_encode(const struct accounts_user *u, struct buf *out);
bool accounts_record_decode(const void *data, size_t len, struct accounts_user *out, struct buf *err);

void accounts_user_free(struct accounts_user *u);
const char *accounts_result_str(enum accounts_result r);

#endif
