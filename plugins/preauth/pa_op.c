/* One change of preauth's state: a single write transaction, and what may
 * only happen once it is durable. The caches (address pool, key index,
 * pending devices) and the bus hear of a change after its commit, so a
 * failed commit leaves them exactly as the databases are. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "preauth.h"

int pa_op_begin(struct pa *pa, struct pa_op *parent, struct pa_op *op)
{
	memset(op, 0, sizeof(*op));
	op->pa = pa;
	op->parent = parent;
	int rc = parent ? mg_txn_begin_nested(pa->ctx, parent->txn, &op->txn)
	                : mg_txn_begin(pa->ctx, 0, &op->txn);
	if (rc)
		return rc;
	op->events = json_array();
	op->ips_freed = json_array();
	op->ips_taken = json_array();
	op->keys_add = json_object();
	op->keys_del = json_array();
	op->pending_add = json_object();
	op->pending_del = json_array();
	op->devices_put = json_object();
	op->devices_del = json_array();
	op->users_put = json_object();
	op->users_del = json_array();
	return 0;
}

static void op_free(struct pa_op *op)
{
	json_decref(op->events);
	json_decref(op->ips_freed);
	json_decref(op->ips_taken);
	json_decref(op->keys_add);
	json_decref(op->keys_del);
	json_decref(op->pending_add);
	json_decref(op->pending_del);
	json_decref(op->devices_put);
	json_decref(op->devices_del);
	json_decref(op->users_put);
	json_decref(op->users_del);
	memset(op, 0, sizeof(*op));
}

void pa_op_abort(struct pa_op *op)
{
	if (op->txn)
		mg_txn_abort(op->pa->ctx, op->txn);
	op_free(op);
}

/* The device list's index follows pa->devices. */
static void list_put(struct pa *pa, const char *id, json_t *cached)
{
	if (pa_list_put(pa->list, id, cached))
		mg_error_log(pa->ctx, "out of memory: device %s is left out of the device list",
		             id);
}

static void apply(struct pa_op *op)
{
	struct pa *pa = op->pa;
	size_t i;
	json_t *v;

	json_array_foreach(op->ips_freed, i, v) if (pa->ipam)
	    pa_ipam_release(pa->ipam, (uint32_t)json_integer_value(v));
	json_array_foreach(op->ips_taken, i, v) if (pa->ipam)
	    pa_ipam_take(pa->ipam, (uint32_t)json_integer_value(v));
	json_array_foreach(op->keys_del, i, v) json_object_del(pa->keys, json_string_value(v));
	json_object_update(pa->keys, op->keys_add);
	json_array_foreach(op->pending_del, i, v)
	    json_object_del(pa->pending, json_string_value(v));
	json_object_update(pa->pending, op->pending_add);
	json_array_foreach(op->devices_del, i, v)
	{
		json_object_del(pa->devices, json_string_value(v));
		pa_list_del(pa->list, json_string_value(v));
	}
	json_object_update(pa->devices, op->devices_put);
	const char *id;
	json_object_foreach(op->devices_put, id, v) list_put(pa, id, v);
	json_array_foreach(op->users_del, i, v) json_object_del(pa->users, json_string_value(v));
	json_object_update(pa->users, op->users_put);
}

json_t *pa_commit_error(int rc)
{
	if (rc == -ESTALE)
		return mg_error("conflict",
		                "another gateway of the cluster kept changing the same data; try "
		                "again");
	if (rc == -EHOSTUNREACH)
		return mg_error("unavailable",
		                "the cluster cannot take a write now (no etcd quorum; "
		                "or this node waits for `meshgatectl cluster import`)");
	return NULL;
}

int pa_op_commit(struct pa_op *op)
{
	struct pa *pa = op->pa;
	int rc = mg_txn_commit(pa->ctx, op->txn);
	op->txn = NULL;
	if (!op->parent)
		pa->commit_rc = rc;
	if (rc == -ESTALE) {
		/* the race another node won: the caller runs the request again */
		mg_info(pa->ctx, "commit lost a race to another node of the cluster");
	} else if (rc == -EHOSTUNREACH) {
		mg_log_limited(pa->ctx, MG_LOG_WARN, "no quorum",
		               "commit refused: the cluster has no etcd quorum");
	} else if (rc == -E2BIG) {
		/* a batch larger than one etcd transaction: pa_batch.c splits it */
		mg_debug(pa->ctx, "commit too large for one etcd transaction");
	} else if (rc) {
		mg_error_log(pa->ctx, "commit failed: %s", strerror(-rc));
	} else if (op->parent) {
		/* later requests of the batch must see the addresses and keys
		 * taken; the events wait for the batch to be durable */
		apply(op);
		json_array_extend(op->parent->events, op->events);
	} else {
		size_t i;
		json_t *e;
		apply(op);
		json_array_foreach(op->events, i, e)
		{
			const char *topic = json_string_value(json_array_get(e, 0));
			mg_publish(pa->ctx, topic, json_array_get(e, 1));
		}
	}
	op_free(op);
	return rc;
}

void pa_op_event(struct pa_op *op, const char *topic, json_t *payload)
{
	json_array_append_new(op->events, json_pack("[s, o]", topic, payload));
}

static void copy_member(json_t *to, json_t *from, const char *name)
{
	json_t *v = json_object_get(from, name);
	json_object_set_new(to, name, v ? json_incref(v) : json_null());
}

json_t *pa_device_payload(json_t *device, const char *state)
{
	json_t *payload = json_object();
	static const char *const members[] = {"id",   "user",    "name",
	                                      "role", "address", "public_key"};
	for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++)
		copy_member(payload, device, members[i]);
	if (state)
		json_object_set_new(payload, "state", json_string(state));
	else
		copy_member(payload, device, "state");
	/* a key rotation's, only when there is one: the wireguard plugin
	 * replaces the previous key's peer, the api's probe answer mixes the
	 * counters into the device's config epoch */
	static const char *const rotation[] = {"next_public_key", "previous_public_key",
	                                       "rotate_requested", "rotated"};
	for (size_t i = 0; i < sizeof(rotation) / sizeof(rotation[0]); i++) {
		json_t *v = json_object_get(device, rotation[i]);
		if (v)
			json_object_set(payload, rotation[i], v);
	}
	return payload;
}

void pa_op_device_changed(struct pa_op *op, json_t *device, const char *state)
{
	json_t *payload = pa_device_payload(device, state);
	const char *id = json_string_value(json_object_get(device, "id"));
	/* what a deletion another node makes must announce, once the record
	 * is gone from the mirror */
	if (id && state && !strcmp(state, "deleted"))
		json_array_append_new(op->devices_del, json_string(id));
	else if (id)
		json_object_set(op->devices_put, id, payload);
	pa_op_event(op, "device.changed", payload);
}

void pa_op_user_changed(struct pa_op *op, const char *name, const char *role, const char *state)
{
	if (!strcmp(state, "deleted"))
		json_array_append_new(op->users_del, json_string(name));
	else
		json_object_set_new(op->users_put, name, json_string(role));
	pa_op_event(op, "user.changed",
	            json_pack("{s:s, s:s, s:s}", "name", name, "role", role, "state", state));
}

int pa_op_device_delete(struct pa_op *op, json_t *device)
{
	mg_ctx *ctx = op->pa->ctx;
	const char *id = json_string_value(json_object_get(device, "id"));
	const char *address = json_string_value(json_object_get(device, "address"));
	const char *key = json_string_value(json_object_get(device, "public_key"));
	uint32_t addr;

	int rc = mg_state_del(ctx, op->txn, PA_DB_DEVICES, id);
	if (rc)
		return rc;
	if (address && !pa_ip_parse(address, 1, &addr)) {
		char ip[16];
		pa_ip_format(addr, ip);
		rc = mg_state_del(ctx, op->txn, PA_DB_IPAM, ip);
		if (rc && rc != -ENOENT)
			return rc;
		json_array_append_new(op->ips_freed, json_integer(addr));
	}
	if (key)
		json_array_append_new(op->keys_del, json_string(key));
	pa_rotation_keys(device, op->keys_del);
	json_array_append_new(op->pending_del, json_string(id));
	pa_op_device_changed(op, device, "deleted");
	return 0;
}

/* ---- caches ---- */

struct rebuild {
	struct pa *pa;
	struct pa_ipam *ipam;
	unsigned outside;
};

static int take_recorded(const char *key, json_t *value, void *arg)
{
	struct rebuild *r = arg;
	uint32_t addr;
	(void)value;
	if (pa_ip_parse(key, 0, &addr) || pa_ipam_take(r->ipam, addr))
		r->outside++;
	return 0;
}

int pa_ipam_sync(struct pa *pa, mg_txn *txn, json_t **server, char *err, size_t errlen)
{
	json_t *srv;
	int rc = mg_state_get(pa->ctx, txn, PA_DB_WG, PA_WG_SERVER_KEY, &srv);
	if (rc) {
		if (rc == -ENOENT)
			snprintf(err, errlen,
			         "the VPN server is not configured yet (no wg/server in state)");
		else
			snprintf(err, errlen, "cannot read wg/server: %s", strerror(-rc));
		return rc;
	}
	const char *address = json_string_value(json_object_get(srv, "address"));
	if (!address) {
		snprintf(err, errlen, "wg/server has no address");
		json_decref(srv);
		return -EINVAL;
	}
	if (!pa->ipam || strcmp(pa_ipam_server_address(pa->ipam), address)) {
		struct rebuild r = {pa, pa_ipam_new(address, err, errlen), 0};
		if (!r.ipam) {
			json_decref(srv);
			return -EINVAL;
		}
		if (mg_in_cluster(pa->ctx))
			pa_ipam_spread(r.ipam, mg_node_name(pa->ctx));
		rc = mg_state_foreach(pa->ctx, txn, PA_DB_IPAM, NULL, take_recorded, &r);
		if (rc) {
			snprintf(err, errlen, "cannot read ipam: %s", strerror(-rc));
			pa_ipam_free(r.ipam);
			json_decref(srv);
			return rc;
		}
		/* Addresses of another subnet stay with their devices (the db is
		 * the truth) but are no longer reachable: the operator should know. */
		if (r.outside)
			mg_warn(pa->ctx, "%u recorded addresses are outside %s", r.outside,
			        pa_ipam_subnet(r.ipam));
		mg_info(pa->ctx, "address pool %s: %u of %u free", pa_ipam_subnet(r.ipam),
		        pa_ipam_free_count(r.ipam), pa_ipam_capacity(r.ipam));
		pa_ipam_free(pa->ipam);
		pa->ipam = r.ipam;
	}
	if (server)
		*server = srv;
	else
		json_decref(srv);
	return 0;
}

static int index_device(const char *key, json_t *device, void *arg)
{
	struct pa *pa = arg;
	const char *public_key = json_string_value(json_object_get(device, "public_key"));
	const char *state = json_string_value(json_object_get(device, "state"));
	json_t *rotation = json_array(), *k;
	size_t i;
	if (public_key)
		json_object_set_new(pa->keys, public_key, json_string(key));
	pa_rotation_keys(device, rotation);
	json_array_foreach(rotation, i, k)
	    json_object_set_new(pa->keys, json_string_value(k), json_string(key));
	json_decref(rotation);
	if (state && !strcmp(state, "pending"))
		json_object_set(pa->pending, key, json_object_get(device, "expires_at"));
	json_t *payload = pa_device_payload(device, NULL);
	list_put(pa, key, payload);
	json_object_set_new(pa->devices, key, payload);
	return 0;
}

static int index_user(const char *key, json_t *user, void *arg)
{
	struct pa *pa = arg;
	json_t *role = json_object_get(user, "role");
	json_object_set_new(pa->users, key,
	                    json_is_string(role) ? json_incref(role) : json_string(""));
	pa_access_track(pa, key, user);
	return 0;
}

void pa_cache_device_del(struct pa *pa, const char *id)
{
	json_t *old = json_object_get(pa->devices, id);
	json_t *keys = json_array(), *k;
	size_t i;
	json_t *public_key = json_object_get(old, "public_key");
	if (json_is_string(public_key))
		json_array_append(keys, public_key);
	pa_rotation_keys(old, keys);
	json_array_foreach(keys, i, k)
	{
		const char *owner =
		    json_string_value(json_object_get(pa->keys, json_string_value(k)));
		if (owner && !strcmp(owner, id))
			json_object_del(pa->keys, json_string_value(k));
	}
	json_decref(keys);
	json_object_del(pa->pending, id);
	json_object_del(pa->devices, id);
	pa_list_del(pa->list, id);
}

void pa_cache_device_put(struct pa *pa, const char *id, json_t *device)
{
	pa_cache_device_del(pa, id);
	index_device(id, device, pa);
}

void pa_cache_rebuild(struct pa *pa)
{
	pa_ipam_free(pa->ipam);
	pa->ipam = NULL;
	int rc = pa_cache_load(pa);
	if (rc)
		mg_error_log(pa->ctx, "cannot rebuild the caches: %s", strerror(-rc));
}

int pa_cache_load(struct pa *pa)
{
	mg_txn *txn;
	char err[256];
	int rc = mg_txn_begin(pa->ctx, MG_TXN_READ, &txn);
	if (rc)
		return rc;
	json_object_clear(pa->keys);
	json_object_clear(pa->pending);
	json_object_clear(pa->devices);
	pa_list_clear(pa->list);
	json_object_clear(pa->users);
	pa_access_clear(pa);
	rc = mg_state_foreach(pa->ctx, txn, PA_DB_DEVICES, NULL, index_device, pa);
	if (!rc)
		rc = mg_state_foreach(pa->ctx, txn, PA_DB_USERS, NULL, index_user, pa);
	if (!rc) {
		int wg = pa_ipam_sync(pa, txn, NULL, err, sizeof(err));
		/* without wg/server yet, the pool is built at the first redeem */
		if (wg && wg != -ENOENT)
			mg_warn(pa->ctx, "%s", err);
	}
	mg_txn_abort(pa->ctx, txn);
	return rc;
}
