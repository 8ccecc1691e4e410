#include "responder.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "nl.h"
#include "probe.h"

#define DEVICES_DB "devices" /* preauth's: id -> {"address": "IP/32", "role", "state"} */
#define POLICY_DB  "policy"  /* the firewall's: role -> {"subnets", ...} */
/* Datagrams read per wake-up, so that a flood cannot starve the loop. */
#define BATCH 64

struct api_responder {
	int fd; /* -1: not listening */
	char gateway[64], ifname[32];
	unsigned port;
	char node[PROBE_NAME_MAX + 1], active[PROBE_NAME_MAX + 1];
	json_t *common;    /* see api_responder_set_common */
	json_t *roles;     /* device address ("10.0.0.5") -> role ("" none) */
	json_t *addresses; /* device id -> its address in roles */
	json_t *epochs;    /* role -> epoch (integer), computed when first asked */
	json_t *mtus;      /* device address -> the MTU it told, when a route carries it */
	json_t *rotations; /* device address -> its key rotation's part of its epoch */
	unsigned long answered, dropped;
};

struct api_responder *api_responder_new(void)
{
	struct api_responder *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->fd = -1;
	r->roles = json_object();
	r->addresses = json_object();
	r->epochs = json_object();
	r->mtus = json_object();
	r->rotations = json_object();
	return r;
}

static void stop_listening(mg_ctx *ctx, struct api_responder *r)
{
	if (r->fd >= 0) {
		mg_fd_unwatch(ctx, r->fd);
		close(r->fd);
	}
	r->fd = -1;
	r->gateway[0] = r->ifname[0] = '\0';
	r->port = 0;
}

void api_responder_free(mg_ctx *ctx, struct api_responder *r)
{
	if (!r)
		return;
	stop_listening(ctx, r);
	json_decref(r->common);
	json_decref(r->roles);
	json_decref(r->addresses);
	json_decref(r->epochs);
	json_decref(r->mtus);
	json_decref(r->rotations);
	free(r);
}

void api_responder_set_nodes(struct api_responder *r, const char *node, const char *active)
{
	snprintf(r->node, sizeof(r->node), "%s", node);
	snprintf(r->active, sizeof(r->active), "%s", active ? active : "");
}

void api_responder_set_common(struct api_responder *r, json_t *common)
{
	json_decref(r->common);
	r->common = json_incref(common);
	json_object_clear(r->epochs);
}

void api_responder_forget_role(struct api_responder *r, const char *role)
{
	if (role)
		json_object_del(r->epochs, role);
	else
		json_object_clear(r->epochs);
}

void api_responder_counts(const struct api_responder *r, unsigned long *answered,
                          unsigned long *dropped)
{
	*answered = r->answered;
	*dropped = r->dropped;
}

/* ---- the devices' path MTU ---- */

static unsigned interface_mtu(const struct api_responder *r)
{
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", r->ifname);
	return r->fd >= 0 && !ioctl(r->fd, SIOCGIFMTU, &ifr) ? (unsigned)ifr.ifr_mtu : 0;
}

/* A device's agent tells the MTU its path takes (docs/client.md, "Path
 * MTU"): below the interface's, a host route through the interface with
 * that MTU, so that the gateway's own TCP and the firewall's MSS clamp
 * (TCPMSS --clamp-mss-to-pmtu) size what goes to the device to fit; one
 * netlink message when the told MTU changes, none per probe. */
static void follow_mtu(mg_ctx *ctx, struct api_responder *r, const char *ip, unsigned mtu)
{
	json_t *had = json_object_get(r->mtus, ip);
	unsigned own = interface_mtu(r);
	if (!mtu || !own || (had && (unsigned)json_integer_value(had) == mtu))
		return;
	/* at the full MTU no route; also the first time after a restart, when
	 * one may be left from before */
	int rc = mtu < own ? nl_route_replace_mtu(ip, r->ifname, mtu)
	                   : nl_route_del(ip, r->ifname, NULL);
	if (rc && rc != -ESRCH && rc != -ENOENT) {
		mg_log_limited(ctx, MG_LOG_WARN, "mtu route", "cannot set the route MTU of %s: %s",
		               ip, strerror(-rc));
		return;
	}
	json_object_set_new(r->mtus, ip, json_integer(mtu));
	mg_info(ctx, "device %s: path MTU %u%s", ip, mtu, mtu < own ? " (a route of its own)" : "");
}

static void forget_mtu(struct api_responder *r, const char *ip)
{
	if (json_object_get(r->mtus, ip)) {
		nl_route_del(ip, r->ifname, NULL); /* none at the full MTU: ESRCH */
		json_object_del(r->mtus, ip);
	}
}

/* ---- devices ---- */

static void forget_device(struct api_responder *r, const char *id)
{
	const char *address = json_string_value(json_object_get(r->addresses, id));
	if (address) {
		forget_mtu(r, address);
		json_object_del(r->roles, address);
		json_object_del(r->rotations, address);
	}
	json_object_del(r->addresses, id);
}

/* An active device's address (host part) and role into the maps. */
static void learn_device(struct api_responder *r, const char *id, json_t *device)
{
	const char *state = json_string_value(json_object_get(device, "state"));
	const char *address = json_string_value(json_object_get(device, "address"));
	const char *role = json_string_value(json_object_get(device, "role"));
	char host[64];
	forget_device(r, id);
	if (!state || strcmp(state, "active") || !address)
		return; /* only a device with a tunnel gets answers */
	snprintf(host, sizeof(host), "%.*s", (int)strcspn(address, "/"), address);
	json_object_set_new(r->roles, host, json_string(role ? role : ""));
	json_object_set_new(r->addresses, id, json_string(host));
	/* A role's devices share its epoch; a device asked to rotate its key
	 * (preauth's counters, docs/rotation.md) must see its own change, and
	 * another once it has rotated: both counters go into its epoch. */
	json_int_t requested = json_integer_value(json_object_get(device, "rotate_requested"));
	json_int_t rotated = json_integer_value(json_object_get(device, "rotated"));
	if (requested)
		json_object_set_new(r->rotations, host,
		                    json_integer(requested * 2 + (requested > rotated)));
}

static int learn_one(const char *key, json_t *value, void *arg)
{
	learn_device(arg, key, value);
	return 0;
}

int api_responder_load_devices(mg_ctx *ctx, struct api_responder *r)
{
	mg_txn *txn;
	int rc = mg_txn_begin(ctx, MG_TXN_READ, &txn);
	if (rc)
		return rc;
	json_object_clear(r->roles);
	json_object_clear(r->rotations);
	json_object_clear(r->addresses);
	rc = mg_state_foreach(ctx, txn, DEVICES_DB, NULL, learn_one, r);
	mg_txn_abort(ctx, txn);
	return rc == -ENOENT ? 0 : rc; /* no preauth: no devices */
}

void api_responder_device_changed(struct api_responder *r, json_t *event)
{
	const char *id = json_string_value(json_object_get(event, "id"));
	if (id)
		learn_device(r, id, event); /* "deleted" or "pending": forgotten */
}

/* ---- answers ---- */

/* The role's epoch, computed once after each change of its inputs. */
static uint64_t role_epoch(mg_ctx *ctx, struct api_responder *r, const char *role)
{
	json_t *cached = json_object_get(r->epochs, role);
	if (cached)
		return (uint64_t)json_integer_value(cached);
	json_t *policy = NULL;
	mg_txn *txn;
	if (*role && !mg_txn_begin(ctx, MG_TXN_READ, &txn)) {
		mg_state_get(ctx, txn, POLICY_DB, role, &policy);
		mg_txn_abort(ctx, txn);
	}
	uint64_t epoch = api_config_epoch(r->common, policy);
	json_decref(policy);
	/* stored as the integer's bits: only compared, never shown */
	json_object_set_new(r->epochs, role, json_integer((json_int_t)epoch));
	return epoch;
}

static void answer_one(mg_ctx *ctx, struct api_responder *r, const uint8_t *buf, size_t len,
                       const struct sockaddr_in *from)
{
	char ip[INET_ADDRSTRLEN];
	struct probe_answer a = {0};
	uint8_t out[PROBE_ANSWER_MAX];
	unsigned mtu;
	inet_ntop(AF_INET, &from->sin_addr, ip, sizeof(ip));
	json_t *role = json_object_get(r->roles, ip);
	if (!role || probe_request_decode_mtu(buf, len, &a.nonce, &mtu)) {
		r->dropped++;
		mg_log_limited(ctx, MG_LOG_DEBUG, "probe dropped", "probe from %s dropped: %s", ip,
		               role ? "not a probe" : "not a device");
		return;
	}
	follow_mtu(ctx, r, ip, mtu);
	a.epoch = role_epoch(ctx, r, json_string_value(role)) ^
	          (uint64_t)json_integer_value(json_object_get(r->rotations, ip));
	if (!a.epoch) /* 0 is no epoch */
		a.epoch = 1;
	snprintf(a.node, sizeof(a.node), "%s", r->node);
	snprintf(a.active, sizeof(a.active), "%s", r->active);
	int n = probe_answer_encode(&a, out);
	if (n > 0 && sendto(r->fd, out, (size_t)n, MSG_DONTWAIT, (const struct sockaddr *)from,
	                    sizeof(*from)) == n)
		r->answered++;
}

static void on_readable(mg_ctx *ctx, int fd, int events, void *arg)
{
	struct api_responder *r = arg;
	(void)events;
	for (int i = 0; i < BATCH; i++) {
		uint8_t buf[PROBE_REQUEST_LEN + 1];
		struct sockaddr_in from;
		socklen_t fromlen = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from,
		                     &fromlen);
		if (n < 0)
			return;
		if (from.sin_family == AF_INET)
			answer_one(ctx, r, buf, (size_t)n, &from);
	}
}

int api_responder_listen(mg_ctx *ctx, struct api_responder *r, const char *gateway, unsigned port,
                         const char *ifname)
{
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1;
	if (!gateway || !port || !ifname) {
		stop_listening(ctx, r);
		return 0;
	}
	if (r->fd >= 0 && !strcmp(gateway, r->gateway) && port == r->port &&
	    !strcmp(ifname, r->ifname))
		return 0;
	stop_listening(ctx, r);
	if (inet_pton(AF_INET, gateway, &addr.sin_addr) != 1) {
		mg_warn(ctx, "no probes: the gateway address %s is not IPv4", gateway);
		return -EAFNOSUPPORT;
	}
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* the gateway address comes with the wireguard interface, maybe
	 * later; and only what arrives through the tunnel is a probe */
	setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname)) ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		int rc = -errno;
		mg_warn(ctx, "no probes: cannot listen on %s:%u on %s: %s", gateway, port, ifname,
		        strerror(-rc));
		close(fd);
		return rc;
	}
	int rc = mg_fd_watch(ctx, fd, MG_FD_READ, on_readable, r);
	if (rc) {
		close(fd);
		return rc;
	}
	r->fd = fd;
	snprintf(r->gateway, sizeof(r->gateway), "%s", gateway);
	snprintf(r->ifname, sizeof(r->ifname), "%s", ifname);
	r->port = port;
	mg_info(ctx, "answering probes on %s:%u (through %s)", gateway, port, ifname);
	return 0;
}
