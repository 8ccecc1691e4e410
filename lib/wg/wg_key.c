/* Curve25519 keys and their two spellings: base64 for people, hex for UAPI. */
#include <errno.h>
#include <string.h>
#include <sodium.h>

#include "wg.h"

/* sodium_init() is idempotent and thread-safe; call it before any use. */
static int sodium_ready(void)
{
	return sodium_init() < 0 ? -EIO : 0;
}

int wg_key_generate_private(wg_key priv)
{
	if (sodium_ready())
		return -EIO;
	randombytes_buf(priv, WG_KEY_LEN);
	/* The clamping of RFC 7748, as `wg genkey` does, so that the key
	 * stored is the scalar really used. */
	priv[0] &= 248;
	priv[31] &= 127;
	priv[31] |= 64;
	return 0;
}

int wg_key_generate_preshared(wg_key psk)
{
	if (sodium_ready())
		return -EIO;
	randombytes_buf(psk, WG_KEY_LEN);
	return 0;
}

int wg_key_public_from_private(wg_key pub, const wg_key priv)
{
	if (sodium_ready())
		return -EIO;
	return crypto_scalarmult_curve25519_base(pub, priv) == 0 ? 0 : -EINVAL;
}

void wg_key_to_base64(char out[WG_KEY_B64_LEN], const wg_key key)
{
	sodium_bin2base64(out, WG_KEY_B64_LEN, key, WG_KEY_LEN, sodium_base64_VARIANT_ORIGINAL);
}

int wg_key_from_base64(wg_key key, const char *b64)
{
	uint8_t tmp[WG_KEY_LEN];
	size_t binlen = 0;
	const char *end = NULL;

	/* 44 characters exactly: rejects whitespace, truncation and trailing
	 * garbage that the decoder alone might stop before. */
	if (!b64 || strlen(b64) != WG_KEY_B64_LEN - 1)
		return -EINVAL;
	if (sodium_base642bin(tmp, sizeof(tmp), b64, WG_KEY_B64_LEN - 1, NULL, &binlen, &end,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    binlen != WG_KEY_LEN || end != b64 + WG_KEY_B64_LEN - 1)
		return -EINVAL;
	memcpy(key, tmp, WG_KEY_LEN);
	sodium_memzero(tmp, sizeof(tmp));
	return 0;
}

void wg_key_to_hex(char out[WG_KEY_HEX_LEN], const wg_key key)
{
	sodium_bin2hex(out, WG_KEY_HEX_LEN, key, WG_KEY_LEN);
}

int wg_key_from_hex(wg_key key, const char *hex)
{
	uint8_t tmp[WG_KEY_LEN];
	size_t binlen = 0;

	/* 64 digits exactly: no separators (hex2bin would skip those it is
	 * given, and we give it none), nothing before or after */
	if (!hex || strlen(hex) != 2 * WG_KEY_LEN ||
	    sodium_hex2bin(tmp, sizeof(tmp), hex, 2 * WG_KEY_LEN, NULL, &binlen, NULL) != 0 ||
	    binlen != WG_KEY_LEN)
		return -EINVAL;
	memcpy(key, tmp, WG_KEY_LEN);
	sodium_memzero(tmp, sizeof(tmp));
	return 0;
}

bool wg_key_is_zero(const wg_key key)
{
	return sodium_is_zero(key, WG_KEY_LEN);
}

bool wg_key_equal(const wg_key a, const wg_key b)
{
	return memcmp(a, b, WG_KEY_LEN) == 0;
}
