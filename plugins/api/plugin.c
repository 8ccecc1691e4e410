/* The api plugin: HTTPS edge for devices (redeem, register, health, and a
 * device's config through its tunnel).
 *
 * Requests become bus requests to preauth; the replies become HTTP
 * answers. It makes its own CA and server certificate unless the operator
 * gives it one, and follows the wireguard plugin's endpoint for the
 * certificate's names unless they are configured. Its only state is its
 * node's record in api_nodes (nodes.c): the CA every device is told to
 * trust, so that it can switch to any node of a cluster. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include <meshgate/meshgate.h>

#include "api.h"
#include "http.h"
#include "probe.h"
#include "pmtu.h"
#include "responder.h"

#define RENEW_CHECK_MS (6u * 3600u * 1000u)
/* Publishing this node's CA failed (no cluster quorum): tried again this often. */
#define PUBLISH_RETRY_MS 10000u
/* Attempts of one publication that other nodes' writes make stale. */
#define PUBLISH_ATTEMPTS 3
/* How often connections too slow to send their request are closed. */
#define SLOW_CHECK_MS 250u

/* The VPN side as wg/server makes it: who may ask for a device config,
 * and where devices reach the API from inside the tunnel. */
struct vpn_side {
	char prefix[64]; /* wg/server's address, "10.0.0.1/24"; "" unknown */
	char extra[80];  /* a second listening address, or "" */
	char url[96];    /* "https://10.0.0.1:8443", or "" */
};

struct api {
	json_t *running;    /* the config the server runs with (a copy) */
	struct api_tls tls; /* what it serves */
	struct vpn_side vpn;
	struct api_server *server;
	int renew_timer, slow_timer;
	int publish_timer; /* while this node's record waits to be written */
	json_t *cas;       /* what devices are told to trust (refresh_nodes) */
	struct api_responder *probe;
	struct api_pmtu *pmtu;
};

/* The settings, read from a config object (validated by the core for
 * types; ranges are checked here). */
struct settings {
	const char *listen, *cert, *key, *priorities;
	json_t *names; /* configured, or NULL: derived */
	json_int_t max_body, threads, connection_limit, per_ip_limit, per_prefix_limit, timeout,
	    head_timeout_ms, request_timeout_ms;
	json_int_t ca_days, server_days, renew_days;
	int vpn_listen;
	json_int_t probe_port, pmtu_port;
};

static const struct mg_setting api_settings[] = {
    {"listen", MG_SETTING_STRING, "\"0.0.0.0:8443\"",
     "Address and port of the HTTPS API: \"ADDR:PORT\" or \"[ADDR6]:PORT\", numeric. "
     "\"[::]:PORT\" takes IPv4 too.",
     NULL, 0},
    {"names", MG_SETTING_STRINGS, NULL,
     "DNS names and IP addresses the generated server certificate is made for "
     "(subjectAltNames). Default: the host of wireguard.endpoint (followed when it changes), "
     "else the listen address, else localhost. The VPN gateway address (wireguard.address) "
     "is always added, for devices that reach the API through the tunnel.",
     NULL, 0},
    {"vpn_listen", MG_SETTING_BOOL, "true",
     "When `listen` is a specific address, also listen on the VPN gateway address "
     "(the host of wireguard.address, followed when it changes) at the same port, so that "
     "devices reach the API through the tunnel (meshgate sync). A wildcard `listen` covers "
     "it already.",
     NULL, 0},
    {"cert", MG_SETTING_STRING, NULL,
     "PEM file of a server certificate chain (leaf first) to use instead of the generated "
     "one. Needs `key`. Re-read on SIGHUP and every 6 hours.",
     NULL, 0},
    {"key", MG_SETTING_STRING, NULL, "PEM file of the private key of `cert`.", NULL, 0},
    {"max_body", MG_SETTING_INT, "16384",
     "Largest request body in bytes (64..1048576); a larger one is answered 413 and never "
     "kept in memory.",
     NULL, 0},
    {"threads", MG_SETTING_INT, "4",
     "Threads serving HTTPS (libmicrohttpd thread pool, 1..64); each waits for one bus "
     "request at a time.",
     NULL, 0},
    {"connection_limit", MG_SETTING_INT, "256",
     "Most connections open at once. When all are taken, a new connection takes the slot of "
     "the slowest: one still sending its request, of the network (/24, /64) holding the most "
     "connections, the longest at it.",
     NULL, 0},
    {"per_ip_limit", MG_SETTING_INT, "16",
     "Most connections open at once from one client address; 0: no limit.", NULL, 0},
    {"per_prefix_limit", MG_SETTING_INT, "64",
     "Most connections open at once from one IPv4 /24 or IPv6 /64; 0: no limit. Devices "
     "through the tunnel (the VPN subnet) have only per_ip_limit.",
     NULL, 0},
    {"head_timeout_ms", MG_SETTING_INT, "5000",
     "Milliseconds a client has to send a whole request, TLS handshake, head and body "
     "included, from connecting or from the end of its previous answer (100..60000); a "
     "slower connection is closed, so slow clients cannot hold the slots.",
     NULL, 0},
    {"timeout", MG_SETTING_INT, "30",
     "Seconds a connection may stay idle before it is closed (1..3600); head_timeout_ms "
     "is the shorter deadline of a client sending its request.",
     NULL, 0},
    {"request_timeout_ms", MG_SETTING_INT, "5000",
     "Deadline of each bus request (preauth) in ms (100..600000); past it the client gets "
     "504.",
     NULL, 0},
    {"probe_port", MG_SETTING_INT, "51830",
     "UDP port of the probe responder on the VPN gateway address (wireguard.address), "
     "reachable only through the tunnel: devices' agents probe their node there a few times "
     "a second (docs/client.md). 0: no probes.",
     NULL, 0},
    {"pmtu_port", MG_SETTING_INT, "51831",
     "UDP port of the size-probe responder on every address of the gateway (outside the "
     "tunnel): devices' agents find their path MTU by probing the WireGuard endpoint's "
     "address there (docs/api.md, \"Size probes\"). Keep it open on the public side. 0: none "
     "(devices keep the MTU they have).",
     NULL, 0},
    {"tls_priorities", MG_SETTING_STRING, "\"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2\"",
     "GnuTLS priority string: protocol versions and ciphers offered.", NULL, 0},
    {"ca_days", MG_SETTING_INT, "3650", "Validity of a generated CA, in days.", NULL, 0},
    {"server_cert_days", MG_SETTING_INT, "365",
     "Validity of a generated server certificate, in days.", NULL, 0},
    {"renew_days", MG_SETTING_INT, "30",
     "A generated server certificate is re-issued (same key, same CA) this many days before "
     "it expires.",
     NULL, 0},
    {0},
};

static json_int_t int_of(json_t *config, const char *name)
{
	return json_integer_value(json_object_get(config, name));
}

static int out_of_range(char *why, size_t len, const char *name, json_int_t min, json_int_t max)
{
	snprintf(why, len, "api.%s must be between %lld and %lld", name, (long long)min,
	         (long long)max);
	return -EINVAL;
}

static int read_settings(json_t *config, struct settings *st, char *why, size_t len)
{
	static const struct {
		const char *name;
		json_int_t min, max;
	} ranges[] = {
	    {"max_body", 64, 1 << 20},
	    {"threads", 1, 64},
	    {"connection_limit", 1, 100000},
	    {"per_ip_limit", 0, 100000},
	    {"per_prefix_limit", 0, 100000},
	    {"head_timeout_ms", 100, 60000},
	    {"timeout", 1, 3600},
	    {"request_timeout_ms", 100, 600000},
	    {"ca_days", 1, 36500},
	    {"server_cert_days", 1, 3650},
	    {"renew_days", 0, 3649},
	    {"probe_port", 0, 65535},
	    {"pmtu_port", 0, 65535},
	};
	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		json_int_t v = int_of(config, ranges[i].name);
		if (v < ranges[i].min || v > ranges[i].max)
			return out_of_range(why, len, ranges[i].name, ranges[i].min, ranges[i].max);
	}
	st->listen = json_string_value(json_object_get(config, "listen"));
	st->cert = json_string_value(json_object_get(config, "cert"));
	st->key = json_string_value(json_object_get(config, "key"));
	st->priorities = json_string_value(json_object_get(config, "tls_priorities"));
	st->names = json_object_get(config, "names");
	st->max_body = int_of(config, "max_body");
	st->threads = int_of(config, "threads");
	st->connection_limit = int_of(config, "connection_limit");
	st->per_ip_limit = int_of(config, "per_ip_limit");
	st->per_prefix_limit = int_of(config, "per_prefix_limit");
	st->head_timeout_ms = int_of(config, "head_timeout_ms");
	st->timeout = int_of(config, "timeout");
	st->request_timeout_ms = int_of(config, "request_timeout_ms");
	st->ca_days = int_of(config, "ca_days");
	st->server_days = int_of(config, "server_cert_days");
	st->renew_days = int_of(config, "renew_days");
	st->vpn_listen = json_is_true(json_object_get(config, "vpn_listen"));
	st->probe_port = int_of(config, "probe_port");
	st->pmtu_port = int_of(config, "pmtu_port");
	if (st->renew_days >= st->server_days) {
		snprintf(why, len, "api.renew_days must be less than api.server_cert_days");
		return -EINVAL;
	}
	if (!st->cert != !st->key) {
		snprintf(why, len, "api.cert and api.key go together: set both or neither");
		return -EINVAL;
	}
	if (st->cert && st->names) {
		snprintf(why, len,
		         "api.names is for the generated certificate; with api.cert the "
		         "names are the certificate's own");
		return -EINVAL;
	}
	struct sockaddr_storage addr;
	socklen_t addrlen;
	if (api_parse_listen(st->listen, &addr, &addrlen, why, len))
		return -EINVAL;
	if (st->names && api_names_check(st->names, why, len))
		return -EINVAL;
	gnutls_priority_t prio;
	const char *at = NULL;
	if (gnutls_priority_init(&prio, st->priorities, &at) < 0) {
		snprintf(why, len, "api.tls_priorities is not a GnuTLS priority string (at \"%s\")",
		         at ? at : st->priorities);
		return -EINVAL;
	}
	gnutls_priority_deinit(prio);
	return 0;
}

/* The wireguard plugin's public face: {"endpoint": "host:port", ...}. */
static json_t *wg_server(mg_ctx *ctx)
{
	mg_txn *txn;
	json_t *value = NULL;
	if (mg_txn_begin(ctx, MG_TXN_READ, &txn))
		return NULL;
	mg_state_get(ctx, txn, "wg", "server", &value);
	mg_txn_abort(ctx, txn);
	return value;
}

/* The multiwan plugin's record (its uplinks' endpoints), or NULL. */
static json_t *wan_record(mg_ctx *ctx)
{
	mg_txn *txn;
	json_t *value = NULL;
	if (mg_txn_begin(ctx, MG_TXN_READ, &txn))
		return NULL;
	mg_state_get(ctx, txn, API_WAN_DB, API_WAN_KEY, &value);
	mg_txn_abort(ctx, txn);
	return value;
}

static int prepare_tls(mg_ctx *ctx, const struct settings *st, struct api_tls *tls, char *why,
                       size_t len)
{
	time_t now = (time_t)(mg_now_ms(ctx) / 1000);
	if (st->cert)
		return api_tls_load(st->cert, st->key, now, tls, why, len);
	json_t *wg = wg_server(ctx);
	json_t *names = api_cert_names(st->names, wg, st->listen);
	json_decref(wg);
	struct api_tls_params params = {
	    .dir = mg_state_dir(ctx),
	    .names = names,
	    .now = now,
	    .ca_days = (unsigned)st->ca_days,
	    .server_days = (unsigned)st->server_days,
	    .renew_days = (unsigned)st->renew_days,
	};
	int rc = api_tls_prepare(&params, tls, why, len);
	json_decref(names);
	return rc;
}

/* The VPN side of these settings and of wg/server now. */
static void vpn_side(mg_ctx *ctx, const struct settings *st, struct vpn_side *v)
{
	char gateway[64];
	json_t *wg = wg_server(ctx);
	const char *address = json_string_value(json_object_get(wg, "address"));
	memset(v, 0, sizeof(*v));
	if (address && !api_vpn_gateway(wg, gateway, sizeof(gateway))) {
		snprintf(v->prefix, sizeof(v->prefix), "%s", address);
		api_vpn_access(st->listen, gateway, st->vpn_listen, v->extra, sizeof(v->extra),
		               v->url, sizeof(v->url));
	}
	json_decref(wg);
}

static struct api_server *serve(mg_ctx *ctx, const struct settings *st, const struct api_tls *tls,
                                const struct vpn_side *vpn, char *why, size_t len)
{
	struct api_server_config cfg = {
	    .ctx = ctx,
	    .listen = st->listen,
	    .chain_pem = tls->chain_pem,
	    .key_pem = tls->key_pem,
	    .priorities = st->priorities,
	    .threads = (unsigned)st->threads,
	    .connection_limit = (unsigned)st->connection_limit,
	    .per_ip_limit = (unsigned)st->per_ip_limit,
	    .per_prefix_limit = (unsigned)st->per_prefix_limit,
	    .head_timeout_ms = (unsigned)st->head_timeout_ms,
	    .timeout_s = (unsigned)st->timeout,
	    .backlog = 128,
	    .max_body = (size_t)st->max_body,
	    .request_timeout_ms = (int)st->request_timeout_ms,
	    .vpn_prefix = vpn->prefix,
	    .extra_listen = vpn->extra,
	    .vpn_api = vpn->url,
	};
	return api_server_start(&cfg, why, len);
}

static void announce(mg_ctx *ctx, const struct settings *st, const struct api_tls *tls,
                     const struct vpn_side *vpn, const struct api_server *server)
{
	char *names = json_dumps(tls->names, JSON_COMPACT);
	mg_info(ctx, "listening on https://%s for %s", st->listen, names ? names : "?");
	free(names);
	if (*api_server_vpn_error(server))
		mg_warn(ctx, "%s: devices cannot reach the API through the tunnel (meshgate sync)",
		        api_server_vpn_error(server));
	else if (*vpn->extra)
		mg_info(ctx, "also listening on https://%s, the VPN side", vpn->extra);
	if (*api_server_vpn_api(server))
		mg_info(ctx, "devices reach the API through the tunnel at %s",
		        api_server_vpn_api(server));
	if (tls->made_ca)
		mg_info(ctx, "made a new CA: %s/%s", mg_state_dir(ctx), API_CA_CERT_FILE);
	if (tls->made_server)
		mg_info(ctx, "issued a new server certificate: %s/%s", mg_state_dir(ctx),
		        API_SERVER_CERT_FILE);
	if (tls->ca_fingerprint[0])
		mg_info(ctx,
		        "CA fingerprint (SHA-256 of %s, hex): %s  -> clients: meshgate up "
		        "--pin %s",
		        st->cert ? "the chain's CA" : API_CA_CERT_FILE, tls->ca_fingerprint,
		        tls->ca_fingerprint);
	else
		mg_info(ctx, "certificate fingerprint (SHA-256, hex): %s", tls->cert_fingerprint);
	mg_info(ctx, "server public key pin: sha256//%s", tls->pubkey_pin);
	if (tls->warning[0])
		mg_warn(ctx, "%s", tls->warning);
}

/* The key of this node's record: the cluster's name for it. */
static const char *node_name(mg_ctx *ctx)
{
	const char *name = mg_node_name(ctx);
	return *name ? name : "local"; /* a core before API 6 runs alone */
}

static json_t *ca_fingerprints(json_t *cas);

/* What every node tells devices about the others, read from state. */
struct nodes_view {
	json_t *records;  /* API_NODES_DB: node -> record */
	json_t *failover; /* API_FAILOVER_DB: node -> {"state", ...}; empty without failover */
	json_t *wg, *dns; /* wg/server, dns_node/server (NULL: none) */
};

static void nodes_view_read(mg_ctx *ctx, struct nodes_view *v)
{
	mg_txn *txn;
	v->records = json_object();
	v->failover = json_object();
	v->wg = v->dns = NULL;
	if (mg_txn_begin(ctx, MG_TXN_READ, &txn))
		return;
	mg_state_foreach(ctx, txn, API_NODES_DB, NULL, mg_state_collect_into, v->records);
	mg_state_foreach(ctx, txn, API_FAILOVER_DB, NULL, mg_state_collect_into, v->failover);
	mg_state_get(ctx, txn, "wg", "server", &v->wg);
	mg_state_get(ctx, txn, "dns_node", "server", &v->dns);
	mg_txn_abort(ctx, txn);
}

static void nodes_view_clear(struct nodes_view *v)
{
	json_decref(v->records);
	json_decref(v->failover);
	json_decref(v->wg);
	json_decref(v->dns);
}

/* The probe responder's address: the gateway address, api.probe_port. */
static void probe_address(const struct nodes_view *v, json_int_t port, char *gateway, size_t len,
                          char *address, size_t address_len)
{
	gateway[0] = address[0] = '\0';
	if (port && !api_vpn_gateway(v->wg, gateway, len) && !strchr(gateway, ':'))
		snprintf(address, address_len, "%s:%u", gateway, (unsigned)port);
	else
		gateway[0] = '\0';
}

/* Tells the server every node's CA (its own first) and every node's
 * WireGuard side with the active one; gives the probe responder the
 * active node and what every device's config epoch is made of. */
static void refresh_nodes(mg_ctx *ctx)
{
	struct api *self = ctx->self;
	struct nodes_view v;
	char active[PROBE_NAME_MAX + 1], gateway[64], probe[96];
	nodes_view_read(ctx, &v);
	json_decref(self->cas);
	self->cas = api_cas_collect(self->tls.ca_pem, v.records);
	api_active_node(v.failover, active, sizeof(active));
	json_t *gateways = api_gateways(v.records, active);
	json_int_t port = int_of(self->running, "probe_port");
	json_int_t pmtu_port = int_of(self->running, "pmtu_port");
	probe_address(&v, self->running ? port : 0, gateway, sizeof(gateway), probe, sizeof(probe));
	if (self->server) {
		api_server_set_cas(self->server, self->cas);
		api_server_set_gateways(self->server, gateways, probe);
		api_server_set_pmtu_port(self->server, (unsigned)pmtu_port);
	}
	/* the epoch follows what device config answers, not who is active
	 * (the probe says that itself) */
	json_t *stable = api_gateways(v.records, NULL);
	json_t *common =
	    json_pack("{s:O?, s:O?, s:o, s:o, s:s, s:s, s:I}", "wg", v.wg, "dns", v.dns, "gateways",
	              stable, "cas", ca_fingerprints(self->cas), "vpn_api",
	              api_server_vpn_api(self->server), "probe", probe, "pmtu_port", pmtu_port);
	api_responder_set_common(self->probe, common);
	api_responder_set_nodes(self->probe, node_name(ctx), active);
	api_responder_listen(ctx, self->probe, *gateway ? gateway : NULL, (unsigned)port,
	                     json_string_value(json_object_get(v.wg, "interface")));
	api_pmtu_listen(ctx, self->pmtu, (unsigned)pmtu_port);
	json_decref(common);
	json_decref(gateways);
	nodes_view_clear(&v);
}

/* Writes this node's record when it differs from the stored one (or
 * deletes it when the node has no CA of its own to give). */
static int write_record(mg_ctx *ctx, json_t *record)
{
	const char *node = node_name(ctx);
	mg_txn *txn;
	json_t *stored = NULL;
	int rc = mg_txn_begin(ctx, 0, &txn);
	if (rc)
		return rc;
	rc = mg_state_get(ctx, txn, API_NODES_DB, node, &stored);
	if (rc && rc != -ENOENT) {
		mg_txn_abort(ctx, txn);
		return rc;
	}
	if (stored)
		json_object_del(stored, "v");
	if (record && !json_equal(record, stored))
		rc = mg_state_put(ctx, txn, API_NODES_DB, node, record);
	else if (!record && stored)
		rc = mg_state_del(ctx, txn, API_NODES_DB, node);
	else
		rc = 1; /* as it should be */
	json_decref(stored);
	if (rc) {
		mg_txn_abort(ctx, txn);
		return rc < 0 ? rc : 0;
	}
	return mg_txn_commit(ctx, txn);
}

static void on_publish_timer(mg_ctx *ctx, void *arg);

/* This node's CA where every node (and so every device) finds it. When
 * the cluster cannot take the write now, the timer tries again. */
static void publish(mg_ctx *ctx)
{
	struct api *self = ctx->self;
	if (!self->server)
		return;
	json_t *record = api_node_record(
	    node_name(ctx), &self->tls, json_string_value(json_object_get(self->running, "listen")),
	    api_server_vpn_api(self->server));
	json_t *wg = wg_server(ctx), *wan = wan_record(ctx);
	api_node_record_add_wg(record, wg, wan); /* where devices reach this node */
	json_decref(wg);
	json_decref(wan);
	int rc = -ESTALE;
	for (int i = 0; i < PUBLISH_ATTEMPTS && rc == -ESTALE; i++)
		rc = write_record(ctx, record);
	json_decref(record);
	if (!rc && self->publish_timer > 0) {
		mg_timer_del(ctx, self->publish_timer);
		self->publish_timer = 0;
	} else if (rc && self->publish_timer <= 0) {
		mg_warn(ctx, "cannot publish this node's CA in %s (%s): trying again every %u s",
		        API_NODES_DB, strerror(-rc), PUBLISH_RETRY_MS / 1000);
		int id = mg_timer_add(ctx, PUBLISH_RETRY_MS, 1, on_publish_timer, NULL);
		self->publish_timer = id > 0 ? id : 0;
	}
}

static void on_publish_timer(mg_ctx *ctx, void *arg)
{
	(void)arg;
	publish(ctx);
}

/* A node's record changed, here or on another node. Another node cannot
 * write ours unless it has our name: then ours is written back. */
static void on_nodes_change(mg_ctx *ctx, const char *topic, json_t *payload, void *arg)
{
	(void)topic;
	(void)arg;
	const char *key = json_string_value(json_object_get(payload, "key"));
	if (key && !strcmp(key, node_name(ctx)) &&
	    json_is_true(json_object_get(payload, "remote"))) {
		mg_warn(ctx, "another node changed the record of this node's name (%s) in %s", key,
		        API_NODES_DB);
		publish(ctx);
	}
	refresh_nodes(ctx);
}

static int same_tls(const struct api_tls *a, const struct api_tls *b)
{
	return a->chain_pem && b->chain_pem && !strcmp(a->chain_pem, b->chain_pem) &&
	       !strcmp(a->key_pem, b->key_pem);
}

/* Brings the server in line with `config`: new certificates and a new
 * server only when something changed. On failure the old server keeps
 * running (or runs again) and the error is returned. */
static int apply(mg_ctx *ctx, json_t *config)
{
	struct api *self = ctx->self;
	struct settings st, old;
	struct api_tls tls;
	struct vpn_side vpn;
	char why[1024];

	if (read_settings(config, &st, why, sizeof(why)) ||
	    prepare_tls(ctx, &st, &tls, why, sizeof(why))) {
		mg_error_log(ctx, "%s", why);
		return -EINVAL;
	}
	vpn_side(ctx, &st, &vpn);
	if (self->server && json_equal(config, self->running) && same_tls(&tls, &self->tls) &&
	    !memcmp(&vpn, &self->vpn, sizeof(vpn))) {
		api_tls_clear(&tls);
		return 0;
	}
	/* the port may be the same: the old server lets go of it first */
	api_server_stop(self->server);
	self->server = serve(ctx, &st, &tls, &vpn, why, sizeof(why));
	if (!self->server) {
		mg_error_log(ctx, "%s", why);
		api_tls_clear(&tls);
		if (self->running && !read_settings(self->running, &old, why, sizeof(why)) &&
		    (self->server = serve(ctx, &old, &self->tls, &self->vpn, why, sizeof(why)))) {
			mg_warn(ctx, "kept the previous settings");
			refresh_nodes(ctx);
		}
		return -EADDRNOTAVAIL;
	}
	announce(ctx, &st, &tls, &vpn, self->server);
	api_tls_clear(&self->tls);
	self->tls = tls;
	self->vpn = vpn;
	json_t *copy = json_deep_copy(config); /* config may be self->running */
	json_decref(self->running);
	self->running = copy;
	publish(ctx);
	refresh_nodes(ctx);
	return 0;
}

/* The wireguard endpoint changed, or time passed: re-issue if needed. */
static void refresh(mg_ctx *ctx)
{
	struct api *self = ctx->self;
	if (self->server && self->running)
		apply(ctx, self->running);
}

static void on_wg_change(mg_ctx *ctx, const char *topic, json_t *payload, void *arg)
{
	struct api *self = ctx->self;
	(void)topic;
	(void)arg;
	/* the endpoint (names) and the address (names, the VPN side) */
	if (!self->running)
		return;
	const char *key = json_string_value(json_object_get(payload, "key"));
	if (key && !strcmp(key, "server")) {
		refresh(ctx);
		publish(ctx); /* its key and endpoint in this node's record */
		refresh_nodes(ctx);
	}
}

/* The multiwan record changed (an uplink went up or down, the default
 * route moved): this node's endpoints changed, so its record does, and
 * with it the epoch devices re-read their config on. */
static void on_wan_change(mg_ctx *ctx, const char *topic, json_t *payload, void *arg)
{
	(void)topic;
	(void)payload;
	(void)arg;
	if (((struct api *)ctx->self)->running)
		publish(ctx);
}

/* The active node, a node's DNS: what devices are told changed. */
static void on_shared_change(mg_ctx *ctx, const char *topic, json_t *payload, void *arg)
{
	(void)topic;
	(void)payload;
	(void)arg;
	if (((struct api *)ctx->self)->running)
		refresh_nodes(ctx);
}

static void on_device_changed(mg_ctx *ctx, const char *topic, json_t *payload, void *arg)
{
	struct api *self = ctx->self;
	(void)topic;
	(void)arg;
	api_responder_device_changed(self->probe, payload);
}

static void on_policy_change(mg_ctx *ctx, const char *topic, json_t *payload, void *arg)
{
	struct api *self = ctx->self;
	(void)topic;
	(void)arg;
	api_responder_forget_role(self->probe, json_string_value(json_object_get(payload, "key")));
}

static void on_slow_timer(mg_ctx *ctx, void *arg)
{
	struct api *self = ctx->self;
	(void)arg;
	api_server_tick(self->server);
}

static void on_renew_timer(mg_ctx *ctx, void *arg)
{
	(void)arg;
	refresh(ctx);
}

/* The fingerprints of the CAs devices are told to trust. */
static json_t *ca_fingerprints(json_t *cas)
{
	json_t *out = json_array(), *pem;
	size_t i;
	json_array_foreach(cas, i, pem)
	{
		char fingerprint[API_FINGERPRINT_LEN + 1];
		if (!api_pem_fingerprint(json_string_value(pem), fingerprint))
			json_array_append_new(out, json_string(fingerprint));
	}
	return out;
}

/* For operators: `meshgatectl call api.info` shows what clients pin. */
static json_t *info(mg_ctx *ctx, const char *service, json_t *request, void *arg)
{
	static const struct mg_field fields[] = {{0}};
	struct api *self = ctx->self;
	char ca[4096];
	json_t *bad;
	(void)service;
	(void)arg;
	if ((bad = mg_request_check(ctx, request, fields)))
		return bad;
	if (!self->server)
		return mg_error("unavailable", "the API is not serving");
	snprintf(ca, sizeof(ca), "%s/%s", mg_state_dir(ctx), API_CA_CERT_FILE);
	const char *vpn_api = api_server_vpn_api(self->server);
	json_t *reply =
	    json_pack("{s:O, s:O, s:s, s:s, s:s, s:s, s:I, s:s?, s:s, s:o}", "listen",
	              json_object_get(self->running, "listen"), "names", self->tls.names, "ca_file",
	              json_object_get(self->running, "cert") ? "" : ca, "ca_fingerprint",
	              self->tls.ca_fingerprint, "cert_fingerprint", self->tls.cert_fingerprint,
	              "pubkey_pin", self->tls.pubkey_pin, "not_after",
	              (json_int_t)self->tls.not_after, "vpn_api", *vpn_api ? vpn_api : NULL, "node",
	              node_name(ctx), "api_cas", ca_fingerprints(self->cas));
	return reply;
}

static int api_init(mg_ctx *ctx)
{
	struct settings st;
	char why[1024];
	if (read_settings(mg_config(ctx), &st, why, sizeof(why))) {
		mg_error_log(ctx, "%s", why);
		return -EINVAL;
	}
	struct api *self = calloc(1, sizeof(*self));
	if (!self || !(self->probe = api_responder_new()) || !(self->pmtu = api_pmtu_new())) {
		if (self)
			api_responder_free(ctx, self->probe);
		free(self);
		return -ENOMEM;
	}
	ctx->self = self;
	int rc = mg_service_add(ctx, "api.info", info, NULL);
	if (!rc)
		rc = mg_subscribe(ctx, "state.wg", on_wg_change, NULL);
	if (!rc)
		rc = mg_subscribe(ctx, "state." API_NODES_DB, on_nodes_change, NULL);
	if (!rc)
		rc = mg_subscribe(ctx, "state." API_FAILOVER_DB, on_shared_change, NULL);
	if (!rc)
		rc = mg_subscribe(ctx, "state.dns_node", on_shared_change, NULL);
	if (!rc)
		rc = mg_subscribe(ctx, "device.changed", on_device_changed, NULL);
	if (!rc)
		rc = mg_subscribe(ctx, "state.policy", on_policy_change, NULL);
	if (!rc)
		rc = mg_subscribe(ctx, "state." API_WAN_DB, on_wan_change, NULL);
	if (rc) {
		api_responder_free(ctx, self->probe);
		api_pmtu_free(ctx, self->pmtu);
		free(self);
		ctx->self = NULL;
	}
	return rc;
}

static int api_start(mg_ctx *ctx)
{
	struct api *self = ctx->self;
	int rc = apply(ctx, mg_config(ctx));
	if (rc)
		return rc;
	if ((rc = api_responder_load_devices(ctx, self->probe)))
		mg_warn(ctx, "cannot read the devices: probes go unanswered (%s)", strerror(-rc));
	rc = mg_timer_add(ctx, RENEW_CHECK_MS, 1, on_renew_timer, NULL);
	self->renew_timer = rc > 0 ? rc : 0;
	/* without it slow clients are closed only when others connect */
	rc = mg_timer_add(ctx, SLOW_CHECK_MS, 1, on_slow_timer, NULL);
	if (rc < 0) {
		mg_error_log(ctx, "cannot add the timer that closes slow connections");
		return rc;
	}
	self->slow_timer = rc;
	mg_ready(ctx); /* serving */
	return 0;
}

static int api_reload(mg_ctx *ctx)
{
	return apply(ctx, mg_config(ctx));
}

static void api_stop(mg_ctx *ctx)
{
	struct api *self = ctx->self;
	if (!self)
		return;
	if (self->renew_timer > 0)
		mg_timer_del(ctx, self->renew_timer);
	if (self->slow_timer > 0)
		mg_timer_del(ctx, self->slow_timer);
	if (self->publish_timer > 0)
		mg_timer_del(ctx, self->publish_timer);
	api_server_stop(self->server);
	api_responder_free(ctx, self->probe);
	api_pmtu_free(ctx, self->pmtu);
	api_tls_clear(&self->tls);
	json_decref(self->running);
	json_decref(self->cas);
	free(self);
	ctx->self = NULL;
}

MG_PLUGIN(.name = "api", .version = "1.0.0",
          .description = "HTTPS API for devices: redeem a code, register a key, follow the "
                         "networks (to preauth)",
          .owns = (const char *const[]){API_NODES_DB, NULL},
          .cluster = (const char *const[]){API_NODES_DB, NULL}, .settings = api_settings,
          .init = api_init, .start = api_start, .reload = api_reload, .stop = api_stop);
