/* The text format of /metrics (lib/metrics): escaping, histograms, NaN and
 * infinities, and families that are left out rather than written wrong. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

/* Renders `families` (JSON text) alone; the page, and *left_out. */
static char *render(const char *families_json, int *left_out)
{
	char *text = NULL;
	size_t len = 0;
	json_error_t error;
	json_t *families = json_loads(families_json, 0, &error);
	json_t *seen = json_object();
	assert_non_null(families);
	FILE *out = open_memstream(&text, &len);
	assert_non_null(out);
	*left_out = metrics_render(out, families, seen);
	fclose(out);
	json_decref(families);
	json_decref(seen);
	return text;
}

static void counter_with_labels(void **state)
{
	(void)state;
	int left_out;
	char *text = render("[{\"name\": \"meshgate_x_total\", \"type\": \"counter\", "
	                    "\"help\": \"Things.\", \"samples\": ["
	                    "{\"labels\": {\"reason\": \"code_used\"}, \"value\": 3},"
	                    "{\"labels\": {}, \"value\": 0.5}]}]",
	                    &left_out);
	assert_int_equal(left_out, 0);
	assert_string_equal(text, "# HELP meshgate_x_total Things.\n"
	                          "# TYPE meshgate_x_total counter\n"
	                          "meshgate_x_total{reason=\"code_used\"} 3\n"
	                          "meshgate_x_total 0.5\n");
	free(text);
}

static void escaping(void **state)
{
	(void)state;
	int left_out;
	char *text = render("[{\"name\": \"g\", \"type\": \"gauge\", "
	                    "\"help\": \"back\\\\slash \\\"q\\\"\\nline\", \"samples\": ["
	                    "{\"labels\": {\"a\": \"x\\\\y\\\"z\\nw\", \"b\": \"é\"}, "
	                    "\"value\": -2}]}]",
	                    &left_out);
	assert_int_equal(left_out, 0);
	/* HELP: backslash and newline escaped, a quote kept; a label value all three */
	assert_string_equal(text, "# HELP g back\\\\slash \"q\"\\nline\n"
	                          "# TYPE g gauge\n"
	                          "g{a=\"x\\\\y\\\"z\\nw\",b=\"é\"} -2\n");
	free(text);
}

static void nan_and_infinities(void **state)
{
	(void)state;
	int left_out;
	json_t *families = json_array();
	json_t *g = metrics_family(families, "g", "gauge", "h");
	metrics_sample(g, json_pack("{s:s}", "k", "nan"), NAN);
	metrics_sample(g, json_pack("{s:s}", "k", "inf"), INFINITY);
	metrics_sample(g, json_pack("{s:s}", "k", "-inf"), -INFINITY);
	metrics_sample(g, json_pack("{s:s}", "k", "big"), 1e300);
	metrics_sample(g, json_pack("{s:s}", "k", "tenth"), 0.1);
	char *json = json_dumps(families, 0);
	char *text = render(json, &left_out);
	assert_int_equal(left_out, 0);
	assert_non_null(strstr(text, "g{k=\"nan\"} NaN\n"));
	assert_non_null(strstr(text, "g{k=\"inf\"} +Inf\n"));
	assert_non_null(strstr(text, "g{k=\"-inf\"} -Inf\n"));
	assert_non_null(strstr(text, "g{k=\"big\"} 1e+300\n"));
	assert_non_null(strstr(text, "g{k=\"tenth\"} 0.1\n"));
	free(text);
	free(json);
	json_decref(families);
}

static void histogram(void **state)
{
	(void)state;
	static const double bounds[] = {1, 2.5, 10};
	struct metrics_histogram h;
	int left_out;
	metrics_histogram_init(&h, bounds, 3);
	metrics_observe(&h, 0.5);
	metrics_observe(&h, 2.5); /* on a bound: in that bucket */
	metrics_observe(&h, 3);
	metrics_observe(&h, 100); /* past the last: +Inf only */
	json_t *families = json_array();
	json_t *f = metrics_family(families, "meshgate_age_seconds", "histogram", "Age.");
	metrics_histogram_sample(f, json_pack("{s:s}", "role", "staff"), &h);
	char *json = json_dumps(families, 0);
	char *text = render(json, &left_out);
	assert_int_equal(left_out, 0);
	assert_string_equal(text, "# HELP meshgate_age_seconds Age.\n"
	                          "# TYPE meshgate_age_seconds histogram\n"
	                          "meshgate_age_seconds_bucket{role=\"staff\",le=\"1\"} 1\n"
	                          "meshgate_age_seconds_bucket{role=\"staff\",le=\"2.5\"} 2\n"
	                          "meshgate_age_seconds_bucket{role=\"staff\",le=\"10\"} 3\n"
	                          "meshgate_age_seconds_bucket{role=\"staff\",le=\"+Inf\"} 4\n"
	                          "meshgate_age_seconds_sum{role=\"staff\"} 106\n"
	                          "meshgate_age_seconds_count{role=\"staff\"} 4\n");
	free(text);
	free(json);
	json_decref(families);
}

/* Each of these is wrong in one way: left out, the good one kept. */
static void bad_families_left_out(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "{\"name\": \"1x\", \"type\": \"gauge\", \"help\": \"\", \"samples\": []}",
	    "{\"name\": \"x y\", \"type\": \"gauge\", \"help\": \"\", \"samples\": []}",
	    "{\"name\": \"x\", \"type\": \"summary\", \"help\": \"\", \"samples\": []}",
	    "{\"name\": \"x\", \"type\": \"counter\", \"help\": \"\", \"samples\": []}",
	    "{\"name\": \"x_total\", \"type\": \"gauge\", \"help\": \"\", \"samples\": []}",
	    "{\"name\": \"x_total\", \"type\": \"counter\", \"help\": \"\", \"samples\": "
	    "[{\"labels\": {}, \"value\": -1}]}",
	    "{\"name\": \"x\", \"type\": \"gauge\", \"samples\": []}",
	    "{\"name\": \"x\", \"type\": \"gauge\", \"help\": \"\", \"samples\": "
	    "[{\"labels\": {\"__a\": \"1\"}, \"value\": 1}]}",
	    "{\"name\": \"x\", \"type\": \"gauge\", \"help\": \"\", \"samples\": "
	    "[{\"labels\": {\"a-b\": \"1\"}, \"value\": 1}]}",
	    "{\"name\": \"x\", \"type\": \"gauge\", \"help\": \"\", \"samples\": "
	    "[{\"labels\": {\"a\": 1}, \"value\": 1}]}",
	    "{\"name\": \"x\", \"type\": \"gauge\", \"help\": \"\", \"samples\": "
	    "[{\"labels\": {}, \"value\": \"many\"}]}",
	    "{\"name\": \"h\", \"type\": \"histogram\", \"help\": \"\", \"samples\": "
	    "[{\"labels\": {\"le\": \"1\"}, \"buckets\": [], \"sum\": 0, \"count\": 0}]}",
	    "{\"name\": \"h\", \"type\": \"histogram\", \"help\": \"\", \"samples\": "
	    "[{\"labels\": {}, \"buckets\": [[2, 1], [1, 1]], \"sum\": 0, \"count\": 1}]}",
	    "{\"name\": \"h\", \"type\": \"histogram\", \"help\": \"\", \"samples\": "
	    "[{\"labels\": {}, \"buckets\": [[1, 2], [2, 1]], \"sum\": 0, \"count\": 2}]}",
	    "{\"name\": \"h\", \"type\": \"histogram\", \"help\": \"\", \"samples\": "
	    "[{\"labels\": {}, \"buckets\": [[1, 3]], \"sum\": 0, \"count\": 2}]}",
	    "{\"name\": \"h\", \"type\": \"histogram\", \"help\": \"\", \"samples\": "
	    "[{\"labels\": {}, \"buckets\": [[\"+Inf\", 1]], \"sum\": 0, \"count\": 1}]}",
	    "{\"name\": \"h_count\", \"type\": \"histogram\", \"help\": \"\", \"samples\": []}",
	    "\"not a family\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char json[1024];
		int left_out;
		snprintf(json, sizeof(json),
		         "[%s, {\"name\": \"good\", \"type\": \"gauge\", \"help\": \"ok\", "
		         "\"samples\": [{\"labels\": {}, \"value\": 1}]}]",
		         bad[i]);
		char *text = render(json, &left_out);
		if (left_out != 1)
			fail_msg("not left out: %s", bad[i]);
		assert_string_equal(text, "# HELP good ok\n# TYPE good gauge\ngood 1\n");
		free(text);
	}
}

/* Two plugins naming the same family: the second is left out. */
static void duplicate_across_calls(void **state)
{
	(void)state;
	const char *json = "[{\"name\": \"d\", \"type\": \"gauge\", \"help\": \"\", \"samples\": "
	                   "[{\"labels\": {}, \"value\": 1}]}]";
	json_t *families = json_loads(json, 0, NULL), *seen = json_object();
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	assert_int_equal(metrics_render(out, families, seen), 0);
	assert_int_equal(metrics_render(out, families, seen), 1);
	fclose(out);
	assert_string_equal(text, "# HELP d \n# TYPE d gauge\nd 1\n");
	free(text);
	json_decref(families);
	json_decref(seen);
}

/* Reading a figure back: by label, a histogram's count, NaN when absent. */
static void lookup(void **state)
{
	(void)state;
	static const double bounds[] = {1};
	struct metrics_histogram h;
	json_t *families = json_array();
	json_t *g = metrics_family(families, "g", "gauge", "");
	metrics_sample(g, json_pack("{s:s}", "k", "a"), 1);
	metrics_sample(g, json_pack("{s:s}", "k", "b"), 2);
	metrics_histogram_init(&h, bounds, 1);
	metrics_observe(&h, 5);
	metrics_histogram_sample(metrics_family(families, "h", "histogram", ""), NULL, &h);
	assert_true(metrics_lookup(families, "g", "k", "b") == 2);
	assert_true(metrics_lookup(families, "g", NULL, NULL) == 1);
	assert_true(metrics_lookup(families, "h", NULL, NULL) == 1);
	assert_true(isnan(metrics_lookup(families, "g", "k", "c")));
	assert_true(isnan(metrics_lookup(families, "x", NULL, NULL)));
	json_decref(families);
}

static void names(void **state)
{
	(void)state;
	assert_true(metrics_name_valid("meshgate:x_1"));
	assert_false(metrics_name_valid(""));
	assert_false(metrics_name_valid("9x"));
	assert_false(metrics_name_valid("x.y"));
	assert_true(metrics_label_name_valid("role"));
	assert_false(metrics_label_name_valid("a:b"));
	assert_false(metrics_label_name_valid("__name__"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(counter_with_labels),
	    cmocka_unit_test(escaping),
	    cmocka_unit_test(nan_and_infinities),
	    cmocka_unit_test(histogram),
	    cmocka_unit_test(bad_families_left_out),
	    cmocka_unit_test(duplicate_across_calls),
	    cmocka_unit_test(lookup),
	    cmocka_unit_test(names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
