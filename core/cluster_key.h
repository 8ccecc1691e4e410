/* The etcd client key (cluster.key) is a secret of the secret service
 * (lib/secret), like every private key of the node: the core asks
 * secret.get for it once the back end's plugin has started, and holds it
 * in memory only (cluster_open). A key still in a file is moved into the
 * service at start and the file removed: the operator's cluster.key (the
 * first start, or a renewal), or STATE_DIR/core/etcd-client.sealed, where
 * an earlier meshgated sealed it itself. docs/cluster.md. */
#ifndef MG_CORE_CLUSTER_KEY_H
#define MG_CORE_CLUSTER_KEY_H

#include <stddef.h>

#include <jansson.h>
#include <meshgate/api.h>

/* The key's name in the secret service (type "opaque": a PEM). */
#define CLUSTER_KEY_SECRET "core/etcd-client-key"

/* A key found in a file at start, before the bus is up: read and checked,
 * not moved yet, so that a bad file stops the start with nothing changed. */
struct cluster_key_files {
	const char *key_file; /* cluster.key; NULL: etcd takes no client key */
	char *pem;            /* the key found in a file; NULL: none, ask the service */
	size_t len;
	int from_key_file; /* pem is cluster.key's (else the sealed file's) */
	int sealed;        /* the earlier sealed file is there */
	char sealed_dir[4200];
};

/* A PEM file of at most 64 KiB, NUL-terminated, into *out (which the
 * caller wipes and frees); -ENOENT when there is none. */
int cluster_pem_read(const char *path, char **out, size_t *len, char *err, size_t errlen);

/* Reads cluster.key's file if there (it must hold a PEM private key: else
 * -EINVAL and the file is kept), else the earlier sealed key, opened with
 * `seal_key_file` (keystore.seal_key_file, NULL: its default). */
int cluster_key_files_read(json_t *settings, const char *state_dir, const char *seal_key_file,
                           struct cluster_key_files *files, char *err, size_t errlen);

/* The key from the secret service, through `ctx` (the core's own client
 * of the bus): a key found in a file is put first (the version after the
 * service's), then its files are removed (logged). *pem (wiped and freed
 * by the caller) holds *len bytes and a NUL. Takes files->pem. */
int cluster_key_take(mg_ctx *ctx, struct cluster_key_files *files, char **pem, size_t *len,
                     char *err, size_t errlen);

/* Wipes and frees what files still holds. */
void cluster_key_files_free(struct cluster_key_files *files);

#endif
