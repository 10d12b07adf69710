/* The Public Suffix List, parsed into a sorted table, to find a domain's organisational domain (RFC 7489
 * section 3.2) for DMARC alignment and record lookup. Loaded once by the daemons that check DMARC (smtpd);
 * the rules are the list's ordinary, wildcard ("*.ck") and exception ("!www.ck") rules, ICANN and private. */
#ifndef POSTERN_PSL_H
#define POSTERN_PSL_H

#include <stdbool.h>
#include <stddef.h>

#define PSL_DEFAULT_FILE "/usr/share/publicsuffix/public_suffix_list.dat"

struct psl;

/* Parse the list text (the file's format: one rule a line, "//" comments, blank lines). Never NULL; lines
 * that are not rules are skipped. */
struct psl *psl_parse(const char *text, size_t len);
/* Read and parse a file; NULL with errno when it cannot be read. */
struct psl *psl_load(const char *path);
void psl_free(struct psl **p);
size_t psl_count(const struct psl *p);

/* The public suffix of domain (a pointer into domain, or NULL for an empty/invalid name). Unlisted top-level
 * names count as public suffixes (the list's implicit "*" rule). Case-insensitive; a trailing dot is ignored
 * by callers stripping it first. */
const char *psl_public_suffix(const struct psl *p, const char *domain);
/* The organisational domain: the public suffix plus one label, a pointer into domain; NULL when domain is
 * itself a public suffix (or empty). */
const char *psl_org_domain(const struct psl *p, const char *domain);

#endif
