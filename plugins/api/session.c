/* The panel's sessions (session.h): a fixed table under a lock. A
 * cookie's value is never kept, only its BLAKE2b hash, so that a memory
 * dump does not hand out sessions; lookups compare hashes in constant
 * time. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "session.h"

#define SECRET_BYTES 32

struct slot {
	unsigned char hash[crypto_generichash_BYTES]; /* of the cookie's value */
	int used;
	uint64_t opened_ms, last_ms;
	struct api_session session;
};

struct api_sessions {
	pthread_mutex_t lock;
	struct slot slots[API_SESSIONS_MAX];
};

struct api_sessions *api_sessions_new(void)
{
	struct api_sessions *s = calloc(1, sizeof(*s));
	if (s)
		pthread_mutex_init(&s->lock, NULL);
	return s;
}

void api_sessions_free(struct api_sessions *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	sodium_memzero(s, sizeof(*s));
	free(s);
}

static void secret_new(char out[API_SESSION_SECRET_LEN + 1])
{
	unsigned char bytes[SECRET_BYTES];
	randombytes_buf(bytes, sizeof(bytes));
	sodium_bin2base64(out, API_SESSION_SECRET_LEN + 1, bytes, sizeof(bytes),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(bytes, sizeof(bytes));
}

static void hash_of(const char *cookie, unsigned char hash[crypto_generichash_BYTES])
{
	crypto_generichash(hash, crypto_generichash_BYTES, (const unsigned char *)cookie,
	                   strlen(cookie), NULL, 0);
}

/* A clock that steps back (the wall clock) ends no session early. */
static int expired(const struct slot *slot, uint64_t now_ms)
{
	return (now_ms > slot->last_ms && now_ms - slot->last_ms >= API_SESSION_IDLE_MS) ||
	       (now_ms > slot->opened_ms && now_ms - slot->opened_ms >= API_SESSION_MAX_MS);
}

int api_sessions_open(struct api_sessions *s, const char *who, enum api_role role,
                      const char *token_name, uint64_t now_ms,
                      char cookie[API_SESSION_SECRET_LEN + 1], struct api_session *out)
{
	if (!who || !*who || strlen(who) > API_SESSION_WHO_MAX || role == API_ROLE_NONE ||
	    (token_name && strlen(token_name) >= sizeof(out->token_name)))
		return -EINVAL;
	secret_new(cookie);
	pthread_mutex_lock(&s->lock);
	/* a free or ended slot, else the least recently used */
	struct slot *slot = &s->slots[0];
	for (size_t i = 0; i < API_SESSIONS_MAX; i++) {
		struct slot *k = &s->slots[i];
		if (!k->used || expired(k, now_ms)) {
			slot = k;
			break;
		}
		if (k->last_ms < slot->last_ms)
			slot = k;
	}
	memset(slot, 0, sizeof(*slot));
	slot->used = 1;
	slot->opened_ms = slot->last_ms = now_ms;
	hash_of(cookie, slot->hash);
	snprintf(slot->session.who, sizeof(slot->session.who), "%s", who);
	slot->session.role = role;
	secret_new(slot->session.csrf);
	snprintf(slot->session.token_name, sizeof(slot->session.token_name), "%s",
	         token_name ? token_name : "");
	*out = slot->session;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* The slot of a cookie's value, or NULL. Under the lock. */
static struct slot *slot_of(struct api_sessions *s, const char *cookie)
{
	unsigned char hash[crypto_generichash_BYTES];
	struct slot *found = NULL;
	if (!cookie || strlen(cookie) != API_SESSION_SECRET_LEN)
		return NULL;
	hash_of(cookie, hash);
	for (size_t i = 0; i < API_SESSIONS_MAX; i++)
		if (s->slots[i].used && !sodium_memcmp(s->slots[i].hash, hash, sizeof(hash)))
			found = &s->slots[i];
	return found;
}

int api_sessions_find(struct api_sessions *s, const char *cookie, uint64_t now_ms,
                      struct api_session *out)
{
	int rc = -ENOENT;
	pthread_mutex_lock(&s->lock);
	struct slot *slot = slot_of(s, cookie);
	if (slot && expired(slot, now_ms)) {
		memset(slot, 0, sizeof(*slot));
	} else if (slot) {
		slot->last_ms = now_ms;
		*out = slot->session;
		rc = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int api_sessions_close(struct api_sessions *s, const char *cookie)
{
	pthread_mutex_lock(&s->lock);
	struct slot *slot = slot_of(s, cookie);
	if (slot)
		memset(slot, 0, sizeof(*slot));
	pthread_mutex_unlock(&s->lock);
	return slot ? 0 : -ENOENT;
}

void api_sessions_close_token(struct api_sessions *s, const char *token_name)
{
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < API_SESSIONS_MAX; i++)
		if (s->slots[i].used && !strcmp(s->slots[i].session.token_name, token_name))
			memset(&s->slots[i], 0, sizeof(s->slots[i]));
	pthread_mutex_unlock(&s->lock);
}

void api_session_cookie_header(const char *cookie, char *out, size_t len)
{
	/* Secure and SameSite=Strict: never over plain HTTP, never sent by a
	 * request another site starts; no Max-Age: it ends with the browser,
	 * and the server ends it sooner */
	if (*cookie)
		snprintf(out, len, "%s=%s; HttpOnly; Secure; SameSite=Strict; Path=/",
		         API_SESSION_COOKIE, cookie);
	else
		snprintf(out, len, "%s=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0",
		         API_SESSION_COOKIE);
}
