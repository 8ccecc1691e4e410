/* Decoding the gateway API's answers. The server is network input: every
 * field is checked before any of it reaches a file or the kernel. Pure
 * functions (no I/O), so they are unit tested and fuzzed. */
#ifndef MESHGATE_CLIENT_REPLY_H
#define MESHGATE_CLIENT_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "netaddr.h"
#include "trust.h"

#define CL_KEY_LEN            32
#define CL_MAX_ALLOWED_IPS    64
#define CL_MAX_DNS            8
#define CL_DEVICE_ID_MAX      129 /* 128 visible ASCII characters, as the API allows */
#define CL_REGISTER_TOKEN_MAX 512
#define CL_URL_MAX            512
#define CL_ROLE_MAX           64
#define CL_MAX_GATEWAYS       16
#define CL_NODE_NAME_MAX      128 /* a cluster node's name: 127 printable characters */
#define CL_MAX_ENDPOINTS      8   /* a node's uplinks (docs/multiwan.md) */

/* A gateway node the device may use: its WireGuard side ("gateways"). */
struct cl_gateway {
	char name[CL_NODE_NAME_MAX];
	uint8_t public_key[CL_KEY_LEN];
	struct cl_endpoint endpoint;
	/* every endpoint of the node, best first: endpoint, then those of its
	 * other uplinks ("endpoints", optional), each once */
	struct cl_endpoint endpoints[CL_MAX_ENDPOINTS];
	size_t n_endpoints;
	bool active; /* the node the gateways say devices should use */
	/* its key switch under way ("next_public_key" and "switch_in_ms", both
	 * or neither): the node's next key, and how long after the answer the
	 * node switches to it (docs/rotation.md); not saved */
	bool has_next;
	uint8_t next_public_key[CL_KEY_LEN];
	long long switch_in_ms;
};

/* What the redeem and device config answers say about the gateway nodes:
 * every node ("gateways", optional) and where the probe answers inside the
 * tunnel ("probe": "IP:PORT", optional; has_probe false when not told),
 * and the UDP port that answers size probes on each node's endpoint address
 * ("pmtu_port", optional; 0 when not told: no path MTU discovery). */
struct cl_nodes {
	struct cl_gateway gateways[CL_MAX_GATEWAYS];
	size_t n_gateways;
	struct cl_endpoint probe;
	bool has_probe;
	unsigned pmtu_port;
};

struct cl_redeem_reply {
	char device_id[CL_DEVICE_ID_MAX];
	bool device_id_is_int; /* sent back to register as it came: a number */
	struct cl_prefix address;
	uint8_t server_public_key[CL_KEY_LEN];
	struct cl_endpoint endpoint;
	struct cl_prefix allowed_ips[CL_MAX_ALLOWED_IPS]; /* host bits cleared */
	size_t n_allowed_ips;
	unsigned keepalive; /* seconds, 0 = off */
	char register_token[CL_REGISTER_TOKEN_MAX];
	char dns[CL_MAX_DNS][CL_HOST_MAX]; /* IP addresses or search domains */
	size_t n_dns;
	char vpn_api[CL_URL_MAX]; /* the API inside the tunnel, "" when not told */
	/* every node's CA (trust.h), PEM one after the other; "" when not told */
	char api_cas[CL_API_CAS_MAX];
	struct cl_nodes nodes;
};

/* GET /api/v1/device/config: what the gateway says this device routes
 * now (its role's networks), for `meshgate sync`. */
struct cl_config_reply {
	char device_id[CL_DEVICE_ID_MAX];
	char state[16];
	char role[CL_ROLE_MAX];                           /* "" when not told */
	struct cl_prefix allowed_ips[CL_MAX_ALLOWED_IPS]; /* host bits cleared */
	size_t n_allowed_ips;
	char dns[CL_MAX_DNS][CL_HOST_MAX];
	size_t n_dns;
	char vpn_api[CL_URL_MAX];     /* "" when not told */
	char api_cas[CL_API_CAS_MAX]; /* as in the redeem reply */
	struct cl_nodes nodes;
	bool rotate; /* the operator asked this device for a new key (docs/rotation.md) */
};

/* Decodes a 2xx reply of POST /api/v1/redeem. Returns 0, or -1 with err
 * set (class CL_EXIT_SERVER, message naming the bad field). */
int cl_redeem_reply_decode(const char *body, size_t len, struct cl_redeem_reply *out,
                           struct cl_err *err);

/* Decodes a 2xx reply of GET /api/v1/device/config, with the same checks
 * as the redeem reply's fields. Returns 0, or -1 with err set. */
int cl_config_reply_decode(const char *body, size_t len, struct cl_config_reply *out,
                           struct cl_err *err);

/* Turns a non-2xx reply {"error": CODE, "message": TEXT} into the operator's
 * one line and exit class. what names the request ("redeem", "register").
 * Always returns -1. */
int cl_error_reply_decode(const char *what, long http_status, const char *body, size_t len,
                          struct cl_err *err);

/* Adds e to g's endpoints unless it is there or the list is full. */
void cl_gateway_add_endpoint(struct cl_gateway *g, const struct cl_endpoint *e);

/* Is `name` a node name (1..127 printable ASCII characters, no space)? */
bool cl_node_name_valid(const char *name);

/* A WireGuard key in base64 (44 characters) to its 32 bytes: 0 or -EINVAL. */
int cl_key_from_base64(const char *text, uint8_t key[CL_KEY_LEN]);

#endif
