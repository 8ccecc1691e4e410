/* The limit of failed attempts per source address (limit.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "limit.h"

#define BUCKETS    4096
#define SOURCE_MAX 64

struct bucket {
	char source[SOURCE_MAX]; /* "" free */
	double tokens;           /* failures still allowed */
	uint64_t at_ms;          /* when `tokens` was last brought up to date */
};

struct api_limit {
	mg_ctx *ctx;
	double capacity, per_ms; /* the bucket's size and refill rate */
	pthread_mutex_t lock;
	unsigned char hash_key[crypto_shorthash_KEYBYTES];
	struct bucket buckets[BUCKETS];
};

struct api_limit *api_limit_new(mg_ctx *ctx, unsigned per_minute)
{
	struct api_limit *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->ctx = ctx;
	l->capacity = per_minute;
	l->per_ms = per_minute / 60000.0;
	pthread_mutex_init(&l->lock, NULL);
	crypto_shorthash_keygen(l->hash_key);
	return l;
}

void api_limit_free(struct api_limit *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static struct bucket *bucket_of(struct api_limit *l, const char *source, uint64_t now)
{
	unsigned char h[crypto_shorthash_BYTES];
	crypto_shorthash(h, (const unsigned char *)source, strlen(source), l->hash_key);
	struct bucket *b = &l->buckets[(h[0] | h[1] << 8) % BUCKETS];
	if (b->source[0]) {
		b->tokens += (double)(now - b->at_ms) * l->per_ms;
		if (b->tokens > l->capacity)
			b->tokens = l->capacity;
		b->at_ms = now;
	}
	if (!b->source[0] || (strcmp(b->source, source) && b->tokens >= l->capacity)) {
		snprintf(b->source, sizeof(b->source), "%s", source);
		b->tokens = l->capacity;
		b->at_ms = now;
	}
	return b;
}

int api_limit_may_try(struct api_limit *l, const char *source)
{
	pthread_mutex_lock(&l->lock);
	int ok = bucket_of(l, source, mg_now_ms(l->ctx))->tokens >= 1.0;
	pthread_mutex_unlock(&l->lock);
	return ok;
}

void api_limit_failed(struct api_limit *l, const char *source)
{
	pthread_mutex_lock(&l->lock);
	struct bucket *b = bucket_of(l, source, mg_now_ms(l->ctx));
	if (b->tokens >= 1.0)
		b->tokens -= 1.0;
	pthread_mutex_unlock(&l->lock);
}
