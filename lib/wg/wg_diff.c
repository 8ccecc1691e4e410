/* The diff behind wg_peers_reconcile: what to write so that a device read
 * back has exactly the wanted peers, and not one peer more is written. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "wg_internal.h"

_Static_assert(sizeof(((struct wg_diff *)0)->hash_key) == crypto_shorthash_KEYBYTES,
               "the diff's hash key is SipHash's");

/* The table of the wanted peers by public key (in struct wg_diff): slot i
 * holds the index of a peer in want plus one, 0 when empty. At most half
 * full. */
static size_t key_slot(const struct wg_diff *d, const wg_key key)
{
	uint64_t h;

	crypto_shorthash((unsigned char *)&h, key, WG_KEY_LEN, d->hash_key);
	return (size_t)h & d->mask;
}

static int table_init(struct wg_diff *d, size_t n)
{
	size_t size = 16;

	if (n > UINT32_MAX / 4 || sodium_init() < 0)
		return -ENOMEM;
	while (size < 2 * n)
		size *= 2;
	d->slots = calloc(size, sizeof(*d->slots));
	d->mask = size - 1;
	randombytes_buf(d->hash_key, sizeof(d->hash_key));
	return d->slots ? 0 : -ENOMEM;
}

/* Index into want of the peer with that key, or -1. */
static long table_find(const struct wg_diff *d, const wg_key key)
{
	for (size_t i = key_slot(d, key);; i = (i + 1) & d->mask) {
		uint32_t slot = d->slots[i];

		if (!slot)
			return -1;
		if (wg_key_equal(d->want[slot - 1].public_key, key))
			return (long)slot - 1;
	}
}

/* Adds want[index]; -EEXIST if its key is there already. */
static int table_add(struct wg_diff *d, size_t index)
{
	const uint8_t *key = d->want[index].public_key;

	for (size_t i = key_slot(d, key);; i = (i + 1) & d->mask) {
		uint32_t slot = d->slots[i];

		if (!slot) {
			d->slots[i] = (uint32_t)index + 1;
			return 0;
		}
		if (wg_key_equal(d->want[slot - 1].public_key, key))
			return -EEXIST;
	}
}

/* Same prefix once the host bits are cleared: the daemon and the kernel
 * store 10.0.0.5/24 as 10.0.0.0/24 and read it back so. */
static bool same_prefix(const struct wg_allowed_ip *a, const struct wg_allowed_ip *b)
{
	const uint8_t *x = a->family == AF_INET ? (const uint8_t *)&a->ip4 : a->ip6.s6_addr;
	const uint8_t *y = b->family == AF_INET ? (const uint8_t *)&b->ip4 : b->ip6.s6_addr;
	unsigned full = a->cidr / 8, rest = a->cidr % 8;

	if (a->family != b->family || a->cidr != b->cidr || memcmp(x, y, full))
		return false;
	return !rest || ((x[full] ^ y[full]) & (0xff00u >> rest)) == 0;
}

static bool has_prefix(const struct wg_peer *p, const struct wg_allowed_ip *ip)
{
	for (size_t i = 0; i < p->n_allowed_ips; i++)
		if (same_prefix(&p->allowed_ips[i], ip))
			return true;
	return false;
}

/* The same set of prefixes, whatever the order (the daemon reads them back
 * in its own) and however often the list repeats one. A peer has a few. */
static bool same_allowed_ips(const struct wg_peer *have, const struct wg_peer *want)
{
	for (size_t i = 0; i < want->n_allowed_ips; i++)
		if (!has_prefix(have, &want->allowed_ips[i]))
			return false;
	for (size_t i = 0; i < have->n_allowed_ips; i++)
		if (!has_prefix(want, &have->allowed_ips[i]))
			return false;
	return true;
}

bool wg_endpoint_equal(const union wg_endpoint *a, const union wg_endpoint *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in4.sin_port == b->in4.sin_port &&
		       a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
	return a->in6.sin6_port == b->in6.sin6_port &&
	       a->in6.sin6_scope_id == b->in6.sin6_scope_id &&
	       !memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof(a->in6.sin6_addr));
}

/* The preshared key a peer has or wants: none is all zeros, as the daemon
 * and the kernel say it. */
static const uint8_t *psk_of(const struct wg_peer *p)
{
	static const wg_key none;

	return p->flags & WG_PEER_HAS_PRESHARED_KEY ? p->preshared_key : none;
}

/* An endpoint or keepalive the list does not give is the device's business
 * (a roaming device's endpoint is learnt from its packets); allowed IPs and
 * the preshared key are always exactly the list's. */
static bool peer_is_right(const struct wg_peer *have, const struct wg_peer *want)
{
	return same_allowed_ips(have, want) && wg_key_equal(psk_of(have), psk_of(want)) &&
	       (!(want->flags & WG_PEER_HAS_KEEPALIVE) ||
	        have->persistent_keepalive == want->persistent_keepalive) &&
	       (want->endpoint.sa.sa_family == AF_UNSPEC ||
	        wg_endpoint_equal(&have->endpoint, &want->endpoint));
}

/* What the device has of each wanted peer: UNSEEN, RIGHT, or WRONG with
 * what else is known of it. */
enum { UNSEEN, RIGHT, WRONG };
#define SEEN_WITH_PSK  0x10 /* it has a preshared key (which the list may not) */
#define SEEN_IPS_RIGHT 0x20 /* its allowed IPs are the list's */

/* The wanted peer i, as a write: all of it, with replace_allowed_ips;
 * allowed IPs that are right already are not written at all. A rewrite
 * of them empties the peer's prefixes first (replace_allowed_ips) and adds
 * them back one by one: WireGuard drops the packets to and from those
 * addresses meanwhile, so an endpoint's or keepalive's change must not
 * touch them. */
static void write_wanted(struct wg_peer *p, const struct wg_peer *want, unsigned char seen)
{
	*p = *want;
	p->flags = (want->flags & (WG_PEER_HAS_PRESHARED_KEY | WG_PEER_HAS_KEEPALIVE)) |
	           WG_PEER_REPLACE_ALLOWED;
	if (seen & SEEN_IPS_RIGHT) {
		p->flags &= ~WG_PEER_REPLACE_ALLOWED;
		p->flags |= WG_PEER_UPDATE_ONLY;
		p->allowed_ips = NULL;
		p->n_allowed_ips = 0;
	}
	if ((seen & SEEN_WITH_PSK) && !(p->flags & WG_PEER_HAS_PRESHARED_KEY)) {
		/* all zeros is how a preshared key is taken away */
		memset(p->preshared_key, 0, WG_KEY_LEN);
		p->flags |= WG_PEER_HAS_PRESHARED_KEY;
	}
}

void wg_diff_free(struct wg_diff *d)
{
	free(d->slots);
	free(d->seen);
	free(d->gone);
	memset(d, 0, sizeof(*d));
}

int wg_diff_begin(struct wg_diff *d, const struct wg_peer *want, size_t n, char *err, size_t errlen)
{
	memset(d, 0, sizeof(*d));
	d->want = want;
	d->n = n;
	if (table_init(d, n) || !(d->seen = calloc(n + 1, 1))) {
		wg_diff_free(d);
		return wg_err(err, errlen, -ENOMEM, "out of memory for %zu peers", n);
	}
	for (size_t i = 0; i < n; i++)
		if (table_add(d, i)) {
			char b64[WG_KEY_B64_LEN];

			wg_key_to_base64(b64, want[i].public_key);
			wg_diff_free(d);
			return wg_err(err, errlen, -EINVAL, "peer %s is listed twice", b64);
		}
	return 0;
}

int wg_diff_peer(const struct wg_peer *have, void *diff)
{
	struct wg_diff *d = diff;
	long i = table_find(d, have->public_key);

	if (i >= 0) {
		if (peer_is_right(have, &d->want[i]))
			d->seen[i] = RIGHT;
		else
			d->seen[i] = WRONG |
			             (have->flags & WG_PEER_HAS_PRESHARED_KEY ? SEEN_WITH_PSK : 0) |
			             (same_allowed_ips(have, &d->want[i]) ? SEEN_IPS_RIGHT : 0);
		return 0;
	}
	if (d->n_gone == d->gone_cap) {
		size_t cap = d->gone_cap ? d->gone_cap * 2 : 16;
		wg_key *gone =
		    cap > SIZE_MAX / sizeof(*gone) ? NULL : realloc(d->gone, cap * sizeof(*gone));

		if (!gone)
			return -ENOMEM;
		d->gone = gone;
		d->gone_cap = cap;
	}
	memcpy(d->gone[d->n_gone++], have->public_key, WG_KEY_LEN);
	return 0;
}

int wg_diff_end(struct wg_diff *d, const char *ifname, struct wg_device *out,
                struct wg_reconcile_counts *counts, char *err, size_t errlen)
{
	struct wg_reconcile_counts c = {.removed = d->n_gone};
	size_t total;

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", ifname);
	for (size_t i = 0; i < d->n; i++)
		if (d->seen[i] != RIGHT)
			d->seen[i] == UNSEEN ? c.added++ : c.changed++;
	total = c.removed + c.added + c.changed;
	if (total && !(out->peers = calloc(total, sizeof(*out->peers)))) {
		wg_diff_free(d);
		return wg_err(err, errlen, -ENOMEM, "out of memory for %zu peers", total);
	}
	/* the wanted peers in the order of the list, then the removals: a
	 * wanted peer takes its allowed IPs from the peer that had them (an
	 * address is on one peer only), so they are never on no peer. Removals
	 * first left them on no peer for the rest of the write, and WireGuard
	 * drops a packet to or from an address on no peer. */
	for (size_t i = 0; total && i < d->n; i++)
		if (d->seen[i] != RIGHT)
			write_wanted(&out->peers[out->n_peers++], &d->want[i], d->seen[i]);
	for (size_t j = 0; j < d->n_gone; j++) {
		struct wg_peer *p = &out->peers[out->n_peers++];

		memcpy(p->public_key, d->gone[j], WG_KEY_LEN);
		p->flags = WG_PEER_REMOVE;
	}
	wg_diff_free(d);
	if (counts)
		*counts = c;
	return 0;
}

int wg_peers_diff(const struct wg_device *have, const struct wg_peer *want, size_t n,
                  struct wg_device *out, struct wg_reconcile_counts *counts, char *err,
                  size_t errlen)
{
	struct wg_diff d;
	int ret = wg_diff_begin(&d, want, n, err, errlen);

	memset(out, 0, sizeof(*out));
	for (size_t j = 0; !ret && j < have->n_peers; j++)
		if (wg_diff_peer(&have->peers[j], &d)) {
			wg_diff_free(&d);
			ret = wg_err(err, errlen, -ENOMEM, "out of memory for %zu peers", n);
		}
	return ret ? ret : wg_diff_end(&d, have->name, out, counts, err, errlen);
}
