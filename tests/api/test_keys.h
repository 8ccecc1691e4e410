/* A stand-in for the secret service in the api's unit tests: the private
 * keys api_tls_prepare loads and saves, held in a JSON object (name ->
 * PEM) given as the keys' arg. */
#ifndef MG_TEST_KEYS_H
#define MG_TEST_KEYS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api.h"

static int test_key_load(void *arg, const char *name, char **pem, char *why, size_t whylen)
{
	const char *text = json_string_value(json_object_get(arg, name));
	if (!text) {
		snprintf(why, whylen, "no secret named %s", name);
		return -ENOENT;
	}
	*pem = strdup(text);
	return *pem ? 0 : -ENOMEM;
}

static int test_key_save(void *arg, const char *name, const char *pem, size_t len, char *why,
                         size_t whylen)
{
	(void)why, (void)whylen;
	return json_object_set_new(arg, name, json_stringn(pem, len)) ? -ENOMEM : 0;
}

/* The keys of `store` (a JSON object) as api_tls_params wants them. */
static inline struct api_keys test_keys(json_t *store)
{
	return (struct api_keys){test_key_load, test_key_save, store};
}

#ifdef KEYSTORE_SO
#include <cmocka.h>

#include <mg_mock.h>

/* The api plugin on the mock core keeps its keys in the real secret
 * service: the keystore plugin, its sealing key `seal` beside the mock's
 * state dir (the caller removes it after mg_mock_free). */
static void mock_add_keystore(struct mg_mock *m, char *seal, size_t len)
{
	char err[512];
	snprintf(seal, len, "%s.seal.key", mg_mock_state_dir(m));
	json_t *cfg = json_pack("{s:s}", "seal_key_file", seal);
	if (mg_mock_load(m, KEYSTORE_SO, cfg, err, sizeof(err)))
		fail_msg("keystore: %s", err);
	json_decref(cfg);
}
#endif

#endif
