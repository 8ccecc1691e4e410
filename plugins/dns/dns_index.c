/* The index: every name the server answers, each with its RRs already in
 * wire format. It is built on the plugin thread (a chained hash table of
 * growing nodes), then frozen: each name's header, name and RRs are copied
 * together into one arena and found through an open-addressing table of
 * (hash, node) slots, so that a lookup costs a slot and about two cache
 * lines (a lookup was a quarter of the UDP worker's user time before).
 * Once published it never changes: the UDP workers read it under no more
 * than a read lock around a batch. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

/* ---- building ---- */

struct bblock {
	uint8_t *wire;
	uint32_t len, cap;
	uint16_t count;
};

struct bnode {
	struct bnode *next;
	struct bnode *zone;
	uint32_t hash;
	uint8_t len, flags;
	size_t offset; /* in the arena, when frozen */
	struct bblock blocks[DNS_B_COUNT];
	uint8_t name[];
};

struct slot {
	uint32_t hash;
	uint32_t offset; /* of the node in the arena; 0: empty */
};

struct dns_index {
	/* while building */
	struct bnode **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
	uint32_t ttl, serial;
	/* frozen */
	uint8_t *arena;
	struct slot *slots;
	size_t nslots; /* a power of two, at least twice count */
};

static const uint16_t block_type[DNS_B_COUNT] = {
    [DNS_B_A] = DNS_T_A,   [DNS_B_AAAA] = DNS_T_AAAA, [DNS_B_PTR] = DNS_T_PTR,
    [DNS_B_NS] = DNS_T_NS, [DNS_B_SOA] = DNS_T_SOA,
};

struct dns_index *dns_index_new(uint32_t ttl, uint32_t serial)
{
	struct dns_index *idx = calloc(1, sizeof(*idx));
	if (!idx)
		return NULL;
	idx->nbuckets = 1024;
	idx->buckets = calloc(idx->nbuckets, sizeof(*idx->buckets));
	if (!idx->buckets) {
		free(idx);
		return NULL;
	}
	idx->ttl = ttl;
	idx->serial = serial;
	return idx;
}

static void free_build(struct dns_index *idx)
{
	for (size_t b = 0; idx->buckets && b < idx->nbuckets; b++)
		for (struct bnode *n = idx->buckets[b], *next; n; n = next) {
			next = n->next;
			for (int i = 0; i < DNS_B_COUNT; i++)
				free(n->blocks[i].wire);
			free(n);
		}
	free(idx->buckets);
	idx->buckets = NULL;
}

void dns_index_free(struct dns_index *idx)
{
	if (!idx)
		return;
	free_build(idx);
	free(idx->arena);
	free(idx->slots);
	free(idx);
}

size_t dns_index_names(const struct dns_index *idx)
{
	return idx ? idx->count : 0;
}

uint32_t dns_index_serial(const struct dns_index *idx)
{
	return idx ? idx->serial : 0;
}

static struct bnode *bfind(struct dns_index *idx, const uint8_t *name, size_t len)
{
	uint32_t hash = dns_hash(name, len);
	for (struct bnode *n = idx->buckets[hash & (idx->nbuckets - 1)]; n; n = n->next)
		if (n->hash == hash && n->len == len && !memcmp(n->name, name, len))
			return n;
	return NULL;
}

static int grow(struct dns_index *idx)
{
	size_t nb = idx->nbuckets * 2;
	struct bnode **b = calloc(nb, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < idx->nbuckets; i++)
		for (struct bnode *n = idx->buckets[i], *next; n; n = next) {
			next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	free(idx->buckets);
	idx->buckets = b;
	idx->nbuckets = nb;
	return 0;
}

static struct bnode *node_new(struct dns_index *idx, const uint8_t *name, size_t len,
                              struct bnode *zone)
{
	if (idx->count >= idx->nbuckets && grow(idx))
		return NULL;
	struct bnode *n = calloc(1, sizeof(*n) + len);
	if (!n)
		return NULL;
	memcpy(n->name, name, len);
	n->len = (uint8_t)len;
	n->hash = dns_hash(name, len);
	n->zone = zone;
	n->next = idx->buckets[n->hash & (idx->nbuckets - 1)];
	idx->buckets[n->hash & (idx->nbuckets - 1)] = n;
	idx->count++;
	return n;
}

static int block_of(uint16_t type)
{
	for (int b = 0; b < DNS_B_COUNT; b++)
		if (block_type[b] == type)
			return b;
	return -1;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* Does the block hold an RR with this rdata already? */
static int block_has(const struct bblock *b, const uint8_t *rdata, size_t rdlen)
{
	for (size_t off = 0; off < b->len;) {
		size_t len = (size_t)b->wire[off + 10] << 8 | b->wire[off + 11];
		if (len == rdlen && !memcmp(b->wire + off + 12, rdata, rdlen))
			return 1;
		off += 12 + len;
	}
	return 0;
}

static int block_add(struct bblock *b, uint16_t type, uint32_t ttl, const uint8_t *rdata,
                     size_t rdlen)
{
	if (block_has(b, rdata, rdlen))
		return 0;
	if (b->count >= DNS_RR_PER_NAME)
		return -E2BIG;
	size_t need = b->len + 12 + rdlen;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		while (cap < need)
			cap *= 2;
		uint8_t *w = realloc(b->wire, cap);
		if (!w)
			return -ENOMEM;
		b->wire = w;
		b->cap = (uint32_t)cap;
	}
	uint8_t *p = b->wire + b->len;
	p[0] = 0xc0; /* the owner is the question's name, at offset 12 */
	p[1] = DNS_HEADER;
	put16(p + 2, type);
	put16(p + 4, DNS_C_IN);
	put32(p + 6, ttl);
	put16(p + 10, (uint16_t)rdlen);
	memcpy(p + 12, rdata, rdlen);
	b->count++;
	b->len = (uint32_t)need;
	return 0;
}

int dns_index_zone(struct dns_index *idx, const uint8_t *apex, size_t len, const uint8_t *ns_zone,
                   size_t ns_len)
{
	static const uint8_t ns_label[] = {2, 'n', 's', 0};
	static const uint8_t mbox_label[] = {10,  'h', 'o', 's', 't', 'm',
	                                     'a', 's', 't', 'e', 'r', 0};
	uint8_t mname[DNS_NAME_MAX], rname[DNS_NAME_MAX], soa[2 * DNS_NAME_MAX + 20];
	size_t mlen, rlen;
	int rc;

	if (idx->arena)
		return -EBUSY;
	if (dns_name_concat(ns_label, sizeof(ns_label), ns_zone, ns_len, mname, &mlen) ||
	    dns_name_concat(mbox_label, sizeof(mbox_label), ns_zone, ns_len, rname, &rlen))
		return -ENAMETOOLONG;
	struct bnode *n = bfind(idx, apex, len);
	if (!n && !(n = node_new(idx, apex, len, NULL)))
		return -ENOMEM;
	n->flags |= DNS_NODE_APEX;
	n->zone = n;
	memcpy(soa, mname, mlen);
	memcpy(soa + mlen, rname, rlen);
	uint8_t *p = soa + mlen + rlen;
	put32(p, idx->serial);
	/* refresh, retry and expire matter only to secondaries, which this
	 * zone has none of (no transfers): RFC 1912's values, which checkers
	 * such as Zonemaster expect */
	put32(p + 4, 14400);     /* refresh */
	put32(p + 8, 3600);      /* retry */
	put32(p + 12, 604800);   /* expire */
	put32(p + 16, idx->ttl); /* minimum: how long a negative answer is cached */
	rc = block_add(&n->blocks[DNS_B_SOA], DNS_T_SOA, idx->ttl, soa, mlen + rlen + 20);
	if (!rc)
		rc = block_add(&n->blocks[DNS_B_NS], DNS_T_NS, idx->ttl, mname, mlen);
	return rc;
}

/* The node of `name`, made with the empty non-terminals above it up to
 * the zone's apex when it is new. */
static struct bnode *node_get(struct dns_index *idx, const uint8_t *name, size_t len)
{
	struct bnode *n = bfind(idx, name, len);
	if (n)
		return n;
	struct bnode *zone = NULL;
	size_t top = 0; /* where the first existing ancestor starts */
	for (size_t off = 1u + name[0]; off < len; off += 1u + name[off]) {
		struct bnode *up = bfind(idx, name + off, len - off);
		if (up) {
			zone = up->zone;
			top = off;
			break;
		}
		if (!name[off])
			break;
	}
	if (zone) /* the names between the new one and the node found */
		for (size_t o = 1u + name[0]; o < top; o += 1u + name[o])
			if (!node_new(idx, name + o, len - o, zone))
				return NULL;
	return node_new(idx, name, len, zone);
}

int dns_index_add(struct dns_index *idx, const uint8_t *name, size_t len, uint16_t type,
                  const uint8_t *rdata, size_t rdlen)
{
	int b = block_of(type);
	if (idx->arena)
		return -EBUSY;
	if (b < 0 || !len || len > DNS_NAME_MAX)
		return -EINVAL;
	struct bnode *n = node_get(idx, name, len);
	if (!n)
		return -ENOMEM;
	return block_add(&n->blocks[b], type, idx->ttl, rdata, rdlen);
}

/* ---- frozen ---- */

#define ALIGN(x) (((x) + 63) & ~(size_t)63) /* each node on its own cache lines */

static size_t node_size(const struct bnode *n)
{
	size_t size = sizeof(struct dns_node) + n->len;
	for (int i = 0; i < DNS_B_COUNT; i++)
		size += n->blocks[i].len;
	return ALIGN(size);
}

int dns_index_freeze(struct dns_index *idx)
{
	size_t total = 64; /* offset 0 marks an empty slot */
	if (idx->arena)
		return 0;
	for (size_t b = 0; b < idx->nbuckets; b++)
		for (struct bnode *n = idx->buckets[b]; n; n = n->next) {
			n->offset = total;
			total += node_size(n);
		}
	if (total > UINT32_MAX)
		return -E2BIG;
	size_t nslots = 64;
	while (nslots < 2 * idx->count)
		nslots *= 2;
	uint8_t *arena = aligned_alloc(64, total);
	struct slot *slots = calloc(nslots, sizeof(*slots));
	if (!arena || !slots) {
		free(arena);
		free(slots);
		return -ENOMEM;
	}
	memset(arena, 0, total);
	for (size_t b = 0; b < idx->nbuckets; b++)
		for (struct bnode *n = idx->buckets[b]; n; n = n->next) {
			struct dns_node *f = (struct dns_node *)(arena + n->offset);
			f->hash = n->hash;
			f->len = n->len;
			f->flags = n->flags;
			f->zone =
			    n->zone ? (const struct dns_node *)(arena + n->zone->offset) : NULL;
			memcpy(f->name, n->name, n->len);
			uint8_t *data = f->name + n->len;
			for (int i = 0; i < DNS_B_COUNT; i++) {
				const struct bblock *bb = &n->blocks[i];
				f->blocks[i] =
				    (struct dns_block){data, bb->len, bb->count, block_type[i]};
				if (bb->len)
					memcpy(data, bb->wire, bb->len);
				data += bb->len;
			}
			size_t s = n->hash & (nslots - 1);
			while (slots[s].offset)
				s = (s + 1) & (nslots - 1);
			slots[s] = (struct slot){n->hash, (uint32_t)n->offset};
		}
	free_build(idx);
	idx->arena = arena;
	idx->slots = slots;
	idx->nslots = nslots;
	return 0;
}

const struct dns_node *dns_index_find(const struct dns_index *idx, const uint8_t *name, size_t len,
                                      uint32_t hash)
{
	if (!idx->slots)
		return NULL;
	for (size_t s = hash & (idx->nslots - 1);; s = (s + 1) & (idx->nslots - 1)) {
		const struct slot *sl = &idx->slots[s];
		if (!sl->offset)
			return NULL;
		if (sl->hash != hash)
			continue;
		const struct dns_node *n = (const struct dns_node *)(idx->arena + sl->offset);
		if (n->len == len && !memcmp(n->name, name, len))
			return n;
	}
}

void dns_index_prefetch(const struct dns_index *idx, uint32_t hash, int node)
{
	if (!idx->slots)
		return;
	size_t s = hash & (idx->nslots - 1);
	if (!node) {
		__builtin_prefetch(&idx->slots[s]);
		return;
	}
	for (; idx->slots[s].offset; s = (s + 1) & (idx->nslots - 1))
		if (idx->slots[s].hash == hash) {
			const uint8_t *n = idx->arena + idx->slots[s].offset;
			__builtin_prefetch(n);
			__builtin_prefetch(n + 64);
			__builtin_prefetch(n + 128);
			return;
		}
}

const struct dns_node *dns_index_zone_of(const struct dns_index *idx, const uint8_t *name,
                                         size_t len)
{
	for (size_t off = 0; off < len && name[off]; off += 1u + name[off]) {
		const struct dns_node *n =
		    dns_index_find(idx, name + off, len - off, dns_hash(name + off, len - off));
		if (n && n->zone)
			return n->zone;
	}
	return NULL;
}
