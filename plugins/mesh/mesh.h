/* The mesh plugin: every node of a cluster a WireGuard peer of every
 * other (docs/mesh.md). Its pieces:
 *
 *   mesh.c           the plugin: settings, registration, events, services
 *   mesh_record.c    pure: a node's record, its peer, addresses, the SNAT
 *                    rules as iptables-restore text
 *   mesh_system.c    the data plane as the system has it: wireguard-go or
 *                    the kernel through lib/wg, routes through lib/netlink,
 *                    the nat chain through iptables-restore (lib/spawn)
 *
 * The plugin reaches the data plane only through struct mesh_dataplane,
 * so that its unit tests run it against a recording fake. */
#ifndef MESH_H
#define MESH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <meshgate/meshgate.h>

#include "wg.h"

/* The plugin's databases, both cluster-wide: "nodes" holds each node's
 * record under its name; "mesh_addresses" holds {"node": NAME} under each
 * allocated mesh address, the key that makes an allocation happen once. */
#define MESH_DB_NODES     "nodes"
#define MESH_DB_ADDRESSES "mesh_addresses"

/* A node's record while its key switch is announced (docs/rotation.md,
 * "Mesh key"): the next public key and when the node switches to it (ms,
 * its clock; a cluster's clocks are NTP-synced). */
#define MESH_NEXT_KEY  "next_public_key"
#define MESH_SWITCH_AT "switch_at_ms"

/* Seconds between keepalives to each peer: a peer whose last handshake is
 * older than MESH_REACHABLE_S is shown unreachable (WireGuard handshakes
 * again every two minutes while packets flow). */
#define MESH_KEEPALIVE_S 5
#define MESH_REACHABLE_S 180

/* Site subnets one node may route (its peer's allowed IPs: these and its
 * mesh address). */
#define MESH_MAX_SUBNETS 32

/* The nat chain of the plugin, jumped to from POSTROUTING. */
#define MESH_NAT_CHAIN "MG-MESH-SNAT"

/* ---- mesh_record.c ---- */

/* An IPv4 subnet, host order. */
struct mesh_subnet {
	uint32_t net;
	unsigned len;
};

/* "10.99.0.0/24": an IPv4 network (no host bits) with room for two
 * nodes at least. -EINVAL with a message otherwise. */
int mesh_subnet_parse(const char *text, struct mesh_subnet *out, char *err, size_t errlen);
/* Whether the bare IPv4 address `text` is a host address of the subnet
 * (neither its network nor its broadcast address). */
bool mesh_subnet_has_host(const struct mesh_subnet *s, const char *text);
/* The i-th host address of the subnet (i from 0: network + 1), as text;
 * -ERANGE past the last one. */
int mesh_subnet_host(const struct mesh_subnet *s, uint32_t i, char out[INET_ADDRSTRLEN]);
uint32_t mesh_subnet_hosts(const struct mesh_subnet *s);

/* "172.19.0.0/24" or "10.1.2.3/32": an IPv4 prefix with its length. */
int mesh_prefix_check(const char *text, char *err, size_t errlen);

/* The first subnet of `mine` (a JSON array of prefixes) that overlaps one
 * of `theirs` (*which), or NULL: two nodes must not route one site (the
 * interface gives its allowed IPs to whichever peer was set last). */
const char *mesh_subnets_overlap(json_t *mine, json_t *theirs, const char **which);

/* A peer with room for its allowed IPs: the node's mesh address and its
 * site subnets. peer.allowed_ips points into ips: do not copy one. */
struct mesh_peer {
	struct wg_peer peer;
	struct wg_allowed_ip ips[1 + MESH_MAX_SUBNETS];
};

/* The peer of another node's record: its public key, endpoint (when it
 * has one), keepalive and allowed IPs. -EINVAL when the record lacks a
 * valid key or mesh address. */
int mesh_node_peer(json_t *node, struct mesh_peer *out);

/* The text iptables-restore --noflush takes for the nat chain: emptied,
 * then, when both are known, VPN clients' traffic (vpn_subnet) leaving
 * through ifname SNATed to mesh_address. `hooks` is how many jumps to the
 * chain POSTROUTING has now: one is added or the extra ones go. A new
 * string (free it), NULL when out of memory. */
char *mesh_render_nat(const char *ifname, const char *vpn_subnet, const char *mesh_address,
                      size_t hooks);
/* The hook rule as iptables-save prints it. */
#define MESH_NAT_HOOK "-A POSTROUTING -j " MESH_NAT_CHAIN

/* ---- the data plane ---- */

struct mesh_dataplane {
	/* A fresh interface with this key and port (one left by a crash is
	 * replaced: its routes may be stale). */
	int (*up)(void *arg, const char *ifname, const wg_key private_key, int port, char *err,
	          size_t errlen);
	/* Its address ("10.99.0.2/24"), the one it keeps. */
	int (*address)(void *arg, const char *ifname, const char *prefix, char *err, size_t errlen);
	/* Exactly these peers (lib/wg's reconcile: only the differences). */
	int (*peers_reconcile)(void *arg, const char *ifname, const struct wg_peer *peers, size_t n,
	                       char *err, size_t errlen);
	/* One peer set (its allowed IPs exactly these), or removed; the others
	 * untouched. */
	int (*peer_set)(void *arg, const char *ifname, const struct wg_peer *peer, char *err,
	                size_t errlen);
	int (*peer_remove)(void *arg, const char *ifname, const wg_key key, char *err,
	                   size_t errlen);
	/* The peer of old_key replaced by `peer` in one write: another node
	 * switched its key (lib/wg's wg_peer_replace). */
	int (*peer_replace)(void *arg, const char *ifname, const wg_key old_key,
	                    const struct wg_peer *peer, char *err, size_t errlen);
	/* The interface's private key: this node switches its key (sessions go
	 * on receiving; what it sends waits for the peers' new handshakes). */
	int (*key)(void *arg, const char *ifname, const wg_key private_key, char *err,
	           size_t errlen);
	/* A route to subnet through the interface, added (one that is there
	 * already counts as added) or removed (one that is gone too). */
	int (*route)(void *arg, const char *ifname, const char *subnet, bool add, char *err,
	             size_t errlen);
	/* The nat chain from mesh_render_nat's text (NULL: chain and hook
	 * removed). */
	int (*nat)(void *arg, const char *ifname, const char *vpn_subnet, const char *mesh_address,
	           char *err, size_t errlen);
	/* The interface's peers as it has them (handshakes). */
	int (*read)(void *arg, const char *ifname, struct wg_device **dev, char *err,
	            size_t errlen);
	/* Takes the interface down (its routes go with it). */
	void (*down)(void *arg, const char *ifname);
};

/* ---- mesh_system.c ---- */

struct mesh_system;
/* The real data plane: `backend` as the wireguard plugin's ("auto",
 * "userspace", "kernel"), iptables programs by name. */
int mesh_system_new(const char *backend, const char *iptables_restore, const char *iptables_save,
                    struct mesh_system **out, char *err, size_t errlen);
void mesh_system_free(struct mesh_system *sys);
extern const struct mesh_dataplane mesh_system_dataplane;

/* ---- mesh.c ---- */

/* The plugin's init over a given data plane (the descriptor's init uses
 * the system's; tests a fake). `dp_arg` stays the caller's. */
int mesh_init_with(mg_ctx *ctx, const struct mesh_dataplane *dp, void *dp_arg);

#endif
