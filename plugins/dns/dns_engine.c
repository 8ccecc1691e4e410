/* What a query gets: the answer from the index, NXDOMAIN with the SOA of
 * the zone, or "forward it". The same for both decoders and encoders. */
#include <string.h>

#include "dns.h"

static void add_block(struct dns_answer *a, const struct dns_node *n, int b)
{
	struct dns_block block = dns_node_block(n, b);
	if (block.count)
		a->blocks[a->nblocks++] = block;
}

static int block_slot(uint16_t qtype)
{
	switch (qtype) {
	case DNS_T_A:
		return DNS_B_A;
	case DNS_T_AAAA:
		return DNS_B_AAAA;
	case DNS_T_PTR:
		return DNS_B_PTR;
	case DNS_T_NS:
		return DNS_B_NS;
	case DNS_T_SOA:
		return DNS_B_SOA;
	}
	return -1;
}

void dns_resolve(const struct dns_view *v, const struct dns_query *q, struct dns_answer *a)
{
	memset(a, 0, sizeof(*a));
	a->ttl = dns_index_ttl(v->index);
	/* the zone lists every device: no transfers; and only class IN */
	if (q->qclass != DNS_C_IN || q->qtype == DNS_T_AXFR || q->qtype == DNS_T_IXFR) {
		a->rcode = DNS_R_REFUSED;
		return;
	}
	const struct dns_node *n =
	    v->index ? dns_index_find(v->index, q->qname, q->qname_len, q->qhash) : NULL;
	/* an IPv4 address's reverse name: its PTRs are in the address table */
	struct dns_block ptrs =
	    v->index ? dns_index_ptrs(v->index, q->qname, q->qname_len) : (struct dns_block){0};
	if (n || ptrs.count) {
		a->aa = 1;
		int slot = block_slot(q->qtype);
		for (int i = 0; i < DNS_B_COUNT; i++) {
			if (q->qtype != DNS_T_ANY && i != slot)
				continue;
			if (i == DNS_B_PTR && ptrs.count)
				a->blocks[a->nblocks++] = ptrs;
			if (n)
				add_block(a, n, i);
		}
		if (!a->nblocks) /* the name exists, not this type: NODATA */
			a->soa = n ? dns_node_zone(v->index, n)
			           : dns_index_zone_of(v->index, q->qname, q->qname_len);
		return;
	}
	const struct dns_node *zone =
	    v->index ? dns_index_zone_of(v->index, q->qname, q->qname_len) : NULL;
	if (zone) {
		a->aa = 1;
		a->rcode = DNS_R_NXDOMAIN;
		a->soa = zone;
	} else if (v->can_forward) {
		a->forward = 1;
	} else {
		a->rcode = DNS_R_REFUSED;
	}
}

enum dns_verdict dns_serve_query(const struct dns_view *v, const struct dns_query *q, int tcp,
                                 uint8_t *out, size_t cap, size_t *outlen)
{
	struct dns_answer a;
	if (q->edns && q->edns_version) {
		memset(&a, 0, sizeof(a));
		a.rcode = DNS_R_BADVERS;
	} else {
		dns_resolve(v, q, &a);
		if (a.forward)
			return DNS_FORWARD;
	}
	size_t limit = tcp ? DNS_TCP_MAX : dns_udp_limit(q);
	*outlen = dns_encode(q, &a, v->can_forward, out, limit < cap ? limit : cap);
	return DNS_REPLY;
}

enum dns_verdict dns_serve(const struct dns_view *v, const uint8_t *pkt, size_t len, int tcp,
                           uint8_t *out, size_t cap, size_t *outlen)
{
	struct dns_query q;
	if (!v->fast_path || dns_query_parse(pkt, len, &q))
		return dns_serve_ldns(v, pkt, len, tcp, out, cap, outlen);
	return dns_serve_query(v, &q, tcp, out, cap, outlen);
}
