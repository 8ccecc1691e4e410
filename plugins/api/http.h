/* The api plugin's HTTPS server (libmicrohttpd, its own threads). */
#ifndef MG_API_HTTP_H
#define MG_API_HTTP_H

#include <stddef.h>

#include <meshgate/meshgate.h>

#include "admin.h"
#include "api.h"
#include "oidc.h"

struct api_panel;

struct api_server_config {
	mg_ctx *ctx;           /* for mg_request and logging, from MHD's threads */
	const char *listen;    /* "ADDR:PORT" or "[ADDR6]:PORT" */
	const char *chain_pem; /* server certificate first, then its issuers */
	const char *key_pem;
	const char *priorities; /* GnuTLS priority string */
	unsigned threads;       /* MHD thread pool size */
	unsigned connection_limit;
	unsigned per_ip_limit;     /* 0: no limit */
	unsigned per_prefix_limit; /* from one /24 or /64; 0: no limit */
	unsigned head_timeout_ms;  /* to send a whole request, TLS handshake included */
	unsigned timeout_s;        /* idle connection timeout */
	unsigned backlog;
	size_t max_body;
	int request_timeout_ms; /* deadline of each bus request */
	/* The VPN side. vpn_prefix: wg/server's address ("10.0.0.1/24"), the
	 * subnet whose sources may ask for their device config (NULL: none
	 * may). extra_listen: a second listening address, the VPN gateway's,
	 * bound even before the address exists (NULL or "": none). vpn_api:
	 * the API's URL inside the tunnel, told to devices (NULL or "": not
	 * reachable there). */
	const char *vpn_prefix;
	const char *extra_listen;
	const char *vpn_api;
	/* The admin listener (admin.h): every request goes to
	 * api_admin_handle; none of the devices' routes is served. NULL: the
	 * devices' API. */
	struct api_admin *admin;
	/* The identity provider (oidc.h) for GET /api/v1/oidc and POST
	 * /api/v1/oidc/enroll, or NULL: those answer 404. */
	struct api_oidc *oidc;
	/* The panel's files at / of the admin listener (panel.h), or NULL:
	 * none. The caller's, kept until the server stops. */
	const struct api_panel *panel;
	int freebind; /* bind `listen` before its address exists (the VPN side) */
};

struct api_server;

/* A listening TCP socket (non-blocking, close-on-exec) on addr, for an MHD
 * daemon's MHD_OPTION_LISTEN_SOCKET; -1 with the reason (naming `name`)
 * in why. freebind: the address may appear later. */
int api_listen_on(const struct sockaddr_storage *addr, socklen_t addrlen, unsigned backlog,
                  const char *name, int freebind, char *why, size_t whylen);

/* Binds, then starts MHD; NULL with the reason in `why` on failure. The
 * config's strings are copied. */
struct api_server *api_server_start(const struct api_server_config *cfg, char *why, size_t whylen);
/* The CAs told to devices as api_cas in redeem and device config answers
 * (an array of PEM strings, copied; empty or NULL: none). Any thread. */
void api_server_set_cas(struct api_server *server, json_t *cas);
/* The "gateways" (api_gateways) and the "probe" address ("IP:PORT", NULL or
 * "": none) the redeem and device config answers carry from now on (copied). */
void api_server_set_gateways(struct api_server *server, json_t *gateways, const char *probe);
/* The "pmtu_port" devices are told (where size probes are answered on the
 * public side, pmtu.h), 0: none. */
void api_server_set_pmtu_port(struct api_server *server, unsigned port);
/* Closes the connections that took longer than head_timeout_ms to send
 * their request (or the next one): call it a few times a second. */
void api_server_tick(struct api_server *server);
/* Stops accepting, closes every connection and joins MHD's threads. */
void api_server_stop(struct api_server *server);
/* Why the extra (VPN) listening address could not be served, or "": the
 * server runs without it then, and tells devices no vpn_api. */
const char *api_server_vpn_error(const struct api_server *server);
/* The vpn_api the server tells devices ("" for none). */
const char *api_server_vpn_api(const struct api_server *server);

#endif
