/* The verification cache; see cache.h. Direct-mapped by a hash of the address: a collision only costs the
 * evicted account one more hash check, and lookups stay O(1) whatever the size. */
#include "cache.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "alloc.h"
#include "log.h"

struct slot {
	char *address;
	char *hash;
	unsigned char mac[AUTH_CACHE_MAC];
	time_t at;
};

struct auth_cache {
	struct slot *slots;
	size_t n;
	unsigned ttl;
	unsigned char key[32];
};

static time_t mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

struct auth_cache *auth_cache_new(size_t entries, unsigned ttl_seconds)
{
	struct auth_cache *c = xcalloc(1, sizeof *c);

	if (entries == 0 || ttl_seconds == 0)
		return c;
	if (getrandom(c->key, sizeof c->key, 0) != (ssize_t)sizeof c->key) {
		log_error("auth: getrandom for the verification cache key: %m; cache off");
		return c;
	}
	c->slots = xcalloc(entries, sizeof *c->slots);
	c->n = entries;
	c->ttl = ttl_seconds;
	return c;
}

static void slot_clear(struct slot *s)
{
	free(s->address);
	free(s->hash);
	explicit_bzero(s, sizeof *s);
}

void auth_cache_free(struct auth_cache **cp)
{
	struct auth_cache *c = *cp;
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++)
		slot_clear(&c->slots[i]);
	free(c->slots);
	explicit_bzero(c->key, sizeof c->key);
	free(c);
	*cp = NULL;
}

bool auth_cache_enabled(const struct auth_cache *c)
{
	return c->n > 0;
}

void auth_cache_mac(const struct auth_cache *c, const char *password, unsigned char mac[AUTH_CACHE_MAC])
{
	unsigned len = AUTH_CACHE_MAC;
	if (HMAC(EVP_sha256(), c->key, sizeof c->key, (const unsigned char *)password, strlen(password), mac, &len) ==
	    NULL)
		memset(mac, 0, AUTH_CACHE_MAC);	/* no slot ever holds an all-zero MAC: a miss */
}

static struct slot *slot_for(struct auth_cache *c, const char *address)
{
	uint64_t h = 1469598103934665603ull;	/* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)address; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return &c->slots[h % c->n];
}

static bool mac_zero(const unsigned char mac[AUTH_CACHE_MAC])
{
	unsigned char acc = 0;
	for (size_t i = 0; i < AUTH_CACHE_MAC; i++)
		acc |= mac[i];
	return acc == 0;
}

bool auth_cache_hit(struct auth_cache *c, const char *address, const char *stored_hash,
                    const unsigned char mac[AUTH_CACHE_MAC])
{
	if (c->n == 0 || address == NULL || stored_hash == NULL || stored_hash[0] == '\0' || mac_zero(mac))
		return false;
	struct slot *s = slot_for(c, address);
	if (s->address == NULL || strcmp(s->address, address) != 0)
		return false;
	if (mono_now() - s->at >= (time_t)c->ttl || strcmp(s->hash, stored_hash) != 0) {
		slot_clear(s);	/* stale, or the password changed since */
		return false;
	}
	return CRYPTO_memcmp(s->mac, mac, AUTH_CACHE_MAC) == 0;
}

void auth_cache_put(struct auth_cache *c, const char *address, const char *stored_hash,
                    const unsigned char mac[AUTH_CACHE_MAC])
{
	if (c->n == 0 || address == NULL || stored_hash == NULL || stored_hash[0] == '\0' || mac_zero(mac))
		return;
	struct slot *s = slot_for(c, address);
	slot_clear(s);
	s->address = xstrdup(address);
	s->hash = xstrdup(stored_hash);
	memcpy(s->mac, mac, AUTH_CACHE_MAC);
	s->at = mono_now();
}
