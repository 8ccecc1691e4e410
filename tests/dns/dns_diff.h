/* The two ways a query is answered — the hand-written decoder and encoder,
 * and ldns — must say the same thing. dns_diff() runs both on one packet
 * and compares the responses as ldns reads them (not byte for byte: ldns
 * compresses names the hand-written encoder leaves whole). Used by the
 * unit tests and by fuzz_dns_query. */
#ifndef DNS_DIFF_H
#define DNS_DIFF_H

#include <stdio.h>
#include <string.h>

#include <ldns/ldns.h>

#include "dns.h"

static inline int dns_diff_lists(ldns_rr_list *a, ldns_rr_list *b)
{
	size_t n = a ? ldns_rr_list_rr_count(a) : 0;
	if (n != (b ? ldns_rr_list_rr_count(b) : 0))
		return 1;
	for (size_t i = 0; i < n; i++) { /* in order, owner case included */
		ldns_rr *x = ldns_rr_list_rr(a, i), *y = ldns_rr_list_rr(b, i);
		if (ldns_rr_compare(x, y) || ldns_rr_ttl(x) != ldns_rr_ttl(y) ||
		    ldns_rdf_compare(ldns_rr_owner(x), ldns_rr_owner(y)) ||
		    memcmp(ldns_rdf_data(ldns_rr_owner(x)), ldns_rdf_data(ldns_rr_owner(y)),
		           ldns_rdf_size(ldns_rr_owner(x))))
			return 1;
	}
	return 0;
}

/* 0 when both paths agree on `pkt` (or the hand-written decoder leaves it
 * to ldns anyway), else 1 with the reason in why. */
static inline int dns_diff(const struct dns_view *v, const uint8_t *pkt, size_t len, int tcp,
                           char *why, size_t whylen)
{
	static uint8_t a[DNS_TCP_MAX], b[DNS_TCP_MAX];
	struct dns_query q;
	struct dns_view fast = *v;
	size_t alen = 0, blen = 0;
	fast.fast_path = 1;
	if (dns_query_parse(pkt, len, &q))
		return 0;
	enum dns_verdict va = dns_serve(&fast, pkt, len, tcp, a, sizeof(a), &alen);
	enum dns_verdict vb = dns_serve_ldns(v, pkt, len, tcp, b, sizeof(b), &blen);
	if (va != vb) {
		snprintf(why, whylen, "verdicts differ: %d (fast) vs %d (ldns)", va, vb);
		return 1;
	}
	if (va != DNS_REPLY)
		return 0;
	ldns_pkt *x = NULL, *y = NULL;
	int bad = 1;
	size_t limit = tcp ? DNS_TCP_MAX : dns_udp_limit(&q);
	if (alen > limit || blen > limit)
		snprintf(why, whylen, "over the limit: %zu/%zu > %zu", alen, blen, limit);
	else if (ldns_wire2pkt(&x, a, alen) != LDNS_STATUS_OK)
		snprintf(why, whylen, "the fast path's response does not parse");
	else if (ldns_wire2pkt(&y, b, blen) != LDNS_STATUS_OK)
		snprintf(why, whylen, "ldns's response does not parse");
	else if (ldns_pkt_tc(x) != ldns_pkt_tc(y)) {
		/* sizes differ by compression: only near the limit may one fit */
		size_t whole = ldns_pkt_tc(x) ? blen : alen;
		bad = whole + 600 < limit;
		snprintf(why, whylen, "TC differs with %zu of %zu bytes", whole, limit);
	} else if (ldns_pkt_id(x) != ldns_pkt_id(y) || ldns_pkt_qr(x) != ldns_pkt_qr(y) ||
	           ldns_pkt_get_opcode(x) != ldns_pkt_get_opcode(y) ||
	           ldns_pkt_aa(x) != ldns_pkt_aa(y) || ldns_pkt_rd(x) != ldns_pkt_rd(y) ||
	           ldns_pkt_ra(x) != ldns_pkt_ra(y) || ldns_pkt_cd(x) != ldns_pkt_cd(y) ||
	           ldns_pkt_ad(x) != ldns_pkt_ad(y) ||
	           ldns_pkt_get_rcode(x) != ldns_pkt_get_rcode(y))
		snprintf(why, whylen, "headers differ");
	else if (ldns_pkt_edns(x) != ldns_pkt_edns(y) ||
	         ldns_pkt_edns_udp_size(x) != ldns_pkt_edns_udp_size(y) ||
	         ldns_pkt_edns_extended_rcode(x) != ldns_pkt_edns_extended_rcode(y) ||
	         ldns_pkt_edns_version(x) != ldns_pkt_edns_version(y) ||
	         ldns_pkt_edns_do(x) != ldns_pkt_edns_do(y))
		snprintf(why, whylen, "EDNS differs");
	else if (dns_diff_lists(ldns_pkt_question(x), ldns_pkt_question(y)))
		snprintf(why, whylen, "questions differ");
	else if (dns_diff_lists(ldns_pkt_answer(x), ldns_pkt_answer(y)))
		snprintf(why, whylen, "answers differ");
	else if (dns_diff_lists(ldns_pkt_authority(x), ldns_pkt_authority(y)))
		snprintf(why, whylen, "authorities differ");
	else if (dns_diff_lists(ldns_pkt_additional(x), ldns_pkt_additional(y)))
		snprintf(why, whylen, "additionals differ");
	else
		bad = 0;
	ldns_pkt_free(x);
	ldns_pkt_free(y);
	return bad;
}

/* An index of every kind of name, for the tests and the fuzz target. */
static inline struct dns_index *dns_diff_index(void)
{
	struct dns_index *idx = dns_index_new(30, 2024010101);
	uint8_t zone[DNS_NAME_MAX], rz[DNS_NAME_MAX], name[DNS_NAME_MAX], rev[DNS_NAME_MAX];
	size_t zlen, rzlen, nlen, rlen;
	dns_name_from_text("corp.internal", zone, &zlen);
	dns_name_from_text("0.0.10.in-addr.arpa", rz, &rzlen);
	dns_index_zone(idx, zone, zlen, zone, zlen);
	dns_index_zone(idx, rz, rzlen, zone, zlen);
	static const char *const hosts[] = {"alice-laptop.corp.internal", "gitlab.corp.internal",
	                                    "db.prod.corp.internal", "big.corp.internal"};
	for (int h = 0; h < 4; h++) {
		dns_name_from_text(hosts[h], name, &nlen);
		int count = h == 3 ? 120 : 1;
		for (int i = 0; i < count; i++) {
			uint8_t a4[4] = {10, 0, (uint8_t)h, (uint8_t)(i + 2)};
			uint8_t a6[16] = {0xfd, 0, [14] = (uint8_t)h, [15] = (uint8_t)(i + 2)};
			dns_index_add(idx, name, nlen, DNS_T_A, a4, 4);
			if (h == 1)
				dns_index_add(idx, name, nlen, DNS_T_AAAA, a6, 16);
			dns_reverse_name(AF_INET, a4, rev, &rlen);
			dns_index_add(idx, rev, rlen, DNS_T_PTR, name, nlen);
		}
	}
	dns_index_freeze(idx);
	return idx;
}

#endif
