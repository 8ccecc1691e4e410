/* The enrolment's steps (client/enroll.h) without the binary: against the
 * fake gateway API over real TLS (fake_api.h), with a stand-in for the
 * tunnel and the resolver that records what it was asked, so no test
 * needs root or touches a network. What each step leaves behind: the
 * config file from a redeem reply, nothing after a refused register or a
 * failed redeem, and the exit class of every failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <net/if.h>
#include <unistd.h>

#include "enroll.h"
#include "fake_api.h"
#include "trust.h"
#include "wg.h"

#define IFNAME "mge0"

static char dir[64], ca_file[128], rogue_file[128], config_dir[128], state_dir[128];
static char config_path[256], ca_copy_path[256], url[64];
static char ca_pin[128], ca_pin_canonical[128]; /* AB:CD:... and abcd... */
static struct test_pki pki;
static struct fake_api *api;
static int code_counter;

/* ---- the stand-in network ---- */

static struct {
	int checks, ups, waits, downs, resolvers;
	bool up;                    /* a tunnel is there */
	int registers_when_up;      /* the server's count when the tunnel came up */
	int registers_when_waiting; /* and when the wait for the handshake began */
	int fail_check, fail_wait;  /* the exit class to fail with, 0: succeed */
	char resolver_ifname[IF_NAMESIZE];
} net_log;

static int registers(void)
{
	int redeems, regs;
	fake_api_counts(api, &redeems, &regs);
	return regs;
}

static int redeems(void)
{
	int n, regs;
	fake_api_counts(api, &n, &regs);
	return n;
}

static int fake_check(const struct cl_tunnel_opts *o, struct cl_err *err)
{
	assert_string_equal(o->ifname, IFNAME);
	net_log.checks++;
	return net_log.fail_check ? cl_fail(err, net_log.fail_check, "no WireGuard here") : 0;
}

static int fake_up(const struct cl_tunnel_opts *o, const struct cl_profile *p, struct cl_err *err)
{
	(void)o, (void)p, (void)err;
	net_log.ups++;
	net_log.up = true;
	net_log.registers_when_up = registers();
	return 0;
}

static int fake_wait(const struct cl_tunnel_opts *o, const struct cl_profile *p, int timeout_s,
                     volatile sig_atomic_t *stop, long *waited_ms, struct cl_err *err)
{
	(void)o, (void)p, (void)stop;
	assert_int_equal(timeout_s, 7);
	assert_true(net_log.up);
	net_log.waits++;
	net_log.registers_when_waiting = registers();
	*waited_ms = 1200;
	return net_log.fail_wait
	           ? cl_fail(err, net_log.fail_wait, "no handshake within %d s", timeout_s)
	           : 0;
}

static int fake_down(const struct cl_tunnel_opts *o, bool missing_ok, struct cl_err *err)
{
	(void)o, (void)missing_ok, (void)err;
	net_log.downs++;
	net_log.up = false;
	return 0;
}

static void fake_resolver(const char *ifname, const struct cl_profile *p)
{
	(void)p;
	net_log.resolvers++;
	snprintf(net_log.resolver_ifname, sizeof(net_log.resolver_ifname), "%s", ifname);
}

static const struct cl_net fake_net = {fake_check, fake_up, fake_wait, fake_down, fake_resolver};

/* ---- helpers ---- */

static const char *new_code(const char *prefix)
{
	static char code[64];
	snprintf(code, sizeof(code), "%s-%d", prefix, ++code_counter);
	return code;
}

static struct cl_enroll_opts opts(const char *code)
{
	return (struct cl_enroll_opts){
	    .server_url = url,
	    .ca_file = ca_file,
	    .code = code,
	    .name = "laptop",
	    .config_dir = config_dir,
	    .tun = {IFNAME, state_dir, "auto"},
	    .api_timeout_s = 10,
	    .handshake_timeout_s = 7,
	};
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static char *slurp(const char *path)
{
	static char text[16384];
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	return text;
}

static void has_line(const char *text, const char *line)
{
	char want[512];
	snprintf(want, sizeof(want), "%s\n", line);
	if (!strstr(text, want))
		fail_msg("no line '%s' in:\n%s", line, text);
}

static int each_setup(void **state)
{
	(void)state;
	memset(&net_log, 0, sizeof(net_log));
	unlink(config_path);
	unlink(ca_copy_path);
	return 0;
}

/* ---- the steps ---- */

static void keys_are_a_pair(void **state)
{
	(void)state;
	uint8_t priv[CL_KEY_LEN], pub[CL_KEY_LEN], other[CL_KEY_LEN], derived[CL_KEY_LEN];
	struct cl_err err = {0};
	assert_int_equal(cl_enroll_keys(priv, pub, &err), 0);
	assert_int_equal(wg_key_public_from_private(derived, priv), 0);
	assert_memory_equal(pub, derived, CL_KEY_LEN);
	assert_false(wg_key_is_zero(priv));
	assert_int_equal(cl_enroll_keys(other, derived, &err), 0);
	assert_memory_not_equal(priv, other, CL_KEY_LEN);
}

static void redeem_step_decodes_the_reply(void **state)
{
	(void)state;
	struct cl_api_options o = {.server_url = url, .ca_file = ca_file, .timeout_s = 10};
	struct cl_api *a;
	struct cl_redeem_reply r;
	struct cl_err err = {0};
	char addr[CL_PREFIX_STRLEN], name[64];
	assert_int_equal(cl_api_open(&a, &o, &err), 0);
	assert_int_equal(cl_enroll_redeem(a, "GOOD-redeem", "phone", &r, &err), 0);
	assert_string_equal(r.device_id, "dev-GOOD-redeem");
	assert_string_equal(r.register_token, "tok-GOOD-redeem");
	cl_prefix_format(&r.address, addr, sizeof(addr));
	assert_string_equal(addr, "10.77.0.2/32");
	fake_api_last_name(api, name, sizeof(name));
	assert_string_equal(name, "phone");

	/* a refused code: the reply's class, nothing decoded */
	assert_int_equal(cl_enroll_redeem(a, "USED", "phone", &r, &err), -1);
	assert_int_equal(err.exit_code, CL_EXIT_CODE_USED);
	cl_api_close(a);
}

/* The redeem reply, as the config file the device keeps. */
static void redeem_reply_becomes_the_config_file(void **state)
{
	(void)state;
	const char *code = new_code("GOOD");
	struct cl_enroll_opts o = opts(code);
	struct cl_profile p;
	struct cl_err err = {0};
	struct stat st;
	char line[256], registered[64], pub_b64[WG_KEY_B64_LEN], id[64];
	wg_key pub;
	int before = registers();

	assert_int_equal(cl_enroll_run(&o, &fake_net, &p, &err), 0);
	assert_int_equal(stat(config_path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	const char *text = slurp(config_path);
	snprintf(line, sizeof(line), "# MeshgateServer = %s", url);
	has_line(text, line);
	snprintf(id, sizeof(id), "dev-%s", code);
	snprintf(line, sizeof(line), "# MeshgateDeviceId = %s", id);
	has_line(text, line);
	has_line(text, "# MeshgateCA = " IFNAME ".ca.pem");
	has_line(text, "Address = 10.77.0.2/32");
	has_line(text, "DNS = 10.77.0.1");
	has_line(text, "Endpoint = 127.0.0.1:51820");
	has_line(text, "AllowedIPs = 10.77.0.0/24");
	has_line(text, "PersistentKeepalive = 25");
	/* the trust of the enrolment, for a later sync: the CA, copied */
	assert_string_equal(slurp(ca_copy_path), pki.ca_pem);

	/* what was saved is what the run hands back, and its key is the one
	 * whose public half the server got */
	struct cl_profile saved;
	assert_int_equal(cl_profile_load(config_path, &saved, &err), 0);
	assert_string_equal(saved.device_id, id);
	assert_memory_equal(saved.private_key, p.private_key, CL_KEY_LEN);
	assert_int_equal(wg_key_public_from_private(pub, saved.private_key), 0);
	wg_key_to_base64(pub_b64, pub);
	fake_api_last_register(api, registered, sizeof(registered));
	assert_string_equal(registered, pub_b64);

	/* the tunnel: checked, up, the key registered before the handshake
	 * wait, the resolver set; never taken down */
	assert_int_equal(net_log.checks, 1);
	assert_int_equal(net_log.ups, 1);
	assert_int_equal(net_log.waits, 1);
	assert_int_equal(net_log.registers_when_up, before);
	assert_int_equal(net_log.registers_when_waiting, before + 1);
	assert_int_equal(net_log.downs, 0);
	assert_int_equal(net_log.resolvers, 1);
	assert_string_equal(net_log.resolver_ifname, IFNAME);
}

/* With --pin the saved trust is the pin, canonical, and no CA copy. */
static void pin_is_saved_not_a_ca(void **state)
{
	(void)state;
	struct cl_enroll_opts o = opts(new_code("GOOD"));
	struct cl_profile p;
	struct cl_err err = {0};
	char line[256];
	o.ca_file = NULL;
	o.pin = ca_pin;
	assert_int_equal(cl_enroll_run(&o, &fake_net, &p, &err), 0);
	snprintf(line, sizeof(line), "# MeshgatePin = %s", ca_pin_canonical);
	has_line(slurp(config_path), line);
	assert_null(strstr(slurp(config_path), "MeshgateCA"));
	assert_false(exists(ca_copy_path));
}

/* The server refuses the key: the tunnel is removed and no config stays,
 * since a config the server does not know is worthless. */
static void failed_register_leaves_nothing(void **state)
{
	(void)state;
	struct cl_enroll_opts o = opts(new_code("NOREG"));
	struct cl_profile p;
	struct cl_err err = {0};
	assert_int_equal(cl_enroll_run(&o, &fake_net, &p, &err), -1);
	assert_int_equal(err.exit_code, CL_EXIT_CODE_INVALID);
	assert_non_null(strstr(err.msg, "registration closed"));
	assert_int_equal(net_log.ups, 1);
	assert_int_equal(net_log.downs, 1);
	assert_false(net_log.up);
	assert_int_equal(net_log.waits, 0);
	assert_int_equal(net_log.resolvers, 0);
	assert_false(exists(config_path));
	assert_false(exists(ca_copy_path));
}

/* No handshake after the key was registered: the tunnel goes, the config
 * stays for `meshgate up` to retry, and the message says so. */
static void no_handshake_keeps_the_registered_config(void **state)
{
	(void)state;
	struct cl_enroll_opts o = opts(new_code("GOOD"));
	struct cl_profile p;
	struct cl_err err = {0};
	net_log.fail_wait = CL_EXIT_TUNNEL;
	assert_int_equal(cl_enroll_run(&o, &fake_net, &p, &err), -1);
	assert_int_equal(err.exit_code, CL_EXIT_TUNNEL);
	assert_string_equal(err.msg, "no handshake within 7 s; tunnel removed, retry with: "
	                             "meshgate up --interface " IFNAME);
	assert_false(net_log.up);
	assert_true(exists(config_path));
	assert_true(exists(ca_copy_path));
}

/* Interrupted once the tunnel is up: the key is not registered, nothing
 * stays. */
static void interrupt_before_register_leaves_nothing(void **state)
{
	(void)state;
	volatile sig_atomic_t stop = 1;
	struct cl_enroll_opts o = opts(new_code("GOOD"));
	struct cl_profile p;
	struct cl_err err = {0};
	int before = registers();
	o.stop = &stop;
	assert_int_equal(cl_enroll_run(&o, &fake_net, &p, &err), -1);
	assert_int_equal(err.exit_code, CL_EXIT_TUNNEL);
	assert_string_equal(err.msg, "interrupted");
	assert_int_equal(registers(), before);
	assert_false(net_log.up);
	assert_false(exists(config_path));
}

/* Each failure of the server, or of trust in it, has its exit code; none
 * leaves a file or touches the tunnel. */
static void errors_have_their_exit_codes(void **state)
{
	(void)state;
	static const struct {
		const char *code, *ca;
		int exit_code;
		const char *message;
	} cases[] = {
	    {"USED", NULL, 6, "code already used"},
	    {"EXPIRED", NULL, 7, "code expired"},
	    {"REVOKED", NULL, 7, "code revoked"},
	    {"UNKNOWN", NULL, 5, "unknown code"},
	    {"SLOW", NULL, 8, "too many attempts"},
	    {"BOOM", NULL, 4, "HTTP 500"},
	    {"JUNK", NULL, 4, "malformed reply"},
	    {"GOOD-untrusted", rogue_file, 3, "cannot verify the server"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cl_enroll_opts o = opts(cases[i].code);
		struct cl_profile p;
		struct cl_err err = {0};
		if (cases[i].ca)
			o.ca_file = cases[i].ca;
		memset(&net_log, 0, sizeof(net_log));
		assert_int_equal(cl_enroll_run(&o, &fake_net, &p, &err), -1);
		if (err.exit_code != cases[i].exit_code || !strstr(err.msg, cases[i].message))
			fail_msg("%s: exit %d '%s', wanted %d '%s'", cases[i].code, err.exit_code,
			         err.msg, cases[i].exit_code, cases[i].message);
		assert_int_equal(net_log.ups, 0);
		assert_false(exists(config_path));
		assert_false(exists(ca_copy_path));
	}
}

/* A local problem found before the code is spent: the code stays good. */
static void preflight_spends_no_code(void **state)
{
	(void)state;
	struct cl_enroll_opts o = opts(new_code("GOOD"));
	struct cl_profile p;
	struct cl_err err = {0};
	int before = redeems();

	net_log.fail_check = CL_EXIT_TUNNEL;
	assert_int_equal(cl_enroll_run(&o, &fake_net, &p, &err), -1);
	assert_int_equal(err.exit_code, CL_EXIT_TUNNEL);
	assert_string_equal(err.msg, "no WireGuard here");

	/* enrolled already */
	FILE *f = fopen(config_path, "w");
	assert_non_null(f);
	fclose(f);
	memset(&err, 0, sizeof(err));
	net_log.fail_check = 0;
	assert_int_equal(cl_enroll_run(&o, &fake_net, &p, &err), -1);
	assert_int_equal(err.exit_code, CL_EXIT_FAILURE);
	assert_non_null(strstr(err.msg, "is enrolled already"));
	assert_int_equal(redeems(), before);
	assert_int_equal(net_log.ups, 0);
}

/* --export: a plain wg-quick file, the key registered, no tunnel; a
 * refused register takes the file away again. */
static void export_writes_a_plain_config(void **state)
{
	(void)state;
	char path[256];
	struct cl_enroll_opts o = opts(new_code("GOOD"));
	struct cl_profile p;
	struct cl_err err = {0};
	int before = registers();
	snprintf(path, sizeof(path), "%s/export.conf", dir);
	o.export_path = path;
	assert_int_equal(cl_enroll_run(&o, &fake_net, &p, &err), 0);
	const char *text = slurp(path);
	assert_null(strstr(text, "Meshgate"));
	has_line(text, "[Interface]");
	has_line(text, "AllowedIPs = 10.77.0.0/24");
	assert_int_equal(registers(), before + 1);
	assert_int_equal(net_log.checks + net_log.ups, 0);
	assert_false(exists(config_path));

	o = opts(new_code("NOREG"));
	o.export_path = path;
	unlink(path);
	assert_int_equal(cl_enroll_run(&o, &fake_net, &p, &err), -1);
	assert_int_equal(err.exit_code, CL_EXIT_CODE_INVALID);
	assert_false(exists(path));
}

/* A reconnect: the tunnel and the handshake, no register. */
static void reconnect_registers_nothing(void **state)
{
	(void)state;
	struct cl_enroll_opts o = opts(new_code("GOOD"));
	struct cl_profile p;
	struct cl_err err = {0};
	assert_int_equal(cl_enroll_run(&o, &fake_net, &p, &err), 0);
	int before = registers();
	memset(&net_log, 0, sizeof(net_log));
	assert_int_equal(cl_connect(&fake_net, &o.tun, &p, 7, NULL, NULL, &err), 0);
	assert_int_equal(registers(), before);
	assert_int_equal(net_log.ups, 1);
	assert_int_equal(net_log.waits, 1);
	assert_int_equal(net_log.resolvers, 1);
	assert_true(net_log.up);
}

/* ---- the trust bundle (client/trust.h) ---- */

static size_t count_certs(const char *text)
{
	size_t n = 0;
	for (const char *s = text; (s = strstr(s, "-----BEGIN CERTIFICATE-----")); s++)
		n++;
	return n;
}

static struct fake_api *start_node(const char *chain, const char *key, const char *api_cas)
{
	struct fake_reply_template t = {.endpoint = "127.0.0.1:51820",
	                                .server_key =
	                                    "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
	                                .allowed_ips = "[\"10.77.0.0/24\"]",
	                                .address = "10.77.0.2/32",
	                                .keepalive = 25};
	snprintf(t.api_cas, sizeof(t.api_cas), "%s", api_cas ? api_cas : "");
	struct fake_api *node = fake_api_start(chain, key, &t, NULL, NULL);
	assert_non_null(node);
	return node;
}

/* A redeem against `node` trusting only the PEM file `trust`: 0, or the
 * exit class of the failure. */
static int redeem_with(struct fake_api *node, const char *trust)
{
	char node_url[64];
	struct cl_api *a = NULL;
	struct cl_redeem_reply *r = calloc(1, sizeof(*r));
	struct cl_err err = {0};
	snprintf(node_url, sizeof(node_url), "https://127.0.0.1:%u", fake_api_port(node));
	struct cl_api_options o = {.server_url = node_url, .ca_file = trust, .timeout_s = 10};
	int rc = cl_api_open(&a, &o, &err) || cl_enroll_redeem(a, new_code("GOOD"), NULL, r, &err);
	cl_api_close(a);
	free(r);
	return rc ? err.exit_code : 0;
}

/* Two nodes' CAs in one file: a server of either verifies, a third not. */
static void bundle_verifies_either_node_and_no_other(void **state)
{
	(void)state;
	char bundle[256];
	struct cl_err err = {0};
	size_t added = 0;
	snprintf(bundle, sizeof(bundle), "%s/bundle.pem", dir);
	assert_int_equal(cl_trust_bundle_write(ca_file, pki.ca2_pem, bundle, &added, &err), 0);
	assert_int_equal(added, 1);
	assert_int_equal(count_certs(slurp(bundle)), 2);

	struct fake_api *node2 = start_node(pki.chain2_pem, pki.key2_pem, NULL);
	struct fake_api *rogue = start_node(pki.rogue_chain_pem, pki.rogue_key_pem, NULL);
	assert_int_equal(redeem_with(api, bundle), 0);
	assert_int_equal(redeem_with(node2, bundle), 0);
	assert_int_equal(redeem_with(rogue, bundle), CL_EXIT_TLS);
	/* the single CA (a bundle of one) knows the first node only */
	assert_int_equal(redeem_with(node2, ca_file), CL_EXIT_TLS);
	fake_api_stop(node2);
	fake_api_stop(rogue);
	unlink(bundle);
}

/* Adding to a bundle: each CA once, the file untouched when nothing is
 * new, nothing written from bad input or past the limit. */
static void bundle_grows_each_ca_once(void **state)
{
	(void)state;
	char bundle[256], twice[8192], junk[256];
	struct cl_err err = {0};
	struct stat before, after;
	size_t added = 9;
	snprintf(bundle, sizeof(bundle), "%s/grow.pem", dir);
	write_file(bundle, pki.ca_pem);
	snprintf(twice, sizeof(twice), "%s%s%s", pki.ca2_pem, pki.ca_pem, pki.ca2_pem);
	assert_int_equal(cl_trust_bundle_write(bundle, twice, bundle, &added, &err), 0);
	assert_int_equal(added, 1);
	char expect[8192];
	snprintf(expect, sizeof(expect), "%s%s", pki.ca_pem, pki.ca2_pem);
	assert_string_equal(slurp(bundle), expect);

	assert_int_equal(stat(bundle, &before), 0);
	assert_int_equal(cl_trust_bundle_write(bundle, pki.ca2_pem, bundle, &added, &err), 0);
	assert_int_equal(added, 0);
	assert_int_equal(stat(bundle, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino); /* not rewritten */

	/* no certificate to start from: an error, nothing written */
	snprintf(junk, sizeof(junk), "%s/junk.pem", dir);
	write_file(junk, "not a certificate\n");
	char out[256];
	snprintf(out, sizeof(out), "%s/out.pem", dir);
	assert_int_equal(cl_trust_bundle_write(junk, pki.ca2_pem, out, &added, &err), -1);
	assert_false(exists(out));

	/* one certificate, CA or not, goes through append only when it is a CA */
	char text[8192] = "";
	assert_int_equal(cl_trust_append_ca(pki.ca2_pem, text, sizeof(text)), 0);
	assert_string_equal(text, pki.ca2_pem);
	assert_int_equal(cl_trust_append_ca(pki.chain_pem, text, sizeof(text)), -EINVAL);
	assert_int_equal(cl_trust_append_ca("junk", text, sizeof(text)), -EINVAL);
	assert_int_equal(cl_trust_append_ca(pki.ca_pem, text, 100), -ENOSPC);
	assert_string_equal(text, pki.ca2_pem);
	unlink(bundle);
	unlink(junk);
}

/* The redeem answer names every node's CA: the device's bundle holds them
 * with its anchor, the register and every later call verify against it. */
static void redeem_cas_join_the_bundle(void **state)
{
	(void)state;
	char cas[8192];
	json_t *list = json_pack("[s, s]", pki.ca_pem, pki.ca2_pem);
	char *text = json_dumps(list, JSON_COMPACT);
	snprintf(cas, sizeof(cas), "%s", text);
	free(text);
	json_decref(list);
	struct fake_api *node1 = start_node(pki.chain_pem, pki.key_pem, cas);
	char node_url[64];
	snprintf(node_url, sizeof(node_url), "https://127.0.0.1:%u", fake_api_port(node1));

	for (int pinned = 0; pinned < 2; pinned++) {
		struct cl_enroll_opts o = opts(new_code("GOOD"));
		struct cl_profile p;
		struct cl_err err = {0};
		char line[256];
		o.server_url = node_url;
		if (pinned) {
			o.ca_file = NULL;
			o.pin = ca_pin;
		}
		memset(&net_log, 0, sizeof(net_log));
		unlink(config_path);
		unlink(ca_copy_path);
		assert_int_equal(cl_enroll_run(&o, &fake_net, &p, &err), 0);
		const char *conf = slurp(config_path);
		has_line(conf, "# MeshgateCA = " IFNAME ".ca.pem");
		snprintf(line, sizeof(line), "# MeshgatePin = %s", ca_pin_canonical);
		if (pinned)
			has_line(conf, line);
		const char *bundle = slurp(ca_copy_path);
		assert_int_equal(count_certs(bundle), 2);
		assert_non_null(strstr(bundle, pki.ca_pem));
		assert_non_null(strstr(bundle, pki.ca2_pem));
		int redeems, regs;
		fake_api_counts(node1, &redeems, &regs);
		assert_int_equal(regs, pinned + 1);
	}
	/* the saved bundle verifies the other node */
	struct fake_api *node2 = start_node(pki.chain2_pem, pki.key2_pem, NULL);
	assert_int_equal(redeem_with(node2, ca_copy_path), 0);
	fake_api_stop(node2);
	fake_api_stop(node1);
}

/* An answer's api_cas that are not CA certificates: refused, nothing kept. */
static void bad_api_cas_are_refused(void **state)
{
	(void)state;
	json_t *list = json_pack("[s]", pki.chain_pem); /* a leaf first: not a CA */
	char *text = json_dumps(list, JSON_COMPACT);
	struct fake_api *node = start_node(pki.chain_pem, pki.key_pem, text);
	free(text);
	json_decref(list);
	char node_url[64];
	snprintf(node_url, sizeof(node_url), "https://127.0.0.1:%u", fake_api_port(node));
	struct cl_enroll_opts o = opts(new_code("GOOD"));
	struct cl_profile p;
	struct cl_err err = {0};
	o.server_url = node_url;
	assert_int_equal(cl_enroll_run(&o, &fake_net, &p, &err), -1);
	assert_int_equal(err.exit_code, CL_EXIT_SERVER);
	assert_non_null(strstr(err.msg, "api_cas"));
	assert_false(exists(config_path));
	assert_false(exists(ca_copy_path));
	fake_api_stop(node);
}

/* ---- setup ---- */

static int group_setup(void **state)
{
	(void)state;
	struct fake_reply_template t = {.endpoint = "127.0.0.1:51820",
	                                .allowed_ips = "[\"10.77.0.0/24\"]",
	                                .address = "10.77.0.2/32",
	                                .keepalive = 25};
	wg_key k;
	snprintf(dir, sizeof(dir), "/tmp/mg-client-enroll-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(ca_file, sizeof(ca_file), "%s/ca.pem", dir);
	snprintf(rogue_file, sizeof(rogue_file), "%s/rogue.pem", dir);
	snprintf(config_dir, sizeof(config_dir), "%s/etc", dir);
	snprintf(state_dir, sizeof(state_dir), "%s/run", dir);
	snprintf(config_path, sizeof(config_path), "%s/" IFNAME ".conf", config_dir);
	snprintf(ca_copy_path, sizeof(ca_copy_path), "%s/" IFNAME ".ca.pem", config_dir);
	assert_int_equal(test_pki_make(&pki), 0);
	write_file(ca_file, pki.ca_pem);
	write_file(rogue_file, pki.rogue_ca_pem);
	for (int i = 0; i < 32; i++) {
		snprintf(ca_pin + 3 * i, 4, "%02X%s", pki.ca_sha256[i], i < 31 ? ":" : "");
		snprintf(ca_pin_canonical + 2 * i, 3, "%02x", pki.ca_sha256[i]);
	}
	wg_key_generate_private(k);
	wg_key_to_base64(t.server_key, k);
	api = fake_api_start(pki.chain_pem, pki.key_pem, &t, NULL, NULL);
	assert_non_null(api);
	snprintf(url, sizeof(url), "https://127.0.0.1:%u", fake_api_port(api));
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	char cmd[128];
	fake_api_stop(api);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT))
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(keys_are_a_pair, each_setup),
	    cmocka_unit_test_setup(redeem_step_decodes_the_reply, each_setup),
	    cmocka_unit_test_setup(redeem_reply_becomes_the_config_file, each_setup),
	    cmocka_unit_test_setup(pin_is_saved_not_a_ca, each_setup),
	    cmocka_unit_test_setup(failed_register_leaves_nothing, each_setup),
	    cmocka_unit_test_setup(no_handshake_keeps_the_registered_config, each_setup),
	    cmocka_unit_test_setup(interrupt_before_register_leaves_nothing, each_setup),
	    cmocka_unit_test_setup(errors_have_their_exit_codes, each_setup),
	    cmocka_unit_test_setup(preflight_spends_no_code, each_setup),
	    cmocka_unit_test_setup(export_writes_a_plain_config, each_setup),
	    cmocka_unit_test_setup(reconnect_registers_nothing, each_setup),
	    cmocka_unit_test_setup(bundle_verifies_either_node_and_no_other, each_setup),
	    cmocka_unit_test_setup(bundle_grows_each_ca_once, each_setup),
	    cmocka_unit_test_setup(redeem_cas_join_the_bundle, each_setup),
	    cmocka_unit_test_setup(bad_api_cas_are_refused, each_setup),
	};
	int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
	curl_global_cleanup();
	return rc;
}
