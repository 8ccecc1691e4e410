/* A device's network config: the networks it routes through the tunnel.
 * The redeem reply hands them out first; preauth.device.config hands out
 * the same computation again later, so that a device follows its role's
 * networks (a role change, a route added or withdrawn) without a new code
 * or a reconnect. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "preauth.h"

static int has_string(json_t *array, json_t *value)
{
	size_t i;
	json_t *v;
	json_array_foreach(array, i, v) if (json_equal(v, value)) return 1;
	return 0;
}

static int routes_everything(json_t *networks)
{
	json_t *all = json_string(PA_FULL_TUNNEL);
	int full = has_string(networks, all);
	json_decref(all);
	return full;
}

json_t *pa_device_networks(struct pa *pa, mg_txn *txn, json_t *server, const char *role)
{
	char subnet[PA_SUBNET_TEXT_MAX];
	json_t *policy = NULL, *list = pa->cfg.networks, *n;
	size_t i;

	if (pa_vpn_subnet(json_string_value(json_object_get(server, "address")), subnet))
		return NULL;
	json_t *allowed = json_pack("[s]", subnet);
	/* the firewall's record is the effective policy, runtime routes
	 * included; the setting is for gateways without a firewall */
	if (role && !mg_state_get(pa->ctx, txn, PA_DB_POLICY, role, &policy))
		list = json_object_get(policy, "subnets");
	json_array_foreach(list, i, n)
	{
		if (json_is_string(n) && !has_string(allowed, n))
			json_array_append(allowed, n);
	}
	/* a role the firewall gives a full tunnel routes everything */
	if (json_is_true(json_object_get(policy, "full_tunnel")))
		json_array_append_new(allowed, json_string(PA_FULL_TUNNEL));
	json_decref(policy);
	return allowed;
}

json_t *pa_device_dns(struct pa *pa, mg_txn *txn)
{
	json_t *server = NULL, *out, *a;
	size_t i;
	if (mg_state_get(pa->ctx, txn, PA_DB_DNS, "server", &server))
		return NULL; /* no dns plugin: devices keep their own resolver */
	out = json_array();
	json_array_foreach(json_object_get(server, "addresses"), i, a)
	{
		if (json_is_string(a))
			json_array_append(out, a);
	}
	const char *zone = json_string_value(json_object_get(server, "zone"));
	if (zone && json_array_size(out))
		json_array_append_new(out, json_string(zone));
	json_decref(server);
	if (!json_array_size(out)) {
		json_decref(out);
		return NULL;
	}
	return out;
}

static json_t *no_device(const char *ip)
{
	return mg_error("not_found", "no active device has the address %s", ip);
}

/* The active device that owns `addr`, through its address record (the
 * truth about addresses): NULL and *reply set when there is none. */
static json_t *device_at(struct pa *pa, mg_txn *txn, uint32_t addr, json_t **reply)
{
	char ip[16];
	json_t *lease = NULL, *device = NULL;
	uint32_t recorded;

	pa_ip_format(addr, ip);
	*reply = NULL;
	if (mg_state_get(pa->ctx, txn, PA_DB_IPAM, ip, &lease)) {
		*reply = no_device(ip);
		return NULL;
	}
	const char *id = json_string_value(json_object_get(lease, "device"));
	if (!id || mg_state_get(pa->ctx, txn, PA_DB_DEVICES, id, &device)) {
		json_decref(lease);
		*reply = no_device(ip);
		return NULL;
	}
	json_decref(lease);
	const char *state = json_string_value(json_object_get(device, "state"));
	const char *address = json_string_value(json_object_get(device, "address"));
	json_t *user;
	const char *name = json_string_value(json_object_get(device, "user"));
	if (state && !strcmp(state, "expired") && name &&
	    !mg_state_get(pa->ctx, txn, PA_DB_USERS, name, &user)) {
		/* the device is told why it has no tunnel any more */
		*reply = pa_access_expired_error(name, user);
		json_decref(user);
		json_decref(device);
		return NULL;
	}
	if (!state || strcmp(state, "active") || !address || pa_ip_parse(address, 1, &recorded) ||
	    recorded != addr) {
		/* pending devices have no tunnel yet; disabled ones are no peers */
		json_decref(device);
		*reply = no_device(ip);
		return NULL;
	}
	return device;
}

json_t *pa_device_config(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{"address", MG_FIELD_STRING, 1, 1, PA_ADDRESS_MAX},
	                                         {0}};
	struct pa *pa = arg;
	json_t *server = NULL, *reply;
	mg_txn *txn;
	uint32_t addr;
	(void)service;

	if ((reply = mg_request_check(pa->ctx, request, fields)))
		return reply;
	if (pa_ip_parse(pa_str(request, "address"), 1, &addr))
		return mg_field_error("address",
		                      "address must be an IPv4 address (optionally /32)");
	/* a read: it never waits for, nor flushes, an open group commit */
	int rc = mg_txn_begin(ctx, MG_TXN_READ, &txn);
	if (rc) {
		mg_error_log(ctx, "device.config: cannot begin a transaction: %s", strerror(-rc));
		return mg_error("internal", "cannot begin a transaction: %s", strerror(-rc));
	}
	if ((rc = mg_state_get(ctx, txn, PA_DB_WG, PA_WG_SERVER_KEY, &server))) {
		mg_txn_abort(ctx, txn);
		return mg_error("internal", "the VPN server is not configured yet (no wg/server)");
	}
	json_t *device = device_at(pa, txn, addr, &reply);
	if (device) {
		const char *role = json_string_value(json_object_get(device, "role"));
		json_t *networks = pa_device_networks(pa, txn, server, role);
		if (!networks)
			reply = mg_error("internal", "wg/server has no usable address");
		else
			reply = json_pack("{s:O, s:s, s:s?, s:O, s:b, s:o}", "device_id",
			                  json_object_get(device, "id"), "state", "active", "role",
			                  role, "address", json_object_get(device, "address"),
			                  "full_tunnel", routes_everything(networks), "allowed_ips",
			                  networks);
		json_t *dns = reply && !mg_reply_error(reply) ? pa_device_dns(pa, txn) : NULL;
		if (dns)
			json_object_set_new(reply, "dns", dns);
		/* the operator asked for a new key: the agent makes one (pa_rotate.c) */
		if (reply && !mg_reply_error(reply) && pa_rotation_pending(device))
			json_object_set_new(reply, "rotate", json_true());
		json_decref(device);
	}
	mg_txn_abort(ctx, txn);
	json_decref(server);
	return reply;
}
