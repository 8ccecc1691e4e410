#include "trust.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_file.h"

int cl_trust_append_ca(const char *pem, char *out, size_t size)
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t in = {(unsigned char *)pem, (unsigned)strlen(pem)}, again = {0};
	unsigned critical;
	int rc = -EINVAL;
	if (gnutls_x509_crt_init(&crt) < 0)
		return -ENOMEM;
	if (gnutls_x509_crt_import(crt, &in, GNUTLS_X509_FMT_PEM) < 0 ||
	    gnutls_x509_crt_get_ca_status(crt, &critical) != 1 ||
	    gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &again) < 0)
		goto out;
	size_t used = strlen(out);
	rc = -ENOSPC;
	if (used + again.size < size) {
		memcpy(out + used, again.data, again.size);
		out[used + again.size] = '\0';
		rc = 0;
	}
out:
	gnutls_free(again.data);
	gnutls_x509_crt_deinit(crt);
	return rc;
}

/* Every certificate of a PEM text, in order. */
struct certs {
	gnutls_x509_crt_t *list;
	unsigned n;
};

static int certs_import(const char *text, size_t len, struct certs *c)
{
	gnutls_datum_t d = {(unsigned char *)text, (unsigned)len};
	c->list = NULL;
	c->n = 0;
	if (!len)
		return 0;
	int rc = gnutls_x509_crt_list_import2(&c->list, &c->n, &d, GNUTLS_X509_FMT_PEM, 0);
	return rc < 0 ? -EINVAL : 0;
}

static void certs_free(struct certs *c)
{
	for (unsigned i = 0; i < c->n; i++)
		gnutls_x509_crt_deinit(c->list[i]);
	gnutls_free(c->list);
}

static bool certs_have(const struct certs *c, size_t upto, gnutls_x509_crt_t crt)
{
	for (size_t i = 0; i < upto && i < c->n; i++)
		if (gnutls_x509_crt_equals(c->list[i], crt))
			return true;
	return false;
}

/* Appends crt as PEM to the growing text *out. */
static int append_pem(char **out, size_t *len, gnutls_x509_crt_t crt)
{
	gnutls_datum_t d = {0};
	if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d) < 0)
		return -EINVAL;
	char *grown = realloc(*out, *len + d.size + 1);
	if (grown) {
		memcpy(grown + *len, d.data, d.size);
		*len += d.size;
		grown[*len] = '\0';
		*out = grown;
	}
	gnutls_free(d.data);
	return grown ? 0 : -ENOMEM;
}

static char *read_text(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *text = f ? calloc(1, CL_TRUST_MAX * 4096 + 1) : NULL;
	*len = text ? fread(text, 1, CL_TRUST_MAX * 4096, f) : 0;
	if (f && ferror(f)) {
		free(text);
		text = NULL;
	}
	if (f)
		fclose(f);
	return text;
}

int cl_trust_bundle_write(const char *from, const char *extra, const char *to, size_t *added,
                          struct cl_err *err)
{
	struct certs have = {0}, more = {0};
	char *out = NULL;
	size_t len = 0, n = 0;
	int rc = -1;
	*added = 0;
	char *text = read_text(from, &len);
	if (!text) {
		cl_fail(err, CL_EXIT_FAILURE, "cannot read %s: %s", from, strerror(errno));
		goto done;
	}
	if (certs_import(text, len, &have) || have.n == 0) {
		cl_fail(err, CL_EXIT_FAILURE, "%s holds no PEM certificate", from);
		goto done;
	}
	if (extra && certs_import(extra, strlen(extra), &more)) {
		cl_fail(err, CL_EXIT_SERVER, "the server's CAs (api_cas) are not PEM certificates");
		goto done;
	}
	for (unsigned i = 0; i < have.n; i++)
		if (!certs_have(&have, i, have.list[i]) && append_pem(&out, &n, have.list[i]))
			goto out_of_memory;
	for (unsigned i = 0; i < more.n; i++) {
		if (certs_have(&have, have.n, more.list[i]) || certs_have(&more, i, more.list[i]))
			continue;
		if (have.n + ++*added > CL_TRUST_MAX) {
			cl_fail(err, CL_EXIT_SERVER, "the server names more than %d CAs to trust",
			        CL_TRUST_MAX);
			goto done;
		}
		if (append_pem(&out, &n, more.list[i]))
			goto out_of_memory;
	}
	if (!*added && !strcmp(from, to))
		rc = 0;
	else
		rc = cl_write_private_file(to, out, err);
	goto done;
out_of_memory:
	cl_fail(err, CL_EXIT_FAILURE, "out of memory");
done:
	if (rc)
		*added = 0;
	certs_free(&have);
	certs_free(&more);
	free(text);
	free(out);
	return rc;
}
