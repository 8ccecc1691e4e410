/* Path MTU discovery of the agent (docs/client.md, "Path MTU"), in the
 * spirit of RFC 8899: size probes (lib/probe/probe.h) of chosen sizes with
 * DF set, outside the tunnel, to the gateway node's endpoint address at
 * the port it told ("pmtu_port"); a size counts only when the gateway
 * answers it with a datagram as large (so the way back is tested too);
 * ICMP "too big" is a hint for the next size, never a result; a size that
 * goes unanswered PMTU_TRIES times is too big (a black hole looks like
 * that). The tunnel's MTU becomes the largest answered size less
 * WireGuard's overhead (60 over IPv4, 80 over IPv6).
 *
 * It searches at start, after a node switch, when the route or source
 * address to the endpoint changes, when the size in use stops being
 * answered while the tunnel's small probes still are (then the MTU drops
 * to the base at once), and on the raise timer (10 min; env
 * MESHGATE_PMTU_RAISE_MS), which tries for more. All of it runs in the
 * agent's loop: cl_pmtu_tick, and cl_pmtu_read when its socket is
 * readable. */
#ifndef MESHGATE_CLIENT_PMTU_H
#define MESHGATE_CLIENT_PMTU_H

#include <stdbool.h>

#include <jansson.h>

#include "netaddr.h"
#include "tunnel.h"

struct cl_pmtu;

/* Discovery for the tunnel `tun`; fixed_mtu > 0: none, the tunnel keeps
 * that MTU (meshgate up --mtu). NULL when out of memory. */
struct cl_pmtu *cl_pmtu_new(const struct cl_tunnel_opts *tun, unsigned fixed_mtu);
void cl_pmtu_free(struct cl_pmtu *m);

/* The gateway node in use: its endpoint and the port that answers size
 * probes (0: none, no discovery). A new one starts a search (`why` says
 * what changed); the same again changes nothing. */
void cl_pmtu_target(struct cl_pmtu *m, const struct cl_endpoint *endpoint, unsigned port,
                    const char *why);

/* The probe socket to poll for reading (errors too), or -1. */
int cl_pmtu_fd(const struct cl_pmtu *m);
/* Sends, times out and starts searches as due; tunnel_ok: the tunnel's own
 * probes are being answered (a size that fails then is the path's fault). */
void cl_pmtu_tick(struct cl_pmtu *m, bool tunnel_ok);
/* Reads the answers and ICMP errors waiting on the socket. */
void cl_pmtu_read(struct cl_pmtu *m);

/* Is the first search under way (no path MTU known yet)? What goes
 * through the tunnel meanwhile may not fit the path: the agent's config
 * fetch waits for it. */
bool cl_pmtu_first_search(const struct cl_pmtu *m);

/* The tunnel MTU to tell the gateway in the tunnel's probes, 0: none (no
 * result yet, or a gateway that does not take it). */
unsigned cl_pmtu_told(const struct cl_pmtu *m);

/* {"mtu", "path", "at", "state", "why", ...}: what status shows. */
json_t *cl_pmtu_status(const struct cl_pmtu *m);

#endif
