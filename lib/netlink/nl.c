/* rtnetlink through libmnl: one socket per call, a request, its ACK. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include "nl.h"

/* Large enough for any dump message the kernel sends (it caps them at 32K). */
#define NL_RECV_SIZE 32768

static size_t prefix_bytes(int family)
{
	return family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr);
}

int nl_prefix_parse(struct nl_prefix *out, const char *text)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = text ? strchr(text, '/') : NULL;
	size_t alen = !text ? 0 : slash ? (size_t)(slash - text) : strlen(text);
	struct nl_prefix p = {0};
	unsigned long len, max;
	char *end;

	if (alen == 0 || alen >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, &p.addr.v4) == 1)
		p.family = AF_INET;
	else if (inet_pton(AF_INET6, addr, &p.addr.v6) == 1)
		p.family = AF_INET6;
	else
		return -EINVAL;
	len = max = 8 * prefix_bytes(p.family);
	if (slash) {
		/* digits only: strtoul alone would take " 24" or "+24" */
		if (slash[1] < '0' || slash[1] > '9' || strlen(slash + 1) > 3)
			return -EINVAL;
		len = strtoul(slash + 1, &end, 10);
		if (*end || len > max)
			return -EINVAL;
	}
	p.len = (uint8_t)len;
	*out = p;
	return 0;
}

/* Control messages. Given a control array, libmnl runs no default for the
 * types it covers, so the ACK/error is handled here too. And its default
 * ends a dump at NLMSG_DONE without looking at the error code the kernel
 * may put in it (an interrupted or refused dump): that one is read here. */
int nl_ack_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

	(void)data;
	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e))) {
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	if (e->error == 0)
		return MNL_CB_STOP;
	errno = e->error < 0 ? -e->error : e->error;
	return MNL_CB_ERROR;
}

int nl_done_cb(const struct nlmsghdr *nlh, void *data)
{
	int error;

	(void)data;
	if (nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(error))) {
		memcpy(&error, mnl_nlmsg_get_payload(nlh), sizeof(error));
		if (error < 0) {
			errno = -error;
			return MNL_CB_ERROR;
		}
	}
	return MNL_CB_STOP;
}

/* Sends one request and runs cb on every answer until the ACK or DONE. */
static int nl_talk(struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	mnl_cb_t ctl_cbs[NLMSG_MIN_TYPE] = {[NLMSG_ERROR] = nl_ack_cb, [NLMSG_DONE] = nl_done_cb};
	struct mnl_socket *nl = mnl_socket_open(NETLINK_ROUTE);
	unsigned portid;
	char *buf;
	int ret;

	if (!nl)
		return -errno;
	buf = malloc(NL_RECV_SIZE);
	if (!buf) {
		mnl_socket_close(nl);
		return -ENOMEM;
	}
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		goto out;
	}
	portid = mnl_socket_get_portid(nl);
	nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = (unsigned)time(NULL);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		ret = -errno;
		goto out;
	}
	do {
		ssize_t n = mnl_socket_recvfrom(nl, buf, NL_RECV_SIZE);

		if (n < 0) {
			ret = -errno;
			goto out;
		}
		ret = mnl_cb_run2(buf, (size_t)n, nlh->nlmsg_seq, portid, cb, data, ctl_cbs,
		                  MNL_ARRAY_SIZE(ctl_cbs));
	} while (ret > MNL_CB_STOP);
	ret = ret < 0 ? -errno : 0;
out:
	free(buf);
	mnl_socket_close(nl);
	return ret;
}

static struct nlmsghdr *put_header(char *buf, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	return nlh;
}

int nl_link_index(const char *ifname)
{
	unsigned idx = ifname ? if_nametoindex(ifname) : 0;

	return idx ? (int)idx : -ENODEV;
}

/* RTM_NEWLINK on an existing link changes what it carries. */
static int link_change(const char *ifname, unsigned flags, unsigned change, int mtu)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = put_header(buf, RTM_NEWLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	int idx = nl_link_index(ifname);

	if (idx < 0)
		return idx;
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = idx;
	ifi->ifi_flags = flags;
	ifi->ifi_change = change;
	if (mtu > 0)
		mnl_attr_put_u32(nlh, IFLA_MTU, (uint32_t)mtu);
	return nl_talk(nlh, NULL, NULL);
}

int nl_link_set_up(const char *ifname, bool up)
{
	return link_change(ifname, up ? IFF_UP : 0, IFF_UP, 0);
}

int nl_link_set_mtu(const char *ifname, unsigned mtu)
{
	if (mtu == 0 || mtu > 65535)
		return -EINVAL;
	return link_change(ifname, 0, 0, (int)mtu);
}

int nl_link_add(const char *ifname, const char *kind)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = put_header(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	struct nlattr *info;

	if (!ifname || !*ifname || strlen(ifname) >= IF_NAMESIZE || !kind)
		return -EINVAL;
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, kind);
	mnl_attr_nest_end(nlh, info);
	return nl_talk(nlh, NULL, NULL);
}

int nl_link_del(const char *ifname)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = put_header(buf, RTM_DELLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	int idx = nl_link_index(ifname);

	if (idx < 0)
		return idx;
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = idx;
	return nl_talk(nlh, NULL, NULL);
}

static int addr_change(uint16_t type, uint16_t flags, const char *ifname, const char *text)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = put_header(buf, type, flags);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	int idx = nl_link_index(ifname);
	struct nl_prefix p;

	if (idx < 0)
		return idx;
	if (nl_prefix_parse(&p, text))
		return -EINVAL;
	ifa->ifa_family = (uint8_t)p.family;
	ifa->ifa_prefixlen = p.len;
	ifa->ifa_index = (unsigned)idx;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	/* A tunnel address must be usable at once, not tentative for a
	 * second while duplicate detection runs on a link with no neighbours. */
	if (p.family == AF_INET6)
		ifa->ifa_flags = IFA_F_NODAD;
	mnl_attr_put(nlh, IFA_LOCAL, prefix_bytes(p.family), &p.addr);
	mnl_attr_put(nlh, IFA_ADDRESS, prefix_bytes(p.family), &p.addr);
	return nl_talk(nlh, NULL, NULL);
}

int nl_addr_add(const char *ifname, const char *prefix)
{
	return addr_change(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifname, prefix);
}

int nl_addr_del(const char *ifname, const char *prefix)
{
	return addr_change(RTM_DELADDR, 0, ifname, prefix);
}

static int route_change(uint16_t type, uint16_t flags, unsigned table, const char *dst,
                        const char *ifname, const char *gateway, unsigned mtu)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = put_header(buf, type, flags);
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	int idx = nl_link_index(ifname);
	struct nl_prefix p, gw;

	if (idx < 0)
		return idx;
	if (nl_prefix_parse(&p, dst))
		return -EINVAL;
	if (gateway && (nl_prefix_parse(&gw, gateway) || gw.family != p.family))
		return -EINVAL;
	rtm->rtm_family = (uint8_t)p.family;
	rtm->rtm_dst_len = p.len;
	rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
	rtm->rtm_protocol = RTPROT_STATIC;
	rtm->rtm_type = RTN_UNICAST;
	/* like ip(8): a deletion matches any scope; an added route without
	 * gateway is on-link, one with a gateway is global */
	if (type == RTM_DELROUTE)
		rtm->rtm_scope = RT_SCOPE_NOWHERE;
	else
		rtm->rtm_scope = gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
	if (p.len)
		mnl_attr_put(nlh, RTA_DST, prefix_bytes(p.family), &p.addr);
	if (table >= 256)
		mnl_attr_put_u32(nlh, RTA_TABLE, table);
	mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)idx);
	if (gateway)
		mnl_attr_put(nlh, RTA_GATEWAY, prefix_bytes(gw.family), &gw.addr);
	if (mtu) {
		struct nlattr *metrics = mnl_attr_nest_start(nlh, RTA_METRICS);
		mnl_attr_put_u32(nlh, RTAX_MTU, mtu);
		mnl_attr_nest_end(nlh, metrics);
	}
	return nl_talk(nlh, NULL, NULL);
}

int nl_route_add(const char *dst, const char *ifname, const char *gateway)
{
	return route_change(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, RT_TABLE_MAIN, dst, ifname,
	                    gateway, 0);
}

int nl_route_replace_mtu(const char *dst, const char *ifname, unsigned mtu)
{
	if (!mtu)
		return -EINVAL;
	return route_change(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, RT_TABLE_MAIN, dst, ifname,
	                    NULL, mtu);
}

int nl_route_del(const char *dst, const char *ifname, const char *gateway)
{
	return route_change(RTM_DELROUTE, 0, RT_TABLE_MAIN, dst, ifname, gateway, 0);
}

int nl_route_replace_in(unsigned table, const char *dst, const char *ifname, const char *gateway)
{
	if (!table)
		return -EINVAL;
	return route_change(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, table, dst, ifname, gateway,
	                    0);
}

int nl_route_del_in(unsigned table, const char *dst, const char *ifname, const char *gateway)
{
	if (!table)
		return -EINVAL;
	return route_change(RTM_DELROUTE, 0, table, dst, ifname, gateway, 0);
}

/* --- policy rules ---------------------------------------------------------- */

static int rule_change(uint16_t type, uint16_t flags, const char *from, unsigned table,
                       unsigned priority)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = put_header(buf, type, flags);
	struct fib_rule_hdr *frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
	struct nl_prefix p;

	if (!table || nl_prefix_parse(&p, from))
		return -EINVAL;
	frh->family = (uint8_t)p.family;
	frh->src_len = p.len;
	frh->action = FR_ACT_TO_TBL;
	frh->table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
	mnl_attr_put(nlh, FRA_SRC, prefix_bytes(p.family), &p.addr);
	mnl_attr_put_u32(nlh, FRA_TABLE, table);
	mnl_attr_put_u32(nlh, FRA_PRIORITY, priority);
	return nl_talk(nlh, NULL, NULL);
}

int nl_rule_add(const char *from, unsigned table, unsigned priority)
{
	return rule_change(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, from, table, priority);
}

int nl_rule_del(const char *from, unsigned table, unsigned priority)
{
	return rule_change(RTM_DELRULE, 0, from, table, priority);
}

/* --- which interface routes a subnet -------------------------------------- */

struct lookup {
	struct nl_prefix want;
	bool found;
	uint32_t best_metric;
	struct nl_route_match best;
};

static bool covers(const struct nl_prefix *route, const struct nl_prefix *want)
{
	const uint8_t *a = (const uint8_t *)&route->addr, *b = (const uint8_t *)&want->addr;
	unsigned full = route->len / 8, rest = route->len % 8;

	if (route->family != want->family || route->len > want->len)
		return false;
	if (memcmp(a, b, full))
		return false;
	return rest == 0 || ((a[full] ^ b[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

struct route_attrs {
	const struct nlattr *tb[RTA_MAX + 1];
};

static int route_attr_cb(const struct nlattr *attr, void *data)
{
	struct route_attrs *ra = data;
	uint16_t type = mnl_attr_get_type(attr);

	if (type <= RTA_MAX)
		ra->tb[type] = attr;
	return MNL_CB_OK;
}

/* The outgoing interface: RTA_OIF, or the first hop of a multipath route. */
static int route_oif(const struct route_attrs *ra)
{
	if (ra->tb[RTA_OIF] && !mnl_attr_validate(ra->tb[RTA_OIF], MNL_TYPE_U32))
		return (int)mnl_attr_get_u32(ra->tb[RTA_OIF]);
	if (ra->tb[RTA_MULTIPATH] &&
	    mnl_attr_get_payload_len(ra->tb[RTA_MULTIPATH]) >= sizeof(struct rtnexthop))
		return ((const struct rtnexthop *)mnl_attr_get_payload(ra->tb[RTA_MULTIPATH]))
		    ->rtnh_ifindex;
	return 0;
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
	struct lookup *lk = data;
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	struct route_attrs ra = {0};
	struct nl_prefix route = {.family = rtm->rtm_family, .len = rtm->rtm_dst_len};
	size_t alen = prefix_bytes(lk->want.family);
	uint32_t table = rtm->rtm_table, metric = 0;
	int oif;

	if (rtm->rtm_family != lk->want.family || rtm->rtm_type != RTN_UNICAST)
		return MNL_CB_OK;
	if (mnl_attr_parse(nlh, sizeof(*rtm), route_attr_cb, &ra) < 0)
		return MNL_CB_OK;
	if (ra.tb[RTA_TABLE] && !mnl_attr_validate(ra.tb[RTA_TABLE], MNL_TYPE_U32))
		table = mnl_attr_get_u32(ra.tb[RTA_TABLE]);
	if (table != RT_TABLE_MAIN)
		return MNL_CB_OK;
	if (ra.tb[RTA_DST]) {
		if (mnl_attr_get_payload_len(ra.tb[RTA_DST]) != alen)
			return MNL_CB_OK;
		memcpy(&route.addr, mnl_attr_get_payload(ra.tb[RTA_DST]), alen);
	}
	if (ra.tb[RTA_PRIORITY] && !mnl_attr_validate(ra.tb[RTA_PRIORITY], MNL_TYPE_U32))
		metric = mnl_attr_get_u32(ra.tb[RTA_PRIORITY]);
	oif = route_oif(&ra);
	if (oif <= 0 || !covers(&route, &lk->want))
		return MNL_CB_OK;
	/* longest prefix wins; among equals the lowest metric, as the kernel does */
	if (lk->found && (route.len < lk->best.prefix_len ||
	                  (route.len == lk->best.prefix_len && metric >= lk->best_metric)))
		return MNL_CB_OK;
	memset(&lk->best, 0, sizeof(lk->best));
	lk->found = true;
	lk->best_metric = metric;
	lk->best.ifindex = oif;
	lk->best.prefix_len = route.len;
	if (ra.tb[RTA_GATEWAY] && mnl_attr_get_payload_len(ra.tb[RTA_GATEWAY]) == alen) {
		lk->best.has_gateway = true;
		lk->best.gateway.family = lk->want.family;
		lk->best.gateway.len = (uint8_t)(8 * alen);
		memcpy(&lk->best.gateway.addr, mnl_attr_get_payload(ra.tb[RTA_GATEWAY]), alen);
	}
	return MNL_CB_OK;
}

int nl_route_lookup(const char *subnet, struct nl_route_match *out)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = put_header(buf, RTM_GETROUTE, NLM_F_DUMP);
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	struct lookup lk = {0};
	int ret;

	if (nl_prefix_parse(&lk.want, subnet))
		return -EINVAL;
	rtm->rtm_family = (uint8_t)lk.want.family;
	ret = nl_talk(nlh, route_cb, &lk);
	if (ret)
		return ret;
	if (!lk.found)
		return -ENETUNREACH;
	if (!if_indextoname((unsigned)lk.best.ifindex, lk.best.ifname))
		return -ENODEV;
	*out = lk.best;
	return 0;
}
