/* preauth: the descriptor, its settings and its lifecycle. The services
 * are in pa_users.c and pa_devices.c; docs/preauth.md describes them. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "preauth.h"

/* How often the reaper looks at the pending devices (a walk of an
 * in-memory map): a device outlives pending_ttl by this much at most. */
#define REAP_INTERVAL_MS 5000

static const struct mg_setting settings[] = {
    {"code_ttl", MG_SETTING_STRING, "\"24h\"",
     "How long a new pre-auth code stays valid, unless the request gives \"expires\". A "
     "duration: a number and one unit s, m, h or d (\"30s\", \"10m\", \"24h\", \"7d\").",
     NULL, 0},
    {"pending_ttl", MG_SETTING_STRING, "\"10m\"",
     "How long a device that redeemed a code has to register its public key; after that it "
     "is deleted and its address freed. A duration.",
     NULL, 0},
    {"roles", MG_SETTING_STRINGS, "[\"admin\", \"developer\"]",
     "The roles a user may have (lowercase names of 1 to 32 letters, digits or '-'). The "
     "firewall policy grants access by role.",
     NULL, 0},
    {"keepalive", MG_SETTING_INT, "25",
     "PersistentKeepalive handed to clients, in seconds (0 turns it off): keeps the NAT "
     "mappings of clients behind routers open.",
     NULL, 0},
    {"redeem_failures", MG_SETTING_INT, "10",
     "Failed redeems and registers allowed per client address and minute; further attempts "
     "from the address are refused with rate_limited until the minute is over.",
     NULL, 0},
    {"prefix_failures", MG_SETTING_INT, "100",
     "Failed redeems and registers allowed per client network (the /24 of an IPv4 address, "
     "the /64 of an IPv6 one) and minute; further attempts from the network are refused "
     "with rate_limited until the minute is over.",
     NULL, 0},
    {"global_failures", MG_SETTING_INT, "120",
     "Failed redeems and registers allowed per minute from all clients together. Once they "
     "are spent, a network is blocked for a minute at its first failure, while valid codes "
     "from networks that have not failed still get in.",
     NULL, 0},
    {"networks", MG_SETTING_STRINGS, "[]",
     "Networks behind the gateway (\"10.20.0.0/24\") that devices route through the tunnel "
     "besides the VPN subnet, for roles the firewall policy (state db `policy`) says nothing "
     "about.",
     NULL, 0},
    {"code_retention", MG_SETTING_STRING, "\"30d\"",
     "How long used, revoked and expired codes are kept after their expiry, so that a late "
     "redeem is told why it fails; then they are purged. A duration.",
     NULL, 0},
    {0},
};

/* How a service writes: ALONE ones in one op of their own, which
 * serve_alone runs again when its commit loses a race to another node of
 * the cluster; batched ones retry in pa_batch.c; READ ones do not write. */
enum kind { READ, BATCHED, ALONE };

static const struct {
	const char *name;
	mg_service_fn fn;
	enum kind kind;
} services[] = {
    {"preauth.user.add", pa_user_add, BATCHED},
    {"preauth.user.list", pa_user_list, READ},
    {"preauth.user.del", pa_user_del, ALONE},
    {"preauth.user.set_role", pa_user_set_role, ALONE},
    {"preauth.user.set_access", pa_user_set_access, ALONE},
    {"preauth.code.add", pa_code_add, ALONE},
    {"preauth.code.revoke", pa_code_revoke, ALONE},
    {"preauth.redeem", pa_redeem, BATCHED},
    {"preauth.register", pa_register, BATCHED},
    {"preauth.device.list", pa_device_list, READ},
    {"preauth.device.disable", pa_device_disable, ALONE},
    {"preauth.device.enable", pa_device_enable, ALONE},
    {"preauth.device.del", pa_device_del, ALONE},
    {"preauth.device.config", pa_device_config, READ},
    {"preauth.metrics", pa_metrics, READ},
    {"preauth.device.rotate", pa_device_rotate, ALONE},
    {"preauth.device.next_key", pa_device_next_key, ALONE},
    {"preauth.device.switch_key", pa_device_switch_key, ALONE},
};

#define N_SERVICES (sizeof(services) / sizeof(services[0]))

/* A service of one standalone op. Its commit may lose a race to another
 * node (-ESTALE: nothing was written, and the mirror has caught up): the
 * whole request runs again from a fresh transaction, a few times; one the
 * cluster cannot take (-EHOSTUNREACH) is answered "unavailable" at once. */
static json_t *serve_alone(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	struct pa *pa = arg;
	mg_service_fn fn = NULL;
	for (size_t i = 0; !fn && i < N_SERVICES; i++)
		if (!strcmp(services[i].name, service))
			fn = services[i].fn;
	for (int tries = 1;; tries++) {
		pa->commit_rc = 0;
		json_t *reply = fn(ctx, service, request, arg);
		int rc = pa->commit_rc;
		if (rc != -ESTALE || tries == PA_COMMIT_TRIES) {
			json_t *error = pa_commit_error(rc);
			if (!error)
				return reply;
			json_decref(reply);
			return error;
		}
		json_decref(reply);
		pa_cache_rebuild(pa); /* the other node's change, not yet heard */
	}
}

static int duration_setting(json_t *cfg, const char *name, uint64_t *ms, char *err, size_t errlen)
{
	char why[200];
	if (mg_duration_parse(json_string_value(json_object_get(cfg, name)), ms, why,
	                      sizeof(why))) {
		snprintf(err, errlen, "preauth.%s: %s", name, why);
		return -EINVAL;
	}
	return 0;
}

static int networks_setting(json_t *cfg, struct pa_settings *s, char *err, size_t errlen)
{
	json_t *networks = json_object_get(cfg, "networks"), *n;
	size_t i;
	json_array_foreach(networks, i, n)
	{
		char addr[64];
		unsigned char buf[16];
		const char *text = json_string_value(n);
		const char *slash = strchr(text, '/');
		int len = slash ? atoi(slash + 1) : -1;
		snprintf(addr, sizeof(addr), "%.*s", slash ? (int)(slash - text) : 0, text);
		if (!slash || len < 0 || len > 32 || inet_pton(AF_INET, addr, buf) != 1) {
			snprintf(err, errlen, "preauth.networks: '%s' is not an IPv4 prefix", text);
			return -EINVAL;
		}
	}
	s->networks = json_incref(networks);
	return 0;
}

static int roles_setting(json_t *cfg, struct pa_settings *s, char *err, size_t errlen)
{
	json_t *roles = json_object_get(cfg, "roles"), *r;
	size_t i;
	if (!json_array_size(roles)) {
		snprintf(err, errlen, "preauth.roles: at least one role is needed");
		return -EINVAL;
	}
	json_array_foreach(roles, i, r)
	{
		const char *name = json_string_value(r);
		if (!pa_name_valid(name)) {
			snprintf(err, errlen,
			         "preauth.roles[%zu]: \"%.40s\" is not 1 to %d lowercase letters, "
			         "digits or '-'",
			         i, name ? name : "", PA_NAME_MAX);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(json_string_value(json_array_get(roles, j)), name)) {
				snprintf(err, errlen, "preauth.roles: \"%s\" appears twice", name);
				return -EINVAL;
			}
	}
	s->roles = json_incref(roles);
	return 0;
}

static int int_setting(json_t *cfg, const char *name, int min, int max, int *out, char *err,
                       size_t errlen)
{
	json_int_t v = json_integer_value(json_object_get(cfg, name));
	if (v < min || v > max) {
		snprintf(err, errlen, "preauth.%s: %lld is not between %d and %d", name,
		         (long long)v, min, max);
		return -EINVAL;
	}
	*out = (int)v;
	return 0;
}

/* The settings of the current config, all checked before any is used:
 * a reload with one bad value changes nothing. */
static int load_settings(mg_ctx *ctx, struct pa_settings *s)
{
	json_t *cfg = mg_config(ctx);
	char err[300];
	memset(s, 0, sizeof(*s));
	int rc = duration_setting(cfg, "code_ttl", &s->code_ttl_ms, err, sizeof(err));
	if (!rc)
		rc = duration_setting(cfg, "pending_ttl", &s->pending_ttl_ms, err, sizeof(err));
	if (!rc)
		rc = duration_setting(cfg, "code_retention", &s->code_retention_ms, err,
		                      sizeof(err));
	if (!rc)
		rc = int_setting(cfg, "keepalive", 0, 65535, &s->keepalive, err, sizeof(err));
	if (!rc)
		rc = int_setting(cfg, "redeem_failures", 1, 1000000, &s->failures.address, err,
		                 sizeof(err));
	if (!rc)
		rc = int_setting(cfg, "prefix_failures", 1, 1000000, &s->failures.prefix, err,
		                 sizeof(err));
	if (!rc)
		rc = int_setting(cfg, "global_failures", 1, 1000000, &s->failures.global, err,
		                 sizeof(err));
	if (!rc)
		rc = roles_setting(cfg, s, err, sizeof(err));
	if (!rc)
		rc = networks_setting(cfg, s, err, sizeof(err));
	if (rc)
		mg_error_log(ctx, "%s", err);
	return rc;
}

static void pa_free(struct pa *pa)
{
	if (!pa)
		return;
	json_decref(pa->cfg.roles);
	json_decref(pa->cfg.networks);
	json_decref(pa->keys);
	json_decref(pa->pending);
	json_decref(pa->devices);
	pa_list_free(pa->list);
	json_decref(pa->users);
	json_decref(pa->outcomes);
	pa_access_free(pa->access);
	pa_ipam_free(pa->ipam);
	pa_guard_free(pa->guard);
	free(pa);
}

static int preauth_init(mg_ctx *ctx)
{
	if (sodium_init() < 0) {
		mg_error_log(ctx, "libsodium cannot initialise");
		return -EIO;
	}
	struct pa *pa = calloc(1, sizeof(*pa));
	if (!pa)
		return -ENOMEM;
	pa->ctx = ctx;
	int rc = load_settings(ctx, &pa->cfg);
	if (rc) {
		pa_free(pa);
		return rc;
	}
	pa->keys = json_object();
	pa->pending = json_object();
	pa->devices = json_object();
	pa->list = pa_list_new();
	pa->users = json_object();
	pa->outcomes = json_object();
	pa->guard = pa_guard_new(&pa->cfg.failures, mg_now_ms(ctx));
	pa->access = pa_access_new();
	if (!pa->keys || !pa->pending || !pa->devices || !pa->list || !pa->users || !pa->outcomes ||
	    !pa->guard || !pa->access)
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < N_SERVICES; i++)
		if ((rc = mg_service_add(ctx, services[i].name,
		                         services[i].kind == ALONE ? serve_alone : services[i].fn,
		                         pa)))
			mg_error_log(ctx, "cannot serve %s: %s", services[i].name, strerror(-rc));
	/* another node's changes, for the caches and the followers here */
	if (!rc && (rc = mg_subscribe(ctx, "state." PA_DB_DEVICES, pa_remote_device, pa)))
		mg_error_log(ctx, "cannot follow state.devices: %s", strerror(-rc));
	if (!rc && (rc = mg_subscribe(ctx, "state." PA_DB_USERS, pa_remote_user, pa)))
		mg_error_log(ctx, "cannot follow state.users: %s", strerror(-rc));
	if (!rc && (rc = mg_subscribe(ctx, "state." PA_DB_IPAM, pa_remote_ipam, pa)))
		mg_error_log(ctx, "cannot follow state.ipam: %s", strerror(-rc));
	if (!rc && (rc = mg_timer_add(ctx, REAP_INTERVAL_MS, 1, pa_reap, pa)) > 0)
		rc = 0;
	if (rc) {
		/* the core drops our registrations; stop is not called */
		pa_free(pa);
		return rc;
	}
	ctx->self = pa;
	return 0;
}

/* The caches of devices and addresses are read here, not in init: every
 * plugin's start waits for every init, and at 10k devices this read is
 * the longest of them. The wireguard plugin writes wg/server in its own
 * start, which runs before ours, so the address pool is built now rather
 * than at the first redeem. Requests wait in the bus until start returns. */
static int preauth_start(mg_ctx *ctx)
{
	struct pa *pa = ctx->self;
	int rc = pa_cache_load(pa);
	if (rc) {
		mg_error_log(ctx, "cannot read devices from state: %s", strerror(-rc));
		return rc;
	}
	if (!pa->ipam)
		mg_info(ctx, "no wg/server yet: the address pool is built at the first redeem");
	mg_info(ctx, "%zu devices pending, %zu registered keys", json_object_size(pa->pending),
	        json_object_size(pa->keys));
	mg_ready(ctx); /* devices and addresses are loaded */
	return 0;
}

static int warn_stale_role(const char *key, json_t *user, void *arg)
{
	struct pa *pa = arg;
	const char *role = json_string_value(json_object_get(user, "role"));
	if (!pa_role_known(pa, role))
		mg_warn(pa->ctx, "user %s has role '%s', which is no longer configured", key,
		        role ? role : "");
	return 0;
}

static int preauth_reload(mg_ctx *ctx)
{
	struct pa *pa = ctx->self;
	struct pa_settings next;
	mg_txn *txn;
	int rc = load_settings(ctx, &next);
	if (rc)
		return rc;
	json_decref(pa->cfg.roles);
	json_decref(pa->cfg.networks);
	pa->cfg = next;
	pa_guard_set_limits(pa->guard, &pa->cfg.failures);
	/* users keep a removed role (deleting them is the operator's call) */
	if (!mg_txn_begin(ctx, MG_TXN_READ, &txn)) {
		mg_state_foreach(ctx, txn, PA_DB_USERS, NULL, warn_stale_role, pa);
		mg_txn_abort(ctx, txn);
	}
	return 0;
}

static void preauth_stop(mg_ctx *ctx)
{
	pa_batch_flush(ctx->self); /* what was done is made durable and answered */
	pa_free(ctx->self);
	ctx->self = NULL;
}

static const char *const depends[] = {"wireguard", NULL};
static const char *const owns[] = {PA_DB_USERS, PA_DB_CODES, PA_DB_DEVICES, PA_DB_IPAM, NULL};
/* All of them: every node onboards into the same users, codes, devices
 * and addresses. Codes and register tokens are stored as hashes only. */
static const char *const cluster[] = {PA_DB_USERS, PA_DB_CODES, PA_DB_DEVICES, PA_DB_IPAM, NULL};

MG_PLUGIN(.name = "preauth", .version = "0.1.0",
          .description = "users, single-use pre-auth codes, device onboarding and addresses",
          .depends = depends, .owns = owns, .cluster = cluster, .settings = settings,
          .init = preauth_init, .start = preauth_start, .reload = preauth_reload,
          .stop = preauth_stop);
