/* Successful password verifications, remembered so that a client that logs in again and again (a mail client
 * opens several connections, fetchmail polls every few minutes) does not pay for a yescrypt run each time, as
 * Dovecot's auth_cache. An entry says "this password was checked against this stored hash of this account": it
 * holds a keyed MAC of the password (HMAC-SHA256 under a random key that lives only in this process), never the
 * password or an unkeyed digest of it, and is used only while the account's stored hash is still the one it was
 * checked against, so a password change or a disabled/deleted account takes effect at once. Failures are never
 * remembered. */
#ifndef POSTERN_AUTH_CACHE_H
#define POSTERN_AUTH_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_CACHE_MAC 32

struct auth_cache;

/* entries == 0 or ttl == 0: a cache that remembers nothing. */
struct auth_cache *auth_cache_new(size_t entries, unsigned ttl_seconds);
void auth_cache_free(struct auth_cache **c);
bool auth_cache_enabled(const struct auth_cache *c);
/* The keyed MAC of a password, for auth_cache_hit / auth_cache_put. */
void auth_cache_mac(const struct auth_cache *c, const char *password, unsigned char mac[AUTH_CACHE_MAC]);
/* Was this password (its mac) verified against exactly stored_hash for address, within the TTL? */
bool auth_cache_hit(struct auth_cache *c, const char *address, const char *stored_hash,
                    const unsigned char mac[AUTH_CACHE_MAC]);
/* Remember a verification that succeeded; replaces what the slot held. */
void auth_cache_put(struct auth_cache *c, const char *address, const char *stored_hash,
                    const unsigned char mac[AUTH_CACHE_MAC]);

#endif
