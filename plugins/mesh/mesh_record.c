/* Pure pieces of the mesh: addresses of the mesh subnet, a node's peer,
 * the nat chain's text. No state, no system. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh.h"
#include "nl.h"

static int ipv4_prefix(const char *text, struct nl_prefix *p)
{
	return strchr(text, '/') && !nl_prefix_parse(p, text) && p->family == AF_INET ? 0 : -EINVAL;
}

int mesh_subnet_parse(const char *text, struct mesh_subnet *out, char *err, size_t errlen)
{
	struct nl_prefix p;
	if (ipv4_prefix(text, &p)) {
		snprintf(err, errlen, "'%s' is not an IPv4 subnet (\"10.99.0.0/24\")", text);
		return -EINVAL;
	}
	if (p.len > 30) {
		snprintf(err, errlen, "'%s' has no room for two nodes (a /30 at most)", text);
		return -EINVAL;
	}
	uint32_t mask = p.len ? ~0u << (32 - p.len) : 0;
	out->net = ntohl(p.addr.v4.s_addr);
	out->len = p.len;
	if (out->net & ~mask) {
		snprintf(err, errlen, "'%s' has host bits set (the network is %u.%u.%u.%u/%u)",
		         text, (out->net & mask) >> 24, ((out->net & mask) >> 16) & 255,
		         ((out->net & mask) >> 8) & 255, out->net & mask & 255, p.len);
		return -EINVAL;
	}
	return 0;
}

uint32_t mesh_subnet_hosts(const struct mesh_subnet *s)
{
	return s->len ? (1u << (32 - s->len)) - 2 : UINT32_MAX - 1;
}

int mesh_subnet_host(const struct mesh_subnet *s, uint32_t i, char out[INET_ADDRSTRLEN])
{
	if (i >= mesh_subnet_hosts(s))
		return -ERANGE;
	struct in_addr a = {.s_addr = htonl(s->net + 1 + i)};
	inet_ntop(AF_INET, &a, out, INET_ADDRSTRLEN);
	return 0;
}

bool mesh_subnet_has_host(const struct mesh_subnet *s, const char *text)
{
	struct in_addr a;
	if (!text || inet_pton(AF_INET, text, &a) != 1)
		return false;
	uint32_t i = ntohl(a.s_addr) - s->net - 1; /* wraps below the network */
	return i < mesh_subnet_hosts(s);
}

int mesh_prefix_check(const char *text, char *err, size_t errlen)
{
	struct nl_prefix p;
	if (ipv4_prefix(text, &p)) {
		snprintf(err, errlen, "'%s' is not an IPv4 subnet (\"172.19.0.0/24\")", text);
		return -EINVAL;
	}
	return 0;
}

/* IPv4 prefixes overlap when they agree on the shorter one's bits. */
static bool prefixes_overlap(const struct nl_prefix *a, const struct nl_prefix *b)
{
	unsigned len = a->len < b->len ? a->len : b->len;
	uint32_t mask = len ? ~0u << (32 - len) : 0;
	return ((ntohl(a->addr.v4.s_addr) ^ ntohl(b->addr.v4.s_addr)) & mask) == 0;
}

const char *mesh_subnets_overlap(json_t *mine, json_t *theirs, const char **which)
{
	json_t *m, *t;
	size_t i, j;
	json_array_foreach(mine, i, m)
	{
		struct nl_prefix a, b;
		if (!json_string_value(m) || ipv4_prefix(json_string_value(m), &a))
			continue;
		json_array_foreach(theirs, j, t)
		{
			if (json_string_value(t) && !ipv4_prefix(json_string_value(t), &b) &&
			    prefixes_overlap(&a, &b)) {
				*which = json_string_value(t);
				return json_string_value(m);
			}
		}
	}
	return NULL;
}

int mesh_node_peer(json_t *node, struct mesh_peer *out)
{
	const char *key = json_string_value(json_object_get(node, "public_key"));
	const char *address = json_string_value(json_object_get(node, "mesh_address"));
	const char *endpoint = json_string_value(json_object_get(node, "endpoint"));
	struct wg_peer *peer = &out->peer;
	json_t *subnets = json_object_get(node, "subnets"), *s;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (!key || wg_key_from_base64(peer->public_key, key) || !address ||
	    wg_allowed_ip_parse(&out->ips[0], address) || out->ips[0].family != AF_INET)
		return -EINVAL;
	out->ips[0].cidr = 32; /* a node owns exactly its own mesh address */
	peer->n_allowed_ips = 1;
	json_array_foreach(subnets, i, s)
	{
		struct wg_allowed_ip *ip = &out->ips[peer->n_allowed_ips];
		if (peer->n_allowed_ips > MESH_MAX_SUBNETS || !json_string_value(s) ||
		    mesh_prefix_check(json_string_value(s), NULL, 0) ||
		    wg_allowed_ip_parse(ip, json_string_value(s)))
			return -EINVAL;
		peer->n_allowed_ips++;
	}
	peer->allowed_ips = out->ips;
	peer->flags = WG_PEER_HAS_KEEPALIVE | WG_PEER_REPLACE_ALLOWED;
	peer->persistent_keepalive = MESH_KEEPALIVE_S;
	/* a node without an endpoint is reached when it dials us */
	if (!endpoint || wg_endpoint_parse(&peer->endpoint, endpoint))
		peer->endpoint.sa.sa_family = AF_UNSPEC;
	return 0;
}

char *mesh_render_nat(const char *ifname, const char *vpn_subnet, const char *mesh_address,
                      size_t hooks)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	fprintf(f, "*nat\n:%s - [0:0]\n", MESH_NAT_CHAIN);
	if (vpn_subnet && vpn_subnet[0] && mesh_address && mesh_address[0])
		fprintf(f, "-A %s -s %s -o %s -j SNAT --to-source %s\n", MESH_NAT_CHAIN, vpn_subnet,
		        ifname, mesh_address);
	if (!hooks)
		fprintf(f, "-I POSTROUTING 1 -j %s\n", MESH_NAT_CHAIN);
	for (; hooks > 1; hooks--)
		fprintf(f, "-D POSTROUTING -j %s\n", MESH_NAT_CHAIN);
	fprintf(f, "COMMIT\n");
	if (fclose(f)) {
		free(text);
		return NULL;
	}
	return text;
}
