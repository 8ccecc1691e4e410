/* A node's private keys at rest, for the keystore plugin (the local back
 * end of the secret service: the wireguard plugin's server key, the mesh
 * plugin's node key): sealed with libsodium's secretbox under
 * a key file readable by root only, both mode 0600. A private key is made
 * on this host and never leaves it. The sealing key lives apart from the
 * sealed files, outside the state dir, so that a copy of the state dir
 * alone does not open them; the plugins of a node share it. */
#ifndef MG_SEAL_H
#define MG_SEAL_H

#include <stddef.h>

#include "wg.h"

/* The name of the sealing key as a systemd credential (LoadCredential=,
 * LoadCredentialEncrypted=), found in $CREDENTIALS_DIRECTORY. */
#define SEAL_CREDENTIAL "meshgate-seal.key"

/* Where the sealing key is: `configured` (the plugin's seal_key_file) when
 * set; else the systemd credential when the service has one; else
 * STATE_DIR-seal.key, beside the state dir. A path inside the state dir
 * is refused (-EINVAL, with a message). */
int seal_key_path(const char *configured, const char *state_dir, char *path, size_t len, char *err,
                  size_t errlen);

/* Loads DIR/NAME.sealed with the key at `key_path`, or makes and stores a
 * new private key when there is none. A sealing key still at its old
 * place, DIR/seal.key, is moved to `key_path` (the sealed key is kept).
 * Two plugins making the sealing key at the same time end up with one:
 * the first stored wins and the other uses it.
 * Returns 0 or -errno with a message; *moved_from names the old key file
 * when it was moved. */
int sealed_key_load_or_create(const char *dir, const char *name, const char *key_path,
                              wg_key private_key, int *created, char *moved_from, size_t moved_len,
                              char *err, size_t errlen);

/* Any secret of at most `cap` bytes (a TLS key, a key's next version),
 * sealed in DIR/NAME.sealed under the key at `key_path`: load returns
 * -ENOENT when there is none, and 0 with *len. store writes it anew
 * (atomically, 0600), making the sealing key when there is none yet.
 * remove: 0 when it is gone (or never was). */
int seal_load(const char *dir, const char *name, const char *key_path, unsigned char *secret,
              size_t cap, size_t *len, char *err, size_t errlen);
int seal_store(const char *dir, const char *name, const char *key_path, const unsigned char *secret,
               size_t len, char *err, size_t errlen);
int seal_remove(const char *dir, const char *name);

#endif
