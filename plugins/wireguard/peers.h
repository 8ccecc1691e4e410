/* The peers the interface is to have, as fixed structs: a device's public
 * key and its one address, nothing else of it kept (no strings, no JSON).
 * Filled from every device in state (the reconcile at start and at each
 * resync) or from device.changed events (the changes written together). */
#ifndef WGP_PEERS_H
#define WGP_PEERS_H

#include <jansson.h>

#include "wg.h"

struct wgp_peers {
	struct wg_peer *peers;     /* each points at its one allowed IP in ips */
	struct wg_allowed_ip *ips; /* ips[i] is peers[i]'s */
	size_t n, cap;             /* cap kept when emptied, for the next changes */
	/* the peers that take over a device's address from its old key's
	 * peer: index into peers, and the old key */
	struct wgp_takeover_of {
		size_t peer;
		wg_key old_key;
	} * takeovers;
	size_t n_takeovers, cap_takeovers;
};

/* A device record's peer: 0 when it is active and well formed, -ENOENT
 * when it is not active (or lacks its key or address), -EINVAL when its
 * key or address is malformed. The peer's allowed IP is ip. */
int wgp_device_peer(json_t *device, struct wg_peer *peer, struct wg_allowed_ip *ip);

/* Appends the device's peer when it has one (wgp_device_peer); 0 also
 * when it has none, -ENOMEM. */
int wgp_peers_add_device(struct wgp_peers *l, json_t *device);

/* Appends what a device.changed event asks of the interface: the device's
 * peer when it is active, else the removal of its public key. An active
 * device whose key changed ("previous_public_key", docs/rotation.md) gets
 * its peer under the new key taking its address (replace_allowed_ips: an
 * address is on one peer only, so it leaves the old peer) and the old
 * peer's endpoint (filled in by wgp_peers_apply). The old peer stays, for
 * what it was sending at that moment; takeover.h removes it. The event
 * carries the members of the committed record that matter (state,
 * public_key, address: preauth copies them after the commit, in commit
 * order), so the device is not read again. -EINVAL when the event has no
 * usable key, -ENOMEM. */
int wgp_peers_add_change(struct wgp_peers *l, json_t *event);

/* Told, once the changes are written, of each peer that took over from an
 * old peer the interface had (the endpoint filled in): takeover.h watches
 * it and removes the old one. */
typedef void (*wgp_taken_over_fn)(void *arg, const struct wg_peer *peer, const wg_key old_key);

/* Writes the changes in one transaction (one UAPI set), later ones after
 * earlier ones (the last change of a key wins), and empties the list,
 * written or not. With a takeover among them the interface is read first,
 * for the old peers' endpoints. */
int wgp_peers_apply(struct wgp_peers *l, const struct wg_backend *be, const char *ifname,
                    wgp_taken_over_fn taken_over, void *arg, char *err, size_t errlen);

void wgp_peers_free(struct wgp_peers *l);

#endif
