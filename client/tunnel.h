/* The tunnel on this machine: a WireGuard interface (kernel, or a
 * wireguard-go this client starts) with the device's key, the server as its
 * one peer, the address, the link up and a route for each allowed IP; all
 * through lib/wg and lib/netlink. What `down` needs to undo it (the backend,
 * the wireguard-go pid) is kept in STATE_DIR/IFNAME.state. */
#ifndef MESHGATE_CLIENT_TUNNEL_H
#define MESHGATE_CLIENT_TUNNEL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "config_file.h"
#include "err.h"

struct cl_tunnel_opts {
	const char *ifname;
	const char *state_dir;
	const char *backend; /* "auto", "kernel", "userspace" */
};

/* Fails early (before a code is spent) when the interface exists already or
 * no WireGuard backend is usable. */
int cl_tunnel_check(const struct cl_tunnel_opts *o, struct cl_err *err);

/* Brings the tunnel up. On failure everything it made is removed again. */
int cl_tunnel_up(const struct cl_tunnel_opts *o, const struct cl_profile *p, struct cl_err *err);

/* Polls the server peer's last handshake until there is one, timeout_s
 * passes or *stop is set; nudges the tunnel with a packet meanwhile so a
 * handshake starts even without keepalive. Returns 0 and the wait in
 * *waited_ms, or -1 with err set. */
int cl_tunnel_wait_handshake(const struct cl_tunnel_opts *o, const struct cl_profile *p,
                             int timeout_s, volatile sig_atomic_t *stop, long *waited_ms,
                             struct cl_err *err);

/* Is the interface up, and meshgate's (its state file is there)? */
bool cl_tunnel_is_up(const struct cl_tunnel_opts *o);

/* Moves a tunnel that is up from the networks of `old` to those of `p`
 * (the same device, new allowed IPs): the server peer's allowed IPs are
 * replaced in place, so the session goes on without a new handshake, and
 * the routes through the interface follow (withdrawn ones removed, new
 * ones added). CL_EXIT_NOT_FOUND when the tunnel is not up. */
int cl_tunnel_update(const struct cl_tunnel_opts *o, const struct cl_profile *old,
                     const struct cl_profile *p, struct cl_err *err);

/* Replaces the interface's one peer by the server of p (another gateway
 * node: its key and endpoint; p's allowed IPs and keepalive). The caller
 * sends a packet into the tunnel right after, which starts the handshake
 * with the new peer at once. */
int cl_tunnel_switch(const struct cl_tunnel_opts *o, const struct cl_profile *p,
                     struct cl_err *err);

/* The server's peer of p removed and added again in ONE set (the same
 * key, endpoint, allowed IPs and keepalive): its sessions and WireGuard's
 * handshake retry timer go with it, and the new peer handshakes at its
 * next packet. For a peer whose handshake went unanswered (WireGuard would
 * try again only 5 s later) or whose session the gateway no longer has
 * (WireGuard would notice only after 15 s of silence). */
int cl_tunnel_renew_peer(const struct cl_tunnel_opts *o, const struct cl_profile *p,
                         struct cl_err *err);

/* Does the tunnel of p carry everything (the device chose a full tunnel,
 * or the gateway gave 0.0.0.0/0)? Then the routing is full_tunnel.h's. */
bool cl_tunnel_is_full(const struct cl_profile *p);

/* The fwmark of the interface (0 = none): a full tunnel's interface marks
 * its packets, and they leave by the main table's routes. A socket that
 * must reach a gateway's public endpoint outside the tunnel sets the same
 * mark (SO_MARK) when there is one. */
uint32_t cl_tunnel_fwmark(const struct cl_tunnel_opts *o);

/* Whether WireGuard still sends to p's endpoint (it roams to where the
 * gateway's packets come from): 1 kept, 0 roamed away, negative unknown. */
int cl_tunnel_endpoint_kept(const struct cl_tunnel_opts *o, const struct cl_profile *p);

/* A key rotation (rotate.h): the interface's private key becomes `key`;
 * its peer and sessions stay (WireGuard stops sending on them and stages
 * what it sends until a handshake under the new key). */
int cl_tunnel_set_key(const struct cl_tunnel_opts *o, const uint8_t key[CL_KEY_LEN],
                      struct cl_err *err);

/* The interface's latest handshake with the peer `peer_key` (zero: none). */
int cl_tunnel_last_handshake(const struct cl_tunnel_opts *o, const uint8_t peer_key[CL_KEY_LEN],
                             struct timespec *at, struct cl_err *err);

/* The same, and the bytes received from that peer (0 when it is not
 * there). */
int cl_tunnel_peer_heard(const struct cl_tunnel_opts *o, const uint8_t peer_key[CL_KEY_LEN],
                         struct timespec *handshake, uint64_t *rx_bytes, struct cl_err *err);

/* Removes the routes (and a full tunnel's rules), the interface and the
 * wireguard-go it started, and the state file. missing_ok: no error when there is nothing to
 * remove. */
int cl_tunnel_down(const struct cl_tunnel_opts *o, bool missing_ok, struct cl_err *err);

struct cl_tunnel_status {
	bool up;
	char backend[16];
	pid_t pid; /* wireguard-go, 0 for the kernel */
	uint8_t public_key[32];
	bool have_peer;
	char endpoint[64];
	int64_t last_handshake; /* seconds since the epoch, 0 = never */
	uint64_t rx_bytes, tx_bytes;
};

int cl_tunnel_status(const struct cl_tunnel_opts *o, const struct cl_profile *p,
                     struct cl_tunnel_status *st, struct cl_err *err);

#endif
