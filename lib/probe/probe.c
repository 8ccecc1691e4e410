#include "probe.h"

#include <errno.h>
#include <string.h>

#define PROBE_MAGIC       "MGP1"
#define PROBE_TYPE_PROBE  1
#define PROBE_TYPE_ANSWER 2

static void put_u64(uint8_t *out, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		out[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *in)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | in[i];
	return v;
}

static int printable(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return 0;
	return 1;
}

void probe_request_encode_mtu(uint64_t nonce, unsigned mtu, uint8_t out[PROBE_REQUEST_LEN])
{
	memset(out, 0, PROBE_REQUEST_LEN);
	memcpy(out, PROBE_MAGIC, 4);
	out[4] = PROBE_TYPE_PROBE;
	out[6] = (uint8_t)(mtu >> 8);
	out[7] = (uint8_t)mtu;
	put_u64(out + 8, nonce);
}

void probe_request_encode(uint64_t nonce, uint8_t out[PROBE_REQUEST_LEN])
{
	probe_request_encode_mtu(nonce, 0, out);
}

int probe_request_decode_mtu(const void *buf, size_t len, uint64_t *nonce, unsigned *mtu)
{
	const uint8_t *b = buf;
	if (len != PROBE_REQUEST_LEN || memcmp(b, PROBE_MAGIC, 4) || b[4] != PROBE_TYPE_PROBE ||
	    b[5])
		return -EINVAL;
	unsigned told = (unsigned)b[6] << 8 | b[7];
	if (told && told < PROBE_MTU_MIN)
		return -EINVAL;
	*nonce = get_u64(b + 8);
	*mtu = told;
	return 0;
}

int probe_request_decode(const void *buf, size_t len, uint64_t *nonce)
{
	unsigned mtu;
	return probe_request_decode_mtu(buf, len, nonce, &mtu);
}

int probe_answer_encode(const struct probe_answer *a, uint8_t out[PROBE_ANSWER_MAX])
{
	size_t n = strnlen(a->node, sizeof(a->node)), m = strnlen(a->active, sizeof(a->active));
	if (n == 0 || n > PROBE_NAME_MAX || m > PROBE_NAME_MAX ||
	    !printable((const uint8_t *)a->node, n) || !printable((const uint8_t *)a->active, m))
		return -EINVAL;
	memcpy(out, PROBE_MAGIC, 4);
	out[4] = PROBE_TYPE_ANSWER;
	out[5] = 0;
	out[6] = (uint8_t)n;
	out[7] = (uint8_t)m;
	put_u64(out + 8, a->nonce);
	put_u64(out + 16, a->epoch);
	memcpy(out + 24, a->node, n);
	memcpy(out + 24 + n, a->active, m);
	return (int)(24 + n + m);
}

int probe_answer_decode(const void *buf, size_t len, struct probe_answer *a)
{
	const uint8_t *b = buf;
	memset(a, 0, sizeof(*a));
	if (len < 24 || memcmp(b, PROBE_MAGIC, 4) || b[4] != PROBE_TYPE_ANSWER || b[5])
		return -EINVAL;
	size_t n = b[6], m = b[7];
	if (n == 0 || n > PROBE_NAME_MAX || m > PROBE_NAME_MAX || len != 24 + n + m ||
	    !printable(b + 24, n) || !printable(b + 24 + n, m))
		return -EINVAL;
	a->nonce = get_u64(b + 8);
	a->epoch = get_u64(b + 16);
	memcpy(a->node, b + 24, n);
	memcpy(a->active, b + 24 + n, m);
	return 0;
}

int pmtu_probe_encode(enum pmtu_probe_type type, uint64_t nonce, size_t len, uint8_t *out)
{
	if (len < PMTU_PROBE_MIN || len > PMTU_PROBE_MAX ||
	    (type != PMTU_PROBE && type != PMTU_ANSWER))
		return -EINVAL;
	memset(out, 0, len);
	memcpy(out, PROBE_MAGIC, 4);
	out[4] = (uint8_t)type;
	out[6] = (uint8_t)(len >> 8);
	out[7] = (uint8_t)len;
	put_u64(out + 8, nonce);
	return 0;
}

int pmtu_probe_decode(const void *buf, size_t len, enum pmtu_probe_type *type, uint64_t *nonce)
{
	const uint8_t *b = buf;
	if (len < PMTU_PROBE_MIN || len > PMTU_PROBE_MAX || memcmp(b, PROBE_MAGIC, 4) ||
	    (b[4] != PMTU_PROBE && b[4] != PMTU_ANSWER) || b[5] ||
	    ((size_t)b[6] << 8 | b[7]) != len)
		return -EINVAL;
	for (size_t i = 16; i < len; i++)
		if (b[i])
			return -EINVAL;
	*type = (enum pmtu_probe_type)b[4];
	*nonce = get_u64(b + 8);
	return 0;
}
