/* A device's peer under its new key, after it took the device's address
 * from the old key's peer (docs/rotation.md, "The device key", step 4).
 *
 * The old peer stays until the new one has a handshake: what the gateway
 * was sending to the device at that moment goes out on the old session,
 * which the device still receives on (removed in the same set, it would
 * be lost). It goes then, or WGP_TAKEOVER_KEEP_OLD_MS after the takeover
 * at the latest.
 *
 * Both ends starting the handshake at once can leave each waiting for the
 * other's data until WireGuard's 5 s retry, longer than the 1.28 s a device
 * stages. So the gateway leaves the start to the device (whose agent starts
 * it anew while none completes), and starts it itself only when nothing
 * came from the device under the new key WGP_TAKEOVER_START_MS after the
 * set: the device's own start came before the gateway had the key, and
 * WireGuard would retry it only after 5 s. */
#ifndef WGP_TAKEOVER_H
#define WGP_TAKEOVER_H

#include <stdbool.h>
#include <stdint.h>

#include <meshgate/meshgate.h>

#include "wg.h"

#define WGP_TAKEOVER_CHECK_MS    50
#define WGP_TAKEOVER_START_MS    100
#define WGP_TAKEOVER_KEEP_OLD_MS 10000
/* the persistent keepalive whose turning on starts the handshake (the
 * periodic resync sets the plugin's 0 back) */
#define WGP_TAKEOVER_KEEPALIVE 25

struct wgp_takeover {
	wg_key key, old_key;
	uint64_t start_at_ms, until_ms;
	bool started; /* the start was looked at */
};

struct wgp_takeovers {
	const struct wg_backend *backend;
	const char *ifname;
	struct wgp_takeover *pending;
	size_t n, cap;
	int timer;
};

/* A peer just set under a device's new key, with the endpoint of old_key's
 * peer, whose address it took. */
int wgp_takeover_watch(mg_ctx *ctx, struct wgp_takeovers *t, const wg_key key,
                       const wg_key old_key);

/* With one read of the interface and at most one set: the old peers of
 * new ones with a handshake (or gone, or past WGP_TAKEOVER_KEEP_OLD_MS)
 * removed; a new peer with neither a handshake nor a byte from the device
 * WGP_TAKEOVER_START_MS after the takeover gets the keepalive that starts
 * the handshake. */
void wgp_takeover_check(mg_ctx *ctx, struct wgp_takeovers *t);

void wgp_takeovers_free(mg_ctx *ctx, struct wgp_takeovers *t);

#endif
