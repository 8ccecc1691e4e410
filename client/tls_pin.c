#include "tls_pin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int parse_spki(const char *b64, struct cl_pin *pin)
{
	size_t n = 0;
	if (strlen(b64) != 44 ||
	    sodium_base642bin(pin->sha256, sizeof(pin->sha256), b64, 44, NULL, &n, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) ||
	    n != sizeof(pin->sha256))
		return -EINVAL;
	pin->kind = CL_PIN_SPKI;
	return 0;
}

int cl_pin_parse(const char *text, struct cl_pin *pin)
{
	static const char *const prefixes[] = {
	    "SHA256 Fingerprint=", "sha256 fingerprint:", "sha256:", "sha-256:"};
	size_t digits = 0;

	memset(pin, 0, sizeof(*pin));
	if (!strncmp(text, "sha256//", 8))
		return parse_spki(text + 8, pin);
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (!strncasecmp(text, prefixes[i], strlen(prefixes[i]))) {
			text += strlen(prefixes[i]);
			break;
		}
	while (*text == ' ')
		text++;
	for (const char *s = text; *s; s++) {
		if (*s == ':' && s != text && s[1] && s[1] != ':')
			continue;
		int v = hex_value(*s);
		if (v < 0 || digits == 64)
			return -EINVAL;
		pin->sha256[digits / 2] = (uint8_t)(pin->sha256[digits / 2] << 4 | v);
		digits++;
	}
	if (digits != 64)
		return -EINVAL;
	pin->kind = CL_PIN_CERT;
	return 0;
}

void cl_pin_format(const struct cl_pin *pin, char *out, size_t size)
{
	char b64[64];
	if (pin->kind == CL_PIN_SPKI) {
		sodium_bin2base64(b64, sizeof(b64), pin->sha256, sizeof(pin->sha256),
		                  sodium_base64_VARIANT_ORIGINAL);
		snprintf(out, size, "sha256//%s", b64);
		return;
	}
	char hex[65];
	sodium_bin2hex(hex, sizeof(hex), pin->sha256, sizeof(pin->sha256));
	snprintf(out, size, "%s", hex);
}

void cl_fingerprint_format(const uint8_t sha256[32], char out[CL_FINGERPRINT_STRLEN])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + i * 3, 4, "%02X%s", sha256[i], i == 31 ? "" : ":");
}

static int connect_tcp(const char *host, unsigned port, int timeout_s, struct cl_err *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	struct timeval tv = {.tv_sec = timeout_s};
	char service[8];
	int fd = -1, rc, saved = 0;

	snprintf(service, sizeof(service), "%u", port);
	rc = getaddrinfo(host, service, &hints, &res);
	if (rc)
		return cl_fail(err, CL_EXIT_SERVER, "cannot resolve %s: %s", host,
		               gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		/* Linux applies the send timeout to connect() too. */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return cl_fail(err, CL_EXIT_SERVER, "cannot connect to %s port %u: %s", host, port,
		               strerror(saved ? saved : EHOSTUNREACH));
	return fd;
}

static int cert_digest(const gnutls_datum_t *der, enum cl_pin_kind kind, uint8_t out[32])
{
	if (kind == CL_PIN_CERT)
		return gnutls_hash_fast(GNUTLS_DIG_SHA256, der->data, der->size, out);

	gnutls_pubkey_t key;
	gnutls_datum_t spki = {0};
	int rc = gnutls_pubkey_init(&key);
	if (rc)
		return rc;
	rc = gnutls_pubkey_import_x509_raw(key, der, GNUTLS_X509_FMT_DER, 0);
	if (!rc)
		rc = gnutls_pubkey_export2(key, GNUTLS_X509_FMT_DER, &spki);
	if (!rc)
		rc = gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size, out);
	gnutls_free(spki.data);
	gnutls_pubkey_deinit(key);
	return rc;
}

static int write_anchor(const gnutls_datum_t *der, char *path, size_t size, struct cl_err *err)
{
	gnutls_datum_t pem = {0};
	const char *tmpdir = getenv("TMPDIR");
	if (gnutls_pem_base64_encode2("CERTIFICATE", der, &pem))
		return cl_fail(err, CL_EXIT_FAILURE, "cannot encode the pinned certificate");
	if ((size_t)snprintf(path, size, "%s/meshgate-pin-XXXXXX", tmpdir ? tmpdir : "/tmp") >=
	    size) {
		gnutls_free(pem.data);
		return cl_fail(err, CL_EXIT_FAILURE, "TMPDIR is too long");
	}
	int fd = mkstemp(path);
	int ok = fd >= 0 && write(fd, pem.data, pem.size) == (ssize_t)pem.size;
	int saved = errno;
	gnutls_free(pem.data);
	if (fd >= 0 && close(fd))
		ok = 0;
	if (!ok) {
		if (fd >= 0)
			unlink(path);
		path[0] = '\0';
		return cl_fail(err, CL_EXIT_FAILURE, "cannot write a temp file: %s",
		               strerror(saved));
	}
	return 0;
}

static bool is_ip_literal(const char *host)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* The handshake only: the chain is read, nothing is sent, nothing trusted. */
static int fetch_chain(gnutls_session_t session, int fd, const char *host, int timeout_s,
                       struct cl_err *err)
{
	int rc;
	if (!is_ip_literal(host))
		gnutls_server_name_set(session, GNUTLS_NAME_DNS, host, strlen(host));
	gnutls_transport_set_int(session, fd);
	gnutls_handshake_set_timeout(session, (unsigned)timeout_s * 1000);
	do
		rc = gnutls_handshake(session);
	while (rc < 0 && !gnutls_error_is_fatal(rc));
	if (rc < 0)
		return cl_fail(err, CL_EXIT_TLS, "TLS handshake with %s failed: %s", host,
		               gnutls_strerror(rc));
	return 0;
}

static int match_chain(gnutls_session_t session, const struct cl_pin *pin, char *path, size_t size,
                       struct cl_err *err)
{
	unsigned n = 0;
	const gnutls_datum_t *chain = gnutls_certificate_get_peers(session, &n);
	uint8_t digest[32], leaf[32];
	char shown[CL_FINGERPRINT_STRLEN];

	for (unsigned i = 0; chain && i < n; i++) {
		if (cert_digest(&chain[i], pin->kind, digest))
			continue;
		if (i == 0)
			memcpy(leaf, digest, sizeof(leaf));
		if (sodium_memcmp(digest, pin->sha256, sizeof(digest)) == 0)
			return write_anchor(&chain[i], path, size, err);
	}
	if (!chain || n == 0)
		return cl_fail(err, CL_EXIT_TLS, "the server presented no certificate");
	cl_fingerprint_format(leaf, shown);
	return cl_fail(
	    err, CL_EXIT_TLS, "the server's certificate does not match --pin (its %s is %s)",
	    pin->kind == CL_PIN_CERT ? "SHA-256 fingerprint" : "public key SHA-256", shown);
}

int cl_pin_fetch_anchor(const char *host, unsigned port, const struct cl_pin *pin, int timeout_s,
                        char *path, size_t size, struct cl_err *err)
{
	gnutls_certificate_credentials_t cred = NULL;
	gnutls_session_t session = NULL;
	int rc = -1;

	path[0] = '\0';
	int fd = connect_tcp(host, port, timeout_s, err);
	if (fd < 0)
		return -1;
	if (gnutls_certificate_allocate_credentials(&cred) ||
	    gnutls_init(&session, GNUTLS_CLIENT) || gnutls_set_default_priority(session) ||
	    gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred)) {
		cl_fail(err, CL_EXIT_FAILURE, "cannot set up GnuTLS");
		goto out;
	}
	if (fetch_chain(session, fd, host, timeout_s, err) == 0)
		rc = match_chain(session, pin, path, size, err);
	gnutls_bye(session, GNUTLS_SHUT_WR);
out:
	if (session)
		gnutls_deinit(session);
	if (cred)
		gnutls_certificate_free_credentials(cred);
	close(fd);
	return rc;
}
