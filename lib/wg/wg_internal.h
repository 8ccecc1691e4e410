/* What the wg front end and its back ends share; not for other modules. */
#ifndef MESHGATE_WG_INTERNAL_H
#define MESHGATE_WG_INTERNAL_H

#include "wg.h"

struct wg_backend {
	const char *name;
	int (*create)(const char *ifname, unsigned flags, pid_t *pid, char *err, size_t errlen);
	int (*remove)(const char *ifname, pid_t pid, char *err, size_t errlen);
	int (*adopt)(const char *ifname, char *err, size_t errlen);
	int (*set)(const struct wg_device *dev, char *err, size_t errlen);
	int (*get)(const char *ifname, struct wg_device **out, char *err, size_t errlen);
};

extern const struct wg_backend wg_backend_uapi;   /* wg_userspace.c */
extern const struct wg_backend wg_backend_kernel; /* wg_netlink.c */

/* 0 if the generic netlink family "wireguard" resolves, else -errno. */
int wg_kernel_probe(void);

/* --- the device model (wg_model.c), shared by the front end and back ends --- */

/* Writes the message (printf style) into err when there is one; returns code. */
int wg_err(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Strict decimal: digits only, no sign or space, at most max. -EINVAL otherwise. */
int wg_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* Appending to a device being read; capacity doubles at powers of two, so no
 * capacity field is needed in the public structs. NULL / -ENOMEM on failure. */
struct wg_peer *wg_device_append_peer(struct wg_device *dev);
int wg_peer_append_allowed_ip(struct wg_peer *peer, const struct wg_allowed_ip *ip);

/* --- the diff of a reconcile (wg_diff.c) ------------------------------------ */

/* The one write that turns the device have into exactly the peers want:
 * out gets a removal for each peer of have that want lacks, then each peer
 * of want that have lacks or has otherwise (see wg_peers_reconcile), with
 * replace_allowed_ips; nothing for a peer that is right. out->peers is one
 * malloc'ed array (NULL when nothing differs), shallow: allowed IPs point
 * into want; free it alone. Public keys are hashed (SipHash, keyed at
 * random each call: keys come from devices, who must not be able to pick
 * colliding ones) so that the diff is O(n). A key twice in want: -EINVAL. */
int wg_peers_diff(const struct wg_device *have, const struct wg_peer *want, size_t n,
                  struct wg_device *out, struct wg_reconcile_counts *counts, char *err,
                  size_t errlen);

#endif
