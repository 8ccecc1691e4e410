/* Secrets handed to people and devices: pre-auth codes, register tokens,
 * device ids, and the checks of WireGuard keys and device names. */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "preauth.h"

/* Crockford's base32: no I, L, O, U, so that a code read aloud or typed
 * from paper survives the usual confusions. */
static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
#define GROUP 4

/* Keys of the hashes, one per kind of secret: not secrets themselves
 * (codes and tokens carry 140 and 256 random bits, beyond guessing), but
 * they keep a code's hash from ever matching a token's. */
static const unsigned char code_domain[crypto_generichash_KEYBYTES_MIN] = "meshgate.code.1";
static const unsigned char token_domain[crypto_generichash_KEYBYTES_MIN] = "meshgate.token1";

void pa_code_new(char *code, size_t len)
{
	size_t n = 0;
	for (int i = 0; i < PA_CODE_SYMBOLS && n + 2 < len; i++) {
		if (i && i % GROUP == 0)
			code[n++] = '-';
		code[n++] = alphabet[randombytes_uniform(32)];
	}
	code[n] = '\0';
}

static int symbol_of(char c)
{
	if (c >= 'a' && c <= 'z')
		c = (char)(c - 'a' + 'A');
	if (c == 'I' || c == 'L')
		c = '1';
	else if (c == 'O')
		c = '0';
	const char *p = c ? strchr(alphabet, c) : NULL;
	return p ? (int)(p - alphabet) : -1;
}

int pa_code_normalize(const char *input, char out[PA_CODE_SYMBOLS + 1])
{
	size_t n = 0;
	if (!input || strlen(input) > PA_CODE_TEXT_MAX)
		return -EINVAL;
	for (const char *c = input; *c; c++) {
		if (*c == '-' || *c == ' ')
			continue;
		int s = symbol_of(*c);
		if (s < 0 || n == PA_CODE_SYMBOLS)
			return -EINVAL;
		out[n++] = alphabet[s];
	}
	out[n] = '\0';
	return n == PA_CODE_SYMBOLS ? 0 : -EINVAL;
}

static void hash_hex(const unsigned char *key, const char *text, char hex[PA_HASH_HEX + 1])
{
	unsigned char h[PA_HASH_HEX / 2];
	crypto_generichash(h, sizeof(h), (const unsigned char *)text, strlen(text), key,
	                   crypto_generichash_KEYBYTES_MIN);
	sodium_bin2hex(hex, PA_HASH_HEX + 1, h, sizeof(h));
}

void pa_code_hash(const char canonical[PA_CODE_SYMBOLS + 1], char hex[PA_HASH_HEX + 1])
{
	hash_hex(code_domain, canonical, hex);
}

void pa_token_new(char *token, size_t len)
{
	unsigned char raw[32];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(token, len, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
}

void pa_token_hash(const char *token, char hex[PA_HASH_HEX + 1])
{
	hash_hex(token_domain, token, hex);
}

int pa_token_matches(const char *token, const char *hex)
{
	char mine[PA_HASH_HEX + 1];
	if (!token || !hex || strlen(hex) != PA_HASH_HEX)
		return 0;
	pa_token_hash(token, mine);
	return sodium_memcmp(mine, hex, PA_HASH_HEX) == 0;
}

void pa_device_id_new(char id[PA_DEVICE_ID_LEN + 1])
{
	unsigned char raw[PA_DEVICE_ID_LEN / 2];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(id, PA_DEVICE_ID_LEN + 1, raw, sizeof(raw));
}

int pa_device_id_valid(const char *id)
{
	if (!id || strlen(id) != PA_DEVICE_ID_LEN)
		return 0;
	for (const char *c = id; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return 0;
	return 1;
}

int pa_wg_key_valid(const char *text, char out[PA_WG_KEY_B64_LEN + 1])
{
	unsigned char key[32];
	size_t len;
	const char *end;
	static const unsigned char zero[32];

	if (!text || strlen(text) != PA_WG_KEY_B64_LEN)
		return 0;
	if (sodium_base642bin(key, sizeof(key), text, PA_WG_KEY_B64_LEN, NULL, &len, &end,
	                      sodium_base64_VARIANT_ORIGINAL) ||
	    len != sizeof(key) || end != text + PA_WG_KEY_B64_LEN)
		return 0;
	/* the all-zero key is what a device sends when it forgot to set one */
	if (!sodium_memcmp(key, zero, sizeof(key)))
		return 0;
	sodium_bin2base64(out, PA_WG_KEY_B64_LEN + 1, key, sizeof(key),
	                  sodium_base64_VARIANT_ORIGINAL);
	return 1;
}

void pa_device_name(const char *hint, char out[PA_DEVICE_NAME_MAX + 1])
{
	size_t n = 0;
	/* the first label of a hostname ("alice-laptop.corp" -> alice-laptop),
	 * lowercase, other characters as single dashes */
	for (const char *c = hint ? hint : ""; *c && *c != '.' && n < PA_DEVICE_NAME_MAX; c++) {
		char ch = *c;
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
			ch = '-';
		if (ch == '-' && (n == 0 || out[n - 1] == '-'))
			continue;
		out[n++] = ch;
	}
	while (n && out[n - 1] == '-')
		n--;
	out[n] = '\0';
	if (!n)
		strcpy(out, "device");
}
