/* The mesh plugin: gets this node's mesh key from the secret service
 * (secret.get, made on this node on first use), registers the node in the cluster-wide "nodes"
 * database with a mesh address allocated once from mesh.subnet, and keeps a WireGuard tunnel to
 * every other node: all of them at start, then one node at a time as its record changes
 * (state.nodes events, remote ones from the cluster's mirror). docs/mesh.md has the whole story. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "mesh.h"
#include "secret.h"

/* How often a write that met another node's change (-ESTALE) is run
 * again from a fresh transaction before it gives up. */
#define MESH_WRITE_TRIES 5
/* Registration that could not be written (no quorum) is tried again. */
#define MESH_REGISTER_RETRY_MS 5000

struct mesh {
	const struct mesh_dataplane *dp;
	void *dp_arg;
	struct mesh_system *sys; /* the system's data plane, when dp is it */
	char ifname[IF_NAMESIZE];
	const char *node; /* this node's name (the core's) */
	struct mesh_subnet subnet;
	wg_key private_key, public_key;
	char address[INET_ADDRSTRLEN]; /* this node's mesh address, once registered */
	json_t *applied; /* the other nodes as the interface has them: name -> record */
	bool up;         /* the interface is there: events may change it */
	bool evicted;    /* another node deleted this node's record */
	int register_timer;
};

static const char *setting(mg_ctx *ctx, const char *name)
{
	return json_string_value(json_object_get(mg_config(ctx), name));
}

static int setting_int(mg_ctx *ctx, const char *name)
{
	return (int)json_integer_value(json_object_get(mg_config(ctx), name));
}

/* ---- writes to cluster-wide state ---- */

/* One try of a write: 0 to commit, 1 when there is nothing to write, a
 * negative errno to give up. */
typedef int (*mesh_write_fn)(mg_ctx *ctx, mg_txn *txn, void *arg);

/* Runs fn in a fresh transaction until it commits: a commit that met
 * another node's change of what fn read (-ESTALE) is run again, the
 * mirror having caught up, MESH_WRITE_TRIES times at most. Returns 0 or
 * what failed: -ESTALE, -EHOSTUNREACH (the cluster takes no write now),
 * fn's error. Nothing is written unless it returns 0. */
static int mesh_write(mg_ctx *ctx, mesh_write_fn fn, void *arg)
{
	for (int attempt = 1;; attempt++) {
		mg_txn *txn;
		int rc = mg_txn_begin(ctx, 0, &txn);
		if (rc)
			return rc;
		if ((rc = fn(ctx, txn, arg))) {
			mg_txn_abort(ctx, txn);
			return rc > 0 ? 0 : rc;
		}
		rc = mg_txn_commit(ctx, txn);
		if (rc != -ESTALE || attempt == MESH_WRITE_TRIES)
			return rc;
	}
}

/* The error reply of a failed write. */
static json_t *write_error(int rc, const char *what)
{
	if (rc == -EHOSTUNREACH)
		return mg_error("unavailable",
		                "the cluster cannot take a write now (no etcd quorum): %s not done",
		                what);
	if (rc == -ESTALE)
		return mg_error("conflict",
		                "other nodes kept changing the mesh: %s not done, try again", what);
	return mg_error("internal", "%s: %s", what, strerror(-rc));
}

/* The node that holds a mesh address: 0 and its name in owner, -ENOENT
 * when the address is free. A read: the commit checks it is still so. */
static int address_owner(mg_ctx *ctx, mg_txn *txn, const char *address, char *owner, size_t len)
{
	json_t *v;
	int rc = mg_state_get(ctx, txn, MESH_DB_ADDRESSES, address, &v);
	if (rc)
		return rc;
	const char *node = json_string_value(json_object_get(v, "node"));
	snprintf(owner, len, "%s", node ? node : "");
	json_decref(v);
	return 0;
}

static int collect_key(const char *key, json_t *value, void *arg)
{
	(void)value;
	return json_object_set_new(arg, key, json_true()) ? -ENOMEM : 0;
}

/* The first free address of the mesh subnet. The walk over the taken ones
 * is not compared at commit: the read of the chosen one's key is (and its
 * write), so two nodes that chose the same cannot both commit. */
static int allocate_address(mg_ctx *ctx, mg_txn *txn, char out[INET_ADDRSTRLEN])
{
	struct mesh *self = ctx->self;
	json_t *taken = json_object();
	char owner[256];
	int rc = taken ? mg_state_foreach(ctx, txn, MESH_DB_ADDRESSES, NULL, collect_key, taken)
	               : -ENOMEM;
	for (uint32_t i = 0; !rc; i++) {
		if ((rc = mesh_subnet_host(&self->subnet, i, out)))
			break;
		if (json_object_get(taken, out))
			continue;
		rc = address_owner(ctx, txn, out, owner, sizeof(owner));
		if (rc == -ENOENT) {
			rc = 0;
			break;
		}
	}
	json_decref(taken);
	return rc == -ERANGE ? -ENOSPC : rc;
}

static json_t *node_record(mg_ctx *ctx, const char *address)
{
	struct mesh *self = ctx->self;
	char key[WG_KEY_B64_LEN];
	wg_key_to_base64(key, self->public_key);
	return json_pack("{s:i, s:s, s:s, s:s, s:i, s:s, s:O}", "v", 1, "name", self->node,
	                 "public_key", key, "endpoint", setting(ctx, "endpoint"), "listen_port",
	                 setting_int(ctx, "listen_port"), "mesh_address", address, "subnets",
	                 json_object_get(mg_config(ctx), "subnets"));
}

/* This node's record and its address: the address it has when it is
 * still of the mesh subnet and nobody else's, else a new one (the old one
 * freed). Nothing is written when both are as they should be. */
static int register_once(mg_ctx *ctx, mg_txn *txn, void *arg)
{
	struct mesh *self = ctx->self;
	char address[INET_ADDRSTRLEN] = "", owner[256];
	json_t *old = NULL;
	const char *old_address = NULL;
	bool address_recorded = false;
	(void)arg;
	int rc = mg_state_get(ctx, txn, MESH_DB_NODES, self->node, &old);
	if (rc && rc != -ENOENT)
		return rc;
	old_address = json_string_value(json_object_get(old, "mesh_address"));
	if (mesh_subnet_has_host(&self->subnet, old_address)) {
		rc = address_owner(ctx, txn, old_address, owner, sizeof(owner));
		if (rc == 0 && !strcmp(owner, self->node))
			address_recorded = true;
		if (rc == -ENOENT || address_recorded)
			snprintf(address, sizeof(address), "%s", old_address);
		rc = 0; /* another's address, or a read error: a new one */
	}
	if (!address[0] && (rc = allocate_address(ctx, txn, address))) {
		json_decref(old);
		return rc;
	}
	json_t *record = node_record(ctx, address);
	json_t *claim = json_pack("{s:i, s:s}", "v", 1, "node", self->node);
	if (old && json_equal(old, record) && address_recorded) {
		rc = 1; /* nothing to write */
	} else {
		if (old_address && strcmp(old_address, address) &&
		    !address_owner(ctx, txn, old_address, owner, sizeof(owner)) &&
		    !strcmp(owner, self->node))
			rc = mg_state_del(ctx, txn, MESH_DB_ADDRESSES, old_address);
		if (!rc)
			rc = mg_state_put(ctx, txn, MESH_DB_NODES, self->node, record);
		if (!rc)
			rc = mg_state_put(ctx, txn, MESH_DB_ADDRESSES, address, claim);
	}
	if (rc >= 0)
		snprintf(self->address, sizeof(self->address), "%s", address);
	json_decref(claim);
	json_decref(record);
	json_decref(old);
	return rc;
}

/* ---- the data plane ---- */

/* The nat chain: VPN clients (the wireguard plugin's subnet, when it runs
 * here) leaving through the mesh SNATed to this node's mesh address. */
static void apply_nat(mg_ctx *ctx)
{
	struct mesh *self = ctx->self;
	json_t *server = NULL;
	mg_txn *txn;
	char err[512];
	if (!mg_txn_begin(ctx, MG_TXN_READ, &txn)) {
		mg_state_get(ctx, txn, "wg", "server", &server);
		mg_txn_abort(ctx, txn);
	}
	const char *vpn = json_string_value(json_object_get(server, "address"));
	if (self->dp->nat(self->dp_arg, self->ifname, vpn, self->address, err, sizeof(err)))
		mg_warn(ctx, "cannot set the nat chain %s: %s", MESH_NAT_CHAIN, err);
	json_decref(server);
}

static void route_each(mg_ctx *ctx, json_t *subnets, json_t *except, bool add)
{
	struct mesh *self = ctx->self;
	json_t *s, *e;
	size_t i, j;
	char err[256];
	json_array_foreach(subnets, i, s)
	{
		bool keep = false;
		json_array_foreach(except, j, e) keep = keep || json_equal(s, e);
		if (!keep && json_string_value(s) &&
		    self->dp->route(self->dp_arg, self->ifname, json_string_value(s), add, err,
		                    sizeof(err)))
			mg_warn(ctx, "%s", err);
	}
}

/* After the first registration: the interface's address, the nat chain. */
static void registered(mg_ctx *ctx)
{
	struct mesh *self = ctx->self;
	char prefix[INET_ADDRSTRLEN + 4], err[256];
	snprintf(prefix, sizeof(prefix), "%s/%u", self->address, self->subnet.len);
	if (self->dp->address(self->dp_arg, self->ifname, prefix, err, sizeof(err)))
		mg_warn(ctx, "cannot set the mesh address: %s", err);
	apply_nat(ctx);
	mg_info(ctx, "node %s is in the mesh as %s on %s", self->node, self->address, self->ifname);
}

static void retry_register(mg_ctx *ctx, void *arg)
{
	struct mesh *self = ctx->self;
	(void)arg;
	if (self->evicted)
		return;
	int rc = mesh_write(ctx, register_once, NULL);
	if (rc)
		return; /* still no cluster: the next turn */
	mg_timer_del(ctx, self->register_timer);
	self->register_timer = 0;
	registered(ctx);
}

/* Two nodes routing one site: said, not resolved (the operator decides
 * which node routes it); the peer set last gets the allowed IPs. */
static void warn_overlaps(mg_ctx *ctx, const char *name, json_t *subnets)
{
	struct mesh *self = ctx->self;
	const char *mine, *theirs, *other;
	json_t *record;
	if ((mine = mesh_subnets_overlap(json_object_get(mg_config(ctx), "subnets"), subnets,
	                                 &theirs)))
		mg_warn(ctx, "node %s routes %s, which overlaps %s routed by this node (%s)", name,
		        theirs, mine, self->node);
	json_object_foreach(self->applied, other, record)
	{
		if (strcmp(other, name) &&
		    (mine = mesh_subnets_overlap(json_object_get(record, "subnets"), subnets,
		                                 &theirs)))
			mg_warn(ctx, "node %s routes %s, which overlaps %s routed by node %s", name,
			        theirs, mine, other);
	}
}

/* The interface follows one other node's record: its peer set again (a
 * new key replaces the old peer), routes to the subnets it gained added
 * and to those it lost removed; no record: peer and routes gone. */
static void follow_node(mg_ctx *ctx, const char *name)
{
	struct mesh *self = ctx->self;
	json_t *record = NULL, *old = json_object_get(self->applied, name);
	struct mesh_peer p, was;
	mg_txn *txn;
	char err[256];
	if (!mg_txn_begin(ctx, MG_TXN_READ, &txn)) {
		mg_state_get(ctx, txn, MESH_DB_NODES, name, &record);
		mg_txn_abort(ctx, txn);
	}
	bool usable = record && !mesh_node_peer(record, &p);
	if (record && !usable)
		mg_warn(ctx, "node %s: its record has no valid key or mesh address: no peer", name);
	if (old && !mesh_node_peer(old, &was) &&
	    (!usable || !wg_key_equal(was.peer.public_key, p.peer.public_key)) &&
	    self->dp->peer_remove(self->dp_arg, self->ifname, was.peer.public_key, err,
	                          sizeof(err)))
		mg_warn(ctx, "node %s: cannot remove its peer: %s", name, err);
	if (usable && self->dp->peer_set(self->dp_arg, self->ifname, &p.peer, err, sizeof(err)))
		mg_warn(ctx, "node %s: cannot set its peer: %s", name, err);
	json_t *subnets = usable ? json_object_get(record, "subnets") : NULL;
	warn_overlaps(ctx, name, subnets);
	route_each(ctx, json_object_get(old, "subnets"), subnets, false);
	route_each(ctx, subnets, json_object_get(old, "subnets"), true);
	if (usable) {
		json_object_set_new(self->applied, name, record);
	} else {
		json_object_del(self->applied, name);
		json_decref(record);
	}
	mg_info(ctx, "node %s %s", name, usable ? "set as a peer" : "removed");
}

static void on_node_changed(mg_ctx *ctx, const char *topic, json_t *event, void *arg)
{
	struct mesh *self = ctx->self;
	const char *name = json_string_value(json_object_get(event, "key"));
	const char *op = json_string_value(json_object_get(event, "op"));
	(void)topic;
	(void)arg;
	if (!self->up || !name || !op)
		return;
	if (strcmp(name, self->node)) {
		follow_node(ctx, name);
	} else if (!strcmp(op, "del") && json_is_true(json_object_get(event, "remote"))) {
		/* an admin removed this node: it does not push itself back in */
		mg_warn(ctx,
		        "this node's record was deleted by another node: %s stays out of the mesh "
		        "until meshgated restarts",
		        self->node);
		self->evicted = true;
	}
}

static void on_wg_changed(mg_ctx *ctx, const char *topic, json_t *event, void *arg)
{
	struct mesh *self = ctx->self;
	(void)topic;
	(void)arg;
	const char *key = json_string_value(json_object_get(event, "key"));
	if (self->up && self->address[0] && key && !strcmp(key, "server"))
		apply_nat(ctx);
}

/* ---- the full reconcile, at start ---- */

/* The interface's peers become exactly the other nodes, with their routes. */
static int reconcile_all(mg_ctx *ctx)
{
	struct mesh *self = ctx->self;
	json_t *nodes = mg_state_collect(ctx, MESH_DB_NODES, NULL), *record;
	const char *name;
	char err[256];
	if (!nodes)
		return -ENOMEM;
	struct mesh_peer *peers = calloc(json_object_size(nodes) + 1, sizeof(*peers));
	struct wg_peer *list = calloc(json_object_size(nodes) + 1, sizeof(*list));
	size_t n = 0;
	int rc = peers && list ? 0 : -ENOMEM;
	json_object_clear(self->applied);
	json_object_foreach(nodes, name, record)
	{
		if (rc || !strcmp(name, self->node))
			continue;
		if (mesh_node_peer(record, &peers[n])) {
			mg_warn(ctx,
			        "node %s: its record has no valid key or mesh address: no peer",
			        name);
			continue;
		}
		list[n] = peers[n].peer; /* points into peers[n], which stays */
		json_object_set(self->applied, name, record);
		n++;
	}
	if (!rc &&
	    (rc = self->dp->peers_reconcile(self->dp_arg, self->ifname, list, n, err, sizeof(err))))
		mg_error_log(ctx, "cannot set the peers of %s: %s", self->ifname, err);
	json_object_foreach(self->applied, name, record)
	    route_each(ctx, json_object_get(record, "subnets"), NULL, true);
	if (!rc)
		mg_info(ctx, "%s has the %zu other nodes as peers", self->ifname, n);
	free(list);
	free(peers);
	json_decref(nodes);
	return rc;
}

/* ---- services ---- */

static int handshake_of(const struct wg_device *dev, const char *key, struct timespec *when)
{
	wg_key k;
	const struct wg_peer *p;
	if (!dev || !key || wg_key_from_base64(k, key) || !(p = wg_device_find_peer(dev, k)))
		return -ENOENT;
	*when = p->last_handshake;
	return 0;
}

/* mesh.node.list: every node, with whether this node reaches it. */
static json_t *node_list(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct mesh *self = ctx->self;
	struct wg_device *dev = NULL;
	const char *name;
	json_t *bad, *record, *nodes, *list = json_array();
	char err[256];
	(void)service;
	(void)arg;
	if ((bad = mg_request_check(ctx, request, fields))) {
		json_decref(list);
		return bad;
	}
	if (!(nodes = mg_state_collect(ctx, MESH_DB_NODES, NULL))) {
		json_decref(list);
		return mg_error("internal", "cannot read the nodes");
	}
	if (self->up && self->dp->read(self->dp_arg, self->ifname, &dev, err, sizeof(err)))
		mg_warn(ctx, "cannot read %s: %s", self->ifname, err);
	int64_t now = (int64_t)(mg_now_ms(ctx) / 1000);
	json_object_foreach(nodes, name, record)
	{
		struct timespec hs = {0};
		bool me = !strcmp(name, self->node);
		bool seen =
		    !me &&
		    !handshake_of(dev, json_string_value(json_object_get(record, "public_key")),
		                  &hs) &&
		    hs.tv_sec > 0;
		json_t *item =
		    json_pack("{s:s, s:O?, s:O?, s:O?, s:O?, s:b, s:b}", "name", name,
		              "mesh_address", json_object_get(record, "mesh_address"), "endpoint",
		              json_object_get(record, "endpoint"), "public_key",
		              json_object_get(record, "public_key"), "subnets",
		              json_object_get(record, "subnets"), "self", me, "reachable",
		              me || (seen && now - hs.tv_sec <= MESH_REACHABLE_S));
		json_object_set_new(item, "last_handshake",
		                    seen ? json_integer((json_int_t)hs.tv_sec) : json_null());
		json_array_append_new(list, item);
	}
	wg_device_free(dev);
	json_decref(nodes);
	return json_pack("{s:s, s:o}", "node", self->node, "nodes", list);
}

struct node_del {
	const char *name;
	bool found;
};

/* The node's record and its address claim, in one transaction. */
static int del_once(mg_ctx *ctx, mg_txn *txn, void *arg)
{
	struct node_del *d = arg;
	json_t *record;
	char owner[256];
	int rc = mg_state_get(ctx, txn, MESH_DB_NODES, d->name, &record);
	d->found = rc != -ENOENT;
	if (rc)
		return rc == -ENOENT ? 1 : rc;
	const char *address = json_string_value(json_object_get(record, "mesh_address"));
	rc = mg_state_del(ctx, txn, MESH_DB_NODES, d->name);
	if (!rc && address && !address_owner(ctx, txn, address, owner, sizeof(owner)) &&
	    !strcmp(owner, d->name))
		rc = mg_state_del(ctx, txn, MESH_DB_ADDRESSES, address);
	json_decref(record);
	return rc;
}

/* mesh.node.del {"name"}: another node leaves the mesh (every node drops
 * its peer and routes when the deletion reaches it). */
static json_t *node_del(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{"name", MG_FIELD_STRING, 1, 1, 253}, {0}};
	struct mesh *self = ctx->self;
	json_t *bad;
	(void)service;
	(void)arg;
	if ((bad = mg_request_check(ctx, request, fields)))
		return bad;
	struct node_del d = {.name = json_string_value(json_object_get(request, "name"))};
	if (!strcmp(d.name, self->node))
		return mg_error("forbidden",
		                "%s is this node: delete it from another node of the cluster (or "
		                "stop its mesh plugin first)",
		                d.name);
	int rc = mesh_write(ctx, del_once, &d);
	if (rc)
		return write_error(rc, "the deletion");
	if (!d.found)
		return mg_error("not_found", "no node %s in the mesh", d.name);
	mg_info(ctx, "node %s deleted from the mesh", d.name);
	return json_pack("{s:s, s:b}", "name", d.name, "deleted", 1);
}

/* ---- lifecycle ---- */

static int check_settings(mg_ctx *ctx, struct mesh *self)
{
	char err[256];
	json_t *s;
	size_t i;
	union wg_endpoint ep;
	const char *endpoint = setting(ctx, "endpoint");
	if (strlen(setting(ctx, "interface")) >= IF_NAMESIZE || !setting(ctx, "interface")[0]) {
		mg_error_log(ctx,
		             "mesh.interface '%s' is not an interface name (1 to %d characters)",
		             setting(ctx, "interface"), IF_NAMESIZE - 1);
		return -EINVAL;
	}
	if (mesh_subnet_parse(setting(ctx, "subnet"), &self->subnet, err, sizeof(err))) {
		mg_error_log(ctx, "mesh.subnet: %s", err);
		return -EINVAL;
	}
	if (json_array_size(json_object_get(mg_config(ctx), "subnets")) > MESH_MAX_SUBNETS) {
		mg_error_log(ctx, "mesh.subnets: more than %d subnets", MESH_MAX_SUBNETS);
		return -EINVAL;
	}
	json_array_foreach(json_object_get(mg_config(ctx), "subnets"), i, s)
	{
		if (mesh_prefix_check(json_string_value(s), err, sizeof(err))) {
			mg_error_log(ctx, "mesh.subnets: %s", err);
			return -EINVAL;
		}
	}
	if (endpoint[0] && wg_endpoint_parse(&ep, endpoint)) {
		mg_error_log(ctx, "mesh.endpoint '%s' is not \"address:port\" (numeric)", endpoint);
		return -EINVAL;
	}
	if (!endpoint[0])
		mg_warn(ctx, "mesh.endpoint is empty: other nodes cannot dial this one");
	if (!mg_node_name(ctx)[0]) {
		mg_error_log(ctx, "this core gives no node name (API version 6 needed)");
		return -ENOTSUP;
	}
	return 0;
}

/* The mesh key: from the secret service, made there on first use. */
static int load_key(mg_ctx *ctx, struct mesh *self)
{
	char name[64], err[512], pub[WG_KEY_B64_LEN];
	long long version;
	int created, rc;
	snprintf(name, sizeof(name), "mesh/%s", self->ifname);
	if ((rc = secret_get_wg_key(ctx, name, self->private_key, &version, &created, err,
	                            sizeof(err)))) {
		mg_error_log(ctx, "mesh key: %s", err);
		return rc;
	}
	wg_key_public_from_private(self->public_key, self->private_key);
	wg_key_to_base64(pub, self->public_key);
	mg_info(ctx, "%s mesh key %s (version %lld), public key %s",
	        created ? "made a new" : "got the", name, version, pub);
	return 0;
}

/* Everything of the plugin but the interface (see mesh_stop). */
static void mesh_free(mg_ctx *ctx)
{
	struct mesh *self = ctx->self;
	if (!self)
		return;
	mesh_system_free(self->sys);
	sodium_memzero(self->private_key, sizeof(self->private_key));
	json_decref(self->applied);
	free(self);
	ctx->self = NULL;
}

/* A failed init leaves nothing behind: its stop is not called. */
int mesh_init_with(mg_ctx *ctx, const struct mesh_dataplane *dp, void *dp_arg)
{
	struct mesh *self = calloc(1, sizeof(*self));
	int rc;
	if (!self)
		return -ENOMEM;
	ctx->self = self;
	self->dp = dp;
	self->dp_arg = dp_arg;
	self->node = mg_node_name(ctx);
	snprintf(self->ifname, sizeof(self->ifname), "%s", setting(ctx, "interface"));
	rc = (self->applied = json_object()) ? 0 : -ENOMEM;
	if (!rc)
		rc = check_settings(ctx, self);
	if (!rc)
		rc = load_key(ctx, self);
	if (!rc && !(rc = mg_service_add(ctx, "mesh.node.list", node_list, NULL)) &&
	    !(rc = mg_service_add(ctx, "mesh.node.del", node_del, NULL)) &&
	    !(rc = mg_subscribe(ctx, "state." MESH_DB_NODES, on_node_changed, NULL)))
		rc = mg_subscribe(ctx, "state.wg", on_wg_changed, NULL);
	if (rc)
		mesh_free(ctx);
	return rc;
}

static int mesh_init(mg_ctx *ctx)
{
	struct mesh_system *sys;
	char err[256];
	int rc = mesh_system_new(setting(ctx, "backend"), setting(ctx, "iptables_restore"),
	                         setting(ctx, "iptables_save"), &sys, err, sizeof(err));
	if (rc) {
		mg_error_log(ctx, "mesh.backend: %s", err);
		return rc;
	}
	rc = mesh_init_with(ctx, &mesh_system_dataplane, sys);
	if (rc)
		mesh_system_free(sys);
	else
		((struct mesh *)ctx->self)->sys = sys;
	return rc;
}

/* The interface, this node's record, then every other node as a peer.
 * Without a cluster that takes writes, the record is written later (the
 * mesh runs meanwhile on the peers the mirror has). */
static int mesh_start(mg_ctx *ctx)
{
	struct mesh *self = ctx->self;
	char err[256];
	int rc = self->dp->up(self->dp_arg, self->ifname, self->private_key,
	                      setting_int(ctx, "listen_port"), err, sizeof(err));
	if (rc) {
		mg_error_log(ctx, "cannot bring up %s: %s", self->ifname, err);
		return rc;
	}
	self->up = true;
	rc = mesh_write(ctx, register_once, NULL);
	if (rc == -EHOSTUNREACH || rc == -ESTALE) {
		mg_warn(ctx, "cannot register node %s now (%s): tried again every %d s", self->node,
		        rc == -ESTALE ? "other nodes kept changing the mesh" : "no etcd quorum",
		        MESH_REGISTER_RETRY_MS / 1000);
		self->register_timer =
		    mg_timer_add(ctx, MESH_REGISTER_RETRY_MS, 1, retry_register, NULL);
	} else if (rc == -ENOSPC) {
		mg_error_log(ctx, "the mesh subnet %s has no free address for node %s",
		             setting(ctx, "subnet"), self->node);
	} else if (rc) {
		mg_error_log(ctx, "cannot register node %s: %s", self->node, strerror(-rc));
	}
	if (rc && rc != -EHOSTUNREACH && rc != -ESTALE) {
		self->dp->down(self->dp_arg, self->ifname);
		self->up = false;
		return rc;
	}
	if (!rc)
		registered(ctx);
	reconcile_all(ctx);
	mg_ready(ctx);
	return 0;
}

/* The interface goes with meshgated: the next start makes it anew. */
static void mesh_stop(mg_ctx *ctx)
{
	struct mesh *self = ctx->self;
	if (!self)
		return;
	if (self->up)
		self->dp->down(self->dp_arg, self->ifname);
	mesh_free(ctx);
}

static const struct mg_setting mesh_settings[] = {
    {"interface", MG_SETTING_STRING, "\"mgmesh0\"", "Name of the mesh's WireGuard interface.", NULL,
     0},
    {"listen_port", MG_SETTING_INT, "51821", "UDP port the mesh interface listens on.", NULL, 0},
    {"endpoint", MG_SETTING_STRING, "\"\"",
     "\"address:port\" (numeric) where the other nodes reach this one's mesh interface.", NULL, 0},
    {"subnet", MG_SETTING_STRING, "\"10.99.0.0/24\"",
     "IPv4 subnet of the mesh: each node gets one address of it, once (the same on every "
     "node).",
     NULL, 0},
    {"subnets", MG_SETTING_STRINGS, "[]",
     "The site subnets this node routes: the other nodes route them to it over the mesh.", NULL, 0},
    {"backend", MG_SETTING_STRING, "\"auto\"",
     "\"kernel\", \"userspace\" (wireguard-go) or \"auto\", as wireguard.backend.", NULL, 0},
    {"iptables_restore", MG_SETTING_STRING, "\"iptables-restore\"",
     "The iptables-restore program of the nat chain " MESH_NAT_CHAIN ".", NULL, 0},
    {"iptables_save", MG_SETTING_STRING, "\"iptables-save\"",
     "The iptables-save program, matching iptables_restore.", NULL, 0},
    {0},
};

static const char *const mesh_dbs[] = {MESH_DB_NODES, MESH_DB_ADDRESSES, NULL};
static const char *const mesh_depends[] = {"secrets", NULL};

MG_PLUGIN(.name = "mesh", .version = "0.1.0",
          .description = "a WireGuard tunnel between every two nodes of the cluster",
          .depends = mesh_depends, .owns = mesh_dbs, .cluster = mesh_dbs, .settings = mesh_settings,
          .init = mesh_init, .start = mesh_start, .stop = mesh_stop);
