#include "sealed_key.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads exactly len bytes of a file that must be ours alone (0600/0400). */
static int read_secret_file(const char *path, unsigned char *buf, size_t len, char *err,
                            size_t errlen)
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
	ssize_t n = read(fd, buf, len);
	close(fd);
	if (n != (ssize_t)len) {
		snprintf(err, errlen, "%s: not %zu bytes", path, len);
		return -EINVAL;
	}
	return 0;
}

/* Writes atomically: a crash leaves the old file or the new, never half. */
static int write_secret_file(const char *path, const unsigned char *buf, size_t len)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = write(fd, buf, len) == (ssize_t)len && !fsync(fd) ? 0 : -EIO;
	close(fd);
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

static int seal_key(const char *dir, unsigned char key[crypto_secretbox_KEYBYTES], char *err,
                    size_t errlen)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/seal.key", dir);
	int rc = read_secret_file(path, key, crypto_secretbox_KEYBYTES, err, errlen);
	if (rc != -ENOENT)
		return rc;
	crypto_secretbox_keygen(key);
	rc = write_secret_file(path, key, crypto_secretbox_KEYBYTES);
	if (rc)
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
	return rc;
}

int wgp_sealed_key_load_or_create(const char *dir, const char *name, wg_key private_key,
                                  int *created, char *err, size_t errlen)
{
	unsigned char box_key[crypto_secretbox_KEYBYTES];
	unsigned char sealed[crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + WG_KEY_LEN];
	unsigned char *nonce = sealed, *box = sealed + crypto_secretbox_NONCEBYTES;
	char path[4200];
	int rc;

	*created = 0;
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium cannot start");
		return -EIO;
	}
	if (mkdir(dir, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -errno;
	}
	if ((rc = seal_key(dir, box_key, err, errlen)))
		return rc;
	snprintf(path, sizeof(path), "%s/%s.sealed", dir, name);
	rc = read_secret_file(path, sealed, sizeof(sealed), err, errlen);
	if (rc == 0) {
		if (crypto_secretbox_open_easy(private_key, box,
		                               sizeof(sealed) - crypto_secretbox_NONCEBYTES, nonce,
		                               box_key)) {
			snprintf(err, errlen,
			         "%s does not open with seal.key (tampered or another key)", path);
			rc = -EBADMSG;
		}
	} else if (rc == -ENOENT) {
		wg_key_generate_private(private_key);
		randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
		crypto_secretbox_easy(box, private_key, WG_KEY_LEN, nonce, box_key);
		rc = write_secret_file(path, sealed, sizeof(sealed));
		if (rc)
			snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
		*created = !rc;
	}
	sodium_memzero(box_key, sizeof(box_key));
	return rc;
}
