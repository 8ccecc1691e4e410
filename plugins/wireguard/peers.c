#include "peers.h"

#include <errno.h>
#include <stdbool.h>
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

/* A device whose key changed (its previous key other than its key): the
 * peer appended next takes over from the previous key's peer. */
static int add_takeover(struct wgp_peers *l, json_t *event)
{
	const char *previous = json_string_value(json_object_get(event, "previous_public_key"));
	const char *key = json_string_value(json_object_get(event, "public_key"));
	const char *state = json_string_value(json_object_get(event, "state"));
	wg_key old;
	if (!previous || !key || !state || strcmp(state, "active") || !strcmp(previous, key) ||
	    wg_key_from_base64(old, previous))
		return 0;
	if (l->n_takeovers == l->cap_takeovers) {
		size_t cap = l->cap_takeovers ? l->cap_takeovers * 2 : 8;
		struct wgp_takeover_of *t = realloc(l->takeovers, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		l->takeovers = t;
		l->cap_takeovers = cap;
	}
	l->takeovers[l->n_takeovers].peer = l->n;
	memcpy(l->takeovers[l->n_takeovers++].old_key, old, sizeof(old));
	return 0;
}

int wgp_peers_add_change(struct wgp_peers *l, json_t *event)
{
	size_t n = l->n, n_takeovers = l->n_takeovers;
	if (reserve(l) || add_takeover(l, event)) {
		l->n = n;
		l->n_takeovers = n_takeovers;
		return -ENOMEM;
	}
	struct wg_peer *peer = &l->peers[l->n];
	if (!wgp_device_peer(event, peer, &l->ips[l->n])) {
		/* its allowed IPs become exactly its address: no stale route */
		peer->flags |= WG_PEER_REPLACE_ALLOWED;
	} else {
		/* not active (or malformed): no peer for its key */
		const char *key = json_string_value(json_object_get(event, "public_key"));
		memset(peer, 0, sizeof(*peer));
		if (!key || wg_key_from_base64(peer->public_key, key)) {
			l->n = n;
			l->n_takeovers = n_takeovers;
			return -EINVAL;
		}
		peer->flags = WG_PEER_REMOVE;
	}
	l->n++;
	return 0;
}

/* Each taking-over peer gets the endpoint of the peer it takes over from,
 * as the interface has it now (where the device is, so that the gateway
 * can start the handshake if the device does not: takeover.h). An old peer
 * the interface does not have (a repeated event) leaves the new one a plain
 * set. *watched says which were filled. */
static int fill_takeovers(struct wgp_peers *l, const struct wg_backend *be, const char *ifname,
                          bool *watched, char *err, size_t errlen)
{
	struct wg_device *now;
	int rc = wg_device_get(be, ifname, &now, err, errlen);
	if (rc)
		return rc;
	for (size_t i = 0; i < l->n_takeovers; i++) {
		struct wg_peer *peer = &l->peers[l->takeovers[i].peer];
		if (l->takeovers[i].peer >= l->n || (peer->flags & WG_PEER_REMOVE))
			continue;
		const struct wg_peer *old = wg_device_find_peer(now, l->takeovers[i].old_key);
		if (!old)
			continue;
		peer->endpoint = old->endpoint;
		watched[i] = true;
	}
	wg_device_free(now);
	return 0;
}

int wgp_peers_apply(struct wgp_peers *l, const struct wg_backend *be, const char *ifname,
                    wgp_taken_over_fn taken_over, void *arg, char *err, size_t errlen)
{
	struct wg_device dev = {.peers = l->peers, .n_peers = l->n};
	snprintf(dev.name, sizeof(dev.name), "%s", ifname);
	bool *watched = l->n_takeovers ? calloc(l->n_takeovers, sizeof(*watched)) : NULL;
	int rc = l->n_takeovers && !watched ? -ENOMEM : 0;
	if (!rc && l->n_takeovers)
		rc = fill_takeovers(l, be, ifname, watched, err, errlen);
	else if (rc)
		snprintf(err, errlen, "out of memory");
	if (!rc && l->n)
		rc = wg_device_set(be, &dev, err, errlen);
	for (size_t i = 0; !rc && taken_over && i < l->n_takeovers; i++)
		if (watched[i])
			taken_over(arg, &l->peers[l->takeovers[i].peer], l->takeovers[i].old_key);
	free(watched);
	l->n = 0;
	l->n_takeovers = 0;
	return rc;
}

void wgp_peers_free(struct wgp_peers *l)
{
	free(l->peers);
	free(l->ips);
	free(l->takeovers);
	memset(l, 0, sizeof(*l));
}
