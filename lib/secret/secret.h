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
 * A name is "OWNER/NAME" (the plugin and its key, e.g. "mesh/mgmesh0").
 *
 * `type` says what the secret is: "wireguard" (also when absent: every
 * record before there were others) is a WireGuard private key, which the
 * service makes on first use and rotates; "opaque" is any other secret (a
 * TLS private key's PEM), made by its owner and stored with secret.put:
 * the service never makes one, never rotates one (secret.rotate refuses,
 * the schedule passes it by). */
#ifndef MG_SECRET_H
#define MG_SECRET_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <meshgate/api.h>

/* The largest secret (base64 text): a TLS private key fits. */
#define SECRET_TEXT_MAX 16384

#define SECRET_TYPE_WIREGUARD "wireguard"
#define SECRET_TYPE_OPAQUE    "opaque"

/* Request members of the services: {"name", "create"} for get (create:
 * make a WireGuard key when there is none, default true), {"name", "key",
 * "cas", "type"} for put (cas: the version the caller replaces, 0 for
 * none; type: SECRET_TYPE_*, default "opaque"),
 * {"name"} for rotate, {"name", "version"} for promote; status takes
 * nothing. */
extern const struct mg_field secret_get_fields[];
extern const struct mg_field secret_put_fields[];
extern const struct mg_field secret_rotate_fields[];
extern const struct mg_field secret_promote_fields[];

/* Events the back end publishes, payload {"name", "version"}: a next
 * version was made (secret.rotate or the schedule), a next version became
 * the one in use (secret.promote). The plugin owning the key subscribes
 * and runs the switch; the back end never decides when. */
#define SECRET_EVENT_NEXT     "secret.next"
#define SECRET_EVENT_PROMOTED "secret.promoted"

/* Publishes one of the events above for `name` at `version`. */
int secret_publish(mg_ctx *ctx, const char *topic, const char *name, long long version);

/* "OWNER/NAME", each part 1..64 of [A-Za-z0-9_-] (no '.': the back ends
 * add suffixes of their own). */
int secret_name_check(const char *name, char *err, size_t errlen);

/* The `type` of a put request (default "opaque") and its `key`: the key
 * base64 of 1 to SECRET_TEXT_MAX / 4 * 3 bytes, of 32 for a WireGuard
 * key. 0, or -EINVAL with a message naming the member. */
int secret_put_check(json_t *req, char *err, size_t errlen);

/* Whether the service rotates the secret of `record`: a WireGuard key. */
int secret_record_rotates(json_t *record);

/* A new WireGuard private key, base64; NULL when out of memory. */
json_t *secret_new_wg_key(void);

/* Version 1 of `name`: a new WireGuard private key. */
json_t *secret_record_new(const char *name, uint64_t now_ms);

/* Makes `next` (version + 1, a new WireGuard key) unless one is pending:
 * 1 made, 0 one was there already, -EMEDIUMTYPE not a WireGuard key
 * (nothing changed: the caller answers "invalid"), -ENOMEM. */
int secret_record_rotate(json_t *record, uint64_t now_ms);

/* secret.promote: the pending `next`, which must be `version`, becomes
 * the key in use; the replaced key becomes `previous`, kept until now +
 * grace. 1 promoted, 0 `version` is in use already (a restart
 * mid-rotation asks again: nothing changes), -ESTALE no next of that
 * version (the caller answers "conflict"), -ENOMEM. */
int secret_record_promote(json_t *record, long long version, uint64_t now_ms, uint64_t grace_ms);

/* The record after a put of `key` of `type` (SECRET_TYPE_*) over `record`
 * (NULL: none yet): the new key is the next version, the one it replaces
 * kept until now + grace. */
json_t *secret_record_put(const char *name, json_t *record, const char *key, const char *type,
                          uint64_t now_ms, uint64_t grace_ms);

/* The record without any key: what secret.status and logs may show. */
json_t *secret_record_public(json_t *record);

/* How long a plugin waits for its key at start: Vault may need a login,
 * a read and a write first. */
#define SECRET_GET_TIMEOUT_MS 30000

/* A WireGuard key as secret.get answers it: the version in use and, when
 * a rotation is under way, the next one (made, not in use yet). */
struct secret_wg_key {
	uint8_t key[32];
	long long version;
	int created; /* made by this very call */
	int has_next;
	uint8_t next_key[32];
	long long next_version;
};

/* The WireGuard private key `name` from the secret service (made by the
 * service on first use), for a plugin's init or start: a synchronous
 * secret.get, served by the back end's plugin (it is a dependency, so
 * its services are up). 0, or a negative errno with a message. The
 * caller wipes *out (sodium_memzero) when done with it. */
int secret_get_wg_keys(mg_ctx *ctx, const char *name, struct secret_wg_key *out, char *err,
                       size_t errlen);

/* The same, the key in use only. */
int secret_get_wg_key(mg_ctx *ctx, const char *name, uint8_t key[32], long long *version,
                      int *created, char *err, size_t errlen);

/* An opaque secret (a TLS key's PEM) from the service, never made by it:
 * 0 and *data (a new buffer of *len bytes and a NUL after them, which the
 * caller wipes with sodium_memzero and frees) and its *version; -ENOENT
 * when the service has none; another negative errno with a message. */
int secret_get_opaque(mg_ctx *ctx, const char *name, unsigned char **data, size_t *len,
                      long long *version, char *err, size_t errlen);

/* Stores `len` bytes as the opaque secret `name`, the version after `cas`
 * (0: there is none yet). 0, -EEXIST when the service has another version
 * (read it again), another negative errno with a message. */
int secret_put_opaque(mg_ctx *ctx, const char *name, const void *data, size_t len, long long cas,
                      char *err, size_t errlen);

#endif
