/* The api plugin: the HTTPS edge of meshgate. It turns HTTP requests into
 * bus requests (the devices' to preauth, the admins' to the service of
 * each route) and answers with the reply.
 *
 * The pure parts (decoders, error mapping, names, certificates) are split
 * from the plugin so that unit tests and the fuzz target link them alone. */
#ifndef MG_API_H
#define MG_API_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>

/* ---- decode.c: requests, routes, errors ---- */

/* Longest strings a request may carry, in bytes. */
#define API_CODE_MAX      128
#define API_HOSTNAME_MAX  253
#define API_DEVICE_ID_MAX 128
#define API_TOKEN_MAX     512
#define API_ADDRESS_MAX   64
#define API_WG_KEY_LEN    44 /* base64 of 32 bytes */

enum api_route {
	API_ROUTE_NONE = 0,
	API_ROUTE_REDEEM,
	API_ROUTE_REGISTER,
	API_ROUTE_HEALTH,        /* ready: every plugin has reconciled */
	API_ROUTE_LIVE,          /* alive: the api serves */
	API_ROUTE_DEVICE_CONFIG, /* GET, no body: the device is its source address */
	API_ROUTE_NEXT_KEY,      /* POST /api/v1/devices/ID/next-key (docs/rotation.md) */
	API_ROUTE_SWITCH_KEY,    /* POST /api/v1/devices/ID/switch-key */
	API_ROUTE_OIDC,          /* GET /api/v1/oidc: where devices log in (oidc.h) */
	API_ROUTE_OIDC_ENROLL,   /* POST /api/v1/oidc/enroll: an ID token for a redeem */
};

/* The route of a path, or API_ROUTE_NONE. */
enum api_route api_route_find(const char *path);
/* Is `method` allowed on `route`? `allow` gets the Allow header's value. */
int api_method_allowed(enum api_route route, const char *method, const char **allow);
/* The bus service a route forwards to (NULL for health). */
const char *api_route_service(enum api_route route);

/* Is a Content-Type header value JSON ("application/json", any params)? */
int api_content_type_is_json(const char *value);

/* Decoders of request bodies. On success return 0 and set *out to a new
 * object holding only the validated known fields (unknown fields are
 * dropped); otherwise return -EINVAL, set *out to NULL and write the reason
 * into `why`. They never read past body[len - 1]. */
int api_decode_redeem(const char *body, size_t len, json_t **out, char *why, size_t whylen);
int api_decode_register(const char *body, size_t len, json_t **out, char *why, size_t whylen);
/* POST /api/v1/oidc/enroll: {id_token (up to API_OIDC_TOKEN_MAX visible
 * ASCII), name?}. */
int api_decode_oidc_enroll(const char *body, size_t len, json_t **out, char *why, size_t whylen);
/* A device's step of its key rotation: the device id from `path` (a path
 * of API_ROUTE_NEXT_KEY or API_ROUTE_SWITCH_KEY, NUL-terminated), the body
 * {register_token, public_key}. */
int api_decode_key_step(const char *path, const char *body, size_t len, json_t **out, char *why,
                        size_t whylen);

/* The HTTP status of a bus error code (anything unknown: 500). */
unsigned api_http_status(const char *error_code);

/* Does `key` look like a WireGuard public key (base64 of 32 bytes)? */
int api_wg_key_valid(const char *key);

/* ---- names.c: listen address and certificate names ---- */

/* "ADDR:PORT" or "[ADDR6]:PORT", numeric only. */
int api_parse_listen(const char *listen, struct sockaddr_storage *addr, socklen_t *addrlen,
                     char *why, size_t whylen);
/* Is the address the wildcard (0.0.0.0 or ::)? */
int api_addr_is_any(const struct sockaddr_storage *addr);

/* The host part of "host:port", "[v6]:port", "host" or a bare IPv6. */
int api_endpoint_host(const char *endpoint, char *host, size_t len);

enum api_name_kind { API_NAME_DNS = 1, API_NAME_IP };
/* The kind of one certificate name; an IP's bytes go to ip/iplen (4 or 16).
 * Returns -EINVAL for something that is neither a DNS name nor an IP. */
int api_name_kind(const char *name, unsigned char ip[16], size_t *iplen);
/* Lower-cases DNS names and writes IPs in their canonical form, so that
 * names compare equal however they were written. */
int api_name_canonical(const char *name, char *out, size_t len);
/* Checks a non-empty array of valid names; the message names the culprit. */
int api_names_check(json_t *names, char *why, size_t whylen);
/* The names used when the config has none: the host of the wireguard
 * plugin's endpoint (`wg_server` is its state value, may be NULL), else
 * the listen address, else localhost and the loopback addresses. */
json_t *api_default_names(json_t *wg_server, const char *listen);

/* ---- names.c: the VPN side ---- */

/* The gateway's address inside the VPN: the host part of wg/server's
 * "address" ("10.0.0.1/24" -> "10.0.0.1"), canonical. -ENOENT when
 * `wg_server` has none, -EINVAL when it is not ADDRESS/PREFIX. */
int api_vpn_gateway(json_t *wg_server, char *host, size_t len);
/* The names of a generated certificate: `configured` (may be NULL: the
 * default names) plus the VPN gateway address, so that devices can reach
 * the API through the tunnel too. A new array. */
json_t *api_cert_names(json_t *configured, json_t *wg_server, const char *listen);
/* Is `ip` (text, IPv4 or IPv6) inside `prefix` ("10.0.0.1/24": host bits
 * are ignored)? 1 yes, 0 no, -EINVAL when either is malformed. An
 * IPv4-mapped IPv6 address counts as IPv4. */
int api_ip_in_prefix(const char *ip, const char *prefix);
/* Where the API is reachable from inside the tunnel, given its `listen`
 * address and the VPN gateway address `gateway` (NULL: unknown):
 *  - 1 with *extra = "": `listen` already covers it (the gateway address
 *    itself, or a wildcard of its family, [::] covering IPv4 too);
 *  - 1 with extra set to "GW:PORT" ("[GW]:PORT"): a second listening
 *    address is needed (when `vpn_listen` allows it);
 *  - 0: not reachable (no gateway known, or vpn_listen off).
 * url gets "https://GW:PORT" when reachable. */
int api_vpn_access(const char *listen, const char *gateway, int vpn_listen, char *extra,
                   size_t extra_len, char *url, size_t url_len);

/* ---- cert.c: the CA and the server certificate ---- */

#define API_CA_CERT_FILE     "ca.pem" /* fixed: clients and docs refer to it */
#define API_SERVER_CERT_FILE "api-server.pem"
#define API_FINGERPRINT_LEN  64 /* hex SHA-256 */
/* The private keys are secrets of the secret service (secret.get /
 * secret.put, type "opaque": PKCS#8 PEM), never files of the plugin's. */
#define API_CA_KEY_SECRET     "api/ca"
#define API_SERVER_KEY_SECRET "api/server"
/* Where an earlier version kept them, in the state dir: moved into the
 * service once, then removed. */
#define API_CA_KEY_FILE     "ca.key"
#define API_SERVER_KEY_FILE "api-server.key"

/* Where the private keys live: the secret service (the plugin's), or a
 * test's stand-in. load: 0 and *pem (a new NUL-terminated buffer the
 * caller wipes and frees), -ENOENT when there is none, or another negative
 * errno with why. save: the key `name` is `pem` from now on (made anew, or
 * moved in from a file). */
struct api_keys {
	int (*load)(void *arg, const char *name, char **pem, char *why, size_t whylen);
	int (*save)(void *arg, const char *name, const char *pem, size_t len, char *why,
	            size_t whylen);
	void *arg;
};

struct api_tls {
	char *chain_pem; /* the server certificate, then its CA (what clients get) */
	char *key_pem;   /* the server's private key */
	char *ca_pem;    /* the CA certificate clients anchor to, or NULL (see ca_fingerprint) */
	/* hex SHA-256 over the DER of the CA certificate: what clients pin;
	 * "" when configured certificates come without their CA */
	char ca_fingerprint[API_FINGERPRINT_LEN + 1];
	char cert_fingerprint[API_FINGERPRINT_LEN + 1]; /* the same, of the server cert */
	char pubkey_pin[64];      /* base64 SHA-256 of the server's SubjectPublicKeyInfo */
	json_t *names;            /* the server certificate's subjectAltNames */
	time_t not_after;         /* the server certificate's expiry */
	int made_ca, made_server; /* what this call generated */
	char warning[256];        /* something the operator should hear about, or "" */
	char moved[256]; /* key files this call moved into the service and removed, or "" */
};

struct api_tls_params {
	const char *dir;             /* where the certificates live (the state dir) */
	const struct api_keys *keys; /* where the private keys live */
	json_t *names;               /* wanted subjectAltNames */
	time_t now;
	unsigned ca_days;     /* validity of a new CA */
	unsigned server_days; /* validity of a new server certificate */
	unsigned renew_days;  /* re-issue when it expires sooner than this */
};

/* Loads the CA and the server certificate from `dir` and their keys from
 * `keys`, making whatever is missing: the CA once (it is what clients pin,
 * so it is never replaced silently), the server certificate again when its
 * names differ, it expires within renew_days or it is not the CA's. A key
 * still in its file of an earlier version (API_*_KEY_FILE) is moved into
 * `keys` and the file removed (tls->moved says so). */
int api_tls_prepare(const struct api_tls_params *params, struct api_tls *tls, char *why,
                    size_t whylen);
/* Loads an operator's certificate (PEM chain, leaf first) and key. */
int api_tls_load(const char *cert_file, const char *key_file, time_t now, struct api_tls *tls,
                 char *why, size_t whylen);
void api_tls_clear(struct api_tls *tls);

/* Hex SHA-256 of the DER of the first certificate in `pem`. */
int api_pem_fingerprint(const char *pem, char out[API_FINGERPRINT_LEN + 1]);

/* ---- nodes.c: every node's CA, for devices that switch nodes ---- */

#define API_NODES_DB "api_nodes" /* cluster-wide: one record a node, keyed by its name */
/* Most CAs a device is told (api_cas): the answers stay well under the
 * 64 KiB a client reads (a CA is about 700 bytes of PEM). */
#define API_CAS_MAX 32

/* This node's record in API_NODES_DB: {"node", "ca" (PEM), "ca_fingerprint",
 * "urls": ["https://NAME:PORT", ...], "vpn_api"?}. `listen` gives the port,
 * tls->names the hosts; vpn_api may be NULL or "". NULL when the node has
 * no CA of its own to give (an operator's chain without its root). */
json_t *api_node_record(const char *node, const struct api_tls *tls, const char *listen,
                        const char *vpn_api);
/* The CAs devices trust (api_cas): `own` first (PEM, may be NULL), then the
 * "ca" of each record of `records` (an object: node name -> record, as the
 * database holds them), each CA once, records whose "ca" is not a PEM
 * certificate left out, at most API_CAS_MAX. A new array of PEM strings. */
json_t *api_cas_collect(const char *own, json_t *records);

/* ---- nodes.c: the gateways a device may switch to ---- */

#define API_FAILOVER_DB "failover" /* the failover plugin's: node -> {"state", "since_ms", ...} */

/* The multiwan plugin's record of this node (docs/multiwan.md): "endpoints",
 * every uplink's WireGuard endpoint, best first. */
#define API_WAN_DB        "multiwan"
#define API_WAN_KEY       "state"
#define API_ENDPOINTS_MAX 8

/* Adds this node's client-facing WireGuard key and endpoint (wg/server's
 * "public_key" and "endpoint") to its record as "wg_public_key" and
 * "wg_endpoint"; nothing when either is missing. With `wan` (the multiwan
 * record, may be NULL) listing endpoints, they go in as "wg_endpoints"
 * and the first is "wg_endpoint". A gateway key switch under way
 * (wg/server's "next_public_key" and "switch_at_ms", both or neither) adds
 * "wg_next_public_key" and "wg_switch_at_ms". */
void api_node_record_add_wg(json_t *record, json_t *wg_server, json_t *wan);
/* The active node of the failover records (an object: node -> record):
 * the one whose "state" is "master", the newest "since_ms" if several.
 * 0 with its name in out, or -ENOENT with out = "" (no failover plugin,
 * or no master now). */
int api_active_node(json_t *failover, char *out, size_t len);
/* What devices are told of every node (the "gateways" of the redeem and
 * device config answers): [{"name", "public_key", "endpoint", "active",
 * "endpoints"? (a node with several uplinks: every endpoint, best first),
 * "next_public_key"?, "switch_at_ms"? (its key switch under way: the key
 * and the node's time of the switch, docs/rotation.md)}]
 * for each record of `records` (API_NODES_DB's, an object) that carries
 * wg_public_key and wg_endpoint; "active" is true for `active` (may be
 * NULL or ""). A new array. */
json_t *api_gateways(json_t *records, const char *active);
/* Per answer to a device: each gateway's "switch_at_ms" (the node's clock)
 * becomes "switch_in_ms" from `now_ms` (0 once past), so that the device's
 * own clock does not matter. */
void api_gateways_switch_in(json_t *gateways, uint64_t now_ms);
/* A config epoch: 8 bytes of SHA-256 over `common` (what every device's
 * config shares) and `policy` (its role's record), never 0. Equal inputs,
 * equal epochs; any change in either, another epoch. */
uint64_t api_config_epoch(json_t *common, json_t *policy);

/* ---- admin.c: the admin API's routes (docs/api.md, "Admin API") ---- */

/* Longest text a path segment or a query parameter may carry, in bytes. */
#define API_ADMIN_TEXT_MAX 256

/* Each role may do what the ones before it may. */
enum api_role { API_ROLE_NONE = 0, API_ROLE_VIEWER, API_ROLE_OPERATOR, API_ROLE_ADMIN };

struct api_admin_route {
	const char *method;
	/* after /api/v1/admin/: "{name}" is one segment, "{name*}" the rest of
	 * the path; each becomes the request member of that name */
	const char *path;
	const char *service; /* the bus service, the one meshgatectl uses */
	enum api_role role;  /* the least role allowed */
	/* Several routes of one method and path (PATCH users/NAME): the body
	 * member that selects this one, and the member it becomes (NULL: the
	 * same name). */
	const char *when, *when_as;
	const char *query;    /* allowed query parameters: "q,limit:int,after" */
	int body;             /* takes a JSON object body */
	const char *defaults; /* JSON object of members set when absent, or NULL */
};

/* The table, for docs and tests. */
const struct api_admin_route *api_admin_routes(size_t *n);
/* API_ROLE_* of "viewer", "operator", "admin"; API_ROLE_NONE otherwise. */
enum api_role api_role_parse(const char *name);
const char *api_role_name(enum api_role role);
/* May `role` take `route`? */
int api_role_allows(enum api_role role, const struct api_admin_route *route);

/* The route of an admin request and its bus request: the path's captures,
 * the query's parameters (`query`: an object of strings, may be NULL) and
 * the body's members (a JSON object, or empty). 0 with *route and
 * *request (new) set; otherwise the HTTP status (404, 405 with `allow`
 * filled, 400) with *error set to the answer. Never reads past
 * body[len - 1]. */
unsigned api_admin_build(const char *method, const char *path, json_t *query, const char *body,
                         size_t len, const struct api_admin_route **route, json_t **request,
                         json_t **error, char *allow, size_t allowlen);

/* The admin API's error answer: {"error": {"code", "message", "field"?}}. */
json_t *api_admin_error(const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same made of a bus error reply ({"error": CODE, "message", "field"?}). */
json_t *api_admin_error_of_reply(json_t *reply);

/* Does a service change something (what the audit records)? By the last
 * word of its name: list, status, info, stats, get and config only read. */
int api_service_changes(const char *service);
/* A copy of a request's members for the audit, secrets (a code, a token,
 * a key) replaced by "(secret)". */
json_t *api_audit_members(json_t *request);

#endif
