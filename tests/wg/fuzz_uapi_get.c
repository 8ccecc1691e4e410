/* libFuzzer target: the UAPI "get=1" answer parser, whose input comes from
 * whatever listens on the socket. Any input must parse or fail cleanly, and
 * a device that parsed must be writable back as a set request. */
#include <stdint.h>
#include <stdlib.h>

#include "wg.h"
#include "wg_uapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wg_device *dev = NULL;
	char err[128], *req = NULL;
	size_t reqlen;

	if (wg_uapi_parse_get((const char *)data, size, &dev, err, sizeof(err)) != 0) {
		if (dev)
			abort(); /* a failure must not hand out a device */
		return 0;
	}
	if (wg_uapi_format_set(dev, &req, &reqlen) != 0)
		abort();
	free(req);
	wg_device_free(dev);
	return 0;
}
