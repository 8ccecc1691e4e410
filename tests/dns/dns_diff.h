/* The two ways a query is answered — the hand-written decoder and encoder,
 * and ldns — must say the same thing. dns_diff() runs both on one packet
 * and compares the responses as ldns reads them (not byte for byte: ldns
 * compresses names the hand-written encoder leaves whole). Both share one
 * resolver (dns_resolve), so agreeing is not being right: each response is
 * also checked against an oracle, dns_oracle(), which knows the index's
 * content from the table it was built from (dns_diff_hosts), not from the
 * index. Used by the unit tests and by fuzz_dns_query. */
#ifndef DNS_DIFF_H
#define DNS_DIFF_H

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "dns.h"

/* What dns_diff_index() holds, as data: host h has dns_diff_count(h) IPv4
 * addresses 10.0.h.(i+2), each with its PTR; host 1 also has an IPv6
 * address fd00::h:(i+2) each. */
static const char *const dns_diff_hosts[] = {"alice-laptop.corp.internal", "gitlab.corp.internal",
                                             "db.prod.corp.internal", "big.corp.internal"};
#define DNS_DIFF_HOSTS 4
#define DNS_DIFF_TTL   30

static inline int dns_diff_count(int h)
{
	return h == 3 ? 120 : 1;
}

static inline void dns_diff_addrs(int h, int i, uint8_t a4[4], uint8_t a6[16])
{
	const uint8_t v4[4] = {10, 0, (uint8_t)h, (uint8_t)(i + 2)};
	const uint8_t v6[16] = {0xfd, 0, [14] = (uint8_t)h, [15] = (uint8_t)(i + 2)};
	memcpy(a4, v4, 4);
	memcpy(a6, v6, 16);
}

/* An index of every kind of name, for the tests and the fuzz target. */
static inline struct dns_index *dns_diff_index(void)
{
	struct dns_index *idx = dns_index_new(DNS_DIFF_TTL, 2024010101);
	uint8_t zone[DNS_NAME_MAX], rz[DNS_NAME_MAX], name[DNS_NAME_MAX], rev[DNS_NAME_MAX];
	size_t zlen, rzlen, nlen, rlen;
	dns_name_from_text("corp.internal", zone, &zlen);
	dns_name_from_text("0.0.10.in-addr.arpa", rz, &rzlen);
	dns_index_zone(idx, zone, zlen, zone, zlen);
	dns_index_zone(idx, rz, rzlen, zone, zlen);
	for (int h = 0; h < DNS_DIFF_HOSTS; h++) {
		dns_name_from_text(dns_diff_hosts[h], name, &nlen);
		for (int i = 0; i < dns_diff_count(h); i++) {
			uint8_t a4[4], a6[16];
			dns_diff_addrs(h, i, a4, a6);
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

/* ---- the oracle ---- */

/* Whether name (lower case, trailing dot) is suffix or under it. */
static inline int dns_oracle_under(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);
	return n == s ? !strcmp(name, suffix)
	              : n > s && name[n - s - 1] == '.' && !strcmp(name + n - s, suffix);
}

static inline void dns_oracle_add(ldns_rr_list *l, const char *text)
{
	ldns_rr *rr = NULL;
	if (ldns_rr_new_frm_str(&rr, text, 0, NULL, NULL) != LDNS_STATUS_OK) {
		fprintf(stderr, "oracle: bad record %s\n", text);
		abort();
	}
	ldns_rr_list_push_rr(l, rr);
}

/* The records of `type` at qname (lower case, trailing dot) that the table
 * says the index holds; *exists: the name exists (holds records of any type,
 * or is an ancestor of one that does: an empty non-terminal, a zone apex). */
static inline ldns_rr_list *dns_oracle_expect(const char *qname, ldns_rr_type type, int *exists)
{
	ldns_rr_list *l = ldns_rr_list_new();
	*exists = dns_oracle_under("corp.internal.", qname) ||
	          dns_oracle_under("0.0.10.in-addr.arpa.", qname);
	for (int h = 0; h < DNS_DIFF_HOSTS; h++)
		for (int i = 0; i < dns_diff_count(h); i++) {
			char host[DNS_NAME_MAX + 2], rev[64], text[600], a6text[64];
			uint8_t a4[4], a6[16];
			dns_diff_addrs(h, i, a4, a6);
			inet_ntop(AF_INET6, a6, a6text, sizeof(a6text));
			snprintf(host, sizeof(host), "%s.", dns_diff_hosts[h]);
			snprintf(rev, sizeof(rev), "%u.%u.%u.%u.in-addr.arpa.", a4[3], a4[2], a4[1],
			         a4[0]);
			*exists |= dns_oracle_under(host, qname) || dns_oracle_under(rev, qname);
			if (!strcmp(qname, host) && type == LDNS_RR_TYPE_A) {
				snprintf(text, sizeof(text), "%s %d IN A %u.%u.%u.%u", host,
				         DNS_DIFF_TTL, a4[0], a4[1], a4[2], a4[3]);
				dns_oracle_add(l, text);
			}
			if (!strcmp(qname, host) && type == LDNS_RR_TYPE_AAAA && h == 1) {
				snprintf(text, sizeof(text), "%s %d IN AAAA %s", host, DNS_DIFF_TTL,
				         a6text);
				dns_oracle_add(l, text);
			}
			if (!strcmp(qname, rev) && type == LDNS_RR_TYPE_PTR) {
				snprintf(text, sizeof(text), "%s %d IN PTR %s", rev, DNS_DIFF_TTL,
				         host);
				dns_oracle_add(l, text);
			}
		}
	return l;
}

static inline int dns_oracle_has(const ldns_rr_list *l, const ldns_rr *rr)
{
	for (size_t i = 0; i < ldns_rr_list_rr_count(l); i++)
		if (!ldns_rr_compare(ldns_rr_list_rr(l, i), rr) &&
		    ldns_rr_ttl(ldns_rr_list_rr(l, i)) == ldns_rr_ttl(rr))
			return 1;
	return 0;
}

/* 0 when the response to query is right by the table, else 1 with why.
 * Every address or PTR answered must be one the table has, at the name
 * asked; and for an A, AAAA or PTR question of class IN in one of the zones
 * (a whole response, not a FORMERR or an EDNS error), the answer is all of
 * the table's records there, NODATA for a name that exists without them,
 * NXDOMAIN for one that does not. */
static inline int dns_oracle(const uint8_t *query, size_t qlen, const uint8_t *resp, size_t rlen,
                             char *why, size_t whylen)
{
	ldns_pkt *q = NULL, *r = NULL;
	ldns_rr_list *expect = NULL;
	char *qname = NULL;
	int bad = 0, exists = 0;
	if (ldns_wire2pkt(&q, query, qlen) != LDNS_STATUS_OK ||
	    ldns_pkt_get_opcode(q) != LDNS_PACKET_QUERY || ldns_pkt_qdcount(q) != 1 ||
	    ldns_wire2pkt(&r, resp, rlen) != LDNS_STATUS_OK)
		goto out; /* dns_diff checks that a response parses */
	ldns_rr *question = ldns_rr_list_rr(ldns_pkt_question(q), 0);
	ldns_rdf *owner = ldns_rdf_clone(ldns_rr_owner(question));
	ldns_dname2canonical(owner);
	qname = ldns_rdf2str(owner);
	ldns_rdf_deep_free(owner);
	ldns_rr_type type = ldns_rr_get_type(question);
	expect = dns_oracle_expect(qname, type, &exists);
	ldns_rr_list *answer = ldns_pkt_answer(r);
	/* what the table has at qname of each type that can be answered */
	static const ldns_rr_type kinds[] = {LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA, LDNS_RR_TYPE_PTR};
	ldns_rr_list *table[3];
	for (int k = 0; k < 3; k++)
		table[k] = dns_oracle_expect(qname, kinds[k], &exists);
	for (size_t i = 0; !bad && i < ldns_rr_list_rr_count(answer); i++) {
		ldns_rr *rr = ldns_rr_list_rr(answer, i);
		for (int k = 0; k < 3; k++)
			if (ldns_rr_get_type(rr) == kinds[k] &&
			    (ldns_dname_compare(ldns_rr_owner(rr), ldns_rr_owner(question)) ||
			     !dns_oracle_has(table[k], rr))) {
				char *text = ldns_rr2str(rr);
				snprintf(why, whylen, "oracle: %s has no record %s", qname, text);
				free(text);
				bad = 1;
			}
	}
	for (int k = 0; k < 3; k++)
		ldns_rr_list_deep_free(table[k]);
	int zone = dns_oracle_under(qname, "corp.internal.") ||
	           dns_oracle_under(qname, "0.0.10.in-addr.arpa.");
	if (bad || !zone || ldns_rr_get_class(question) != LDNS_RR_CLASS_IN ||
	    (type != LDNS_RR_TYPE_A && type != LDNS_RR_TYPE_AAAA && type != LDNS_RR_TYPE_PTR) ||
	    ldns_pkt_tc(r) || ldns_pkt_get_rcode(r) == LDNS_RCODE_FORMERR ||
	    ldns_pkt_edns_extended_rcode(r))
		goto out;
	size_t want = ldns_rr_list_rr_count(expect), got = ldns_rr_list_rr_count(answer);
	ldns_pkt_rcode rcode = exists ? LDNS_RCODE_NOERROR : LDNS_RCODE_NXDOMAIN;
	if (ldns_pkt_get_rcode(r) != rcode || got != want) {
		snprintf(why, whylen,
		         "oracle: %s type %d: rcode %d with %zu answers, not %d with %zu", qname,
		         (int)type, (int)ldns_pkt_get_rcode(r), got, (int)rcode, want);
		bad = 1;
	}
	for (size_t i = 0; !bad && i < want; i++)
		if (!dns_oracle_has(answer, ldns_rr_list_rr(expect, i))) {
			snprintf(why, whylen, "oracle: %s type %d: record #%zu missing", qname,
			         (int)type, i + 1);
			bad = 1;
		}
out:
	ldns_rr_list_deep_free(expect);
	free(qname);
	ldns_pkt_free(q);
	ldns_pkt_free(r);
	return bad;
}

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
	else if (!dns_oracle(pkt, len, a, alen, why, whylen) &&
	         !dns_oracle(pkt, len, b, blen, why, whylen))
		bad = 0;
	ldns_pkt_free(x);
	ldns_pkt_free(y);
	return bad;
}

#endif
