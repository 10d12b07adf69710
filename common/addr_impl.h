/* Internals shared by addr.c (envelope paths) and addr_hdr.c (header lists); not for other callers. */
#ifndef POSTERN_ADDR_IMPL_H
#define POSTERN_ADDR_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"

/* RFC 5322 atext (ASCII only; callers decide about bytes >= 0x80). */
bool addr_is_atext(unsigned char c);
/* A domain or address literal, exactly n bytes: label syntax, lengths, UTF-8 rules per flags. */
enum addr_err addr_domain_check(const char *d, size_t n, unsigned flags);
/* Fill out from a decoded local part and a checked domain (dlen 0 for none); builds canon. */
void addr_build(struct addr *out, const char *local, size_t llen, const char *domain, size_t dlen, bool quoted);
/* UTF-8 policy for address bytes: malformed -> ADDR_ERR_BAD_UTF8, well-formed without ADDR_F_SMTPUTF8 ->
 * ADDR_ERR_NEED_SMTPUTF8. */
enum addr_err addr_check_8bit(const char *p, size_t n, unsigned flags);
/* Length of the A-label ("xn--" + Punycode) of a well-formed UTF-8 label of n bytes. */
size_t addr_alabel_len(const char *s, size_t n);
/* Any byte >= 0x80 in p[0..n). */
bool addr_has_8bit(const void *p, size_t n);

#endif
