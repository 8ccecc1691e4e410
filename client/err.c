#include "err.h"

#include <stdarg.h>
#include <stdio.h>

int cl_fail(struct cl_err *err, int exit_code, const char *fmt, ...)
{
	if (err && err->exit_code == CL_EXIT_OK) {
		va_list ap;
		err->exit_code = exit_code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return -1;
}

void cl_sanitize(const char *text, char *buf, size_t size)
{
	size_t n = 0;
	if (size == 0)
		return;
	for (; text && *text && n + 1 < size; text++)
		buf[n++] = (*text >= 0x20 && *text < 0x7f) ? *text : '?';
	buf[n] = '\0';
}
