#include "peers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wgp_device_peer(json_t *device, struct wg_peer *peer, struct wg_allowed_ip *ip)
{
	const char *state = json_string_value(json_object_get(device, "state"));
	const char *key = json_string_value(json_object_get(device, "public_key"));
	const char *address = json_string_value(json_object_get(device, "address"));
	memset(peer, 0, sizeof(*peer));
	if (!state || strcmp(state, "active") || !key || !address)
		return -ENOENT;
	if (wg_key_from_base64(peer->public_key, key) || wg_allowed_ip_parse(ip, address))
		return -EINVAL;
	/* a device owns exactly its own address, whatever the record says */
	ip->cidr = ip->family == AF_INET ? 32 : 128;
	peer->allowed_ips = ip;
	peer->n_allowed_ips = 1;
	/* keepalive written too (0: off), so that a hand-set one is undone */
	peer->flags = WG_PEER_HAS_KEEPALIVE;
	return 0;
}

/* Room for one more; the ips array may move, so every peer is pointed at
 * its own again. */
static int reserve(struct wgp_peers *l)
{
	if (l->n < l->cap)
		return 0;
	size_t cap = l->cap ? l->cap * 2 : 64;
	struct wg_peer *p = realloc(l->peers, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	l->peers = p;
	struct wg_allowed_ip *ips = realloc(l->ips, cap * sizeof(*ips));
	if (!ips)
		return -ENOMEM;
	l->ips = ips;
	l->cap = cap;
	for (size_t i = 0; i < l->n; i++)
		if (l->peers[i].n_allowed_ips)
			l->peers[i].allowed_ips = &l->ips[i];
	return 0;
}

int wgp_peers_add_device(struct wgp_peers *l, json_t *device)
{
	if (reserve(l))
		return -ENOMEM;
	if (!wgp_device_peer(device, &l->peers[l->n], &l->ips[l->n]))
		l->n++;
	return 0;
}

int wgp_peers_add_change(struct wgp_peers *l, json_t *event)
{
	if (reserve(l))
		return -ENOMEM;
	struct wg_peer *peer = &l->peers[l->n];
	if (!wgp_device_peer(event, peer, &l->ips[l->n])) {
		/* its allowed IPs become exactly its address: no stale route */
		peer->flags |= WG_PEER_REPLACE_ALLOWED;
	} else {
		/* not active (or malformed): no peer for its key */
		const char *key = json_string_value(json_object_get(event, "public_key"));
		memset(peer, 0, sizeof(*peer));
		if (!key || wg_key_from_base64(peer->public_key, key))
			return -EINVAL;
		peer->flags = WG_PEER_REMOVE;
	}
	l->n++;
	return 0;
}

int wgp_peers_apply(struct wgp_peers *l, const struct wg_backend *be, const char *ifname, char *err,
                    size_t errlen)
{
	struct wg_device dev = {.peers = l->peers, .n_peers = l->n};
	snprintf(dev.name, sizeof(dev.name), "%s", ifname);
	int rc = l->n ? wg_device_set(be, &dev, err, errlen) : 0;
	l->n = 0;
	return rc;
}

void wgp_peers_free(struct wgp_peers *l)
{
	free(l->peers);
	free(l->ips);
	memset(l, 0, sizeof(*l));
}
