/* Repeated log lines, counted instead of written: see log_limit.h. */
#include <stdio.h>
#include <string.h>

#include "log_limit.h"

/* FNV-1a over who and key: 0 is kept for "free". */
static uint64_t key_hash(const char *who, const char *key)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *s = who; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	h = (h ^ 0xff) * 1099511628211ull; /* "a" "bc" differs from "ab" "c" */
	for (const char *s = key; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h ? h : 1;
}

static void tell_key(struct log_limit_key *k, log_limit_write_fn write, void *arg)
{
	if (k->suppressed)
		write(arg, k->level, k->who, "suppressed %lu similar messages (%s)", k->suppressed,
		      k->key);
	k->suppressed = 0;
}

static void tell_budget(struct log_limit *l, log_limit_write_fn write, void *arg)
{
	if (l->suppressed)
		write(arg, MG_LOG_WARN, "log",
		      "suppressed %lu messages of many sources: more than %u a minute",
		      l->suppressed, LOG_LIMIT_BUDGET);
	l->suppressed = 0;
}

/* Ends the windows that are over: their counts are told. */
static void sweep(struct log_limit *l, uint64_t now, log_limit_write_fn write, void *arg)
{
	if (now < l->next_sweep)
		return;
	l->next_sweep = now + LOG_LIMIT_INTERVAL_MS / 10;
	for (size_t i = 0; i < LOG_LIMIT_BUCKETS * LOG_LIMIT_WAYS; i++) {
		struct log_limit_key *k = &l->keys[i];
		if (k->hash && now - k->window_start >= LOG_LIMIT_INTERVAL_MS) {
			tell_key(k, write, arg);
			k->window_start = now;
			k->written = 0;
		}
	}
	if (now - l->window_start >= LOG_LIMIT_INTERVAL_MS) {
		tell_budget(l, write, arg);
		l->window_start = now;
		l->written = 0;
	}
}

/* The key's slot: found, free, or the least recently seen of its bucket
 * (whose untold count joins the global one: an evicted key is forgotten,
 * and a flood of new keys must not buy lines by evicting). */
static struct log_limit_key *slot_of(struct log_limit *l, uint64_t hash, int *fresh)
{
	struct log_limit_key *bucket = &l->keys[(hash % LOG_LIMIT_BUCKETS) * LOG_LIMIT_WAYS];
	struct log_limit_key *victim = &bucket[0];
	for (size_t i = 0; i < LOG_LIMIT_WAYS; i++) {
		if (bucket[i].hash == hash) {
			*fresh = 0;
			return &bucket[i];
		}
		if (!bucket[i].hash || (victim->hash && bucket[i].last_seen < victim->last_seen))
			victim = &bucket[i];
	}
	l->suppressed += victim->suppressed;
	*fresh = 1;
	return victim;
}

int log_limit_pass(struct log_limit *l, enum mg_log_level level, const char *who, const char *key,
                   uint64_t now, log_limit_write_fn write, void *arg)
{
	int fresh, pass;
	who = who ? who : "core";
	key = key ? key : "";
	pthread_mutex_lock(&l->lock);
	sweep(l, now, write, arg);
	uint64_t hash = key_hash(who, key);
	struct log_limit_key *k = slot_of(l, hash, &fresh);
	if (fresh) {
		memset(k, 0, sizeof(*k));
		k->hash = hash;
		snprintf(k->who, sizeof(k->who), "%s", who);
		snprintf(k->key, sizeof(k->key), "%s", key);
		k->window_start = now;
	}
	k->level = level;
	k->last_seen = now;
	pass = k->written < LOG_LIMIT_BURST && l->written < LOG_LIMIT_BUDGET;
	if (pass) {
		k->written++;
		l->written++;
	} else if (k->written < LOG_LIMIT_BURST) {
		l->suppressed++; /* the budget's, not the key's */
	} else {
		k->suppressed++;
	}
	pthread_mutex_unlock(&l->lock);
	return pass;
}

void log_limit_flush(struct log_limit *l, log_limit_write_fn write, void *arg)
{
	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < LOG_LIMIT_BUCKETS * LOG_LIMIT_WAYS; i++) {
		if (l->keys[i].hash)
			tell_key(&l->keys[i], write, arg);
		memset(&l->keys[i], 0, sizeof(l->keys[i]));
	}
	tell_budget(l, write, arg);
	l->written = 0;
	pthread_mutex_unlock(&l->lock);
}
