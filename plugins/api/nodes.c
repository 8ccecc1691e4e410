/* Every node's CA, so that a device enrolled through one node verifies
 * the API of any other: each node keeps its own CA (its key never leaves
 * the node) and publishes the certificate in the cluster-wide database
 * API_NODES_DB; the answers a device trusts (redeem, device config) carry
 * them all as api_cas. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "api.h"

static unsigned listen_port(const char *listen)
{
	struct sockaddr_storage addr;
	socklen_t addrlen;
	if (api_parse_listen(listen, &addr, &addrlen, NULL, 0))
		return 0;
	return addr.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&addr)->sin_port)
	                                 : ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
}

/* "https://NAME:PORT" for each name a client can dial (not a wildcard). */
static json_t *urls(json_t *names, unsigned port)
{
	json_t *out = json_array(), *name;
	size_t i;
	json_array_foreach(names, i, name)
	{
		const char *host = json_string_value(name);
		unsigned char ip[16];
		size_t iplen = 0;
		char url[300];
		int kind = host ? api_name_kind(host, ip, &iplen) : -1;
		if (kind < 0 || !strncmp(host, "*.", 2))
			continue;
		snprintf(url, sizeof(url),
		         kind == API_NAME_IP && iplen == 16 ? "https://[%s]:%u" : "https://%s:%u",
		         host, port);
		json_array_append_new(out, json_string(url));
	}
	return out;
}

json_t *api_node_record(const char *node, const struct api_tls *tls, const char *listen,
                        const char *vpn_api)
{
	if (!tls->ca_pem || !tls->ca_fingerprint[0])
		return NULL;
	json_t *record =
	    json_pack("{s:s, s:s, s:s, s:o}", "node", node, "ca", tls->ca_pem, "ca_fingerprint",
	              tls->ca_fingerprint, "urls", urls(tls->names, listen_port(listen)));
	if (record && vpn_api && *vpn_api)
		json_object_set_new(record, "vpn_api", json_string(vpn_api));
	return record;
}

/* Adds `pem` unless it is not a certificate or one of `seen` already. */
static void add_ca(json_t *cas, json_t *seen, const char *pem)
{
	char fingerprint[API_FINGERPRINT_LEN + 1];
	if (!pem || json_array_size(cas) >= API_CAS_MAX || api_pem_fingerprint(pem, fingerprint) ||
	    json_object_get(seen, fingerprint))
		return;
	json_object_set_new(seen, fingerprint, json_true());
	json_array_append_new(cas, json_string(pem));
}

json_t *api_cas_collect(const char *own, json_t *records)
{
	json_t *cas = json_array(), *seen = json_object(), *record;
	const char *node;
	add_ca(cas, seen, own);
	json_object_foreach(records, node, record)
	{
		add_ca(cas, seen, json_string_value(json_object_get(record, "ca")));
	}
	json_decref(seen);
	return cas;
}

/* `list` when it is a list of 1 to API_ENDPOINTS_MAX strings, else NULL. */
static json_t *endpoint_list(json_t *list)
{
	json_t *item;
	size_t i;
	if (!json_is_array(list) || !json_array_size(list) ||
	    json_array_size(list) > API_ENDPOINTS_MAX)
		return NULL;
	json_array_foreach(list, i, item)
	{
		if (!json_is_string(item))
			return NULL;
	}
	return list;
}

void api_node_record_add_wg(json_t *record, json_t *wg_server, json_t *wan)
{
	json_t *key = json_object_get(wg_server, "public_key");
	json_t *endpoint = json_object_get(wg_server, "endpoint");
	json_t *endpoints = endpoint_list(json_object_get(wan, "endpoints"));
	if (!record || !json_is_string(key) || !json_is_string(endpoint))
		return;
	json_object_set(record, "wg_public_key", key);
	/* with several uplinks the best one is where devices go first */
	json_object_set(record, "wg_endpoint", endpoints ? json_array_get(endpoints, 0) : endpoint);
	if (endpoints)
		json_object_set(record, "wg_endpoints", endpoints);
	/* a key switch under way (docs/rotation.md): the next key and when
	 * the node switches to it, only both together */
	json_t *next_key = json_object_get(wg_server, "next_public_key");
	json_t *switch_at = json_object_get(wg_server, "switch_at_ms");
	if (json_is_string(next_key) && json_is_integer(switch_at)) {
		json_object_set(record, "wg_next_public_key", next_key);
		json_object_set(record, "wg_switch_at_ms", switch_at);
	}
}

int api_active_node(json_t *failover, char *out, size_t len)
{
	const char *node, *best = NULL;
	json_int_t best_since = 0;
	json_t *record;
	json_object_foreach(failover, node, record)
	{
		const char *state = json_string_value(json_object_get(record, "state"));
		json_int_t since = json_integer_value(json_object_get(record, "since_ms"));
		if (!state || strcmp(state, "master"))
			continue;
		if (!best || since > best_since) {
			best = node;
			best_since = since;
		}
	}
	snprintf(out, len, "%s", best ? best : "");
	return best && strlen(best) < len ? 0 : -ENOENT;
}

json_t *api_gateways(json_t *records, const char *active)
{
	json_t *out = json_array(), *record;
	const char *node;
	json_object_foreach(records, node, record)
	{
		json_t *key = json_object_get(record, "wg_public_key");
		json_t *endpoint = json_object_get(record, "wg_endpoint");
		if (!json_is_string(key) || !json_is_string(endpoint))
			continue; /* a node of an older version: not one to switch to */
		json_t *gateway =
		    json_pack("{s:s, s:O, s:O, s:b}", "name", node, "public_key", key, "endpoint",
		              endpoint, "active", active && !strcmp(active, node));
		json_t *endpoints = endpoint_list(json_object_get(record, "wg_endpoints"));
		if (endpoints)
			json_object_set(gateway, "endpoints", endpoints);
		json_t *next_key = json_object_get(record, "wg_next_public_key");
		json_t *switch_at = json_object_get(record, "wg_switch_at_ms");
		if (json_is_string(next_key) && json_is_integer(switch_at)) {
			json_object_set(gateway, "next_public_key", next_key);
			json_object_set(gateway, "switch_at_ms", switch_at);
		}
		json_array_append_new(out, gateway);
	}
	return out;
}

void api_gateways_switch_in(json_t *gateways, uint64_t now_ms)
{
	size_t i;
	json_t *gateway;
	json_array_foreach(gateways, i, gateway)
	{
		json_t *at = json_object_get(gateway, "switch_at_ms");
		if (!at)
			continue;
		json_int_t in = json_integer_value(at) - (json_int_t)now_ms;
		json_object_set_new(gateway, "switch_in_ms", json_integer(in > 0 ? in : 0));
		json_object_del(gateway, "switch_at_ms");
	}
}

uint64_t api_config_epoch(json_t *common, json_t *policy)
{
	json_t *both =
	    json_pack("[O, O]", common ? common : json_null(), policy ? policy : json_null());
	char *text = json_dumps(both, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	json_decref(both);
	uint8_t digest[32];
	uint64_t epoch = 0;
	if (text && !gnutls_hash_fast(GNUTLS_DIG_SHA256, text, strlen(text), digest))
		for (int i = 0; i < 8; i++)
			epoch = epoch << 8 | digest[i];
	free(text);
	return epoch ? epoch : 1; /* 0 is never an epoch */
}
