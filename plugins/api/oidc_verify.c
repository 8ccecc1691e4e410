/* ID tokens judged: settings, signature, claims, the role of a person's
 * groups and their user name. Pure functions of their arguments (no
 * network, no clock), every refusal with a reason a person can act on. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>

#include "api.h"
#include "oidc.h"

static int refuse(char *why, size_t whylen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(char *why, size_t whylen, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return rc;
}

/* ---- settings ---- */

static const char *setting(json_t *oidc, const char *name)
{
	const char *v = json_string_value(json_object_get(oidc, name));
	return v && *v ? v : NULL;
}

/* Every member of a group -> role map names a role; admin maps name one
 * of the admin API's roles. */
static int check_map(json_t *map, const char *name, int admin, char *why, size_t whylen)
{
	const char *group;
	json_t *role;
	json_object_foreach(map, group, role)
	{
		const char *r = json_string_value(role);
		if (!r || !*r)
			return refuse(why, whylen, -EINVAL, "api.oidc.%s.%s must name a role", name,
			              group);
		if (admin && api_role_parse(r) == API_ROLE_NONE)
			return refuse(why, whylen, -EINVAL,
			              "api.oidc.%s.%s is \"%s\": admin, operator or viewer", name,
			              group, r);
	}
	return 0;
}

int api_oidc_settings_read(json_t *oidc, struct api_oidc_settings *st, char *why, size_t whylen)
{
	memset(st, 0, sizeof(*st));
	st->issuer = setting(oidc, "issuer");
	st->client_id = setting(oidc, "client_id");
	st->device_client_id = setting(oidc, "device_client_id");
	st->client_secret_file = setting(oidc, "client_secret_file");
	st->ca_file = setting(oidc, "ca_file");
	st->group_claim = setting(oidc, "group_claim");
	st->user_claim = setting(oidc, "user_claim");
	st->roles = json_object_get(oidc, "roles");
	st->admin_roles = json_object_get(oidc, "admin_roles");
	if (!st->issuer) {
		if (st->client_id)
			return refuse(why, whylen, -EINVAL,
			              "api.oidc.client_id is set without api.oidc.issuer");
		return 0;
	}
	/* the issuer is compared byte for byte with the tokens' "iss": a
	 * trailing '/' matters, and TLS is not optional */
	if (strncmp(st->issuer, "https://", 8) || !st->issuer[8] || strchr(st->issuer, '?') ||
	    strchr(st->issuer, '#'))
		return refuse(why, whylen, -EINVAL,
		              "api.oidc.issuer must be an https URL without query or fragment, "
		              "not \"%s\"",
		              st->issuer);
	if (!st->client_id)
		return refuse(why, whylen, -EINVAL, "api.oidc.issuer needs api.oidc.client_id");
	if (!st->device_client_id)
		st->device_client_id = st->client_id;
	if (!st->group_claim || !st->user_claim)
		return refuse(why, whylen, -EINVAL,
		              "api.oidc.group_claim and api.oidc.user_claim must not be empty");
	if (check_map(st->roles, "roles", 0, why, whylen) ||
	    check_map(st->admin_roles, "admin_roles", 1, why, whylen))
		return -EINVAL;
	if (!json_object_size(st->roles) && !json_object_size(st->admin_roles))
		return refuse(why, whylen, -EINVAL,
		              "api.oidc maps no group to a role: set api.oidc.roles (devices) or "
		              "api.oidc.admin_roles (admins)");
	return 0;
}

/* ---- the signature ---- */

static void time_text(json_int_t t, char *out, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (!gmtime_r(&tt, &tm) || !strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(out, len, "%lld", (long long)t);
}

/* Is `key` (a JWK) one to check a token of `alg` with? Its type must be
 * the algorithm's, and what it says of itself ("use", "alg") agree. */
static int key_fits(json_t *key, const char *alg)
{
	const char *kty = json_string_value(json_object_get(key, "kty"));
	const char *use = json_string_value(json_object_get(key, "use"));
	const char *key_alg = json_string_value(json_object_get(key, "alg"));
	if (!kty || (use && strcmp(use, "sig")) || (key_alg && strcmp(key_alg, alg)))
		return 0;
	if (!strcmp(alg, "RS256"))
		return !strcmp(kty, "RSA");
	const char *crv = json_string_value(json_object_get(key, "crv"));
	return !strcmp(kty, "EC") && crv && !strcmp(crv, "P-256");
}

/* The key of the JWKS that the token names (kid), of its algorithm. A
 * token without a kid is taken only when one key fits. */
static json_t *find_key(json_t *jwks, const char *kid, const char *alg, int *kid_known)
{
	json_t *key, *found = NULL;
	size_t i, fitting = 0;
	*kid_known = 0;
	json_array_foreach(json_object_get(jwks, "keys"), i, key)
	{
		const char *k = json_string_value(json_object_get(key, "kid"));
		if (kid && (!k || strcmp(k, kid)))
			continue;
		*kid_known = 1;
		if (key_fits(key, alg)) {
			found = key;
			fitting++;
		}
	}
	return fitting == 1 ? found : NULL;
}

/* The signature checked: 0 with the payload (not NUL-terminated) copied
 * into a new JSON object in *claims. */
static int check_signature(const char *token, size_t len, json_t *jwks, json_t **claims, char *why,
                           size_t whylen)
{
	cjose_err err;
	cjose_jwk_t *jwk = NULL;
	uint8_t *payload = NULL;
	size_t payload_len = 0;
	int rc = -EINVAL;
	cjose_jws_t *jws = cjose_jws_import(token, len, &err);
	if (!jws)
		return refuse(why, whylen, -EINVAL, "the ID token is not a signed JWT (JWS)");
	json_t *header = (json_t *)cjose_jws_get_protected(jws);
	const char *alg = json_string_value(json_object_get(header, "alg"));
	json_t *kid_value = json_object_get(header, "kid");
	const char *kid = json_string_value(kid_value);
	int kid_known;
	if (!alg || (strcmp(alg, "RS256") && strcmp(alg, "ES256"))) {
		refuse(why, whylen, -EINVAL,
		       "the ID token is signed with \"%.20s\": only RS256 and ES256 are taken",
		       alg ? alg : "(no alg)");
		goto out;
	}
	if (kid_value && !kid) {
		refuse(why, whylen, -EINVAL, "the ID token's kid is not a string");
		goto out;
	}
	json_t *key = find_key(jwks, kid, alg, &kid_known);
	if (!key && kid && !kid_known) {
		rc = refuse(why, whylen, -ENOKEY,
		            "the ID token is signed with a key the provider does not publish "
		            "(kid \"%.64s\")",
		            kid);
		goto out;
	}
	if (!key) {
		refuse(why, whylen, -EINVAL,
		       "no single %s key of the provider's keys fits the ID token (kid \"%.64s\")",
		       alg, kid ? kid : "(none)");
		goto out;
	}
	char *text = json_dumps(key, JSON_COMPACT);
	jwk = text ? cjose_jwk_import(text, strlen(text), &err) : NULL;
	free(text);
	if (!jwk) {
		refuse(why, whylen, -EINVAL, "the provider's key \"%.64s\" cannot be read",
		       kid ? kid : "(no kid)");
		goto out;
	}
	if (!cjose_jws_verify(jws, jwk, &err)) {
		refuse(why, whylen, -EINVAL,
		       "the ID token's signature does not verify with the provider's keys");
		goto out;
	}
	if (!cjose_jws_get_plaintext(jws, &payload, &payload_len, &err)) {
		refuse(why, whylen, -EINVAL, "the ID token has no payload");
		goto out;
	}
	*claims = json_loadb((const char *)payload, payload_len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(*claims)) {
		json_decref(*claims);
		*claims = NULL;
		refuse(why, whylen, -EINVAL, "the ID token's claims are not a JSON object");
		goto out;
	}
	rc = 0;
out:
	cjose_jwk_release(jwk);
	cjose_jws_release(jws); /* frees the header and the payload too */
	return rc;
}

/* ---- the claims ---- */

/* A NumericDate claim (seconds, an integer or a number). */
static int date_claim(json_t *claims, const char *name, json_int_t *out)
{
	json_t *v = json_object_get(claims, name);
	if (!json_is_number(v))
		return -1;
	double d = json_number_value(v);
	if (d < 0 || d > 1e12)
		return -1;
	*out = (json_int_t)d;
	return 0;
}

static int check_audience(json_t *claims, const char *audience, char *why, size_t whylen)
{
	json_t *aud = json_object_get(claims, "aud"), *one;
	size_t i;
	if (json_is_string(aud)) {
		if (strcmp(json_string_value(aud), audience))
			return refuse(why, whylen, -EINVAL,
			              "the ID token's audience is %.80s, not %s",
			              json_string_value(aud), audience);
		return 0;
	}
	if (!json_is_array(aud) || !json_array_size(aud))
		return refuse(why, whylen, -EINVAL, "the ID token has no audience (aud)");
	int found = 0;
	json_array_foreach(aud, i, one)
	{
		if (!json_is_string(one))
			return refuse(why, whylen, -EINVAL,
			              "the ID token's audience (aud) holds a non-string");
		found |= !strcmp(json_string_value(one), audience);
	}
	if (!found) {
		char *list = json_dumps(aud, JSON_COMPACT);
		refuse(why, whylen, -EINVAL, "the ID token's audience is %.80s, not %s",
		       list ? list : "?", audience);
		free(list);
		return -EINVAL;
	}
	/* several audiences: the one it was issued to is the authorized party */
	const char *azp = json_string_value(json_object_get(claims, "azp"));
	if (json_array_size(aud) > 1 && (!azp || strcmp(azp, audience)))
		return refuse(why, whylen, -EINVAL,
		              "the ID token has several audiences and was issued to %.80s (azp), "
		              "not %s",
		              azp ? azp : "nobody", audience);
	return 0;
}

static int check_times(json_t *claims, time_t now, char *why, size_t whylen)
{
	json_int_t exp, iat, nbf;
	char when[40];
	if (date_claim(claims, "exp", &exp))
		return refuse(why, whylen, -EINVAL, "the ID token has no expiry (exp)");
	if (exp <= (json_int_t)now - API_OIDC_SKEW_S) {
		time_text(exp, when, sizeof(when));
		return refuse(why, whylen, -EINVAL, "the ID token expired at %s", when);
	}
	if (date_claim(claims, "iat", &iat))
		return refuse(why, whylen, -EINVAL, "the ID token has no issue time (iat)");
	if (iat > (json_int_t)now + API_OIDC_SKEW_S) {
		time_text(iat, when, sizeof(when));
		return refuse(why, whylen, -EINVAL,
		              "the ID token was issued in the future (%s): the provider's clock "
		              "or the gateway's is wrong",
		              when);
	}
	if (!json_object_get(claims, "nbf"))
		return 0;
	if (date_claim(claims, "nbf", &nbf))
		return refuse(why, whylen, -EINVAL, "the ID token's nbf is not a time");
	if (nbf > (json_int_t)now + API_OIDC_SKEW_S) {
		time_text(nbf, when, sizeof(when));
		return refuse(why, whylen, -EINVAL, "the ID token is not valid before %s", when);
	}
	return 0;
}

static int check_claims(json_t *claims, const struct api_oidc_expect *want, char *why,
                        size_t whylen)
{
	const char *iss = json_string_value(json_object_get(claims, "iss"));
	const char *sub = json_string_value(json_object_get(claims, "sub"));
	if (!iss || strcmp(iss, want->issuer))
		return refuse(why, whylen, -EINVAL, "the ID token's issuer is %.80s, not %s",
		              iss ? iss : "missing", want->issuer);
	if (!sub || !*sub || strlen(sub) > 255)
		return refuse(why, whylen, -EINVAL, "the ID token has no subject (sub)");
	if (check_audience(claims, want->audience, why, whylen) ||
	    check_times(claims, want->now, why, whylen))
		return -EINVAL;
	if (want->nonce) {
		const char *nonce = json_string_value(json_object_get(claims, "nonce"));
		if (!nonce || strcmp(nonce, want->nonce))
			return refuse(
			    why, whylen, -EINVAL,
			    "the ID token's nonce is not the one of this sign-in (a replayed "
			    "token?)");
	}
	return 0;
}

int api_oidc_verify(const char *token, size_t len, json_t *jwks, const struct api_oidc_expect *want,
                    json_t **claims, char *why, size_t whylen)
{
	*claims = NULL;
	if (!token || !len)
		return refuse(why, whylen, -EINVAL, "no ID token");
	if (len > API_OIDC_TOKEN_MAX)
		return refuse(why, whylen, -EINVAL, "the ID token is longer than %d bytes",
		              API_OIDC_TOKEN_MAX);
	for (size_t i = 0; i < len; i++) /* base64url and the two dots */
		if (!((token[i] >= 'A' && token[i] <= 'Z') ||
		      (token[i] >= 'a' && token[i] <= 'z') ||
		      (token[i] >= '0' && token[i] <= '9') || token[i] == '-' || token[i] == '_' ||
		      token[i] == '.'))
			return refuse(why, whylen, -EINVAL, "the ID token is not a compact JWT");
	int rc = check_signature(token, len, jwks, claims, why, whylen);
	if (!rc && (rc = check_claims(*claims, want, why, whylen))) {
		json_decref(*claims);
		*claims = NULL;
	}
	return rc;
}

/* ---- what the gateway makes of a person ---- */

/* Keycloak's group mapper with full paths gives "/vpn-admins". */
static const char *group_name(const char *group)
{
	return group[0] == '/' ? group + 1 : group;
}

static int claims_has_group(json_t *groups, const char *wanted)
{
	json_t *g;
	size_t i;
	if (json_is_string(groups))
		return !strcmp(group_name(json_string_value(groups)), wanted);
	json_array_foreach(groups, i, g)
	{
		if (json_is_string(g) && !strcmp(group_name(json_string_value(g)), wanted))
			return 1;
	}
	return 0;
}

int api_oidc_role(json_t *claims, const char *group_claim, json_t *map, const char **role,
                  char *why, size_t whylen)
{
	json_t *groups = json_object_get(claims, group_claim), *value;
	const char *group;
	*role = NULL;
	if (!json_is_string(groups) && !json_is_array(groups))
		return refuse(why, whylen, -EACCES,
		              "the ID token has no \"%s\" claim: the provider tells none of your "
		              "groups (docs/oidc.md: the group mapper)",
		              group_claim);
	json_object_foreach(map, group, value)
	{
		if (claims_has_group(groups, group)) {
			*role = json_string_value(value);
			return 0;
		}
	}
	char *list = json_dumps(groups, JSON_COMPACT | JSON_ENCODE_ANY);
	refuse(why, whylen, -EACCES, "none of your groups (%.200s) has a role here",
	       list ? list : "?");
	free(list);
	return -EACCES;
}

int api_oidc_user_name(json_t *claims, const char *user_claim, char out[API_OIDC_USER_MAX + 1],
                       char *why, size_t whylen)
{
	const char *value = json_string_value(json_object_get(claims, user_claim));
	size_t n = 0;
	if (!value)
		return refuse(why, whylen, -EINVAL,
		              "the ID token has no \"%s\" claim to name you by", user_claim);
	for (const char *c = value; *c && n < API_OIDC_USER_MAX; c++) {
		char lower = (*c >= 'A' && *c <= 'Z') ? (char)(*c - 'A' + 'a') : *c;
		if ((lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9'))
			out[n++] = lower;
		else if (n && out[n - 1] != '-')
			out[n++] = '-';
	}
	while (n && out[n - 1] == '-')
		n--;
	out[n] = '\0';
	if (!n)
		return refuse(why, whylen, -EINVAL,
		              "your \"%s\" (%.60s) has no letter or digit to make a user name of",
		              user_claim, value);
	return 0;
}
