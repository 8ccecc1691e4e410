/* The index: every name the server answers, each with its RRs already in
 * wire format. Each name is one allocation (its header, its name, the
 * length and count of its non-empty blocks and its RRs together, so a
 * lookup touches a slot and one or two cache lines), found through an
 * open-addressing table of node slots filled up to 70%.
 *
 * It is built (zones, then RRs), frozen, and published; after that only
 * dns_index_set changes it, one RR at a time in O(1) expected time, with
 * the server's write lock held: the UDP workers read it under a read lock
 * around a batch. A change replaces the node of its name by a new one, so
 * a node never grows in place; apexes (which other nodes point to) never
 * change after dns_index_zone, but for their serial. */
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

/* A slot is the node alone (its hash is in the node): 8 bytes a name
 * rather than 16; a probe reads the node it compares, which a hit reads
 * anyway. */
struct slot {
	struct dns_node *node; /* NULL: empty */
};

#define MAX_ZONES 512        /* apexes: the zone and the reverse zones of the VPN */
#define NO_ZONE   UINT16_MAX /* a node's zone: an index into apex[], or this */

/* The address table: the PTRs of IPv4 addresses, each an address and the
 * node of the name it points to (which has that address as an A RR), so
 * that a device's reverse name costs 12 bytes a slot rather than a node
 * repeating its name. Open addressing by the address, linear probing, at
 * most 70% full; an address with several PTRs has several entries, in
 * the order they were added (probing and backward-shift deletion keep
 * it). */
struct ptr_table {
	uint32_t *addr;
	struct dns_node **node; /* NULL: empty */
	size_t nslots;          /* a power of two, or 0 */
	size_t count;
};

struct dns_index {
	struct slot *slots;
	size_t nslots; /* a power of two; count is at most 70% of it */
	size_t count;
	struct ptr_table ptr;
	uint32_t ttl, serial;
	int frozen;
	struct dns_node *apex[MAX_ZONES];
	size_t napex;
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
	idx->nslots = 64;
	idx->slots = calloc(idx->nslots, sizeof(*idx->slots));
	if (!idx->slots) {
		free(idx);
		return NULL;
	}
	idx->ttl = ttl;
	idx->serial = serial;
	return idx;
}

void dns_index_free(struct dns_index *idx)
{
	if (!idx)
		return;
	for (size_t s = 0; s < idx->nslots; s++)
		free(idx->slots[s].node);
	free(idx->slots);
	free(idx->ptr.addr);
	free(idx->ptr.node);
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

uint32_t dns_index_ttl(const struct dns_index *idx)
{
	return idx ? idx->ttl : 0;
}

/* The slot holding `name`, or the empty slot where its probe ends. */
static struct slot *slot_of(const struct dns_index *idx, const uint8_t *name, size_t len,
                            uint32_t hash)
{
	for (size_t s = hash & (idx->nslots - 1);; s = (s + 1) & (idx->nslots - 1)) {
		struct slot *sl = &idx->slots[s];
		if (!sl->node || (sl->node->hash == hash && sl->node->len == len &&
		                  !memcmp(sl->node->name, name, len)))
			return sl;
	}
}

static struct dns_node *lookup(const struct dns_index *idx, const uint8_t *name, size_t len)
{
	return slot_of(idx, name, len, dns_hash(name, len))->node;
}

/* The slots rehashed into a table of n (a power of two). */
static int rehash(struct dns_index *idx, size_t n)
{
	struct slot *slots = calloc(n, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < idx->nslots; i++) {
		if (!idx->slots[i].node)
			continue;
		size_t s = idx->slots[i].node->hash & (n - 1);
		while (slots[s].node)
			s = (s + 1) & (n - 1);
		slots[s] = idx->slots[i];
	}
	free(idx->slots);
	idx->slots = slots;
	idx->nslots = n;
	return 0;
}

static int grow(struct dns_index *idx)
{
	return rehash(idx, idx->nslots * 2);
}

int dns_index_reserve(struct dns_index *idx, size_t names)
{
	size_t n = idx->nslots;
	while (10 * names > 7 * n)
		n *= 2;
	return n == idx->nslots ? 0 : rehash(idx, n);
}

/* Takes the slot out, moving the entries after it back so that no probe
 * stops early (backward-shift deletion of linear probing). */
static void slot_clear(struct dns_index *idx, struct slot *sl)
{
	size_t mask = idx->nslots - 1, hole = (size_t)(sl - idx->slots);
	for (size_t s = (hole + 1) & mask; idx->slots[s].node; s = (s + 1) & mask) {
		size_t home = idx->slots[s].node->hash & mask;
		/* the entry may move to the hole if its home is not in (hole, s] */
		if (((s - home) & mask) >= ((s - hole) & mask)) {
			idx->slots[hole] = idx->slots[s];
			hole = s;
		}
	}
	idx->slots[hole] = (struct slot){NULL};
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

struct dns_block dns_node_block(const struct dns_node *n, int b)
{
	const uint8_t *set = n->name + n->len;
	const uint8_t *rr = set + 4 * __builtin_popcount(n->sets);
	for (int i = 0; i < b; i++)
		if (n->sets & (1u << i)) {
			rr += get16(set);
			set += 4;
		}
	if (!(n->sets & (1u << b)))
		return (struct dns_block){.wire = rr, .type = block_type[b]};
	return (struct dns_block){
	    .wire = rr, .len = get16(set), .count = get16(set + 2), .type = block_type[b]};
}

/* An RR as stored: rdlength and rdata; in a message it has 10 bytes more
 * before them (owner pointer, type, class, TTL). */
#define RR_STORED 2
#define RR_ADDED  10

size_t dns_block_wire_len(const struct dns_block *b)
{
	return b->len + (size_t)RR_ADDED * b->count;
}

static size_t ptr_home(const struct ptr_table *t, uint32_t addr)
{
	return (size_t)(addr * 2654435761u) & (t->nslots - 1); /* spreads runs of addresses */
}

int dns_block_next(const struct dns_block *b, size_t *at, const uint8_t **rdata, size_t *rdlen)
{
	if (!b->table) {
		if (*at >= b->len)
			return 0;
		*rdlen = get16(b->wire + *at);
		*rdata = b->wire + *at + RR_STORED;
		*at += RR_STORED + *rdlen;
		return 1;
	}
	/* *at: the slots looked at from the address's home */
	const struct ptr_table *t = &b->table->ptr;
	size_t mask = t->nslots - 1;
	for (size_t s = (ptr_home(t, b->addr) + *at) & mask; t->nslots && t->node[s];
	     s = (s + 1) & mask) {
		++*at;
		if (t->addr[s] == b->addr) {
			*rdata = t->node[s]->name;
			*rdlen = t->node[s]->len;
			return 1;
		}
	}
	return 0;
}

size_t dns_block_write(const struct dns_block *b, uint32_t ttl, uint8_t *out)
{
	size_t n = 0, at = 0, rdlen;
	const uint8_t *rdata;
	while (dns_block_next(b, &at, &rdata, &rdlen)) {
		out[n] = 0xc0; /* the owner is the question's name, at offset 12 */
		out[n + 1] = DNS_HEADER;
		put16(out + n + 2, b->type);
		put16(out + n + 4, DNS_C_IN);
		put32(out + n + 6, ttl);
		put16(out + n + RR_ADDED, (uint16_t)rdlen);
		memcpy(out + n + RR_ADDED + RR_STORED, rdata, rdlen);
		n += RR_ADDED + RR_STORED + rdlen;
	}
	return n;
}

static size_t node_data_len(const struct dns_node *n)
{
	size_t len = 0;
	for (int i = 0; i < DNS_B_COUNT; i++)
		len += dns_node_block(n, i).len;
	return len;
}

/* The parent of a name (the name less its first label), NULL at the root
 * or when it is not in the index. */
static struct dns_node *parent_of(const struct dns_index *idx, const uint8_t *name, size_t len)
{
	size_t off = 1u + name[0];
	if (!name[0] || off >= len)
		return NULL;
	return lookup(idx, name + off, len - off);
}

/* A new node, with one RR (`rr`, rrlen bytes, in block b) or none
 * (rrlen 0): in one allocation, as most names have a single RR. */
static struct dns_node *node_new(struct dns_index *idx, const uint8_t *name, size_t len,
                                 uint16_t zone, int b, const uint8_t *rr, size_t rrlen)
{
	if (10 * (idx->count + 1) > 7 * idx->nslots && grow(idx))
		return NULL;
	size_t head = offsetof(struct dns_node, name) + len;
	struct dns_node *n = calloc(1, head + (rrlen ? 4 + rrlen : 0));
	if (!n)
		return NULL;
	memcpy(n->name, name, len);
	n->len = (uint8_t)len;
	n->hash = dns_hash(name, len);
	n->zone = zone;
	if (rrlen) {
		n->sets = (uint8_t)(1u << b);
		put16(n->name + len, (uint16_t)rrlen);
		put16(n->name + len + 2, 1);
		memcpy(n->name + len + 4, rr, rrlen);
	}
	struct slot *sl = slot_of(idx, name, len, n->hash);
	*sl = (struct slot){n};
	idx->count++;
	struct dns_node *parent = parent_of(idx, name, len);
	if (parent)
		parent->children++;
	return n;
}

/* Takes a node out that has no RRs and no children, then its parents
 * that were there only for it (empty non-terminals, not apexes). */
static void node_drop(struct dns_index *idx, struct dns_node *n)
{
	while (n && !n->children && !(n->flags & DNS_NODE_APEX) && !node_data_len(n)) {
		struct dns_node *parent = parent_of(idx, n->name, n->len);
		slot_clear(idx, slot_of(idx, n->name, n->len, n->hash));
		idx->count--;
		free(n);
		if (parent)
			parent->children--;
		n = parent;
	}
}

static int block_of(uint16_t type)
{
	for (int b = 0; b < DNS_B_COUNT; b++)
		if (block_type[b] == type)
			return b;
	return -1;
}

/* The offset of the RR with this rdata in the block, or -1. */
static long block_find(const struct dns_block *b, const uint8_t *rdata, size_t rdlen)
{
	for (size_t off = 0; off < b->len;) {
		size_t len = get16(b->wire + off);
		if (len == rdlen && !memcmp(b->wire + off + RR_STORED, rdata, rdlen))
			return (long)off;
		off += RR_STORED + len;
	}
	return -1;
}

/* ---- the address table ---- */

/* The slot of the entry (addr, node), or -1. */
static long ptr_find(const struct ptr_table *t, uint32_t addr, const struct dns_node *node)
{
	size_t mask = t->nslots - 1;
	for (size_t s = t->nslots ? ptr_home(t, addr) : 0; t->nslots && t->node[s];
	     s = (s + 1) & mask)
		if (t->addr[s] == addr && t->node[s] == node)
			return (long)s;
	return -1;
}

/* The entries rehashed into n slots (a power of two), each cluster walked
 * from its start so that the entries of one address keep their order. */
static int ptr_rehash(struct ptr_table *t, size_t n)
{
	uint32_t *addr = calloc(n, sizeof(*addr));
	struct dns_node **node = calloc(n, sizeof(*node));
	if (!addr || !node) {
		free(addr);
		free(node);
		return -ENOMEM;
	}
	struct ptr_table nt = {addr, node, n, t->count};
	size_t start = 0;
	while (start < t->nslots && t->node[start])
		start++;
	for (size_t i = 0; i < t->nslots; i++) {
		size_t s = (start + i) & (t->nslots - 1);
		if (!t->node[s])
			continue;
		size_t d = ptr_home(&nt, t->addr[s]);
		while (node[d])
			d = (d + 1) & (n - 1);
		addr[d] = t->addr[s];
		node[d] = t->node[s];
	}
	free(t->addr);
	free(t->node);
	*t = nt;
	return 0;
}

static int ptr_insert(struct ptr_table *t, uint32_t addr, struct dns_node *node)
{
	if (10 * (t->count + 1) > 7 * t->nslots && ptr_rehash(t, t->nslots ? 2 * t->nslots : 64))
		return -ENOMEM;
	size_t s = ptr_home(t, addr);
	while (t->node[s])
		s = (s + 1) & (t->nslots - 1);
	t->addr[s] = addr;
	t->node[s] = node;
	t->count++;
	return 0;
}

/* Backward-shift deletion, as slot_clear. */
static void ptr_remove(struct ptr_table *t, size_t hole)
{
	size_t mask = t->nslots - 1;
	for (size_t s = (hole + 1) & mask; t->node[s]; s = (s + 1) & mask) {
		size_t home = ptr_home(t, t->addr[s]);
		if (((s - home) & mask) >= ((s - hole) & mask)) {
			t->addr[hole] = t->addr[s];
			t->node[hole] = t->node[s];
			hole = s;
		}
	}
	t->node[hole] = NULL;
	t->count--;
}

/* A node replaced by m: the entries of its A RRs point to m. */
static void ptr_relink(struct dns_index *idx, const struct dns_node *n, struct dns_node *m)
{
	struct dns_block a = dns_node_block(n, DNS_B_A);
	size_t at = 0, rdlen;
	const uint8_t *rdata;
	while (idx->ptr.count && dns_block_next(&a, &at, &rdata, &rdlen)) {
		long s = rdlen == 4 ? ptr_find(&idx->ptr, get32(rdata), n) : -1;
		if (s >= 0)
			idx->ptr.node[s] = m;
	}
}

/* The node with its block `b` changed: `rr` (rrlen bytes) put at offset
 * `at` of the block in place of `cut` bytes there, its count moved by
 * `dcount`. The new node takes the old one's slot. -E2BIG past what one
 * DNS message can hold. */
static int node_edit(struct dns_index *idx, struct dns_node **np, int b, size_t at, size_t cut,
                     const uint8_t *rr, size_t rrlen, int dcount)
{
	struct dns_node *n = *np;
	struct dns_block old[DNS_B_COUNT];
	size_t lens[DNS_B_COUNT], counts[DNS_B_COUNT], data = 0;
	uint8_t sets = 0;
	for (int i = 0; i < DNS_B_COUNT; i++) {
		old[i] = dns_node_block(n, i);
		lens[i] = old[i].len;
		counts[i] = old[i].count;
	}
	lens[b] = lens[b] - cut + rrlen;
	counts[b] = (size_t)((int)counts[b] + dcount);
	if (lens[b] + RR_ADDED * counts[b] > UINT16_MAX)
		return -E2BIG;
	for (int i = 0; i < DNS_B_COUNT; i++) {
		data += lens[i];
		if (lens[i])
			sets |= (uint8_t)(1u << i);
	}
	size_t head = offsetof(struct dns_node, name) + n->len;
	struct dns_node *m = malloc(head + 4 * (size_t)__builtin_popcount(sets) + data);
	if (!m)
		return -ENOMEM;
	memcpy(m, n, head);
	m->sets = sets;
	uint8_t *set = m->name + m->len, *p = set + 4 * __builtin_popcount(sets);
	for (int i = 0; i < DNS_B_COUNT; i++) {
		if (!lens[i])
			continue;
		put16(set, (uint16_t)lens[i]);
		put16(set + 2, (uint16_t)counts[i]);
		set += 4;
		if (i != b) {
			memcpy(p, old[i].wire, lens[i]);
		} else {
			memcpy(p, old[i].wire, at);
			if (rrlen)
				memcpy(p + at, rr, rrlen);
			memcpy(p + at + rrlen, old[i].wire + at + cut, old[i].len - at - cut);
		}
		p += lens[i];
	}
	slot_of(idx, n->name, n->len, n->hash)->node = m;
	ptr_relink(idx, n, m);
	free(n);
	*np = m;
	return 0;
}

#define RR_MAX (RR_STORED + 2 * DNS_NAME_MAX + 20) /* the largest: an SOA */

/* An RR as stored, in rr; its length, 0 when rdata is too long. */
static size_t rr_store(uint8_t rr[RR_MAX], const uint8_t *rdata, size_t rdlen)
{
	if (rdlen > RR_MAX - RR_STORED)
		return 0;
	put16(rr, (uint16_t)rdlen);
	memcpy(rr + RR_STORED, rdata, rdlen);
	return RR_STORED + rdlen;
}

static int rr_add(struct dns_index *idx, struct dns_node *n, int b, const uint8_t *rdata,
                  size_t rdlen)
{
	uint8_t rr[RR_MAX];
	size_t len = rr_store(rr, rdata, rdlen);
	if (!len)
		return -EINVAL;
	struct dns_block block = dns_node_block(n, b);
	if (block_find(&block, rdata, rdlen) >= 0)
		return 0;
	if (block.count >= DNS_RR_PER_NAME)
		return -E2BIG;
	return node_edit(idx, &n, b, block.len, 0, rr, len, 1);
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

	if (idx->frozen)
		return -EBUSY;
	if (idx->napex >= MAX_ZONES)
		return -E2BIG;
	if (dns_name_concat(ns_label, sizeof(ns_label), ns_zone, ns_len, mname, &mlen) ||
	    dns_name_concat(mbox_label, sizeof(mbox_label), ns_zone, ns_len, rname, &rlen))
		return -ENAMETOOLONG;
	struct dns_node *n = lookup(idx, apex, len);
	if (n && (n->flags & DNS_NODE_APEX))
		return 0; /* declared already */
	if (n && (n->children || node_data_len(n)))
		return -EBUSY; /* zones come first: names below point to their apex */
	if (!n && !(n = node_new(idx, apex, len, NO_ZONE, 0, NULL, 0)))
		return -ENOMEM;
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
	rc = rr_add(idx, n, DNS_B_SOA, soa, mlen + rlen + 20);
	if (!rc)
		rc = rr_add(idx, lookup(idx, apex, len), DNS_B_NS, mname, mlen);
	if (rc)
		return rc;
	n = lookup(idx, apex, len);
	n->flags |= DNS_NODE_APEX;
	n->zone = (uint16_t)idx->napex;
	idx->apex[idx->napex++] = n;
	return 0;
}

/* The empty non-terminals above `name` up to its zone's apex, made from
 * the top down so that each finds its parent; *zone: the name's zone,
 * *made: the lowest made (NULL: none). */
static int ents_make(struct dns_index *idx, const uint8_t *name, size_t len, uint16_t *zonep,
                     struct dns_node **madep)
{
	uint16_t zone = NO_ZONE;
	size_t top = 0; /* where the first existing ancestor starts */
	for (size_t off = 1u + name[0]; off < len; off += 1u + name[off]) {
		struct dns_node *up = lookup(idx, name + off, len - off);
		if (up) {
			zone = up->zone;
			top = off;
			break;
		}
		if (!name[off])
			break;
	}
	struct dns_node *made = NULL;
	*zonep = zone;
	*madep = NULL;
	if (zone != NO_ZONE) { /* the names between the new one and the node found */
		size_t offs[DNS_NAME_MAX / 2], k = 0;
		for (size_t o = 1u + name[0]; o < top; o += 1u + name[o])
			offs[k++] = o;
		while (k--) {
			struct dns_node *ent =
			    node_new(idx, name + offs[k], len - offs[k], zone, 0, NULL, 0);
			if (!ent) {
				node_drop(idx, made); /* those made for nothing */
				return -ENOMEM;
			}
			made = ent;
		}
	}
	*madep = made;
	return 0;
}

/* A new node for `name` with its first RR, and the empty non-terminals
 * above it. */
static struct dns_node *node_make(struct dns_index *idx, const uint8_t *name, size_t len, int b,
                                  const uint8_t *rr, size_t rrlen)
{
	uint16_t zone;
	struct dns_node *made, *n;
	if (ents_make(idx, name, len, &zone, &made))
		return NULL;
	if (!(n = node_new(idx, name, len, zone, b, rr, rrlen)))
		node_drop(idx, made);
	return n;
}

/* The IPv4 address of a reverse name d.c.b.a.in-addr.arpa (decimal
 * labels as an address is written: no leading zero, at most 255): 0, or
 * -1 for any other name. */
static int reverse_v4(const uint8_t *name, size_t len, uint32_t *addr)
{
	static const uint8_t arpa[] = "\7in-addr\4arpa";
	size_t off = 0;
	uint32_t a = 0;
	for (int octet = 0; octet < 4; octet++) {
		size_t n = off < len ? name[off] : 0;
		unsigned v = 0;
		if (n < 1 || n > 3 || off + 1 + n > len || (n > 1 && name[off + 1] == '0'))
			return -1;
		for (size_t i = 1; i <= n; i++) {
			if (name[off + i] < '0' || name[off + i] > '9')
				return -1;
			v = v * 10 + (unsigned)(name[off + i] - '0');
		}
		if (v > 255)
			return -1;
		a |= (uint32_t)v << (8 * octet);
		off += 1 + n;
	}
	if (len - off != sizeof(arpa) || memcmp(name + off, arpa, sizeof(arpa)))
		return -1;
	*addr = a;
	return 0;
}

/* The PTRs of the table at addr, as a block. */
static struct dns_block ptr_block(const struct dns_index *idx, uint32_t addr)
{
	struct dns_block b = {.type = DNS_T_PTR, .table = idx, .addr = addr};
	size_t at = 0, rdlen;
	const uint8_t *rdata;
	while (idx->ptr.count && dns_block_next(&b, &at, &rdata, &rdlen)) {
		b.len += (uint32_t)(RR_STORED + rdlen);
		b.count++;
	}
	return b;
}

/* The PTR name -> target in the table, when name is the reverse name of
 * an IPv4 address that target has: 0 or 1 when it is there now (or
 * already was), -1 when it does not go in the table. */
static int ptr_put(struct dns_index *idx, const uint8_t *name, size_t len, const uint8_t *rdata,
                   size_t rdlen)
{
	uint32_t addr;
	uint8_t a4[4];
	struct dns_node *target = rdlen && rdlen <= DNS_NAME_MAX ? lookup(idx, rdata, rdlen) : NULL;
	if (!target || reverse_v4(name, len, &addr))
		return -1;
	put32(a4, addr);
	struct dns_block as = dns_node_block(target, DNS_B_A);
	if (block_find(&as, a4, 4) < 0)
		return -1;
	struct dns_node *n = lookup(idx, name, len); /* a node there too: its PTRs count */
	struct dns_block own = n ? dns_node_block(n, DNS_B_PTR) : (struct dns_block){0};
	if (ptr_find(&idx->ptr, addr, target) >= 0 || block_find(&own, rdata, rdlen) >= 0)
		return 1; /* a duplicate */
	struct dns_block b = ptr_block(idx, addr);
	size_t count = (size_t)b.count + own.count + 1;
	if (count > DNS_RR_PER_NAME ||
	    b.len + own.len + RR_STORED + rdlen + RR_ADDED * count > UINT16_MAX)
		return -E2BIG;
	if (!b.count) { /* the name comes: its parent gains a child, made if need be */
		uint16_t zone;
		struct dns_node *made, *parent;
		if (ents_make(idx, name, len, &zone, &made))
			return -ENOMEM;
		if (ptr_insert(&idx->ptr, addr, target)) {
			node_drop(idx, made);
			return -ENOMEM;
		}
		if ((parent = parent_of(idx, name, len)))
			parent->children++;
		return 1;
	}
	return ptr_insert(&idx->ptr, addr, target) ? -ENOMEM : 1;
}

/* Takes the entry at slot s (reverse name `name`) out; the name goes with
 * the last PTR of its address. */
static void ptr_take(struct dns_index *idx, size_t s, const uint8_t *name, size_t len)
{
	uint32_t addr = idx->ptr.addr[s];
	ptr_remove(&idx->ptr, s);
	if (ptr_block(idx, addr).count)
		return;
	struct dns_node *parent = parent_of(idx, name, len);
	if (parent) {
		parent->children--;
		node_drop(idx, parent);
	}
}

/* The RR as a node's (not in the address table). */
static int node_put(struct dns_index *idx, const uint8_t *name, size_t len, uint16_t type,
                    const uint8_t *rdata, size_t rdlen)
{
	int b = block_of(type);
	struct dns_node *n = lookup(idx, name, len);
	if (!n) {
		uint8_t rr[RR_MAX];
		size_t rrlen = rr_store(rr, rdata, rdlen);
		if (!rrlen)
			return -EINVAL;
		return node_make(idx, name, len, b, rr, rrlen) ? 0 : -ENOMEM;
	}
	if ((n->flags & DNS_NODE_APEX) && idx->frozen)
		return -EBUSY; /* other nodes point to it */
	return rr_add(idx, n, b, rdata, rdlen);
}

static int index_put(struct dns_index *idx, const uint8_t *name, size_t len, uint16_t type,
                     const uint8_t *rdata, size_t rdlen)
{
	if (block_of(type) < 0 || !len || len > DNS_NAME_MAX)
		return -EINVAL;
	if (type == DNS_T_PTR) {
		int rc = ptr_put(idx, name, len, rdata, rdlen);
		if (rc >= 0)
			return 0;
		if (rc != -1)
			return rc;
	}
	return node_put(idx, name, len, type, rdata, rdlen);
}

int dns_index_add(struct dns_index *idx, const uint8_t *name, size_t len, uint16_t type,
                  const uint8_t *rdata, size_t rdlen)
{
	if (idx->frozen)
		return -EBUSY;
	return index_put(idx, name, len, type, rdata, rdlen);
}

int dns_index_freeze(struct dns_index *idx)
{
	idx->frozen = 1;
	return 0;
}

int dns_index_set(struct dns_index *idx, const uint8_t *name, size_t len, uint16_t type,
                  const uint8_t *rdata, size_t rdlen, int present)
{
	if (present)
		return index_put(idx, name, len, type, rdata, rdlen);
	int b = block_of(type);
	if (b < 0 || !len || len > DNS_NAME_MAX)
		return -EINVAL;
	uint32_t addr;
	if (type == DNS_T_PTR && rdlen <= DNS_NAME_MAX && !reverse_v4(name, len, &addr)) {
		const struct dns_node *target = lookup(idx, rdata, rdlen);
		long s = target ? ptr_find(&idx->ptr, addr, target) : -1;
		if (s >= 0) {
			ptr_take(idx, (size_t)s, name, len);
			return 0;
		}
	}
	struct dns_node *n = lookup(idx, name, len);
	struct dns_block block = n ? dns_node_block(n, b) : (struct dns_block){0};
	long at = n ? block_find(&block, rdata, rdlen) : -1;
	if (at < 0)
		return 0;
	if (n->flags & DNS_NODE_APEX)
		return -EBUSY;
	if (type == DNS_T_A && rdlen == 4 && ptr_find(&idx->ptr, get32(rdata), n) >= 0) {
		/* the name loses the address its PTR was kept by: the PTR
		 * stays, as a node of its own */
		uint8_t rev[DNS_NAME_MAX];
		size_t rlen;
		dns_reverse_name(AF_INET, rdata, rev, &rlen);
		int rc = node_put(idx, rev, rlen, DNS_T_PTR, n->name, n->len);
		if (rc)
			return rc;
		ptr_take(idx, (size_t)ptr_find(&idx->ptr, get32(rdata), n), rev, rlen);
		n = lookup(idx, name, len);
	}
	int rc = node_edit(idx, &n, b, (size_t)at, RR_STORED + rdlen, NULL, 0, -1);
	if (rc)
		return rc;
	node_drop(idx, n);
	return 0;
}

/* Skips a wire name (uncompressed) at p. */
static size_t name_skip(const uint8_t *p)
{
	size_t off = 0;
	while (p[off])
		off += 1u + p[off];
	return off + 1;
}

void dns_index_set_serial(struct dns_index *idx, uint32_t serial)
{
	idx->serial = serial;
	for (size_t i = 0; i < idx->napex; i++) {
		uint8_t *rdata =
		    (uint8_t *)dns_node_block(idx->apex[i], DNS_B_SOA).wire + RR_STORED;
		size_t mlen = name_skip(rdata);
		put32(rdata + mlen + name_skip(rdata + mlen), serial);
	}
}

const struct dns_node *dns_index_find(const struct dns_index *idx, const uint8_t *name, size_t len,
                                      uint32_t hash)
{
	return slot_of(idx, name, len, hash)->node;
}

void dns_index_prefetch(const struct dns_index *idx, uint32_t hash, int node)
{
	const struct slot *sl = &idx->slots[hash & (idx->nslots - 1)];
	if (!node) {
		__builtin_prefetch(sl);
		return;
	}
	if (sl->node) { /* most names are in their home slot */
		__builtin_prefetch(sl->node);
		__builtin_prefetch((const uint8_t *)sl->node + 64);
	}
}

const struct dns_node *dns_node_zone(const struct dns_index *idx, const struct dns_node *n)
{
	return n->zone == NO_ZONE ? NULL : idx->apex[n->zone];
}

const struct dns_node *dns_index_zone_of(const struct dns_index *idx, const uint8_t *name,
                                         size_t len)
{
	for (size_t off = 0; off < len && name[off]; off += 1u + name[off]) {
		const struct dns_node *n =
		    dns_index_find(idx, name + off, len - off, dns_hash(name + off, len - off));
		if (n && n->zone != NO_ZONE)
			return idx->apex[n->zone];
	}
	return NULL;
}

void dns_index_foreach(const struct dns_index *idx, void (*fn)(const struct dns_node *n, void *arg),
                       void *arg)
{
	for (size_t s = 0; s < idx->nslots; s++)
		if (idx->slots[s].node)
			fn(idx->slots[s].node, arg);
}

struct dns_block dns_index_ptrs(const struct dns_index *idx, const uint8_t *name, size_t len)
{
	uint32_t addr;
	if (!idx->ptr.count || reverse_v4(name, len, &addr))
		return (struct dns_block){.type = DNS_T_PTR};
	return ptr_block(idx, addr);
}

void dns_index_foreach_ptr(const struct dns_index *idx,
                           void (*fn)(uint32_t addr, const struct dns_node *target, void *arg),
                           void *arg)
{
	for (size_t s = 0; s < idx->ptr.nslots; s++)
		if (idx->ptr.node[s])
			fn(idx->ptr.addr[s], idx->ptr.node[s], arg);
}
