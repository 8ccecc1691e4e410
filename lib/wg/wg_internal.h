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
	/* Optional: the peers handed on one by one as they are read, none kept
	 * (the UAPI's streamed answer). Without it a reconcile walks get's. */
	int (*get_peers)(const char *ifname, int (*on_peer)(const struct wg_peer *peer, void *arg),
	                 void *arg, char *err, size_t errlen);
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

/* The one write that turns the device into exactly the peers want, worked
 * out while the device's peers stream by: wg_diff_begin with the list,
 * wg_diff_peer with each peer the device has (as it is read; nothing of it
 * is kept but the key of one the list lacks), wg_diff_end for the write:
 * a removal for each peer the list lacks, then each peer of want that the
 * device lacks or has otherwise (see wg_peers_reconcile), with
 * replace_allowed_ips; nothing for a peer that is right. Public keys are
 * hashed (SipHash, keyed at random each time: keys come from devices, who
 * must not be able to pick colliding ones) so that the diff is O(n). */
struct wg_diff {
	const struct wg_peer *want;
	size_t n;
	uint32_t *slots; /* open addressing: index in want + 1, 0 when empty */
	size_t mask;
	unsigned char hash_key[16];
	unsigned char *seen; /* what the device has of each wanted peer */
	wg_key *gone;        /* the device's peers that want lacks */
	size_t n_gone, gone_cap;
};

/* A key twice in want: -EINVAL. */
int wg_diff_begin(struct wg_diff *d, const struct wg_peer *want, size_t n, char *err,
                  size_t errlen);
/* One peer of the device; 0 or -ENOMEM. Fits wg_peer_fn. */
int wg_diff_peer(const struct wg_peer *have, void *diff);
/* out->peers is one malloc'ed array (NULL when nothing differs), shallow:
 * allowed IPs point into want; free it alone. Frees d, as does
 * wg_diff_free for a diff given up. */
int wg_diff_end(struct wg_diff *d, const char *ifname, struct wg_device *out,
                struct wg_reconcile_counts *counts, char *err, size_t errlen);
void wg_diff_free(struct wg_diff *d);

/* The diff of a device read whole. */
int wg_peers_diff(const struct wg_device *have, const struct wg_peer *want, size_t n,
                  struct wg_device *out, struct wg_reconcile_counts *counts, char *err,
                  size_t errlen);

#endif
