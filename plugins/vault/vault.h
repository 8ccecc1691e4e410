/* The vault plugin: the secret service's Vault back end (docs/vault.md).
 * vault_http.c speaks Vault's HTTP API (blocking, libcurl: only the
 * plugin's worker thread calls it); vault.c is the plugin. */
#ifndef MG_VAULT_H
#define MG_VAULT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct vault_conf {
	char address[256]; /* https://HOST:PORT */
	char ca[1024];     /* the CA file Vault's certificate is verified against */
	char role_id[256];
	char secret_id_file[1024]; /* AppRole's secret_id, a 0600 file */
	char token_file[1024];     /* or a token, a 0600 file (no AppRole) */
	char mount[128];           /* the KV v2 mount */
	char path[256];            /* where the node's keys live under it */
};

struct vault_client {
	struct vault_conf conf;
	void *curl;
	char token[512];
	uint64_t token_expires_ms; /* 0: no expiry known */
	uint64_t token_renew_ms;   /* when to renew it (2/3 of its TTL) */
	int reachable;             /* the last request got an HTTP answer */
};

/* Results besides 0: -ENOENT (no such secret), -ESTALE (check-and-set
 * refused: a newer version is there), -EACCES (token refused or expired),
 * -EHOSTUNREACH (no answer: Vault down or TLS refused), -EPROTO (an answer
 * of another shape), -EPERM (login refused), -EIO (other errors). */
int vault_client_init(struct vault_client *c, const struct vault_conf *conf, char *err,
                      size_t errlen);
void vault_client_free(struct vault_client *c);

/* Logs in (AppRole, or the token of token_file), or renews the token once
 * 2/3 of its TTL has passed; a renewal refused logs in again. */
int vault_ensure_token(struct vault_client *c, uint64_t now_ms, char *err, size_t errlen);
int vault_login(struct vault_client *c, uint64_t now_ms, char *err, size_t errlen);
int vault_renew(struct vault_client *c, uint64_t now_ms, char *err, size_t errlen);

/* KV v2 at MOUNT/data/PATH/NAME: the data and its version (metadata.version). */
int vault_kv_read(struct vault_client *c, const char *name, json_t **data, long long *version,
                  char *err, size_t errlen);
/* A write only over version `cas` (0: only when there is none). */
int vault_kv_write(struct vault_client *c, const char *name, json_t *data, long long cas,
                   long long *version, char *err, size_t errlen);
/* GET /v1/sys/health: 0 when Vault is initialised, unsealed and active. */
int vault_health(struct vault_client *c, char *err, size_t errlen);

#endif
