/* The gateway key's timed switch (docs/rotation.md, "Gateway key"): when
 * the secret service has a next version of the interface's key, the
 * plugin publishes its public key and a switch time T in wg/server (the
 * api hands both to devices), sets it on the interface at T and then
 * promotes it in the secret service. Devices replace the gateway's peer
 * at T + a margin, so that they never handshake to a key the gateway
 * does not have yet. */
#ifndef WGP_ROTATE_H
#define WGP_ROTATE_H

#include <stdbool.h>
#include <stdint.h>

#include <meshgate/meshgate.h>

#include "secret.h"
#include "wg.h"

struct wgp_rotation {
	char name[64]; /* the key in the secret service: "wireguard/IF" */
	const struct wg_backend *backend;
	const char *ifname;
	uint64_t lead_ms; /* wireguard.key_switch_lead: T - the publication */
	/* the plugin's: takes `key` as the interface's key (set already) */
	void (*switched)(mg_ctx *ctx, const wg_key key);
	/* the plugin's: writes wg/server again (wgp_rotation_describe adds to it) */
	int (*publish)(mg_ctx *ctx);

	long long next_version; /* the version to switch to; 0: none */
	wg_key next_key;
	uint64_t switch_at_ms; /* T by this node's clock; 0: not scheduled yet */
	int switch_timer;
	long long promote_version; /* switched to, not yet promoted; 0: none */
	int promote_timer;
};

/* At init, with the keys secret.get answered: parses `lead` (a duration),
 * keeps a pending next version, subscribes to secret.next. */
int wgp_rotation_init(mg_ctx *ctx, struct wgp_rotation *r, const struct secret_wg_key *keys,
                      const char *lead, char *err, size_t errlen);
/* At start, an adopted interface whose key is `iface_key`: true when that
 * is the pending next version (the switch was made before a restart, the
 * promote was not): it is taken as the key and promoted. */
bool wgp_rotation_adopt(mg_ctx *ctx, struct wgp_rotation *r, const wg_key iface_key);
/* At the end of start: a pending next version (a restart mid-rotation)
 * gets its switch time. */
void wgp_rotation_start(mg_ctx *ctx, struct wgp_rotation *r);
/* Adds "next_public_key", "switch_at_ms" and "next_version" to `server`
 * while a switch is scheduled. */
void wgp_rotation_describe(const struct wgp_rotation *r, json_t *server);
void wgp_rotation_stop(struct wgp_rotation *r);

#endif
