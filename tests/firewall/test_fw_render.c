/* The policy's rendering on its own: state in, iptables-restore and
 * ipset text out, no system touched. Also the parsers, the settings and
 * the device index. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fw.h"
#include "fw_config.h"

static struct fw_prefix P(const char *text) {
	struct fw_prefix p;
	assert_int_equal(fw_prefix_parse(&p, text, 0), 0);
	return p;
}

static void
test_parse(void **unused)
{
	(void)unused;
	struct fw_prefix p;
	char text[FW_PREFIX_TEXT];
	assert_int_equal(fw_prefix_parse(&p, "172.19.0.0/16", 0), 0);
	assert_int_equal(p.addr, 0xac130000u);
	assert_int_equal(p.len, 16);
	assert_int_equal(fw_prefix_parse(&p, "172.19.5.0/16", 0), -EINVAL); /* host bits */
	assert_int_equal(fw_prefix_parse(&p, "172.19.5.0/16", 1), 0);
	fw_prefix_format(text, &p);
	assert_string_equal(text, "172.19.0.0/16");
	assert_int_equal(fw_prefix_parse(&p, "10.0.0.7", 0), 0);
	assert_int_equal(p.len, 32);
	assert_int_equal(fw_prefix_parse(&p, "0.0.0.0/0", 0), 0);
	assert_true(fw_prefix_covers(&p, 0x01020304));
	static const char *const bad[] = {
	    "",         "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/ 8", "10.0.0.0/+8",
	    "10.0.0/8", "fd00::/8",  "x/8",         "10.0.0.0/080"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(fw_prefix_parse(&p, bad[i], 1), -EINVAL);
	assert_int_equal(fw_prefix_parse(&p, NULL, 1), -EINVAL);
	assert_true(fw_prefix_covers(&(struct fw_prefix){0x0a000000, 24}, 0x0a0000fe));
	assert_false(fw_prefix_covers(&(struct fw_prefix){0x0a000000, 24}, 0x0a0001fe));

	struct fw_port port;
	char ptext[16];
	assert_int_equal(fw_port_parse(&port, "8080/tcp"), 0);
	assert_int_equal(port.port, 8080);
	assert_int_equal(port.proto, FW_TCP);
	assert_int_equal(fw_port_parse(&port, "53/udp"), 0);
	fw_port_format(ptext, &port);
	assert_string_equal(ptext, "53/udp");
	static const char *const bad_ports[] = {"8080",    "0/tcp",      "65536/tcp",
	                                        "80/icmp", "-1/tcp",     "80/TCP",
	                                        "/tcp",    "123456/udp", " 80/tcp"};
	for (size_t i = 0; i < sizeof(bad_ports) / sizeof(bad_ports[0]); i++)
		assert_int_equal(fw_port_parse(&port, bad_ports[i]), -EINVAL);

	assert_true(fw_role_valid("developer"));
	assert_true(fw_role_valid("ops-2"));
	assert_false(fw_role_valid("Admin"));
	assert_false(fw_role_valid(""));
	assert_false(fw_role_valid("a b"));
	assert_false(fw_role_valid("abcdefghijklmnopqrstuvwxyz0123456"));
	assert_true(fw_ifname_valid("eth0"));
	assert_true(fw_ifname_valid("wg-mesh.1"));
	assert_false(fw_ifname_valid("eth+"));
	assert_false(fw_ifname_valid("a b"));
	assert_false(fw_ifname_valid("0123456789abcdef"));
	assert_false(fw_ifname_valid(".."));

	char set[FW_SETNAME_MAX], set2[FW_SETNAME_MAX];
	fw_set_name(set, "admin");
	assert_string_equal(set, "MESHGATE-admin");
	/* the longest role still gets a distinct, valid ipset name */
	fw_set_name(set, "abcdefghijklmnopqrstuvwxyz012345");
	fw_set_name(set2, "abcdefghijklmnopqrstuvwxyz012346");
	assert_true(strlen(set) <= 31);
	assert_string_not_equal(set, set2);
	assert_int_equal(strncmp(set, "MESHGATE-", 9), 0);
	fw_set_name(set, "abcdefghijklmnopqrstuv"); /* 22: fits as is */
	assert_string_equal(set, "MESHGATE-abcdefghijklmnopqrstuv");
}

/* developer: the VPN subnet; admin: also 172.19.0.0/16 behind eth2, and
 * 172.30.0.0/24 whose interface is unknown. */
struct sample {
	struct fw_net dev_nets[1], admin_nets[3];
	struct fw_role roles[2];
	struct fw_port host[3], only[1];
	uint32_t dev_members[2], admin_members[1];
	struct fw_policy p;
};

static void sample(struct sample *s)
{
	memset(s, 0, sizeof(*s));
	s->dev_nets[0] = (struct fw_net){P("10.0.0.0/24"), "wg0", 0};
	s->admin_nets[0] = (struct fw_net){P("10.0.0.0/24"), "wg0", 0};
	s->admin_nets[1] = (struct fw_net){P("172.19.0.0/16"), "eth2", 0};
	s->admin_nets[2] = (struct fw_net){P("172.30.0.0/24"), "", 1};
	s->dev_members[0] = 0x0a000002;
	s->dev_members[1] = 0x0a000003;
	s->admin_members[0] = 0x0a000004;
	s->roles[0] = (struct fw_role){
	    "admin", "MESHGATE-admin", s->admin_nets, 3, s->admin_members, 1, 0, 0};
	s->roles[1] = (struct fw_role){
	    "developer", "MESHGATE-developer", s->dev_nets, 1, s->dev_members, 2, 0, 0};
	s->host[0] = (struct fw_port){8443, FW_TCP};
	s->host[1] = (struct fw_port){53, FW_UDP};
	s->host[2] = (struct fw_port){53, FW_TCP};
	s->only[0] = (struct fw_port){8080, FW_TCP};
	s->p = (struct fw_policy){"wg0", "eth0", 1, s->host, 3, s->only, 1, s->roles, 2, 0};
}

static const char expected_rules[] =
    "*filter\n"
    ":MESHGATE-INPUT - [0:0]\n"
    ":MESHGATE-IN-VPN - [0:0]\n"
    ":MESHGATE-FORWARD - [0:0]\n"
    ":MESHGATE-FROM-VPN - [0:0]\n"
    ":MESHGATE-TO-VPN - [0:0]\n"
    "-A MESHGATE-INPUT -i wg0 -j MESHGATE-IN-VPN\n"
    "-A MESHGATE-INPUT -i eth0 -p tcp -m multiport --dports 8080 -j DROP\n"
    "-A MESHGATE-IN-VPN -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
    "-A MESHGATE-IN-VPN -p icmp -m icmp --icmp-type 8 -j ACCEPT\n"
    "-A MESHGATE-IN-VPN -p tcp -m multiport --dports 8443,53 -j ACCEPT\n"
    "-A MESHGATE-IN-VPN -p tcp -m multiport --dports 8080 -j ACCEPT\n"
    "-A MESHGATE-IN-VPN -p udp -m multiport --dports 53 -j ACCEPT\n"
    "-A MESHGATE-IN-VPN -j DROP\n"
    "-A MESHGATE-FORWARD -i wg0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
    "-A MESHGATE-FORWARD -o wg0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
    "-A MESHGATE-FORWARD -i wg0 -j MESHGATE-FROM-VPN\n"
    "-A MESHGATE-FORWARD -o wg0 -j MESHGATE-TO-VPN\n"
    "-A MESHGATE-FROM-VPN -o wg0 -d 10.0.0.0/24 -m set --match-set MESHGATE-admin src -j "
    "ACCEPT\n"
    "-A MESHGATE-FROM-VPN -o eth2 -d 172.19.0.0/16 -m set --match-set MESHGATE-admin src -j "
    "ACCEPT\n"
    "-A MESHGATE-FROM-VPN -d 172.30.0.0/24 -m set --match-set MESHGATE-admin src -j ACCEPT\n"
    "-A MESHGATE-FROM-VPN -o wg0 -d 10.0.0.0/24 -m set --match-set MESHGATE-developer src -j "
    "ACCEPT\n"
    "-A MESHGATE-FROM-VPN -j DROP\n"
    "-A MESHGATE-TO-VPN -i eth2 -s 172.19.0.0/16 -m set --match-set MESHGATE-admin dst -j "
    "ACCEPT\n"
    "-A MESHGATE-TO-VPN -s 172.30.0.0/24 -m set --match-set MESHGATE-admin dst -j ACCEPT\n"
    "-A MESHGATE-TO-VPN -j DROP\n";

static char *render(const struct fw_policy *p, const struct fw_existing *e)
{
	struct fw_buf b = {0};
	assert_int_equal(fw_render_rules(&b, p, e), 0);
	return b.data;
}

/* The MSS clamp: both ways through the VPN, ahead of the established
 * flows (a SYN-ACK counts as one); none when it is off. */
static void test_mss_clamp(void **unused)
{
	(void)unused;
	struct sample s;
	sample(&s);
	char *text = render(&s.p, NULL);
	assert_null(strstr(text, "TCPMSS"));
	free(text);
	s.p.mss_clamp = 1;
	text = render(&s.p, NULL);
	const char *clamp = strstr(text, "-A MESHGATE-FORWARD -i wg0 -p tcp -m tcp --tcp-flags "
	                                 "SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu\n"
	                                 "-A MESHGATE-FORWARD -o wg0 -p tcp -m tcp --tcp-flags "
	                                 "SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu\n");
	const char *established = strstr(text, "-A MESHGATE-FORWARD -i wg0 -m conntrack");
	assert_non_null(clamp);
	assert_non_null(established);
	assert_true(clamp < established);
	free(text);
}

static void test_rules(void **unused)
{
	(void)unused;
	struct sample s;
	sample(&s);
	char *text = render(&s.p, NULL);
	/* nothing exists: the chains, then the two hooks at the top */
	size_t body = strlen(expected_rules);
	assert_int_equal(strncmp(text, expected_rules, body), 0);
	assert_string_equal(text + body, "-I INPUT 1 -j MESHGATE-INPUT\n"
	                                 "-I FORWARD 1 -j MESHGATE-FORWARD\n"
	                                 "COMMIT\n");
	/* pure: the same policy gives the same bytes */
	char *again = render(&s.p, NULL);
	assert_string_equal(text, again);
	free(again);
	free(text);

	/* hooked once already: no hook lines; hooked twice, plus an old
	 * layout's jump and chain: the extras go */
	char in[] = "-A INPUT -j MESHGATE-INPUT", fwd[] = "-A FORWARD -j MESHGATE-FORWARD";
	char old[] = "-A OUTPUT -o wg0 -j MESHGATE-OLD", old_chain[] = "MESHGATE-OLD";
	char mine[] = "MESHGATE-INPUT";
	char *hooks1[] = {in, fwd}, *hooks3[] = {in, in, old}, *chains[] = {mine, old_chain};
	struct fw_existing once = {hooks1, 2, NULL, 0, 0, 0}, messy = {hooks3, 3, chains, 2, 0, 0};
	text = render(&s.p, &once);
	assert_int_equal(strncmp(text, expected_rules, body), 0);
	assert_string_equal(text + body, "COMMIT\n");
	free(text);
	text = render(&s.p, &messy);
	assert_string_equal(text + body, "-D INPUT -j MESHGATE-INPUT\n"
	                                 "-I FORWARD 1 -j MESHGATE-FORWARD\n"
	                                 "-D OUTPUT -o wg0 -j MESHGATE-OLD\n"
	                                 "-F MESHGATE-OLD\n"
	                                 "-X MESHGATE-OLD\n"
	                                 "COMMIT\n");
	free(text);
}

/* A role with internet access (a full tunnel): allowed out of the public
 * interface and masqueraded there, in a nat part of the same restore,
 * hooked once; a split role's rules stay as they were. */
static void test_full_tunnel(void **unused)
{
	(void)unused;
	struct sample s;
	sample(&s);
	char *split = render(&s.p, NULL);
	s.roles[1].internet = 1;
	char *text = render(&s.p, NULL);
	static const char internet[] =
	    "-A MESHGATE-FROM-VPN -o wg0 -d 10.0.0.0/24 -m set --match-set MESHGATE-developer src "
	    "-j "
	    "ACCEPT\n"
	    "-A MESHGATE-FROM-VPN -o eth0 -m set --match-set MESHGATE-developer src -j ACCEPT\n"
	    "-A MESHGATE-FROM-VPN -j DROP\n";
	static const char nat[] =
	    "COMMIT\n"
	    "*nat\n"
	    ":MESHGATE-NAT - [0:0]\n"
	    "-A MESHGATE-NAT -o eth0 -m set --match-set MESHGATE-developer src -j MASQUERADE\n";
	assert_non_null(strstr(text, internet));
	assert_non_null(strstr(text, nat));
	assert_string_equal(strstr(text, nat) + strlen(nat), "-I POSTROUTING 1 -j MESHGATE-NAT\n"
	                                                     "COMMIT\n");
	/* only the developers: the admins' devices are neither let out nor NATed */
	assert_null(strstr(text, "-o eth0 -m set --match-set MESHGATE-admin"));
	assert_true(fw_policy_masquerades(&s.p));
	free(text);

	/* hooked once already: no hook line; twice: one goes */
	struct fw_existing once = {NULL, 0, NULL, 0, 1, 1}, twice = {NULL, 0, NULL, 0, 2, 1};
	text = render(&s.p, &once);
	assert_string_equal(strstr(text, nat) + strlen(nat), "COMMIT\n");
	free(text);
	text = render(&s.p, &twice);
	assert_string_equal(strstr(text, nat) + strlen(nat), "-D POSTROUTING -j MESHGATE-NAT\n"
	                                                     "COMMIT\n");
	free(text);

	/* no public interface known: no internet to allow, nothing NATed */
	s.p.public_if[0] = '\0';
	assert_false(fw_policy_masquerades(&s.p));
	text = render(&s.p, NULL);
	assert_null(strstr(text, "MESHGATE-NAT"));
	assert_non_null(
	    strstr(text, "MESHGATE-developer src -j ACCEPT\n-A MESHGATE-FROM-VPN -j DROP"));
	free(text);

	/* no role with internet any more: the chain and its hook go; and a
	 * policy that never had one renders exactly as before */
	snprintf(s.p.public_if, sizeof(s.p.public_if), "eth0");
	s.roles[1].internet = 0;
	text = render(&s.p, &once);
	assert_string_equal(strstr(text, "*nat\n"), "*nat\n"
	                                            ":MESHGATE-NAT - [0:0]\n"
	                                            "-D POSTROUTING -j MESHGATE-NAT\n"
	                                            "-X MESHGATE-NAT\n"
	                                            "COMMIT\n");
	free(text);
	text = render(&s.p, NULL);
	assert_string_equal(text, split);
	assert_null(strstr(text, "*nat"));
	free(text);
	free(split);

	/* iptables-save: our nat chain and hook are read, nobody else's */
	struct fw_existing e;
	struct fw_buf b = {0};
	assert_int_equal(fw_existing_parse(&e, "*nat\n"
	                                       ":POSTROUTING ACCEPT [0:0]\n"
	                                       ":MESHGATE-NAT - [0:0]\n"
	                                       ":MG-MESH-SNAT - [0:0]\n"
	                                       "-A POSTROUTING -j MG-MESH-SNAT\n"
	                                       "-A POSTROUTING -j MESHGATE-NAT\n"
	                                       "-A POSTROUTING -j MESHGATE-NAT\n"
	                                       "COMMIT\n"
	                                       "*filter\n"
	                                       "-A FORWARD -j MESHGATE-FORWARD\n"
	                                       "COMMIT\n"),
	                 0);
	assert_int_equal(e.n_nat_hooks, 2);
	assert_true(e.nat_chain);
	assert_int_equal(e.n_hooks, 1);
	assert_int_equal(fw_render_teardown(&b, &e), 0);
	assert_string_equal(strstr(b.data, "*nat\n"), "*nat\n"
	                                              ":MESHGATE-NAT - [0:0]\n"
	                                              "-D POSTROUTING -j MESHGATE-NAT\n"
	                                              "-D POSTROUTING -j MESHGATE-NAT\n"
	                                              "-X MESHGATE-NAT\n"
	                                              "COMMIT\n");
	fw_buf_free(&b);
	fw_existing_free(&e);
}

static void test_rules_variants(void **unused)
{
	(void)unused;
	struct sample s;
	sample(&s);
	/* no public interface known: VPN-only ports closed everywhere but lo */
	s.p.public_if[0] = '\0';
	s.p.host_ping = 0;
	char *text = render(&s.p, NULL);
	assert_non_null(strstr(text,
	                       "-A MESHGATE-INPUT -i lo -j RETURN\n"
	                       "-A MESHGATE-INPUT -p tcp -m multiport --dports 8080 -j DROP\n"));
	assert_null(strstr(text, "icmp"));
	free(text);

	/* 20 host ports: two multiport rules (15 at most each) */
	struct fw_port many[20];
	for (int i = 0; i < 20; i++)
		many[i] = (struct fw_port){(uint16_t)(1000 + i), FW_UDP};
	s.p.host_ports = many;
	s.p.n_host_ports = 20;
	s.p.n_vpn_only = 0;
	text = render(&s.p, NULL);
	assert_non_null(
	    strstr(text, "--dports 1000,1001,1002,1003,1004,1005,1006,1007,1008,1009,1010,1011,"
	                 "1012,1013,1014 -j ACCEPT\n"));
	assert_non_null(strstr(text, "--dports 1015,1016,1017,1018,1019 -j ACCEPT\n"));
	assert_null(strstr(text, "-i lo"));
	free(text);

	/* the rules do not grow with the devices: 10,000 members, same text */
	sample(&s);
	char *few = render(&s.p, NULL);
	uint32_t *members = calloc(10000, sizeof(*members));
	for (uint32_t i = 0; i < 10000; i++)
		members[i] = 0x0a640000 + i;
	s.roles[1].members = members;
	s.roles[1].n_members = 10000;
	text = render(&s.p, NULL);
	assert_string_equal(few, text);
	free(few);
	free(text);

	/* no roles at all: everything from the VPN dropped */
	s.p.n_roles = 0;
	text = render(&s.p, NULL);
	assert_null(strstr(text, "match-set"));
	assert_non_null(strstr(text, "-A MESHGATE-FORWARD -o wg0 -j MESHGATE-TO-VPN\n"
	                             "-A MESHGATE-FROM-VPN -j DROP\n-A MESHGATE-TO-VPN -j DROP\n"));
	free(text);

	/* a policy without a VPN interface is refused */
	struct fw_buf b = {0};
	s.p.vpn_if[0] = '\0';
	assert_int_equal(fw_render_rules(&b, &s.p, NULL), -EINVAL);
	fw_buf_free(&b);

	/* sets: 10,000 members in one batch, each set swapped in whole */
	sample(&s);
	s.roles[1].members = members;
	s.roles[1].n_members = 10000;
	assert_int_equal(fw_render_sets(&b, &s.p, NULL), 0);
	assert_non_null(strstr(b.data, "create MESHGATE-admin hash:ip family inet hashsize 1024 "
	                               "maxelem 1048576 -exist\n"
	                               "create MESHGATE-SWAP hash:ip family inet hashsize 1024 "
	                               "maxelem 1048576 -exist\n"
	                               "flush MESHGATE-SWAP\n"
	                               "add MESHGATE-SWAP 10.0.0.4 -exist\n"
	                               "swap MESHGATE-SWAP MESHGATE-admin\n"
	                               "destroy MESHGATE-SWAP\n"));
	assert_non_null(strstr(b.data, "create MESHGATE-SWAP hash:ip family inet hashsize 16384"));
	assert_non_null(strstr(b.data, "add MESHGATE-SWAP 10.100.39.15 -exist\n"));
	size_t adds = 0;
	for (const char *c = b.data; (c = strstr(c, "\nadd ")); c++)
		adds++;
	assert_int_equal(adds, 10001);
	fw_buf_free(&b);
	/* only the roles asked for */
	unsigned char only[2] = {0, 1};
	s.roles[1].n_members = 1;
	assert_int_equal(fw_render_sets(&b, &s.p, only), 0);
	assert_null(strstr(b.data, "MESHGATE-admin"));
	assert_non_null(strstr(b.data, "swap MESHGATE-SWAP MESHGATE-developer\n"));
	fw_buf_free(&b);
	free(members);
}

static const char save_text[] = "# Generated by iptables-save v1.8.9 (nf_tables)\n"
                                "*nat\n"
                                ":PREROUTING ACCEPT [0:0]\n"
                                "-A PREROUTING -j MESHGATE-NOTOURS\n"
                                "COMMIT\n"
                                "*filter\n"
                                ":INPUT DROP [0:0]\n"
                                ":FORWARD ACCEPT [0:0]\n"
                                ":OUTPUT ACCEPT [0:0]\n"
                                ":DOCKER - [0:0]\n"
                                ":MESHGATE-FORWARD - [0:0]\n"
                                ":MESHGATE-INPUT - [0:0]\n"
                                "-A INPUT -j MESHGATE-INPUT\n"
                                "-A INPUT -i eth0 -p tcp -m tcp --dport 22 -j ACCEPT\n"
                                "-A FORWARD -j MESHGATE-FORWARD\n"
                                "-A FORWARD -j DOCKER\n"
                                "-A FORWARD -i x -g MESHGATE-FORWARD\n"
                                "-A MESHGATE-INPUT -i wg0 -j MESHGATE-IN-VPN\n"
                                "COMMIT\n";

static void test_existing_and_teardown(void **unused)
{
	(void)unused;
	struct fw_existing e;
	struct fw_buf b = {0};
	assert_int_equal(fw_existing_parse(&e, save_text), 0);
	assert_int_equal(e.n_chains, 2);
	assert_string_equal(e.chains[0], "MESHGATE-FORWARD");
	assert_string_equal(e.chains[1], "MESHGATE-INPUT");
	assert_int_equal(e.n_hooks, 3); /* the nat table is not ours to read */
	assert_string_equal(e.hooks[0], "-A INPUT -j MESHGATE-INPUT");
	assert_string_equal(e.hooks[2], "-A FORWARD -i x -g MESHGATE-FORWARD");
	assert_int_equal(fw_render_teardown(&b, &e), 0);
	assert_string_equal(b.data, "*filter\n"
	                            "-D INPUT -j MESHGATE-INPUT\n"
	                            "-D FORWARD -j MESHGATE-FORWARD\n"
	                            "-D FORWARD -i x -g MESHGATE-FORWARD\n"
	                            "-F MESHGATE-FORWARD\n"
	                            "-F MESHGATE-INPUT\n"
	                            "-X MESHGATE-FORWARD\n"
	                            "-X MESHGATE-INPUT\n"
	                            "COMMIT\n");
	fw_buf_free(&b);
	fw_existing_free(&e);
	/* nothing of ours: nothing to remove */
	assert_int_equal(fw_existing_parse(&e, "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"), 0);
	assert_int_equal(e.n_hooks + e.n_chains, 0);
	fw_existing_free(&e);
	assert_int_equal(fw_existing_parse(&e, ""), 0);
	fw_existing_free(&e);
}

static json_t *config(const char *text)
{
	json_error_t jerr;
	json_t *c = json_loads(text, 0, &jerr);
	if (!c)
		fail_msg("bad test JSON: %s", jerr.text);
	return c;
}

#define DEFAULTS                                                                         \
	"\"public_interface\": \"\", \"vpn_host_ping\": true, \"resync_interval\": 60, " \
	"\"vpn_host_ports\": [\"8443/tcp\", \"53/udp\"], \"iptables_restore\": "         \
	"\"iptables-restore\", \"iptables_save\": \"iptables-save\", \"ipset\": \"ipset\""

static void test_config(void **unused)
{
	(void)unused;
	struct fw_cfg c;
	char err[512];
	json_t *j = config("{" DEFAULTS ", \"vpn_only_ports\": [\"8080/tcp\", \"8080/tcp\"], "
	                   "\"roles\": {\"developer\": [\"vpn\"], \"admin\": [\"vpn\", "
	                   "\"172.19.0.0/16\", \"172.20.0.0/24 via eth3\"]}}");
	assert_int_equal(fw_cfg_parse(&c, j, err, sizeof(err)), 0);
	assert_int_equal(c.n_roles, 2);
	assert_string_equal(c.roles[0].name, "admin"); /* sorted */
	assert_int_equal(c.roles[0].n_nets, 3);
	assert_true(c.roles[0].nets[0].vpn);
	assert_int_equal(c.roles[0].nets[1].prefix.addr, 0xac130000u);
	assert_string_equal(c.roles[0].nets[2].via, "eth3");
	assert_int_equal(c.n_vpn_only, 1); /* duplicates once */
	assert_int_equal(c.n_host_ports, 2);
	assert_false(c.flush_on_stop); /* absent: keep */
	fw_cfg_free(&c);
	json_object_set_new(j, "on_stop", json_string("flush"));
	assert_int_equal(fw_cfg_parse(&c, j, err, sizeof(err)), 0);
	assert_true(c.flush_on_stop);
	fw_cfg_free(&c);
	json_object_set_new(j, "on_stop", json_string("keep"));
	assert_int_equal(fw_cfg_parse(&c, j, err, sizeof(err)), 0);
	assert_false(c.flush_on_stop);
	fw_cfg_free(&c);
	json_decref(j);

	static const struct {
		const char *json, *says;
	} bad[] = {
	    {"{" DEFAULTS ", \"vpn_only_ports\": [\"8080\"], \"roles\": {}}", "vpn_only_ports"},
	    {"{" DEFAULTS ", \"vpn_only_ports\": [], \"roles\": {\"Dev\": []}}", "'Dev'"},
	    {"{" DEFAULTS ", \"vpn_only_ports\": [], \"roles\": {\"dev\": [\"10.0.0.1/24\"]}}",
	     "firewall.roles.dev"},
	    {"{" DEFAULTS ", \"vpn_only_ports\": [], \"roles\": {\"dev\": [\"10.0.0.0/24 via "
	     "a+\"]}}",
	     "via IFACE"},
	    {"{" DEFAULTS ", \"vpn_only_ports\": [], \"roles\": {\"dev\": \"vpn\"}}",
	     "list of subnets"},
	    {"{" DEFAULTS ", \"vpn_only_ports\": [], \"roles\": {}, \"on_stop\": \"drop\"}",
	     "firewall.on_stop"},
	    {"{" DEFAULTS ", \"vpn_only_ports\": [], \"roles\": {}, \"on_stop\": 1}",
	     "firewall.on_stop"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = config(bad[i].json);
		assert_int_equal(fw_cfg_parse(&c, j, err, sizeof(err)), -EINVAL);
		if (!strstr(err, bad[i].says))
			fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].says);
		json_decref(j);
	}
	j = config("{" DEFAULTS ", \"vpn_only_ports\": [], \"roles\": {}}");
	json_object_set_new(j, "public_interface", json_string("eth 0"));
	assert_int_equal(fw_cfg_parse(&c, j, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "public_interface"));
	json_object_set_new(j, "public_interface", json_string("eth0"));
	json_object_set_new(j, "full_tunnel_roles", json_pack("[s, s]", "guest", "guest"));
	json_object_set_new(j, "internet_roles", json_pack("[s]", "developer"));
	assert_int_equal(fw_cfg_parse(&c, j, err, sizeof(err)), 0);
	assert_int_equal(c.full_tunnel_roles.n, 1); /* duplicates once */
	assert_true(fw_role_named(&c.full_tunnel_roles, "guest"));
	assert_true(fw_role_named(&c.internet_roles, "developer"));
	assert_false(fw_role_named(&c.internet_roles, "guest"));
	fw_cfg_free(&c);
	json_object_set_new(j, "internet_roles", json_pack("[s]", "Dev"));
	assert_int_equal(fw_cfg_parse(&c, j, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "firewall.internet_roles: 'Dev'"));
	json_object_del(j, "internet_roles");
	json_object_set_new(j, "resync_interval", json_integer(-1));
	assert_int_equal(fw_cfg_parse(&c, j, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "resync_interval"));
	json_decref(j);
}

static void test_members(void **unused)
{
	(void)unused;
	struct fw_members *m = fw_members_new();
	struct fw_member e = {0};
	enum { N = 10000 };
	for (int i = 0; i < N; i++) {
		snprintf(e.id, sizeof(e.id), "%016x", i * 2654435761u);
		snprintf(e.role, sizeof(e.role), "%s", i % 2 ? "admin" : "developer");
		e.addr = 0x0a640000u + (uint32_t)i;
		assert_int_equal(fw_members_put(m, &e), 0);
	}
	assert_int_equal(fw_members_count(m), N);
	/* remove every third, then all the others are still found */
	for (int i = 0; i < N; i += 3) {
		snprintf(e.id, sizeof(e.id), "%016x", i * 2654435761u);
		fw_members_del(m, e.id);
	}
	for (int i = 0; i < N; i++) {
		snprintf(e.id, sizeof(e.id), "%016x", i * 2654435761u);
		const struct fw_member *got = fw_members_get(m, e.id);
		if (i % 3 == 0) {
			assert_null(got);
		} else {
			assert_non_null(got);
			assert_int_equal(got->addr, 0x0a640000u + (uint32_t)i);
		}
	}
	assert_int_equal(fw_members_count(m), N - (N + 2) / 3);
	fw_members_del(m, "nope");
	fw_members_free(m);

	json_t *d = config("{\"id\": \"a1\", \"user\": \"alice\", \"role\": \"admin\", "
	                   "\"address\": \"10.0.0.2/32\", \"state\": \"active\"}");
	assert_int_equal(fw_member_from_device(&e, "a1", d), 0);
	assert_int_equal(e.addr, 0x0a000002);
	assert_string_equal(e.user, "alice");
	json_object_set_new(d, "state", json_string("disabled"));
	assert_int_equal(fw_member_from_device(&e, "a1", d), -ENOENT);
	json_object_set_new(d, "state", json_string("active"));
	json_object_set_new(d, "address", json_string("10.0.0.0/24"));
	assert_int_equal(fw_member_from_device(&e, "a1", d), -ENOENT);
	assert_int_equal(fw_member_from_device(&e, "a1", NULL), -ENOENT);
	json_decref(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_rules),
	    cmocka_unit_test(test_mss_clamp),
	    cmocka_unit_test(test_rules_variants),
	    cmocka_unit_test(test_existing_and_teardown),
	    cmocka_unit_test(test_config),
	    cmocka_unit_test(test_members),
	    cmocka_unit_test(test_full_tunnel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
