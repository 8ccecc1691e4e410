/* The admin panel's sessions: a browser signs in once (with an admin
 * token, or through OIDC) and gets a cookie, meshgate_session, that
 * stands for that identity on every /api/v1/admin/ route.
 *
 * The cookie is 32 random bytes (libsodium); the server keeps only its
 * hash, with who it is, the role, a CSRF token, and its times: a session
 * ends after API_SESSION_IDLE_MS unused, API_SESSION_MAX_MS after it was
 * opened, or at logout (at once, server-side). At most API_SESSIONS_MAX
 * are open: a new one takes the place of the least recently used. They
 * live in memory only: a restart of meshgated signs everyone out. */
#ifndef MG_API_SESSION_H
#define MG_API_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "api.h"

#define API_SESSION_COOKIE  "meshgate_session"
#define API_SESSION_IDLE_MS (30u * 60u * 1000u)
#define API_SESSION_MAX_MS  (12u * 3600u * 1000u)
#define API_SESSIONS_MAX    256
#define API_SESSION_WHO_MAX 128
/* base64url of 32 bytes, no padding: the cookie's value and the CSRF token */
#define API_SESSION_SECRET_LEN 43

struct api_admin;

/* For whoever verified an identity by other means (the OIDC sign-in):
 * opens a session for `who` with `role` and adds its Set-Cookie header to
 * `resp`. `who` is the identity as the audit records it ("oidc
 * alice@example.com"; at most API_SESSION_WHO_MAX bytes). The browser then
 * reads its CSRF token from GET /api/v1/admin/session. 0, or -errno with
 * the reason in err. Any thread. */
int api_session_open(struct api_admin *admin, const char *who, enum api_role role,
                     struct MHD_Response *resp, char *err, size_t errlen);

/* What GET /api/v1/admin/login-options says about OIDC ("oidc": true
 * makes the panel show "Sign in with SSO", a link to /auth/oidc/login).
 * Off until set. Any thread. */
void api_session_offer_oidc(struct api_admin *admin, int offered);

/* ---- the store (session.c), for admin_serve.c ---- */

struct api_sessions;

struct api_session {
	char who[API_SESSION_WHO_MAX + 1];
	enum api_role role;
	char csrf[API_SESSION_SECRET_LEN + 1];
	char token_name[65]; /* the admin token it was opened with, "" for another way */
};

struct api_sessions *api_sessions_new(void);
void api_sessions_free(struct api_sessions *sessions);
/* Opens a session at now_ms: the cookie's value goes to `cookie`, the
 * session (its CSRF token made here) to `out`. `token_name` may be NULL. */
int api_sessions_open(struct api_sessions *sessions, const char *who, enum api_role role,
                      const char *token_name, uint64_t now_ms,
                      char cookie[API_SESSION_SECRET_LEN + 1], struct api_session *out);
/* The session of a cookie's value at now_ms (and it counts as used): 0,
 * or -ENOENT (unknown, logged out, timed out). */
int api_sessions_find(struct api_sessions *sessions, const char *cookie, uint64_t now_ms,
                      struct api_session *out);
/* Ends the session of a cookie's value: 0, or -ENOENT. */
int api_sessions_close(struct api_sessions *sessions, const char *cookie);
/* Ends every session opened with the admin token `token_name`. */
void api_sessions_close_token(struct api_sessions *sessions, const char *token_name);
/* The Set-Cookie header's value of a cookie's value ("" ends it). */
void api_session_cookie_header(const char *cookie, char *out, size_t len);

#endif
