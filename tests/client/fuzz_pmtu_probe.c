/* libFuzzer target: the size probe and its answer (lib/probe/probe.h,
 * path MTU discovery). The gateway's responder reads probes from anyone
 * on the public side; the agent reads the answers. Whatever the decoder
 * accepts must encode back to the same bytes (so an answer is never
 * longer than its probe), and a refused one leaves nothing.
 * Run: fuzz_pmtu_probe tests/client/corpus/pmtu_probe */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum pmtu_probe_type type = 0;
	uint64_t nonce = 0;
	if (pmtu_probe_decode(data, size, &type, &nonce)) {
		if (type || nonce)
			__builtin_trap();
		return 0;
	}
	uint8_t *again = malloc(size);
	if (!again)
		return 0;
	if (pmtu_probe_encode(type, nonce, size, again) || memcmp(again, data, size))
		__builtin_trap();
	free(again);
	return 0;
}
