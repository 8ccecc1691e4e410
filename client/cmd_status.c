/* meshgate status: the tunnel and the saved config, as text or JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "agent.h"
#include "cmd.h"
#include "killswitch.h"
#include "tunnel.h"
#include "wg.h"

static void print_size(const char *label, uint64_t bytes)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 4)
		v /= 1024, u++;
	printf(u ? "%.2f %s %s" : "%.0f %s %s", v, units[u], label);
}

static const char *text_of(json_t *object, const char *key, const char *otherwise)
{
	const char *text = json_string_value(json_object_get(object, key));
	return text ? text : otherwise;
}

/* The agent's path MTU (pmtu.h): the tunnel's MTU, the path's and when
 * it was found. */
static void path_mtu_text(json_t *pm)
{
	json_t *path = json_object_get(pm, "path"), *at = json_object_get(pm, "at");
	if (!json_is_object(pm))
		return;
	printf("  path MTU: tunnel MTU %lld, %s",
	       (long long)json_integer_value(json_object_get(pm, "mtu")),
	       text_of(pm, "state", "?"));
	if (json_is_integer(path))
		printf(", path %lld", (long long)json_integer_value(path));
	if (json_is_integer(at)) {
		long ago = (long)(time(NULL) - (time_t)(json_integer_value(at) / 1000));
		printf(", found %ld seconds ago", ago < 0 ? 0 : ago);
	}
	if (json_string_value(json_object_get(pm, "why")))
		printf(" (%s)", text_of(pm, "why", ""));
	printf("\n");
}

/* What the running agent last saw: its node, the active one, the others,
 * its last switch. */
static void agent_text(const struct cl_args *a)
{
	struct cl_tunnel_opts tun = {a->ifname, a->state_dir, a->backend};
	json_t *agent = cl_agent_status(&tun), *c, *sw;
	size_t i;
	if (!agent) {
		printf("  agent: not running\n");
		return;
	}
	printf("  agent: pid %lld, on %s\n",
	       (long long)json_integer_value(json_object_get(agent, "pid")),
	       text_of(agent, "gateway", "?"));
	json_array_foreach(json_object_get(agent, "candidates"), i, c)
	{
		printf("    %-16s %-22s%s\n", text_of(c, "name", "?"), text_of(c, "endpoint", ""),
		       json_is_true(json_object_get(c, "active")) ? " active" : "");
	}
	if ((sw = json_object_get(agent, "last_switch")) && json_is_object(sw)) {
		time_t at = (time_t)(json_integer_value(json_object_get(sw, "at")) / 1000);
		long ago = (long)(time(NULL) - at);
		printf("  last switch: %ld seconds ago, %s -> %s: %s\n", ago < 0 ? 0 : ago,
		       text_of(sw, "from", "?"), text_of(sw, "to", "?"), text_of(sw, "why", ""));
	}
	json_t *access = json_object_get(agent, "access");
	if (!strcmp(text_of(access, "state", ""), "expired"))
		printf("  access: expired: %s\n", text_of(access, "message", ""));
	path_mtu_text(json_object_get(agent, "path_mtu"));
	json_decref(agent);
}

/* Split or full tunnel (as the interface is marked, else as the saved
 * config says), and the kill switch's gate. */
static bool is_full(const struct cl_args *a, const struct cl_profile *p, bool enrolled)
{
	struct cl_tunnel_opts tun = {a->ifname, a->state_dir, a->backend};
	return cl_tunnel_fwmark(&tun) != 0 || (enrolled && cl_tunnel_is_full(p));
}

static void tunnel_mode_text(const struct cl_args *a, const struct cl_profile *p, bool enrolled)
{
	bool full = is_full(a, p, enrolled);
	printf("  tunnel: %s\n  kill switch: %s\n", full ? "full" : "split",
	       cl_killswitch_state_name(cl_killswitch_state(a->ifname, full)));
}

static void add_tunnel_mode(const struct cl_args *a, const struct cl_profile *p, bool enrolled,
                            json_t *o)
{
	bool full = is_full(a, p, enrolled);
	json_object_set_new(o, "full_tunnel", json_boolean(full));
	json_object_set_new(
	    o, "kill_switch",
	    json_string(cl_killswitch_state_name(cl_killswitch_state(a->ifname, full))));
}

static void status_text(const struct cl_args *a, const struct cl_profile *p, bool enrolled,
                        const struct cl_tunnel_status *st)
{
	char addr[CL_PREFIX_STRLEN], endpoint[CL_ENDPOINT_STRLEN], key[WG_KEY_B64_LEN];
	printf("interface: %s\n  state: %s\n", a->ifname, st->up ? "up" : "down");
	if (st->up) {
		printf("  backend: %s", st->backend);
		if (st->pid)
			printf(" (wireguard-go pid %ld)", (long)st->pid);
		wg_key_to_base64(key, st->public_key);
		printf("\n  public key: %s\n", key);
	}
	if (enrolled) {
		cl_prefix_format(&p->address, addr, sizeof(addr));
		printf("  address: %s\n", addr);
		if (*p->server_url)
			printf("  server: %s (device %s)\n", p->server_url, p->device_id);
	}
	if (st->have_peer && *st->endpoint)
		printf("  endpoint: %s\n", st->endpoint);
	else if (enrolled && cl_endpoint_format(&p->endpoint, endpoint, sizeof(endpoint)) == 0)
		printf("  endpoint: %s\n", endpoint);
	if (!st->up)
		return;
	if (st->last_handshake) {
		long ago = (long)(time(NULL) - st->last_handshake);
		printf("  last handshake: %ld seconds ago\n", ago < 0 ? 0 : ago);
	} else {
		printf("  last handshake: never\n");
	}
	printf("  transfer: ");
	print_size("received", st->rx_bytes);
	printf(", ");
	print_size("sent\n", st->tx_bytes);
	tunnel_mode_text(a, p, enrolled);
	agent_text(a);
}

/* The gateway nodes: as the running agent last saw them, else as the
 * saved config lists them (no probe results). */
static void add_gateways(const struct cl_args *a, const struct cl_profile *p, bool enrolled,
                         json_t *o)
{
	struct cl_tunnel_opts tun = {a->ifname, a->state_dir, a->backend};
	char key[WG_KEY_B64_LEN], endpoint[CL_ENDPOINT_STRLEN];
	json_t *agent = cl_agent_status(&tun);
	if (agent) {
		json_object_set(o, "gateway", json_object_get(agent, "gateway"));
		json_object_set(o, "candidates", json_object_get(agent, "candidates"));
		json_object_set(o, "last_switch", json_object_get(agent, "last_switch"));
		json_object_set(o, "access", json_object_get(agent, "access"));
		json_object_set(o, "path_mtu", json_object_get(agent, "path_mtu"));
		json_object_set_new(o, "agent",
		                    json_pack("{s:O}", "pid", json_object_get(agent, "pid")));
		json_decref(agent);
		return;
	}
	if (!enrolled)
		return;
	json_t *cands = json_array();
	const char *gateway = NULL;
	for (size_t i = 0; i < p->nodes.n_gateways; i++) {
		const struct cl_gateway *g = &p->nodes.gateways[i];
		bool current = !memcmp(g->public_key, p->server_public_key, CL_KEY_LEN);
		wg_key_to_base64(key, g->public_key);
		cl_endpoint_format(&g->endpoint, endpoint, sizeof(endpoint));
		json_array_append_new(cands, json_pack("{s:s, s:s, s:s, s:n, s:b, s:n}", "name",
		                                       g->name, "endpoint", endpoint, "public_key",
		                                       key, "active", "current", current, "probe"));
		if (current)
			gateway = g->name;
	}
	cl_endpoint_format(&p->endpoint, endpoint, sizeof(endpoint));
	json_object_set_new(o, "gateway", json_string(gateway ? gateway : endpoint));
	json_object_set_new(o, "candidates", cands);
	json_object_set_new(o, "last_switch", json_null());
	json_object_set_new(o, "path_mtu", json_null());
	json_object_set_new(o, "agent", json_null());
}

static void status_json(const struct cl_args *a, const struct cl_profile *p, bool enrolled,
                        const struct cl_tunnel_status *st)
{
	char addr[CL_PREFIX_STRLEN], endpoint[CL_ENDPOINT_STRLEN], key[WG_KEY_B64_LEN];
	json_t *o = json_pack("{s:s, s:b}", "interface", a->ifname, "up", st->up);
	if (st->up) {
		wg_key_to_base64(key, st->public_key);
		json_object_set_new(o, "backend", json_string(st->backend));
		json_object_set_new(o, "pid", st->pid ? json_integer(st->pid) : json_null());
		json_object_set_new(o, "public_key", json_string(key));
		json_object_set_new(o, "last_handshake",
		                    st->last_handshake ? json_integer(st->last_handshake)
		                                       : json_null());
		json_object_set_new(o, "rx_bytes", json_integer((json_int_t)st->rx_bytes));
		json_object_set_new(o, "tx_bytes", json_integer((json_int_t)st->tx_bytes));
	}
	if (enrolled) {
		cl_prefix_format(&p->address, addr, sizeof(addr));
		json_object_set_new(o, "address", json_string(addr));
		json_object_set_new(o, "server",
		                    *p->server_url ? json_string(p->server_url) : json_null());
		json_object_set_new(o, "device_id", json_string(p->device_id));
		cl_endpoint_format(&p->endpoint, endpoint, sizeof(endpoint));
	}
	if (st->have_peer && *st->endpoint)
		json_object_set_new(o, "endpoint", json_string(st->endpoint));
	else if (enrolled)
		json_object_set_new(o, "endpoint", json_string(endpoint));
	add_tunnel_mode(a, p, enrolled, o);
	add_gateways(a, p, enrolled, o);
	char *text = json_dumps(o, JSON_INDENT(2));
	printf("%s\n", text);
	free(text);
	json_decref(o);
}

static int run(const struct cl_args *a)
{
	struct cl_tunnel_opts tun = {a->ifname, a->state_dir, a->backend};
	struct cl_tunnel_status st;
	struct cl_profile p;
	struct cl_err err = {0};
	char path[4096];

	cl_profile_path(a->config_dir, a->ifname, path, sizeof(path));
	bool enrolled = access(path, F_OK) == 0;
	if (enrolled && cl_profile_load(path, &p, &err))
		return cl_report(&err);
	if (cl_tunnel_status(&tun, enrolled ? &p : NULL, &st, &err))
		return cl_report(&err);
	if (!enrolled && !st.up)
		return cl_fail(&err, CL_EXIT_NOT_FOUND, "%s is neither up nor enrolled here",
		               a->ifname),
		       cl_report(&err);
	if (a->json)
		status_json(a, &p, enrolled, &st);
	else
		status_text(a, &p, enrolled, &st);
	sodium_memzero(&p, sizeof(p));
	return st.up ? 0 : CL_EXIT_NOT_FOUND;
}

const struct cl_command cl_cmd_status = {
    .name = "status",
    .options = CL_OPT_JSON,
    .run = run,
};
