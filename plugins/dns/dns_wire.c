/* The hot path by hand: the decoder of the common query and the encoder of
 * its answer. ldns costs about 2 us a query (parse, build, write), which
 * alone is more than the whole budget of the goal (docs/dns.md has the
 * figures), so the one shape every stub resolver sends is read here and
 * everything else goes to ldns (dns_ldns.c). tests/dns/fuzz_dns_query.c
 * checks both paths answer alike. */
#include <string.h>

#include "dns.h"

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

int dns_query_parse(const uint8_t *pkt, size_t len, struct dns_query *q)
{
	size_t off = DNS_HEADER, n = 0;
	uint32_t h = 2166136261u;

	if (len < DNS_HEADER + 5 || len > DNS_TCP_MAX)
		return -1;
	/* a query (QR 0) of opcode QUERY with exactly one question, and at
	 * most one additional record (the OPT) */
	if ((pkt[2] & 0xf8) || get16(pkt + 4) != 1 || get16(pkt + 6) || get16(pkt + 8) ||
	    get16(pkt + 10) > 1)
		return -1;
	for (;;) {
		uint8_t l = pkt[off];
		/* room for this label, the root label (unless this is it), type
		 * and class; 63 at most: no compression pointers */
		size_t need = off + 1u + l + (l ? 1u : 0u) + 4u;
		if (l > DNS_LABEL_MAX || need > len || n + 1u + l + (l ? 1u : 0u) > DNS_NAME_MAX)
			return -1;
		q->qname[n++] = l;
		h = (h ^ l) * 16777619u;
		for (size_t i = 1; i <= l; i++) {
			uint8_t c = pkt[off + i];
			if (c >= 'A' && c <= 'Z')
				c = (uint8_t)(c + 32);
			q->qname[n++] = c;
			h = (h ^ c) * 16777619u;
		}
		off += 1u + l;
		if (!l)
			break;
	}
	q->qname_len = (uint8_t)n;
	q->qhash = h;
	q->qtype = get16(pkt + off);
	q->qclass = get16(pkt + off + 2);
	q->question = pkt + DNS_HEADER;
	q->question_len = off + 4 - DNS_HEADER;
	off += 4;
	q->id = get16(pkt);
	q->rd = pkt[2] & 0x01;
	q->cd = (pkt[3] & 0x10) ? 1 : 0;
	q->edns = q->edns_version = q->edns_do = 0;
	q->edns_size = 0;
	if (!get16(pkt + 10))
		return off == len ? 0 : -1;
	/* the OPT: root owner, type 41, class = payload size, TTL = extended
	 * rcode, version, DO and zero bits; its options are not read */
	if (off + 11 > len || pkt[off] || get16(pkt + off + 1) != DNS_T_OPT ||
	    off + 11 + get16(pkt + off + 9) != len)
		return -1;
	q->edns = 1;
	q->edns_size = get16(pkt + off + 3);
	q->edns_version = pkt[off + 6];
	q->edns_do = pkt[off + 7] >> 7;
	return 0;
}

size_t dns_encode(const struct dns_query *q, const struct dns_answer *a, int ra, uint8_t *out,
                  size_t limit)
{
	size_t body = 0, base = DNS_HEADER + q->question_len + (q->edns ? 11 : 0);
	uint16_t ancount = 0;
	for (int i = 0; i < a->nblocks; i++) {
		body += dns_block_wire_len(&a->blocks[i]);
		ancount = (uint16_t)(ancount + a->blocks[i].count);
	}
	struct dns_block soa = {0};
	if (a->soa)
		soa = dns_node_block(a->soa, DNS_B_SOA);
	body += dns_block_wire_len(&soa);
	int tc = base + body > limit;

	put16(out, q->id);
	out[2] = (uint8_t)(0x80 | (a->aa ? 0x04 : 0) | (tc ? 0x02 : 0) | q->rd);
	out[3] = (uint8_t)((ra ? 0x80 : 0) | (q->cd ? 0x10 : 0) | (a->rcode & 0x0f));
	put16(out + 4, 1);
	put16(out + 6, tc ? 0 : ancount);
	put16(out + 8, tc || !a->soa ? 0 : 1);
	put16(out + 10, q->edns ? 1 : 0);
	memcpy(out + DNS_HEADER, q->question, q->question_len);
	size_t n = DNS_HEADER + q->question_len;
	if (!tc) {
		for (int i = 0; i < a->nblocks; i++)
			n += dns_block_write(&a->blocks[i], a->ttl, out + n);
		if (a->soa) {
			size_t len = dns_block_write(&soa, a->ttl, out + n);
			/* owner: the apex, which ends the question's name */
			put16(out + n,
			      (uint16_t)(0xc000 | (DNS_HEADER + q->qname_len - a->soa->len)));
			n += len;
		}
	}
	if (q->edns) {
		out[n] = 0;
		put16(out + n + 1, DNS_T_OPT);
		put16(out + n + 3, DNS_UDP_PAYLOAD);
		out[n + 5] = (uint8_t)(a->rcode >> 4);
		out[n + 6] = 0; /* version */
		out[n + 7] = (uint8_t)(q->edns_do << 7);
		out[n + 8] = 0;
		put16(out + n + 9, 0);
		n += 11;
	}
	return n;
}
