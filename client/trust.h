/* The trust bundle: the CAs a device verifies its gateway's API against.
 *
 * A device enrolled through one node of a cluster must verify the API of
 * any other after a switch. Every node keeps its own CA, and the gateway's
 * answers (redeem, device config) carry all of them as "api_cas". The
 * client keeps the anchor it enrolled with (--ca, or the certificate
 * --pin named) and these CAs together in one PEM file, CONFIG_DIR/
 * IFNAME.ca.pem, which curl (GnuTLS) loads whole as its only trust store.
 * CAs are only ever added from an answer over a connection verified with
 * the bundle as it was, so trust passes on through an authenticated channel
 * only; and none is dropped, so that no answer of one node (a node that
 * does not see the whole cluster yet) can lock the device out of another.
 * A single-CA file of an older client is a bundle of one. */
#ifndef MESHGATE_CLIENT_TRUST_H
#define MESHGATE_CLIENT_TRUST_H

#include <stddef.h>

#include "err.h"

#define CL_TRUST_MAX   64          /* CAs a bundle holds at most */
#define CL_API_CAS_MAX (64 * 1024) /* the PEM text of one answer's api_cas */

/* Checks that `pem` holds one X.509 CA certificate (CA:TRUE) and appends it,
 * re-encoded as plain PEM, to the text in out (size bytes, NUL-terminated).
 * Returns 0, -EINVAL (not a CA certificate) or -ENOSPC. */
int cl_trust_append_ca(const char *pem, char *out, size_t size);

/* Writes to `to` (mode 0600, atomically) the certificates of the PEM file
 * `from` followed by those of `extra` (PEM text, may be NULL) that are not
 * in it yet; `from` may be `to`. *added gets how many were new; when none
 * is and from is to, the file is left untouched. Fails when `from` holds
 * no certificate, or the bundle would exceed CL_TRUST_MAX. */
int cl_trust_bundle_write(const char *from, const char *extra, const char *to, size_t *added,
                          struct cl_err *err);

#endif
