/* The front end: back-end choice, the device model, and the three ways of
 * changing peers (full reconcile, upsert, remove) built on one raw write. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wg_internal.h"

int wg_err(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* Capacity is implicit: 4, then doubled each time the count reaches a power
 * of two, so growth is amortised O(1) without storing a capacity. */
static int grow(void **arr, size_t n, size_t size)
{
	size_t cap;
	void *p;

	if (n != 0 && (n < 4 || (n & (n - 1)) != 0))
		return 0;
	cap = n == 0 ? 4 : n * 2;
	if (cap > SIZE_MAX / size)
		return -ENOMEM;
	p = realloc(*arr, cap * size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	return 0;
}

struct wg_peer *wg_device_append_peer(struct wg_device *dev)
{
	struct wg_peer *peer;

	if (grow((void **)&dev->peers, dev->n_peers, sizeof(*dev->peers)))
		return NULL;
	peer = &dev->peers[dev->n_peers++];
	memset(peer, 0, sizeof(*peer));
	return peer;
}

int wg_peer_append_allowed_ip(struct wg_peer *peer, const struct wg_allowed_ip *ip)
{
	if (grow((void **)&peer->allowed_ips, peer->n_allowed_ips, sizeof(*ip)))
		return -ENOMEM;
	peer->allowed_ips[peer->n_allowed_ips++] = *ip;
	return 0;
}

void wg_device_free(struct wg_device *dev)
{
	if (!dev)
		return;
	for (size_t i = 0; i < dev->n_peers; i++)
		free(dev->peers[i].allowed_ips);
	free(dev->peers);
	/* the private key was in there */
	explicit_bzero(dev, sizeof(*dev));
	free(dev);
}

const struct wg_peer *wg_device_find_peer(const struct wg_device *dev, const wg_key pub)
{
	for (size_t i = 0; dev && i < dev->n_peers; i++)
		if (wg_key_equal(dev->peers[i].public_key, pub))
			return &dev->peers[i];
	return NULL;
}

int wg_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		unsigned digit = (unsigned)(*s - '0');

		if (*s < '0' || *s > '9' || digit > max || v > (max - digit) / 10)
			return -EINVAL;
		v = v * 10 + digit;
	}
	*out = v;
	return 0;
}

int wg_allowed_ip_parse(struct wg_allowed_ip *out, const char *text)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);
	uint64_t cidr;
	struct wg_allowed_ip ip = {0};

	if (alen == 0 || alen >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, &ip.ip4) == 1)
		ip.family = AF_INET;
	else if (inet_pton(AF_INET6, addr, &ip.ip6) == 1)
		ip.family = AF_INET6;
	else
		return -EINVAL;
	cidr = ip.family == AF_INET ? 32 : 128;
	if (slash && wg_parse_u64(slash + 1, cidr, &cidr))
		return -EINVAL;
	ip.cidr = (uint8_t)cidr;
	*out = ip;
	return 0;
}

int wg_endpoint_parse(union wg_endpoint *out, const char *text)
{
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 1];
	const char *port_text, *close;
	size_t hlen;
	uint64_t port;
	union wg_endpoint ep;

	memset(&ep, 0, sizeof(ep));
	if (text[0] == '[') {
		close = strchr(text, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		hlen = (size_t)(close - text - 1);
		text++;
		port_text = close + 2;
	} else {
		port_text = strrchr(text, ':');
		/* an IPv6 endpoint must be bracketed, or where would the port be */
		if (!port_text || memchr(text, ':', (size_t)(port_text - text)))
			return -EINVAL;
		hlen = (size_t)(port_text - text);
		port_text++;
	}
	if (hlen == 0 || hlen >= sizeof(host) || wg_parse_u64(port_text, 65535, &port))
		return -EINVAL;
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, &ep.in4.sin_addr) == 1) {
		ep.in4.sin_family = AF_INET;
		ep.in4.sin_port = htons((uint16_t)port);
	} else {
		/* a link-local address may carry %scope: a number or an ifname */
		char *pct = strchr(host, '%');
		uint64_t scope = 0;

		if (pct) {
			*pct++ = '\0';
			if (wg_parse_u64(pct, UINT32_MAX, &scope)) {
				scope = if_nametoindex(pct);
				if (!scope)
					return -EINVAL;
			}
		}
		if (inet_pton(AF_INET6, host, &ep.in6.sin6_addr) != 1)
			return -EINVAL;
		ep.in6.sin6_family = AF_INET6;
		ep.in6.sin6_port = htons((uint16_t)port);
		ep.in6.sin6_scope_id = (uint32_t)scope;
	}
	*out = ep;
	return 0;
}

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

int wg_interface_delete(const struct wg_backend *be, const char *ifname, pid_t pid, char *err,
                        size_t errlen)
{
	if (check_ifname(ifname, err, errlen))
		return -EINVAL;
	return be->remove(ifname, pid, err, errlen);
}

/* Refuses here what a daemon would refuse half-way: neither back end applies
 * a write atomically, so a bad peer at the end must not cost the ones before. */
static int check_peers(const struct wg_device *dev, char *err, size_t errlen)
{
	for (size_t i = 0; i < dev->n_peers; i++) {
		const struct wg_peer *peer = &dev->peers[i];
		sa_family_t ep = peer->endpoint.sa.sa_family;
		char b64[WG_KEY_B64_LEN];

		if (peer->flags & WG_PEER_REMOVE)
			continue;
		wg_key_to_base64(b64, peer->public_key);
		if (ep != AF_UNSPEC && ep != AF_INET && ep != AF_INET6)
			return wg_err(err, errlen, -EINVAL, "peer %s: bad endpoint family", b64);
		if (peer->n_allowed_ips && !peer->allowed_ips)
			return wg_err(err, errlen, -EINVAL, "peer %s: no allowed IP array", b64);
		for (size_t j = 0; j < peer->n_allowed_ips; j++) {
			const struct wg_allowed_ip *ip = &peer->allowed_ips[j];

			if ((ip->family != AF_INET || ip->cidr > 32) &&
			    (ip->family != AF_INET6 || ip->cidr > 128))
				return wg_err(err, errlen, -EINVAL,
				              "peer %s: allowed IP #%zu has a bad family or "
				              "prefix length (/%u)",
				              b64, j + 1, ip->cidr);
		}
	}
	return 0;
}

int wg_device_set(const struct wg_backend *be, const struct wg_device *dev, char *err,
                  size_t errlen)
{
	if (check_ifname(dev->name, err, errlen) || check_peers(dev, err, errlen))
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

/* Runs one write of n peers copied from src with extra flags; the copy is
 * shallow (allowed IPs are shared), so only the array is freed. */
static int write_peers(const struct wg_backend *be, const char *ifname, unsigned dev_flags,
                       const struct wg_peer *src, size_t n, unsigned peer_flags, char *err,
                       size_t errlen)
{
	struct wg_device dev;
	int ret;

	device_init(&dev, ifname);
	dev.flags = dev_flags;
	if (n) {
		dev.peers = calloc(n, sizeof(*dev.peers));
		if (!dev.peers)
			return wg_err(err, errlen, -ENOMEM, "out of memory for %zu peers", n);
		memcpy(dev.peers, src, n * sizeof(*src));
		for (size_t i = 0; i < n; i++)
			dev.peers[i].flags = (src[i].flags & ~WG_PEER_REMOVE) | peer_flags;
		dev.n_peers = n;
	}
	ret = wg_device_set(be, &dev, err, errlen);
	free(dev.peers);
	return ret;
}

int wg_peers_reconcile(const struct wg_backend *be, const char *ifname, const struct wg_peer *peers,
                       size_t n, char *err, size_t errlen)
{
	return write_peers(be, ifname, WG_DEVICE_REPLACE_PEERS, peers, n, 0, err, errlen);
}

int wg_peers_upsert(const struct wg_backend *be, const char *ifname, const struct wg_peer *peers,
                    size_t n, char *err, size_t errlen)
{
	/* replace_allowed_ips: an update must not leave a stale route behind */
	return write_peers(be, ifname, 0, peers, n, WG_PEER_REPLACE_ALLOWED, err, errlen);
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
