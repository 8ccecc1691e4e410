/* ID tokens judged (oidc_verify.c): keys and tokens are made here with
 * cjose, each test changing one thing of a good token; the settings, the
 * groups' roles and the user names; the enrol request's decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>
#include <cmocka.h>

#include "api.h"
#include "oidc.h"

#define ISSUER "https://idp.example/realms/staff"
#define NOW    1900000000

static cjose_jwk_t *rsa_key, *other_rsa_key, *ec_key;
static json_t *jwks; /* rsa_key as "k1", ec_key as "k2" */

/* The public half of a key as a JWK object, with its kid. */
static json_t *public_jwk(cjose_jwk_t *key, const char *kid)
{
	cjose_err err;
	char *text = cjose_jwk_to_json(key, false, &err);
	json_t *jwk = json_loads(text, 0, NULL);
	free(text);
	json_object_set_new(jwk, "kid", json_string(kid));
	json_object_set_new(jwk, "use", json_string("sig"));
	return jwk;
}

static int setup(void **state)
{
	cjose_err err;
	(void)state;
	rsa_key = cjose_jwk_create_RSA_random(2048, NULL, 0, &err);
	other_rsa_key = cjose_jwk_create_RSA_random(2048, NULL, 0, &err);
	ec_key = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &err);
	assert_non_null(rsa_key);
	assert_non_null(other_rsa_key);
	assert_non_null(ec_key);
	jwks = json_pack("{s:[o, o]}", "keys", public_jwk(rsa_key, "k1"), public_jwk(ec_key, "k2"));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cjose_jwk_release(rsa_key);
	cjose_jwk_release(other_rsa_key);
	cjose_jwk_release(ec_key);
	json_decref(jwks);
	return 0;
}

/* A good token's claims: change one and sign. */
static json_t *good_claims(void)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:[s, s], s:s}", "iss", ISSUER, "sub",
	                 "f1d2-77", "aud", "meshgate", "iat", (json_int_t)NOW - 10, "exp",
	                 (json_int_t)NOW + 300, "preferred_username", "Alice", "groups", "staff",
	                 "developers", "nonce", "n-123");
}

/* Signs claims (consumed) with key under alg and kid (NULL: none). */
static char *sign(cjose_jwk_t *key, const char *alg, const char *kid, json_t *claims)
{
	cjose_err err;
	const char *compact;
	cjose_header_t *header = cjose_header_new(&err);
	cjose_header_set(header, CJOSE_HDR_ALG, alg, &err);
	if (kid)
		cjose_header_set(header, CJOSE_HDR_KID, kid, &err);
	char *payload = json_dumps(claims, JSON_COMPACT);
	json_decref(claims);
	cjose_jws_t *jws =
	    cjose_jws_sign(key, header, (const uint8_t *)payload, strlen(payload), &err);
	assert_non_null(jws);
	assert_true(cjose_jws_export(jws, &compact, &err));
	char *token = strdup(compact);
	cjose_jws_release(jws);
	cjose_header_release(header);
	free(payload);
	return token;
}

/* Verifies token (freed) for audience "meshgate" at NOW: the return code,
 * the reason in why. */
static int verify_with(char *token, const char *nonce, char *why, size_t whylen)
{
	struct api_oidc_expect want = {ISSUER, "meshgate", nonce, NOW};
	json_t *claims = NULL;
	int rc = api_oidc_verify(token, strlen(token), jwks, &want, &claims, why, whylen);
	if (rc)
		assert_null(claims);
	else
		assert_string_equal(json_string_value(json_object_get(claims, "sub")), "f1d2-77");
	json_decref(claims);
	free(token);
	return rc;
}

/* The token is refused with a reason containing `reason`. */
static void refused(char *token, const char *reason)
{
	char why[512] = "";
	assert_int_equal(verify_with(token, NULL, why, sizeof(why)), -EINVAL);
	if (!strstr(why, reason))
		fail_msg("reason \"%s\" does not say \"%s\"", why, reason);
}

static void test_good(void **state)
{
	char why[512];
	(void)state;
	assert_int_equal(
	    verify_with(sign(rsa_key, "RS256", "k1", good_claims()), NULL, why, sizeof(why)), 0);
	assert_int_equal(
	    verify_with(sign(ec_key, "ES256", "k2", good_claims()), NULL, why, sizeof(why)), 0);
	/* the nonce that was sent */
	assert_int_equal(
	    verify_with(sign(rsa_key, "RS256", "k1", good_claims()), "n-123", why, sizeof(why)), 0);
	/* expired, but within the clocks' skew */
	json_t *c = good_claims();
	json_object_set_new(c, "exp", json_integer(NOW - API_OIDC_SKEW_S + 5));
	assert_int_equal(verify_with(sign(rsa_key, "RS256", "k1", c), NULL, why, sizeof(why)), 0);
	/* several audiences, issued to us */
	c = good_claims();
	json_object_set_new(c, "aud", json_pack("[s, s]", "meshgate", "account"));
	json_object_set_new(c, "azp", json_string("meshgate"));
	assert_int_equal(verify_with(sign(rsa_key, "RS256", "k1", c), NULL, why, sizeof(why)), 0);
	/* no kid, one key of the algorithm: that one */
	assert_int_equal(
	    verify_with(sign(ec_key, "ES256", NULL, good_claims()), NULL, why, sizeof(why)), 0);
}

static void test_signature(void **state)
{
	char why[512];
	(void)state;
	/* a key that is not the provider's, under the provider's kid: forged */
	refused(sign(other_rsa_key, "RS256", "k1", good_claims()),
	        "signature does not verify with the provider's keys");
	/* a kid the provider does not publish: fetch its keys again */
	assert_int_equal(
	    verify_with(sign(other_rsa_key, "RS256", "k9", good_claims()), NULL, why, sizeof(why)),
	    -ENOKEY);
	/* the RSA key's kid for an EC signature */
	refused(sign(ec_key, "ES256", "k1", good_claims()), "fits the ID token");
	/* a payload of another token under this one's signature */
	char *a = sign(rsa_key, "RS256", "k1", good_claims());
	json_t *c = good_claims();
	json_object_set_new(c, "groups", json_pack("[s]", "vpn-admins"));
	char *b = sign(rsa_key, "RS256", "k1", c);
	char *a_payload = strchr(a, '.') + 1, *b_payload = strchr(b, '.') + 1;
	char spliced[8192];
	snprintf(spliced, sizeof(spliced), "%.*s%.*s%s", (int)(a_payload - a), a,
	         (int)(strchr(b_payload, '.') - b_payload), b_payload, strchr(a_payload, '.'));
	refused(strdup(spliced), "signature does not verify");
	free(a);
	free(b);
	/* HMAC with a key of the JWKS's kind "oct": never taken */
	cjose_err err;
	cjose_jwk_t *oct = cjose_jwk_create_oct_random(32, &err);
	refused(sign(oct, "HS256", "k1", good_claims()), "only RS256 and ES256");
	cjose_jwk_release(oct);
	/* alg none: header {"alg":"none","kid":"k1"}, no signature */
	refused(strdup("eyJhbGciOiJub25lIiwia2lkIjoiazEifQ.eyJzdWIiOiJmMWQyLTc3In0."), "");
	refused(strdup("not a token"), "not a compact JWT");
	refused(strdup("a.b"), "not a signed JWT");
}

static void test_claims(void **state)
{
	char why[512];
	json_t *c;
	(void)state;
	c = good_claims();
	json_object_set_new(c, "exp", json_integer(NOW - 3600));
	refused(sign(rsa_key, "RS256", "k1", c), "the ID token expired at 2030-03-17 16:46:40 UTC");
	c = good_claims();
	json_object_set_new(c, "aud", json_string("other"));
	refused(sign(rsa_key, "RS256", "k1", c), "audience is other, not meshgate");
	c = good_claims();
	json_object_set_new(c, "aud", json_pack("[s, s]", "meshgate", "account"));
	refused(sign(rsa_key, "RS256", "k1", c), "several audiences");
	c = good_claims();
	json_object_set_new(c, "iss", json_string("https://idp.example/realms/other"));
	refused(sign(rsa_key, "RS256", "k1", c), "issuer is https://idp.example/realms/other");
	c = good_claims();
	json_object_set_new(c, "iat", json_integer(NOW + 3600));
	refused(sign(rsa_key, "RS256", "k1", c), "issued in the future");
	c = good_claims();
	json_object_set_new(c, "nbf", json_integer(NOW + 3600));
	refused(sign(rsa_key, "RS256", "k1", c), "not valid before");
	c = good_claims();
	json_object_del(c, "exp");
	refused(sign(rsa_key, "RS256", "k1", c), "no expiry");
	c = good_claims();
	json_object_del(c, "sub");
	refused(sign(rsa_key, "RS256", "k1", c), "no subject");
	/* another nonce than the one sent, or none */
	assert_int_equal(
	    verify_with(sign(rsa_key, "RS256", "k1", good_claims()), "n-999", why, sizeof(why)),
	    -EINVAL);
	assert_non_null(strstr(why, "nonce"));
	c = good_claims();
	json_object_del(c, "nonce");
	assert_int_equal(verify_with(sign(rsa_key, "RS256", "k1", c), "n-123", why, sizeof(why)),
	                 -EINVAL);
}

static void test_roles(void **state)
{
	char why[512];
	const char *role;
	(void)state;
	json_t *map = json_pack("{s:s, s:s}", "vpn-admins", "admin", "developers", "developer");
	json_t *c = good_claims();
	assert_int_equal(api_oidc_role(c, "groups", map, &role, why, sizeof(why)), 0);
	assert_string_equal(role, "developer");
	/* the first of the configured order wins, whatever the token's order */
	json_object_set_new(c, "groups", json_pack("[s, s]", "developers", "/vpn-admins"));
	assert_int_equal(api_oidc_role(c, "groups", map, &role, why, sizeof(why)), 0);
	assert_string_equal(role, "admin");
	json_object_set_new(c, "groups", json_pack("[s, s]", "staff", "sales"));
	assert_int_equal(api_oidc_role(c, "groups", map, &role, why, sizeof(why)), -EACCES);
	assert_string_equal(why, "none of your groups ([\"staff\",\"sales\"]) has a role here");
	assert_null(role);
	json_object_del(c, "groups");
	assert_int_equal(api_oidc_role(c, "groups", map, &role, why, sizeof(why)), -EACCES);
	assert_non_null(strstr(why, "no \"groups\" claim"));
	json_decref(c);
	json_decref(map);
}

static void name_is(const char *value, const char *expected)
{
	char out[API_OIDC_USER_MAX + 1], why[256];
	json_t *c = json_pack("{s:s}", "email", value);
	int rc = api_oidc_user_name(c, "email", out, why, sizeof(why));
	json_decref(c);
	if (!expected) {
		assert_int_equal(rc, -EINVAL);
		return;
	}
	assert_int_equal(rc, 0);
	assert_string_equal(out, expected);
}

static void test_user_names(void **state)
{
	(void)state;
	name_is("Alice.Smith@Example.com", "alice-smith-example-com");
	name_is("bob", "bob");
	name_is("--x__y--", "x-y");
	name_is("a-very-long-name-of-somebody@with.a.long.domain.example",
	        "a-very-long-name-of-somebody-wit");
	name_is("abcdefghijklmnopqrstuvwxyz01234-.z", "abcdefghijklmnopqrstuvwxyz01234");
	name_is("...", NULL);
	name_is("", NULL);
	char out[API_OIDC_USER_MAX + 1], why[256];
	json_t *c = json_object();
	assert_int_equal(api_oidc_user_name(c, "email", out, why, sizeof(why)), -EINVAL);
	json_decref(c);
}

/* api.oidc as libconfig would give it: the settings' verdict. */
static int settings(const char *text, char *why, size_t whylen)
{
	struct api_oidc_settings st;
	json_t *oidc = json_loads(text, 0, NULL);
	assert_non_null(oidc);
	int rc = api_oidc_settings_read(oidc, &st, why, whylen);
	if (!rc && st.issuer)
		assert_non_null(st.device_client_id);
	json_decref(oidc);
	return rc;
}

static void test_settings(void **state)
{
	char why[512];
	(void)state;
	const char *base = "\"group_claim\": \"groups\", \"user_claim\": \"email\", \"roles\": "
	                   "{\"developers\": \"developer\"}, \"admin_roles\": {}";
	char text[1024];
	assert_int_equal(settings("{\"group_claim\": \"groups\"}", why, sizeof(why)), 0);
	snprintf(text, sizeof(text), "{\"issuer\": \"%s\", \"client_id\": \"meshgate\", %s}",
	         ISSUER, base);
	assert_int_equal(settings(text, why, sizeof(why)), 0);
	snprintf(text, sizeof(text),
	         "{\"issuer\": \"http://idp.example\", \"client_id\": \"meshgate\", %s}", base);
	assert_int_equal(settings(text, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "https URL"));
	snprintf(text, sizeof(text), "{\"issuer\": \"%s\", %s}", ISSUER, base);
	assert_int_equal(settings(text, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "client_id"));
	snprintf(text, sizeof(text),
	         "{\"issuer\": \"%s\", \"client_id\": \"m\", \"group_claim\": \"groups\", "
	         "\"user_claim\": \"email\", \"roles\": {}, \"admin_roles\": {\"ops\": \"root\"}}",
	         ISSUER);
	assert_int_equal(settings(text, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "api.oidc.admin_roles.ops is \"root\": admin, operator or viewer");
	snprintf(text, sizeof(text),
	         "{\"issuer\": \"%s\", \"client_id\": \"m\", \"group_claim\": \"groups\", "
	         "\"user_claim\": \"email\", \"roles\": {}, \"admin_roles\": {}}",
	         ISSUER);
	assert_int_equal(settings(text, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "maps no group"));
	assert_int_equal(settings("{\"client_id\": \"m\"}", why, sizeof(why)), -EINVAL);
}

static void test_decode_enroll(void **state)
{
	char why[256];
	json_t *out;
	(void)state;
	const char *good = "{\"id_token\": \"a.b.c\", \"name\": \"laptop\", \"x\": 1}";
	assert_int_equal(api_decode_oidc_enroll(good, strlen(good), &out, why, sizeof(why)), 0);
	char *text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text, "{\"id_token\":\"a.b.c\",\"name\":\"laptop\"}");
	free(text);
	json_decref(out);
	const char *bad[] = {"{}", "{\"id_token\": 5}", "{\"id_token\": \"a b\"}", "[]",
	                     "{\"id_token\": \"a\", \"id_token\": \"b\"}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(
		    api_decode_oidc_enroll(bad[i], strlen(bad[i]), &out, why, sizeof(why)),
		    -EINVAL);
		assert_null(out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good),          cmocka_unit_test(test_signature),
	    cmocka_unit_test(test_claims),        cmocka_unit_test(test_roles),
	    cmocka_unit_test(test_user_names),    cmocka_unit_test(test_settings),
	    cmocka_unit_test(test_decode_enroll),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
