/* The api plugin: HTTPS edge for devices (redeem, register, health, and a
 * device's config through its tunnel).
 *
 * Requests become bus requests to preauth; the replies become HTTP
 * answers. It makes its own CA and server certificate unless the operator
 * gives it one, and follows the wireguard plugin's endpoint for the
 * certificate's names unless they are configured. Its state: its node's
 * record in api_nodes (nodes.c), the CA every device is told to trust so
 * that it can switch to any node of a cluster; and the admin API's tokens
 * and audit (admin.h), on a listener of their own (admin_listen). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <sodium.h>

#include <meshgate/meshgate.h>

#include "admin.h"
#include "api.h"
#include "http.h"
#include "oidc.h"
#include "metrics_server.h"
#include "panel.h"
#include "session.h"
#include "probe.h"
#include "pmtu.h"
#include "responder.h"
#include "secret.h"

#define RENEW_CHECK_MS (6u * 3600u * 1000u)
/* Publishing this node's CA failed (no cluster quorum): tried again this often. */
#define PUBLISH_RETRY_MS 10000u
/* Attempts of one publication that other nodes' writes make stale. */
#define PUBLISH_ATTEMPTS 3
/* How often connections too slow to send their request are closed. */
#define SLOW_CHECK_MS 250u
/* How often the audit is cut down to api.audit_keep records. */
#define AUDIT_PRUNE_MS 60000u
/* The admin listener's port on the VPN side when admin_listen is not set. */
#define ADMIN_PORT 8444

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
	struct api_server *admin_server; /* the admin API (admin_listen), or NULL */
	struct api_admin *admin;
	struct api_oidc *oidc;   /* the identity provider (api.oidc), or NULL */
	struct api_panel *panel; /* the admin listener's files, or NULL */
	int renew_timer, slow_timer, audit_timer;
	int publish_timer; /* while this node's record waits to be written */
	json_t *cas;       /* what devices are told to trust (refresh_nodes) */
	struct api_responder *probe;
	struct api_pmtu *pmtu;
	struct api_metrics *metrics; /* the /metrics listener, or NULL (off) */
	json_t *metrics_running;     /* {"listen", "timeout_ms"} it runs with */
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
	const char *admin_listen;
	json_int_t admin_auth_failures, audit_keep;
	const char *panel_dir, *qrcode_js;
	struct api_oidc_settings oidc;
	json_t *oidc_config; /* api.oidc as configured */
};

static const struct mg_setting oidc_role_item[] = {
    {"", MG_SETTING_STRING, NULL, "The role of the group's members.", NULL, 0},
    {0},
};

static const struct mg_setting oidc_settings[] = {
    {"issuer", MG_SETTING_STRING, NULL,
     "The identity provider's issuer URL (https), exactly as its tokens' \"iss\" and its "
     "discovery document (ISSUER/.well-known/openid-configuration) say, e.g. "
     "\"https://sso.example.com/realms/staff\". Unset: no identity login.",
     NULL, 0},
    {"client_id", MG_SETTING_STRING, NULL,
     "The gateway's client at the provider: admins sign in to the panel with it "
     "(authorization code flow with PKCE; redirect URI https://ADMIN_LISTEN/auth/oidc/callback).",
     NULL, 0},
    {"device_client_id", MG_SETTING_STRING, NULL,
     "The devices' client at the provider (public, no secret, the device authorization flow "
     "on): `meshgate up --login` logs in with it and the gateway takes only ID tokens issued "
     "to it. Default: client_id (then a public client).",
     NULL, 0},
    {"client_secret_file", MG_SETTING_STRING, NULL,
     "File holding the secret of client_id (its first line; mode 0600, else refused). Unset: "
     "client_id is a public client and PKCE alone protects the sign-in.",
     NULL, 0},
    {"ca_file", MG_SETTING_STRING, NULL,
     "PEM file of the CA(s) the provider's certificate is verified against. Unset: the "
     "system's store. TLS is always verified.",
     NULL, 0},
    {"group_claim", MG_SETTING_STRING, "\"groups\"",
     "The ID token claim listing the person's groups (an array of strings; Keycloak's "
     "\"/group\" paths count as \"group\").",
     NULL, 0},
    {"user_claim", MG_SETTING_STRING, "\"preferred_username\"",
     "The claim the gateway names a new user by (\"preferred_username\" or \"email\"), made "
     "a user name (lower case, a-z 0-9 '-', at most 32). A person keeps the user of their "
     "first login (bound to the provider's iss and sub).",
     NULL, 0},
    {"roles", MG_SETTING_MAP, "{}",
     "Devices: group = \"role\" (a preauth role); the first group of this list the person "
     "is in gives the role of their user. No group of the list: the login is refused.",
     oidc_role_item, 0},
    {"admin_roles", MG_SETTING_MAP, "{}",
     "Admins signing in to the panel: group = \"admin\", \"operator\" or \"viewer\"; the "
     "first group of this list the person is in gives their role. None: refused.",
     oidc_role_item, 0},
    {"login_failures", MG_SETTING_INT, "10",
     "Refused logins (a forged, expired or unmapped token) one source address may make a "
     "minute (1..10000); past it the address gets 429.",
     NULL, 0},
    {0},
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
    {"metrics_listen", MG_SETTING_STRING, "\"127.0.0.1:9100\"",
     "Address and port of the Prometheus metrics (plain HTTP, GET /metrics; docs/metrics.md): "
     "\"ADDR:PORT\" or \"[ADDR6]:PORT\", numeric; \"\" turns them off. Loopback by default: "
     "the figures have no authentication, so expose them only to the scraper.",
     NULL, 0},
    {"metrics_timeout_ms", MG_SETTING_INT, "2000",
     "How long a scrape waits for each plugin's figures, in ms (100..60000), asking them all "
     "at once; a plugin that has not answered by then is left out of that scrape and counted "
     "in meshgate_scrape_errors_total.",
     NULL, 0},
    {"admin_listen", MG_SETTING_STRING, NULL,
     "Address and port of the admin API (HTTPS, bearer tokens: docs/api.md), \"ADDR:PORT\" "
     "or \"[ADDR6]:PORT\". Default: the VPN gateway address (the host of "
     "wireguard.address, followed when it changes) at port 8444, reachable only through the "
     "tunnel; never the public side unless set so. \"\": no admin API.",
     NULL, 0},
    {"admin_auth_failures", MG_SETTING_INT, "10",
     "Failed authentications (a missing, wrong or expired token) the admin API takes from "
     "one source address a minute (a token bucket that size, refilled over a minute); past "
     "it the address gets 429 (1..10000).",
     NULL, 0},
    {"audit_keep", MG_SETTING_INT, "10000",
     "Records the audit keeps (meshgatectl audit): the newest; older ones are deleted every "
     "minute (100..1000000).",
     NULL, 0},
    {"oidc", MG_SETTING_GROUP, NULL,
     "Identity login with the company's OpenID Connect provider (docs/oidc.md): devices "
     "enrol with `meshgate up --login`, admins sign in to the panel with it.",
     oidc_settings, 0},
    {"panel_dir", MG_SETTING_STRING, NULL,
     "Directory of the web panel's files, served at / of the admin listener (docs/panel.md): "
     "GET only, files inside it only. Default: the install's share/meshgate/panel "
     "(/usr/share/meshgate/panel from the packages). \"\": no panel (the admin API serves "
     "on).",
     NULL, 0},
    {"qrcode_js", MG_SETTING_STRING, "\"/usr/share/javascript/qrcode-generator/qrcode.js\"",
     "The QR code library the panel draws a phone's config with (Debian's "
     "node-qrcode-generator), served at /lib/qrcode.js of the admin listener. \"\": none (the "
     "panel shows the config as text only).",
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
	    {"metrics_timeout_ms", 100, 60000},
	    {"admin_auth_failures", 1, 10000},
	    {"audit_keep", 100, 1000000},
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
	st->admin_listen = json_string_value(json_object_get(config, "admin_listen"));
	st->admin_auth_failures = int_of(config, "admin_auth_failures");
	st->audit_keep = int_of(config, "audit_keep");
	st->panel_dir = json_string_value(json_object_get(config, "panel_dir"));
	if (!st->panel_dir)
		st->panel_dir = MG_PANEL_DIR;
	st->qrcode_js = json_string_value(json_object_get(config, "qrcode_js"));
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
	const char *metrics = json_string_value(json_object_get(config, "metrics_listen"));
	if (*metrics && api_parse_listen(metrics, &addr, &addrlen, why, len)) {
		snprintf(why + strlen(why), len - strlen(why), " (api.metrics_listen)");
		return -EINVAL;
	}
	if (st->names && api_names_check(st->names, why, len))
		return -EINVAL;
	if (st->admin_listen && *st->admin_listen &&
	    api_parse_listen(st->admin_listen, &addr, &addrlen, why, len))
		return -EINVAL;
	st->oidc_config = json_object_get(config, "oidc");
	json_int_t login_failures = int_of(st->oidc_config, "login_failures");
	if (st->oidc_config && (login_failures < 1 || login_failures > 10000))
		return out_of_range(why, len, "oidc.login_failures", 1, 10000);
	if (api_oidc_settings_read(st->oidc_config, &st->oidc, why, len))
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

/* The private keys of the generated certificates: secrets of the secret
 * service (lib/secret), which keeps them sealed on the node or in Vault. */
static int key_load(void *arg, const char *name, char **pem, char *why, size_t whylen)
{
	unsigned char *data;
	size_t len;
	long long version;
	int rc = secret_get_opaque(arg, name, &data, &len, &version, why, whylen);
	*pem = (char *)data;
	return rc;
}

/* Replaces whatever version the service has (a new CA replaces the key of
 * the one moved away). */
static int key_save(void *arg, const char *name, const char *pem, size_t len, char *why,
                    size_t whylen)
{
	unsigned char *old;
	size_t oldlen;
	long long version = 0;
	int rc = secret_get_opaque(arg, name, &old, &oldlen, &version, why, whylen);
	if (!rc) {
		sodium_memzero(old, oldlen);
		free(old);
	} else if (rc != -ENOENT) {
		return rc;
	}
	return secret_put_opaque(arg, name, pem, len, version, why, whylen);
}

static int prepare_tls(mg_ctx *ctx, const struct settings *st, struct api_tls *tls, char *why,
                       size_t len)
{
	const struct api_keys keys = {key_load, key_save, ctx};
	time_t now = (time_t)(mg_now_ms(ctx) / 1000);
	if (st->cert)
		return api_tls_load(st->cert, st->key, now, tls, why, len);
	json_t *wg = wg_server(ctx);
	json_t *names = api_cert_names(st->names, wg, st->listen);
	json_decref(wg);
	struct api_tls_params params = {
	    .dir = mg_state_dir(ctx),
	    .keys = &keys,
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

/* What the devices' server and the admin server share: the settings and
 * the certificate; `listen` is each one's own. */
static struct api_server_config server_config(mg_ctx *ctx, const struct settings *st,
                                              const struct api_tls *tls, const char *listen)
{
	return (struct api_server_config){
	    .ctx = ctx,
	    .listen = listen,
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
	};
}

static struct api_server *serve(mg_ctx *ctx, const struct settings *st, const struct api_tls *tls,
                                const struct vpn_side *vpn, char *why, size_t len)
{
	struct api_server_config cfg = server_config(ctx, st, tls, st->listen);
	cfg.vpn_prefix = vpn->prefix;
	cfg.extra_listen = vpn->extra;
	cfg.vpn_api = vpn->url;
	cfg.oidc = ((struct api *)ctx->self)->oidc;
	return api_server_start(&cfg, why, len);
}

static void stop_admin(struct api *self)
{
	api_server_stop(self->admin_server); /* first: its threads use admin */
	api_admin_free(self->admin);
	api_panel_free(self->panel);
	self->admin_server = NULL;
	self->admin = NULL;
	self->panel = NULL;
}

/* The admin API: on admin_listen, else on the VPN gateway address. It is
 * not the devices' business: when it cannot listen, the devices' API runs
 * on without it (and the log says why). */
static void serve_admin(mg_ctx *ctx, const struct settings *st, const struct api_tls *tls)
{
	struct api *self = ctx->self;
	char listen[96] = "", gateway[64], why[512];
	json_t *wg = wg_server(ctx);
	if (st->admin_listen)
		snprintf(listen, sizeof(listen), "%s", st->admin_listen);
	else if (!api_vpn_gateway(wg, gateway, sizeof(gateway)))
		snprintf(listen, sizeof(listen), strchr(gateway, ':') ? "[%s]:%d" : "%s:%d",
		         gateway, ADMIN_PORT);
	json_decref(wg);
	stop_admin(self);
	if (!*listen) {
		if (!st->admin_listen)
			mg_info(ctx,
			        "no admin API: no VPN gateway address yet (wireguard.address) and "
			        "no api.admin_listen");
		return;
	}
	self->admin =
	    api_admin_new(ctx, (unsigned)st->admin_auth_failures, (int)st->request_timeout_ms);
	/* without its files the panel is off, not the admin API */
	if (*st->panel_dir &&
	    !(self->panel = api_panel_new(st->panel_dir, st->qrcode_js, why, sizeof(why))))
		mg_warn(ctx, "no web panel: %s", why);
	struct api_server_config cfg = server_config(ctx, st, tls, listen);
	cfg.admin = self->admin;
	cfg.panel = self->panel;
	cfg.oidc = self->oidc; /* the admins' sign-in */
	if (self->admin)
		api_session_offer_oidc(self->admin, api_oidc_admins(self->oidc));
	cfg.freebind = !st->admin_listen; /* the VPN address comes with the interface */
	if (self->admin && (self->admin_server = api_server_start(&cfg, why, sizeof(why))))
		mg_info(ctx, "admin API on https://%s%s", listen,
		        self->panel ? ", the web panel at /" : "");
	else
		mg_error_log(ctx, "no admin API: %s", self->admin ? why : "out of memory");
	if (!self->admin_server)
		stop_admin(self);
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
	if (tls->moved[0])
		mg_info(ctx, "moved the private keys into the secret service, files removed: %s",
		        tls->moved);
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

/* The identity provider of api.oidc, when set: 0 with *oidc (NULL when
 * unset), or -EINVAL logged. */
static int oidc_start(mg_ctx *ctx, const struct settings *st, struct api_oidc **oidc)
{
	char why[512];
	*oidc = NULL;
	if (!st->oidc.issuer)
		return 0;
	*oidc =
	    api_oidc_new(ctx, st->oidc_config, (unsigned)int_of(st->oidc_config, "login_failures"),
	                 (int)st->request_timeout_ms, why, sizeof(why));
	if (!*oidc) {
		mg_error_log(ctx, "%s", why);
		return -EINVAL;
	}
	return 0;
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
	struct api_oidc *oidc = NULL;
	if (oidc_start(ctx, &st, &oidc)) {
		api_tls_clear(&tls);
		return -EINVAL;
	}
	/* the port may be the same: the old server lets go of it first */
	stop_admin(self);
	api_server_stop(self->server);
	api_oidc_free(self->oidc); /* after the servers: their threads use it */
	self->oidc = oidc;
	self->server = serve(ctx, &st, &tls, &vpn, why, sizeof(why));
	if (!self->server) {
		mg_error_log(ctx, "%s", why);
		api_tls_clear(&tls);
		api_oidc_free(self->oidc);
		self->oidc = NULL;
		if (self->running && !read_settings(self->running, &old, why, sizeof(why)) &&
		    !oidc_start(ctx, &old, &self->oidc) &&
		    (self->server = serve(ctx, &old, &self->tls, &self->vpn, why, sizeof(why)))) {
			mg_warn(ctx, "kept the previous settings");
			serve_admin(ctx, &old, &self->tls);
			refresh_nodes(ctx);
		}
		return -EADDRNOTAVAIL;
	}
	announce(ctx, &st, &tls, &vpn, self->server);
	if (self->oidc)
		mg_info(ctx, "identity login (OIDC) with %s", st.oidc.issuer);
	serve_admin(ctx, &st, &tls);
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

static void on_audit_timer(mg_ctx *ctx, void *arg)
{
	struct api *self = ctx->self;
	(void)arg;
	int rc = api_audit_prune(ctx, (size_t)int_of(self->running, "audit_keep"));
	if (rc)
		mg_warn(ctx, "cannot cut the audit down: %s", strerror(-rc));
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

/* The /metrics listener in line with `config`: started, moved or stopped
 * only when its settings changed. On failure the previous one runs again,
 * if there was one, and the API for devices serves on: a port taken (by
 * node_exporter, whose default is 9100 too) is no reason to stop
 * onboarding. */
static int metrics_apply(mg_ctx *ctx, json_t *config)
{
	struct api *self = ctx->self;
	char why[1024];
	json_t *want = json_pack("{s:O, s:O}", "listen", json_object_get(config, "metrics_listen"),
	                         "timeout_ms", json_object_get(config, "metrics_timeout_ms"));
	if (!want)
		return -ENOMEM;
	if (json_equal(want, self->metrics_running)) {
		json_decref(want);
		return 0;
	}
	const char *listen = json_string_value(json_object_get(want, "listen"));
	int timeout_ms = (int)json_integer_value(json_object_get(want, "timeout_ms"));
	api_metrics_stop(self->metrics); /* the port may be the same */
	self->metrics = NULL;
	if (*listen &&
	    !(self->metrics = api_metrics_start(ctx, listen, timeout_ms, why, sizeof(why)))) {
		mg_error_log(ctx, "%s (api.metrics_listen)", why);
		json_decref(want);
		json_t *old = self->metrics_running;
		const char *old_listen = json_string_value(json_object_get(old, "listen"));
		if (old_listen && *old_listen &&
		    (self->metrics = api_metrics_start(
		         ctx, old_listen,
		         (int)json_integer_value(json_object_get(old, "timeout_ms")), why,
		         sizeof(why))))
			mg_warn(ctx, "kept the previous metrics_listen, %s", old_listen);
		return -EADDRNOTAVAIL;
	}
	if (*listen)
		mg_info(ctx, "metrics at http://%s/metrics", listen);
	json_decref(self->metrics_running);
	self->metrics_running = want;
	return 0;
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
		rc = api_tokens_register(ctx);
	if (!rc)
		rc = api_audit_register(ctx);
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
	metrics_apply(ctx, mg_config(ctx));
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
	rc = mg_timer_add(ctx, AUDIT_PRUNE_MS, 1, on_audit_timer, NULL);
	self->audit_timer = rc > 0 ? rc : 0;
	mg_ready(ctx); /* serving */
	return 0;
}

static int api_reload(mg_ctx *ctx)
{
	int rc = apply(ctx, mg_config(ctx));
	metrics_apply(ctx, mg_config(ctx));
	return rc;
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
	if (self->audit_timer > 0)
		mg_timer_del(ctx, self->audit_timer);
	stop_admin(self);
	api_server_stop(self->server);
	api_oidc_free(self->oidc);
	api_metrics_stop(self->metrics);
	json_decref(self->metrics_running);
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
                         "networks (to preauth); and for admins, with tokens and an audit",
          .owns = (const char *const[]){API_NODES_DB, API_TOKENS_DB, API_AUDIT_DB, API_OIDC_DB,
                                        NULL},
          .cluster = (const char *const[]){API_NODES_DB, API_TOKENS_DB, API_AUDIT_DB, API_OIDC_DB,
                                           NULL},
          .depends = (const char *const[]){"secrets", NULL}, .settings = api_settings,
          .init = api_init, .start = api_start, .reload = api_reload, .stop = api_stop);
