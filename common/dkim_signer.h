/* DKIM signing policy: the dkim_keys table (DOMAIN -> SELECTOR:KEYFILE) decides which messages get signed and
 * with which key, chosen by the From domain (or its nearest listed parent). Called by smtpd for mail it accepts
 * from our own users (submission, mynetworks, sendmail): one call per message gives the DKIM-Signature field to
 * put in front of it. */
#ifndef POSTERN_DKIM_SIGNER_H
#define POSTERN_DKIM_SIGNER_H

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct dkim_signer;

/* Open the key table (a compiled map: "postern map compile"). Open after fork() (LMDB). NULL with err when
 * the table cannot be opened. Keys are loaded on first use and kept. */
struct dkim_signer *dkim_signer_open(const char *table_path, struct buf *err);
void dkim_signer_free(struct dkim_signer **s);

/* Load every key the table names now, while the process may still read them (smtpd calls this as root, before
 * the privilege drop: key files are readable by root only). The number loaded, or -1 with the first problem in
 * err (the keys that loaded stay usable). At most 1024 distinct key files are kept. */
long dkim_signer_preload(struct dkim_signer *s, struct buf *err);

/* Sign the message head + more (the whole header block in head; more may be empty) when its From domain has a
 * key: 1 with the field (ending in CRLF) appended to out; 0 when no key applies (nothing appended); -1 with a
 * reason in err (unreadable key, bad table value, no single From). */
int dkim_signer_sign(struct dkim_signer *s, const char *head, size_t hlen, const char *more, size_t mlen,
                     struct buf *out, struct buf *err);

/* The From domain of a message (lower-cased, caller frees), NULL when there is not exactly one From with one
 * mailbox with a domain. */
char *dkim_from_domain(const char *msg, size_t len);

#endif
