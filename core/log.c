#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core.h"
#include "log_limit.h"

static enum mg_log_level max_level = MG_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void core_log_set_level(enum mg_log_level level)
{
	max_level = level;
}

int core_log_level_parse(const char *name, enum mg_log_level *level)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (name && !strcmp(name, level_names[i])) {
			*level = (enum mg_log_level)i;
			return 0;
		}
	return -1;
}

/* One line per message on stderr: journald adds time and unit when run
 * by systemd; the level and who said it come first so grep finds them. */
void core_vlog(enum mg_log_level level, const char *who, const char *fmt, va_list ap)
{
	char line[2048];
	if (level > max_level)
		return;
	int n = snprintf(line, sizeof(line), "%s [%s] ", level_names[level], who ? who : "core");
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	fprintf(stderr, "%s\n", line);
}

void core_log(enum mg_log_level level, const char *who, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	core_vlog(level, who, fmt, ap);
	va_end(ap);
}

/* Repeated lines of all plugins: one limiter, so that its budget bounds
 * what the whole daemon writes under a flood. */
static struct log_limit limiter = LOG_LIMIT_INIT;

static void limiter_write(void *arg, enum mg_log_level level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void limiter_write(void *arg, enum mg_log_level level, const char *who, const char *fmt, ...)
{
	va_list ap;
	(void)arg;
	va_start(ap, fmt);
	core_vlog(level, who, fmt, ap);
	va_end(ap);
}

void core_vlog_limited(enum mg_log_level level, const char *who, const char *key, uint64_t now_ms,
                       const char *fmt, va_list ap)
{
	if (level > max_level) /* what is not written is not counted either */
		return;
	if (log_limit_pass(&limiter, level, who, key, now_ms, limiter_write, NULL))
		core_vlog(level, who, fmt, ap);
}

void core_log_flush(void)
{
	log_limit_flush(&limiter, limiter_write, NULL);
}

void core_name_thread(pthread_t thread, const char *what)
{
	char name[16];
	snprintf(name, sizeof(name), "mg:%s", what);
	pthread_setname_np(thread, name);
}
