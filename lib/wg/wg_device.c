/* The front end: back-end choice, checks, and the three ways of changing
 * peers (full reconcile, upsert, remove) built on one raw write; the
 * reconcile reads the device and writes the diff of wg_diff.c. The device
 * model it shares with the back ends is in wg_model.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wg_internal.h"

int wg_backend_select(const char *name, const struct wg_backend **out, char *err, size_t errlen)
{
	if (!name || !strcmp(name, "auto")) {
		*out = wg_kernel_probe() == 0 ? &wg_backend_kernel : &wg_backend_uapi;
		return 0;
	}
	if (!strcmp(name, "kernel")) {
		int ret = wg_kernel_probe();

		if (ret)
			return wg_err(err, errlen, ret,
			              "the kernel has no WireGuard (genl family \"wireguard\": %s)",
			              strerror(-ret));
		*out = &wg_backend_kernel;
		return 0;
	}
	if (!strcmp(name, "userspace")) {
		*out = &wg_backend_uapi;
		return 0;
	}
	return wg_err(err, errlen, -EINVAL,
	              "unknown WireGuard backend \"%s\" (kernel, userspace or auto)", name);
}

const char *wg_backend_name(const struct wg_backend *be)
{
	return be->name;
}

static int check_ifname(const char *ifname, char *err, size_t errlen)
{
	if (!ifname || !*ifname || strlen(ifname) >= IF_NAMESIZE || strchr(ifname, '/'))
		return wg_err(err, errlen, -EINVAL, "bad interface name \"%s\"",
		              ifname ? ifname : "(null)");
	return 0;
}

int wg_interface_create(const struct wg_backend *be, const char *ifname, unsigned flags, pid_t *pid,
                        char *err, size_t errlen)
{
	pid_t dummy;

	if (check_ifname(ifname, err, errlen))
		return -EINVAL;
	return be->create(ifname, flags, pid ? pid : &dummy, err, errlen);
}

int wg_interface_adopt(const struct wg_backend *be, const char *ifname, char *err, size_t errlen)
{
	if (check_ifname(ifname, err, errlen))
		return -EINVAL;
	return be->adopt(ifname, err, errlen);
}

int wg_interface_delete(const struct wg_backend *be, const char *ifname, pid_t pid, char *err,
                        size_t errlen)
{
	if (check_ifname(ifname, err, errlen))
		return -EINVAL;
	return be->remove(ifname, pid, err, errlen);
}

static int refuse_peer(const struct wg_peer *peer, const char *why, char *err, size_t errlen)
{
	char b64[WG_KEY_B64_LEN];

	wg_key_to_base64(b64, peer->public_key);
	return wg_err(err, errlen, -EINVAL, "peer %s: %s", b64, why);
}

/* Refuses here what a daemon would refuse half-way: neither back end applies
 * a write atomically, so a bad peer at the end must not cost the ones before. */
static int check_peers(const struct wg_peer *peers, size_t n, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		const struct wg_peer *peer = &peers[i];
		sa_family_t ep = peer->endpoint.sa.sa_family;

		if (peer->flags & WG_PEER_REMOVE)
			continue;
		if (ep != AF_UNSPEC && ep != AF_INET && ep != AF_INET6)
			return refuse_peer(peer, "bad endpoint family", err, errlen);
		if (peer->n_allowed_ips && !peer->allowed_ips)
			return refuse_peer(peer, "no allowed IP array", err, errlen);
		for (size_t j = 0; j < peer->n_allowed_ips; j++) {
			const struct wg_allowed_ip *ip = &peer->allowed_ips[j];
			char why[80];

			if ((ip->family == AF_INET && ip->cidr <= 32) ||
			    (ip->family == AF_INET6 && ip->cidr <= 128))
				continue;
			snprintf(why, sizeof(why),
			         "allowed IP #%zu has a bad family or prefix length (/%u)", j + 1,
			         ip->cidr);
			return refuse_peer(peer, why, err, errlen);
		}
	}
	return 0;
}

int wg_device_set(const struct wg_backend *be, const struct wg_device *dev, char *err,
                  size_t errlen)
{
	if (check_ifname(dev->name, err, errlen) ||
	    check_peers(dev->peers, dev->n_peers, err, errlen))
		return -EINVAL;
	return be->set(dev, err, errlen);
}

int wg_device_get(const struct wg_backend *be, const char *ifname, struct wg_device **out,
                  char *err, size_t errlen)
{
	*out = NULL;
	if (check_ifname(ifname, err, errlen))
		return -EINVAL;
	return be->get(ifname, out, err, errlen);
}

static void device_init(struct wg_device *dev, const char *ifname)
{
	memset(dev, 0, sizeof(*dev));
	snprintf(dev->name, sizeof(dev->name), "%s", ifname);
}

int wg_device_configure(const struct wg_backend *be, const char *ifname, const wg_key private_key,
                        int listen_port, int64_t fwmark, char *err, size_t errlen)
{
	struct wg_device dev;
	int ret;

	if (listen_port > 65535 || fwmark > UINT32_MAX)
		return wg_err(err, errlen, -EINVAL, "listen port or fwmark out of range");
	device_init(&dev, ifname);
	if (private_key) {
		memcpy(dev.private_key, private_key, WG_KEY_LEN);
		dev.flags |= WG_DEVICE_HAS_PRIVATE_KEY;
	}
	if (listen_port >= 0) {
		dev.listen_port = (uint16_t)listen_port;
		dev.flags |= WG_DEVICE_HAS_LISTEN_PORT;
	}
	if (fwmark >= 0) {
		dev.fwmark = (uint32_t)fwmark;
		dev.flags |= WG_DEVICE_HAS_FWMARK;
	}
	ret = wg_device_set(be, &dev, err, errlen);
	explicit_bzero(&dev, sizeof(dev));
	return ret;
}

/* Each peer of the device to the diff: as it is read when the back end
 * streams, else from the device read whole. */
static int diff_device(const struct wg_backend *be, const char *ifname, struct wg_diff *d,
                       char *err, size_t errlen)
{
	struct wg_device *have = NULL;
	int ret;

	if (be->get_peers)
		return be->get_peers(ifname, wg_diff_peer, d, err, errlen);
	ret = wg_device_get(be, ifname, &have, err, errlen);
	for (size_t j = 0; !ret && j < have->n_peers; j++)
		if (wg_diff_peer(&have->peers[j], d))
			ret = wg_err(err, errlen, -ENOMEM, "out of memory reading the device");
	wg_device_free(have);
	return ret;
}

int wg_peers_reconcile(const struct wg_backend *be, const char *ifname, const struct wg_peer *peers,
                       size_t n, struct wg_reconcile_counts *counts, char *err, size_t errlen)
{
	struct wg_device diff;
	struct wg_diff d;
	int ret;

	if (counts)
		memset(counts, 0, sizeof(*counts));
	/* the whole list is checked before the device is even read, so that a
	 * bad peer costs nothing, whether or not the diff would write it */
	if (check_ifname(ifname, err, errlen) || check_peers(peers, n, err, errlen))
		return -EINVAL;
	ret = wg_diff_begin(&d, peers, n, err, errlen);
	if (ret)
		return ret;
	ret = diff_device(be, ifname, &d, err, errlen);
	if (ret) {
		wg_diff_free(&d);
		return ret;
	}
	ret = wg_diff_end(&d, ifname, &diff, counts, err, errlen);
	if (ret)
		return ret;
	if (diff.n_peers)
		ret = wg_device_set(be, &diff, err, errlen);
	free(diff.peers);
	if (ret && counts)
		memset(counts, 0, sizeof(*counts));
	return ret;
}

int wg_peers_upsert(const struct wg_backend *be, const char *ifname, const struct wg_peer *peers,
                    size_t n, char *err, size_t errlen)
{
	struct wg_device dev;
	int ret;

	device_init(&dev, ifname);
	/* a shallow copy (allowed IPs shared), for the flags: no removal here,
	 * and replace_allowed_ips, so that an update leaves no stale route */
	dev.peers = calloc(n ? n : 1, sizeof(*dev.peers));
	if (!dev.peers)
		return wg_err(err, errlen, -ENOMEM, "out of memory for %zu peers", n);
	for (size_t i = 0; i < n; i++) {
		dev.peers[i] = peers[i];
		dev.peers[i].flags = (peers[i].flags & ~WG_PEER_REMOVE) | WG_PEER_REPLACE_ALLOWED;
	}
	dev.n_peers = n;
	ret = wg_device_set(be, &dev, err, errlen);
	free(dev.peers);
	return ret;
}

int wg_peer_replace(const struct wg_backend *be, const char *ifname, const wg_key old_key,
                    const struct wg_peer *peer, char *err, size_t errlen)
{
	struct wg_device dev;
	/* Another key: the new peer first, it takes the allowed IPs over from
	 * the old one, which then goes (the other order leaves them on no
	 * peer meanwhile). The same key: the peer set anew, removed first
	 * (its session and handshake state dropped), then added. */
	struct wg_peer add = *peer, gone = {.flags = WG_PEER_REMOVE};

	add.flags = (peer->flags & ~WG_PEER_REMOVE) | WG_PEER_REPLACE_ALLOWED;
	memcpy(gone.public_key, old_key, WG_KEY_LEN);
	bool anew = wg_key_equal(old_key, peer->public_key);
	struct wg_peer both[2] = {anew ? gone : add, anew ? add : gone};

	device_init(&dev, ifname);
	dev.peers = both;
	dev.n_peers = 2;
	return wg_device_set(be, &dev, err, errlen);
}

int wg_peers_remove(const struct wg_backend *be, const char *ifname, const wg_key *keys, size_t n,
                    char *err, size_t errlen)
{
	struct wg_device dev;
	int ret;

	device_init(&dev, ifname);
	dev.peers = calloc(n ? n : 1, sizeof(*dev.peers));
	if (!dev.peers)
		return wg_err(err, errlen, -ENOMEM, "out of memory for %zu peers", n);
	for (size_t i = 0; i < n; i++) {
		memcpy(dev.peers[i].public_key, keys[i], WG_KEY_LEN);
		dev.peers[i].flags = WG_PEER_REMOVE;
	}
	dev.n_peers = n;
	ret = wg_device_set(be, &dev, err, errlen);
	free(dev.peers);
	return ret;
}
