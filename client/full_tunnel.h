/* The full tunnel's routing, wg-quick's way: the WireGuard interface marks
 * its own (encrypted) packets with a fwmark; every packet without that mark
 * is looked up in a table of ours whose one route is the default route
 * through the tunnel (`ip rule not fwmark M table M`), while the main table
 * still answers for everything more specific than a default route (`ip
 * rule table main suppress_prefixlength 0`). The tunnel's own packets,
 * marked, go the way they always went: every gateway node's endpoint stays
 * reachable outside the tunnel, without a host route per node. The mark
 * and the table are the same number, the first table from 51820 with no
 * route in it.
 *
 * The rules are `ip -4 -batch` (one process at up, one at down, never per
 * packet): lib/netlink has no policy rules. */
#ifndef MESHGATE_CLIENT_FULL_TUNNEL_H
#define MESHGATE_CLIENT_FULL_TUNNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

/* What cl_full_tunnel_on made, for cl_full_tunnel_off (kept in the
 * tunnel's state file). */
struct cl_full_tunnel {
	uint32_t table; /* = the fwmark; 0: no full tunnel */
	/* net.ipv4.conf.all.src_valid_mark before we set it to 1 (the reverse
	 * path filter must see the mark), -1: left as it was */
	int valid_mark_before;
};

/* A table with no route in it, from 51820 on. */
int cl_full_tunnel_free_table(uint32_t *table, struct cl_err *err);

/* The default route through ifname in ft->table and the two rules; on
 * failure nothing is left. The caller marks the interface first. */
int cl_full_tunnel_on(const char *ifname, struct cl_full_tunnel *ft, struct cl_err *err);

/* Removes what cl_full_tunnel_on made (what is gone already is no error). */
void cl_full_tunnel_off(const char *ifname, const struct cl_full_tunnel *ft);

#endif
