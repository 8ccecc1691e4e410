/* One host, two users: meshgated and the mock core refuse the same bad
 * plugins and the same bad configs with the same messages, because both
 * run core/host.c and core/config.c. Each case drives both. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "mg_mock.h"

#define PLUGIN(name) TEST_PLUGIN_DIR "/meshgate-" name ".so"

static void assert_contains(const char *haystack, const char *needle)
{
	if (!strstr(haystack, needle))
		fail_msg("expected to find \"%s\" in:\n%s", needle, haystack);
}

/* meshgated --check-config on `extra`; its output in out. */
static void daemon_check_config(const char *extra, char *out, size_t outlen)
{
	struct daemon d;
	daemon_setup(&d, extra);
	int status = daemon_check(&d, out, outlen);
	daemon_teardown(&d); /* --check-config leaves no process behind */
	assert_int_equal(status, 1);
}

/* What the mock says when it loads `path` with `config`: "PATH: reason". */
static int mock_load(const char *path, json_t *config, char *err, size_t errlen)
{
	struct mg_mock *m = mg_mock_new(NULL, err, errlen);
	assert_non_null(m);
	int rc = mg_mock_load(m, path, config, err, errlen);
	mg_mock_free(m);
	return rc;
}

static void test_newer_abi_minor_is_refused(void **unused)
{
	(void)unused;
	char out[8192], err[512], want[512];
	daemon_check_config("plugins = [\"newminor\"];\n", out, sizeof(out));
	snprintf(want, sizeof(want),
	         "refused %s: built for plugin ABI %d.%d, this meshgated speaks %d.0 to %d.%d",
	         PLUGIN("newminor"), MG_ABI_MAJOR, MG_ABI_MINOR + 1, MG_ABI_MAJOR, MG_ABI_MAJOR,
	         MG_ABI_MINOR);
	assert_contains(out, want);

	assert_int_equal(mock_load(PLUGIN("newminor"), NULL, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, want + strlen("refused "));
}

/* Each refused file: the mock's message is the line meshgated logs. */
static void test_same_refusals(void **unused)
{
	(void)unused;
	static const char *const files[] = {PLUGIN("newminor"), PLUGIN("badabi"), PLUGIN("badsig"),
	                                    PLUGIN("nosymbol"), PLUGIN("absent")};
	char out[16384], err[512];
	daemon_check_config("plugins = [\"probe\", \"newminor\", \"badabi\", \"badsig\", "
	                    "\"nosymbol\", \"absent\", \"orphan\"];\n",
	                    out, sizeof(out));
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		assert_int_not_equal(mock_load(files[i], NULL, err, sizeof(err)), 0);
		assert_contains(out, err);
	}

	/* a missing dependency refuses only that plugin, in both */
	struct mg_mock *m = mg_mock_new(NULL, err, sizeof(err));
	assert_non_null(m);
	assert_int_equal(mg_mock_load(m, PLUGIN("probe"), NULL, err, sizeof(err)), 0);
	assert_int_equal(mg_mock_load(m, PLUGIN("orphan"), NULL, err, sizeof(err)), 0);
	assert_int_equal(mg_mock_start(m, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, PLUGIN("orphan") ": depends on 'nonexistent', which no loaded "
	                                          "plugin provides");
	assert_contains(out, err);
	json_t *regs = mg_mock_registrations(m, "probe");
	assert_string_equal(json_string_value(json_object_get(regs, "status")), "running");
	json_decref(regs);
	regs = mg_mock_registrations(m, "orphan");
	assert_string_equal(json_string_value(json_object_get(regs, "status")), "loaded");
	json_decref(regs);
	mg_mock_free(m);
}

/* The same bad section, as a file for meshgated and as JSON for the mock.
 * Both word it alike; meshgated, reading the whole file, puts FILE:LINE
 * first and names the setting from the top ('probe.count'), the mock
 * names the file of the plugin and the setting within the section it was
 * given ('count'). */
static void check_same_config_error(const char *section, const char *json, const char *reason)
{
	char extra[512], out[8192], err[512], want[512];
	snprintf(extra, sizeof(extra), "plugins = [\"probe\"];\nprobe = %s;\n", section);
	daemon_check_config(extra, out, sizeof(out));

	json_t *config = json_loads(json, 0, NULL);
	assert_non_null(config);
	assert_int_equal(mock_load(PLUGIN("probe"), config, err, sizeof(err)), -EINVAL);
	json_decref(config);
	snprintf(want, sizeof(want), "%s: %s", PLUGIN("probe"), reason);
	assert_string_equal(err, want);

	/* the daemon's message: the mock's with the section in the path */
	const char *quote = strchr(reason, '\'');
	assert_non_null(quote);
	snprintf(want, sizeof(want), ": %.*s'probe.%s", (int)(quote - reason), reason, quote + 1);
	assert_contains(out, want);
}

static void test_same_config_errors(void **unused)
{
	(void)unused;
	check_same_config_error("{ count = \"many\"; }", "{\"count\": \"many\"}",
	                        "setting 'count' must be an integer");
	check_same_config_error("{ count = 1.5; }", "{\"count\": 1.5}",
	                        "setting 'count' must be an integer");
	check_same_config_error("{ colour = 1; }", "{\"colour\": 1}", "unknown setting 'colour'");
	check_same_config_error("{ fail_init = \"yes\"; }", "{\"fail_init\": \"yes\"}",
	                        "setting 'fail_init' must be a boolean");
	/* a list where a string belongs: the mock used to check types only
	 * at the top and let nested values through */
	check_same_config_error("{ trace_file = [\"a\"]; }", "{\"trace_file\": [\"a\"]}",
	                        "setting 'trace_file' must be a string");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_newer_abi_minor_is_refused),
	    cmocka_unit_test(test_same_refusals),
	    cmocka_unit_test(test_same_config_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
