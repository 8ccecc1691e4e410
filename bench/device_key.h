/* A device's public key for the benchmarks that onboard devices over the
 * bus (bench_preload, bench_onboarding): a fresh key pair whose private
 * half is thrown away, as only the device would keep it. */
#ifndef MG_BENCH_DEVICE_KEY_H
#define MG_BENCH_DEVICE_KEY_H

#include "wg.h"

static inline void device_public_key(char out[WG_KEY_B64_LEN])
{
	wg_key priv, pub;
	wg_key_generate_private(priv);
	wg_key_public_from_private(pub, priv);
	wg_key_to_base64(out, pub);
}

#endif
