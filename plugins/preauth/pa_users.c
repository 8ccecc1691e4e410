/* Users and their codes: preauth.user.add, .user.list, .user.del,
 * .user.set_role, .code.add, .code.revoke. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "preauth.h"

#define CODE_TEXT_LEN (PA_CODE_SYMBOLS + PA_CODE_SYMBOLS / 4 + 1)

static json_t *internal(struct pa *pa, const char *what, int rc)
{
	/* a cluster's lost race or missing quorum: pa_op_commit said so, and
	 * the caller answers with pa_commit_error */
	if (rc != -ESTALE && rc != -EHOSTUNREACH)
		mg_error_log(pa->ctx, "%s: %s", what, strerror(rc < 0 ? -rc : rc));
	return mg_error("internal", "%s: %s", what, strerror(rc < 0 ? -rc : rc));
}

static json_t *bad_name(const char *what, const char *name)
{
	return mg_field_error(what,
	                      "invalid %s '%.40s': 1 to %d lowercase letters, digits or '-', not "
	                      "starting or ending with '-'",
	                      what, name, PA_NAME_MAX);
}

static json_t *unknown_role(struct pa *pa, const char *role)
{
	char roles[512];
	pa_roles_text(pa, roles, sizeof(roles));
	return mg_field_error("role", "unknown role '%.40s' (configured roles: %s)", role, roles);
}

/* The validity of a new code: "expires" of the request or code_ttl. */
static json_t *code_ttl(struct pa *pa, json_t *request, uint64_t *ttl_ms)
{
	char err[256];
	const char *expires = pa_str(request, "expires");
	*ttl_ms = pa->cfg.code_ttl_ms;
	if (expires && mg_duration_parse(expires, ttl_ms, err, sizeof(err)))
		return mg_field_error("expires", "expires: %s", err);
	return NULL;
}

/* Writes a new code of `user`; only its hash is stored. */
static int issue_code(struct pa_op *op, const char *user, uint64_t ttl_ms, char code[CODE_TEXT_LEN],
                      json_int_t *expires_at)
{
	struct pa *pa = op->pa;
	char canonical[PA_CODE_SYMBOLS + 1], hash[PA_HASH_HEX + 1];
	json_t *old;

	pa_code_new(code, CODE_TEXT_LEN);
	pa_code_normalize(code, canonical);
	pa_code_hash(canonical, hash);
	/* 140 random bits do not collide; this only keeps a put from ever
	 * overwriting a code */
	if (!mg_state_get(pa->ctx, op->txn, PA_DB_CODES, hash, &old)) {
		json_decref(old);
		return -EEXIST;
	}
	json_int_t now = (json_int_t)pa_now_s(pa);
	*expires_at = now + (json_int_t)(ttl_ms / 1000);
	json_t *record = json_pack("{s:s, s:I, s:I, s:s}", "user", user, "created_at", now,
	                           "expires_at", *expires_at, "state", "valid");
	int rc = mg_state_put(pa->ctx, op->txn, PA_DB_CODES, hash, record);
	json_decref(record);
	return rc;
}

/* "access_until" of a request: *until 0 when absent (no limit). */
static json_t *access_until(json_t *request, const char *field, json_int_t *until)
{
	char err[256];
	const char *text = pa_str(request, field);
	*until = 0;
	if (!text)
		return NULL;
	if (pa_time_parse(text, until, err, sizeof(err)))
		return mg_field_error(field, "%s: %s", field, err);
	return NULL;
}

static json_t *user_add(struct pa *pa, json_t *request)
{
	static const struct mg_field fields[] = {{"name", MG_FIELD_STRING, 1, 1, PA_NAME_MAX},
	                                         {"role", MG_FIELD_STRING, 1, 1, PA_NAME_MAX},
	                                         {"expires", MG_FIELD_STRING, 0, 1, 16},
	                                         {"access_until", MG_FIELD_STRING, 0, 1, 40},
	                                         {0}};
	mg_ctx *ctx = pa->ctx;
	struct pa_op op;
	uint64_t ttl_ms;
	json_t *error, *old;

	if ((error = mg_request_check(pa->ctx, request, fields)))
		return error;
	const char *name = pa_str(request, "name"), *role = pa_str(request, "role");
	if (!pa_name_valid(name))
		return bad_name("name", name);
	if (!pa_role_known(pa, role))
		return unknown_role(pa, role);
	if ((error = code_ttl(pa, request, &ttl_ms)))
		return error;
	json_int_t until;
	if ((error = access_until(request, "access_until", &until)))
		return error;
	if (until && until <= (json_int_t)pa_now_s(pa)) {
		char when[32];
		pa_access_time_text(until, when, sizeof(when));
		return mg_field_error(
		    "access_until",
		    "access_until %s is in the past: a new user's access must end "
		    "later",
		    when);
	}

	/* batched like redeems: a script adding many users at once shares
	 * the durable commits */
	int rc = pa_op_begin_batched(pa, &op);
	if (rc)
		return internal(pa, "cannot begin a transaction", rc);
	if (!mg_state_get(ctx, op.txn, PA_DB_USERS, name, &old)) {
		json_decref(old);
		pa_op_abort(&op);
		pa_batch_settle(pa);
		return mg_error("exists", "user '%s' exists", name);
	}
	char code[CODE_TEXT_LEN];
	json_int_t expires_at;
	json_t *user = json_pack("{s:s, s:s, s:I}", "name", name, "role", role, "created_at",
	                         (json_int_t)pa_now_s(pa));
	if (until)
		json_object_set_new(user, "access_until", json_integer(until));
	rc = mg_state_put(ctx, op.txn, PA_DB_USERS, name, user);
	if (!rc)
		rc = issue_code(&op, name, ttl_ms, code, &expires_at);
	if (rc) {
		json_decref(user);
		pa_op_abort(&op);
		pa_batch_settle(pa);
		return internal(pa, "cannot write the user", rc);
	}
	pa_op_user_changed(&op, name, role, "active");
	if ((rc = pa_op_commit(&op))) {
		json_decref(user);
		return internal(pa, "cannot commit the user", rc);
	}
	/* tracked before the batch is durable: should it fail, the firing
	 * finds no such user and does nothing */
	pa_access_track(pa, name, user);
	json_decref(user);
	mg_info(ctx, "user %s added (role %s), code valid until %lld", name, role,
	        (long long)expires_at);
	json_t *reply = json_pack("{s:s, s:s, s:s, s:I}", "user", name, "role", role, "code", code,
	                          "expires_at", expires_at);
	if (until)
		json_object_set_new(reply, "access_until", json_integer(until));
	return pa_batch_reply(pa, reply);
}

json_t *pa_user_add(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	(void)ctx;
	(void)service;
	return pa_batch_run(arg, user_add, request);
}

json_t *pa_code_add(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{"user", MG_FIELD_STRING, 1, 1, PA_NAME_MAX},
	                                         {"expires", MG_FIELD_STRING, 0, 1, 16},
	                                         {0}};
	struct pa *pa = arg;
	struct pa_op op;
	uint64_t ttl_ms;
	json_t *error, *user;
	(void)service;

	if ((error = mg_request_check(pa->ctx, request, fields)))
		return error;
	const char *name = pa_str(request, "user");
	if (!pa_name_valid(name))
		return bad_name("user", name);
	if ((error = code_ttl(pa, request, &ttl_ms)))
		return error;
	int rc = pa_op_begin_alone(pa, &op);
	if (rc)
		return internal(pa, "cannot begin a transaction", rc);
	if (mg_state_get(ctx, op.txn, PA_DB_USERS, name, &user)) {
		pa_op_abort(&op);
		return mg_error("not_found", "no user '%s'", name);
	}
	char code[CODE_TEXT_LEN];
	json_int_t expires_at;
	if ((rc = issue_code(&op, name, ttl_ms, code, &expires_at))) {
		json_decref(user);
		pa_op_abort(&op);
		return internal(pa, "cannot write the code", rc);
	}
	if ((rc = pa_op_commit(&op))) {
		json_decref(user);
		return internal(pa, "cannot commit the code", rc);
	}
	mg_info(ctx, "new code for user %s, valid until %lld", name, (long long)expires_at);
	/* the role too, so that a client prints the same as for user.add */
	json_t *reply =
	    json_pack("{s:s, s:O?, s:s, s:I}", "user", name, "role", json_object_get(user, "role"),
	              "code", code, "expires_at", expires_at);
	json_decref(user);
	return reply;
}

static int count_device(const char *key, json_t *device, void *arg)
{
	json_t *counts = arg;
	const char *user = json_string_value(json_object_get(device, "user"));
	(void)key;
	if (user)
		json_object_set_new(
		    counts, user,
		    json_integer(json_integer_value(json_object_get(counts, user)) + 1));
	return 0;
}

struct listing {
	json_t *counts;
	json_t *users;
	json_int_t now;
};

static int list_user(const char *key, json_t *user, void *arg)
{
	struct listing *l = arg;
	json_t *until = json_object_get(user, "access_until");
	json_array_append_new(l->users,
	                      json_pack("{s:s, s:O?, s:O?, s:I, s:O?, s:s}", "name", key, "role",
	                                json_object_get(user, "role"), "created_at",
	                                json_object_get(user, "created_at"), "devices",
	                                json_integer_value(json_object_get(l->counts, key)),
	                                "access_until", until, "access",
	                                !until                                ? "unlimited"
	                                : json_integer_value(until) <= l->now ? "expired"
	                                                                      : "until"));
	return 0;
}

json_t *pa_user_list(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct pa *pa = arg;
	struct listing l;
	mg_txn *txn;
	json_t *error;
	(void)service;

	if ((error = mg_request_check(pa->ctx, request, fields)))
		return error;
	int rc = mg_txn_begin(ctx, MG_TXN_READ, &txn);
	if (rc)
		return internal(pa, "cannot begin a transaction", rc);
	l.counts = json_object();
	l.users = json_array();
	l.now = (json_int_t)pa_now_s(pa);
	rc = mg_state_foreach(ctx, txn, PA_DB_DEVICES, NULL, count_device, l.counts);
	if (!rc)
		rc = mg_state_foreach(ctx, txn, PA_DB_USERS, NULL, list_user, &l);
	mg_txn_abort(ctx, txn);
	json_decref(l.counts);
	if (rc) {
		json_decref(l.users);
		return internal(pa, "cannot list users", rc);
	}
	return json_pack("{s:o}", "users", l.users);
}

/* Records of `db` whose member "user" is `name`, as key -> value. */
struct of_user {
	const char *name;
	json_t *found;
};

static int collect_of_user(const char *key, json_t *value, void *arg)
{
	struct of_user *o = arg;
	const char *user = json_string_value(json_object_get(value, "user"));
	if (user && !strcmp(user, o->name))
		json_object_set(o->found, key, value);
	return 0;
}

static int records_of_user(struct pa_op *op, const char *db, const char *name, json_t **found)
{
	struct of_user o = {name, json_object()};
	int rc = mg_state_foreach(op->pa->ctx, op->txn, db, NULL, collect_of_user, &o);
	if (rc) {
		json_decref(o.found);
		return rc;
	}
	*found = o.found;
	return 0;
}

/* Revokes the valid codes of a user and deletes their devices. */
static int remove_belongings(struct pa_op *op, const char *name, int *codes, int *devices)
{
	mg_ctx *ctx = op->pa->ctx;
	json_t *found, *v;
	const char *key;
	int rc = records_of_user(op, PA_DB_CODES, name, &found);
	*codes = *devices = 0;
	if (rc)
		return rc;
	json_object_foreach(found, key, v)
	{
		const char *state = json_string_value(json_object_get(v, "state"));
		if (rc || !state || strcmp(state, "valid"))
			continue;
		json_object_set_new(v, "state", json_string("revoked"));
		json_object_set_new(v, "revoked_at", json_integer((json_int_t)pa_now_s(op->pa)));
		rc = mg_state_put(ctx, op->txn, PA_DB_CODES, key, v);
		(*codes)++;
	}
	json_decref(found);
	if (rc || (rc = records_of_user(op, PA_DB_DEVICES, name, &found)))
		return rc;
	json_object_foreach(found, key, v)
	{
		if (!rc)
			rc = pa_op_device_delete(op, v);
		(*devices)++;
	}
	json_decref(found);
	return rc;
}

json_t *pa_user_del(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{"name", MG_FIELD_STRING, 1, 1, PA_NAME_MAX}, {0}};
	struct pa *pa = arg;
	struct pa_op op;
	json_t *error, *user;
	int codes, devices;
	(void)service;

	if ((error = mg_request_check(pa->ctx, request, fields)))
		return error;
	const char *name = pa_str(request, "name");
	if (!pa_name_valid(name))
		return bad_name("name", name);
	int rc = pa_op_begin_alone(pa, &op);
	if (rc)
		return internal(pa, "cannot begin a transaction", rc);
	if (mg_state_get(ctx, op.txn, PA_DB_USERS, name, &user)) {
		pa_op_abort(&op);
		return mg_error("not_found", "no user '%s'", name);
	}
	/* one transaction: a user is never half deleted */
	rc = remove_belongings(&op, name, &codes, &devices);
	if (!rc)
		rc = mg_state_del(ctx, op.txn, PA_DB_USERS, name);
	if (rc) {
		json_decref(user);
		pa_op_abort(&op);
		return internal(pa, "cannot delete the user", rc);
	}
	pa_op_user_changed(&op, name, json_string_value(json_object_get(user, "role")), "deleted");
	json_decref(user);
	if ((rc = pa_op_commit(&op)))
		return internal(pa, "cannot commit the deletion", rc);
	pa_access_forget(pa, name);
	mg_info(ctx, "user %s deleted with %d devices, %d codes revoked", name, devices, codes);
	return json_pack("{s:s, s:i, s:i}", "name", name, "devices_deleted", devices,
	                 "codes_revoked", codes);
}

json_t *pa_user_set_role(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{"name", MG_FIELD_STRING, 1, 1, PA_NAME_MAX},
	                                         {"role", MG_FIELD_STRING, 1, 1, PA_NAME_MAX},
	                                         {0}};
	struct pa *pa = arg;
	struct pa_op op;
	json_t *error, *user, *devices, *v;
	const char *key;
	(void)service;

	if ((error = mg_request_check(pa->ctx, request, fields)))
		return error;
	const char *name = pa_str(request, "name"), *role = pa_str(request, "role");
	if (!pa_name_valid(name))
		return bad_name("name", name);
	if (!pa_role_known(pa, role))
		return unknown_role(pa, role);
	int rc = pa_op_begin_alone(pa, &op);
	if (rc)
		return internal(pa, "cannot begin a transaction", rc);
	if (mg_state_get(ctx, op.txn, PA_DB_USERS, name, &user)) {
		pa_op_abort(&op);
		return mg_error("not_found", "no user '%s'", name);
	}
	const char *old = json_string_value(json_object_get(user, "role"));
	int same = old && !strcmp(old, role);
	int n = 0;
	json_object_set_new(user, "role", json_string(role));
	rc = same ? 0 : mg_state_put(ctx, op.txn, PA_DB_USERS, name, user);
	json_decref(user);
	/* The role is copied into each device, so that those who follow
	 * device.changed (the firewall) never need to join users. */
	if (!rc && !same && !(rc = records_of_user(&op, PA_DB_DEVICES, name, &devices))) {
		json_object_foreach(devices, key, v)
		{
			json_object_set_new(v, "role", json_string(role));
			if (!rc)
				rc = mg_state_put(ctx, op.txn, PA_DB_DEVICES, key, v);
			pa_op_device_changed(&op, v, NULL);
			n++;
		}
		json_decref(devices);
	}
	if (rc || same) {
		pa_op_abort(&op);
		return rc ? internal(pa, "cannot change the role", rc)
		          : json_pack("{s:s, s:s, s:i}", "name", name, "role", role, "devices", 0);
	}
	pa_op_user_changed(&op, name, role, "active");
	if ((rc = pa_op_commit(&op)))
		return internal(pa, "cannot commit the role", rc);
	mg_info(ctx, "user %s now has role %s (%d devices)", name, role, n);
	return json_pack("{s:s, s:s, s:i}", "name", name, "role", role, "devices", n);
}

/* A new end of a user's access, or none ("never"), in one transaction with
 * its effect on the devices: a time already past expires the active ones
 * at once, a later one (or never) makes the expired ones active again.
 * Devices an operator disabled stay disabled either way. */
json_t *pa_user_set_access(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{"name", MG_FIELD_STRING, 1, 1, PA_NAME_MAX},
	                                         {"until", MG_FIELD_STRING, 1, 1, 40},
	                                         {0}};
	struct pa *pa = arg;
	struct pa_op op;
	json_t *error, *user;
	json_int_t until = 0;
	int changed = 0;
	(void)service;

	if ((error = mg_request_check(pa->ctx, request, fields)))
		return error;
	const char *name = pa_str(request, "name");
	if (!pa_name_valid(name))
		return bad_name("name", name);
	if (strcmp(pa_str(request, "until"), "never") &&
	    (error = access_until(request, "until", &until)))
		return error;
	int rc = pa_op_begin_alone(pa, &op);
	if (rc)
		return internal(pa, "cannot begin a transaction", rc);
	if (mg_state_get(ctx, op.txn, PA_DB_USERS, name, &user)) {
		pa_op_abort(&op);
		return mg_error("not_found", "no user '%s'", name);
	}
	if (until)
		json_object_set_new(user, "access_until", json_integer(until));
	else
		json_object_del(user, "access_until");
	int ended = pa_access_ended(pa, user);
	rc = mg_state_put(ctx, op.txn, PA_DB_USERS, name, user);
	if (!rc)
		rc = pa_access_devices(&op, name, ended, &changed);
	if (rc) {
		json_decref(user);
		pa_op_abort(&op);
		return internal(pa, "cannot change the access", rc);
	}
	pa_op_user_changed(&op, name, json_string_value(json_object_get(user, "role")), "active");
	if ((rc = pa_op_commit(&op))) {
		json_decref(user);
		return internal(pa, "cannot commit the access", rc);
	}
	pa_access_track(pa, name, user);
	json_decref(user);
	char when[32] = "never";
	if (until)
		pa_access_time_text(until, when, sizeof(when));
	mg_info(ctx, "access of user %s now ends %s%s (%d devices %s)", name, until ? "at " : "",
	        when, changed, ended ? "expired" : "active again");
	json_t *reply = json_pack("{s:s, s:s, s:i}", "name", name, "access",
	                          ended   ? "expired"
	                          : until ? "until"
	                                  : "unlimited",
	                          "devices", changed);
	json_object_set_new(reply, "access_until", until ? json_integer(until) : json_null());
	return reply;
}

json_t *pa_code_revoke(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{"code", MG_FIELD_STRING, 1, 1, PA_CODE_TEXT_MAX},
	                                         {0}};
	struct pa *pa = arg;
	struct pa_op op;
	char canonical[PA_CODE_SYMBOLS + 1], hash[PA_HASH_HEX + 1];
	json_t *error, *code;
	(void)service;

	if ((error = mg_request_check(pa->ctx, request, fields)))
		return error;
	if (pa_code_normalize(pa_str(request, "code"), canonical))
		return mg_field_error("code",
		                      "malformed code: expected %d characters of "
		                      "0-9 and A-Z (without I, L, O, U), dashes optional",
		                      PA_CODE_SYMBOLS);
	pa_code_hash(canonical, hash);
	int rc = pa_op_begin_alone(pa, &op);
	if (rc)
		return internal(pa, "cannot begin a transaction", rc);
	if (mg_state_get(ctx, op.txn, PA_DB_CODES, hash, &code)) {
		pa_op_abort(&op);
		return mg_error("not_found", "no such code");
	}
	const char *state = json_string_value(json_object_get(code, "state"));
	json_t *reply =
	    json_pack("{s:O?, s:s}", "user", json_object_get(code, "user"), "state", "revoked");
	if (state && !strcmp(state, "used")) {
		json_decref(reply);
		const char *device = json_string_value(json_object_get(code, "device"));
		reply = mg_error("conflict", "the code was already used (device %s)",
		                 device ? device : "?");
	} else if (!state || strcmp(state, "revoked")) {
		json_object_set_new(code, "state", json_string("revoked"));
		json_object_set_new(code, "revoked_at", json_integer((json_int_t)pa_now_s(pa)));
		rc = mg_state_put(ctx, op.txn, PA_DB_CODES, hash, code);
		if (!rc && !(rc = pa_op_commit(&op)))
			mg_info(ctx, "a code of user %s was revoked",
			        json_string_value(json_object_get(code, "user")));
		if (rc) {
			json_decref(reply);
			reply = internal(pa, "cannot revoke the code", rc);
		}
	}
	if (op.txn)
		pa_op_abort(&op);
	json_decref(code);
	return reply;
}
