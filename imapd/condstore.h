/* CONDSTORE and QRESYNC (RFC 7162) pieces shared by ENABLE (cmd_auth.c), SELECT (cmd_mailbox.c) and FETCH
 * (cmd_fetch.c); STORE's UNCHANGEDSINCE and SEARCH's MODSEQ live in their own commands, the per-message modseqs
 * and the expunge tombstones in the shared index (common/mbox.h). */
#ifndef POSTERN_IMAPD_CONDSTORE_H
#define POSTERN_IMAPD_CONDSTORE_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "imapd.h"
#include "seqset.h"

/* ENABLE of one capability name: true when it is CONDSTORE or QRESYNC (then " NAME" is added to enabled unless
 * it was on already). */
bool imapd_enable_ext(struct imapd_session *sess, const char *name, struct buf *enabled);

/* SELECT/EXAMINE's parameter list. */
struct imapd_qresync {
	bool on;			/* (QRESYNC (...)) was given */
	uint32_t uidvalidity;
	uint64_t modseq;
	bool have_known;
	struct imap_seqset known;	/* known-uids */
};
/* Parse (CONDSTORE) / (QRESYNC (uidvalidity modseq [known-uids [seq-match]])); false after answering BAD. */
bool imapd_select_params(struct imapd_session *sess, const struct imap_arg *list, struct imapd_qresync *qr);
void imapd_select_params_free(struct imapd_qresync *qr);
/* After SELECT's own responses: VANISHED (EARLIER) and FETCH (UID FLAGS MODSEQ) for what changed since. */
void imapd_qresync_select(struct imapd_session *sess, struct imapd_qresync *qr);
/* "* VANISHED (EARLIER) uids" for UIDs expunged after since, limited to known (resolved) when not NULL. */
void imapd_vanished_earlier(struct imapd_session *sess, uint64_t since, const struct imap_seqset *known);

#endif
