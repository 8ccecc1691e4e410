/* One admin request, on one of MHD's threads: who asks (the bearer
 * token), may they (the route's role), then the bus request of the route,
 * its answer, and the audit record of a change.
 *
 * Failed authentications are limited per source address (limit.h): an
 * address past its budget is answered 429 without its token being looked
 * at. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "admin.h"
#include "limit.h"
#include "session.h"

#define TOKEN_NAME_MAX 64
#define PREFIX         "/api/v1/admin/"

struct api_admin {
	mg_ctx *ctx;
	int timeout_ms;
	struct api_limit *limit; /* failed authentications per source */
	pthread_mutex_t lock;
	struct api_sessions *sessions;     /* the panel's (session.h) */
	struct api_handshakes *handshakes; /* the panel's device list's */
	int oidc_offered;                  /* login-options' "oidc" (under lock) */
};

struct api_admin *api_admin_new(mg_ctx *ctx, unsigned auth_failures, int timeout_ms)
{
	struct api_admin *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->ctx = ctx;
	a->timeout_ms = timeout_ms;
	a->limit = api_limit_new(ctx, auth_failures);
	a->sessions = api_sessions_new();
	a->handshakes = api_handshakes_new();
	if (!a->limit || !a->sessions || !a->handshakes) {
		api_limit_free(a->limit);
		api_sessions_free(a->sessions);
		api_handshakes_free(a->handshakes);
		free(a);
		return NULL;
	}
	pthread_mutex_init(&a->lock, NULL);
	return a;
}

void api_admin_free(struct api_admin *a)
{
	if (!a)
		return;
	api_sessions_free(a->sessions);
	api_handshakes_free(a->handshakes);
	api_limit_free(a->limit);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/* ---- one request ---- */

/* The token of "Bearer TOKEN" (the scheme's case does not matter). */
static const char *bearer(const char *header)
{
	if (!header || strncasecmp(header, "Bearer ", 7))
		return NULL;
	header += 7;
	while (*header == ' ')
		header++;
	return *header ? header : NULL;
}

static unsigned unauthorized(struct api_admin *a, const struct api_admin_call *call,
                             const char *why, json_t **answer)
{
	char key[128];
	api_limit_failed(a->limit, call->source);
	snprintf(key, sizeof(key), "admin 401 %s", call->source);
	mg_log_limited(a->ctx, MG_LOG_INFO, key, "admin: %s %s from %s: 401 %s", call->method,
	               call->path, call->source, why);
	*answer = api_admin_error("unauthorized", NULL, "%s", why);
	return 401;
}

/* Who asks: a bearer token, or the panel's session. */
struct caller {
	char who[API_SESSION_WHO_MAX + 1]; /* as the audit records it */
	char name[API_SESSION_WHO_MAX + 1];
	enum api_role role;
	int session; /* by the session cookie: changes need the CSRF token */
	char csrf[API_SESSION_SECRET_LEN + 1];
};

/* Checks a presented token: 0 with the caller filled, or the status of
 * the answer (401, 503). */
static unsigned check_token(struct api_admin *a, const struct api_admin_call *call,
                            const char *token, struct caller *c, json_t **answer)
{
	char name[TOKEN_NAME_MAX + 1];
	const char *why = NULL;
	int rc = api_token_check(a->ctx, token, name, sizeof(name), &c->role, &why);
	if (rc == -EACCES)
		return unauthorized(a, call, why, answer);
	if (rc) {
		*answer = api_admin_error("unavailable", NULL, "%s", why);
		return 503;
	}
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->who, sizeof(c->who), "token %s", name);
	return 0;
}

static unsigned authenticate(struct api_admin *a, const struct api_admin_call *call,
                             struct caller *c, json_t **answer)
{
	struct api_session session;
	memset(c, 0, sizeof(*c));
	const char *token = bearer(call->authorization);
	if (token)
		return check_token(a, call, token, c, answer);
	if (!call->session)
		return unauthorized(a, call,
		                    "an Authorization: Bearer TOKEN header or a session is needed",
		                    answer);
	if (api_sessions_find(a->sessions, call->session, mg_now_ms(a->ctx), &session))
		return unauthorized(a, call, "the session has ended: sign in again", answer);
	if (session.token_name[0] && api_token_alive(a->ctx, session.token_name)) {
		api_sessions_close(a->sessions, call->session);
		return unauthorized(a, call, "the session's token was revoked or has expired",
		                    answer);
	}
	snprintf(c->who, sizeof(c->who), "%s", session.who);
	snprintf(c->name, sizeof(c->name), "%s",
	         session.token_name[0] ? session.token_name : session.who);
	snprintf(c->csrf, sizeof(c->csrf), "%s", session.csrf);
	c->role = session.role;
	c->session = 1;
	return 0;
}

static int is_route(const struct api_admin_call *call, const char *method, const char *rest)
{
	return !strcmp(call->method, method) && !strncmp(call->path, PREFIX, strlen(PREFIX)) &&
	       !strcmp(call->path + strlen(PREFIX), rest);
}

static unsigned login_options(struct api_admin *a, json_t **answer)
{
	pthread_mutex_lock(&a->lock);
	int oidc = a->oidc_offered;
	pthread_mutex_unlock(&a->lock);
	*answer = json_pack("{s:b, s:b}", "token", 1, "oidc", oidc);
	return 200;
}

/* A session's identity and CSRF token: what the panel shows and sends. */
static json_t *session_answer(mg_ctx *ctx, const struct caller *c)
{
	json_t *answer =
	    json_pack("{s:s, s:s, s:s, s:s}", "name", c->name, "role", api_role_name(c->role),
	              "who", c->who, "node", mg_node_name(ctx));
	if (c->session)
		json_object_set_new(answer, "csrf", json_string(c->csrf));
	return answer;
}

/* POST session {"token"}: the token checked as a bearer token is, its
 * failures counted alike. */
static unsigned sign_in(struct api_admin *a, struct api_admin_call *call, json_t **answer)
{
	json_error_t err;
	struct caller c;
	struct api_session session;
	char cookie[API_SESSION_SECRET_LEN + 1];
	json_t *body =
	    call->len ? json_loadb(call->body, call->len, JSON_REJECT_DUPLICATES, &err) : NULL;
	const char *token = json_string_value(json_object_get(body, "token"));
	if (!token || json_object_size(body) != 1) {
		json_decref(body);
		*answer = api_admin_error("bad_request", "token",
		                          "the body must be {\"token\": \"an admin token\"}");
		return 400;
	}
	memset(&c, 0, sizeof(c));
	unsigned status = check_token(a, call, token, &c, answer);
	json_decref(body);
	if (status)
		return status;
	if (api_sessions_open(a->sessions, c.who, c.role, c.name, mg_now_ms(a->ctx), cookie,
	                      &session)) {
		*answer = api_admin_error("internal", NULL, "cannot open a session");
		return 500;
	}
	api_session_cookie_header(cookie, call->set_cookie, sizeof(call->set_cookie));
	sodium_memzero(cookie, sizeof(cookie));
	c.session = 1;
	snprintf(c.csrf, sizeof(c.csrf), "%s", session.csrf);
	mg_info(a->ctx, "admin: %s signed in to the panel from %s", c.who, call->source);
	*answer = session_answer(a->ctx, &c);
	return 200;
}

int api_session_open(struct api_admin *a, const char *who, enum api_role role,
                     struct MHD_Response *resp, char *err, size_t errlen)
{
	struct api_session session;
	char cookie[API_SESSION_SECRET_LEN + 1], header[160];
	if (!a || !resp) {
		snprintf(err, errlen, "no admin API");
		return -EINVAL;
	}
	if (api_sessions_open(a->sessions, who, role, NULL, mg_now_ms(a->ctx), cookie, &session)) {
		snprintf(err, errlen, "cannot open a session for '%.64s' (role %s)", who ? who : "",
		         api_role_name(role));
		return -EINVAL;
	}
	api_session_cookie_header(cookie, header, sizeof(header));
	sodium_memzero(cookie, sizeof(cookie));
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, header) != MHD_YES) {
		snprintf(err, errlen, "cannot add the session cookie to the answer");
		return -ENOMEM;
	}
	mg_info(a->ctx, "admin: %s signed in to the panel", who);
	return 0;
}

void api_session_offer_oidc(struct api_admin *a, int offered)
{
	pthread_mutex_lock(&a->lock);
	a->oidc_offered = offered;
	pthread_mutex_unlock(&a->lock);
}

/* The session routes of a signed-in caller: who (GET), logout (DELETE). */
static unsigned session_route(struct api_admin *a, struct api_admin_call *call,
                              const struct caller *c, json_t **answer, char *allow,
                              size_t allow_len)
{
	if (!strcmp(call->method, "GET") || !strcmp(call->method, "HEAD")) {
		*answer = session_answer(a->ctx, c);
		return 200;
	}
	if (!strcmp(call->method, "DELETE")) {
		if (c->session)
			api_sessions_close(a->sessions, call->session);
		api_session_cookie_header("", call->set_cookie, sizeof(call->set_cookie));
		mg_info(a->ctx, "admin: %s signed out of the panel", c->who);
		*answer = json_pack("{s:s}", "state", "signed_out");
		return 200;
	}
	snprintf(allow, allow_len, "GET, POST, DELETE");
	*answer = api_admin_error("method_not_allowed", NULL, "method not allowed on this path");
	return 405;
}

/* POST users/NAME/devices: NAME, or NULL for another path. */
static const char *enroll_user(const struct api_admin_call *call, char *user, size_t len)
{
	static const char tail[] = "/devices";
	const char *rest = call->path + strlen(PREFIX);
	if (strcmp(call->method, "POST") || strncmp(call->path, PREFIX, strlen(PREFIX)) ||
	    strncmp(rest, "users/", 6))
		return NULL;
	rest += 6;
	size_t n = strcspn(rest, "/");
	if (!n || strcmp(rest + n, tail) || n >= len)
		return NULL;
	snprintf(user, len, "%.*s", (int)n, rest);
	return user;
}

/* A change by the session's cookie needs the session's CSRF token: a page
 * of another site cannot read it, so it cannot send it. */
static int csrf_ok(const struct api_admin_call *call, const struct caller *c)
{
	if (!c->session || !strcmp(call->method, "GET") || !strcmp(call->method, "HEAD"))
		return 1;
	return call->csrf && strlen(call->csrf) == strlen(c->csrf) &&
	       !sodium_memcmp(call->csrf, c->csrf, strlen(c->csrf));
}

unsigned api_admin_handle(struct api_admin *a, struct api_admin_call *call, json_t **answer,
                          char *allow, size_t allow_len)
{
	const struct api_admin_route *route;
	json_t *request, *reply = NULL;
	struct caller c;
	char user[API_ADMIN_TEXT_MAX + 1];

	call->set_cookie[0] = '\0';
	if (is_route(call, "GET", "login-options"))
		return login_options(a, answer);
	if (!api_limit_may_try(a->limit, call->source)) {
		*answer = api_admin_error(
		    "rate_limited", NULL,
		    "too many failed authentications from %s: try again later", call->source);
		return 429;
	}
	if (is_route(call, "POST", "session"))
		return sign_in(a, call, answer);
	unsigned status = authenticate(a, call, &c, answer);
	if (status)
		return status;
	if (!csrf_ok(call, &c)) {
		*answer = api_admin_error("csrf", NULL,
		                          "a change by a session needs its X-CSRF-Token header");
		return 403;
	}
	if (!strcmp(call->path, PREFIX "session"))
		return session_route(a, call, &c, answer, allow, allow_len);
	if (is_route(call, "GET", "handshakes"))
		return api_handshakes_answer(a->handshakes, a->ctx, a->timeout_ms, call->query,
		                             answer);
	if (enroll_user(call, user, sizeof(user))) {
		if (c.role < API_ROLE_OPERATOR) {
			*answer =
			    api_admin_error("forbidden", NULL,
			                    "enrolling a device needs the role operator; %s is %s",
			                    c.who, api_role_name(c.role));
			return 403;
		}
		return api_enroll(a->ctx, a->timeout_ms, user, call->body, call->len, c.who,
		                  call->source, answer);
	}
	status = api_admin_build(call->method, call->path, call->query, call->body, call->len,
	                         &route, &request, answer, allow, allow_len);
	if (status)
		return status;
	if (!api_role_allows(c.role, route)) {
		json_decref(request);
		*answer = api_admin_error("forbidden", NULL, "%s %s needs the role %s; %s is %s",
		                          call->method, call->path, api_role_name(route->role),
		                          c.who, api_role_name(c.role));
		return 403;
	}
	mg_request(a->ctx, route->service, request, a->timeout_ms, &reply);
	const char *code = mg_reply_error(reply);
	status = !reply ? 500 : code ? api_http_status(code) : 200;
	mg_log(a->ctx, status == 200 ? MG_LOG_DEBUG : MG_LOG_INFO, "admin: %s %s by %s from %s: %u",
	       call->method, call->path, c.who, call->source, status);
	if (api_service_changes(route->service))
		api_audit_write(a->ctx, c.who, "api", call->source, route->service, request, reply);
	/* a revoked token's sessions end with it */
	if (!code && reply && !strcmp(route->service, "api.token.revoke"))
		api_sessions_close_token(a->sessions,
		                         json_string_value(json_object_get(request, "name")));
	json_decref(request);
	if (!reply) {
		*answer = api_admin_error("internal", NULL, "no reply from %s", route->service);
	} else if (code) {
		*answer = api_admin_error_of_reply(reply);
		json_decref(reply);
	} else {
		json_object_del(reply, "v"); /* the bus schema version, not the client's */
		*answer = reply;
	}
	return status;
}
