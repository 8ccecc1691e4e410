/* The kill switch (`meshgate up --kill-switch`): when the tunnel is down,
 * nothing leaves the device but the WireGuard packets to the gateway nodes'
 * endpoints (UDP to each node's address and port), loopback and DHCP.
 *
 * Its own nftables table, `inet meshgate-IFNAME`, written in one `nft -f`
 * (atomic) at up, when the nodes change and at down, never per packet.
 * The output hook drops by default; it always lets through what leaves by
 * the tunnel interface, loopback, DHCP and the endpoints. The rest (the
 * traffic a split tunnel sends outside it) passes only while a gate is
 * open, and the gate does not depend on the agent being alive: it is an
 * element of a set with a timeout (CL_KILLSWITCH_GATE_S) that every packet
 * arriving through the tunnel renews, in the kernel. The agent's probes
 * draw an answer every 100 ms while the tunnel works; when the gateway
 * stops answering, or the agent dies and nobody probes, the element expires
 * and the device is blocked until packets come through the tunnel again.
 *
 * With a full tunnel the gate opens nothing: everything but the endpoints
 * leaves by the tunnel or not at all, whether it works or not. */
#ifndef MESHGATE_CLIENT_KILLSWITCH_H
#define MESHGATE_CLIENT_KILLSWITCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config_file.h"
#include "err.h"
#include "tunnel.h"

/* How long the gate stays open after the last packet through the tunnel. */
#define CL_KILLSWITCH_GATE_S 2

enum cl_killswitch_state {
	CL_KILLSWITCH_OFF,      /* no table */
	CL_KILLSWITCH_ARMED,    /* full tunnel, working: nothing can leave outside it */
	CL_KILLSWITCH_OPEN,     /* split tunnel, working: the gate is open */
	CL_KILLSWITCH_BLOCKING, /* the tunnel is silent: only the endpoints */
};

/* A gateway node's WireGuard endpoint, resolved. */
struct cl_killswitch_endpoint {
	int family; /* AF_INET or AF_INET6 */
	char addr[46];
	uint16_t port;
};

/* The nft script for the table of ifname: created or brought up to date
 * in place (the gate's set keeps its element). Pure; a malloc'd string. */
char *cl_killswitch_render(const char *ifname, bool full_tunnel,
                           const struct cl_killswitch_endpoint *endpoints, size_t n);

/* Installs or updates the kill switch of the tunnel of p: every node's
 * endpoint (and p's own) resolved, then one `nft -f`. */
int cl_killswitch_apply(const struct cl_tunnel_opts *o, const struct cl_profile *p,
                        struct cl_err *err);

/* The agent's hook, at its start and after each sync: the kill switch of
 * a device that asked for one follows the nodes (errors are logged; the
 * table as it was keeps blocking). */
void cl_killswitch_follow(const struct cl_tunnel_opts *o, const struct cl_profile *p);

/* Removes the table (none there: no error). */
int cl_killswitch_remove(const char *ifname, struct cl_err *err);

enum cl_killswitch_state cl_killswitch_state(const char *ifname, bool full_tunnel);
/* "off", "armed", "open", "blocking" */
const char *cl_killswitch_state_name(enum cl_killswitch_state state);

#endif
