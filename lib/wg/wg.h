/*
 * wg: drive WireGuard interfaces.
 *
 * One front over two back ends: the Linux kernel module through generic
 * netlink, and the cross-platform userspace API (UAPI socket of wireguard-go,
 * boringtun, macOS, Windows). Every function returns 0 (or a count) on
 * success and a negative errno on failure; when the caller passes an error
 * buffer it receives a sentence meant for the operator.
 */
#ifndef MESHGATE_WG_H
#define MESHGATE_WG_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#define WG_KEY_LEN     32
#define WG_KEY_B64_LEN 45 /* 44 characters and the NUL */
#define WG_KEY_HEX_LEN 65 /* 64 characters and the NUL */

typedef uint8_t wg_key[WG_KEY_LEN];

/* --- keys ---------------------------------------------------------------- */

/* A fresh Curve25519 private key, clamped. Fails only if libsodium cannot start. */
int wg_key_generate_private(wg_key priv);
/* A random 32-byte preshared key. */
int wg_key_generate_preshared(wg_key psk);
int wg_key_public_from_private(wg_key pub, const wg_key priv);
void wg_key_to_base64(char out[WG_KEY_B64_LEN], const wg_key key);
/* Exactly one standard, padded base64 key of 32 bytes, nothing around it. */
int wg_key_from_base64(wg_key key, const char *b64);
void wg_key_to_hex(char out[WG_KEY_HEX_LEN], const wg_key key);
/* Exactly 64 hex digits (either case). */
int wg_key_from_hex(wg_key key, const char *hex);
bool wg_key_is_zero(const wg_key key);
bool wg_key_equal(const wg_key a, const wg_key b);

/* --- the device model ------------------------------------------------------ */

struct wg_allowed_ip {
	sa_family_t family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr ip4;
		struct in6_addr ip6;
	};
	uint8_t cidr;
};

union wg_endpoint {
	struct sockaddr sa; /* sa_family AF_UNSPEC: no endpoint */
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
};

enum wg_peer_flags {
	WG_PEER_HAS_PRESHARED_KEY = 1u << 0,
	WG_PEER_HAS_KEEPALIVE = 1u << 1,
	WG_PEER_REMOVE = 1u << 2,          /* set: delete this peer */
	WG_PEER_REPLACE_ALLOWED = 1u << 3, /* set: drop its allowed IPs first */
	WG_PEER_UPDATE_ONLY = 1u << 4,     /* set: only if it exists already */
};

struct wg_peer {
	wg_key public_key;
	wg_key preshared_key;
	unsigned flags;
	union wg_endpoint endpoint;
	uint16_t persistent_keepalive; /* seconds, 0 = off */
	struct wg_allowed_ip *allowed_ips;
	size_t n_allowed_ips;
	/* filled by a read, ignored by a write */
	struct timespec last_handshake;
	uint64_t rx_bytes, tx_bytes;
};

enum wg_device_flags {
	WG_DEVICE_HAS_PRIVATE_KEY = 1u << 0,
	WG_DEVICE_HAS_PUBLIC_KEY = 1u << 1,
	WG_DEVICE_HAS_LISTEN_PORT = 1u << 2,
	WG_DEVICE_HAS_FWMARK = 1u << 3,
	WG_DEVICE_REPLACE_PEERS = 1u << 4, /* set: the peer list is the whole truth */
};

struct wg_device {
	char name[IF_NAMESIZE];
	unsigned flags;
	wg_key private_key, public_key;
	uint16_t listen_port;
	uint32_t fwmark;
	struct wg_peer *peers;
	size_t n_peers;
};

/* Frees a device returned by wg_device_get() or wg_uapi_parse_get(). */
void wg_device_free(struct wg_device *dev);
/* The peer with that public key, or NULL. Linear: for tests and small lists. */
const struct wg_peer *wg_device_find_peer(const struct wg_device *dev, const wg_key pub);

/* The same address and port (an IPv6 one in the same scope). */
bool wg_endpoint_equal(const union wg_endpoint *a, const union wg_endpoint *b);

/* "10.0.0.2/32", "fd00::2/128"; a bare address gets the full prefix. */
int wg_allowed_ip_parse(struct wg_allowed_ip *out, const char *text);
/* "192.0.2.1:51820", "[2001:db8::1]:51820", numeric only (no DNS here). */
int wg_endpoint_parse(union wg_endpoint *out, const char *text);

/* --- back ends ------------------------------------------------------------- */

struct wg_backend; /* a static table of operations; never freed */

/* name: "kernel", "userspace" or "auto" (kernel if the genl family
 * "wireguard" resolves, else userspace). */
int wg_backend_select(const char *name, const struct wg_backend **out, char *err, size_t errlen);
const char *wg_backend_name(const struct wg_backend *be);

enum wg_create_flags {
	/* userspace: the daemon gets SIGTERM when the thread that created it exits */
	WG_CREATE_DIE_WITH_PARENT = 1u << 0,
	/* userspace: the daemon leads a session of its own and is tied to nothing
	 * of ours, so that it outlives us: a restart of the control plane keeps
	 * the data plane (found again by wg_interface_adopt) */
	WG_CREATE_DETACH = 1u << 1,
};

/* Looks for IFNAME already up and served in the calling network namespace,
 * as a restart finds the interface that outlived the previous process.
 * 1: it is there and answers (use it as it is); 0: it is not (a socket left
 * behind by a daemon that died is removed); a negative errno when the name
 * is taken by something that cannot be used, e.g. a daemon serving IFNAME in
 * another network namespace (wireguard-go's sockets are shared by all). */
int wg_interface_adopt(const struct wg_backend *be, const char *ifname, char *err, size_t errlen);

/* Creates the interface: an rtnetlink link of kind wireguard, or a
 * `wireguard-go -f IFNAME` child of this process, in the calling network
 * namespace, waited for until its UAPI socket answers. *pid gets the child
 * (0 for the kernel). -EEXIST if the interface is already served. */
int wg_interface_create(const struct wg_backend *be, const char *ifname, unsigned flags, pid_t *pid,
                        char *err, size_t errlen);
/* Deletes it: the link for the kernel; for userspace, stops the child pid
 * (SIGTERM, then SIGKILL after 2 s) and reaps it. */
int wg_interface_delete(const struct wg_backend *be, const char *ifname, pid_t pid, char *err,
                        size_t errlen);

/* Raw write: whatever dev's flags say, in one transaction (one UAPI
 * exchange, or one netlink message train for the kernel). */
int wg_device_set(const struct wg_backend *be, const struct wg_device *dev, char *err,
                  size_t errlen);
/* Reads the device back. *out is freed with wg_device_free(). */
int wg_device_get(const struct wg_backend *be, const char *ifname, struct wg_device **out,
                  char *err, size_t errlen);

/* Private key, listen port (< 0: leave it) and fwmark (< 0: leave it). */
int wg_device_configure(const struct wg_backend *be, const char *ifname, const wg_key private_key,
                        int listen_port, int64_t fwmark, char *err, size_t errlen);
/* What a reconcile found different on the device, and so wrote. */
struct wg_reconcile_counts {
	size_t added, changed, removed;
};

/* Full reconcile: after it the device has exactly these peers. The device
 * is read once, compared with the list (hashed by public key, O(n)) and
 * only the differences are written, in one transaction: missing peers
 * added, extra ones removed, a peer whose allowed IPs (exactly the list),
 * preshared key (none when not given), keepalive (when given) or endpoint
 * (when given) differ set again. A peer that is right is not written, so
 * its session goes on; an unchanged device gets no write at all. Never
 * replace_peers. counts may be NULL. A key listed twice is -EINVAL. */
int wg_peers_reconcile(const struct wg_backend *be, const char *ifname, const struct wg_peer *peers,
                       size_t n, struct wg_reconcile_counts *counts, char *err, size_t errlen);
/* Adds or updates these peers (each one's allowed IPs become exactly the
 * given list); every other peer is left alone, sessions included. */
int wg_peers_upsert(const struct wg_backend *be, const char *ifname, const struct wg_peer *peers,
                    size_t n, char *err, size_t errlen);
/* A peer's key changes: `peer` (its allowed IPs exactly the given list,
 * taken over from the old peer) added and the peer of old_key removed, in
 * that order and in ONE write, so that the allowed IPs never belong to
 * nobody (docs/rotation.md: the follower's side of a key switch). With
 * old_key the peer's own key, the peer is set anew: removed, then added
 * (its session dropped, a handshake at its next packet). Every other peer
 * is left alone. */
int wg_peer_replace(const struct wg_backend *be, const char *ifname, const wg_key old_key,
                    const struct wg_peer *peer, char *err, size_t errlen);
/* Removes these peers; the others are left alone. */
int wg_peers_remove(const struct wg_backend *be, const char *ifname, const wg_key *keys, size_t n,
                    char *err, size_t errlen);

#endif
