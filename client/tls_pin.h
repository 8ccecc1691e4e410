/* --pin: trust a gateway by the SHA-256 fingerprint of its certificate (or
 * of the CA that signed it) instead of a CA file.
 *
 * libcurl's GnuTLS backend has no hook to inspect the chain during the
 * handshake, and a check after the transfer would come too late: the code
 * would already be sent. So the pin is turned into a trust anchor first: one
 * TLS handshake (GnuTLS, nothing sent) fetches the chain the server
 * presents, the certificate whose fingerprint equals the pin is written to a
 * private temp file, and that file becomes the only CA of the real
 * connection, which libcurl then verifies in full (chain, validity, host
 * name). A server that cannot prove possession of the pinned certificate's
 * key (or of a certificate it signed) fails that verification. */
#ifndef MESHGATE_CLIENT_TLS_PIN_H
#define MESHGATE_CLIENT_TLS_PIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum cl_pin_kind {
	CL_PIN_CERT, /* SHA-256 of the certificate (DER), in hex */
	CL_PIN_SPKI, /* "sha256//BASE64": SHA-256 of the public key, as curl pins it */
};

struct cl_pin {
	enum cl_pin_kind kind;
	uint8_t sha256[32];
};

/* Accepts "AB:CD:...", "abcd..." (64 hex digits, colons optional), with an
 * optional "sha256:" or "SHA256 Fingerprint=" prefix, or "sha256//BASE64".
 * Returns 0 or -EINVAL. */
int cl_pin_parse(const char *text, struct cl_pin *pin);

/* The canonical text of a pin (what cl_pin_parse reads back): 64
 * lower-case hex digits, or "sha256//BASE64". 96 bytes are enough. */
void cl_pin_format(const struct cl_pin *pin, char *out, size_t size);

/* "AB:CD:..." of a digest, 96 bytes with the NUL. */
#define CL_FINGERPRINT_STRLEN 96
void cl_fingerprint_format(const uint8_t sha256[32], char out[CL_FINGERPRINT_STRLEN]);

/* Connects to host:port, finds the presented certificate matching pin and
 * writes it as PEM to a new private temp file whose name goes to path.
 * Failures: CL_EXIT_SERVER (cannot connect), CL_EXIT_TLS (no match). */
int cl_pin_fetch_anchor(const char *host, unsigned port, const struct cl_pin *pin, int timeout_s,
                        char *path, size_t size, struct cl_err *err);

#endif
