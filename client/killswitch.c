#include "killswitch.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "spawn.h"

#define DHCP_RULE "udp sport 68 udp dport 67 accept"

static int nft(const char *script, char **out, char *msg, size_t msglen)
{
	char *argv[] = {"nft", "-f", "-", NULL};
	return mg_spawn_check(argv, script, strlen(script), out, msg, msglen);
}

static void table_name(const char *ifname, char *buf, size_t size)
{
	snprintf(buf, size, "inet meshgate-%s", ifname);
}

char *cl_killswitch_render(const char *ifname, bool full_tunnel,
                           const struct cl_killswitch_endpoint *endpoints, size_t n)
{
	char t[64], *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	table_name(ifname, t, sizeof(t));
	/* declared if missing, then emptied and filled: the same script makes
	 * and updates, and the gate's set is never re-created */
	fprintf(f,
	        "add table %s\n"
	        "add set %s gate { typeof numgen inc mod 1; flags dynamic,timeout; timeout %ds; }\n"
	        "add set %s endpoints4 { type ipv4_addr . inet_service; }\n"
	        "add set %s endpoints6 { type ipv6_addr . inet_service; }\n"
	        "add chain %s input { type filter hook input priority 0; policy accept; }\n"
	        "add chain %s output { type filter hook output priority 0; policy drop; }\n"
	        "flush chain %s input\n"
	        "flush chain %s output\n"
	        "flush set %s endpoints4\n"
	        "flush set %s endpoints6\n",
	        t, t, CL_KILLSWITCH_GATE_S, t, t, t, t, t, t, t, t);
	fprintf(f, "add rule %s input iifname \"%s\" update @gate { numgen inc mod 1 }\n", t,
	        ifname);
	fprintf(f,
	        "add rule %s output oifname \"lo\" accept\n"
	        "add rule %s output oifname \"%s\" accept\n"
	        "add rule %s output ip daddr . udp dport @endpoints4 accept\n"
	        "add rule %s output ip6 daddr . udp dport @endpoints6 accept\n"
	        "add rule %s output " DHCP_RULE "\n",
	        t, t, ifname, t, t, t);
	if (!full_tunnel)
		fprintf(f, "add rule %s output numgen inc mod 1 @gate accept\n", t);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "add element %s endpoints%d { %s . %u }\n", t,
		        endpoints[i].family == AF_INET6 ? 6 : 4, endpoints[i].addr,
		        endpoints[i].port);
	if (fclose(f)) {
		free(text);
		return NULL;
	}
	return text;
}

/* Adds the addresses of e's host at `port` (each once) to list; 0, or -1
 * when the host resolves to none. */
static int resolve(const struct cl_endpoint *e, unsigned port, struct cl_killswitch_endpoint *list,
                   size_t *n, size_t max)
{
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV}, *res, *ai;
	char service[8];
	snprintf(service, sizeof(service), "%u", port);
	if (getaddrinfo(e->host, service, &hints, &res))
		return -1;
	for (ai = res; ai && *n < max; ai = ai->ai_next) {
		struct cl_killswitch_endpoint x = {.family = ai->ai_family, .port = port};
		const void *addr =
		    ai->ai_family == AF_INET
		        ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
		        : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		inet_ntop(ai->ai_family, addr, x.addr, sizeof(x.addr));
		bool seen = false;
		for (size_t i = 0; i < *n; i++)
			seen |= list[i].port == x.port && !strcmp(list[i].addr, x.addr);
		if (!seen)
			list[(*n)++] = x;
	}
	freeaddrinfo(res);
	return 0;
}

/* What stays reachable through a closed gate at e: its WireGuard port, and
 * the size probes' port (docs/client.md, Path MTU), which must measure a
 * new path before the tunnel works on it. */
static int allow(const struct cl_endpoint *e, const struct cl_profile *p,
                 struct cl_killswitch_endpoint *list, size_t *n, size_t max)
{
	if (resolve(e, e->port, list, n, max))
		return -1;
	return p->nodes.pmtu_port ? resolve(e, p->nodes.pmtu_port, list, n, max) : 0;
}

int cl_killswitch_apply(const struct cl_tunnel_opts *o, const struct cl_profile *p,
                        struct cl_err *err)
{
	/* every endpoint of every node, at two ports, IPv4 and IPv6 */
	enum { MAX = 2 * 2 * (CL_MAX_GATEWAYS * CL_MAX_ENDPOINTS + 1) };
	struct cl_killswitch_endpoint *endpoints = calloc(MAX, sizeof(*endpoints));
	char msg[256] = "";
	size_t n = 0;
	if (!endpoints)
		return cl_fail(err, CL_EXIT_FAILURE, "out of memory");
	if (allow(&p->endpoint, p, endpoints, &n, MAX)) {
		free(endpoints);
		return cl_fail(err, CL_EXIT_TUNNEL,
		               "kill switch: cannot resolve the gateway's endpoint %s",
		               p->endpoint.host);
	}
	/* a node that does not resolve now cannot be switched to either */
	for (size_t i = 0; i < p->nodes.n_gateways; i++) {
		const struct cl_gateway *g = &p->nodes.gateways[i];
		for (size_t e = 0; e < g->n_endpoints; e++)
			if (allow(&g->endpoints[e], p, endpoints, &n, MAX))
				fprintf(stderr,
				        "meshgate: warning: kill switch: node %s (%s) does not "
				        "resolve: blocked\n",
				        g->name, g->endpoints[e].host);
	}
	char *script = cl_killswitch_render(o->ifname, cl_tunnel_is_full(p), endpoints, n);
	free(endpoints);
	if (!script)
		return cl_fail(err, CL_EXIT_FAILURE, "out of memory");
	int rc = nft(script, NULL, msg, sizeof(msg));
	free(script);
	if (rc)
		return cl_fail(err, CL_EXIT_TUNNEL, "kill switch: %s", msg);
	return 0;
}

void cl_killswitch_follow(const struct cl_tunnel_opts *o, const struct cl_profile *p)
{
	struct cl_err err = {0};
	if (p->kill_switch && cl_killswitch_apply(o, p, &err))
		fprintf(stderr, "meshgate: %s: %s\n", o->ifname, err.msg);
}

int cl_killswitch_remove(const char *ifname, struct cl_err *err)
{
	char t[64], script[160], msg[256] = "";
	table_name(ifname, t, sizeof(t));
	/* declared first, so that a missing table is no error */
	snprintf(script, sizeof(script), "add table %s\ndelete table %s\n", t, t);
	if (nft(script, NULL, msg, sizeof(msg)))
		return cl_fail(err, CL_EXIT_FAILURE, "cannot remove the kill switch: %s", msg);
	return 0;
}

enum cl_killswitch_state cl_killswitch_state(const char *ifname, bool full_tunnel)
{
	char t[64], script[160], msg[256], *out = NULL;
	table_name(ifname, t, sizeof(t));
	snprintf(script, sizeof(script), "list set %s gate\n", t);
	if (nft(script, &out, msg, sizeof(msg))) {
		free(out);
		return CL_KILLSWITCH_OFF;
	}
	bool open = out && strstr(out, "elements = {");
	free(out);
	if (!open)
		return CL_KILLSWITCH_BLOCKING;
	return full_tunnel ? CL_KILLSWITCH_ARMED : CL_KILLSWITCH_OPEN;
}

const char *cl_killswitch_state_name(enum cl_killswitch_state state)
{
	static const char *const names[] = {"off", "armed", "open", "blocking"};
	return names[state];
}
