/* Failed attempts (redeems and registers), and who may try again.
 *
 * Three budgets of failures a minute: per address, per network (the /24
 * of an IPv4 address, the /64 of an IPv6 one) and for all sources
 * together. The first two are fixed tables of windows (struct
 * pa_limiter); the global one is a token bucket (struct pa_guard).
 *
 * Codes have 140 bits: guessing one is hopeless, so the budgets are about
 * load, log noise and defence in depth, and must never lock real users
 * out of a gateway under attack. Hence, when the global budget is spent,
 * a network that fails is blocked at its first failure, while one that
 * has not failed is still heard: a real user's valid code costs no
 * budget and gets in. An attacker gets at most the global budget plus one
 * guess a minute per network the table can hold (see docs/preauth.md).
 *
 * The tables are fixed so that an attacker with many addresses cannot make
 * us spend memory. When full, a blocked window is never evicted (else a
 * flood of fresh addresses would free a blocked one); the unblocked window
 * with the fewest failures, then the oldest, makes room. When every
 * candidate is blocked, the newcomer is not recorded and answers to the
 * global budget alone. The hash is keyed per table, so an attacker cannot
 * aim addresses at one group of slots. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "preauth.h"

#define SLOTS  4096
#define PROBES 16

struct slot {
	char key[PA_SOURCE_MAX + 1]; /* "" = free */
	uint64_t start_ms;
	int failures;
};

struct pa_limiter {
	unsigned char hash_key[crypto_shorthash_KEYBYTES];
	struct slot slots[SLOTS];
};

struct pa_limiter *pa_limiter_new(void)
{
	struct pa_limiter *l = calloc(1, sizeof(struct pa_limiter));
	if (l)
		crypto_shorthash_keygen(l->hash_key);
	return l;
}

void pa_limiter_free(struct pa_limiter *l)
{
	free(l);
}

static uint32_t hash(const struct pa_limiter *l, const char *s)
{
	unsigned char h[crypto_shorthash_BYTES];
	crypto_shorthash(h, (const unsigned char *)s, strlen(s), l->hash_key);
	return (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
}

/* A request without a source (the local CLI) shares one bucket. */
static const char *key_of(const char *source)
{
	return source && source[0] ? source : "-";
}

static int expired(const struct slot *s, uint64_t now)
{
	return !s->key[0] || now >= s->start_ms + PA_RATE_WINDOW_MS;
}

static int is_blocked(const struct slot *s, uint64_t now, int max)
{
	return !expired(s, now) && s->failures >= max;
}

static struct slot *probe(struct pa_limiter *l, uint32_t h, int i)
{
	return &l->slots[(h + (uint32_t)i) % SLOTS];
}

static struct slot *find(struct pa_limiter *l, const char *key)
{
	uint32_t h = hash(l, key);
	for (int i = 0; i < PROBES; i++) {
		struct slot *s = probe(l, h, i);
		if (!strcmp(s->key, key))
			return s;
	}
	return NULL;
}

/* Where a new key goes: a free or expired slot, else the unblocked window
 * with the fewest failures (then the oldest); NULL when all are blocked. */
static struct slot *room_for(struct pa_limiter *l, const char *key, uint64_t now, int max)
{
	uint32_t h = hash(l, key);
	struct slot *best = NULL;
	for (int i = 0; i < PROBES; i++) {
		struct slot *c = probe(l, h, i);
		if (expired(c, now))
			return c;
		if (is_blocked(c, now, max))
			continue;
		if (!best || c->failures < best->failures ||
		    (c->failures == best->failures && c->start_ms < best->start_ms))
			best = c;
	}
	return best;
}

/* The window of `key`, started when there is none; NULL when there is no
 * room for it. */
static struct slot *window_of(struct pa_limiter *l, const char *key, uint64_t now, int max)
{
	struct slot *s = find(l, key);
	if (!s) {
		if (!(s = room_for(l, key, now, max)))
			return NULL;
		memset(s, 0, sizeof(*s));
		snprintf(s->key, sizeof(s->key), "%s", key);
	}
	if (expired(s, now)) {
		s->start_ms = now;
		s->failures = 0;
	}
	return s;
}

int pa_limiter_blocked(struct pa_limiter *l, const char *source, uint64_t now, int max)
{
	struct slot *s = find(l, key_of(source));
	return s && is_blocked(s, now, max);
}

int pa_limiter_room(struct pa_limiter *l, const char *source, uint64_t now, int max)
{
	const char *key = key_of(source);
	return find(l, key) || room_for(l, key, now, max);
}

int pa_limiter_failed(struct pa_limiter *l, const char *source, uint64_t now, int max)
{
	struct slot *s = window_of(l, key_of(source), now, max);
	if (!s)
		return -ENOSPC;
	s->failures++;
	return 0;
}

int pa_limiter_block(struct pa_limiter *l, const char *source, uint64_t now, int max)
{
	struct slot *s = window_of(l, key_of(source), now, max);
	if (!s)
		return -ENOSPC;
	if (s->failures < max)
		s->failures = max;
	return 0;
}

void pa_limiter_expire(struct pa_limiter *l, uint64_t now)
{
	for (size_t i = 0; i < SLOTS; i++)
		if (l->slots[i].key[0] && expired(&l->slots[i], now))
			l->slots[i].key[0] = '\0';
}

/* ---- networks ---- */

void pa_source_network(const char *source, char out[PA_SOURCE_MAX + 1])
{
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN];
	const char *key = key_of(source);
	if (inet_pton(AF_INET, key, a) == 1) {
		snprintf(out, PA_SOURCE_MAX + 1, "%u.%u.%u.0/24", a[0], a[1], a[2]);
	} else if (inet_pton(AF_INET6, key, a) == 1) {
		memset(a + 8, 0, 8);
		inet_ntop(AF_INET6, a, text, sizeof(text));
		snprintf(out, PA_SOURCE_MAX + 1, "%s/64", text);
	} else {
		/* not an address (a name given on the bus): its own network */
		snprintf(out, PA_SOURCE_MAX + 1, "%s", key);
	}
}

/* ---- the three budgets together ---- */

/* The global bucket counts in 1/PA_RATE_WINDOW_MS of a failure: it gains
 * `global` units a millisecond and a failure costs PA_RATE_WINDOW_MS, so
 * exactly `global` failures a minute pass, in a burst of as many. */
#define FAILURE_COST ((uint64_t)PA_RATE_WINDOW_MS)

struct pa_guard {
	struct pa_limits max;
	struct pa_limiter *addresses;
	struct pa_limiter *networks;
	uint64_t tokens;
	uint64_t refilled_ms;
	int spent; /* the bucket ran dry and has not been full again since */
};

static uint64_t capacity(const struct pa_guard *g)
{
	return (uint64_t)g->max.global * FAILURE_COST;
}

struct pa_guard *pa_guard_new(const struct pa_limits *max, uint64_t now)
{
	struct pa_guard *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->addresses = pa_limiter_new();
	g->networks = pa_limiter_new();
	if (!g->addresses || !g->networks) {
		pa_guard_free(g);
		return NULL;
	}
	g->max = *max;
	g->tokens = capacity(g);
	g->refilled_ms = now;
	return g;
}

void pa_guard_free(struct pa_guard *g)
{
	if (!g)
		return;
	pa_limiter_free(g->addresses);
	pa_limiter_free(g->networks);
	free(g);
}

void pa_guard_set_limits(struct pa_guard *g, const struct pa_limits *max)
{
	g->max = *max;
	if (g->tokens > capacity(g))
		g->tokens = capacity(g);
}

static void refill(struct pa_guard *g, uint64_t now)
{
	if (now > g->refilled_ms) {
		uint64_t gained = (now - g->refilled_ms) * (uint64_t)g->max.global;
		g->tokens = gained >= capacity(g) - g->tokens ? capacity(g) : g->tokens + gained;
	}
	g->refilled_ms = now;
	if (g->tokens == capacity(g))
		g->spent = 0;
}

enum pa_blocked pa_guard_check(struct pa_guard *g, const char *source, uint64_t now)
{
	char network[PA_SOURCE_MAX + 1];
	pa_source_network(source, network);
	if (pa_limiter_blocked(g->addresses, source, now, g->max.address))
		return PA_BLOCKED_ADDRESS;
	if (pa_limiter_blocked(g->networks, network, now, g->max.prefix))
		return PA_BLOCKED_NETWORK;
	refill(g, now);
	if (g->tokens >= FAILURE_COST)
		return PA_BLOCKED_NONE;
	/* the budget is spent: a network is heard as long as it has not
	 * failed (it will be blocked at its first failure), which needs a
	 * window in the table to block it in */
	if (pa_limiter_room(g->networks, network, now, g->max.prefix))
		return PA_BLOCKED_NONE;
	return PA_BLOCKED_GLOBAL;
}

unsigned pa_guard_failed(struct pa_guard *g, const char *source, uint64_t now)
{
	char network[PA_SOURCE_MAX + 1];
	pa_source_network(source, network);
	refill(g, now);
	if (g->tokens < FAILURE_COST) {
		/* the budget is spent: blocked at the first failure (when there
		 * is no window to block it in, the check refuses it anyway) */
		pa_limiter_block(g->addresses, source, now, g->max.address);
		pa_limiter_block(g->networks, network, now, g->max.prefix);
		return 0;
	}
	g->tokens -= FAILURE_COST;
	pa_limiter_failed(g->addresses, source, now, g->max.address);
	pa_limiter_failed(g->networks, network, now, g->max.prefix);
	unsigned blocked_now = 0;
	if (g->tokens < FAILURE_COST && !g->spent) {
		g->spent = 1;
		blocked_now |= PA_BLOCKED_GLOBAL;
	}
	/* checked before each attempt, so reaching the limit means "by this one" */
	struct slot *a = find(g->addresses, key_of(source));
	struct slot *n = find(g->networks, network);
	if (a && a->failures == g->max.address)
		blocked_now |= PA_BLOCKED_ADDRESS;
	if (n && n->failures == g->max.prefix)
		blocked_now |= PA_BLOCKED_NETWORK;
	return blocked_now;
}

void pa_guard_expire(struct pa_guard *g, uint64_t now)
{
	pa_limiter_expire(g->addresses, now);
	pa_limiter_expire(g->networks, now);
}
