/* A stand-in for the gateway's HTTPS API (libmicrohttpd + GnuTLS), with a
 * test PKI made on the fly, for the client's integration tests.
 *
 * Redeem answers by code: "GOOD*" a valid config, "USED" 409 code_used,
 * "EXPIRED" / "REVOKED" 410, "UNKNOWN" 404, "SLOW" 429, "BOOM" 500, "JUNK" a
 * 200 with a malformed body, "NOREG*" a valid config whose register is then
 * refused (403). Register answers 200 and calls the on_register hook. */
#ifndef MESHGATE_TEST_FAKE_API_H
#define MESHGATE_TEST_FAKE_API_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct test_pki {
	char ca_pem[4096], rogue_ca_pem[4096];
	char chain_pem[8192], key_pem[4096];             /* leaf for 127.0.0.1 + the CA */
	char other_chain_pem[8192], other_key_pem[4096]; /* leaf for gw.invalid only */
	/* another node's: its own CA, and a leaf for 127.0.0.1 it signed */
	char ca2_pem[4096], chain2_pem[8192], key2_pem[4096];
	/* a leaf for 127.0.0.1 the rogue CA signed */
	char rogue_chain_pem[8192], rogue_key_pem[4096];
	uint8_t ca_sha256[32], leaf_sha256[32], leaf_spki_sha256[32];
};

int test_pki_make(struct test_pki *pki);

struct fake_api;

struct fake_reply_template {
	char endpoint[64];     /* what redeem sends as endpoint */
	char server_key[64];   /* base64 */
	char allowed_ips[128]; /* JSON array text */
	char address[32];
	int keepalive;
	char api_cas[8192]; /* JSON array text redeem sends as api_cas; "": none */
};

typedef void (*fake_register_hook)(void *arg, const char *code, const char *public_key);

struct fake_api *fake_api_start(const char *cert_pem, const char *key_pem,
                                const struct fake_reply_template *t, fake_register_hook hook,
                                void *arg);
unsigned fake_api_port(struct fake_api *api);
/* Counters and the last requests, for assertions. */
void fake_api_counts(struct fake_api *api, int *redeems, int *registers);
void fake_api_last_register(struct fake_api *api, char *public_key, size_t size);
void fake_api_last_name(struct fake_api *api, char *name, size_t size);
void fake_api_stop(struct fake_api *api);

#endif
