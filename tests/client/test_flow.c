/* meshgate against a fake gateway API over real TLS: trust (--ca, --pin, a
 * wrong pin, an untrusted CA, a wrong host name), the error classes and exit
 * codes, --export. As root, in a network namespace of its own, also the
 * whole tunnel: up (wireguard-go on both ends), status, down, reconnect
 * (MESHGATE_TEST_NO_TUNNEL=1 skips that part). argv[1] is the meshgate binary;
 * argv[2] "tunnel" runs the tunnel tests, which exit with SKIP_CODE when
 * there is no namespace for them, so that CTest shows them skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fake_api.h"
#include "nl.h"
#include "wg.h"

#define RUN_TIMEOUT_MS 60000
#define SKIP_CODE      77 /* the tests' SKIP_RETURN_CODE in CMakeLists.txt */

static const char *meshgate;
static char dir[64], ca_file[128], rogue_file[128], config_dir[128], state_dir[128];
static char url[64], other_url[64], closed_url[64];
static char ca_pin[128], leaf_pin[128], spki_pin[128];
static struct test_pki pki;
static struct fake_api *api, *other_api;
static int code_counter;

/* The gateway's end of the tunnel, when we may make one. */
static bool have_netns;
static bool want_tunnel; /* argv[2] is "tunnel" */
static const struct wg_backend *gw_be;
static char gw_if[IF_NAMESIZE], dev_if[IF_NAMESIZE];
static pid_t gw_pid;

struct run {
	int status;
	char out[16384], err[4096];
};

static void append(char *buf, size_t size, size_t *len, const char *data, size_t n)
{
	if (*len + n >= size)
		n = size - 1 - *len;
	memcpy(buf + *len, data, n);
	*len += n;
	buf[*len] = '\0';
}

/* Runs meshgate with args; both outputs must reach EOF in time (a daemon
 * that kept our stdout would hang a caller's $(meshgate up ...)). */
static void run(struct run *r, ...)
{
	char *argv[32];
	int n = 0, out[2], err[2];
	va_list ap;
	argv[n++] = (char *)meshgate;
	va_start(ap, r);
	while (n < 31 && (argv[n] = va_arg(ap, char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	memset(r, 0, sizeof(*r));
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(out[1], 1);
		dup2(err[1], 2);
		setenv("MESHGATE_CONFIG_DIR", config_dir, 1);
		setenv("MESHGATE_STATE_DIR", state_dir, 1);
		execv(meshgate, argv);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	struct pollfd p[2] = {{.fd = out[0], .events = POLLIN}, {.fd = err[0], .events = POLLIN}};
	size_t olen = 0, elen = 0;
	int open_fds = 2;
	while (open_fds) {
		int rc = poll(p, 2, RUN_TIMEOUT_MS);
		if (rc == 0)
			fail_msg("meshgate %s: output still open after %d ms", argv[1],
			         RUN_TIMEOUT_MS);
		for (int i = 0; i < 2; i++) {
			char buf[1024];
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			ssize_t got = read(p[i].fd, buf, sizeof(buf));
			if (got <= 0) {
				close(p[i].fd);
				p[i].fd = -1;
				open_fds--;
			} else if (i == 0) {
				append(r->out, sizeof(r->out), &olen, buf, (size_t)got);
			} else {
				append(r->err, sizeof(r->err), &elen, buf, (size_t)got);
			}
		}
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	r->status = WEXITSTATUS(status);
	if (getenv("MESHGATE_TEST_VERBOSE"))
		fprintf(stderr, "$ meshgate %s ... -> %d\n%s%s", argv[1], r->status, r->out,
		        r->err);
}

static void expect(const struct run *r, int status, const char *in_stderr)
{
	if (r->status != status)
		fail_msg("exit %d, wanted %d; stderr: %s; stdout: %s", r->status, status, r->err,
		         r->out);
	if (in_stderr && !strstr(r->err, in_stderr))
		fail_msg("stderr lacks '%s': %s", in_stderr, r->err);
}

/* A failure is one line: "meshgate: reason\n". */
static void expect_one_line(const struct run *r)
{
	assert_true(strncmp(r->err, "meshgate: ", 10) == 0);
	char *nl = strchr(r->err, '\n');
	assert_non_null(nl);
	assert_int_equal(nl[1], '\0');
}

static const char *new_code(const char *prefix)
{
	static char code[64];
	snprintf(code, sizeof(code), "%s-%d", prefix, ++code_counter);
	return code;
}

static void hex(const uint8_t *d, char *out, bool colons, bool upper)
{
	for (int i = 0; i < 32; i++)
		out += sprintf(out, upper ? "%02X%s" : "%02x%s", d[i], colons && i < 31 ? ":" : "");
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static int redeems(void)
{
	int a, b;
	fake_api_counts(api, &a, &b);
	return a;
}

/* ---- export and trust ---- */

static void check_export(const char *path, const char *code)
{
	struct stat st;
	char key_line[128], registered[64], pub_b64[WG_KEY_B64_LEN];
	wg_key priv, pub;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	FILE *f = fopen(path, "r");
	assert_non_null(fgets(key_line, sizeof(key_line), f)); /* [Interface] */
	assert_non_null(fgets(key_line, sizeof(key_line), f));
	fclose(f);
	assert_int_equal(strncmp(key_line, "PrivateKey = ", 13), 0);
	key_line[13 + 44] = '\0';
	assert_int_equal(wg_key_from_base64(priv, key_line + 13), 0);
	/* The server got the public key of the private key that stayed here. */
	assert_int_equal(wg_key_public_from_private(pub, priv), 0);
	wg_key_to_base64(pub_b64, pub);
	fake_api_last_register(api, registered, sizeof(registered));
	assert_string_equal(registered, pub_b64);
	(void)code;
}

static void export_with_ca(void **state)
{
	(void)state;
	struct run r;
	char path[256], name[128];
	const char *code = new_code("GOOD");
	snprintf(path, sizeof(path), "%s/export-ca.conf", dir);
	run(&r, "up", "--server", url, "--ca", ca_file, "--export", path, "--name", "laptop-7",
	    code, NULL);
	expect(&r, 0, NULL);
	check_export(path, code);
	fake_api_last_name(api, name, sizeof(name));
	assert_string_equal(name, "laptop-7");
	FILE *f = fopen(path, "r");
	char text[2048];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	assert_non_null(strstr(text, "\nAddress = 10.77.0.2/32\nDNS = 10.77.0.1\n"));
	assert_non_null(strstr(text, "\n[Peer]\nPublicKey = "));
	assert_non_null(strstr(text, "\nAllowedIPs = 10.77.0.0/24\n"));
	assert_null(strstr(text, "Meshgate")); /* plain wg-quick for the apps */
}

static void export_with_each_pin_form(void **state)
{
	(void)state;
	const char *pins[] = {ca_pin, leaf_pin, spki_pin};
	for (int i = 0; i < 3; i++) {
		struct run r;
		char path[256];
		snprintf(path, sizeof(path), "%s/export-pin%d.conf", dir, i);
		run(&r, "up", "--server", url, "--pin", pins[i], "--export", path, new_code("GOOD"),
		    NULL);
		expect(&r, 0, NULL);
		check_export(path, NULL);
	}
}

static void export_with_qr(void **state)
{
	(void)state;
	struct run r;
	char path[256];
	snprintf(path, sizeof(path), "%s/export-qr.conf", dir);
	run(&r, "up", "--server", url, "--ca", ca_file, "--export", path, "--qr", new_code("GOOD"),
	    NULL);
	expect(&r, 0, NULL);
	assert_non_null(strstr(r.out, "\xe2\x96\x80")); /* half blocks */
	assert_non_null(strstr(r.out, "\xe2\x96\x84"));
}

static void refused(const char *trust_flag, const char *trust, const char *server_url,
                    const char *message)
{
	struct run r;
	char path[256];
	int before = redeems();
	snprintf(path, sizeof(path), "%s/refused.conf", dir);
	if (trust_flag)
		run(&r, "up", "--server", server_url, trust_flag, trust, "--export", path,
		    new_code("GOOD"), NULL);
	else
		run(&r, "up", "--server", server_url, "--export", path, new_code("GOOD"), NULL);
	expect(&r, 3, message);
	expect_one_line(&r);
	assert_false(exists(path));
	/* The code never reached a server we do not trust. */
	assert_int_equal(redeems(), before);
}

static void wrong_pin_is_refused(void **state)
{
	(void)state;
	refused("--pin",
	        "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:"
	        "88:99:AA:BB:CC:DD:EE:FF",
	        url, "does not match --pin");
	refused("--pin", "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", url,
	        "does not match --pin");
}

static void untrusted_ca_is_refused(void **state)
{
	(void)state;
	refused("--ca", rogue_file, url, "cannot verify the server");
	refused(NULL, NULL, url, "cannot verify the server"); /* system store */
}

static void wrong_host_name_is_refused(void **state)
{
	(void)state;
	/* A certificate from the right CA, for another name. */
	refused("--ca", ca_file, other_url, "cannot verify the server");
	refused("--pin", ca_pin, other_url, "cannot verify the server");
}

/* ---- error classes ---- */

static void error_replies_have_their_exit_codes(void **state)
{
	(void)state;
	static const struct {
		const char *code;
		int status;
		const char *message;
	} cases[] = {
	    {"USED", 6, "meshgate: code already used\n"},
	    {"EXPIRED", 7, "meshgate: code expired\n"},
	    {"REVOKED", 7, "meshgate: code revoked\n"},
	    {"UNKNOWN", 5, "meshgate: unknown code\n"},
	    {"SLOW", 8, "too many attempts"},
	    {"BOOM", 4, "HTTP 500"},
	    {"JUNK", 4, "malformed reply"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r;
		char path[256];
		snprintf(path, sizeof(path), "%s/err.conf", dir);
		run(&r, "up", "--server", url, "--ca", ca_file, "--export", path, cases[i].code,
		    NULL);
		expect(&r, cases[i].status, cases[i].message);
		expect_one_line(&r);
		assert_false(exists(path));
	}
}

static void refused_registration_leaves_no_file(void **state)
{
	(void)state;
	struct run r;
	char path[256];
	snprintf(path, sizeof(path), "%s/noreg.conf", dir);
	run(&r, "up", "--server", url, "--ca", ca_file, "--export", path, new_code("NOREG"), NULL);
	expect(&r, 5, "registration closed");
	expect_one_line(&r);
	assert_false(exists(path));
}

static void unreachable_server(void **state)
{
	(void)state;
	struct run r;
	char path[256];
	snprintf(path, sizeof(path), "%s/unreach.conf", dir);
	run(&r, "up", "--server", closed_url, "--ca", ca_file, "--export", path, "GOOD", NULL);
	expect(&r, 4, "cannot reach the server");
	run(&r, "up", "--server", closed_url, "--pin", ca_pin, "--export", path, "GOOD", NULL);
	expect(&r, 4, "cannot connect");
	assert_false(exists(path));
}

static void usage_errors(void **state)
{
	(void)state;
	struct run r;
	run(&r, "up", "--server", url, "--ca", ca_file, "--pin", ca_pin, "X", NULL);
	expect(&r, 2, "not both");
	run(&r, "up", "--server", "http://127.0.0.1:1", "--export", "/tmp/x", "X", NULL);
	expect(&r, 2, "https://");
	run(&r, "up", "--server", url, "--pin", "abcd", "--export", "/tmp/x", "X", NULL);
	expect(&r, 2, "--pin");
	run(&r, "frobnicate", NULL);
	expect(&r, 2, "unknown command");
	run(&r, "down", "--qr", NULL);
	expect(&r, 2, "does not apply");
	run(&r, "up", "--interface", "much-too-long-name", "X", NULL);
	expect(&r, 2, "interface name");
	run(&r, "up", "--server", url, "--qr", "X", NULL);
	expect(&r, 2, "--export");
	run(&r, "watch", "--interval", "0", NULL);
	expect(&r, 2, "--interval");
	run(&r, "sync", "--interval", "5", NULL);
	expect(&r, 2, "does not apply");
	run(&r, "sync", "--server", url, NULL);
	expect(&r, 2, "does not apply");
	run(&r, "sync", "extra", NULL);
	expect(&r, 2, "unexpected argument");
	/* nothing enrolled under this name: exit 10 (as root; else not root: 1) */
	run(&r, "sync", "--interface", "mgnone0", NULL);
	expect(&r, geteuid() == 0 ? 10 : 1, geteuid() == 0 ? "not enrolled" : "root");
	run(&r, "--version", NULL);
	expect(&r, 0, NULL);
	assert_true(strncmp(r.out, "meshgate ", 9) == 0);
	run(&r, "--help", NULL);
	expect(&r, 0, NULL);
	assert_non_null(strstr(r.out, "--pin"));
	assert_non_null(strstr(r.out, "meshgate watch"));
}

/* ---- the tunnel (root, own network namespace) ---- */

static void on_register(void *arg, const char *code, const char *public_key)
{
	struct wg_allowed_ip ip;
	struct wg_peer peer = {0};
	(void)arg;
	if (!gw_be || strstr(code, "NOPEER"))
		return;
	wg_allowed_ip_parse(&ip, "10.77.0.2/32");
	wg_key_from_base64(peer.public_key, public_key);
	peer.flags = WG_PEER_REPLACE_ALLOWED;
	peer.allowed_ips = &ip;
	peer.n_allowed_ips = 1;
	wg_peers_upsert(gw_be, gw_if, &peer, 1, NULL, 0);
}

static void config_path(char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s.conf", config_dir, dev_if);
}

static pid_t daemon_pid(void)
{
	char path[256], line[64];
	pid_t pid = 0;
	snprintf(path, sizeof(path), "%s/%s.state", state_dir, dev_if);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "pid=", 4))
			pid = (pid_t)atol(line + 4);
	fclose(f);
	return pid;
}

static void assert_gone(pid_t pid)
{
	char path[256];
	assert_true(nl_link_index(dev_if) < 0);
	if (pid > 0) {
		for (int i = 0; i < 100 && kill(pid, 0) == 0; i++)
			usleep(20000);
		assert_int_equal(kill(pid, 0), -1);
	}
	snprintf(path, sizeof(path), "%s/%s.state", state_dir, dev_if);
	assert_false(exists(path));
	snprintf(path, sizeof(path), "%s/%s.log", state_dir, dev_if);
	assert_false(exists(path));
	snprintf(path, sizeof(path), "/var/run/wireguard/%s.sock", dev_if);
	assert_false(exists(path));
}

static void tunnel_wrong_pin_creates_nothing(void **state)
{
	(void)state;
	struct run r;
	char path[256];
	if (!have_netns)
		skip();
	config_path(path, sizeof(path));
	run(&r, "up", "--server", url, "--pin", leaf_pin + 1, "--interface", dev_if,
	    new_code("GOOD"), NULL);
	expect(&r, 2, "--pin"); /* 63 digits: a usage error */
	run(&r, "up", "--server", url, "--pin", spki_pin + 1, "--interface", dev_if,
	    new_code("GOOD"), NULL);
	expect(&r, 2, "--pin");
	int before = redeems();
	run(&r, "up", "--server", url, "--pin",
	    "0000000000000000000000000000000000000000000000000000000000000000", "--interface",
	    dev_if, new_code("GOOD"), NULL);
	expect(&r, 3, "does not match --pin");
	expect_one_line(&r);
	assert_true(nl_link_index(dev_if) < 0);
	assert_false(exists(path));
	run(&r, "up", "--server", url, "--ca", rogue_file, "--interface", dev_if, new_code("GOOD"),
	    NULL);
	expect(&r, 3, "cannot verify");
	expect_one_line(&r);
	assert_int_equal(redeems(), before);
	assert_true(nl_link_index(dev_if) < 0);
	assert_false(exists(path));
}

static void tunnel_up_status_down(void **state)
{
	(void)state;
	struct run r;
	struct stat st;
	struct nl_route_match via;
	char path[256];
	if (!have_netns)
		skip();
	config_path(path, sizeof(path));

	run(&r, "up", "--server", url, "--ca", ca_file, "--interface", dev_if, new_code("GOOD"),
	    NULL);
	expect(&r, 0, NULL);
	assert_non_null(strstr(r.out, "is up"));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_true(nl_link_index(dev_if) > 0);
	assert_int_equal(nl_route_lookup("10.77.0.0/24", &via), 0);
	assert_string_equal(via.ifname, dev_if);
	pid_t pid = daemon_pid();
	assert_true(pid > 0);

	run(&r, "status", "--interface", dev_if, "--json", NULL);
	expect(&r, 0, NULL);
	assert_non_null(strstr(r.out, "\"up\": true"));
	assert_non_null(strstr(r.out, "\"address\": \"10.77.0.2/32\""));
	assert_null(strstr(r.out, "\"last_handshake\": null"));
	run(&r, "status", "--interface", dev_if, NULL);
	expect(&r, 0, NULL);
	assert_non_null(strstr(r.out, "seconds ago"));

	/* A second up of the same interface is refused before any redeem. */
	int before = redeems();
	run(&r, "up", "--server", url, "--ca", ca_file, "--interface", dev_if, new_code("GOOD"),
	    NULL);
	expect(&r, 1, "enrolled already");
	assert_int_equal(redeems(), before);

	run(&r, "down", "--interface", dev_if, NULL);
	expect(&r, 0, NULL);
	assert_gone(pid);
	assert_true(exists(path)); /* enrolled still: up reconnects */
	run(&r, "down", "--interface", dev_if, NULL);
	expect(&r, 10, "is not up");
	run(&r, "status", "--interface", dev_if, NULL);
	expect(&r, 10, NULL);
	assert_non_null(strstr(r.out, "state: down"));

	run(&r, "up", "--interface", dev_if, NULL);
	expect(&r, 0, NULL);
	pid = daemon_pid();
	run(&r, "down", "--interface", dev_if, "--forget", NULL);
	expect(&r, 0, NULL);
	assert_gone(pid);
	assert_false(exists(path));
}

static void no_handshake_tears_down(void **state)
{
	(void)state;
	struct run r;
	char path[256];
	if (!have_netns)
		skip();
	config_path(path, sizeof(path));
	run(&r, "up", "--server", url, "--ca", ca_file, "--interface", dev_if, "--timeout", "3",
	    new_code("GOOD-NOPEER"), NULL);
	expect(&r, 9, "no handshake");
	expect_one_line(&r);
	assert_gone(0);
	assert_true(exists(path)); /* registered: kept for a retry */
	run(&r, "down", "--interface", dev_if, "--forget", NULL);
	expect(&r, 0, NULL);
	assert_false(exists(path));
}

/* ---- setup ---- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A namespace of our own: the tunnel tests touch no real interface. */
static void enter_netns(void)
{
	if (!want_tunnel || getenv("MESHGATE_TEST_NO_TUNNEL") || geteuid() != 0 ||
	    access("/dev/net/tun", R_OK | W_OK) || unshare(CLONE_NEWNET) ||
	    nl_link_set_up("lo", true))
		return;
	have_netns = true;
}

static void start_gateway(struct fake_reply_template *t)
{
	wg_key priv, pub;
	char msg[256] = "";
	if (!have_netns)
		return;
	snprintf(gw_if, sizeof(gw_if), "mgg%d", (int)(getpid() % 100000));
	if (wg_backend_select("auto", &gw_be, msg, sizeof(msg)) ||
	    wg_interface_create(gw_be, gw_if, WG_CREATE_DIE_WITH_PARENT, &gw_pid, msg,
	                        sizeof(msg)) ||
	    wg_key_generate_private(priv) || wg_key_public_from_private(pub, priv) ||
	    wg_device_configure(gw_be, gw_if, priv, 51820, -1, msg, sizeof(msg)) ||
	    nl_link_set_up(gw_if, true)) {
		fprintf(stderr, "no gateway interface (%s): tunnel tests skipped\n", msg);
		have_netns = false;
		gw_be = NULL;
		return;
	}
	wg_key_to_base64(t->server_key, pub);
}

static int group_setup(void **state)
{
	(void)state;
	struct fake_reply_template t = {.endpoint = "127.0.0.1:51820",
	                                .allowed_ips = "[\"10.77.0.0/24\"]",
	                                .address = "10.77.0.2/32",
	                                .keepalive = 0};
	char h[65];
	enter_netns();
	snprintf(dir, sizeof(dir), "/tmp/mg-client-flow-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(ca_file, sizeof(ca_file), "%s/ca.pem", dir);
	snprintf(rogue_file, sizeof(rogue_file), "%s/rogue.pem", dir);
	snprintf(config_dir, sizeof(config_dir), "%s/etc", dir);
	snprintf(state_dir, sizeof(state_dir), "%s/run", dir);
	snprintf(dev_if, sizeof(dev_if), "mgc%d", (int)(getpid() % 100000));
	assert_int_equal(test_pki_make(&pki), 0);
	write_file(ca_file, pki.ca_pem);
	write_file(rogue_file, pki.rogue_ca_pem);
	hex(pki.ca_sha256, ca_pin, true, true); /* AB:CD:... as openssl prints it */
	hex(pki.leaf_sha256, h, false, false);  /* abcd... */
	snprintf(leaf_pin, sizeof(leaf_pin), "sha256:%s", h);
	strcpy(spki_pin, "sha256//");
	sodium_bin2base64(spki_pin + 8, sizeof(spki_pin) - 8, pki.leaf_spki_sha256, 32,
	                  sodium_base64_VARIANT_ORIGINAL);

	wg_key k;
	wg_key_generate_private(k);
	wg_key_to_base64(t.server_key, k); /* any key, when there is no gateway */
	start_gateway(&t);
	api = fake_api_start(pki.chain_pem, pki.key_pem, &t, on_register, NULL);
	other_api = fake_api_start(pki.other_chain_pem, pki.other_key_pem, &t, NULL, NULL);
	assert_non_null(api);
	assert_non_null(other_api);
	snprintf(url, sizeof(url), "https://127.0.0.1:%u", fake_api_port(api));
	snprintf(other_url, sizeof(other_url), "https://127.0.0.1:%u", fake_api_port(other_api));
	/* A port nobody listens on: the other server's, once it is stopped
	 * would race; port 1 needs no one. */
	snprintf(closed_url, sizeof(closed_url), "https://127.0.0.1:1");
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	char cmd[128];
	fake_api_stop(api);
	fake_api_stop(other_api);
	if (gw_be)
		wg_interface_delete(gw_be, gw_if, gw_pid, NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PATH-TO-MESHGATE\n", argv[0]);
		return 2;
	}
	meshgate = argv[1];
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(export_with_ca),
	    cmocka_unit_test(export_with_each_pin_form),
	    cmocka_unit_test(export_with_qr),
	    cmocka_unit_test(wrong_pin_is_refused),
	    cmocka_unit_test(untrusted_ca_is_refused),
	    cmocka_unit_test(wrong_host_name_is_refused),
	    cmocka_unit_test(error_replies_have_their_exit_codes),
	    cmocka_unit_test(refused_registration_leaves_no_file),
	    cmocka_unit_test(unreachable_server),
	    cmocka_unit_test(usage_errors),
	};
	const struct CMUnitTest tunnel_tests[] = {
	    cmocka_unit_test(tunnel_wrong_pin_creates_nothing),
	    cmocka_unit_test(tunnel_up_status_down),
	    cmocka_unit_test(no_handshake_tears_down),
	};
	int rc;

	want_tunnel = argc > 2 && !strcmp(argv[2], "tunnel");
	if (!want_tunnel)
		return cmocka_run_group_tests(tests, group_setup, group_teardown);
	rc = cmocka_run_group_tests(tunnel_tests, group_setup, group_teardown);
	/* every one of them called skip(): not a pass */
	return rc == 0 && !have_netns ? SKIP_CODE : rc;
}
