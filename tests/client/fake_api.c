#include "fake_api.h"

#include <arpa/inet.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- PKI ---- */

struct cert {
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
};

static int new_cert(struct cert *c, const char *dn, int serial)
{
	unsigned char sn[2] = {(unsigned char)(serial >> 8), (unsigned char)serial};
	time_t now = time(NULL);
	if (gnutls_x509_privkey_init(&c->key) ||
	    gnutls_x509_privkey_generate(c->key, GNUTLS_PK_ECDSA,
	                                 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) ||
	    gnutls_x509_crt_init(&c->crt) || gnutls_x509_crt_set_version(c->crt, 3) ||
	    gnutls_x509_crt_set_serial(c->crt, sn, sizeof(sn)) ||
	    gnutls_x509_crt_set_activation_time(c->crt, now - 3600) ||
	    gnutls_x509_crt_set_expiration_time(c->crt, now + 86400) ||
	    gnutls_x509_crt_set_dn(c->crt, dn, NULL) || gnutls_x509_crt_set_key(c->crt, c->key))
		return -1;
	unsigned char id[64];
	size_t idlen = sizeof(id);
	if (gnutls_x509_crt_get_key_id(c->crt, 0, id, &idlen) ||
	    gnutls_x509_crt_set_subject_key_id(c->crt, id, idlen))
		return -1;
	return 0;
}

static int make_ca(struct cert *ca, const char *dn, int serial)
{
	if (new_cert(ca, dn, serial) || gnutls_x509_crt_set_basic_constraints(ca->crt, 1, -1) ||
	    gnutls_x509_crt_set_key_usage(ca->crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN))
		return -1;
	return gnutls_x509_crt_sign2(ca->crt, ca->crt, ca->key, GNUTLS_DIG_SHA256, 0) ? -1 : 0;
}

static int make_leaf(struct cert *leaf, const struct cert *ca, bool with_ip, int serial)
{
	struct in_addr lo = {htonl(INADDR_LOOPBACK)};
	const char *name = with_ip ? "localhost" : "gw.invalid";
	if (new_cert(leaf, with_ip ? "CN=localhost" : "CN=gw.invalid", serial) ||
	    gnutls_x509_crt_set_basic_constraints(leaf->crt, 0, -1) ||
	    gnutls_x509_crt_set_key_usage(leaf->crt, GNUTLS_KEY_DIGITAL_SIGNATURE) ||
	    gnutls_x509_crt_set_key_purpose_oid(leaf->crt, GNUTLS_KP_TLS_WWW_SERVER, 0) ||
	    gnutls_x509_crt_set_subject_alt_name(leaf->crt, GNUTLS_SAN_DNSNAME, name,
	                                         (unsigned)strlen(name), GNUTLS_FSAN_APPEND))
		return -1;
	if (with_ip && gnutls_x509_crt_set_subject_alt_name(leaf->crt, GNUTLS_SAN_IPADDRESS, &lo,
	                                                    sizeof(lo), GNUTLS_FSAN_APPEND))
		return -1;
	return gnutls_x509_crt_sign2(leaf->crt, ca->crt, ca->key, GNUTLS_DIG_SHA256, 0) ? -1 : 0;
}

static int crt_pem(gnutls_x509_crt_t crt, char *out, size_t size)
{
	gnutls_datum_t d = {0};
	if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d) || d.size >= size)
		return -1;
	memcpy(out, d.data, d.size);
	out[d.size] = '\0';
	gnutls_free(d.data);
	return 0;
}

static int key_pem(gnutls_x509_privkey_t key, char *out, size_t size)
{
	gnutls_datum_t d = {0};
	if (gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &d) || d.size >= size)
		return -1;
	memcpy(out, d.data, d.size);
	out[d.size] = '\0';
	gnutls_free(d.data);
	return 0;
}

static int spki_sha256(gnutls_x509_crt_t crt, uint8_t out[32])
{
	gnutls_pubkey_t pub;
	gnutls_datum_t d = {0};
	int rc = gnutls_pubkey_init(&pub);
	if (!rc)
		rc = gnutls_pubkey_import_x509(pub, crt, 0);
	if (!rc)
		rc = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &d);
	if (!rc)
		rc = gnutls_hash_fast(GNUTLS_DIG_SHA256, d.data, d.size, out);
	gnutls_free(d.data);
	gnutls_pubkey_deinit(pub);
	return rc;
}

static void free_cert(struct cert *c)
{
	gnutls_x509_crt_deinit(c->crt);
	gnutls_x509_privkey_deinit(c->key);
}

int test_pki_make(struct test_pki *pki)
{
	struct cert ca, rogue, leaf, other, ca2, leaf2, rogue_leaf;
	char leaf_pem[4096];
	size_t n = 32, m = 32;
	int rc =
	    make_ca(&ca, "CN=meshgate test CA", 1) || make_ca(&rogue, "CN=rogue CA", 2) ||
	    make_leaf(&leaf, &ca, true, 3) || make_leaf(&other, &ca, false, 4) ||
	    make_ca(&ca2, "CN=meshgate test CA of node 2", 5) || make_leaf(&leaf2, &ca2, true, 6) ||
	    crt_pem(ca2.crt, pki->ca2_pem, sizeof(pki->ca2_pem)) ||
	    key_pem(leaf2.key, pki->key2_pem, sizeof(pki->key2_pem)) ||
	    make_leaf(&rogue_leaf, &rogue, true, 7) ||
	    key_pem(rogue_leaf.key, pki->rogue_key_pem, sizeof(pki->rogue_key_pem)) ||
	    crt_pem(ca.crt, pki->ca_pem, sizeof(pki->ca_pem)) ||
	    crt_pem(rogue.crt, pki->rogue_ca_pem, sizeof(pki->rogue_ca_pem)) ||
	    crt_pem(leaf.crt, leaf_pem, sizeof(leaf_pem)) ||
	    key_pem(leaf.key, pki->key_pem, sizeof(pki->key_pem)) ||
	    key_pem(other.key, pki->other_key_pem, sizeof(pki->other_key_pem)) ||
	    gnutls_x509_crt_get_fingerprint(ca.crt, GNUTLS_DIG_SHA256, pki->ca_sha256, &n) ||
	    gnutls_x509_crt_get_fingerprint(leaf.crt, GNUTLS_DIG_SHA256, pki->leaf_sha256, &m) ||
	    spki_sha256(leaf.crt, pki->leaf_spki_sha256);
	if (!rc) {
		/* The server sends its certificate and the CA's, as the api plugin does. */
		snprintf(pki->chain_pem, sizeof(pki->chain_pem), "%s%s", leaf_pem, pki->ca_pem);
		rc = crt_pem(other.crt, leaf_pem, sizeof(leaf_pem));
		snprintf(pki->other_chain_pem, sizeof(pki->other_chain_pem), "%s%s", leaf_pem,
		         pki->ca_pem);
	}
	if (!rc && !(rc = crt_pem(leaf2.crt, leaf_pem, sizeof(leaf_pem))))
		snprintf(pki->chain2_pem, sizeof(pki->chain2_pem), "%s%s", leaf_pem, pki->ca2_pem);
	if (!rc && !(rc = crt_pem(rogue_leaf.crt, leaf_pem, sizeof(leaf_pem))))
		snprintf(pki->rogue_chain_pem, sizeof(pki->rogue_chain_pem), "%s%s", leaf_pem,
		         pki->rogue_ca_pem);
	free_cert(&ca);
	free_cert(&rogue);
	free_cert(&leaf);
	free_cert(&other);
	free_cert(&ca2);
	free_cert(&leaf2);
	free_cert(&rogue_leaf);
	return rc ? -1 : 0;
}

/* ---- server ---- */

struct fake_api {
	struct MHD_Daemon *daemon;
	struct fake_reply_template t;
	fake_register_hook hook;
	void *hook_arg;
	pthread_mutex_t lock;
	int redeems, registers;
	char last_public_key[64], last_name[128];
	char cert[8192], key[4096]; /* MHD keeps pointers to them */
};

struct upload {
	char *data;
	size_t len;
};

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result error(struct MHD_Connection *c, unsigned status, const char *code,
                             const char *message)
{
	return answer(c, status, json_pack("{s:s, s:s}", "error", code, "message", message));
}

static enum MHD_Result redeem(struct fake_api *api, struct MHD_Connection *c, json_t *req)
{
	const char *code = json_string_value(json_object_get(req, "code"));
	const char *name = json_string_value(json_object_get(req, "name"));
	char id[160], token[160];
	pthread_mutex_lock(&api->lock);
	api->redeems++;
	snprintf(api->last_name, sizeof(api->last_name), "%s", name ? name : "");
	pthread_mutex_unlock(&api->lock);
	if (!code || !name)
		return error(c, 400, "bad_request", "code and name are required");
	if (!strcmp(code, "USED"))
		return error(c, 409, "code_used", "this code was used already");
	if (!strcmp(code, "EXPIRED"))
		return error(c, 410, "code_expired", "this code expired");
	if (!strcmp(code, "REVOKED"))
		return error(c, 410, "code_revoked", "this code was revoked");
	if (!strcmp(code, "UNKNOWN"))
		return error(c, 404, "unknown_code", "no such code");
	if (!strcmp(code, "SLOW"))
		return error(c, 429, "rate_limited", "slow down");
	if (!strcmp(code, "BOOM"))
		return error(c, 500, "internal", "state unavailable");
	if (!strcmp(code, "JUNK"))
		return answer(c, 200, json_pack("{s:s}", "device_id", "x"));
	if (strncmp(code, "GOOD", 4) && strncmp(code, "NOREG", 5))
		return error(c, 404, "unknown_code", "no such code");
	snprintf(id, sizeof(id), "dev-%s", code);
	snprintf(token, sizeof(token), "tok-%s", code);
	json_t *allowed = json_loads(api->t.allowed_ips, 0, NULL);
	json_t *reply = json_pack("{s:s, s:s, s:s, s:s, s:o, s:i, s:s, s:s}", "device_id", id,
	                          "address", api->t.address, "server_public_key", api->t.server_key,
	                          "endpoint", api->t.endpoint, "allowed_ips", allowed, "keepalive",
	                          api->t.keepalive, "register_token", token, "dns", "10.77.0.1");
	if (*api->t.api_cas)
		json_object_set_new(reply, "api_cas", json_loads(api->t.api_cas, 0, NULL));
	return answer(c, 200, reply);
}

static enum MHD_Result do_register(struct fake_api *api, struct MHD_Connection *c, json_t *req)
{
	const char *id = json_string_value(json_object_get(req, "device_id"));
	const char *token = json_string_value(json_object_get(req, "register_token"));
	const char *key = json_string_value(json_object_get(req, "public_key"));
	const char *address = json_string_value(json_object_get(req, "address"));
	pthread_mutex_lock(&api->lock);
	api->registers++;
	snprintf(api->last_public_key, sizeof(api->last_public_key), "%s", key ? key : "");
	pthread_mutex_unlock(&api->lock);
	if (!id || !token || !key || !address || strncmp(id, "dev-", 4) ||
	    strncmp(token, "tok-", 4) || strcmp(id + 4, token + 4))
		return error(c, 403, "forbidden", "bad register token");
	if (!strncmp(id + 4, "NOREG", 5))
		return error(c, 403, "forbidden", "registration closed");
	if (api->hook)
		api->hook(api->hook_arg, id + 4, key);
	return answer(c, 200, json_pack("{s:s}", "status", "active"));
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **con_cls)
{
	struct fake_api *api = cls;
	struct upload *u = *con_cls;
	(void)version;
	if (!u) {
		*con_cls = calloc(1, sizeof(*u));
		return *con_cls ? MHD_YES : MHD_NO;
	}
	if (*size) {
		char *grown = realloc(u->data, u->len + *size + 1);
		if (!grown)
			return MHD_NO;
		u->data = grown;
		memcpy(u->data + u->len, data, *size);
		u->len += *size;
		u->data[u->len] = '\0';
		*size = 0;
		return MHD_YES;
	}
	if (strcmp(method, "POST"))
		return error(c, 405, "bad_request", "POST only");
	json_t *req = json_loadb(u->data ? u->data : "", u->len, 0, NULL);
	enum MHD_Result rc;
	if (!json_is_object(req))
		rc = error(c, 400, "bad_request", "body is not a JSON object");
	else if (!strcmp(url, "/api/v1/redeem"))
		rc = redeem(api, c, req);
	else if (!strcmp(url, "/api/v1/register"))
		rc = do_register(api, c, req);
	else
		rc = error(c, 404, "not_found", "no such endpoint");
	json_decref(req);
	return rc;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode code)
{
	struct upload *u = *con_cls;
	(void)cls, (void)c, (void)code;
	if (u) {
		free(u->data);
		free(u);
		*con_cls = NULL;
	}
}

struct fake_api *fake_api_start(const char *cert_pem, const char *key_pem,
                                const struct fake_reply_template *t, fake_register_hook hook,
                                void *arg)
{
	struct fake_api *api = calloc(1, sizeof(*api));
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr = {htonl(INADDR_LOOPBACK)}};
	if (!api)
		return NULL;
	api->t = *t;
	api->hook = hook;
	api->hook_arg = arg;
	pthread_mutex_init(&api->lock, NULL);
	snprintf(api->cert, sizeof(api->cert), "%s", cert_pem);
	snprintf(api->key, sizeof(api->key), "%s", key_pem);
	api->daemon =
	    MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS, 0, NULL, NULL, handle,
	                     api, MHD_OPTION_HTTPS_MEM_CERT, api->cert, MHD_OPTION_HTTPS_MEM_KEY,
	                     api->key, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
	                     MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
	if (!api->daemon) {
		free(api);
		return NULL;
	}
	return api;
}

unsigned fake_api_port(struct fake_api *api)
{
	const union MHD_DaemonInfo *info =
	    MHD_get_daemon_info(api->daemon, MHD_DAEMON_INFO_BIND_PORT);
	return info ? info->port : 0;
}

void fake_api_counts(struct fake_api *api, int *redeems, int *registers)
{
	pthread_mutex_lock(&api->lock);
	*redeems = api->redeems;
	*registers = api->registers;
	pthread_mutex_unlock(&api->lock);
}

void fake_api_last_register(struct fake_api *api, char *public_key, size_t size)
{
	pthread_mutex_lock(&api->lock);
	snprintf(public_key, size, "%s", api->last_public_key);
	pthread_mutex_unlock(&api->lock);
}

void fake_api_last_name(struct fake_api *api, char *name, size_t size)
{
	pthread_mutex_lock(&api->lock);
	snprintf(name, size, "%s", api->last_name);
	pthread_mutex_unlock(&api->lock);
}

void fake_api_stop(struct fake_api *api)
{
	if (!api)
		return;
	MHD_stop_daemon(api->daemon);
	pthread_mutex_destroy(&api->lock);
	free(api);
}
