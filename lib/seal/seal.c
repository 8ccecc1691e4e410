#include "seal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads up to cap bytes of a file that must be ours alone (0600/0400);
 * *len is how many it had. */
static int read_secret_file_upto(const char *path, unsigned char *buf, size_t cap, size_t *len,
                                 char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || (st.st_mode & 077)) {
		snprintf(err, errlen, "%s is readable by others (mode %03o): refusing it", path,
		         st.st_mode & 0777);
		close(fd);
		return -EPERM;
	}
	ssize_t n = read(fd, buf, cap);
	close(fd);
	if (n < 0 || (size_t)n == cap) {
		snprintf(err, errlen, "%s: unreadable or larger than %zu bytes", path, cap - 1);
		return -EINVAL;
	}
	*len = (size_t)n;
	return 0;
}

/* Reads exactly len bytes of a file that must be ours alone (0600/0400). */
static int read_secret_file(const char *path, unsigned char *buf, size_t len, char *err,
                            size_t errlen)
{
	unsigned char room[512]; /* a key or a sealed key, and one more byte: a longer
	                          * file is not one we made */
	size_t n;
	if (len >= sizeof(room))
		return -EINVAL;
	int rc = read_secret_file_upto(path, room, len + 1, &n, err, errlen);
	if (!rc && n != len) {
		snprintf(err, errlen, "%s: not %zu bytes", path, len);
		rc = -EINVAL;
	}
	if (!rc)
		memcpy(buf, room, len);
	sodium_memzero(room, sizeof(room));
	return rc;
}

/* Writes atomically: a crash leaves the old file or the new, never half.
 * Without `replace` a file already at `path` stays and -EEXIST is
 * returned: the sealing key, which two plugins may make at once. */
static int write_secret_file(const char *path, const unsigned char *buf, size_t len, bool replace)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600, a name of its own */
	if (fd < 0)
		return -errno;
	int rc = write(fd, buf, len) == (ssize_t)len && !fsync(fd) ? 0 : -EIO;
	close(fd);
	if (!rc && (replace ? rename(tmp, path) : link(tmp, path)))
		rc = -errno;
	if (rc || !replace)
		unlink(tmp);
	return rc;
}

/* The real path of the nearest directory of `path` that exists. */
static void nearest_existing_dir(const char *path, char real[PATH_MAX])
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	for (;;) {
		char *slash = strrchr(dir, '/');
		if (!slash) {
			if (!realpath(".", real))
				snprintf(real, PATH_MAX, "/");
			return;
		}
		*slash = '\0';
		if (realpath(dir[0] ? dir : "/", real))
			return;
	}
}

int seal_key_path(const char *configured, const char *state_dir, char *path, size_t len, char *err,
                  size_t errlen)
{
	const char *credentials = getenv("CREDENTIALS_DIRECTORY");
	char state_real[PATH_MAX], parent_real[PATH_MAX];
	size_t n = strlen(state_dir);

	while (n > 1 && state_dir[n - 1] == '/')
		n--;
	if (configured && configured[0]) {
		snprintf(path, len, "%s", configured);
	} else {
		snprintf(path, len, "%s/%s", credentials ? credentials : "", SEAL_CREDENTIAL);
		if (!credentials || access(path, F_OK))
			snprintf(path, len, "%.*s-seal.key", (int)n, state_dir);
	}
	if (configured && configured[0] && path[0] != '/') {
		snprintf(err, errlen, "the sealing key's path must be absolute, not '%s'", path);
		return -EINVAL;
	}
	/* inside the state dir (however it is spelt) defeats the purpose */
	nearest_existing_dir(path, parent_real);
	if (realpath(state_dir, state_real)) {
		size_t sn = strlen(state_real);
		if (!strncmp(parent_real, state_real, sn) &&
		    (parent_real[sn] == '\0' || parent_real[sn] == '/')) {
			snprintf(err, errlen,
			         "the sealing key %s is inside the state dir %s: keep it apart",
			         path, state_dir);
			return -EINVAL;
		}
	}
	return 0;
}

static void sync_parent(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* Stores a sealing key at `path`, making its directory (0700) when needed;
 * -EEXIST (no message) when another one is there by now. */
static int store_seal_key(const char *path, const unsigned char *key, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	*(slash ? slash : dir) = '\0';
	if (dir[0] && mkdir(dir, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -errno;
	}
	int rc = write_secret_file(path, key, crypto_secretbox_KEYBYTES, false);
	if (rc && rc != -EEXIST)
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
	else
		sync_parent(path);
	return rc;
}

/* The sealing key: at key_path; or, from an older version, at old_path
 * (moved by the caller once it has opened the sealed file); or a new one
 * when nothing is sealed yet. */
static int seal_key(const char *key_path, const char *old_path, int sealed_exists,
                    unsigned char key[crypto_secretbox_KEYBYTES], int *from_old, char *err,
                    size_t errlen)
{
	*from_old = 0;
	int rc = read_secret_file(key_path, key, crypto_secretbox_KEYBYTES, err, errlen);
	if (rc != -ENOENT)
		goto done;
	rc = read_secret_file(old_path, key, crypto_secretbox_KEYBYTES, err, errlen);
	if (rc == 0)
		*from_old = 1;
	else if (rc != -ENOENT)
		goto done;
	else if (sealed_exists) {
		snprintf(err, errlen,
		         "a key is sealed, but its sealing key %s is missing: put it back "
		         "(a new one would not open it)",
		         key_path);
		return -ENOENT;
	} else {
		crypto_secretbox_keygen(key);
	}
	rc = store_seal_key(key_path, key, err, errlen);
	if (rc == -EEXIST) /* another plugin made it meanwhile: that one it is */
		rc = read_secret_file(key_path, key, crypto_secretbox_KEYBYTES, err, errlen);
	return rc;
done:
	if (rc && !err[0])
		snprintf(err, errlen, "cannot read %s: %s", key_path, strerror(-rc));
	return rc;
}

int sealed_key_load_or_create(const char *dir, const char *name, const char *key_path,
                              wg_key private_key, int *created, char *moved_from, size_t moved_len,
                              char *err, size_t errlen)
{
	unsigned char box_key[crypto_secretbox_KEYBYTES];
	unsigned char sealed[crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + WG_KEY_LEN];
	unsigned char *nonce = sealed, *box = sealed + crypto_secretbox_NONCEBYTES;
	char path[4200], old_path[4200];
	int rc, from_old;

	*created = 0;
	moved_from[0] = '\0';
	err[0] = '\0';
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium cannot start");
		return -EIO;
	}
	if (mkdir(dir, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/%s.sealed", dir, name);
	snprintf(old_path, sizeof(old_path), "%s/seal.key", dir);
	if ((rc = seal_key(key_path, old_path, !access(path, F_OK), box_key, &from_old, err,
	                   errlen)))
		return rc;
	rc = read_secret_file(path, sealed, sizeof(sealed), err, errlen);
	if (rc == 0) {
		if (crypto_secretbox_open_easy(private_key, box,
		                               sizeof(sealed) - crypto_secretbox_NONCEBYTES, nonce,
		                               box_key)) {
			snprintf(err, errlen, "%s does not open with %s (tampered or another key)",
			         path, key_path);
			rc = -EBADMSG;
		}
	} else if (rc == -ENOENT) {
		wg_key_generate_private(private_key);
		randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
		crypto_secretbox_easy(box, private_key, WG_KEY_LEN, nonce, box_key);
		rc = write_secret_file(path, sealed, sizeof(sealed), true);
		if (rc)
			snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
		*created = !rc;
	}
	/* the key at its new place opens the sealed key: the old copy goes */
	if (!rc && strcmp(old_path, key_path) && !access(old_path, F_OK)) {
		unsigned char old_key[crypto_secretbox_KEYBYTES];
		char ignored[256];
		if (from_old || (!read_secret_file(old_path, old_key, sizeof(old_key), ignored,
		                                   sizeof(ignored)) &&
		                 !sodium_memcmp(old_key, box_key, sizeof(old_key)))) {
			unlink(old_path);
			sync_parent(old_path);
			snprintf(moved_from, moved_len, "%s", old_path);
		}
		sodium_memzero(old_key, sizeof(old_key));
	}
	sodium_memzero(box_key, sizeof(box_key));
	return rc;
}

/* The sealing key for a secret sealed anew: the one there is (at
 * key_path, or at the old place in DIR), else a new one. */
static int seal_key_for(const char *dir, const char *key_path,
                        unsigned char key[crypto_secretbox_KEYBYTES], char *err, size_t errlen)
{
	char old_path[4200];
	int from_old;
	snprintf(old_path, sizeof(old_path), "%s/seal.key", dir);
	return seal_key(key_path, old_path, 0, key, &from_old, err, errlen);
}

int seal_load(const char *dir, const char *name, const char *key_path, unsigned char *secret,
              size_t cap, size_t *len, char *err, size_t errlen)
{
	unsigned char box_key[crypto_secretbox_KEYBYTES];
	size_t overhead = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES, n = 0;
	unsigned char *sealed = malloc(cap + overhead + 1);
	char path[4200];
	int rc;

	err[0] = '\0';
	if (!sealed || sodium_init() < 0) {
		free(sealed);
		snprintf(err, errlen, "out of memory or libsodium cannot start");
		return -ENOMEM;
	}
	snprintf(path, sizeof(path), "%s/%s.sealed", dir, name);
	rc = read_secret_file_upto(path, sealed, cap + overhead + 1, &n, err, errlen);
	if (!rc && n < overhead) {
		snprintf(err, errlen, "%s is too short to be sealed", path);
		rc = -EINVAL;
	}
	if (!rc) {
		rc = read_secret_file(key_path, box_key, sizeof(box_key), err, errlen);
		if (rc == -ENOENT)
			snprintf(err, errlen, "%s is sealed, but its sealing key %s is missing",
			         path, key_path);
	}
	if (!rc && crypto_secretbox_open_easy(secret, sealed + crypto_secretbox_NONCEBYTES,
	                                      n - crypto_secretbox_NONCEBYTES, sealed, box_key)) {
		snprintf(err, errlen, "%s does not open with %s (tampered or another key)", path,
		         key_path);
		rc = -EBADMSG;
	}
	if (!rc)
		*len = n - overhead;
	sodium_memzero(box_key, sizeof(box_key));
	sodium_memzero(sealed, cap + overhead + 1);
	free(sealed);
	return rc;
}

int seal_store(const char *dir, const char *name, const char *key_path, const unsigned char *secret,
               size_t len, char *err, size_t errlen)
{
	unsigned char box_key[crypto_secretbox_KEYBYTES];
	size_t size = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;
	unsigned char *sealed = malloc(size);
	char path[4200];
	int rc;

	err[0] = '\0';
	if (!sealed || sodium_init() < 0) {
		free(sealed);
		snprintf(err, errlen, "out of memory or libsodium cannot start");
		return -ENOMEM;
	}
	if (mkdir(dir, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		free(sealed);
		return -errno;
	}
	rc = seal_key_for(dir, key_path, box_key, err, errlen);
	if (!rc) {
		randombytes_buf(sealed, crypto_secretbox_NONCEBYTES);
		crypto_secretbox_easy(sealed + crypto_secretbox_NONCEBYTES, secret, len, sealed,
		                      box_key);
		snprintf(path, sizeof(path), "%s/%s.sealed", dir, name);
		rc = write_secret_file(path, sealed, size, true);
		if (rc)
			snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
		else
			sync_parent(path);
	}
	sodium_memzero(box_key, sizeof(box_key));
	free(sealed);
	return rc;
}

int seal_remove(const char *dir, const char *name)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s.sealed", dir, name);
	if (unlink(path) && errno != ENOENT)
		return -errno;
	sync_parent(path);
	return 0;
}
