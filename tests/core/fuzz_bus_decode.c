/* libFuzzer target for the bus frame decoder. The input is split into
 * frames at each 0xff byte; both directions are tried. */
#include <stddef.h>
#include <stdint.h>

#include "bus_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mg_bus_slice frames[MG_BUS_MAX_FRAMES + 2];
	size_t n = 0, start = 0;
	for (size_t i = 0; i <= size && n < MG_BUS_MAX_FRAMES + 2; i++)
		if (i == size || data[i] == 0xff) {
			frames[n++] = (struct mg_bus_slice){(const char *)data + start, i - start};
			start = i + 1;
		}
	struct mg_bus_msg msg;
	const char *why;
	if (!mg_bus_decode(MG_BUS_TO_BROKER, frames, n, &msg, &why)) {
		/* what decodes must encode back to frames that decode alike */
		struct mg_bus_slice again[MG_BUS_MAX_FRAMES];
		char deadline[24];
		size_t m = mg_bus_encode(MG_BUS_TO_BROKER, &msg, again, deadline);
		struct mg_bus_msg msg2;
		if (mg_bus_decode(MG_BUS_TO_BROKER, again, m, &msg2, &why) || msg2.verb != msg.verb)
			__builtin_trap();
	}
	mg_bus_decode(MG_BUS_FROM_BROKER, frames, n, &msg, &why);
	return 0;
}
