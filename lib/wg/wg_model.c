/* The device model that the front end and both back ends share: building a
 * device being read, freeing it, parsing its values, the error sentence.
 * It calls nothing else in lib/wg, so that the back ends (wg_netlink.c,
 * wg_uapi.c) need not reach up into the front end (wg_device.c). */
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
