/* The gateway's HTTPS API as the device sees it: POST JSON, get JSON.
 * TLS is always verified: against --ca FILE, against the certificate that
 * --pin names (tls_pin.h), or against the system trust store. */
#ifndef MESHGATE_CLIENT_API_CLIENT_H
#define MESHGATE_CLIENT_API_CLIENT_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>

#include "err.h"

struct cl_api;

struct cl_api_options {
	const char *server_url; /* https://HOST[:PORT] */
	const char *ca_file;    /* NULL: not given */
	const char *pin;        /* NULL: not given */
	int timeout_s;          /* per request */
	/* when set and it becomes non-zero, a transfer stops ("interrupted") */
	volatile sig_atomic_t *stop;
};

/* Checks the URL and prepares the trust anchor (for a pin: one handshake).
 * Returns 0 or -1 with err set. */
int cl_api_open(struct cl_api **api, const struct cl_api_options *opt, struct cl_err *err);
void cl_api_close(struct cl_api *api);
/* The file of the CAs this connection trusts: --ca, or for a pin the
 * certificate it named (a temp file, gone at cl_api_close); "" for the
 * system's store. */
const char *cl_api_anchor(const struct cl_api *api);

/* POSTs body to path ("/api/v1/redeem"). On a 2xx answer returns 0 with the
 * body in *reply (malloc'd, NUL-terminated, the caller wipes and frees it);
 * otherwise -1 with err set from the error reply (reply.h). what names the
 * request in messages. */
int cl_api_post(struct cl_api *api, const char *what, const char *path, json_t *body, char **reply,
                size_t *reply_len, struct cl_err *err);

/* GETs path, with the same answers as cl_api_post. */
int cl_api_get(struct cl_api *api, const char *what, const char *path, char **reply,
               size_t *reply_len, struct cl_err *err);

/* Splits and checks an https URL. Returns 0 or -EINVAL. */
int cl_api_parse_url(const char *url, char *host, size_t host_size, unsigned *port);

#endif
