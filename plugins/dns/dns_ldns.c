/* The wire format through ldns: every query the hand-written decoder does
 * not take (and every query when fast_path is off), malformed ones
 * included, the SERVFAIL of a failed forward, and the check of upstream
 * replies. */
#include <errno.h>
#include <string.h>

#include <ldns/ldns.h>

#include "dns.h"

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* FORMERR and NOTIMP: the header alone. */
static size_t header_reply(const uint8_t *pkt, int rcode, int ra, uint8_t *out)
{
	memset(out, 0, DNS_HEADER);
	out[0] = pkt[0];
	out[1] = pkt[1];
	out[2] = (uint8_t)(0x80 | (pkt[2] & 0x79)); /* QR, the opcode and RD echoed */
	out[3] = (uint8_t)((ra ? 0x80 : 0) | rcode);
	return DNS_HEADER;
}

/* One RR of an index block as an ldns RR of the block's type with
 * `owner` (taken). */
static ldns_rr *block_rr(const struct dns_block *b, const uint8_t *rdata, size_t rdlen,
                         uint32_t ttl, ldns_rdf *owner)
{
	uint8_t w[2 + 2 * DNS_NAME_MAX + 20]; /* rdlength and rdata (an SOA the largest) */
	size_t pos = 0;
	ldns_rr *rr = ldns_rr_new();
	w[0] = (uint8_t)(rdlen >> 8);
	w[1] = (uint8_t)rdlen;
	memcpy(w + 2, rdata, rdlen);
	if (!rr) {
		ldns_rdf_deep_free(owner);
		return NULL;
	}
	ldns_rr_set_owner(rr, owner);
	ldns_rr_set_type(rr, b->type);
	ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
	ldns_rr_set_ttl(rr, ttl);
	if (ldns_wire2rdf(rr, w, 2 + rdlen, &pos) != LDNS_STATUS_OK) {
		ldns_rr_free(rr);
		return NULL;
	}
	return rr;
}

static int push_block(ldns_pkt *r, ldns_pkt_section section, const struct dns_block *b,
                      uint32_t ttl, const ldns_rdf *owner)
{
	size_t at = 0, rdlen;
	const uint8_t *rdata;
	while (dns_block_next(b, &at, &rdata, &rdlen)) {
		ldns_rr *rr = block_rr(b, rdata, rdlen, ttl, ldns_rdf_clone(owner));
		if (!rr)
			return -1;
		ldns_pkt_push_rr(r, section, rr);
	}
	return 0;
}

static ldns_pkt *build(const struct dns_query *q, const struct dns_answer *a, int ra,
                       const ldns_rr *question, int records)
{
	ldns_pkt *r = ldns_pkt_new();
	if (!r)
		return NULL;
	ldns_pkt_set_id(r, q->id);
	ldns_pkt_set_qr(r, true);
	ldns_pkt_set_opcode(r, LDNS_PACKET_QUERY);
	ldns_pkt_set_aa(r, a->aa);
	ldns_pkt_set_tc(r, !records);
	ldns_pkt_set_rd(r, q->rd);
	ldns_pkt_set_ra(r, ra);
	ldns_pkt_set_cd(r, q->cd);
	ldns_pkt_set_rcode(r, a->rcode & 0x0f);
	ldns_pkt_push_rr(r, LDNS_SECTION_QUESTION, ldns_rr_clone(question));
	const ldns_rdf *qname = ldns_rr_owner(question);
	for (int i = 0; records && i < a->nblocks; i++)
		if (push_block(r, LDNS_SECTION_ANSWER, &a->blocks[i], a->ttl, qname))
			goto fail;
	if (records && a->soa) {
		/* the apex ends the question's name: keep the client's case */
		size_t skip = (size_t)(dns_name_labels(q->qname, q->qname_len) -
		                       dns_name_labels(a->soa->name, a->soa->len));
		ldns_rdf *apex = ldns_dname_clone_from(qname, (uint16_t)skip);
		if (!apex)
			goto fail;
		struct dns_block soa = dns_node_block(a->soa, DNS_B_SOA);
		if (push_block(r, LDNS_SECTION_AUTHORITY, &soa, a->ttl, apex)) {
			ldns_rdf_deep_free(apex);
			goto fail;
		}
		ldns_rdf_deep_free(apex);
	}
	if (q->edns) {
		ldns_pkt_set_edns_udp_size(r, DNS_UDP_PAYLOAD);
		ldns_pkt_set_edns_extended_rcode(r, (uint8_t)(a->rcode >> 4));
		ldns_pkt_set_edns_version(r, 0);
		ldns_pkt_set_edns_do(r, q->edns_do);
	}
	return r;
fail:
	ldns_pkt_free(r);
	return NULL;
}

/* The response within `limit` (TC and no records when it does not fit). */
static size_t encode(const struct dns_query *q, const struct dns_answer *a, int ra,
                     const ldns_rr *question, size_t limit, uint8_t *out, size_t cap)
{
	size_t n = 0;
	for (int records = 1; records >= 0; records--) {
		ldns_pkt *r = build(q, a, ra, question, records);
		uint8_t *wire = NULL;
		size_t size = 0;
		if (!r)
			return 0;
		ldns_status st = ldns_pkt2wire(&wire, r, &size);
		ldns_pkt_free(r);
		if (st != LDNS_STATUS_OK) {
			free(wire);
			return 0;
		}
		if (size <= limit && size <= cap) {
			memcpy(out, wire, size);
			n = size;
		}
		free(wire);
		if (n)
			break;
	}
	return n;
}

/* The query as struct dns_query; 0 or the rcode of the refusal. */
static int decode(const uint8_t *pkt, ldns_pkt *p, struct dns_query *q)
{
	if (((pkt[2] >> 3) & 0x0f) != LDNS_PACKET_QUERY)
		return DNS_R_NOTIMP;
	/* ldns keeps the last of several OPT records: that is a FORMERR */
	if (ldns_pkt_qdcount(p) != 1 || get16(pkt + 10) > ldns_pkt_arcount(p) + 1)
		return DNS_R_FORMERR;
	const ldns_rr *question = ldns_rr_list_rr(ldns_pkt_question(p), 0);
	const ldns_rdf *owner = ldns_rr_owner(question);
	size_t n = ldns_rdf_size(owner);
	const uint8_t *name = ldns_rdf_data(owner);
	if (!n || n > DNS_NAME_MAX)
		return DNS_R_FORMERR;
	memset(q, 0, sizeof(*q));
	for (size_t i = 0; i < n; i++)
		q->qname[i] = (uint8_t)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
	q->qname_len = (uint8_t)n;
	q->qhash = dns_hash(q->qname, n);
	q->qtype = ldns_rr_get_type(question);
	q->qclass = ldns_rr_get_class(question);
	q->id = get16(pkt);
	q->rd = pkt[2] & 0x01;
	q->cd = (pkt[3] & 0x10) ? 1 : 0;
	q->edns = ldns_pkt_edns(p);
	if (q->edns) {
		q->edns_size = ldns_pkt_edns_udp_size(p);
		q->edns_version = ldns_pkt_edns_version(p);
		q->edns_do = ldns_pkt_edns_do(p);
	}
	return 0;
}

enum dns_verdict dns_serve_ldns(const struct dns_view *v, const uint8_t *pkt, size_t len, int tcp,
                                uint8_t *out, size_t cap, size_t *outlen)
{
	struct dns_query q;
	struct dns_answer a;
	ldns_pkt *p = NULL;

	/* too short to answer, or a response: never reply to a reply */
	if (len < DNS_HEADER || (pkt[2] & 0x80))
		return DNS_DROP;
	if (ldns_wire2pkt(&p, pkt, len) != LDNS_STATUS_OK) {
		*outlen = header_reply(pkt, DNS_R_FORMERR, v->can_forward, out);
		return DNS_REPLY;
	}
	int rcode = decode(pkt, p, &q);
	if (rcode) {
		ldns_pkt_free(p);
		*outlen = header_reply(pkt, rcode, v->can_forward, out);
		return DNS_REPLY;
	}
	if (q.edns && q.edns_version) {
		memset(&a, 0, sizeof(a));
		a.rcode = DNS_R_BADVERS;
	} else {
		dns_resolve(v, &q, &a);
		if (a.forward) {
			ldns_pkt_free(p);
			return DNS_FORWARD;
		}
	}
	size_t limit = tcp ? DNS_TCP_MAX : dns_udp_limit(&q);
	*outlen = encode(&q, &a, v->can_forward, ldns_rr_list_rr(ldns_pkt_question(p), 0), limit,
	                 out, cap);
	ldns_pkt_free(p);
	return *outlen ? DNS_REPLY : DNS_DROP;
}

size_t dns_error_reply(const uint8_t *query, size_t len, int rcode, int ra, uint8_t *out,
                       size_t cap)
{
	struct dns_query q;
	struct dns_answer a = {.rcode = (uint8_t)rcode};
	ldns_pkt *p = NULL;
	size_t n = 0;
	if (len < DNS_HEADER || ldns_wire2pkt(&p, query, len) != LDNS_STATUS_OK)
		return 0;
	if (!decode(query, p, &q))
		n = encode(&q, &a, ra, ldns_rr_list_rr(ldns_pkt_question(p), 0),
		           q.edns ? dns_udp_limit(&q) : 512, out, cap);
	ldns_pkt_free(p);
	return n;
}

static int question_of(const ldns_pkt *p, struct dns_question *q)
{
	if (ldns_pkt_qdcount(p) != 1)
		return -EBADMSG;
	const ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_question(p), 0);
	const ldns_rdf *owner = ldns_rr_owner(rr);
	size_t n = ldns_rdf_size(owner);
	if (!n || n > DNS_NAME_MAX)
		return -EBADMSG;
	const uint8_t *name = ldns_rdf_data(owner);
	for (size_t i = 0; i < n; i++)
		q->name[i] = (uint8_t)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
	q->len = n;
	q->type = ldns_rr_get_type(rr);
	q->qclass = ldns_rr_get_class(rr);
	return 0;
}

int dns_query_question(const uint8_t *pkt, size_t len, struct dns_question *q)
{
	ldns_pkt *p = NULL;
	if (ldns_wire2pkt(&p, pkt, len) != LDNS_STATUS_OK)
		return -EBADMSG;
	int rc = question_of(p, q);
	ldns_pkt_free(p);
	return rc;
}

int dns_reply_check(const uint8_t *pkt, size_t len, uint16_t id, const struct dns_question *q)
{
	struct dns_question got;
	ldns_pkt *p = NULL;
	if (len < DNS_HEADER || get16(pkt) != id || !(pkt[2] & 0x80))
		return -EBADMSG;
	if (ldns_wire2pkt(&p, pkt, len) != LDNS_STATUS_OK)
		return -EBADMSG;
	int rc = question_of(p, &got);
	if (!rc && (got.len != q->len || memcmp(got.name, q->name, q->len) || got.type != q->type ||
	            got.qclass != q->qclass))
		rc = -EBADMSG;
	if (!rc)
		rc = ldns_pkt_get_rcode(p);
	ldns_pkt_free(p);
	return rc;
}

size_t dns_truncate_reply(const uint8_t *reply, size_t len, uint8_t *out, size_t cap)
{
	ldns_pkt *p = NULL;
	uint8_t *wire = NULL;
	size_t n = 0;
	if (ldns_wire2pkt(&p, reply, len) != LDNS_STATUS_OK)
		return 0;
	ldns_rr_list_deep_free(ldns_pkt_answer(p));
	ldns_rr_list_deep_free(ldns_pkt_authority(p));
	ldns_rr_list_deep_free(ldns_pkt_additional(p));
	ldns_pkt_set_answer(p, ldns_rr_list_new());
	ldns_pkt_set_authority(p, ldns_rr_list_new());
	ldns_pkt_set_additional(p, ldns_rr_list_new());
	ldns_pkt_set_ancount(p, 0);
	ldns_pkt_set_nscount(p, 0);
	ldns_pkt_set_arcount(p, 0);
	ldns_pkt_set_tc(p, true);
	if (ldns_pkt_edns(p))
		ldns_pkt_set_edns_udp_size(p, DNS_UDP_PAYLOAD);
	if (ldns_pkt2wire(&wire, p, &n) != LDNS_STATUS_OK || n > cap)
		n = 0;
	else
		memcpy(out, wire, n);
	free(wire);
	ldns_pkt_free(p);
	return n;
}
