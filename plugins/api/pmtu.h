/* The size-probe responder of path MTU discovery (docs/api.md, "Size
 * probes"): UDP on every address of the gateway at api.pmtu_port, outside
 * the tunnel. A device's agent sends probes of chosen sizes with DF set
 * (lib/probe/probe.h) to the gateway's WireGuard endpoint address; each
 * well-formed one is answered by a datagram exactly as long (never
 * longer: no amplification), sent with DF too and never fragmented here,
 * so an answer proves the size crosses the path both ways. Answers are
 * rate-limited per source address and in all. The tunnel's own probe
 * responder (responder.h) cannot do this: it is inside the tunnel, capped
 * by the tunnel's MTU. */
#ifndef MG_API_PMTU_H
#define MG_API_PMTU_H

#include <meshgate/meshgate.h>

struct api_pmtu;

struct api_pmtu *api_pmtu_new(void);
/* Closes the socket (unwatched) and frees everything. */
void api_pmtu_free(mg_ctx *ctx, struct api_pmtu *p);

/* Listens on 0.0.0.0:port, or stops when port is 0. The same port again
 * changes nothing. 0, or a negative errno with the reason logged. */
int api_pmtu_listen(mg_ctx *ctx, struct api_pmtu *p, unsigned port);

/* Size probes answered, and dropped (malformed or over the rate), so far. */
void api_pmtu_counts(const struct api_pmtu *p, unsigned long *answered, unsigned long *dropped);

#endif
