/* Failed redeems per source, in memory: a brute force of codes from one
 * address stops after a few tries a minute. A fixed table bounds the
 * memory an attacker with many addresses can make us spend; when it is
 * full, the oldest window makes room (losing a stale count is harmless,
 * growing without bound is not). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preauth.h"

#define SLOTS  4096
#define PROBES 16

struct slot {
	char source[PA_SOURCE_MAX + 1]; /* "" = free */
	uint64_t start_ms;
	int failures;
};

struct pa_limiter {
	struct slot slots[SLOTS];
};

struct pa_limiter *pa_limiter_new(void)
{
	return calloc(1, sizeof(struct pa_limiter));
}
void pa_limiter_free(struct pa_limiter *l)
{
	free(l);
}

static uint32_t hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

/* A request without a source (the local CLI) shares one bucket. */
static const char *key_of(const char *source)
{
	return source && source[0] ? source : "-";
}

static int expired(const struct slot *s, uint64_t now)
{
	return !s->source[0] || now >= s->start_ms + PA_RATE_WINDOW_MS;
}

static struct slot *find(struct pa_limiter *l, const char *source)
{
	uint32_t h = hash(source);
	for (int i = 0; i < PROBES; i++) {
		struct slot *s = &l->slots[(h + (uint32_t)i) % SLOTS];
		if (!strcmp(s->source, source))
			return s;
	}
	return NULL;
}

int pa_limiter_blocked(struct pa_limiter *l, const char *source, uint64_t now, int max)
{
	struct slot *s = find(l, key_of(source));
	return s && !expired(s, now) && s->failures >= max;
}

void pa_limiter_failed(struct pa_limiter *l, const char *source, uint64_t now)
{
	const char *key = key_of(source);
	struct slot *s = find(l, key);
	if (!s) {
		uint32_t h = hash(key);
		for (int i = 0; i < PROBES; i++) {
			struct slot *c = &l->slots[(h + (uint32_t)i) % SLOTS];
			if (!s || expired(c, now) ||
			    (!expired(s, now) && c->start_ms < s->start_ms))
				s = c;
			if (expired(c, now))
				break;
		}
		memset(s, 0, sizeof(*s));
		snprintf(s->source, sizeof(s->source), "%s", key);
	}
	if (expired(s, now)) {
		s->start_ms = now;
		s->failures = 0;
	}
	s->failures++;
}

void pa_limiter_expire(struct pa_limiter *l, uint64_t now)
{
	for (size_t i = 0; i < SLOTS; i++)
		if (l->slots[i].source[0] && expired(&l->slots[i], now))
			l->slots[i].source[0] = '\0';
}
