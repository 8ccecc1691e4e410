/* Following a gateway node's key switch (docs/rotation.md, "Gateway
 * key"): the device config tells the node's next public key and how long
 * until the node switches to it (switch_in_ms, from the answer: the
 * device's own clock does not matter). The agent replaces the node's peer
 * once the node has switched, never before: a handshake sent to a key the
 * node does not have yet is answered by nothing, and WireGuard waits 5 s
 * to retry. A node's switch takes time (wireguard-go computes a secret per
 * peer: most of a second with 10,000), during which its sessions still
 * carry both ways; at its end the node sends nothing more on them (it
 * stages) and its answers to the in-tunnel probes stop. So the agent
 * replaces the peer at the first probe left unanswered, with nothing else
 * received from the node meanwhile, from a margin after the switch time
 * on, or CL_ROTATE_GW_WAIT_MS after that at the latest: what each side
 * stages is then about one probe interval, whatever the switch takes.
 * The agent does not leave the node for the probes unanswered around the
 * switch. */
#ifndef MESHGATE_CLIENT_ROTATE_GW_H
#define MESHGATE_CLIENT_ROTATE_GW_H

#include <stdbool.h>

#include "reply.h"

/* After the node's switch time: the node switches first, always. */
#define CL_ROTATE_GW_MARGIN_MS 100
/* The longest the agent waits for the node's answers to stop after the
 * margin: a switch of 10,000 peers takes 0.6-2 s here. */
#define CL_ROTATE_GW_WAIT_MS 3000
/* The longest the agent holds still for the switch's handshake. */
#define CL_ROTATE_GW_HOLD_MS 2000
/* No handshake under the new key this long after the peer was replaced:
 * the first handshake was lost (the node switched later than the margin
 * and dropped it), and WireGuard would try again only 5 s later
 * (REKEY_TIMEOUT). The peer is set anew then, which handshakes at once, at
 * most CL_ROTATE_GW_RENEWS times. Not sooner: a node with thousands of
 * peers takes most of a second to switch (wireguard-go computes a secret
 * per peer; measured 0.6-0.7 s with 10,000 on a 2-core machine, up to 2 s
 * when loaded) and answers the first handshake then, while a set anew
 * throws that handshake and the packets staged for it away (measured with
 * 2,000 peers on a loaded gateway: at 300 ms, 19-45 pings lost per device,
 * against 0-6 at 2 s). */
#define CL_ROTATE_GW_RENEW_MS 2000
#define CL_ROTATE_GW_RENEWS   3

struct cl_rotate_gw {
	bool planned;
	char node[CL_NODE_NAME_MAX];
	uint8_t key[CL_KEY_LEN];         /* the node's next public key */
	long long at;                    /* monotonic ms: the earliest the peer is replaced */
	long long latest;                /* monotonic ms: the latest */
	long long hold_from, hold_until; /* monotonic ms: no leaving the node */
	long long check_at; /* monotonic ms: the new peer's handshake looked at; 0 none */
	int renews_left;
	bool quiet;        /* the node stopped sending (cl_rotate_gw_look) */
	bool rx_known;     /* rx_bytes was read at the last look */
	uint64_t rx_bytes; /* received from the node's peer, at the last look */
};

/* After a device config read at `received` (monotonic ms): plans the
 * switch of node `node` (the one in use) when `nodes` (the answer's) tells
 * a next key for it that `peer_key` (the tunnel's peer) is not. A plan
 * already made for the same key stays; one for another key is replaced.
 * True when a switch is planned. */
bool cl_rotate_gw_plan(struct cl_rotate_gw *r, const struct cl_nodes *nodes, const char *node,
                       const uint8_t peer_key[CL_KEY_LEN], long long received);

/* At each probe tick of a planned switch, from a probe interval before
 * its earliest time on: whether the node has stopped sending, i.e. the
 * last probe went unanswered (`unanswered`) AND nothing at all came from
 * it since the look before (`rx_bytes`: received from its peer, NULL when
 * unknown). An answer that is only late (a loaded node) is no switch: the
 * answers to what else the device sends still come, and replacing the
 * peer then loses what the node still sends on the old session (seen on
 * CI's machine: 1 ping of 1500). Kept in r->quiet for cl_rotate_gw_due. */
bool cl_rotate_gw_look(struct cl_rotate_gw *r, bool unanswered, const uint64_t *rx_bytes);

/* True once, when the planned switch is due at `now`: from its earliest
 * time on, when `node_silent` (cl_rotate_gw_look), else at its latest. The caller replaces the peer
 * then; the hold goes on until an answer or CL_ROTATE_GW_HOLD_MS, and the new peer's handshake is
 * to be checked CL_ROTATE_GW_RENEW_MS later. */
bool cl_rotate_gw_due(struct cl_rotate_gw *r, long long now, bool node_silent);

/* Whether the agent must not leave the node for silence at `now`. */
bool cl_rotate_gw_holds(const struct cl_rotate_gw *r, long long now);

/* The node answered: a hold after the switch ends. */
void cl_rotate_gw_answered(struct cl_rotate_gw *r, long long now);

/* Whether the new peer's handshake is to be checked at `now`. */
bool cl_rotate_gw_check_due(const struct cl_rotate_gw *r, long long now);

/* The check at `now`: `handshook` tells whether the new peer has a
 * handshake. True when the caller sets the peer anew (a try is used, the
 * next check comes CL_ROTATE_GW_RENEW_MS later); false when it handshook
 * or the tries are used up (the checks end: WireGuard's own retries
 * remain). */
bool cl_rotate_gw_renew(struct cl_rotate_gw *r, bool handshook, long long now);

#endif
