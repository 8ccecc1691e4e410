/* Changes another node of the cluster made to preauth's databases. The
 * core's mirror has written them to our state already and announces each
 * key as state.<db> with "remote": true. Each event updates the caches of
 * its one key from what state holds now (so a late or repeated event does
 * no harm), and a device's or user's change is announced as
 * device.changed / user.changed, as our own commits are: the wireguard,
 * firewall and dns plugins of this node follow those events. */
#include <errno.h>
#include <string.h>

#include "preauth.h"

/* The key of a remote change, or NULL for our own (announced already by
 * the op that made it) and for malformed events. */
static const char *remote_key(json_t *event)
{
	if (!json_is_true(json_object_get(event, "remote")))
		return NULL;
	return json_string_value(json_object_get(event, "key"));
}

/* The record of db/key as state holds it now: 0, -ENOENT (deleted), or
 * another error. */
static int read_now(struct pa *pa, const char *db, const char *key, json_t **value)
{
	mg_txn *txn;
	*value = NULL;
	int rc = mg_txn_begin(pa->ctx, MG_TXN_READ, &txn);
	if (rc)
		return rc;
	rc = mg_state_get(pa->ctx, txn, db, key, value);
	mg_txn_abort(pa->ctx, txn);
	return rc;
}

void pa_remote_device(mg_ctx *ctx, const char *topic, json_t *event, void *arg)
{
	struct pa *pa = arg;
	const char *id = remote_key(event);
	json_t *device, *payload;
	(void)topic;
	if (!id)
		return;
	int rc = read_now(pa, PA_DB_DEVICES, id, &device);
	if (!rc) {
		/* the record's own id, should another node have left it out */
		json_object_set_new(device, "id", json_string(id));
		payload = pa_device_payload(device, NULL);
		pa_cache_device_put(pa, id, device);
		json_decref(device);
	} else if (rc == -ENOENT) {
		/* what a local delete announces: the device as it was */
		json_t *was = json_object_get(pa->devices, id);
		payload = was ? json_deep_copy(was) : json_pack("{s:s}", "id", id);
		json_object_set_new(payload, "state", json_string("deleted"));
		pa_cache_device_del(pa, id);
	} else {
		mg_error_log(ctx, "cannot read device %s changed by another node: %s", id,
		             strerror(-rc));
		pa_cache_rebuild(pa);
		return;
	}
	mg_publish(ctx, "device.changed", payload);
	json_decref(payload);
}

void pa_remote_user(mg_ctx *ctx, const char *topic, json_t *event, void *arg)
{
	struct pa *pa = arg;
	const char *name = remote_key(event);
	json_t *user, *payload;
	(void)topic;
	if (!name)
		return;
	int rc = read_now(pa, PA_DB_USERS, name, &user);
	if (!rc) {
		json_t *role = json_object_get(user, "role");
		json_object_set_new(pa->users, name,
		                    json_is_string(role) ? json_incref(role) : json_string(""));
		payload = json_pack("{s:s, s:O, s:s}", "name", name, "role",
		                    json_object_get(pa->users, name), "state", "active");
		pa_access_track(pa, name, user); /* its deadline, if it has one */
		json_decref(user);
	} else if (rc == -ENOENT) {
		json_t *role = json_object_get(pa->users, name);
		payload = json_pack("{s:s, s:s, s:s}", "name", name, "role",
		                    role ? json_string_value(role) : "", "state", "deleted");
		json_object_del(pa->users, name);
		pa_access_forget(pa, name);
	} else {
		mg_error_log(ctx, "cannot read user %s changed by another node: %s", name,
		             strerror(-rc));
		return;
	}
	mg_publish(ctx, "user.changed", payload);
	json_decref(payload);
}

void pa_remote_ipam(mg_ctx *ctx, const char *topic, json_t *event, void *arg)
{
	struct pa *pa = arg;
	const char *ip = remote_key(event);
	json_t *lease;
	uint32_t addr;
	(void)topic;
	/* without a pool yet, it is built from the database when needed */
	if (!ip || !pa->ipam || pa_ip_parse(ip, 0, &addr))
		return;
	int rc = read_now(pa, PA_DB_IPAM, ip, &lease);
	if (!rc)
		pa_ipam_take(pa->ipam, addr); /* -ERANGE outside the pool: nothing to mark */
	else if (rc == -ENOENT)
		pa_ipam_release(pa->ipam, addr);
	else
		mg_error_log(ctx, "cannot read address %s changed by another node: %s", ip,
		             strerror(-rc));
	json_decref(lease);
}
