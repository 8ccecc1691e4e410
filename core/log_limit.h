/* The limiter of repeated log lines (mg_log_limited): the first line of
 * each key (a source and a reason, named by the plugin) is written, then
 * at most LOG_LIMIT_BURST in each LOG_LIMIT_INTERVAL_MS, and the rest is
 * counted and said once an interval: "suppressed K similar messages".
 * All keys together write at most LOG_LIMIT_BUDGET lines an interval, so
 * that a flood from many sources is bounded too. meshgated and the mock
 * core share it; any thread may call it. */
#ifndef MG_CORE_LOG_LIMIT_H
#define MG_CORE_LOG_LIMIT_H

#include <pthread.h>
#include <stdint.h>

#include <meshgate/api.h>

#define LOG_LIMIT_INTERVAL_MS 60000u
#define LOG_LIMIT_BURST       5u   /* lines of one key an interval, the first included */
#define LOG_LIMIT_BUDGET      300u /* lines of all keys an interval */
#define LOG_LIMIT_WAYS        4u   /* keys a bucket holds; the least recently seen goes */
#define LOG_LIMIT_BUCKETS     128u
#define LOG_LIMIT_KEY_MAX     120u /* longer keys are cut (and still told apart by hash) */

struct log_limit_key {
	uint64_t hash; /* 0: free */
	char who[32];
	char key[LOG_LIMIT_KEY_MAX];
	enum mg_log_level level;
	uint64_t window_start, last_seen;
	unsigned written;         /* in this window */
	unsigned long suppressed; /* in this window */
};

struct log_limit {
	pthread_mutex_t lock;
	struct log_limit_key keys[LOG_LIMIT_BUCKETS * LOG_LIMIT_WAYS];
	uint64_t window_start, next_sweep;
	unsigned written;         /* by all keys in this window */
	unsigned long suppressed; /* past the budget, or of keys evicted, in this window */
};

#define LOG_LIMIT_INIT                            \
	{                                         \
		.lock = PTHREAD_MUTEX_INITIALIZER \
	}

/* Writes one line: what the limiter itself has to say goes through it. */
typedef void (*log_limit_write_fn)(void *arg, enum mg_log_level level, const char *who,
                                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Whether the line of `key` from `who` at `now_ms` is to be written (1)
 * or only counted (0). Counts that are due (windows that ended) are
 * written first, through `write`. */
int log_limit_pass(struct log_limit *l, enum mg_log_level level, const char *who, const char *key,
                   uint64_t now_ms, log_limit_write_fn write, void *arg);
/* Writes every count still untold and forgets them (at exit). */
void log_limit_flush(struct log_limit *l, log_limit_write_fn write, void *arg);

#endif
