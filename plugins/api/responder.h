/* The probe responder (lib/probe/probe.h): UDP on the gateway address
 * inside the tunnel, at api.probe_port. A device's agent probes its node a
 * few times a second; the answer names this node, the active node and the
 * device's config epoch, so that the agent switches nodes and fetches its
 * config only when something changed. Every answer is O(1): the devices
 * (address -> role) and each role's epoch are kept in memory and follow
 * the state events; only devices get answers, only through the tunnel. */
#ifndef MG_API_RESPONDER_H
#define MG_API_RESPONDER_H

#include <meshgate/meshgate.h>

struct api_responder;

struct api_responder *api_responder_new(void);
/* Closes the socket (unwatched) and frees everything. */
void api_responder_free(mg_ctx *ctx, struct api_responder *r);

/* Listens on gateway:port bound to the interface `ifname` (the wireguard
 * plugin's), or stops listening when gateway is NULL or port 0. The same
 * address again changes nothing. 0, or a negative errno with the reason
 * logged (the API serves on without probes). */
int api_responder_listen(mg_ctx *ctx, struct api_responder *r, const char *gateway, unsigned port,
                         const char *ifname);

/* The node answering and the active node ("" none). */
void api_responder_set_nodes(struct api_responder *r, const char *node, const char *active);
/* What every device's config shares (a digest of it goes into every
 * epoch): every role's epoch is computed again when asked next. */
void api_responder_set_common(struct api_responder *r, json_t *common);
/* A role's policy changed (NULL: every role's). */
void api_responder_forget_role(struct api_responder *r, const char *role);

/* Reads every device from state (at start); then each device.changed
 * event (preauth's, for this node's changes and other nodes') carries the
 * members that matter, so the device is not read again. */
int api_responder_load_devices(mg_ctx *ctx, struct api_responder *r);
void api_responder_device_changed(struct api_responder *r, json_t *event);

/* Probes answered and dropped (not a probe, not a device) so far. */
void api_responder_counts(const struct api_responder *r, unsigned long *answered,
                          unsigned long *dropped);

#endif
