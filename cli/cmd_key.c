/* The node's private keys, through the secret service (secret.status,
 * secret.rotate: docs/architecture.md, "Secrets"; docs/vault.md). No key
 * is ever printed: the service's status holds none. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus_client.h"
#include "ctl.h"

/* "42s", "5m", "3h", "2d" */
static void format_span(long long ms, char *out, size_t len)
{
	long long s = (ms < 0 ? 0 : ms) / 1000;
	if (s < 120)
		snprintf(out, len, "%llds", s);
	else if (s < 7200)
		snprintf(out, len, "%lldm", s / 60);
	else if (s < 172800)
		snprintf(out, len, "%lldh", s / 3600);
	else
		snprintf(out, len, "%lldd", s / 86400);
}

static long long num(json_t *o, const char *name)
{
	return (long long)json_integer_value(json_object_get(o, name));
}

static void print_backend(json_t *reply)
{
	json_t *vault = json_object_get(reply, "vault");
	printf("backend: %s", ctl_str(reply, "backend"));
	if (vault) {
		printf(" at %s: %s", ctl_str(vault, "address"),
		       json_is_true(json_object_get(vault, "reachable")) ? "reachable"
		                                                         : "UNREACHABLE");
		if (json_object_get(vault, "token_ttl_s"))
			printf(", token ttl %llds", num(vault, "token_ttl_s"));
		if (num(vault, "writes_waiting"))
			printf(", %lld write(s) waiting for Vault", num(vault, "writes_waiting"));
		if (strcmp(ctl_str(vault, "error"), "-"))
			printf(" (%s)", ctl_str(vault, "error"));
	}
	printf("\n");
}

/* The gateway's key switch under way (wg.status: next_public_key,
 * next_version, switch_at_ms), or NULL: none, or no wireguard plugin. */
static json_t *gateway_switch(struct ctl *ctl)
{
	json_t *reply = NULL;
	if (mg_bus_client_request(ctl->bus, "wg.status", NULL, ctl->timeout_ms, &reply) ||
	    !json_object_get(reply, "switch_at_ms")) {
		json_decref(reply);
		return NULL;
	}
	return reply;
}

/* "wg0 switches to version 2 (public key K) at 10:59:59Z, in 4s" */
static void print_gateway_switch(json_t *sw, long long now_ms)
{
	char at[32], in[16];
	time_t t = (time_t)(num(sw, "switch_at_ms") / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(at, sizeof(at), "%H:%M:%SZ", &tm);
	format_span(num(sw, "switch_at_ms") - now_ms + 999, in, sizeof(in));
	printf("%s switches to version %lld (public key %s) at %s, in %s; devices follow "
	       "100 ms later\n",
	       ctl_str(sw, "interface"), num(sw, "next_version"), ctl_str(sw, "next_public_key"),
	       at, in);
}

static int key_status(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply, *k;
	size_t i;
	(void)argv;
	if (argc)
		return ctl_fail("usage: meshgatectl key status [--json]");
	int rc = ctl_call(ctl, "secret.status", NULL, &reply);
	if (rc || ctl->json) {
		json_decref(reply);
		return rc;
	}
	long long now = num(reply, "now_ms");
	print_backend(reply);
	printf("%-24s %-8s %-6s %-14s %s\n", "KEY", "VERSION", "AGE", "NEXT VERSION",
	       "NEXT ROTATION");
	json_array_foreach(json_object_get(reply, "keys"), i, k)
	{
		char age[16], next[32] = "-", due[32] = "-";
		format_span(now - num(k, "created_ms"), age, sizeof(age));
		if (json_object_get(k, "next"))
			snprintf(next, sizeof(next), "%lld (made)",
			         num(json_object_get(k, "next"), "version"));
		if (json_is_true(json_object_get(k, "rotating"))) {
			json_t *vault = json_object_get(reply, "vault");
			snprintf(due, sizeof(due), "%s",
			         vault && !json_is_true(json_object_get(vault, "reachable"))
			             ? "now, waiting for Vault"
			             : "under way");
		} else if (json_object_get(k, "next_rotation_ms")) {
			char in[16];
			format_span(num(k, "next_rotation_ms") - now, in, sizeof(in));
			snprintf(due, sizeof(due), "in %s", in);
		}
		printf("%-24s %-8lld %-6s %-14s %s\n", ctl_str(k, "name"), num(k, "version"), age,
		       next, due);
	}
	json_t *sw = gateway_switch(ctl);
	if (sw)
		print_gateway_switch(sw, now);
	json_decref(sw);
	json_decref(reply);
	return 0;
}

/* The secret of the gateway's WireGuard interface or of the mesh's: the
 * one the service lists under that owner. */
static int find_key(struct ctl *ctl, const char *owner, char *name, size_t len)
{
	json_t *reply, *k;
	size_t i;
	int json = ctl->json;
	ctl->json = 0;
	int rc = ctl_call(ctl, "secret.status", NULL, &reply);
	ctl->json = json;
	if (rc)
		return rc;
	name[0] = '\0';
	json_array_foreach(json_object_get(reply, "keys"), i, k)
	{
		const char *n = json_string_value(json_object_get(k, "name"));
		if (n && !strncmp(n, owner, strlen(owner)) && n[strlen(owner)] == '/')
			snprintf(name, len, "%s", n);
	}
	json_decref(reply);
	if (!name[0])
		return ctl_fail("no %s key on this node (is the %s plugin running?)", owner, owner);
	return 0;
}

/* The gateway's key: the next version is made, and the wireguard plugin
 * switches to it at a time it publishes ahead (docs/rotation.md); what
 * it scheduled is printed. */
static int rotate_gateway(struct ctl *ctl, const char *name)
{
	json_t *req = json_pack("{s:s}", "name", name), *reply, *sw = NULL;
	int rc = ctl_call(ctl, "secret.rotate", req, &reply);
	json_decref(req);
	if (rc || ctl->json) {
		json_decref(reply);
		return rc;
	}
	printf("%s: version %lld %s (%s back end); version %lld in use\n", name,
	       num(json_object_get(reply, "next"), "version"),
	       json_is_true(json_object_get(reply, "made")) ? "made" : "was made already",
	       ctl_str(reply, "backend"), num(reply, "version"));
	/* the plugin schedules the switch on the service's event: a moment */
	for (int i = 0; i < 30 && !(sw = gateway_switch(ctl)); i++)
		nanosleep(&(struct timespec){.tv_nsec = 100 * 1000000L}, NULL);
	if (sw) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		print_gateway_switch(sw, now.tv_sec * 1000LL + now.tv_nsec / 1000000);
		printf("the version it replaces stays valid for the grace period\n");
	} else {
		printf("no switch scheduled by the wireguard plugin yet (is it running? see "
		       "meshgated's log)\n");
	}
	rc = sw ? 0 : 1;
	json_decref(sw);
	json_decref(reply);
	return rc;
}

/* A device's key is made and kept on the device: the node asks its agent
 * to rotate it (docs/rotation.md). */
static int rotate_device(struct ctl *ctl, const char *id)
{
	json_t *reply;
	json_t *req = json_pack("{s:s}", "id", id);
	int rc = ctl_call(ctl, "preauth.device.rotate", req, &reply);
	json_decref(req);
	if (!rc && !ctl->json)
		printf(
		    "device %s: key rotation asked for (request %lld). Its agent makes a new key "
		    "pair on the device and switches to it at its next probe (`meshgatectl device "
		    "list --json` shows \"rotated\": %lld once done).\n",
		    id, num(reply, "rotate_requested"), num(reply, "rotate_requested"));
	json_decref(reply);
	return rc;
}

static int key_rotate(struct ctl *ctl, int argc, char **argv)
{
	const char *device = ctl_take_option(&argc, argv, "--device");
	const char *owner = NULL;
	char name[160];
	json_t *reply;
	if (argc == 1 && !strcmp(argv[0], "--gateway"))
		owner = "wireguard";
	else if (argc == 1 && !strcmp(argv[0], "--mesh"))
		owner = "mesh";
	if ((!owner) == (!device) || (device && argc))
		return ctl_fail("usage: meshgatectl key rotate --gateway | --mesh | --device ID");
	if (device)
		return rotate_device(ctl, device);
	int rc = find_key(ctl, owner, name, sizeof(name));
	if (rc)
		return rc;
	if (!strcmp(owner, "wireguard"))
		return rotate_gateway(ctl, name);
	/* the mesh's key */
	json_t *req = json_pack("{s:s}", "name", name);
	rc = ctl_call(ctl, "secret.rotate", req, &reply);
	json_decref(req);
	if (rc || ctl->json) {
		json_decref(reply);
		return rc;
	}
	json_t *next = json_object_get(reply, "next");
	printf("%s: version %lld %s (%s back end). The mesh plugin publishes it to the other "
	       "nodes and switches to it after mesh.key_switch_lead (default 5s), each node "
	       "following; `meshgatectl key status` shows it in use once done.\n",
	       name, num(next, "version"),
	       json_is_true(json_object_get(reply, "made")) ? "made" : "was already made",
	       ctl_str(reply, "backend"));
	json_decref(reply);
	return 0;
}

const struct ctl_command ctl_key_commands[] = {
    {"key status", "key status [--json]: the node's keys (version, age, back end)", key_status},
    {"key rotate",
     "key rotate --gateway | --mesh | --device ID: make a key's next version; a device's "
     "agent rotates its own key",
     key_rotate},
    {0},
};
