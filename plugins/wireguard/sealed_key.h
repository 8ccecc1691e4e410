/* The gateway's WireGuard private key at rest: sealed with libsodium's
 * secretbox under a key file readable by root only, both mode 0600. The
 * private key is made on this host and never leaves it. */
#ifndef WG_SEALED_KEY_H
#define WG_SEALED_KEY_H

#include <stddef.h>

#include "wg.h"

/* Loads DIR/NAME.sealed with DIR/seal.key, or makes and stores a new
 * private key when there is none. Returns 0 or -errno with a message. */
int wgp_sealed_key_load_or_create(const char *dir, const char *name, wg_key private_key,
                                  int *created, char *err, size_t errlen);

#endif
