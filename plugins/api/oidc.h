/* OpenID Connect (docs/oidc.md): the company's identity provider vouches
 * for people. Devices enrol with an ID token instead of a code (`meshgate
 * up --login`, the device authorization flow, RFC 8628); admins sign in
 * to the panel with one (the authorization code flow with PKCE).
 *
 * oidc_verify.c is pure (the token, the provider's keys, what is expected,
 * the time: a verdict), so unit tests and the fuzz target link it alone;
 * oidc.c talks to the provider (discovery, its keys) and to preauth. */
#ifndef MG_API_OIDC_H
#define MG_API_OIDC_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include <meshgate/meshgate.h>

#include "api.h"

/* Clocks of the provider and the gateway may differ by this much. */
#define API_OIDC_SKEW_S 60
/* Longest ID token taken, in bytes (Keycloak's are 1-3 KiB). */
#define API_OIDC_TOKEN_MAX 16384
/* A user name, as preauth takes it: 1..32 of a-z 0-9 '-'. */
#define API_OIDC_USER_MAX 32

/* ---- oidc_verify.c: settings, tokens, roles, names ---- */

/* api.oidc, read and checked (the strings point into the config object). */
struct api_oidc_settings {
	const char *issuer;             /* NULL: no identity login */
	const char *client_id;          /* the gateway's client (admins' sign-in) */
	const char *device_client_id;   /* the devices' public client */
	const char *client_secret_file; /* NULL: a public client (PKCE alone) */
	const char *ca_file;            /* NULL: the system's store */
	const char *group_claim, *user_claim;
	json_t *roles;       /* group -> device role, in the configured order */
	json_t *admin_roles; /* group -> admin, operator or viewer */
};

/* Reads api.oidc (`oidc`: the group as the core made it, may be NULL).
 * 0, or -EINVAL with the reason in why. Checks what can be checked
 * without the network and the files: an https issuer, the clients, the
 * claims' names, the admin roles' names. */
int api_oidc_settings_read(json_t *oidc, struct api_oidc_settings *st, char *why, size_t whylen);

/* What an ID token must be: from `issuer` (exactly), for `audience` (the
 * client it was issued to), carrying `nonce` (NULL: none was sent), valid
 * at `now` give or take API_OIDC_SKEW_S. */
struct api_oidc_expect {
	const char *issuer;
	const char *audience;
	const char *nonce;
	time_t now;
};

/* Verifies a compact JWS ID token against the provider's JWKS ({"keys":
 * [...]}): RS256 or ES256 only (never "none" nor HMAC), the key its kid
 * names, then the claims. 0 with *claims (new) set; -EINVAL with the
 * reason the person is shown in why; -ENOKEY when no key of `jwks` has
 * the token's kid (the provider may have rotated its keys: fetch them
 * again, once). */
int api_oidc_verify(const char *token, size_t len, json_t *jwks, const struct api_oidc_expect *want,
                    json_t **claims, char *why, size_t whylen);

/* The role of the first group of `map` (group -> role, in the configured
 * order) that the claims' `group_claim` names (an array of strings or one
 * string; Keycloak's "/group" counts as "group"). 0 with *role pointing
 * into map; -EACCES with why ("none of your groups (a, b) has a role
 * here"). */
int api_oidc_role(json_t *claims, const char *group_claim, json_t *map, const char **role,
                  char *why, size_t whylen);

/* The gateway's name for the person: the `user_claim` of the claims made a
 * user name: lower case, each run of characters other than a-z and 0-9
 * one '-', none at either end, at most API_OIDC_USER_MAX
 * ("Alice.Smith@example.com" -> "alice-smith-example-com"). 0, or -EINVAL
 * with why. */
int api_oidc_user_name(json_t *claims, const char *user_claim, char out[API_OIDC_USER_MAX + 1],
                       char *why, size_t whylen);

/* ---- oidc.c: the provider, the devices' enrolment (any thread) ---- */

#define API_OIDC_DB "api_oidc" /* cluster-wide: who is who, see oidc.c */

struct api_oidc;

/* The provider of api.oidc (`config`, copied; its issuer set). NULL with
 * why when it cannot be served: bad settings, a client secret file others
 * may read, an unreadable CA file. Nothing is fetched yet.
 * failures_per_minute: refused logins a source may make (limit.h). */
struct api_oidc *api_oidc_new(mg_ctx *ctx, json_t *config, unsigned failures_per_minute,
                              int timeout_ms, char *why, size_t whylen);
void api_oidc_free(struct api_oidc *oidc);

/* GET /api/v1/oidc: what a device needs to log in at the provider
 * ({issuer, client_id, device_authorization_endpoint, token_endpoint}).
 * The HTTP status, the answer in *answer. */
unsigned api_oidc_public(struct api_oidc *oidc, json_t **answer);

/* POST /api/v1/oidc/enroll {"id_token", "name"?} from `source`: the token
 * verified, the person's user made or found, and a new single-use code of
 * theirs. 0 with *redeem set to the request for preauth.redeem ({code,
 * name?}); otherwise the HTTP status with *answer the error. */
unsigned api_oidc_enroll(struct api_oidc *oidc, const char *body, size_t len, const char *source,
                         json_t **redeem, json_t **answer);

/* ---- oidc.c: the admins' sign-in (the admin listener, any thread) ---- */

/* How long a sign-in may take at the provider, and how many may be under
 * way at once (the oldest gives way). */
#define API_OIDC_SIGNIN_MS   (5u * 60u * 1000u)
#define API_OIDC_SIGNINS_MAX 64

/* Does api.oidc map any group to an admin role? */
int api_oidc_admins(const struct api_oidc *oidc);

/* GET /auth/oidc/login: a new sign-in (state, nonce and PKCE verifier kept
 * here, single use, API_OIDC_SIGNIN_MS) and the provider's authorization
 * URL to send the browser to (response_type=code, S256). `redirect_uri`:
 * this listener's /auth/oidc/callback. 0 with `location`; otherwise the
 * HTTP status with the reason in why. */
unsigned api_oidc_signin_start(struct api_oidc *oidc, const char *redirect_uri, char *location,
                               size_t location_len, char *why, size_t whylen);

/* GET /auth/oidc/callback?code&state from `source`: the sign-in of
 * `state` (used up), the code exchanged at the token endpoint, the ID
 * token verified (its nonce included), admin_roles' role of its groups.
 * 0 with who ("oidc NAME", for sessions and the audit) and role;
 * otherwise the HTTP status with the reason in why. */
unsigned api_oidc_signin_finish(struct api_oidc *oidc, const char *code, const char *state,
                                const char *redirect_uri, const char *source, char *who,
                                size_t wholen, enum api_role *role, char *why, size_t whylen);

#endif
