/*
 * nl: links, addresses and routes through rtnetlink (libmnl), in the calling
 * thread's network namespace. No `ip` processes.
 *
 * Prefixes are text: "10.0.0.1/24", "fd00::1/64"; a bare address means the
 * full prefix. Every function returns 0 (or an ifindex) or a negative errno:
 * -EEXIST for an address or route already there, -ESRCH / -EADDRNOTAVAIL for
 * one to delete that is not, -ENODEV for an unknown interface.
 */
#ifndef MESHGATE_NL_H
#define MESHGATE_NL_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

struct nl_prefix {
	int family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
	uint8_t len;
};

/* Parses "addr[/len]". -EINVAL on anything else. */
int nl_prefix_parse(struct nl_prefix *out, const char *text);

/* The interface index (> 0), or -ENODEV. */
int nl_link_index(const char *ifname);
int nl_link_set_up(const char *ifname, bool up);
int nl_link_set_mtu(const char *ifname, unsigned mtu);
/* A new link of that kind ("wireguard", "dummy", ...), and its removal. */
int nl_link_add(const char *ifname, const char *kind);
int nl_link_del(const char *ifname);

/* An address with its prefix length on an interface. */
int nl_addr_add(const char *ifname, const char *prefix);
int nl_addr_del(const char *ifname, const char *prefix);

/* A route to dst through ifname, with an optional gateway (NULL), in the
 * main table. */
int nl_route_add(const char *dst, const char *ifname, const char *gateway);
int nl_route_del(const char *dst, const char *ifname, const char *gateway);
/* The on-link route to dst through ifname with this MTU (a route metric,
 * as `ip route replace DST dev IF mtu MTU`): made, or replaced in place. */
int nl_route_replace_mtu(const char *dst, const char *ifname, unsigned mtu);

/* The same in routing table `table` (1..2^32-1); replace adds the route
 * or replaces the one of the same destination and metric. */
int nl_route_replace_in(unsigned table, const char *dst, const char *ifname, const char *gateway);
int nl_route_del_in(unsigned table, const char *dst, const char *ifname, const char *gateway);

/* A policy rule `from PREFIX lookup TABLE` at `priority` (ip rule). Adding
 * one already there gives -EEXIST; deleting a missing one -ENOENT. */
int nl_rule_add(const char *from, unsigned table, unsigned priority);
int nl_rule_del(const char *from, unsigned table, unsigned priority);

struct nl_route_match {
	int ifindex;
	char ifname[IF_NAMESIZE];
	uint8_t prefix_len; /* of the route that matched: 0 is the default route */
	bool has_gateway;
	struct nl_prefix gateway;
};

/* Which interface routes the subnet: the most specific unicast route of the
 * main table whose prefix covers all of it (longest prefix match over the
 * listed routes, as the kernel would choose). -ENETUNREACH if none does.
 * A default route counts; check out->prefix_len to exclude it. */
int nl_route_lookup(const char *subnet, struct nl_route_match *out);

/* libmnl control callbacks shared by every netlink user here (rtnetlink in
 * nl.c, WireGuard's generic netlink in lib/wg): an ACK ends the answer, an
 * error or an error inside NLMSG_DONE sets errno and fails it. */
struct nlmsghdr;
int nl_ack_cb(const struct nlmsghdr *nlh, void *data);
int nl_done_cb(const struct nlmsghdr *nlh, void *data);

#endif
