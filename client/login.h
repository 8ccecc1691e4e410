/* `meshgate up --login`: the person logs in at their company's identity
 * provider instead of typing a code. The gateway names the provider (GET
 * /api/v1/oidc, over the TLS the enrolment verifies); this device runs the
 * OAuth 2.0 device authorization flow (RFC 8628) with the provider itself,
 * as a public client (no secret): it prints where to log in and the code
 * to enter, and polls until the person has; then it hands the ID token to
 * the gateway (POST /api/v1/oidc/enroll), whose answer is the redeem's:
 * the enrolment goes on as with a code (enroll.h). */
#ifndef MESHGATE_CLIENT_LOGIN_H
#define MESHGATE_CLIENT_LOGIN_H

#include <signal.h>

#include "api_client.h"
#include "err.h"
#include "reply.h"

/* What a device polls the provider with, and how long (RFC 8628, 3.2). */
struct cl_device_grant {
	char device_code[1024];
	char user_code[64];
	char verification_uri[512];
	char verification_uri_complete[768]; /* "" when not given */
	int interval_s;                      /* between polls */
	int expires_in_s;
};

/* The provider's device authorization answer decoded: 0, or -1 with err. */
int cl_device_grant_decode(const char *body, size_t len, struct cl_device_grant *g,
                           struct cl_err *err);

/* One answer of the token endpoint while polling (RFC 8628, 3.5). */
enum cl_poll {
	CL_POLL_DONE = 0, /* id_token set */
	CL_POLL_PENDING,  /* authorization_pending: ask again after the interval */
	CL_POLL_SLOW_DOWN,
	CL_POLL_FAILED, /* err set: denied, expired, or another error */
};

/* Decodes a token endpoint answer (HTTP status, body); on CL_POLL_DONE the
 * ID token (malloc'd) in *id_token. */
enum cl_poll cl_token_answer_decode(long status, const char *body, size_t len, char **id_token,
                                    struct cl_err *err);

/* The whole login on the opened gateway API: 0 with the gateway's redeem
 * answer in *reply, or -1 with err (CL_EXIT_LOGIN for a login refused by
 * the provider or the gateway). name: the device's, NULL for the host's. */
int cl_login_enroll(struct cl_api *api, const char *name, volatile sig_atomic_t *stop,
                    struct cl_redeem_reply *reply, struct cl_err *err);

#endif
