#include "iface.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "nl.h"

int wgp_iface_check_address(const char *address, char *err, size_t errlen)
{
	struct nl_prefix p;
	if (!strchr(address, '/') || nl_prefix_parse(&p, address)) {
		snprintf(err, errlen, "'%s' is not an address with a prefix (\"10.0.0.1/24\")",
		         address);
		return -EINVAL;
	}
	if ((p.family == AF_INET && p.len > 30) || (p.family == AF_INET6 && p.len > 126)) {
		snprintf(err, errlen, "the prefix of '%s' leaves no address for devices", address);
		return -EINVAL;
	}
	return 0;
}

int wgp_iface_up(const char *ifname, const char *address, int mtu, char *err, size_t errlen)
{
	int rc = nl_link_set_mtu(ifname, (unsigned)mtu);
	if (!rc) {
		rc = nl_addr_add(ifname, address);
		if (rc == -EEXIST) /* a restart over a surviving interface */
			rc = 0;
	}
	if (!rc)
		rc = nl_link_set_up(ifname, true);
	if (rc)
		snprintf(err, errlen, "%s: %s", ifname, strerror(-rc));
	return rc;
}

void wgp_allowed_ip_format(char *out, size_t len, const struct wg_allowed_ip *ip)
{
	char addr[INET6_ADDRSTRLEN];
	inet_ntop(ip->family,
	          ip->family == AF_INET ? (const void *)&ip->ip4 : (const void *)&ip->ip6, addr,
	          sizeof(addr));
	snprintf(out, len, "%s/%u", addr, ip->cidr);
}
