#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

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

/* stderr is journald's stream when $JOURNAL_STREAM names its device and
 * inode (systemd sets it for the unit's stdout/stderr). */
static int stderr_is_journal(void)
{
	static int known = -1;
	if (known < 0) {
		const char *stream = getenv("JOURNAL_STREAM");
		unsigned long long dev, ino;
		struct stat st;
		known = stream && sscanf(stream, "%llu:%llu", &dev, &ino) == 2 &&
		        !fstat(STDERR_FILENO, &st) && st.st_dev == (dev_t)dev &&
		        st.st_ino == (ino_t)ino;
	}
	return known;
}

/* One line per message. Under systemd it goes to the journal with the
 * priority and the plugin as fields (journalctl -u meshgated
 * MESHGATE_PLUGIN=dns), which keeps its own time; elsewhere on stderr,
 * after the UTC time to the millisecond (what happened when, across the
 * nodes of a cluster), the level and who said it. */
void core_vlog(enum mg_log_level level, const char *who, const char *fmt, va_list ap)
{
	static const int priorities[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char line[2048];
	if (level > max_level)
		return;
	who = who ? who : "core";
	int n = snprintf(line, sizeof(line), "%s [%s] ", level_names[level], who);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (stderr_is_journal() &&
	    sd_journal_send("MESSAGE=%s", line + strlen(level_names[level]) + 1, "PRIORITY=%d",
	                    priorities[level], "MESHGATE_PLUGIN=%s", who,
	                    "SYSLOG_IDENTIFIER=meshgated", NULL) >= 0)
		return;
	struct timespec now;
	struct tm utc;
	char when[32] = "";
	clock_gettime(CLOCK_REALTIME, &now);
	if (gmtime_r(&now.tv_sec, &utc))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &utc);
	fprintf(stderr, "%s.%03ldZ %s\n", when, now.tv_nsec / 1000000, line);
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
