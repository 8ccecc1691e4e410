/* The interface's own network settings: address, MTU, link up (rtnetlink
 * through lib/netlink; no `ip` processes). */
#ifndef WGP_IFACE_H
#define WGP_IFACE_H

#include <stddef.h>

#include "wg.h"

/* "10.0.0.1/24": an address with a prefix that leaves room for devices. */
int wgp_iface_check_address(const char *address, char *err, size_t errlen);
int wgp_iface_up(const char *ifname, const char *address, int mtu, char *err, size_t errlen);
/* "10.0.0.2/32" */
void wgp_allowed_ip_format(char *out, size_t len, const struct wg_allowed_ip *ip);

#endif
