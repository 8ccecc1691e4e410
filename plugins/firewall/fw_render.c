/* The policy as text for iptables-restore and `ipset restore`. Pure: the
 * same policy gives the same text, byte for byte, which is also how the
 * plugin tells whether the rules need applying at all. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fw.h"

#define MULTIPORT_MAX 15 /* ports one -m multiport match takes */

static const char *const our_chains[] = {FW_CHAIN_IN, FW_CHAIN_INVPN, FW_CHAIN_FWD, FW_CHAIN_FROM,
                                         FW_CHAIN_TO};

static int is_ours(const char *chain)
{
	for (size_t i = 0; i < sizeof(our_chains) / sizeof(our_chains[0]); i++)
		if (!strcmp(chain, our_chains[i]))
			return 1;
	return 0;
}

static void prefix(struct fw_buf *b, const char *opt, const struct fw_prefix *p)
{
	char text[FW_PREFIX_TEXT];
	fw_prefix_format(text, p);
	fw_buf_printf(b, " %s %s", opt, text);
}

/* `-A chain [-i iface] -p proto -m multiport --dports a,b,... -j target`,
 * as many rules as the ports of that protocol need. */
static void port_rules(struct fw_buf *b, const char *chain, const char *in_if,
                       const struct fw_port *ports, size_t n, enum fw_proto proto,
                       const char *target)
{
	size_t in_rule = 0;
	for (size_t i = 0; i < n; i++) {
		if (ports[i].proto != proto)
			continue;
		if (in_rule == 0) {
			fw_buf_printf(b, "-A %s", chain);
			if (in_if && in_if[0])
				fw_buf_printf(b, " -i %s", in_if);
			fw_buf_printf(b, " -p %s -m multiport --dports %u",
			              proto == FW_TCP ? "tcp" : "udp", ports[i].port);
		} else {
			fw_buf_printf(b, ",%u", ports[i].port);
		}
		if (++in_rule == MULTIPORT_MAX) {
			fw_buf_printf(b, " -j %s\n", target);
			in_rule = 0;
		}
	}
	if (in_rule)
		fw_buf_printf(b, " -j %s\n", target);
}

static void input_rules(struct fw_buf *b, const struct fw_policy *p)
{
	fw_buf_printf(b, "-A %s -i %s -j %s\n", FW_CHAIN_IN, p->vpn_if, FW_CHAIN_INVPN);
	/* VPN-only ports: closed on the public side (or, when it is not known,
	 * on every interface but the VPN, which jumped away above, and lo) */
	if (p->n_vpn_only && !p->public_if[0])
		fw_buf_printf(b, "-A %s -i lo -j RETURN\n", FW_CHAIN_IN);
	for (int proto = FW_TCP; proto <= FW_UDP; proto += FW_UDP - FW_TCP)
		port_rules(b, FW_CHAIN_IN, p->public_if, p->vpn_only, p->n_vpn_only, proto, "DROP");

	/* from the VPN to the gateway itself: only what it serves them */
	fw_buf_printf(b, "-A %s -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n",
	              FW_CHAIN_INVPN);
	if (p->host_ping)
		fw_buf_printf(b, "-A %s -p icmp -m icmp --icmp-type 8 -j ACCEPT\n", FW_CHAIN_INVPN);
	for (int proto = FW_TCP; proto <= FW_UDP; proto += FW_UDP - FW_TCP) {
		port_rules(b, FW_CHAIN_INVPN, NULL, p->host_ports, p->n_host_ports, proto,
		           "ACCEPT");
		port_rules(b, FW_CHAIN_INVPN, NULL, p->vpn_only, p->n_vpn_only, proto, "ACCEPT");
	}
	fw_buf_printf(b, "-A %s -j DROP\n", FW_CHAIN_INVPN);
}

/* Roles with internet access (a full tunnel): whatever leaves by the
 * public interface. Without a known public interface there is no
 * internet to allow (nor to masquerade to). */
static void internet_rules(struct fw_buf *b, const struct fw_policy *p)
{
	for (size_t r = 0; p->public_if[0] && r < p->n_roles; r++)
		if (p->roles[r].internet)
			fw_buf_printf(b, "-A %s -o %s -m set --match-set %s src -j ACCEPT\n",
			              FW_CHAIN_FROM, p->public_if, p->roles[r].set);
}

int fw_policy_masquerades(const struct fw_policy *p)
{
	for (size_t r = 0; p->public_if[0] && r < p->n_roles; r++)
		if (p->roles[r].internet)
			return 1;
	return 0;
}

/* The nat table's part: the internet roles' devices masqueraded behind the
 * public interface's address, one rule per role whatever the number of
 * devices, and the hook made exactly one; with no such role, a chain left
 * from before removed with its hooks. Nothing at all when neither. */
static void nat_rules(struct fw_buf *b, const struct fw_policy *p, const struct fw_existing *e)
{
	size_t hooks = e ? e->n_nat_hooks : 0;
	int want = p && fw_policy_masquerades(p);
	if (!want && !hooks && !(e && e->nat_chain))
		return;
	fw_buf_printf(b, "*nat\n:%s - [0:0]\n", FW_CHAIN_NAT);
	for (size_t r = 0; want && r < p->n_roles; r++)
		if (p->roles[r].internet)
			fw_buf_printf(b, "-A %s -o %s -m set --match-set %s src -j MASQUERADE\n",
			              FW_CHAIN_NAT, p->public_if, p->roles[r].set);
	if (want && !hooks)
		fw_buf_printf(b, "-I POSTROUTING 1 -j %s\n", FW_CHAIN_NAT);
	for (; hooks > (size_t)want; hooks--)
		fw_buf_printf(b, "-D POSTROUTING -j %s\n", FW_CHAIN_NAT);
	if (!want)
		fw_buf_printf(b, "-X %s\n", FW_CHAIN_NAT);
	fw_buf_printf(b, "COMMIT\n");
}

/* Per role and network, one rule each way, matching the role's set: a
 * handful of rules whatever the number of devices. Traffic that enters
 * from the VPN is judged by its source device's role only (so two devices
 * talk when the initiator's role reaches the VPN subnet); traffic from a
 * network towards a device by the device's role. */
static void forward_rules(struct fw_buf *b, const struct fw_policy *p)
{
	/* before the established flows: a SYN-ACK is one already */
	for (int to_vpn = 0; p->mss_clamp && to_vpn <= 1; to_vpn++)
		fw_buf_printf(b,
		              "-A %s %s %s -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS "
		              "--clamp-mss-to-pmtu\n",
		              FW_CHAIN_FWD, to_vpn ? "-o" : "-i", p->vpn_if);
	/* established flows first, in the hooked chain itself: the packets
	 * that make the throughput cross one or two rules */
	for (int to_vpn = 0; to_vpn <= 1; to_vpn++)
		fw_buf_printf(b,
		              "-A %s %s %s -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n",
		              FW_CHAIN_FWD, to_vpn ? "-o" : "-i", p->vpn_if);
	fw_buf_printf(b, "-A %s -i %s -j %s\n", FW_CHAIN_FWD, p->vpn_if, FW_CHAIN_FROM);
	fw_buf_printf(b, "-A %s -o %s -j %s\n", FW_CHAIN_FWD, p->vpn_if, FW_CHAIN_TO);
	for (int to_vpn = 0; to_vpn <= 1; to_vpn++) {
		const char *chain = to_vpn ? FW_CHAIN_TO : FW_CHAIN_FROM;
		for (size_t r = 0; r < p->n_roles; r++) {
			const struct fw_role *role = &p->roles[r];
			for (size_t i = 0; i < role->n_nets; i++) {
				const struct fw_net *net = &role->nets[i];
				if (to_vpn && !strcmp(net->iface, p->vpn_if))
					continue;
				fw_buf_printf(b, "-A %s", chain);
				if (net->iface[0])
					fw_buf_printf(b, " %s %s", to_vpn ? "-i" : "-o",
					              net->iface);
				prefix(b, to_vpn ? "-s" : "-d", &net->prefix);
				fw_buf_printf(b, " -m set --match-set %s %s -j ACCEPT\n", role->set,
				              to_vpn ? "dst" : "src");
			}
		}
		if (!to_vpn)
			internet_rules(b, p);
		fw_buf_printf(b, "-A %s -j DROP\n", chain);
	}
}

static size_t count_hooks(const struct fw_existing *e, const char *line)
{
	size_t n = 0;
	for (size_t i = 0; e && i < e->n_hooks; i++)
		n += !strcmp(e->hooks[i], line);
	return n;
}

/* One jump at the top of INPUT and of FORWARD; duplicates and any other
 * jump into a chain of ours (an older layout) go. */
static void hook_rules(struct fw_buf *b, const struct fw_existing *e)
{
	static const char *const hooks[][2] = {{"INPUT", FW_CHAIN_IN}, {"FORWARD", FW_CHAIN_FWD}};
	for (size_t h = 0; h < 2; h++) {
		char line[128];
		snprintf(line, sizeof(line), "-A %s -j %s", hooks[h][0], hooks[h][1]);
		size_t have = count_hooks(e, line);
		if (!have)
			fw_buf_printf(b, "-I %s 1 -j %s\n", hooks[h][0], hooks[h][1]);
		for (; have > 1; have--)
			fw_buf_printf(b, "-D %s -j %s\n", hooks[h][0], hooks[h][1]);
	}
	for (size_t i = 0; e && i < e->n_hooks; i++) {
		if (!strcmp(e->hooks[i], "-A INPUT -j " FW_CHAIN_IN) ||
		    !strcmp(e->hooks[i], "-A FORWARD -j " FW_CHAIN_FWD))
			continue;
		fw_buf_printf(b, "-D%s\n", e->hooks[i] + 2);
	}
}

static void drop_stale_chains(struct fw_buf *b, const struct fw_existing *e, int all)
{
	for (size_t i = 0; e && i < e->n_chains; i++)
		if (all || !is_ours(e->chains[i]))
			fw_buf_printf(b, "-F %s\n", e->chains[i]);
	for (size_t i = 0; e && i < e->n_chains; i++)
		if (all || !is_ours(e->chains[i]))
			fw_buf_printf(b, "-X %s\n", e->chains[i]);
}

int fw_render_rules(struct fw_buf *out, const struct fw_policy *p,
                    const struct fw_existing *existing)
{
	if (!p->vpn_if[0])
		return -EINVAL;
	fw_buf_printf(out, "*filter\n");
	for (size_t i = 0; i < sizeof(our_chains) / sizeof(our_chains[0]); i++)
		fw_buf_printf(out, ":%s - [0:0]\n", our_chains[i]);
	input_rules(out, p);
	forward_rules(out, p);
	hook_rules(out, existing);
	drop_stale_chains(out, existing, 0);
	fw_buf_printf(out, "COMMIT\n");
	nat_rules(out, p, existing);
	return out->oom ? -ENOMEM : 0;
}

size_t fw_set_hashsize(size_t members)
{
	size_t hashsize = 1024;
	while (hashsize < members && hashsize < FW_SET_MAXELEM)
		hashsize *= 2;
	return hashsize;
}

static void set_create(struct fw_buf *b, const char *name, size_t members)
{
	fw_buf_printf(b, "create %s hash:ip family inet hashsize %zu maxelem %u -exist\n", name,
	              fw_set_hashsize(members), FW_SET_MAXELEM);
}

int fw_render_sets(struct fw_buf *out, const struct fw_policy *p, const unsigned char *only)
{
	for (size_t r = 0; r < p->n_roles; r++) {
		const struct fw_role *role = &p->roles[r];
		if (only && !only[r])
			continue;
		set_create(out, role->set, 0);
		set_create(out, FW_SET_SWAP, role->n_members);
		fw_buf_printf(out, "flush %s\n", FW_SET_SWAP);
		for (size_t i = 0; i < role->n_members; i++) {
			uint32_t a = role->members[i];
			fw_buf_printf(out, "add %s %u.%u.%u.%u -exist\n", FW_SET_SWAP, a >> 24,
			              (a >> 16) & 255, (a >> 8) & 255, a & 255);
		}
		fw_buf_printf(out, "swap %s %s\ndestroy %s\n", FW_SET_SWAP, role->set, FW_SET_SWAP);
	}
	return out->oom ? -ENOMEM : 0;
}

int fw_render_teardown(struct fw_buf *out, const struct fw_existing *existing)
{
	fw_buf_printf(out, "*filter\n");
	for (size_t i = 0; existing && i < existing->n_hooks; i++)
		fw_buf_printf(out, "-D%s\n", existing->hooks[i] + 2);
	drop_stale_chains(out, existing, 1);
	fw_buf_printf(out, "COMMIT\n");
	nat_rules(out, NULL, existing);
	return out->oom ? -ENOMEM : 0;
}

/* ---- reading iptables-save ---- */

static int push(char ***v, size_t *n, const char *s, size_t len)
{
	char **grown = realloc(*v, (*n + 1) * sizeof(**v));
	if (!grown)
		return -ENOMEM;
	*v = grown;
	if (!(grown[*n] = strndup(s, len)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* "-A CHAIN ... -j MESHGATE-X" or "... -g MESHGATE-X" */
static int jumps_to_ours(const char *line, size_t len)
{
	static const char jump[] = " -j " FW_PREFIX, go[] = " -g " FW_PREFIX;
	return memmem(line, len, jump, sizeof(jump) - 1) || memmem(line, len, go, sizeof(go) - 1);
}

/* Of the nat table only our own chain and its hook are read: other
 * chains there (the mesh plugin's, the host's) are not ours. */
static void nat_line(struct fw_existing *out, const char *line, size_t len)
{
	static const char hook[] = "-A POSTROUTING -j " FW_CHAIN_NAT,
	                  chain[] = ":" FW_CHAIN_NAT " ";
	if (len == sizeof(hook) - 1 && !strncmp(line, hook, len))
		out->n_nat_hooks++;
	else if (len >= sizeof(chain) - 1 && !strncmp(line, chain, sizeof(chain) - 1))
		out->nat_chain = 1;
}

int fw_existing_parse(struct fw_existing *out, const char *text)
{
	int in_filter = 0, in_nat = 0;
	memset(out, 0, sizeof(*out));
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		int rc = 0;
		if (len == 7 && !strncmp(line, "*filter", 7))
			in_filter = 1;
		else if (len == 4 && !strncmp(line, "*nat", 4))
			in_nat = 1;
		else if (line[0] == '*' || (len == 6 && !strncmp(line, "COMMIT", 6)))
			in_filter = in_nat = 0;
		else if (in_nat)
			nat_line(out, line, len);
		else if (in_filter && line[0] == ':' && !strncmp(line + 1, FW_PREFIX, 9)) {
			size_t name = strcspn(line + 1, " \n");
			rc = push(&out->chains, &out->n_chains, line + 1, name);
		} else if (in_filter && !strncmp(line, "-A ", 3) &&
		           strncmp(line + 3, FW_PREFIX, 9) && jumps_to_ours(line, len)) {
			rc = push(&out->hooks, &out->n_hooks, line, len);
		}
		if (rc) {
			fw_existing_free(out);
			return rc;
		}
		line = nl ? nl + 1 : NULL;
	}
	return 0;
}

void fw_existing_free(struct fw_existing *e)
{
	for (size_t i = 0; i < e->n_hooks; i++)
		free(e->hooks[i]);
	for (size_t i = 0; i < e->n_chains; i++)
		free(e->chains[i]);
	free(e->hooks);
	free(e->chains);
	memset(e, 0, sizeof(*e));
}
