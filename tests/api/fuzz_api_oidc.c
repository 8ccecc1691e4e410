/* libFuzzer target of the ID token verifier (oidc_verify.c): what a device
 * or a browser sends as its ID token, judged against a fixed JWKS at a
 * fixed time; a token that passes goes on to the groups' role and the user
 * name, as the gateway would. The seeds (corpus/oidc_*) were signed with
 * the private half of the key below, since thrown away. Built with
 * -DMESHGATE_FUZZ=ON (clang); without it the same file becomes a replay
 * driver that runs the seed corpus. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oidc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char jwks_text[] =
    "{\"keys\":[{\"kty\":\"EC\",\"x\":\"DselffPsdbgyNIWMyzP-luBziBJuHn5_ESnsGFALQEY\","
    "\"y\":\"D2NZ1pkywg4ealWaj6bCgbMcJl-NqgRHhOYIRZJ4SeQ\",\"crv\":\"P-256\",\"kid\":"
    "\"fuzz\",\"use\":\"sig\",\"alg\":\"ES256\"}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t *jwks, *map;
	char why[512], user[API_OIDC_USER_MAX + 1];
	const char *role;
	json_t *claims = NULL;
	if (!jwks) {
		jwks = json_loads(jwks_text, 0, NULL);
		map = json_pack("{s:s, s:s}", "vpn-admins", "admin", "developers", "developer");
	}
	/* an exact-size copy: the verifier must not read past it */
	char *token = malloc(size ? size : 1);
	if (!token)
		return 0;
	memcpy(token, data, size);
	struct api_oidc_expect want = {"https://idp.example", "meshgate", "n1", 1900000100};
	int rc = api_oidc_verify(token, size, jwks, &want, &claims, why, sizeof(why));
	if ((rc != 0) != (claims == NULL) || (rc && rc != -EINVAL && rc != -ENOKEY) ||
	    (rc && !why[0]))
		abort(); /* the contract: a verdict, and a reason for a refusal */
	if (!rc) {
		api_oidc_role(claims, "groups", map, &role, why, sizeof(why));
		api_oidc_user_name(claims, "preferred_username", user, why, sizeof(why));
	}
	json_decref(claims);
	free(token);
	return 0;
}
