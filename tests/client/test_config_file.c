/* The device's config file: mode 0600, wg-quick contents, read back. And the
 * export for the official apps, and its QR code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_file.h"
#include "export.h"

#define SERVER_KEY "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="

static const char reply_json[] = "{\"device_id\": \"dev-7\", \"address\": \"10.0.0.2/32\","
                                 " \"server_public_key\": \"" SERVER_KEY "\","
                                 " \"endpoint\": \"198.51.100.1:51820\","
                                 " \"allowed_ips\": [\"10.0.0.0/24\", \"192.168.0.0/16\"],"
                                 " \"keepalive\": 25, \"register_token\": \"tok\","
                                 " \"dns\": [\"10.0.0.1\", \"corp.example\"]}";

/* The private key: bytes 0..31; its base64 below. */
#define PRIVATE_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

static const char expected_export[] = "[Interface]\n"
                                      "PrivateKey = " PRIVATE_B64 "\n"
                                      "Address = 10.0.0.2/32\n"
                                      "DNS = 10.0.0.1, corp.example\n"
                                      "\n"
                                      "[Peer]\n"
                                      "PublicKey = " SERVER_KEY "\n"
                                      "Endpoint = 198.51.100.1:51820\n"
                                      "AllowedIPs = 10.0.0.0/24, 192.168.0.0/16\n"
                                      "PersistentKeepalive = 25\n";

struct fixture {
	char dir[64];
	struct cl_profile profile;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct cl_redeem_reply r;
	struct cl_err err = {0};
	uint8_t key[32];

	snprintf(f->dir, sizeof(f->dir), "/tmp/mg-client-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	assert_int_equal(cl_redeem_reply_decode(reply_json, strlen(reply_json), &r, &err), 0);
	cl_profile_from_reply(&f->profile, "https://gw.example:8443", &r, key);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static char *slurp(const char *path)
{
	static char buf[8192];
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static void assert_mode_0600(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void config_is_private_and_reads_back(void **state)
{
	struct fixture *f = *state;
	struct cl_err err = {0};
	struct cl_profile back;
	char dir[128], path[256];

	umask(0); /* mode 0600 must not depend on the caller's umask */
	snprintf(dir, sizeof(dir), "%s/etc/meshgate", f->dir);
	assert_int_equal(cl_make_dir(dir, &err), 0);
	assert_int_equal(cl_profile_path(dir, "mg0", path, sizeof(path)), 0);
	assert_int_equal(cl_profile_save(path, &f->profile, &err), 0);
	umask(022);
	assert_mode_0600(path);

	const char *text = slurp(path);
	assert_non_null(strstr(text, "# MeshgateServer = https://gw.example:8443\n"));
	assert_non_null(strstr(text, "# MeshgateDeviceId = dev-7\n"));
	/* Past the comments it is exactly the wg-quick config. */
	assert_string_equal(strstr(text, "[Interface]"), expected_export);

	assert_int_equal(cl_profile_load(path, &back, &err), 0);
	assert_memory_equal(&back, &f->profile, sizeof(back));

	/* No temp file left behind next to it. */
	char ls[256];
	snprintf(ls, sizeof(ls), "ls %s | grep -vx mg0.conf", dir);
	assert_int_not_equal(system(ls), 0);

	/* a key rotation under way: its next key is saved and read back, and
	 * never exported */
	for (int i = 0; i < 32; i++)
		f->profile.next_private_key[i] = (uint8_t)(100 + i);
	f->profile.has_next_key = true;
	assert_int_equal(cl_profile_save(path, &f->profile, &err), 0);
	assert_mode_0600(path);
	assert_non_null(strstr(slurp(path), "# MeshgateNextKey = "));
	assert_int_equal(cl_profile_load(path, &back, &err), 0);
	assert_true(back.has_next_key);
	assert_memory_equal(back.next_private_key, f->profile.next_private_key, 32);
	char *exported = cl_profile_render(&f->profile, false);
	assert_null(strstr(exported, "Meshgate"));
	cl_profile_text_free(exported);
	f->profile.has_next_key = false;
	assert_int_equal(cl_profile_save(path, &f->profile, &err), 0);
	assert_null(strstr(slurp(path), "MeshgateNextKey"));
}

static void rewriting_keeps_0600_and_replaces_atomically(void **state)
{
	struct fixture *f = *state;
	struct cl_err err = {0};
	char path[128];
	snprintf(path, sizeof(path), "%s/wg.conf", f->dir);
	FILE *fp = fopen(path, "w");
	fputs("old", fp);
	fclose(fp);
	chmod(path, 0644);
	assert_int_equal(cl_export_write(path, &f->profile, &err), 0);
	assert_mode_0600(path);
	assert_string_equal(slurp(path), expected_export);
}

static void export_without_dns_or_keepalive(void **state)
{
	struct fixture *f = *state;
	struct cl_err err = {0};
	char path[128];
	f->profile.n_dns = 0;
	f->profile.keepalive = 0;
	snprintf(path, sizeof(path), "%s/plain.conf", f->dir);
	assert_int_equal(cl_export_write(path, &f->profile, &err), 0);
	const char *text = slurp(path);
	assert_null(strstr(text, "DNS"));
	assert_null(strstr(text, "PersistentKeepalive"));
	assert_null(strstr(text, "Meshgate"));
}

static void unwritable_place_is_an_error(void **state)
{
	struct fixture *f = *state;
	struct cl_err err = {0};
	assert_int_equal(cl_export_write("/nonexistent/dir/x.conf", &f->profile, &err), -1);
	assert_int_equal(err.exit_code, CL_EXIT_FAILURE);
	assert_non_null(strstr(err.msg, "/nonexistent/dir/x.conf"));
}

static void parse_rejects_broken_configs(void **state)
{
	(void)state;
	struct cl_profile p;
	struct cl_err err = {0};
	assert_int_equal(cl_profile_parse("[Interface]\nPrivateKey = " PRIVATE_B64 "\n", &p, &err),
	                 -1);
	assert_non_null(strstr(err.msg, "incomplete"));
	memset(&err, 0, sizeof(err));
	assert_int_equal(cl_profile_parse("[Interface]\nAddress = 10.0.0.300/32\n", &p, &err), -1);
	assert_non_null(strstr(err.msg, "line 2"));
	memset(&err, 0, sizeof(err));
	assert_int_equal(cl_profile_parse(expected_export, &p, &err), 0);
	assert_int_equal(p.n_allowed_ips, 2);
	assert_int_equal(p.keepalive, 25);
	assert_string_equal(p.server_url, "");
}

static void qr_code_is_printed(void **state)
{
	struct fixture *f = *state;
	struct cl_err err = {0};
	char *out = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&out, &len);
	char *text = cl_profile_render(&f->profile, false);
	assert_int_equal(cl_qr_print(mem, text, &err), 0);
	fclose(mem);
	cl_profile_text_free(text);
	/* Square: each output line holds two rows of modules. */
	int lines = 0;
	for (char *s = out; (s = strchr(s, '\n')); s++)
		lines++;
	assert_true(lines > 20);
	char *first_end = strchr(out, '\n');
	size_t first_len = (size_t)(first_end - out);
	size_t header = strlen("\033[40;97m"), footer = strlen("\033[0m");
	/* The quiet-zone row is all full blocks (3 bytes each). */
	size_t columns = (first_len - header - footer) / 3;
	assert_int_equal((columns + 1) / 2, (size_t)lines);
	assert_memory_equal(out, "\033[40;97m\xe2\x96\x88", header + 3);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(config_is_private_and_reads_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(rewriting_keeps_0600_and_replaces_atomically, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(export_without_dns_or_keepalive, setup, teardown),
	    cmocka_unit_test_setup_teardown(unwritable_place_is_an_error, setup, teardown),
	    cmocka_unit_test(parse_rejects_broken_configs),
	    cmocka_unit_test_setup_teardown(qr_code_is_printed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
