/* A device's key rotation (docs/rotation.md). The operator asks for one
 * (preauth.device.rotate counts it in the device's rotate_requested: the
 * device's config epoch changes, its device config says "rotate"); the
 * device's agent registers the public key of its next key pair
 * (preauth.device.next_key) and, once its interface uses the next key,
 * asks for the switch (preauth.device.switch_key): the next key becomes
 * the device's public key, and device.changed makes every node's
 * wireguard plugin replace the device's peer. The agent authenticates both
 * with the register token of its enrolment, as register does; both are
 * idempotent, so a retry after a lost answer gets the same answer. */
#include <errno.h>
#include <string.h>

#include "preauth.h"

int pa_rotation_pending(json_t *device)
{
	return json_integer_value(json_object_get(device, "rotate_requested")) >
	       json_integer_value(json_object_get(device, "rotated"));
}

void pa_rotation_keys(json_t *device, json_t *keys)
{
	static const char *const members[] = {"next_public_key", "previous_public_key"};
	for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
		json_t *key = json_object_get(device, members[i]);
		if (json_is_string(key))
			json_array_append(keys, key);
	}
}

static const char *member(json_t *device, const char *name)
{
	return json_string_value(json_object_get(device, name));
}

static int same(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

/* Writes the device and commits: the caches follow, device.changed goes
 * out. The reply stays NULL on success. */
static json_t *write_device(struct pa_op *op, const char *id, json_t *device)
{
	int rc = mg_state_put(op->pa->ctx, op->txn, PA_DB_DEVICES, id, device);
	if (rc)
		return pa_internal_rc(op->pa, "cannot write the device", rc);
	pa_op_device_changed(op, device, NULL);
	if ((rc = pa_op_commit(op)))
		return pa_internal_rc(op->pa, "cannot commit the device", rc);
	return NULL;
}

/* ---- the operator asks ---- */

json_t *pa_device_rotate(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{"id", MG_FIELD_STRING, 1, 1, PA_DEVICE_ID_LEN},
	                                         {0}};
	struct pa *pa = arg;
	struct pa_op op;
	json_t *device, *reply;
	(void)service;

	if ((reply = mg_request_check(ctx, request, fields)))
		return reply;
	const char *id = pa_str(request, "id");
	if ((reply = pa_device_begin(pa, id, &op, &device)))
		return reply;
	const char *state = member(device, "state");
	json_int_t requested = json_integer_value(json_object_get(device, "rotate_requested")) + 1;
	if (!same(state, "active")) {
		/* only a device with a tunnel has an agent that follows */
		reply = mg_error("conflict", "device %s is %s, not active: nothing to rotate", id,
		                 state ? state : "in no state");
	} else {
		json_object_set_new(device, "rotate_requested", json_integer(requested));
		reply = write_device(&op, id, device);
	}
	if (!reply)
		mg_info(ctx, "device %s of user %s: key rotation asked for (%lld)", id,
		        member(device, "user"), (long long)requested);
	if (op.txn)
		pa_op_abort(&op);
	json_decref(device);
	return reply ? reply
	             : json_pack("{s:s, s:I}", "id", id, "rotate_requested", (json_int_t)requested);
}

/* ---- the device's two steps ---- */

/* The checked request of a device's step: its active record in *device
 * (NULL with the reply on error) and its key, canonical, in `key`. */
static json_t *device_step(struct pa *pa, struct pa_op *op, json_t *request, json_t **device,
                           char key[PA_WG_KEY_B64_LEN + 1])
{
	static const struct mg_field fields[] = {
	    {"device_id", MG_FIELD_STRING, 1, 1, PA_DEVICE_ID_LEN},
	    {"register_token", MG_FIELD_STRING, 1, 1, PA_TOKEN_MAX},
	    {"public_key", MG_FIELD_STRING, 1, 1, 64},
	    {"source", MG_FIELD_STRING, 0, 1, PA_SOURCE_MAX},
	    {0}};
	json_t *reply;
	*device = NULL;
	if ((reply = mg_request_check(pa->ctx, request, fields)))
		return reply;
	const char *id = pa_str(request, "device_id");
	if (!pa_device_id_valid(id))
		return mg_field_error("device_id", "device_id must be %d lowercase hex characters",
		                      PA_DEVICE_ID_LEN);
	if (!pa_wg_key_valid(pa_str(request, "public_key"), key))
		return mg_field_error(
		    "public_key", "public_key must be a WireGuard public key: base64 of 32 bytes");
	int rc = pa_op_begin_alone(pa, op);
	if (rc)
		return pa_internal_rc(pa, "cannot begin a transaction", rc);
	if (mg_state_get(pa->ctx, op->txn, PA_DB_DEVICES, id, device))
		return pa_not_registrable();
	if (!pa_token_matches(pa_str(request, "register_token"), member(*device, "token_hash")))
		return pa_not_registrable();
	if ((reply = pa_access_ended_reply(op, *device)))
		return reply;
	const char *state = member(*device, "state");
	if (!same(state, "active"))
		return mg_error("conflict", "device %s is %s: its key cannot change now", id,
		                state ? state : "in no state");
	return NULL;
}

static json_t *step_done(struct pa_op *op, json_t *device, json_t *reply)
{
	if (op->txn)
		pa_op_abort(op);
	json_decref(device);
	return reply;
}

static json_t *next_key_txn(struct pa *pa, json_t *request)
{
	struct pa_op op = {0};
	json_t *device;
	char key[PA_WG_KEY_B64_LEN + 1];
	json_t *reply = device_step(pa, &op, request, &device, key);
	if (reply)
		return step_done(&op, device, reply);
	const char *id = pa_str(request, "device_id");
	const char *next = member(device, "next_public_key");
	const char *owner = json_string_value(json_object_get(pa->keys, key));
	if (same(next, key)) {
		/* registered already: a retry after a lost answer */
	} else if (same(member(device, "public_key"), key)) {
		reply = mg_error("conflict", "this is the device's key already: make a new one");
	} else if (owner && strcmp(owner, id)) {
		reply = mg_error("conflict", "this public key belongs to another device");
	} else if (owner) {
		reply = mg_error("conflict", "this was the device's key before: make a new one");
	} else {
		if (next) /* an earlier next key that was never switched to */
			json_array_append_new(op.keys_del, json_string(next));
		json_object_set_new(device, "next_public_key", json_string(key));
		json_object_set_new(op.keys_add, key, json_string(id));
		if (!(reply = write_device(&op, id, device)))
			mg_info(pa->ctx, "device %s of user %s registered its next key", id,
			        member(device, "user"));
	}
	return step_done(&op, device,
	                 reply ? reply
	                       : json_pack("{s:s, s:s}", "device_id", id, "next_public_key", key));
}

static json_t *switch_key_txn(struct pa *pa, json_t *request)
{
	struct pa_op op = {0};
	json_t *device;
	char key[PA_WG_KEY_B64_LEN + 1];
	json_t *reply = device_step(pa, &op, request, &device, key);
	if (reply)
		return step_done(&op, device, reply);
	const char *id = pa_str(request, "device_id");
	const char *current = member(device, "public_key");
	if (same(current, key)) {
		/* switched already: a retry after a lost answer */
	} else if (!same(member(device, "next_public_key"), key)) {
		reply = mg_error("conflict",
		                 "this is not the device's registered next key (register it first: "
		                 "POST /api/v1/devices/%s/next-key)",
		                 id);
	} else {
		const char *previous = member(device, "previous_public_key");
		if (previous) /* the one before: no peer of any node has it now */
			json_array_append_new(op.keys_del, json_string(previous));
		/* kept, and in the keys index: every node's wireguard plugin
		 * removes its peer, and no other device may take it meanwhile */
		json_object_set_new(device, "previous_public_key", json_string(current));
		json_object_set_new(device, "public_key", json_string(key));
		json_object_del(device, "next_public_key");
		json_object_set(device, "rotated", json_object_get(device, "rotate_requested"));
		json_object_set_new(device, "key_switched_at",
		                    json_integer((json_int_t)pa_now_s(pa)));
		if (!(reply = write_device(&op, id, device)))
			mg_info(pa->ctx, "device %s of user %s switched to its next key", id,
			        member(device, "user"));
	}
	return step_done(&op, device,
	                 reply ? reply
	                       : json_pack("{s:s, s:s}", "device_id", id, "public_key", key));
}

json_t *pa_device_next_key(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	(void)ctx;
	(void)service;
	return pa_token_guarded(arg, "next key", request, next_key_txn);
}

json_t *pa_device_switch_key(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	(void)ctx;
	(void)service;
	return pa_token_guarded(arg, "switch key", request, switch_key_txn);
}
