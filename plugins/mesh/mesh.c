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
#include "metrics.h"
#include "secret.h"

/* How often a write that met another node's change (-ESTALE) is run
 * again from a fresh transaction before it gives up. */
#define MESH_WRITE_TRIES 5
/* Registration that could not be written (no quorum) is tried again. */
#define MESH_REGISTER_RETRY_MS 5000
/* How long the switch waits for the secret service to record it: a Vault
 * that does not answer makes it wait and try again (the switch is done). */
#define MESH_PROMOTE_TIMEOUT_MS 5000
/* A new private key the interface refused is set again after this long. */
#define MESH_KEY_RETRY_MS 1000
/* A peer replaced for another node's switch is watched until it has a
 * handshake under the new key: checked this often (well under WireGuard's
 * own 5 s retry), for this long at most. */
#define MESH_HANDSHAKE_CHECK_MS 1000
#define MESH_HANDSHAKE_WATCH_MS 30000

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
	uint64_t switch_lead_ms, switch_margin_ms;

	/* This node's key switch (docs/rotation.md, "Mesh key"): the next key
	 * is published in the node's record with the time of the switch, the
	 * interface switches at that time, then the secret service is told. */
	bool switching;
	wg_key next_private_key, next_public_key;
	long long next_version;
	uint64_t switch_at_ms; /* 0: not published yet */
	int switch_timer, publish_timer;
	long long promote_version; /* a switch the service has not recorded yet (0: none) */
	int promote_timer;

	/* Other nodes' announced switches: name -> when this node follows
	 * (their switch_at_ms + margin), one timer for the earliest. */
	json_t *follow_due;
	int follow_timer;
	/* Peers replaced for a switch, no handshake seen yet: name -> until
	 * when they are watched, one timer for all. */
	json_t *awaiting_handshake;
	int handshake_timer;
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
	json_t *record = json_pack(
	    "{s:i, s:s, s:s, s:s, s:i, s:s, s:O}", "v", 1, "name", self->node, "public_key", key,
	    "endpoint", setting(ctx, "endpoint"), "listen_port", setting_int(ctx, "listen_port"),
	    "mesh_address", address, "subnets", json_object_get(mg_config(ctx), "subnets"));
	if (record && self->switching && self->switch_at_ms) {
		wg_key_to_base64(key, self->next_public_key);
		json_object_set_new(record, MESH_NEXT_KEY, json_string(key));
		json_object_set_new(record, MESH_SWITCH_AT,
		                    json_integer((json_int_t)self->switch_at_ms));
	}
	return record;
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

/* The peer of node `name`'s record, with this node's keepalive for it:
 * the two ends of a pair keep alive at different intervals (the end whose
 * node name sorts first every MESH_KEEPALIVE_S, the other a second
 * later). Two nodes that add each other in the same millisecond (a
 * cluster forming) both start a handshake; each takes the other's and
 * drops the answer to its own. With equal intervals their keepalives,
 * reset by that very exchange, started the next two handshakes at the
 * same moment again, for good (seen once: two nodes of a new mesh that
 * did not reach each other in 20 s); a second apart, the first one is
 * answered. */
static int node_peer(const struct mesh *self, const char *name, json_t *record,
                     struct mesh_peer *out)
{
	int rc = mesh_node_peer(record, out);
	if (!rc && strcmp(self->node, name) > 0)
		out->peer.persistent_keepalive = MESH_KEEPALIVE_S + 1;
	return rc;
}

/* ---- other nodes' key switches ---- */

/* Marks, in `applied` only (never written), a peer switched to a node's
 * next key at the announced time, before the node's record confirmed that
 * the node itself switched. */
#define MESH_FOLLOWED_ON_TIME "followed_on_time"

/* A node's record as its peer should be now: once its announced switch
 * is due (its time + margin: never before the node itself switched), with
 * its next key as its key. *due: when this node follows a switch still to
 * come (0: none). A new reference. */
static json_t *record_now(struct mesh *self, json_t *record, uint64_t now_ms, uint64_t *due)
{
	const char *next = json_string_value(json_object_get(record, MESH_NEXT_KEY));
	json_int_t at = json_integer_value(json_object_get(record, MESH_SWITCH_AT));
	*due = 0;
	if (!next || at <= 0)
		return json_incref(record);
	if (now_ms < (uint64_t)at + self->switch_margin_ms) {
		*due = (uint64_t)at + self->switch_margin_ms;
		return json_incref(record);
	}
	json_t *switched = json_deep_copy(record);
	json_object_set_new(switched, "public_key", json_string(next));
	json_object_del(switched, MESH_NEXT_KEY);
	json_object_del(switched, MESH_SWITCH_AT);
	json_object_set_new(switched, MESH_FOLLOWED_ON_TIME, json_true());
	return switched;
}

static void follow_fire(mg_ctx *ctx, void *arg);

/* One timer, for the earliest switch this node follows. */
static void follow_arm(mg_ctx *ctx)
{
	struct mesh *self = ctx->self;
	uint64_t earliest = UINT64_MAX, now = mg_now_ms(ctx);
	const char *name;
	json_t *due;
	if (self->follow_timer > 0)
		mg_timer_del(ctx, self->follow_timer);
	self->follow_timer = 0;
	json_object_foreach(self->follow_due, name, due)
	{
		if ((uint64_t)json_integer_value(due) < earliest)
			earliest = (uint64_t)json_integer_value(due);
	}
	if (earliest != UINT64_MAX)
		self->follow_timer = mg_timer_add(
		    ctx, (unsigned)(earliest > now ? earliest - now : 0), 0, follow_fire, NULL);
}

/* The peer of a node whose announced key replaces its old one: the new
 * key with the same allowed IPs, endpoint (the one the old peer has when
 * the record gives none) and keepalive, in one set. */
static void replace_peer(mg_ctx *ctx, const char *name, const struct wg_peer *old,
                         struct wg_peer *peer)
{
	struct mesh *self = ctx->self;
	struct wg_device *dev = NULL;
	const struct wg_peer *had;
	char err[256];
	if (peer->endpoint.sa.sa_family == AF_UNSPEC &&
	    !self->dp->read(self->dp_arg, self->ifname, &dev, err, sizeof(err)) &&
	    (had = wg_device_find_peer(dev, old->public_key)))
		peer->endpoint = had->endpoint;
	wg_device_free(dev);
	if (self->dp->peer_replace(self->dp_arg, self->ifname, old->public_key, peer, err,
	                           sizeof(err)))
		mg_warn(ctx, "node %s: cannot replace its peer by its next key: %s", name, err);
	else
		mg_info(ctx, "node %s switched its mesh key: its peer replaced by the new key",
		        name);
}

/* A peer replaced for a switch with no handshake yet is made anew, in one
 * set, and handshakes at once: the node may have switched later than this
 * node followed (a loaded machine), so it dropped this node's first
 * handshake, which WireGuard itself would try again only 5 s later.
 * Returns 1 when the peer has its handshake (nothing to do), 0 when it was
 * set anew, -1 when it could not be read or set. */
static int handshake_again(mg_ctx *ctx, const char *name, struct wg_peer *peer)
{
	struct mesh *self = ctx->self;
	struct wg_device *dev = NULL;
	const struct wg_peer *now;
	char err[256];
	if (self->dp->read(self->dp_arg, self->ifname, &dev, err, sizeof(err)) ||
	    !(now = wg_device_find_peer(dev, peer->public_key))) {
		wg_device_free(dev);
		return -1;
	}
	if (now->last_handshake.tv_sec) {
		wg_device_free(dev);
		return 1;
	}
	if (peer->endpoint.sa.sa_family == AF_UNSPEC)
		peer->endpoint = now->endpoint;
	wg_device_free(dev);
	if (self->dp->peer_replace(self->dp_arg, self->ifname, peer->public_key, peer, err,
	                           sizeof(err))) {
		mg_warn(ctx, "node %s: cannot set its peer anew: %s", name, err);
		return -1;
	}
	mg_info(ctx,
	        "node %s: no handshake under its new key yet: its peer set anew to handshake now",
	        name);
	return 0;
}

/* Every second, each watched peer without a handshake is set anew, until
 * it has one or its watch ends. */
static void handshake_check(mg_ctx *ctx, void *arg)
{
	struct mesh *self = ctx->self;
	uint64_t now = mg_now_ms(ctx);
	const char *name;
	json_t *until;
	void *tmp;
	(void)arg;
	json_object_foreach_safe(self->awaiting_handshake, tmp, name, until)
	{
		struct mesh_peer p;
		json_t *record = json_object_get(self->applied, name);
		int rc = record && !node_peer(self, name, record, &p)
		             ? handshake_again(ctx, name, &p.peer)
		             : -1;
		if (rc == 0 && now < (uint64_t)json_integer_value(until))
			continue;
		if (rc != 1)
			mg_warn(
			    ctx,
			    "node %s: no handshake under its new key after %d s: left to WireGuard",
			    name, MESH_HANDSHAKE_WATCH_MS / 1000);
		json_object_del(self->awaiting_handshake, name);
	}
	if (!json_object_size(self->awaiting_handshake) && self->handshake_timer > 0) {
		mg_timer_del(ctx, self->handshake_timer);
		self->handshake_timer = 0;
	}
}

static void handshake_watch(mg_ctx *ctx, const char *name)
{
	struct mesh *self = ctx->self;
	json_object_set_new(self->awaiting_handshake, name,
	                    json_integer((json_int_t)(mg_now_ms(ctx) + MESH_HANDSHAKE_WATCH_MS)));
	if (self->handshake_timer <= 0)
		self->handshake_timer =
		    mg_timer_add(ctx, MESH_HANDSHAKE_CHECK_MS, 1, handshake_check, NULL);
}

/* The interface follows one other node's record: its peer set again (a
 * key it announced replaces the old peer in one set, another new key
 * removes it first), routes to the subnets it gained added and to those
 * it lost removed; no record: peer and routes gone. */
static void follow_node(mg_ctx *ctx, const char *name)
{
	struct mesh *self = ctx->self;
	json_t *record = NULL, *old = json_object_get(self->applied, name);
	struct mesh_peer p, was;
	mg_txn *txn;
	char err[256], key[WG_KEY_B64_LEN], announced[WG_KEY_B64_LEN] = "";
	uint64_t due = 0;
	if (!mg_txn_begin(ctx, MG_TXN_READ, &txn)) {
		mg_state_get(ctx, txn, MESH_DB_NODES, name, &record);
		mg_txn_abort(ctx, txn);
	}
	/* the key it announces: the one this node announced before, or now
	 * (a record read after the switch: followed at once) */
	const char *next = json_string_value(json_object_get(old, MESH_NEXT_KEY));
	if (!next)
		next = json_string_value(json_object_get(record, MESH_NEXT_KEY));
	snprintf(announced, sizeof(announced), "%s", next ? next : "");
	/* The node's record says it switched (its write reaches this node a
	 * few ms after its switch) before this node's time to follow (the
	 * announced time + margin): followed at that time all the same.
	 * Sooner, this node's handshake under the new key can cross the one
	 * the node starts at its switch for what it staged, and both wait 5 s
	 * (seen in mesh_rotate: 62 pings lost until the peer was set anew). */
	json_int_t at = json_integer_value(json_object_get(old, MESH_SWITCH_AT));
	const char *key_now = json_string_value(json_object_get(record, "public_key"));
	uint64_t follow_at = (uint64_t)at + self->switch_margin_ms;
	if (at > 0 && next && key_now && !strcmp(key_now, next) && mg_now_ms(ctx) < follow_at) {
		json_object_set_new(self->follow_due, name, json_integer((json_int_t)follow_at));
		follow_arm(ctx);
		json_decref(record);
		return;
	}
	if (record) {
		json_t *now = record_now(self, record, mg_now_ms(ctx), &due);
		json_decref(record);
		record = now;
	}
	if (due)
		json_object_set_new(self->follow_due, name, json_integer((json_int_t)due));
	else
		json_object_del(self->follow_due, name);
	follow_arm(ctx);
	bool usable = record && !node_peer(self, name, record, &p);
	if (record && !usable)
		mg_warn(ctx, "node %s: its record has no valid key or mesh address: no peer", name);
	bool had = old && !node_peer(self, name, old, &was);
	bool new_key = had && usable && !wg_key_equal(was.peer.public_key, p.peer.public_key);
	if (usable)
		wg_key_to_base64(key, p.peer.public_key);
	bool confirmed = usable && !json_object_get(record, MESH_NEXT_KEY) &&
	                 json_is_true(json_object_get(old, MESH_FOLLOWED_ON_TIME));
	if (new_key && !strcmp(announced, key)) {
		replace_peer(ctx, name, &was.peer, &p.peer);
		handshake_watch(ctx, name);
	} else if (had && !new_key && confirmed) {
		/* the node's record confirms its switch: no need to wait for the
		 * next check */
		handshake_again(ctx, name, &p.peer);
	} else {
		if (had && (!usable || new_key) &&
		    self->dp->peer_remove(self->dp_arg, self->ifname, was.peer.public_key, err,
		                          sizeof(err)))
			mg_warn(ctx, "node %s: cannot remove its peer: %s", name, err);
		if (usable &&
		    self->dp->peer_set(self->dp_arg, self->ifname, &p.peer, err, sizeof(err)))
			mg_warn(ctx, "node %s: cannot set its peer: %s", name, err);
	}
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

/* The switches due: each node's peer follows its record again. */
static void follow_fire(mg_ctx *ctx, void *arg)
{
	struct mesh *self = ctx->self;
	json_t *names = json_array(), *due, *name;
	const char *n;
	size_t i;
	uint64_t now = mg_now_ms(ctx);
	(void)arg;
	self->follow_timer = 0; /* it fired: a one-shot timer is gone */
	json_object_foreach(self->follow_due, n, due)
	{
		if ((uint64_t)json_integer_value(due) <= now)
			json_array_append_new(names, json_string(n));
	}
	json_array_foreach(names, i, name) follow_node(ctx, json_string_value(name));
	json_decref(names);
	follow_arm(ctx);
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
	uint64_t now = mg_now_ms(ctx);
	json_object_clear(self->applied);
	json_object_clear(self->follow_due);
	json_object_foreach(nodes, name, record)
	{
		uint64_t due;
		if (rc || !strcmp(name, self->node))
			continue;
		/* a switch announced: the key it has now, the switch followed at its time */
		json_t *current = record_now(self, record, now, &due);
		if (due)
			json_object_set_new(self->follow_due, name, json_integer((json_int_t)due));
		if (node_peer(self, name, current, &peers[n])) {
			mg_warn(ctx,
			        "node %s: its record has no valid key or mesh address: no peer",
			        name);
			json_decref(current);
			continue;
		}
		list[n] = peers[n].peer; /* points into peers[n], which stays */
		json_object_set_new(self->applied, name, current);
		n++;
	}
	follow_arm(ctx);
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

/* ---- this node's key switch (docs/rotation.md, "Mesh key") ---- */

static void key_name(struct mesh *self, char *out, size_t len)
{
	snprintf(out, len, "mesh/%s", self->ifname);
}

static void promote(mg_ctx *ctx, void *arg);

/* The secret service records the switch: the next version becomes the
 * one in use (idempotent: asked again after a restart, it answers ok). A
 * service that does not answer now is asked again later. */
static void promote(mg_ctx *ctx, void *arg)
{
	struct mesh *self = ctx->self;
	char name[64];
	json_t *reply = NULL;
	(void)arg;
	self->promote_timer = 0;
	key_name(self, name, sizeof(name));
	json_t *req =
	    json_pack("{s:s, s:I}", "name", name, "version", (json_int_t)self->promote_version);
	int rc =
	    req ? mg_request(ctx, "secret.promote", req, MESH_PROMOTE_TIMEOUT_MS, &reply) : -ENOMEM;
	json_decref(req);
	const char *code = json_string_value(json_object_get(reply, "error"));
	const char *why = json_string_value(json_object_get(reply, "message"));
	if (!rc) {
		mg_info(ctx, "%s: version %lld recorded as the key in use", name,
		        self->promote_version);
		self->promote_version = 0;
	} else if (code && !strcmp(code, "conflict")) {
		mg_error_log(ctx, "%s: the secret service refuses version %lld: %s", name,
		             self->promote_version, why);
		self->promote_version = 0;
	} else {
		mg_warn(ctx, "%s: secret.promote: %s: asked again in %d s", name,
		        why ? why : strerror(-rc), MESH_REGISTER_RETRY_MS / 1000);
		self->promote_timer = mg_timer_add(ctx, MESH_REGISTER_RETRY_MS, 0, promote, NULL);
	}
	json_decref(reply);
}

/* At the announced time: the interface takes the next key (its sessions
 * go on receiving; what it sends waits for the handshakes the other
 * nodes start once they follow, margin ms later), the service records
 * it, the record shows the new key as the node's. */
static void switch_now(mg_ctx *ctx, void *arg)
{
	struct mesh *self = ctx->self;
	char err[256], pub[WG_KEY_B64_LEN];
	(void)arg;
	self->switch_timer = 0;
	if (self->dp->key(self->dp_arg, self->ifname, self->next_private_key, err, sizeof(err))) {
		mg_error_log(ctx, "cannot switch %s to its next key: %s (tried again in %d ms)",
		             self->ifname, err, MESH_KEY_RETRY_MS);
		self->switch_timer = mg_timer_add(ctx, MESH_KEY_RETRY_MS, 0, switch_now, NULL);
		return;
	}
	memcpy(self->private_key, self->next_private_key, sizeof(self->private_key));
	memcpy(self->public_key, self->next_public_key, sizeof(self->public_key));
	sodium_memzero(self->next_private_key, sizeof(self->next_private_key));
	self->switching = false;
	self->switch_at_ms = 0;
	self->promote_version = self->next_version;
	wg_key_to_base64(pub, self->public_key);
	mg_info(ctx, "%s switched to mesh key version %lld, public key %s", self->ifname,
	        self->next_version, pub);
	promote(ctx, NULL);
	int rc = mesh_write(ctx, register_once, NULL);
	if (rc && !self->register_timer) {
		mg_warn(ctx,
		        "cannot write the new key into node %s's record now (%s): tried again "
		        "every %d s",
		        self->node, strerror(-rc), MESH_REGISTER_RETRY_MS / 1000);
		self->register_timer =
		    mg_timer_add(ctx, MESH_REGISTER_RETRY_MS, 1, retry_register, NULL);
	}
}

static void switch_arm(mg_ctx *ctx)
{
	struct mesh *self = ctx->self;
	uint64_t now = mg_now_ms(ctx);
	if (self->switch_timer > 0)
		mg_timer_del(ctx, self->switch_timer);
	self->switch_timer =
	    mg_timer_add(ctx, (unsigned)(self->switch_at_ms > now ? self->switch_at_ms - now : 0),
	                 0, switch_now, NULL);
}

/* The next key and the time of the switch (now + lead, long enough for
 * every node to read the record) into this node's record; the switch
 * waits for that time. A cluster that takes no write now: tried again,
 * with a new time, since the others must learn it before it comes. */
static void switch_publish(mg_ctx *ctx, void *arg)
{
	struct mesh *self = ctx->self;
	(void)arg;
	self->publish_timer = 0;
	self->switch_at_ms = mg_now_ms(ctx) + self->switch_lead_ms;
	int rc = mesh_write(ctx, register_once, NULL);
	if (rc) {
		self->switch_at_ms = 0;
		mg_warn(ctx, "cannot publish the next mesh key (%s): tried again in %d s",
		        strerror(-rc), MESH_REGISTER_RETRY_MS / 1000);
		self->publish_timer =
		    mg_timer_add(ctx, MESH_REGISTER_RETRY_MS, 0, switch_publish, NULL);
		return;
	}
	mg_info(ctx, "mesh key version %lld published: %s switches to it in %llu ms",
	        self->next_version, self->ifname, (unsigned long long)self->switch_lead_ms);
	switch_arm(ctx);
}

/* The service's keys of this node: the one in use and a pending next one,
 * if any. A next key the node's record already shows as its key was
 * switched to before a restart (the service is told again); one the
 * record announces keeps its announced time. */
static int load_keys(mg_ctx *ctx)
{
	struct mesh *self = ctx->self;
	struct secret_wg_key k;
	char name[64], err[512], next[WG_KEY_B64_LEN];
	json_t *mine = NULL;
	mg_txn *txn;
	key_name(self, name, sizeof(name));
	int rc = secret_get_wg_keys(ctx, name, &k, err, sizeof(err));
	if (rc) {
		mg_error_log(ctx, "mesh key: %s", err);
		return rc;
	}
	memcpy(self->private_key, k.key, sizeof(self->private_key));
	if (k.has_next && (!self->switching || self->next_version != k.next_version)) {
		wg_key_public_from_private(self->next_public_key, k.next_key);
		wg_key_to_base64(next, self->next_public_key);
		if (!mg_txn_begin(ctx, MG_TXN_READ, &txn)) {
			mg_state_get(ctx, txn, MESH_DB_NODES, self->node, &mine);
			mg_txn_abort(ctx, txn);
		}
		const char *used = json_string_value(json_object_get(mine, "public_key"));
		const char *announced = json_string_value(json_object_get(mine, MESH_NEXT_KEY));
		if (used && !strcmp(used, next)) {
			memcpy(self->private_key, k.next_key, sizeof(self->private_key));
			self->promote_version = k.next_version;
		} else {
			memcpy(self->next_private_key, k.next_key, sizeof(self->next_private_key));
			self->next_version = k.next_version;
			self->switching = true;
			self->switch_at_ms = announced && !strcmp(announced, next)
			                         ? (uint64_t)json_integer_value(
			                               json_object_get(mine, MESH_SWITCH_AT))
			                         : 0;
		}
		json_decref(mine);
	}
	wg_key_public_from_private(self->public_key, self->private_key);
	wg_key_to_base64(next, self->public_key);
	mg_info(ctx, "%s mesh key %s (version %lld), public key %s%s",
	        k.created ? "made a new" : "got the", name,
	        self->promote_version ? self->promote_version : k.version, next,
	        self->switching ? "; a next version waits for its switch" : "");
	sodium_memzero(&k, sizeof(k));
	return 0;
}

/* secret.next: the service made a next version of this node's mesh key
 * (`meshgatectl key rotate --mesh`, the schedule). */
static void on_secret_next(mg_ctx *ctx, const char *topic, json_t *event, void *arg)
{
	struct mesh *self = ctx->self;
	char name[64];
	(void)topic, (void)arg;
	key_name(self, name, sizeof(name));
	const char *of = json_string_value(json_object_get(event, "name"));
	/* one switch at a time: one under way, or not recorded yet, ends first */
	if (!of || strcmp(name, of) || self->switching || self->promote_version || load_keys(ctx) ||
	    !self->switching)
		return;
	if (self->up) /* else the start publishes it */
		switch_publish(ctx, NULL);
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

/* mesh.metrics: the other nodes, whether each answers over the mesh, and
 * the age of its last handshake. */
static json_t *metrics(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct mesh *self = ctx->self;
	struct wg_device *dev = NULL;
	const char *name;
	json_t *bad, *record, *nodes;
	char err[256];
	(void)service;
	(void)arg;
	if ((bad = mg_request_check(ctx, request, fields)))
		return bad;
	if (!(nodes = mg_state_collect(ctx, MESH_DB_NODES, NULL)))
		return mg_error("internal", "cannot read the nodes");
	if (self->up && self->dp->read(self->dp_arg, self->ifname, &dev, err, sizeof(err)))
		mg_warn(ctx, "cannot read %s: %s", self->ifname, err);
	int64_t now = (int64_t)(mg_now_ms(ctx) / 1000);
	json_t *families = json_array();
	metrics_sample(metrics_family(families, "meshgate_mesh_nodes", "gauge",
	                              "Nodes of the mesh, this one included"),
	               NULL, (double)json_object_size(nodes));
	json_t *reachable = metrics_family(
	    families, "meshgate_mesh_node_reachable", "gauge",
	    "1 when the other node had a handshake over the mesh within the reachable window");
	json_t *age = metrics_family(families, "meshgate_mesh_handshake_age_seconds", "gauge",
	                             "Seconds since the last handshake with the other node");
	json_object_foreach(nodes, name, record)
	{
		struct timespec hs = {0};
		if (!strcmp(name, self->node))
			continue;
		bool seen =
		    !handshake_of(dev, json_string_value(json_object_get(record, "public_key")),
		                  &hs) &&
		    hs.tv_sec > 0;
		metrics_sample(reachable, json_pack("{s:s}", "node", name),
		               seen && now - hs.tv_sec <= MESH_REACHABLE_S);
		if (seen)
			metrics_sample(age, json_pack("{s:s}", "node", name),
			               (double)(now > hs.tv_sec ? now - hs.tv_sec : 0));
	}
	wg_device_free(dev);
	json_decref(nodes);
	return metrics_reply(families);
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
	if (mg_duration_parse(setting(ctx, "key_switch_lead"), &self->switch_lead_ms, err,
	                      sizeof(err))) {
		mg_error_log(ctx, "mesh.key_switch_lead: %s", err);
		return -EINVAL;
	}
	if (setting_int(ctx, "key_switch_margin_ms") < 0 ||
	    setting_int(ctx, "key_switch_margin_ms") > 10000) {
		mg_error_log(ctx, "mesh.key_switch_margin_ms must be 0 to 10000, not %d",
		             setting_int(ctx, "key_switch_margin_ms"));
		return -EINVAL;
	}
	self->switch_margin_ms = (uint64_t)setting_int(ctx, "key_switch_margin_ms");
	if (!mg_node_name(ctx)[0]) {
		mg_error_log(ctx, "this core gives no node name (API version 6 needed)");
		return -ENOTSUP;
	}
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
	sodium_memzero(self->next_private_key, sizeof(self->next_private_key));
	json_decref(self->applied);
	json_decref(self->follow_due);
	json_decref(self->awaiting_handshake);
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
	rc = (self->applied = json_object()) && (self->follow_due = json_object()) &&
	             (self->awaiting_handshake = json_object())
	         ? 0
	         : -ENOMEM;
	if (!rc)
		rc = check_settings(ctx, self);
	if (!rc)
		rc = load_keys(ctx);
	if (!rc && !(rc = mg_service_add(ctx, "mesh.node.list", node_list, NULL)) &&
	    !(rc = mg_service_add(ctx, "mesh.node.del", node_del, NULL)) &&
	    !(rc = mg_service_add(ctx, "mesh.metrics", metrics, NULL)) &&
	    !(rc = mg_subscribe(ctx, "state." MESH_DB_NODES, on_node_changed, NULL)) &&
	    !(rc = mg_subscribe(ctx, SECRET_EVENT_NEXT, on_secret_next, NULL)))
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
	/* a rotation under way when meshgated stopped goes on */
	if (self->promote_version)
		promote(ctx, NULL);
	if (self->switching && self->switch_at_ms)
		switch_arm(ctx);
	else if (self->switching)
		switch_publish(ctx, NULL);
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
    {"key_switch_lead", MG_SETTING_STRING, "\"5s\"",
     "How long before it switches to a new mesh key this node publishes the key and the time "
     "of the switch in its record (a duration): long enough for every node to read it.",
     NULL, 0},
    {"key_switch_margin_ms", MG_SETTING_INT, "50",
     "How long after another node's announced switch this node replaces that node's peer by "
     "its new key (never before the node switched: its handshake would go to a key the node "
     "does not have yet). Clocks of the nodes synced (NTP).",
     NULL, 0},
    {0},
};

static const char *const mesh_dbs[] = {MESH_DB_NODES, MESH_DB_ADDRESSES, NULL};
static const char *const mesh_depends[] = {"secrets", NULL};

MG_PLUGIN(.name = "mesh", .version = "0.1.0",
          .description = "a WireGuard tunnel between every two nodes of the cluster",
          .depends = mesh_depends, .owns = mesh_dbs, .cluster = mesh_dbs, .settings = mesh_settings,
          .init = mesh_init, .start = mesh_start, .stop = mesh_stop);
