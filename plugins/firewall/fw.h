/* firewall: the policy model, its rendering and the pieces that apply it.
 *
 * The plugin (firewall.c) computes a struct fw_policy from its config and
 * state, and fw_render_* turns it into the text that iptables-restore and
 * `ipset restore` read. Rendering is pure (no I/O, no globals) so that it
 * is tested on its own. Addresses are IPv4, host byte order. */
#ifndef MESHGATE_FW_H
#define MESHGATE_FW_H

#include <net/if.h>
#include <stddef.h>
#include <stdint.h>

#define FW_ROLE_MAX    32 /* as preauth: 1-32 of a-z 0-9 - */
#define FW_SETNAME_MAX 32 /* IPSET_MAXNAMELEN, with the NUL */
#define FW_PREFIX_TEXT 19 /* "255.255.255.255/32" + NUL */

/* Every name we create starts with this: chains and sets alike. */
#define FW_PREFIX      "MESHGATE-"
#define FW_CHAIN_IN    "MESHGATE-INPUT"
#define FW_CHAIN_FWD   "MESHGATE-FORWARD"
#define FW_CHAIN_INVPN "MESHGATE-IN-VPN"
#define FW_CHAIN_FROM  "MESHGATE-FROM-VPN"
#define FW_CHAIN_TO    "MESHGATE-TO-VPN"
/* In the nat table: the full tunnel's masquerade, hooked in POSTROUTING. */
#define FW_CHAIN_NAT "MESHGATE-NAT"
/* Where a role set's new members are put before it is swapped in (upper
 * case: never a role's set). */
#define FW_SET_SWAP    FW_PREFIX "SWAP"
#define FW_SET_MAXELEM 1048576

struct fw_prefix {
	uint32_t addr; /* network address, host order */
	uint8_t len;
};

enum fw_proto { FW_TCP = 6, FW_UDP = 17 };

struct fw_port {
	uint16_t port;
	uint8_t proto; /* enum fw_proto */
};

/* One network a role may reach, and the interface it lies behind ("":
 * unknown, the rules then match the destination only). */
struct fw_net {
	struct fw_prefix prefix;
	char iface[IF_NAMESIZE];
	int runtime; /* from `route add`, not the config (rendering ignores it) */
};

struct fw_role {
	char name[FW_ROLE_MAX + 1];
	char set[FW_SETNAME_MAX];
	struct fw_net *nets;
	size_t n_nets;
	uint32_t *members; /* addresses of its active devices */
	size_t n_members;
	/* Its devices may send their internet traffic through the gateway
	 * (a full tunnel): allowed out of the public interface, masqueraded
	 * there. full_tunnel: they are told to (implies internet). */
	int internet;
	int full_tunnel;
};

struct fw_policy {
	char vpn_if[IF_NAMESIZE];
	char public_if[IF_NAMESIZE];      /* "": every interface but the VPN and lo */
	int host_ping;                    /* VPN clients may ping the gateway */
	const struct fw_port *host_ports; /* gateway ports served to VPN clients */
	size_t n_host_ports;
	const struct fw_port *vpn_only; /* open from the VPN, dropped on the public side */
	size_t n_vpn_only;
	const struct fw_role *roles;
	size_t n_roles;
	/* TCP SYNs into and out of the VPN get their MSS clamped to the route's
	 * MTU: a device's own route MTU (its path MTU, docs/client.md) */
	int mss_clamp;
};

/* What of ours exists in the filter table (from iptables-save): the
 * rules of built-in chains that jump to a MESHGATE chain, as their
 * "-A CHAIN ..." lines, and every MESHGATE chain. */
struct fw_existing {
	char **hooks;
	size_t n_hooks;
	char **chains;
	size_t n_chains;
	/* the nat table: how many "-A POSTROUTING -j MESHGATE-NAT", and
	 * whether MESHGATE-NAT exists */
	size_t n_nat_hooks;
	int nat_chain;
};

/* A growing text buffer; `oom` sticks once an append failed. */
struct fw_buf {
	char *data;
	size_t len, cap;
	int oom;
};

void fw_buf_printf(struct fw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fw_buf_free(struct fw_buf *b);

/* ---- parsing (fw_parse.c), pure ---- */

/* "10.0.0.0/24" (a bare address is a /32). Host bits set is -EINVAL
 * unless `loose`, which clears them. */
int fw_prefix_parse(struct fw_prefix *out, const char *text, int loose);
void fw_prefix_format(char out[FW_PREFIX_TEXT], const struct fw_prefix *p);
int fw_prefix_covers(const struct fw_prefix *outer, uint32_t addr);
/* "8080/tcp", "53/udp"; the protocol is required. */
int fw_port_parse(struct fw_port *out, const char *text);
void fw_port_format(char out[16], const struct fw_port *p);
int fw_role_valid(const char *role);
int fw_ifname_valid(const char *name);
/* The set of a role: MESHGATE-<role>, or a shortened name with a hash of
 * the role when that is too long for ipset. */
void fw_set_name(char out[FW_SETNAME_MAX], const char *role);

/* The hash size a role set is created with to hold `members` without
 * growing (1024 at least). */
size_t fw_set_hashsize(size_t members);

/* ---- rendering (fw_render.c), pure ---- */

/* The filter table's part of the policy for `iptables-restore --noflush`:
 * our chains declared (which creates or flushes them) and filled, then
 * hooked at the top of INPUT and FORWARD exactly once given the hooks that
 * exist (`existing` may be NULL: none), and every other MESHGATE chain of
 * `existing` removed. When a role has internet access and the public
 * interface is known, a nat table part follows: MESHGATE-NAT masquerading
 * those roles' traffic out of the public interface, hooked at the top of
 * POSTROUTING once; with none, a MESHGATE-NAT of `existing` is removed. */
int fw_render_rules(struct fw_buf *out, const struct fw_policy *p,
                    const struct fw_existing *existing);
/* Does the policy masquerade (a role with internet access, and a known
 * public interface)? Then the rules have a nat table part. */
int fw_policy_masquerades(const struct fw_policy *p);
/* The role sets for `ipset restore`, each filled in a temporary set and
 * swapped in, so that a set's members change in one step. Only the roles
 * for which only[i] is non-zero when `only` is not NULL. The plugin fills
 * its sets through netlink (fw_nl_set_replace); this text is the plain
 * way bench_fw measures that against. */
int fw_render_sets(struct fw_buf *out, const struct fw_policy *p, const unsigned char *only);
/* Removal of everything of `existing`, for `iptables-restore --noflush`. */
int fw_render_teardown(struct fw_buf *out, const struct fw_existing *existing);
/* Reads iptables-save output (the filter table). 0 or -ENOMEM. */
int fw_existing_parse(struct fw_existing *out, const char *save_text);
void fw_existing_free(struct fw_existing *e);

/* ---- netlink: ipset and conntrack in-process (fw_nl.c) ---- */

struct fw_nl;
int fw_nl_open(struct fw_nl **out);
void fw_nl_close(struct fw_nl *nl);
/* Adds or removes one address of a set; adding one that is there and
 * removing one that is not are not errors. -ENOENT: no such set. */
int fw_nl_set_add(struct fw_nl *nl, const char *set, uint32_t addr);
int fw_nl_set_del(struct fw_nl *nl, const char *set, uint32_t addr);
int fw_nl_set_test(struct fw_nl *nl, const char *set, uint32_t addr); /* 1, 0 or -errno */
int fw_nl_set_destroy(struct fw_nl *nl, const char *set);
/* Makes `set` (a hash:ip, created if absent) hold exactly addrs[0..n),
 * without a moment where it is empty or partly filled: the members are
 * added to FW_SET_SWAP, many to a netlink message (each acknowledged),
 * which is then swapped with the set and destroyed. On an error the set is
 * left as it was and FW_SET_SWAP is gone; when the kernel refused one
 * member, *refused is its index (otherwise n). */
int fw_nl_set_replace(struct fw_nl *nl, const char *set, const uint32_t *addrs, size_t n,
                      size_t *refused);
/* The text of an error of fw_nl_*: ipset's own codes (IPSET_ERR_*) and
 * errnos alike. */
const char *fw_nl_strerror(int rc);
/* Names of every set whose name starts with `prefix` (NULL-terminated
 * array of strings, free with fw_strv_free). */
int fw_nl_set_list(struct fw_nl *nl, const char *prefix, char ***names);
/* Forgets the connections to or from any of addrs, so that packets of
 * flows a device may no longer start are judged by the rules again. One
 * dump of the conntrack table (which walks all of its buckets, some ms),
 * then one delete per entry found. Returns the number of entries removed
 * or a negative errno. */
int fw_nl_ct_forget(struct fw_nl *nl, const uint32_t *addrs, size_t n);

/* ---- netlink: changes of the routing table (fw_nl.c) ---- */

/* A socket that hears of every IPv4 route added or removed (rtnetlink's
 * RTMGRP_IPV4_ROUTE), non-blocking: the interface a subnet lies behind
 * may have changed. */
struct fw_routes;
int fw_routes_open(struct fw_routes **out);
void fw_routes_close(struct fw_routes *r);
int fw_routes_fd(const struct fw_routes *r);
/* Reads whatever is pending: 1 when a route changed (also when the
 * socket's buffer overflowed and news were lost), 0 when nothing was
 * pending, or a negative errno. */
int fw_routes_drain(struct fw_routes *r);

void fw_strv_free(char **v);

#endif
