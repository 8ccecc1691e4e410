/* The client's two clocks, in milliseconds: monotonic for timers and
 * intervals, wall-clock (unix) for what status shows. */
#ifndef MESHGATE_CLIENT_CLOCK_H
#define MESHGATE_CLIENT_CLOCK_H

#include <time.h>

static inline long long cl_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static inline long long cl_unix_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

#endif
