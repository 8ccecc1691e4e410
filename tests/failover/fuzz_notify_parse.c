/* libFuzzer target of the notify fifo's line parser (fo_notify_parse):
 * whatever bytes come, it returns 0, -ENOENT or -EINVAL, reads nothing
 * past the line, and a line it accepts names a known state and a
 * priority of 0 to 255. The input is split at line breaks as the plugin
 * splits the fifo. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "failover.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i < size && data[i] != '\n')
			continue;
		/* an exact-size copy, so that a read past the line is caught */
		size_t len = i - start;
		char *line = malloc(len ? len : 1);
		if (!line)
			abort();
		memcpy(line, data + start, len);
		enum fo_state state = FO_STOPPED;
		int priority = -1;
		int rc = fo_notify_parse(line, len, &state, &priority);
		if (rc != 0 && rc != -ENOENT && rc != -EINVAL)
			abort();
		if (rc == 0 &&
		    (priority < 0 || priority > 255 || state < FO_MASTER || state > FO_STOPPED))
			abort();
		free(line);
		start = i + 1;
	}
	return 0;
}
