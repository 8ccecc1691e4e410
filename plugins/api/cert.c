/* The API's certificates: a CA made once per gateway (what clients pin)
 * and a server certificate it signs for the configured names. GnuTLS's
 * x509 API, ECDSA P-256 keys (what every TLS client accepts). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "api.h"

#define DAY      86400
#define BACKDATE 3600 /* clocks of clients lag; an hour of slack */

static int fail(char *why, size_t whylen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *why, size_t whylen, int rc, const char *fmt, ...)
{
	va_list ap;
	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* ---- files ---- */

static int read_file(const char *path, gnutls_datum_t *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || st.st_size > 1 << 20) {
		int rc = errno ? -errno : -EFBIG;
		close(fd);
		return rc;
	}
	out->data = gnutls_malloc((size_t)st.st_size + 1);
	out->size = 0;
	if (!out->data) {
		close(fd);
		return -ENOMEM;
	}
	while (out->size < (unsigned)st.st_size) {
		ssize_t n = read(fd, out->data + out->size, (size_t)st.st_size - out->size);
		if (n <= 0) {
			int rc = n < 0 ? -errno : -EIO;
			close(fd);
			gnutls_free(out->data);
			out->data = NULL;
			return rc;
		}
		out->size += (unsigned)n;
	}
	out->data[out->size] = '\0';
	close(fd);
	return 0;
}

static void join(char *out, size_t len, const char *dir, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

/* Written beside, synced, renamed over: a crash leaves the old file or
 * the new one, never half of one. */
static int write_file(const char *dir, const char *name, const gnutls_datum_t *data, mode_t mode)
{
	char path[4096], tmp[4200];
	join(path, sizeof(path), dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	size_t off = 0;
	int rc = 0;
	while (off < data->size && !rc) {
		ssize_t n = write(fd, data->data + off, data->size - off);
		if (n < 0)
			rc = -errno;
		else
			off += (size_t)n;
	}
	if (!rc && (fchmod(fd, mode) || fsync(fd)))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return rc;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* ---- keys and certificates ---- */

static int reimport(gnutls_x509_crt_t crt, gnutls_x509_crt_t *out);

static int key_generate(gnutls_x509_privkey_t *key)
{
	int rc = gnutls_x509_privkey_init(key);
	if (rc < 0)
		return rc;
	rc = gnutls_x509_privkey_generate(*key, GNUTLS_PK_ECDSA,
	                                  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
	if (rc < 0) {
		gnutls_x509_privkey_deinit(*key);
		*key = NULL;
	}
	return rc;
}

/* A PEM private key; `what` names where it came from in an error. */
static int key_import(const gnutls_datum_t *pem, const char *what, gnutls_x509_privkey_t *key,
                      char *why, size_t whylen)
{
	int rc = gnutls_x509_privkey_init(key);
	if (rc >= 0)
		rc = gnutls_x509_privkey_import2(*key, pem, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (rc < 0) {
		gnutls_x509_privkey_deinit(*key);
		*key = NULL;
		return fail(why, whylen, -EINVAL, "%s: not a private key: %s", what,
		            gnutls_strerror(rc));
	}
	return 0;
}

/* 0 and *key, -ENOENT when the file is missing, or another error. */
static int key_load(const char *path, gnutls_x509_privkey_t *key, char *why, size_t whylen)
{
	gnutls_datum_t d;
	*key = NULL;
	int rc = read_file(path, &d);
	if (rc)
		return fail(why, whylen, rc, "%s: %s", path, strerror(-rc));
	rc = key_import(&d, path, key, why, whylen);
	gnutls_memset(d.data, 0, d.size);
	gnutls_free(d.data);
	return rc;
}

static int crt_load(const char *path, gnutls_x509_crt_t *crt, char *why, size_t whylen)
{
	gnutls_datum_t d;
	*crt = NULL;
	int rc = read_file(path, &d);
	if (rc)
		return fail(why, whylen, rc, "%s: %s", path, strerror(-rc));
	rc = gnutls_x509_crt_init(crt);
	if (rc >= 0)
		rc = gnutls_x509_crt_import(*crt, &d, GNUTLS_X509_FMT_PEM);
	gnutls_free(d.data);
	if (rc < 0) {
		gnutls_x509_crt_deinit(*crt);
		*crt = NULL;
		return fail(why, whylen, -EINVAL, "%s: not a certificate: %s", path,
		            gnutls_strerror(rc));
	}
	return 0;
}

static int key_matches(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key)
{
	unsigned char a[64], b[64];
	size_t alen = sizeof(a), blen = sizeof(b);
	return gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, a, &alen) >= 0 &&
	       gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, b, &blen) >= 0 &&
	       alen == blen && !memcmp(a, b, alen);
}

static void hex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int crt_fingerprint(gnutls_x509_crt_t crt, char out[API_FINGERPRINT_LEN + 1])
{
	unsigned char digest[32];
	size_t len = sizeof(digest);
	int rc = gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, digest, &len);
	if (rc < 0 || len != 32)
		return -EINVAL;
	hex(digest, len, out);
	return 0;
}

static void base64(const unsigned char *in, size_t len, char *out)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16;
		if (i + 1 < len)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? b64[v & 63] : '=';
	}
	out[o] = '\0';
}

/* What curl's --pinnedpubkey sha256//... compares: the SPKI's digest. */
static int crt_pubkey_pin(gnutls_x509_crt_t crt, char *out)
{
	gnutls_pubkey_t pub;
	gnutls_datum_t der = {NULL, 0};
	unsigned char digest[32];
	int rc = gnutls_pubkey_init(&pub);
	if (rc < 0)
		return -ENOMEM;
	rc = gnutls_pubkey_import_x509(pub, crt, 0);
	if (rc >= 0)
		rc = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der);
	if (rc >= 0)
		rc = gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, digest);
	gnutls_free(der.data);
	gnutls_pubkey_deinit(pub);
	if (rc < 0)
		return -EINVAL;
	base64(digest, sizeof(digest), out);
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(json_string_value(*(json_t *const *)a),
	              json_string_value(*(json_t *const *)b));
}

/* Canonical, sorted, without duplicates: two lists naming the same hosts
 * compare equal. */
static json_t *names_normalised(json_t *names)
{
	json_t *items[256];
	size_t n = 0, i;
	json_t *v;
	json_array_foreach(names, i, v)
	{
		char canon[API_HOSTNAME_MAX + 1];
		if (n == 256 || api_name_canonical(json_string_value(v), canon, sizeof(canon)))
			continue;
		items[n++] = json_string(canon);
	}
	qsort(items, n, sizeof(items[0]), cmp_names);
	json_t *out = json_array();
	for (i = 0; i < n; i++) {
		if (i && !strcmp(json_string_value(items[i]), json_string_value(items[i - 1])))
			json_decref(items[i]);
		else
			json_array_append_new(out, items[i]);
	}
	return out;
}

/* The subjectAltNames (DNS and IP) of a certificate, normalised. */
static json_t *crt_names(gnutls_x509_crt_t crt)
{
	json_t *raw = json_array();
	for (unsigned seq = 0;; seq++) {
		unsigned char buf[512];
		size_t size = sizeof(buf) - 1;
		char text[INET6_ADDRSTRLEN];
		unsigned critical;
		int type = gnutls_x509_crt_get_subject_alt_name(crt, seq, buf, &size, &critical);
		if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (type == GNUTLS_SAN_DNSNAME) {
			buf[size] = '\0';
			json_array_append_new(raw, json_string((char *)buf));
		} else if (type == GNUTLS_SAN_IPADDRESS && (size == 4 || size == 16) &&
		           inet_ntop(size == 4 ? AF_INET : AF_INET6, buf, text, sizeof(text))) {
			json_array_append_new(raw, json_string(text));
		} else if (type < 0) {
			break;
		}
	}
	json_t *out = names_normalised(raw);
	json_decref(raw);
	return out;
}

static void random_serial(unsigned char serial[16])
{
	gnutls_rnd(GNUTLS_RND_NONCE, serial, 16);
	serial[0] = (serial[0] & 0x7f) | 0x40; /* positive, no leading zero */
}

/* Fields both certificates share: version, serial, validity, subject, key,
 * subject key id. */
static int crt_common(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, const char *cn, time_t from,
                      time_t until)
{
	unsigned char serial[16], id[64];
	size_t idlen = sizeof(id);
	int rc;
	random_serial(serial);
	if ((rc = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (rc = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) < 0 ||
	    (rc = gnutls_x509_crt_set_activation_time(crt, from)) < 0 ||
	    (rc = gnutls_x509_crt_set_expiration_time(crt, until)) < 0 ||
	    (rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0,
	                                        "meshgate", 8)) < 0 ||
	    (rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
	                                        (unsigned)strlen(cn))) < 0 ||
	    (rc = gnutls_x509_crt_set_key(crt, key)) < 0 ||
	    (rc = gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA1, id, &idlen)) < 0 ||
	    (rc = gnutls_x509_crt_set_subject_key_id(crt, id, idlen)) < 0)
		return rc;
	return 0;
}

static int make_ca(gnutls_x509_privkey_t key, time_t now, unsigned days, gnutls_x509_crt_t *out)
{
	unsigned char id[64];
	size_t idlen = sizeof(id);
	char cn[64], idhex[9];
	int rc = gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, id, &idlen);
	if (rc < 0)
		return rc;
	hex(id, 4, idhex);
	snprintf(cn, sizeof(cn), "meshgate gateway CA %s", idhex);
	if ((rc = gnutls_x509_crt_init(out)) < 0)
		return rc;
	if ((rc = crt_common(*out, key, cn, now - BACKDATE, now + (time_t)days * DAY)) < 0 ||
	    (rc = gnutls_x509_crt_set_basic_constraints(*out, 1, 0)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_usage(*out, GNUTLS_KEY_KEY_CERT_SIGN |
	                                                  GNUTLS_KEY_CRL_SIGN)) < 0 ||
	    (rc = gnutls_x509_crt_sign2(*out, *out, key, GNUTLS_DIG_SHA256, 0)) < 0) {
		gnutls_x509_crt_deinit(*out);
		*out = NULL;
	}
	return rc;
}

static int add_names(gnutls_x509_crt_t crt, json_t *names)
{
	size_t i;
	json_t *v;
	json_array_foreach(names, i, v)
	{
		const char *name = json_string_value(v);
		unsigned char ip[16];
		size_t iplen;
		int kind = api_name_kind(name, ip, &iplen), rc;
		if (kind == API_NAME_IP)
			rc = gnutls_x509_crt_set_subject_alt_name(
			    crt, GNUTLS_SAN_IPADDRESS, ip, (unsigned)iplen, GNUTLS_FSAN_APPEND);
		else if (kind == API_NAME_DNS)
			rc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name,
			                                          (unsigned)strlen(name),
			                                          GNUTLS_FSAN_APPEND);
		else
			rc = GNUTLS_E_INVALID_REQUEST;
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int make_server(gnutls_x509_privkey_t key, gnutls_x509_crt_t ca,
                       gnutls_x509_privkey_t ca_key, json_t *names, time_t now, unsigned days,
                       gnutls_x509_crt_t *out)
{
	unsigned char akid[64];
	size_t akidlen = sizeof(akid);
	const char *first = json_string_value(json_array_get(names, 0));
	/* X.520 caps a common name at 64; clients match subjectAltNames anyway */
	const char *cn = first && strlen(first) <= 64 ? first : "meshgate api";
	time_t until = now + (time_t)days * DAY, ca_until = gnutls_x509_crt_get_expiration_time(ca);
	if (ca_until > 0 && until > ca_until)
		until = ca_until;
	int rc = gnutls_x509_crt_init(out);
	if (rc < 0)
		return rc;
	if ((rc = crt_common(*out, key, cn, now - BACKDATE, until)) < 0 ||
	    (rc = gnutls_x509_crt_set_basic_constraints(*out, 0, -1)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_usage(*out, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_purpose_oid(*out, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
	    (rc = add_names(*out, names)) < 0 ||
	    (rc = gnutls_x509_crt_get_subject_key_id(ca, akid, &akidlen, NULL)) < 0 ||
	    (rc = gnutls_x509_crt_set_authority_key_id(*out, akid, akidlen)) < 0 ||
	    (rc = gnutls_x509_crt_sign2(*out, ca, ca_key, GNUTLS_DIG_SHA256, 0)) < 0) {
		gnutls_x509_crt_deinit(*out);
		*out = NULL;
	}
	return rc;
}

static int crt_save(gnutls_x509_crt_t crt, const char *dir, const char *name)
{
	gnutls_datum_t d;
	int rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d);
	if (rc < 0)
		return -EINVAL;
	rc = write_file(dir, name, &d, 0644);
	gnutls_free(d.data);
	return rc;
}

/* The key `name` is `key` from now on, in the service (PKCS#8 PEM). */
static int key_save(const struct api_tls_params *p, const char *name, gnutls_x509_privkey_t key,
                    char *why, size_t whylen)
{
	gnutls_datum_t d;
	int rc = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL,
	                                           GNUTLS_PKCS_PLAIN, &d);
	if (rc < 0)
		return fail(why, whylen, -EINVAL, "cannot export the key %s: %s", name,
		            gnutls_strerror(rc));
	rc = p->keys->save(p->keys->arg, name, (const char *)d.data, d.size, why, whylen);
	gnutls_memset(d.data, 0, d.size);
	gnutls_free(d.data);
	return rc;
}

/* Removes the file an earlier version kept the key `name` in, now that
 * the service has it; says so in tls->moved. */
static void key_file_remove(const struct api_tls_params *p, const char *file, const char *name,
                            struct api_tls *tls)
{
	char path[4096];
	join(path, sizeof(path), p->dir, file);
	if (unlink(path))
		return;
	size_t used = strlen(tls->moved);
	snprintf(tls->moved + used, sizeof(tls->moved) - used, "%s%s/%s -> %s", used ? ", " : "",
	         p->dir, file, name);
}

/* The key `name` from the service. An earlier version's key file (`file`
 * in the state dir) is moved into the service first, then removed; the
 * service's key wins over a file still there. 0 and *key, -ENOENT when
 * neither has one, or another error with why (nothing changed). */
static int key_fetch(const struct api_tls_params *p, const char *name, const char *file,
                     gnutls_x509_privkey_t *key, struct api_tls *tls, char *why, size_t whylen)
{
	char path[4096], *pem = NULL;
	join(path, sizeof(path), p->dir, file);
	*key = NULL;
	int rc = p->keys->load(p->keys->arg, name, &pem, why, whylen);
	if (rc == -ENOENT) {
		rc = key_load(path, key, why, whylen);
		if (rc == -ENOENT)
			return fail(why, whylen, -ENOENT, "no key %s", name);
		if (!rc && (rc = key_save(p, name, *key, why, whylen))) {
			gnutls_x509_privkey_deinit(*key);
			*key = NULL;
		}
	} else if (!rc) {
		gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
		char what[96];
		snprintf(what, sizeof(what), "the secret %s", name);
		rc = key_import(&d, what, key, why, whylen);
		gnutls_memset(pem, 0, d.size);
		free(pem);
	}
	if (!rc)
		key_file_remove(p, file, name, tls);
	return rc;
}

static int verifies(gnutls_x509_crt_t crt, gnutls_x509_crt_t ca)
{
	unsigned status = 1;
	/* validity is judged by server_stale, against the caller's clock */
	return gnutls_x509_crt_verify(crt, &ca, 1, GNUTLS_VERIFY_DISABLE_TIME_CHECKS, &status) >=
	           0 &&
	       status == 0;
}

/* Everything api_tls_prepare juggles, released in one place. */
struct material {
	gnutls_x509_crt_t ca, server;
	gnutls_x509_privkey_t ca_key, server_key;
};

static void material_free(struct material *m)
{
	if (m->ca)
		gnutls_x509_crt_deinit(m->ca);
	if (m->server)
		gnutls_x509_crt_deinit(m->server);
	if (m->ca_key)
		gnutls_x509_privkey_deinit(m->ca_key);
	if (m->server_key)
		gnutls_x509_privkey_deinit(m->server_key);
}

static int ensure_ca(const struct api_tls_params *p, struct material *m, struct api_tls *tls,
                     char *why, size_t whylen)
{
	char path[4096];
	join(path, sizeof(path), p->dir, API_CA_CERT_FILE);
	int rc = crt_load(path, &m->ca, why, whylen);
	if (rc && rc != -ENOENT)
		return fail(why, whylen, rc,
		            "%s (clients pin this CA: repair it, or move it away "
		            "to make a new one)",
		            path);
	if (!rc) {
		/* the CA exists; its key is only needed to issue */
		rc = key_fetch(p, API_CA_KEY_SECRET, API_CA_KEY_FILE, &m->ca_key, tls, why, whylen);
		if (rc && rc != -ENOENT)
			return rc;
		if (m->ca_key && !key_matches(m->ca, m->ca_key)) {
			gnutls_x509_privkey_deinit(m->ca_key);
			m->ca_key = NULL;
		}
		if (gnutls_x509_crt_get_expiration_time(m->ca) < p->now)
			snprintf(tls->warning, sizeof(tls->warning),
			         "the CA %.160s has expired: clients will refuse the server", path);
		return 0;
	}
	int grc;
	if ((grc = key_generate(&m->ca_key)) < 0 ||
	    (grc = make_ca(m->ca_key, p->now, p->ca_days, &m->ca)) < 0)
		return fail(why, whylen, -EINVAL, "cannot make a CA: %s", gnutls_strerror(grc));
	/* key first: a crash in between leaves a key without a CA, made again */
	if ((rc = key_save(p, API_CA_KEY_SECRET, m->ca_key, why, whylen)))
		return rc;
	key_file_remove(p, API_CA_KEY_FILE, API_CA_KEY_SECRET, tls); /* the old CA's */
	if ((rc = crt_save(m->ca, p->dir, API_CA_CERT_FILE)))
		return fail(why, whylen, rc, "cannot write the CA in %s: %s", p->dir,
		            strerror(-rc));
	gnutls_x509_crt_t fresh;
	if (reimport(m->ca, &fresh))
		return fail(why, whylen, -EINVAL, "cannot read back the new CA");
	gnutls_x509_crt_deinit(m->ca);
	m->ca = fresh;
	tls->made_ca = 1;
	return 0;
}

/* Why the current server certificate cannot stay, or NULL. */
static const char *server_stale(const struct api_tls_params *p, struct material *m, json_t *want)
{
	if (!m->server)
		return "missing";
	if (!key_matches(m->server, m->server_key))
		return "its key changed";
	if (!verifies(m->server, m->ca))
		return "not signed by the CA";
	if (gnutls_x509_crt_get_expiration_time(m->server) < p->now + (time_t)p->renew_days * DAY)
		return "expires soon";
	json_t *have = crt_names(m->server);
	int same = json_equal(have, want);
	json_decref(have);
	return same ? NULL : "names changed";
}

static int ensure_server(const struct api_tls_params *p, struct material *m, struct api_tls *tls,
                         char *why, size_t whylen)
{
	char path[4096], err[512];
	join(path, sizeof(path), p->dir, API_SERVER_CERT_FILE);
	int grc;

	/* the key outlives re-issued certificates, so public-key pins hold */
	int rc = key_fetch(p, API_SERVER_KEY_SECRET, API_SERVER_KEY_FILE, &m->server_key, tls, why,
	                   whylen);
	if (rc == -ENOENT) {
		if ((grc = key_generate(&m->server_key)) < 0)
			return fail(why, whylen, -EINVAL, "cannot make a key: %s",
			            gnutls_strerror(grc));
		rc = key_save(p, API_SERVER_KEY_SECRET, m->server_key, why, whylen);
	}
	if (rc)
		return rc;
	crt_load(path, &m->server, err, sizeof(err));
	json_t *want = names_normalised(p->names);
	const char *stale = server_stale(p, m, want);
	json_decref(want);
	if (!stale)
		return 0;
	if (!m->ca_key)
		return fail(why, whylen, -ENOKEY,
		            "cannot issue the server certificate (%s): the CA's key (the secret "
		            "%s, %s before) is missing or does not match %s/%s",
		            stale, API_CA_KEY_SECRET, API_CA_KEY_FILE, p->dir, API_CA_CERT_FILE);
	if (m->server)
		gnutls_x509_crt_deinit(m->server);
	m->server = NULL;
	if ((grc = make_server(m->server_key, m->ca, m->ca_key, p->names, p->now, p->server_days,
	                       &m->server)) < 0)
		return fail(why, whylen, -EINVAL, "cannot make the server certificate: %s",
		            gnutls_strerror(grc));
	if ((rc = crt_save(m->server, p->dir, API_SERVER_CERT_FILE)))
		return fail(why, whylen, rc, "cannot write %s: %s", path, strerror(-rc));
	tls->made_server = 1;
	return 0;
}

/* A certificate as it is on disk: GnuTLS reads the extensions of a
 * certificate it just signed only after a round trip through DER. */
static int reimport(gnutls_x509_crt_t crt, gnutls_x509_crt_t *out)
{
	gnutls_datum_t der;
	int rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der);
	if (rc < 0)
		return -EINVAL;
	rc = gnutls_x509_crt_init(out);
	if (rc >= 0 && (rc = gnutls_x509_crt_import(*out, &der, GNUTLS_X509_FMT_DER)) < 0)
		gnutls_x509_crt_deinit(*out);
	gnutls_free(der.data);
	return rc < 0 ? -EINVAL : 0;
}

static char *chain_pem(gnutls_x509_crt_t *chain, size_t n)
{
	char *out = strdup("");
	for (size_t i = 0; out && i < n; i++) {
		gnutls_datum_t d;
		if (gnutls_x509_crt_export2(chain[i], GNUTLS_X509_FMT_PEM, &d) < 0) {
			free(out);
			return NULL;
		}
		size_t len = strlen(out);
		char *grown = realloc(out, len + d.size + 1);
		if (grown) {
			memcpy(grown + len, d.data, d.size);
			grown[len + d.size] = '\0';
		} else {
			free(out);
		}
		out = grown;
		gnutls_free(d.data);
	}
	return out;
}

/* Fills the parts of `tls` MHD and the operator need. */
static int describe(struct api_tls *tls, gnutls_x509_crt_t *chain, size_t n,
                    gnutls_x509_privkey_t key, gnutls_x509_crt_t ca)
{
	gnutls_datum_t d;
	gnutls_x509_crt_t leaf;
	tls->chain_pem = chain_pem(chain, n);
	if (gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
	                                      &d) < 0)
		return -EINVAL;
	tls->key_pem = strndup((char *)d.data, d.size);
	gnutls_free(d.data);
	if (ca)
		tls->ca_pem = chain_pem(&ca, 1);
	if (!tls->chain_pem || !tls->key_pem || (ca && !tls->ca_pem))
		return -ENOMEM;
	if (reimport(chain[0], &leaf))
		return -EINVAL;
	int rc = 0;
	if (crt_fingerprint(leaf, tls->cert_fingerprint) || crt_pubkey_pin(leaf, tls->pubkey_pin) ||
	    (ca && crt_fingerprint(ca, tls->ca_fingerprint)))
		rc = -EINVAL;
	tls->names = crt_names(leaf);
	tls->not_after = gnutls_x509_crt_get_expiration_time(leaf);
	gnutls_x509_crt_deinit(leaf);
	return rc;
}

int api_tls_prepare(const struct api_tls_params *params, struct api_tls *tls, char *why,
                    size_t whylen)
{
	struct material m = {0};
	memset(tls, 0, sizeof(*tls));
	if (!params->keys)
		return fail(why, whylen, -EINVAL, "no place for the private keys");
	int rc = api_names_check(params->names, why, whylen);
	if (!rc)
		rc = ensure_ca(params, &m, tls, why, whylen);
	if (!rc)
		rc = ensure_server(params, &m, tls, why, whylen);
	if (!rc) {
		gnutls_x509_crt_t chain[2] = {m.server, m.ca};
		rc = describe(tls, chain, 2, m.server_key, m.ca);
		if (rc)
			fail(why, whylen, rc, "cannot export the certificates: %s", strerror(-rc));
	}
	material_free(&m);
	if (rc)
		api_tls_clear(tls);
	return rc;
}

static int self_signed(gnutls_x509_crt_t crt)
{
	return gnutls_x509_crt_check_issuer(crt, crt) != 0;
}

int api_tls_load(const char *cert_file, const char *key_file, time_t now, struct api_tls *tls,
                 char *why, size_t whylen)
{
	gnutls_datum_t d;
	gnutls_x509_crt_t *chain = NULL;
	unsigned n = 0;
	gnutls_x509_privkey_t key = NULL;
	struct stat st;
	memset(tls, 0, sizeof(*tls));

	int rc = read_file(cert_file, &d);
	if (rc)
		return fail(why, whylen, rc, "cert %s: %s", cert_file, strerror(-rc));
	int grc = gnutls_x509_crt_list_import2(&chain, &n, &d, GNUTLS_X509_FMT_PEM,
	                                       GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
	gnutls_free(d.data);
	if (grc < 0 || n == 0)
		return fail(why, whylen, -EINVAL, "cert %s: not a PEM certificate chain: %s",
		            cert_file, grc < 0 ? gnutls_strerror(grc) : "empty");
	rc = key_load(key_file, &key, why, whylen);
	if (!rc && !key_matches(chain[0], key))
		rc = fail(why, whylen, -EINVAL, "key %s does not belong to the certificate %s",
		          key_file, cert_file);
	if (!rc && (rc = describe(tls, chain, n, key,
	                          n > 1 && self_signed(chain[n - 1]) ? chain[n - 1] : NULL)))
		fail(why, whylen, rc, "cannot export %s: %s", cert_file, strerror(-rc));
	if (!rc && tls->not_after < now)
		snprintf(tls->warning, sizeof(tls->warning), "the certificate %s has expired",
		         cert_file);
	else if (!rc && !stat(key_file, &st) && (st.st_mode & 077))
		snprintf(tls->warning, sizeof(tls->warning),
		         "the key %s is readable by others than its owner (mode %03o)", key_file,
		         (unsigned)(st.st_mode & 0777));
	for (unsigned i = 0; i < n; i++)
		gnutls_x509_crt_deinit(chain[i]);
	gnutls_free(chain);
	if (key)
		gnutls_x509_privkey_deinit(key);
	if (rc)
		api_tls_clear(tls);
	return rc;
}

void api_tls_clear(struct api_tls *tls)
{
	if (tls->key_pem)
		gnutls_memset(tls->key_pem, 0, strlen(tls->key_pem));
	free(tls->chain_pem);
	free(tls->key_pem);
	free(tls->ca_pem);
	json_decref(tls->names);
	memset(tls, 0, sizeof(*tls));
}

int api_pem_fingerprint(const char *pem, char out[API_FINGERPRINT_LEN + 1])
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
	if (gnutls_x509_crt_init(&crt) < 0)
		return -ENOMEM;
	int rc = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) < 0
	             ? -EINVAL
	             : crt_fingerprint(crt, out);
	gnutls_x509_crt_deinit(crt);
	return rc;
}
