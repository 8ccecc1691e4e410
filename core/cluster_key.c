#include "cluster_key.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "seal.h"
#include "secret.h"

#define PEM_MAX (64 * 1024)
/* Where meshgated before the secret service sealed the key itself. */
#define SEALED_DIR  "core"
#define SEALED_NAME "etcd-client"

int cluster_pem_read(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	*out = NULL;
	if (!f) {
		int rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	char *buf = malloc(PEM_MAX + 1);
	size_t n = buf ? fread(buf, 1, PEM_MAX + 1, f) : 0;
	int bad = ferror(f) || n > PEM_MAX;
	fclose(f);
	if (!buf || bad) {
		if (buf)
			explicit_bzero(buf, PEM_MAX + 1);
		free(buf);
		snprintf(err, errlen, "%s: %s", path,
		         !buf          ? "out of memory"
		         : n > PEM_MAX ? "too large"
		                       : "cannot read");
		return !buf ? -ENOMEM : -EIO;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

static int read_sealed(struct cluster_key_files *files, const char *state_dir,
                       const char *seal_key_file, char *err, size_t errlen)
{
	char seal_key[4096], why[512];
	int rc = seal_key_path(seal_key_file, state_dir, seal_key, sizeof(seal_key), err, errlen);
	if (rc)
		return rc;
	if (!(files->pem = malloc(PEM_MAX + 1))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = seal_load(files->sealed_dir, SEALED_NAME, seal_key, (unsigned char *)files->pem,
	               PEM_MAX, &files->len, why, sizeof(why));
	if (rc) {
		free(files->pem);
		files->pem = NULL;
		files->len = 0;
		if (rc != -ENOENT)
			snprintf(err, errlen,
			         "the etcd client key sealed by an earlier meshgated: %s", why);
		return rc == -ENOENT ? 0 : rc;
	}
	files->pem[files->len] = '\0';
	files->sealed = 1;
	return 0;
}

int cluster_key_files_read(json_t *settings, const char *state_dir, const char *seal_key_file,
                           struct cluster_key_files *files, char *err, size_t errlen)
{
	char why[512], path[4300];
	memset(files, 0, sizeof(*files));
	files->key_file = json_string_value(json_object_get(settings, "key"));
	if (!files->key_file)
		return 0;
	snprintf(files->sealed_dir, sizeof(files->sealed_dir), "%s/" SEALED_DIR, state_dir);
	snprintf(path, sizeof(path), "%s/" SEALED_NAME ".sealed", files->sealed_dir);
	int rc = cluster_pem_read(files->key_file, &files->pem, &files->len, why, sizeof(why));
	if (rc == -ENOENT)
		return read_sealed(files, state_dir, seal_key_file, err, errlen);
	if (rc) {
		snprintf(err, errlen, "cluster.key %s", why);
		return rc;
	}
	if (!strstr(files->pem, "PRIVATE KEY-----")) {
		snprintf(err, errlen, "cluster.key %s: not a PEM private key", files->key_file);
		cluster_key_files_free(files);
		return -EINVAL;
	}
	files->from_key_file = 1;
	/* a renewal over a key still sealed the earlier way: that copy goes too */
	files->sealed = !access(path, F_OK);
	return 0;
}

/* The key found in a file becomes the service's next version; then the
 * files go, so that the key is in the service alone. */
static int move_into_service(mg_ctx *ctx, struct cluster_key_files *files, char *err, size_t errlen)
{
	unsigned char *old = NULL;
	size_t old_len = 0;
	long long version = 0;
	int rc = secret_get_opaque(ctx, CLUSTER_KEY_SECRET, &old, &old_len, &version, err, errlen);
	if (old)
		explicit_bzero(old, old_len);
	free(old);
	if (rc && rc != -ENOENT)
		return rc;
	if (rc == -ENOENT)
		version = 0;
	if ((rc = secret_put_opaque(ctx, CLUSTER_KEY_SECRET, files->pem, files->len, version, err,
	                            errlen)))
		return rc;
	if (files->from_key_file && unlink(files->key_file))
		core_log(MG_LOG_WARN, "cluster", "cannot remove %s: %s", files->key_file,
		         strerror(errno));
	else if (files->from_key_file)
		core_log(MG_LOG_INFO, "cluster",
		         "moved the etcd client key %s into the secret service (%s, version %lld) "
		         "and removed the file",
		         files->key_file, CLUSTER_KEY_SECRET, version + 1);
	if (files->sealed && seal_remove(files->sealed_dir, SEALED_NAME))
		core_log(MG_LOG_WARN, "cluster", "cannot remove %s/%s.sealed", files->sealed_dir,
		         SEALED_NAME);
	else if (files->sealed)
		core_log(MG_LOG_INFO, "cluster",
		         "moved the etcd client key sealed in %s/%s.sealed into the secret service "
		         "(%s, version %lld) and removed the file",
		         files->sealed_dir, SEALED_NAME, CLUSTER_KEY_SECRET, version + 1);
	return 0;
}

int cluster_key_take(mg_ctx *ctx, struct cluster_key_files *files, char **pem, size_t *len,
                     char *err, size_t errlen)
{
	long long version;
	*pem = NULL;
	*len = 0;
	if (files->pem) {
		int rc = move_into_service(ctx, files, err, errlen);
		if (rc)
			return rc;
		*pem = files->pem;
		*len = files->len;
		files->pem = NULL;
		files->len = 0;
		return 0;
	}
	int rc = secret_get_opaque(ctx, CLUSTER_KEY_SECRET, (unsigned char **)pem, len, &version,
	                           err, errlen);
	if (rc == -ENOENT)
		snprintf(err, errlen,
		         "cluster.key %s: no such file, nor a key in the secret service (%s)",
		         files->key_file, CLUSTER_KEY_SECRET);
	return rc;
}

void cluster_key_files_free(struct cluster_key_files *files)
{
	if (files->pem)
		explicit_bzero(files->pem, files->len);
	free(files->pem);
	files->pem = NULL;
	files->len = 0;
}
