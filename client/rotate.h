/* A device's key rotation, the device's side (docs/rotation.md). The key
 * pair is made on the device; its private key never leaves it. In order:
 *  1. the next private key is saved in the config ("# MeshgateNextKey",
 *     mode 0600) before the gateway hears of it, so a crash resumes with
 *     the same key;
 *  2. its public key is registered with the gateway (POST
 *     /api/v1/devices/ID/next-key, the enrolment's server and trust,
 *     authenticated by the register token), outside the tunnel;
 *  3. the interface's private key becomes the next key: WireGuard stops
 *     sending on the current session and stages what the device sends;
 *  4. the gateway is asked to switch (POST .../switch-key, tried again
 *     for about a second): every node replaces the device's peer, starts a
 *     handshake, and what was staged goes out. Refused, the old key is put
 *     back at once (the gateway still has the old peer);
 *  5. with the gateway's answer the new key is the device's: it becomes
 *     PrivateKey in the config and the next-key line goes, once the peer
 *     has a handshake newer than the key change (waited for a few seconds;
 *     reported when none came).
 * Steps 2 and 4 are idempotent on the gateway, so a retry after a lost
 * answer, or a resumption after a crash, gets the same answer. */
#ifndef MESHGATE_CLIENT_ROTATE_H
#define MESHGATE_CLIENT_ROTATE_H

#include <signal.h>

#include "err.h"
#include "tunnel.h"

struct cl_rotate_opts {
	struct cl_tunnel_opts tun;
	const char *config_path; /* CONFIG_DIR/IFNAME.conf */
	volatile sig_atomic_t *stop;
};

/* One rotation, or the resumption of one the config shows under way.
 * 0: the device uses its new key, saved. -1 with err: the device uses its
 * old key; the next key stays saved unless the gateway refused it (a
 * later call tries again with it). *waited_ms (may be NULL) gets the time
 * from the key change to the handshake under the new key. */
int cl_rotate_key(const struct cl_rotate_opts *o, long *waited_ms, struct cl_err *err);

#endif
