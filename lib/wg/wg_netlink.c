/*
 * The kernel back end: WireGuard's generic netlink family "wireguard"
 * (linux/wireguard.h documents it), through libmnl.
 *
 * A write that does not fit one netlink message is split the way the kernel
 * expects: later messages carry only the interface name and the peers still
 * to send; a peer cut in its allowed IPs is repeated with just its public key
 * and the rest of its IPs. Device flags (replace peers) go in the first
 * message only, peer flags and settings in a peer's first fragment only, so
 * nothing is cleared twice. The kernel applies each message on its own.
 *
 * A read is a dump: the same splitting happens the other way, and adjacent
 * entries with one public key are one peer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/wireguard.h>

#include "nl.h"
#include "wg_internal.h"

/* The reference tools' message size; the kernel takes larger, this is safe. */
#define MSG_SIZE  ((size_t)MNL_SOCKET_BUFFER_SIZE)
#define RECV_SIZE 32768

struct genl {
	struct mnl_socket *nl;
	unsigned portid, seq;
	uint16_t family;
	char *buf; /* RECV_SIZE, for answers */
};

/* --- generic netlink plumbing ---------------------------------------------- */

static struct nlmsghdr *genl_msg(struct genl *g, char *buf, uint16_t type, uint8_t cmd,
                                 uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct genlmsghdr *gh;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = ++g->seq;
	gh = mnl_nlmsg_put_extra_header(nlh, sizeof(*gh));
	gh->cmd = cmd;
	gh->version = WG_GENL_VERSION;
	return nlh;
}

/* Sends nlh, runs cb on the answers until the ACK (or DONE for a dump). */
static int genl_run(struct genl *g, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	mnl_cb_t ctl_cbs[NLMSG_MIN_TYPE] = {[NLMSG_ERROR] = nl_ack_cb, [NLMSG_DONE] = nl_done_cb};
	int ret;

	if (mnl_socket_sendto(g->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	do {
		ssize_t n = mnl_socket_recvfrom(g->nl, g->buf, RECV_SIZE);

		if (n < 0)
			return -errno;
		ret = mnl_cb_run2(g->buf, (size_t)n, nlh->nlmsg_seq, g->portid, cb, data, ctl_cbs,
		                  MNL_ARRAY_SIZE(ctl_cbs));
	} while (ret > MNL_CB_STOP);
	return ret < 0 ? -errno : 0;
}

static int family_attr_cb(const struct nlattr *attr, void *data)
{
	if (mnl_attr_get_type(attr) == CTRL_ATTR_FAMILY_ID &&
	    !mnl_attr_validate(attr, MNL_TYPE_U16))
		*(uint16_t *)data = mnl_attr_get_u16(attr);
	return MNL_CB_OK;
}

static int family_cb(const struct nlmsghdr *nlh, void *data)
{
	return mnl_attr_parse(nlh, sizeof(struct genlmsghdr), family_attr_cb, data);
}

static void genl_close(struct genl *g)
{
	if (g->nl)
		mnl_socket_close(g->nl);
	free(g->buf);
	memset(g, 0, sizeof(*g));
}

/* Opens a socket and resolves the family; -ENOENT when there is no module. */
static int genl_open(struct genl *g)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	int ret;

	memset(g, 0, sizeof(*g));
	g->seq = (unsigned)time(NULL);
	g->buf = malloc(RECV_SIZE);
	g->nl = mnl_socket_open(NETLINK_GENERIC);
	if (!g->buf || !g->nl || mnl_socket_bind(g->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = g->buf ? -errno : -ENOMEM;
		genl_close(g);
		return ret ? ret : -EIO;
	}
	g->portid = mnl_socket_get_portid(g->nl);
	nlh = genl_msg(g, buf, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0);
	/* the control family is version 1 whatever WireGuard's version is */
	((struct genlmsghdr *)mnl_nlmsg_get_payload(nlh))->version = 1;
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, WG_GENL_NAME);
	ret = genl_run(g, nlh, family_cb, &g->family);
	if (!ret && !g->family)
		ret = -ENOENT;
	if (ret)
		genl_close(g);
	return ret;
}

int wg_kernel_probe(void)
{
	struct genl g;
	int ret = genl_open(&g);

	if (!ret)
		genl_close(&g);
	return ret;
}

/* --- writing: WG_CMD_SET_DEVICE, fragmented -------------------------------- */

/* Where the next message resumes: peer index, allowed IP index, and whether
 * that peer's first fragment (flags, key, endpoint...) already went out. */
struct cursor {
	size_t peer, ip;
	bool peer_begun;
};

static bool put_allowed_ip(struct nlmsghdr *nlh, const struct wg_allowed_ip *ip)
{
	size_t len = ip->family == AF_INET ? sizeof(ip->ip4) : sizeof(ip->ip6);
	struct nlattr *nest = mnl_attr_nest_start_check(nlh, MSG_SIZE, 0);

	if (!nest)
		return false;
	if (!mnl_attr_put_u16_check(nlh, MSG_SIZE, WGALLOWEDIP_A_FAMILY, ip->family) ||
	    !mnl_attr_put_check(nlh, MSG_SIZE, WGALLOWEDIP_A_IPADDR, len, &ip->ip4) ||
	    !mnl_attr_put_u8_check(nlh, MSG_SIZE, WGALLOWEDIP_A_CIDR_MASK, ip->cidr)) {
		mnl_attr_nest_cancel(nlh, nest);
		return false;
	}
	mnl_attr_nest_end(nlh, nest);
	return true;
}

/* A peer's first fragment: flags and settings. */
static bool put_peer_head(struct nlmsghdr *nlh, const struct wg_peer *peer)
{
	uint32_t flags = 0;
	const union wg_endpoint *ep = &peer->endpoint;

	if (peer->flags & WG_PEER_REMOVE)
		flags |= WGPEER_F_REMOVE_ME;
	if (peer->flags & WG_PEER_REPLACE_ALLOWED)
		flags |= WGPEER_F_REPLACE_ALLOWEDIPS;
	if (peer->flags & WG_PEER_UPDATE_ONLY)
		flags |= WGPEER_F_UPDATE_ONLY;
	if (flags && !mnl_attr_put_u32_check(nlh, MSG_SIZE, WGPEER_A_FLAGS, flags))
		return false;
	if (peer->flags & WG_PEER_REMOVE)
		return true;
	if ((peer->flags & WG_PEER_HAS_PRESHARED_KEY) &&
	    !mnl_attr_put_check(nlh, MSG_SIZE, WGPEER_A_PRESHARED_KEY, WG_KEY_LEN,
	                        peer->preshared_key))
		return false;
	if (ep->sa.sa_family == AF_INET &&
	    !mnl_attr_put_check(nlh, MSG_SIZE, WGPEER_A_ENDPOINT, sizeof(ep->in4), &ep->in4))
		return false;
	if (ep->sa.sa_family == AF_INET6 &&
	    !mnl_attr_put_check(nlh, MSG_SIZE, WGPEER_A_ENDPOINT, sizeof(ep->in6), &ep->in6))
		return false;
	if ((peer->flags & WG_PEER_HAS_KEEPALIVE) &&
	    !mnl_attr_put_u16_check(nlh, MSG_SIZE, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
	                            peer->persistent_keepalive))
		return false;
	return true;
}

/* Puts as much of the peer at c as fits; true when all of it went in. */
static bool put_peer(struct nlmsghdr *nlh, const struct wg_peer *peer, struct cursor *c)
{
	struct nlattr *nest = mnl_attr_nest_start_check(nlh, MSG_SIZE, 0), *ips;
	bool wrote_ip = false;

	if (!nest)
		return false;
	if (!mnl_attr_put_check(nlh, MSG_SIZE, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, peer->public_key) ||
	    (!c->peer_begun && !put_peer_head(nlh, peer))) {
		mnl_attr_nest_cancel(nlh, nest);
		return false;
	}
	if ((peer->flags & WG_PEER_REMOVE) || c->ip == peer->n_allowed_ips) {
		mnl_attr_nest_end(nlh, nest);
		return true;
	}
	ips = mnl_attr_nest_start_check(nlh, MSG_SIZE, WGPEER_A_ALLOWEDIPS);
	for (; ips && c->ip < peer->n_allowed_ips; c->ip++, wrote_ip = true)
		if (!put_allowed_ip(nlh, &peer->allowed_ips[c->ip]))
			break;
	if (ips && wrote_ip)
		mnl_attr_nest_end(nlh, ips);
	else if (ips)
		mnl_attr_nest_cancel(nlh, ips);
	/* a continuation that carried no IP carried nothing: drop it */
	if (c->peer_begun && !wrote_ip) {
		mnl_attr_nest_cancel(nlh, nest);
		return false;
	}
	mnl_attr_nest_end(nlh, nest);
	c->peer_begun = true;
	return c->ip == peer->n_allowed_ips;
}

/* Builds the next message from cursor c; false when c did not move (a
 * single item larger than a message, which cannot happen with these sizes). */
static bool build_fragment(struct nlmsghdr *nlh, const struct wg_device *dev, struct cursor *c,
                           bool first)
{
	struct cursor start = *c;
	struct nlattr *peers;

	mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, dev->name);
	if (first) {
		uint32_t flags =
		    dev->flags & WG_DEVICE_REPLACE_PEERS ? WGDEVICE_F_REPLACE_PEERS : 0;

		if (dev->flags & WG_DEVICE_HAS_PRIVATE_KEY)
			mnl_attr_put(nlh, WGDEVICE_A_PRIVATE_KEY, WG_KEY_LEN, dev->private_key);
		if (dev->flags & WG_DEVICE_HAS_LISTEN_PORT)
			mnl_attr_put_u16(nlh, WGDEVICE_A_LISTEN_PORT, dev->listen_port);
		if (dev->flags & WG_DEVICE_HAS_FWMARK)
			mnl_attr_put_u32(nlh, WGDEVICE_A_FWMARK, dev->fwmark);
		if (flags)
			mnl_attr_put_u32(nlh, WGDEVICE_A_FLAGS, flags);
	}
	if (c->peer == dev->n_peers)
		return first;
	peers = mnl_attr_nest_start(nlh, WGDEVICE_A_PEERS);
	while (c->peer < dev->n_peers && put_peer(nlh, &dev->peers[c->peer], c)) {
		c->peer++;
		c->ip = 0;
		c->peer_begun = false;
	}
	mnl_attr_nest_end(nlh, peers);
	return first || c->peer != start.peer || c->ip != start.ip ||
	       c->peer_begun != start.peer_begun;
}

static int kernel_set(const struct wg_device *dev, char *err, size_t errlen)
{
	struct cursor c = {0};
	struct genl g;
	char *buf = malloc(MSG_SIZE);
	int ret = buf ? genl_open(&g) : -ENOMEM;

	if (ret) {
		free(buf);
		return wg_err(err, errlen, ret, "kernel WireGuard unavailable: %s", strerror(-ret));
	}
	for (bool first = true; ret == 0; first = false) {
		struct nlmsghdr *nlh = genl_msg(&g, buf, g.family, WG_CMD_SET_DEVICE, 0);

		if (!build_fragment(nlh, dev, &c, first)) {
			ret = -EMSGSIZE;
			break;
		}
		ret = genl_run(&g, nlh, NULL, NULL);
		if (c.peer == dev->n_peers)
			break;
	}
	if (ret)
		wg_err(err, errlen, ret, "setting %s: %s", dev->name, strerror(-ret));
	explicit_bzero(buf, MSG_SIZE);
	free(buf);
	genl_close(&g);
	return ret;
}

/* --- reading: WG_CMD_GET_DEVICE dump --------------------------------------- */

struct read_state {
	struct wg_device *dev;
	int err;
};

static int allowed_ip_cb(const struct nlattr *attr, void *data)
{
	struct wg_allowed_ip *ip = data;
	uint16_t len = mnl_attr_get_payload_len(attr);

	switch (mnl_attr_get_type(attr)) {
	case WGALLOWEDIP_A_FAMILY:
		if (!mnl_attr_validate(attr, MNL_TYPE_U16))
			ip->family = mnl_attr_get_u16(attr);
		break;
	case WGALLOWEDIP_A_IPADDR:
		if (len == sizeof(ip->ip4) || len == sizeof(ip->ip6))
			memcpy(&ip->ip6, mnl_attr_get_payload(attr), len);
		break;
	case WGALLOWEDIP_A_CIDR_MASK:
		if (!mnl_attr_validate(attr, MNL_TYPE_U8))
			ip->cidr = mnl_attr_get_u8(attr);
		break;
	}
	return MNL_CB_OK;
}

static int allowed_ips_cb(const struct nlattr *attr, void *data)
{
	struct wg_peer *peer = data;
	struct wg_allowed_ip ip = {0};

	if (mnl_attr_parse_nested(attr, allowed_ip_cb, &ip) < 0)
		return MNL_CB_ERROR;
	if (!((ip.family == AF_INET && ip.cidr <= 32) || (ip.family == AF_INET6 && ip.cidr <= 128)))
		return MNL_CB_ERROR;
	return wg_peer_append_allowed_ip(peer, &ip) ? MNL_CB_ERROR : MNL_CB_OK;
}

static int peer_cb(const struct nlattr *attr, void *data)
{
	struct wg_peer *peer = data;
	uint16_t len = mnl_attr_get_payload_len(attr);
	const void *payload = mnl_attr_get_payload(attr);

	switch (mnl_attr_get_type(attr)) {
	case WGPEER_A_PUBLIC_KEY:
		if (len == WG_KEY_LEN)
			memcpy(peer->public_key, payload, WG_KEY_LEN);
		break;
	case WGPEER_A_PRESHARED_KEY:
		if (len == WG_KEY_LEN) {
			memcpy(peer->preshared_key, payload, WG_KEY_LEN);
			if (!wg_key_is_zero(peer->preshared_key))
				peer->flags |= WG_PEER_HAS_PRESHARED_KEY;
		}
		break;
	case WGPEER_A_ENDPOINT: {
		sa_family_t family = len >= sizeof(sa_family_t) ? *(const sa_family_t *)payload : 0;

		if ((family == AF_INET && len == sizeof(struct sockaddr_in)) ||
		    (family == AF_INET6 && len == sizeof(struct sockaddr_in6)))
			memcpy(&peer->endpoint, payload, len);
		break;
	}
	case WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL:
		if (!mnl_attr_validate(attr, MNL_TYPE_U16)) {
			peer->persistent_keepalive = mnl_attr_get_u16(attr);
			peer->flags |= WG_PEER_HAS_KEEPALIVE;
		}
		break;
	case WGPEER_A_LAST_HANDSHAKE_TIME: {
		/* struct __kernel_timespec: two 64-bit fields whatever time_t is */
		int64_t ts[2];

		if (len == sizeof(ts)) {
			memcpy(ts, payload, sizeof(ts));
			peer->last_handshake.tv_sec = (time_t)ts[0];
			peer->last_handshake.tv_nsec = (long)ts[1];
		}
		break;
	}
	case WGPEER_A_RX_BYTES:
		if (!mnl_attr_validate(attr, MNL_TYPE_U64))
			peer->rx_bytes = mnl_attr_get_u64(attr);
		break;
	case WGPEER_A_TX_BYTES:
		if (!mnl_attr_validate(attr, MNL_TYPE_U64))
			peer->tx_bytes = mnl_attr_get_u64(attr);
		break;
	case WGPEER_A_ALLOWEDIPS:
		return mnl_attr_parse_nested(attr, allowed_ips_cb, peer);
	}
	return MNL_CB_OK;
}

/* One peer entry; a continuation of the previous peer only adds its IPs. */
static int peers_cb(const struct nlattr *attr, void *data)
{
	struct read_state *st = data;
	struct wg_device *dev = st->dev;
	struct wg_peer entry = {0};
	struct wg_peer *last = dev->n_peers ? &dev->peers[dev->n_peers - 1] : NULL, *peer;
	int ret = mnl_attr_parse_nested(attr, peer_cb, &entry);

	if (ret < 0 || wg_key_is_zero(entry.public_key)) {
		free(entry.allowed_ips);
		st->err = ret < 0 ? -ENOMEM : -EPROTO;
		return MNL_CB_ERROR;
	}
	if (last && wg_key_equal(last->public_key, entry.public_key)) {
		for (size_t i = 0; i < entry.n_allowed_ips; i++)
			if (wg_peer_append_allowed_ip(last, &entry.allowed_ips[i])) {
				st->err = -ENOMEM;
				break;
			}
		free(entry.allowed_ips);
		return st->err ? MNL_CB_ERROR : MNL_CB_OK;
	}
	peer = wg_device_append_peer(dev);
	if (!peer) {
		free(entry.allowed_ips);
		st->err = -ENOMEM;
		return MNL_CB_ERROR;
	}
	*peer = entry;
	return MNL_CB_OK;
}

static int device_attr_cb(const struct nlattr *attr, void *data)
{
	struct read_state *st = data;
	struct wg_device *dev = st->dev;

	switch (mnl_attr_get_type(attr)) {
	case WGDEVICE_A_PRIVATE_KEY:
		if (mnl_attr_get_payload_len(attr) == WG_KEY_LEN) {
			memcpy(dev->private_key, mnl_attr_get_payload(attr), WG_KEY_LEN);
			dev->flags |= WG_DEVICE_HAS_PRIVATE_KEY;
		}
		break;
	case WGDEVICE_A_PUBLIC_KEY:
		if (mnl_attr_get_payload_len(attr) == WG_KEY_LEN) {
			memcpy(dev->public_key, mnl_attr_get_payload(attr), WG_KEY_LEN);
			dev->flags |= WG_DEVICE_HAS_PUBLIC_KEY;
		}
		break;
	case WGDEVICE_A_LISTEN_PORT:
		if (!mnl_attr_validate(attr, MNL_TYPE_U16)) {
			dev->listen_port = mnl_attr_get_u16(attr);
			dev->flags |= WG_DEVICE_HAS_LISTEN_PORT;
		}
		break;
	case WGDEVICE_A_FWMARK:
		if (!mnl_attr_validate(attr, MNL_TYPE_U32)) {
			dev->fwmark = mnl_attr_get_u32(attr);
			dev->flags |= WG_DEVICE_HAS_FWMARK;
		}
		break;
	case WGDEVICE_A_PEERS:
		return mnl_attr_parse_nested(attr, peers_cb, st);
	}
	return MNL_CB_OK;
}

static int device_cb(const struct nlmsghdr *nlh, void *data)
{
	return mnl_attr_parse(nlh, sizeof(struct genlmsghdr), device_attr_cb, data);
}

static int kernel_get(const char *ifname, struct wg_device **out, char *err, size_t errlen)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct read_state st = {0};
	struct nlmsghdr *nlh;
	struct genl g;
	int ret = genl_open(&g);

	if (ret)
		return wg_err(err, errlen, ret, "kernel WireGuard unavailable: %s", strerror(-ret));
	st.dev = calloc(1, sizeof(*st.dev));
	if (!st.dev) {
		genl_close(&g);
		return wg_err(err, errlen, -ENOMEM, "out of memory");
	}
	snprintf(st.dev->name, sizeof(st.dev->name), "%s", ifname);
	nlh = genl_msg(&g, buf, g.family, WG_CMD_GET_DEVICE, NLM_F_DUMP);
	mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, ifname);
	ret = genl_run(&g, nlh, device_cb, &st);
	/* a dump interrupted by a concurrent change is incomplete: say so */
	if (ret && st.err)
		ret = st.err;
	genl_close(&g);
	if (ret) {
		wg_device_free(st.dev);
		return wg_err(err, errlen, ret, "reading %s: %s", ifname, strerror(-ret));
	}
	*out = st.dev;
	return 0;
}

/* --- links ----------------------------------------------------------------- */

static int kernel_create(const char *ifname, unsigned flags, pid_t *pid, char *err, size_t errlen)
{
	int ret = nl_link_add(ifname, WG_GENL_NAME);

	(void)flags;
	*pid = 0;
	return ret ? wg_err(err, errlen, ret, "cannot create WireGuard link %s: %s", ifname,
	                    strerror(-ret))
	           : 0;
}

static int kernel_remove(const char *ifname, pid_t pid, char *err, size_t errlen)
{
	int ret = nl_link_del(ifname);

	(void)pid;
	return ret ? wg_err(err, errlen, ret, "cannot delete link %s: %s", ifname, strerror(-ret))
	           : 0;
}

/* The link outlives any process; one of another kind under the name is refused. */
static int kernel_adopt(const char *ifname, char *err, size_t errlen)
{
	struct wg_device *dev = NULL;
	int ret;

	if (nl_link_index(ifname) < 0)
		return 0;
	ret = kernel_get(ifname, &dev, NULL, 0);
	wg_device_free(dev);
	return ret ? wg_err(err, errlen, -EEXIST,
	                    "%s exists and is not a WireGuard interface (reading it: %s)", ifname,
	                    strerror(-ret))
	           : 1;
}

const struct wg_backend wg_backend_kernel = {
    .name = "kernel",
    .create = kernel_create,
    .remove = kernel_remove,
    .adopt = kernel_adopt,
    .set = kernel_set,
    .get = kernel_get,
};
