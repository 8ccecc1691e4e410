/* libFuzzer target: the probe answer (lib/probe/probe.h) is what the
 * agent reads from the tunnel, many times a second. Whatever it accepts
 * must encode back to the same bytes, and a refused one leaves nothing.
 * The same bytes go through the probe request's decoder too: what the
 * gateway's responder reads from every device.
 * Run: fuzz_probe_answer tests/client/corpus/probe_answer */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct probe_answer a;
	uint8_t again[PROBE_ANSWER_MAX], request[PROBE_REQUEST_LEN];
	uint64_t nonce = 0;
	unsigned mtu = 0;
	if (!probe_request_decode_mtu(data, size, &nonce, &mtu)) {
		probe_request_encode_mtu(nonce, mtu, request);
		if (size != PROBE_REQUEST_LEN || memcmp(request, data, size))
			__builtin_trap();
	}
	if (probe_answer_decode(data, size, &a)) {
		if (a.node[0] || a.active[0] || a.nonce || a.epoch)
			__builtin_trap();
		return 0;
	}
	int n = probe_answer_encode(&a, again);
	if (n < 0 || (size_t)n != size || memcmp(again, data, size))
		__builtin_trap();
	return 0;
}
