/* A gateway node with several uplinks (docs/multiwan.md): the gateways
 * list gives each node every endpoint, best first. When its probes go
 * unanswered the agent tries the same node's other endpoints (the session
 * goes on: same key, new address) before it moves to another node, and on
 * a re-sync it follows the node's new best endpoint. Pure functions. */
#ifndef MESHGATE_CLIENT_WAN_H
#define MESHGATE_CLIENT_WAN_H

#include <stdbool.h>

#include "reply.h"

/* The endpoint of g to try now that `in_use` is silent: the next in g's
 * list after it. *tried counts the endpoints tried since the last answer
 * (the caller zeroes it on an answer or another node); once every one has
 * been, NULL when `other_nodes` (time to move on), else the round starts
 * again. NULL too for a node of one endpoint. */
const struct cl_endpoint *cl_wan_fallback(const struct cl_gateway *g,
                                          const struct cl_endpoint *in_use, unsigned *tried,
                                          bool other_nodes);

/* After a re-sync: the node's best endpoint when the gateway changed it
 * (`before` and `after` are the same node's entries) and it is not the
 * one in use; else NULL. An endpoint the agent chose itself while the
 * gateway's view stayed the same is kept. */
const struct cl_endpoint *cl_wan_follow(const struct cl_gateway *before,
                                        const struct cl_gateway *after,
                                        const struct cl_endpoint *in_use);

#endif
