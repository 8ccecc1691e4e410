/* The secret service (secret.get / secret.put / secret.rotate): one
 * record a key, the same whichever back end keeps it (plugins/keystore:
 * sealed on this node; plugins/vault: Vault's KV v2), so that no plugin
 * that uses a key changes with the back end.
 *
 *   {"name": "wireguard/wg0", "version": 3, "key": BASE64, "created_ms": T,
 *    "next": {"version": 4, "key": BASE64, "created_ms": T},
 *    "previous": {"version": 2, "key": BASE64, "until_ms": T}}
 *
 * `key` is the version in use. `next` is made by secret.rotate and not
 * used yet: the hitless rotation publishes it before it switches to it.
 * `previous` is the version a switch replaced, kept for the grace period.
 * A name is "OWNER/NAME" (the plugin and its key, e.g. "mesh/mgmesh0"). */
#ifndef MG_SECRET_H
#define MG_SECRET_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <meshgate/api.h>

/* The largest secret (base64 text): a TLS private key fits. */
#define SECRET_TEXT_MAX 16384

/* Request members of the services: {"name", "create"} for get (create:
 * make a WireGuard key when there is none, default true), {"name", "key",
 * "cas"} for put (cas: the version the caller replaces, 0 for none),
 * {"name"} for rotate; status takes nothing. */
extern const struct mg_field secret_get_fields[];
extern const struct mg_field secret_put_fields[];
extern const struct mg_field secret_rotate_fields[];

/* "OWNER/NAME", each part 1..64 of [A-Za-z0-9_-] (no '.': the back ends
 * add suffixes of their own). */
int secret_name_check(const char *name, char *err, size_t errlen);

/* A new WireGuard private key, base64; NULL when out of memory. */
json_t *secret_new_wg_key(void);

/* Version 1 of `name`: a new WireGuard private key. */
json_t *secret_record_new(const char *name, uint64_t now_ms);

/* Makes `next` (version + 1, a new WireGuard key) unless one is pending:
 * 1 made, 0 one was there already, -ENOMEM. */
int secret_record_rotate(json_t *record, uint64_t now_ms);

/* The record after a put of `key` over `record` (NULL: none yet): the new
 * key is the next version, the one it replaces kept until now + grace. */
json_t *secret_record_put(const char *name, json_t *record, const char *key, uint64_t now_ms,
                          uint64_t grace_ms);

/* The record without any key: what secret.status and logs may show. */
json_t *secret_record_public(json_t *record);

/* How long a plugin waits for its key at start: Vault may need a login,
 * a read and a write first. */
#define SECRET_GET_TIMEOUT_MS 30000

/* The WireGuard private key `name` from the secret service (made by the
 * service on first use), for a plugin's init or start: a synchronous
 * secret.get, served by the back end's plugin (it is a dependency, so
 * its services are up). *version and *created say which and whether it
 * is new. 0, or a negative errno with a message. */
int secret_get_wg_key(mg_ctx *ctx, const char *name, uint8_t key[32], long long *version,
                      int *created, char *err, size_t errlen);

#endif
