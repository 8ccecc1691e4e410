/* The wireguard plugin: owns the gateway's WireGuard interface. It gets
 * the server key from the secret service (secret.get: made there on first
 * use, never read from a file here), brings the interface up and keeps its peers equal to the
 * active devices in state: everything at start in one transaction, then as `device.changed` events
 * arrive (the events queued together written together, in one set), plus a periodic diff that
 * repairs any drift. A new version of the server key is switched to at a
 * time published ahead (rotate.c). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <meshgate/meshgate.h>
#include <sodium.h>

#include "iface.h"
#include "metrics.h"
#include "peers.h"
#include "rotate.h"
#include "secret.h"
#include "takeover.h"
#include "wg.h"

struct wgp {
	const struct wg_backend *backend;
	char ifname[IF_NAMESIZE];
	pid_t daemon_pid;    /* wireguard-go when we started it; 0 when adopted */
	bool remove_on_stop; /* wireguard.on_stop = "remove" */
	wg_key private_key, public_key;
	int resync_timer;
	struct wgp_peers changes;       /* from device.changed events, not yet written */
	bool changes_posted;            /* apply_changes is queued to run */
	struct wgp_rotation rotation;   /* the server key's next version */
	struct wgp_takeovers takeovers; /* devices' new keys awaiting a handshake */
};

static const char *setting(mg_ctx *ctx, const char *name)
{
	return json_string_value(json_object_get(mg_config(ctx), name));
}

static int setting_int(mg_ctx *ctx, const char *name)
{
	return (int)json_integer_value(json_object_get(mg_config(ctx), name));
}

/* ---- the desired peers, from state ---- */

static int collect_peer(const char *key, json_t *device, void *arg)
{
	(void)key;
	return wgp_peers_add_device(arg, device);
}

static int desired_peers(mg_ctx *ctx, struct wgp_peers *l)
{
	mg_txn *txn;
	memset(l, 0, sizeof(*l));
	int rc = mg_txn_begin(ctx, MG_TXN_READ, &txn);
	if (rc)
		return rc;
	rc = mg_state_foreach(ctx, txn, "devices", NULL, collect_peer, l);
	mg_txn_abort(ctx, txn);
	return rc;
}

/* ---- reconciling ---- */

/* Makes the interface's peers the active devices through the one reconcile
 * of lib/wg: the interface is read once and only what differs is written,
 * in one transaction. Never replace_peers, never a write to a peer that is
 * right: its session (and every client's tunnel over an adopted interface)
 * is kept. Used at start, fresh interface or adopted one, and every
 * resync_interval. */
static int sync_peers(mg_ctx *ctx, const char *when)
{
	struct wgp *self = ctx->self;
	struct wgp_peers want;
	struct wg_reconcile_counts counts;
	char err[256] = "out of memory";
	int rc = desired_peers(ctx, &want);
	if (rc) {
		mg_error_log(ctx, "%s: cannot read the devices from state", when);
		wgp_peers_free(&want);
		return rc;
	}
	rc = wg_peers_reconcile(self->backend, self->ifname, want.peers, want.n, &counts, err,
	                        sizeof(err));
	if (rc)
		mg_warn(ctx, "%s: cannot set the peers of %s: %s", when, self->ifname, err);
	else if (counts.added || counts.changed || counts.removed || !strcmp(when, "start"))
		mg_info(ctx,
		        "%s: %s has the %zu active devices as peers (%zu added, %zu changed, %zu "
		        "removed)",
		        when, self->ifname, want.n, counts.added, counts.changed, counts.removed);
	wgp_peers_free(&want);
	return rc;
}

/* Ready once the peers match state: after the first reconcile, or after
 * the first resync that succeeds if that one failed. */
static void resync(mg_ctx *ctx, void *arg)
{
	if (!sync_peers(ctx, arg ? arg : "resync"))
		mg_ready(ctx);
}

/* The payload of `wireguard.peers`: the keys the changes give the
 * interface and those they drop. Published once the write has returned,
 * so that a follower (a benchmark, a status) knows a peer is there
 * without reading back every peer of the interface. */
static json_t *applied_payload(const char *ifname, const struct wgp_peers *changes)
{
	json_t *set = json_array(), *removed = json_array();
	char key[WG_KEY_B64_LEN];
	for (size_t i = 0; i < changes->n; i++) {
		wg_key_to_base64(key, changes->peers[i].public_key);
		json_array_append_new(changes->peers[i].flags & WG_PEER_REMOVE ? removed : set,
		                      json_string(key));
	}
	return json_pack("{s:s, s:o, s:o}", "interface", ifname, "set", set, "removed", removed);
}

static void watch_takeover(void *arg, const struct wg_peer *peer, const wg_key old_key)
{
	mg_ctx *ctx = arg;
	struct wgp *self = ctx->self;
	if (wgp_takeover_watch(ctx, &self->takeovers, peer->public_key, old_key))
		mg_warn(ctx,
		        "cannot watch a device's new key: its old peer goes at the next resync");
}

/* The device changes gathered so far, in one write. */
static void apply_changes(mg_ctx *ctx, void *arg)
{
	struct wgp *self = ctx->self;
	size_t n = self->changes.n;
	char err[256];
	(void)arg;
	self->changes_posted = false;
	json_t *applied = applied_payload(self->ifname, &self->changes);
	if (wgp_peers_apply(&self->changes, self->backend, self->ifname, watch_takeover, ctx, err,
	                    sizeof(err)))
		mg_warn(ctx, "%zu device changes: %s (the next resync retries)", n, err);
	else if (applied)
		mg_publish(ctx, "wireguard.peers", applied);
	json_decref(applied);
}

/* A device changed: its peer is set or removed, together with the other
 * changes that are queued by then. The write is posted, not timed: a post
 * runs once the plugin's loop has taken the events waiting on the bus
 * (and those that came meanwhile), so a burst of onboardings costs one
 * UAPI set, and a lone event is written at once. */
static void on_device_changed(mg_ctx *ctx, const char *topic, json_t *event, void *arg)
{
	struct wgp *self = ctx->self;
	(void)topic;
	(void)arg;
	int rc = wgp_peers_add_change(&self->changes, event);
	if (rc == -ENOMEM)
		mg_warn(ctx, "device %s: out of memory (the next resync retries)",
		        json_string_value(json_object_get(event, "id")));
	if (rc || self->changes_posted)
		return;
	if (mg_post(ctx, apply_changes, NULL) == 0)
		self->changes_posted = true;
	else
		apply_changes(ctx, NULL);
}

/* ---- services ---- */

static json_t *peer_json(const struct wg_peer *p)
{
	char key[WG_KEY_B64_LEN];
	json_t *ips = json_array();
	wg_key_to_base64(key, p->public_key);
	for (size_t i = 0; i < p->n_allowed_ips; i++) {
		char text[INET6_ADDRSTRLEN + 8];
		wgp_allowed_ip_format(text, sizeof(text), &p->allowed_ips[i]);
		json_array_append_new(ips, json_string(text));
	}
	return json_pack("{s:s, s:o, s:I, s:I, s:I}", "public_key", key, "allowed_ips", ips,
	                 "last_handshake", (json_int_t)p->last_handshake.tv_sec, "rx_bytes",
	                 (json_int_t)p->rx_bytes, "tx_bytes", (json_int_t)p->tx_bytes);
}

/* wg.status: the interface as the kernel or wireguard-go sees it. */
static json_t *status(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct wgp *self = ctx->self;
	struct wg_device *dev;
	char err[256], key[WG_KEY_B64_LEN];
	json_t *bad;
	(void)service;
	(void)arg;
	if ((bad = mg_request_check(ctx, request, fields)))
		return bad;
	if (wg_device_get(self->backend, self->ifname, &dev, err, sizeof(err)))
		return mg_error("internal", "cannot read %s: %s", self->ifname, err);
	wg_key_to_base64(key, self->public_key);
	json_t *peers = json_array();
	for (size_t i = 0; i < dev->n_peers; i++)
		json_array_append_new(peers, peer_json(&dev->peers[i]));
	json_t *reply = json_pack("{s:s, s:s, s:s, s:i, s:o}", "interface", self->ifname, "backend",
	                          wg_backend_name(self->backend), "public_key", key, "listen_port",
	                          dev->listen_port, "peers", peers);
	wg_device_free(dev);
	wgp_rotation_describe(&self->rotation, reply);
	return reply;
}

/* ---- figures (wireguard.metrics) ---- */

/* Seconds: WireGuard renews a session's handshake every 2 minutes while
 * it carries traffic, so a live peer stays under 180. */
static const double handshake_age_bounds[] = {30, 60, 120, 180, 300, 600, 1800, 3600, 21600, 86400};

static int collect_role(const char *key, json_t *device, void *arg)
{
	json_t *public_key = json_object_get(device, "public_key");
	json_t *role = json_object_get(device, "role");
	(void)key;
	if (json_is_string(public_key) && json_is_string(role))
		json_object_set(arg, json_string_value(public_key), role);
	return 0;
}

/* public key -> role of every device, in one pass over the devices. */
static json_t *roles_by_key(mg_ctx *ctx)
{
	json_t *roles = json_object();
	mg_txn *txn;
	if (!mg_txn_begin(ctx, MG_TXN_READ, &txn)) {
		mg_state_foreach(ctx, txn, "devices", NULL, collect_role, roles);
		mg_txn_abort(ctx, txn);
	}
	return roles;
}

/* Adds the bytes of peer p to its role's sums in by_role (role -> [rx, tx]). */
static void add_bytes(json_t *by_role, const char *role, const struct wg_peer *p)
{
	json_t *sums = json_object_get(by_role, role);
	if (!sums) {
		sums = json_pack("[I, I]", (json_int_t)0, (json_int_t)0);
		json_object_set_new(by_role, role, sums);
	}
	json_array_set_new(
	    sums, 0,
	    json_integer(json_integer_value(json_array_get(sums, 0)) + (json_int_t)p->rx_bytes));
	json_array_set_new(
	    sums, 1,
	    json_integer(json_integer_value(json_array_get(sums, 1)) + (json_int_t)p->tx_bytes));
}

/* wireguard.metrics: from one read of the interface, the age of each
 * peer's last handshake and its bytes summed by its device's role. */
static json_t *metrics(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct wgp *self = ctx->self;
	struct wg_device *dev;
	struct metrics_histogram ages;
	char err[256], key[WG_KEY_B64_LEN];
	size_t never = 0;
	json_t *bad;
	(void)service;
	(void)arg;
	if ((bad = mg_request_check(ctx, request, fields)))
		return bad;
	if (wg_device_get(self->backend, self->ifname, &dev, err, sizeof(err)))
		return mg_error("internal", "cannot read %s: %s", self->ifname, err);
	json_t *roles = roles_by_key(ctx), *by_role = json_object();
	double now_s = (double)mg_now_ms(ctx) / 1000.0;
	metrics_histogram_init(&ages, handshake_age_bounds,
	                       sizeof(handshake_age_bounds) / sizeof(handshake_age_bounds[0]));
	for (size_t i = 0; i < dev->n_peers; i++) {
		const struct wg_peer *p = &dev->peers[i];
		wg_key_to_base64(key, p->public_key);
		const char *role = json_string_value(json_object_get(roles, key));
		add_bytes(by_role, role ? role : "unknown", p);
		if (!p->last_handshake.tv_sec) {
			never++;
			continue;
		}
		double age = now_s - (double)p->last_handshake.tv_sec;
		metrics_observe(&ages, age > 0 ? age : 0);
	}
	json_t *families = json_array();
	metrics_sample(metrics_family(families, "meshgate_wireguard_peers", "gauge",
	                              "Peers of the gateway's WireGuard interface"),
	               NULL, (double)dev->n_peers);
	metrics_sample(metrics_family(families, "meshgate_wireguard_peers_without_handshake",
	                              "gauge", "Peers that have had no handshake yet"),
	               NULL, (double)never);
	metrics_histogram_sample(
	    metrics_family(families, "meshgate_wireguard_handshake_age_seconds", "histogram",
	                   "Seconds since each peer's last handshake (peers that had one)"),
	    NULL, &ages);
	json_t *rx = metrics_family(families, "meshgate_wireguard_received_bytes_total", "counter",
	                            "Bytes received from the peers, by the role of their device "
	                            "(summed over the peers there are now)");
	json_t *tx = metrics_family(families, "meshgate_wireguard_sent_bytes_total", "counter",
	                            "Bytes sent to the peers, by the role of their device "
	                            "(summed over the peers there are now)");
	const char *role;
	json_t *sums;
	json_object_foreach(by_role, role, sums)
	{
		metrics_sample(rx, json_pack("{s:s}", "role", role),
		               (double)json_integer_value(json_array_get(sums, 0)));
		metrics_sample(tx, json_pack("{s:s}", "role", role),
		               (double)json_integer_value(json_array_get(sums, 1)));
	}
	json_decref(roles);
	json_decref(by_role);
	wg_device_free(dev);
	return metrics_reply(families);
}

/* ---- lifecycle ---- */

/* What clients need to know about the server, for preauth to hand out. */
static int publish_server(mg_ctx *ctx)
{
	struct wgp *self = ctx->self;
	char key[WG_KEY_B64_LEN];
	mg_txn *txn;
	wg_key_to_base64(key, self->public_key);
	json_t *server = json_pack(
	    "{s:s, s:s, s:i, s:s, s:s, s:i}", "public_key", key, "endpoint",
	    setting(ctx, "endpoint"), "listen_port", setting_int(ctx, "listen_port"), "address",
	    setting(ctx, "address"), "interface", self->ifname, "mtu", setting_int(ctx, "mtu"));
	wgp_rotation_describe(&self->rotation, server);
	int rc = mg_txn_begin(ctx, 0, &txn);
	if (!rc && (rc = mg_state_put(ctx, txn, "wg", "server", server)))
		mg_txn_abort(ctx, txn);
	if (!rc)
		rc = mg_txn_commit(ctx, txn);
	json_decref(server);
	return rc;
}

/* The switch to the server key's next version was made: it is the key. */
static void key_switched(mg_ctx *ctx, const wg_key key)
{
	struct wgp *self = ctx->self;
	memcpy(self->private_key, key, sizeof(self->private_key));
	wg_key_public_from_private(self->public_key, self->private_key);
}

static int wgp_setup(mg_ctx *ctx)
{
	struct wgp *self = calloc(1, sizeof(*self));
	char err[256];
	int rc;
	if (!self)
		return -ENOMEM;
	ctx->self = self;
	snprintf(self->ifname, sizeof(self->ifname), "%s", setting(ctx, "interface"));
	if (strlen(setting(ctx, "interface")) >= IF_NAMESIZE) {
		mg_error_log(ctx, "wireguard.interface '%s' is longer than %d characters",
		             setting(ctx, "interface"), IF_NAMESIZE - 1);
		return -EINVAL;
	}
	if ((rc = wg_backend_select(setting(ctx, "backend"), &self->backend, err, sizeof(err)))) {
		mg_error_log(ctx, "wireguard.backend: %s", err);
		return rc;
	}
	const char *on_stop = setting(ctx, "on_stop");
	if (strcmp(on_stop, "keep") && strcmp(on_stop, "remove")) {
		mg_error_log(ctx, "wireguard.on_stop: \"%s\" is neither \"keep\" nor \"remove\"",
		             on_stop);
		return -EINVAL;
	}
	self->remove_on_stop = !strcmp(on_stop, "remove");
	if ((rc = wgp_iface_check_address(setting(ctx, "address"), err, sizeof(err)))) {
		mg_error_log(ctx, "wireguard.address: %s", err);
		return rc;
	}
	/* the server key: from the secret service, made there on first use */
	struct wgp_rotation *rot = &self->rotation;
	struct secret_wg_key keys;
	char pub[WG_KEY_B64_LEN];
	snprintf(rot->name, sizeof(rot->name), "wireguard/%s", self->ifname);
	if ((rc = secret_get_wg_keys(ctx, rot->name, &keys, err, sizeof(err)))) {
		mg_error_log(ctx, "server key: %s", err);
		return rc;
	}
	memcpy(self->private_key, keys.key, sizeof(self->private_key));
	wg_key_public_from_private(self->public_key, self->private_key);
	wg_key_to_base64(pub, self->public_key);
	mg_info(ctx, "%s server key %s (version %lld), public key %s",
	        keys.created ? "made a new" : "got the", rot->name, keys.version, pub);
	rot->backend = self->backend;
	rot->ifname = self->ifname;
	self->takeovers.backend = self->backend;
	self->takeovers.ifname = self->ifname;
	rot->switched = key_switched;
	rot->publish = publish_server;
	rc = wgp_rotation_init(ctx, rot, &keys, setting(ctx, "key_switch_lead"), err, sizeof(err));
	sodium_memzero(&keys, sizeof(keys));
	if (rc) {
		mg_error_log(ctx, "wireguard.key_switch_lead: %s", err);
		return rc;
	}
	if (!setting(ctx, "endpoint")[0])
		mg_warn(ctx, "wireguard.endpoint is empty: clients are told no address to dial");
	if ((rc = mg_service_add(ctx, "wg.status", status, NULL)) ||
	    (rc = mg_service_add(ctx, "wireguard.metrics", metrics, NULL)) ||
	    (rc = mg_subscribe(ctx, "device.changed", on_device_changed, NULL)))
		return rc;
	return 0;
}

/* The core does not call stop after a failed init: what init made goes
 * here. */
static int wgp_init(mg_ctx *ctx)
{
	int rc = wgp_setup(ctx);
	struct wgp *self = ctx->self;
	if (rc && self) {
		sodium_memzero(self->private_key, sizeof(self->private_key));
		wgp_rotation_stop(&self->rotation);
		free(self);
		ctx->self = NULL;
	}
	return rc;
}

/* The server key and listen port, each written only when the interface
 * has another: rewriting them would restart every session of an adopted
 * interface. A different private key is a real key change. */
static int configure_device(mg_ctx *ctx, bool adopted, char *err, size_t errlen)
{
	struct wgp *self = ctx->self;
	struct wg_device *dev;
	int port = setting_int(ctx, "listen_port");
	int rc = wg_device_get(self->backend, self->ifname, &dev, err, errlen);
	if (rc)
		return rc;
	bool key_differs = !(dev->flags & WG_DEVICE_HAS_PRIVATE_KEY) ||
	                   !wg_key_equal(dev->private_key, self->private_key);
	if (adopted && key_differs && (dev->flags & WG_DEVICE_HAS_PRIVATE_KEY) &&
	    wgp_rotation_adopt(ctx, &self->rotation, dev->private_key))
		key_differs = false;
	bool port_differs = dev->listen_port != port;
	wg_device_free(dev);
	if (adopted && key_differs)
		mg_warn(ctx,
		        "%s had another private key: set to the server key (its clients must "
		        "handshake again)",
		        self->ifname);
	if (!key_differs && !port_differs)
		return 0;
	return wg_device_configure(self->backend, self->ifname,
	                           key_differs ? self->private_key : NULL, port_differs ? port : -1,
	                           -1, err, errlen);
}

/* The data plane outlives the control plane: an interface left up by the
 * last stop (or crash) is adopted as it is, with its sessions, and only
 * its differences from state are written; otherwise wireguard-go is
 * started detached from us, to outlive this process in turn. */
static int wgp_start(mg_ctx *ctx)
{
	struct wgp *self = ctx->self;
	char err[256];
	int rc = wg_interface_adopt(self->backend, self->ifname, err, sizeof(err));
	bool adopted = rc == 1;
	if (rc < 0) {
		mg_error_log(ctx, "cannot use %s: %s", self->ifname, err);
		return rc;
	}
	if (adopted)
		mg_info(ctx, "%s is already up: adopting it with its peers and sessions",
		        self->ifname);
	else if ((rc = wg_interface_create(self->backend, self->ifname, WG_CREATE_DETACH,
	                                   &self->daemon_pid, err, sizeof(err)))) {
		mg_error_log(ctx, "cannot create %s: %s", self->ifname, err);
		return rc;
	}
	if ((rc = configure_device(ctx, adopted, err, sizeof(err))) ||
	    (rc = wgp_iface_up(self->ifname, setting(ctx, "address"), setting_int(ctx, "mtu"), err,
	                       sizeof(err))))
		mg_error_log(ctx, "cannot set up %s: %s", self->ifname, err);
	if (!rc)
		rc = publish_server(ctx);
	if (rc) {
		/* one we just made goes; an adopted one still carries tunnels */
		if (!adopted)
			wg_interface_delete(self->backend, self->ifname, self->daemon_pid, err,
			                    sizeof(err));
		self->daemon_pid = 0;
		return rc;
	}
	/* The peers (10k devices: the long part) are reconciled right after
	 * start returns, on this plugin's loop: the firewall, which needs only
	 * wg/server, starts meanwhile; readiness waits for the peers. */
	if (!MG_API_HAS(ctx, post) || mg_post(ctx, resync, "start"))
		resync(ctx, "start");
	wgp_rotation_start(ctx, &self->rotation);
	int interval = setting_int(ctx, "resync_interval");
	if (interval > 0)
		self->resync_timer = mg_timer_add(ctx, (unsigned)interval * 1000, 1, resync, NULL);
	mg_info(ctx, "%s up (%s), listening on %d", self->ifname, wg_backend_name(self->backend),
	        setting_int(ctx, "listen_port"));
	return 0;
}

/* By default the interface and its daemon stay: devices keep their tunnels
 * while meshgated is stopped, restarted or upgraded, and the next start
 * adopts them. wireguard.on_stop = "remove" takes them down. */
static void wgp_stop(mg_ctx *ctx)
{
	struct wgp *self = ctx->self;
	char err[256];
	if (!self)
		return;
	if (self->backend && self->remove_on_stop) {
		if (wg_interface_delete(self->backend, self->ifname, self->daemon_pid, err,
		                        sizeof(err)))
			mg_warn(ctx, "cannot remove %s: %s", self->ifname, err);
		else
			mg_info(ctx, "removed %s (wireguard.on_stop = \"remove\")", self->ifname);
	} else if (self->backend) {
		mg_info(ctx, "%s stays up with its peers (wireguard.on_stop = \"keep\")",
		        self->ifname);
	}
	sodium_memzero(self->private_key, sizeof(self->private_key));
	wgp_rotation_stop(&self->rotation);
	wgp_takeovers_free(ctx, &self->takeovers);
	wgp_peers_free(&self->changes);
	free(self);
	ctx->self = NULL;
}

static const struct mg_setting wgp_settings[] = {
    {"interface", MG_SETTING_STRING, "\"wg0\"", "Name of the gateway's WireGuard interface.", NULL,
     0},
    {"listen_port", MG_SETTING_INT, "51820", "UDP port WireGuard listens on.", NULL, 0},
    {"address", MG_SETTING_STRING, "\"10.0.0.1/24\"",
     "The gateway's address and prefix on the VPN; the prefix is the VPN subnet devices get "
     "their addresses from.",
     NULL, 0},
    {"endpoint", MG_SETTING_STRING, "\"\"",
     "\"host:port\" that clients dial (the gateway's public address).", NULL, 0},
    {"backend", MG_SETTING_STRING, "\"auto\"",
     "\"kernel\" (WireGuard module, generic netlink), \"userspace\" (wireguard-go, UAPI "
     "socket, started by the plugin) or \"auto\" (kernel when present).",
     NULL, 0},
    {"mtu", MG_SETTING_INT, "1420", "MTU of the interface.", NULL, 0},
    {"on_stop", MG_SETTING_STRING, "\"keep\"",
     "What a stop of meshgated does to the interface: \"keep\" leaves it up with its peers "
     "and wireguard-go running (devices keep their tunnels; the next start adopts it), "
     "\"remove\" deletes it.",
     NULL, 0},
    {"key_switch_lead", MG_SETTING_STRING, "\"5s\"",
     "How long ahead of the switch to a new server key its public key and switch time are "
     "published (a duration): long enough for every device to re-read its config "
     "(docs/rotation.md).",
     NULL, 0},
    {"resync_interval", MG_SETTING_INT, "60",
     "Seconds between diffs of the interface's peers against state (0: never).", NULL, 0},
    {0},
};

static const char *const wgp_owns[] = {"wg", NULL};
static const char *const wgp_depends[] = {"secrets", NULL};

MG_PLUGIN(.name = "wireguard", .version = "0.1.0",
          .description = "the gateway's WireGuard interface and its peers", .owns = wgp_owns,
          .depends = wgp_depends, .settings = wgp_settings, .init = wgp_init, .start = wgp_start,
          .stop = wgp_stop);
