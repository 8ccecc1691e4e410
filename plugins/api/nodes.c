/* Every node's CA, so that a device enrolled through one node verifies
 * the API of any other: each node keeps its own CA (its key never leaves
 * the node) and publishes the certificate in the cluster-wide database
 * API_NODES_DB; the answers a device trusts (redeem, device config) carry
 * them all as api_cas. */
#include <arpa/inet.h>
#include <string.h>

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
