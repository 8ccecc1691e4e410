/* The admin API's plugin side: tokens, the audit, and the handler the
 * admin listener's HTTPS server calls (admin_serve.c). */
#ifndef MG_API_ADMIN_H
#define MG_API_ADMIN_H

#include <stddef.h>

#include <meshgate/meshgate.h>

#include "api.h"

#define API_TOKENS_DB "api_tokens" /* cluster-wide: token name -> {"role", "hash", ...} */
#define API_AUDIT_DB  "api_audit"  /* cluster-wide: "MS-NODE-RANDOM" -> one change */

/* ---- tokens.c ---- */

/* Registers api.token.add, api.token.list and api.token.revoke. */
int api_tokens_register(mg_ctx *ctx);
/* Checks a presented token: 0 with its name and role, -EACCES with the
 * reason in *why (unknown, expired, malformed), or another -errno when the
 * tokens cannot be read. Any thread. */
int api_token_check(mg_ctx *ctx, const char *token, char *name, size_t name_len,
                    enum api_role *role, const char **why);
/* Is the token `name` still there and unexpired (a session opened with it
 * ends when it is revoked)? 0, -EACCES, or another -errno. Any thread. */
int api_token_alive(mg_ctx *ctx, const char *name);

/* ---- audit.c ---- */

/* Registers api.audit.add (meshgatectl's changes) and api.audit.list. */
int api_audit_register(mg_ctx *ctx);
/* Records one change: who made it, through what (via: "api",
 * "meshgatectl"), from where (source, may be NULL), the service and its
 * request's members (secrets left out), and the result (its reply: "ok",
 * or the error's code and message). Any thread. */
int api_audit_write(mg_ctx *ctx, const char *who, const char *via, const char *source,
                    const char *service, json_t *request, json_t *reply);
/* Deletes the oldest records past the newest `keep`. */
int api_audit_prune(mg_ctx *ctx, size_t keep);

/* ---- admin_serve.c: the admin listener's requests (MHD's threads) ---- */

struct api_admin;

/* `auth_failures`: failed authentications a source address may make per
 * minute (a token bucket that size, refilled over a minute). */
struct api_admin *api_admin_new(mg_ctx *ctx, unsigned auth_failures, int timeout_ms);
void api_admin_free(struct api_admin *admin);

struct api_admin_call {
	const char *method, *path;
	const char *authorization; /* the header, or NULL */
	const char *session;       /* the panel's session cookie (session.h), or NULL */
	const char *csrf;          /* the X-CSRF-Token header, or NULL */
	const char *source;        /* the client's address */
	json_t *query;             /* the query's parameters: an object of strings */
	const char *body;
	size_t len;
	/* out: the Set-Cookie header's value of the answer, or "" */
	char set_cookie[160];
};

/* Answers one request: the HTTP status, the JSON answer in *answer (new),
 * and for 405 the Allow header's value in `allow`. */
unsigned api_admin_handle(struct api_admin *admin, struct api_admin_call *call, json_t **answer,
                          char *allow, size_t allow_len);

/* ---- handshakes.c: the last handshakes of a page of devices ---- */

struct api_handshakes;
struct api_handshakes *api_handshakes_new(void);
void api_handshakes_free(struct api_handshakes *handshakes);
/* GET handshakes?keys=K1,K2,...: {"handshakes": {KEY: seconds, ...},
 * "node"} for the keys WireGuard has, from a copy of wg.status a few
 * seconds old at most. Any signed-in role. */
unsigned api_handshakes_answer(struct api_handshakes *handshakes, mg_ctx *ctx, int timeout_ms,
                               json_t *query, json_t **answer);

/* ---- enroll.c: a device whose key was made elsewhere (the panel's QR) ---- */

/* POST /api/v1/admin/users/USER/devices {"public_key", "name"?}: the
 * device enrolled as a code would be (preauth.code.add, preauth.redeem,
 * preauth.register), its WireGuard config answered without a private key
 * (the browser has it). A failed step undoes the ones before. The audit
 * records it under `who`. */
unsigned api_enroll(mg_ctx *ctx, int timeout_ms, const char *user, const char *body, size_t len,
                    const char *who, const char *source, json_t **answer);

#endif
