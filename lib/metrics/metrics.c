/* Prometheus figures as JSON families, and their text format (metrics.h). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static int value_of(json_t *v, double *out);

/* ---- building ---- */

json_t *metrics_family(json_t *families, const char *name, const char *type, const char *help)
{
	json_t *family =
	    json_pack("{s:s, s:s, s:s, s:[]}", "name", name, "type", type, "help", help, "samples");
	if (!family || json_array_append_new(families, family))
		return NULL;
	return family;
}

/* JSON has no NaN or infinities: they travel as Prometheus writes them. */
static json_t *number_json(double value)
{
	if (isnan(value))
		return json_string("NaN");
	if (isinf(value))
		return json_string(value > 0 ? "+Inf" : "-Inf");
	if (value == (double)(json_int_t)value && fabs(value) < 9e15)
		return json_integer((json_int_t)value);
	return json_real(value);
}

static int append_sample(json_t *family, json_t *sample)
{
	json_t *samples = json_object_get(family, "samples");
	if (!sample || json_array_append_new(samples, sample))
		return -ENOMEM;
	return 0;
}

int metrics_sample(json_t *family, json_t *labels, double value)
{
	return append_sample(family,
	                     json_pack("{s:o, s:o}", "labels", labels ? labels : json_object(),
	                               "value", number_json(value)));
}

void metrics_histogram_init(struct metrics_histogram *h, const double *bounds, size_t n_bounds)
{
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->n_bounds = n_bounds < METRICS_BUCKETS_MAX ? n_bounds : METRICS_BUCKETS_MAX;
}

void metrics_observe(struct metrics_histogram *h, double value)
{
	for (size_t i = 0; i < h->n_bounds; i++)
		if (value <= h->bounds[i]) {
			h->counts[i]++;
			break;
		}
	h->count++;
	h->sum += value;
}

int metrics_histogram_sample(json_t *family, json_t *labels, const struct metrics_histogram *h)
{
	json_t *buckets = json_array();
	uint64_t cumulative = 0;
	for (size_t i = 0; i < h->n_bounds; i++) {
		cumulative += h->counts[i];
		json_array_append_new(buckets, json_pack("[o, I]", number_json(h->bounds[i]),
		                                         (json_int_t)cumulative));
	}
	return append_sample(family,
	                     json_pack("{s:o, s:o, s:o, s:I}", "labels",
	                               labels ? labels : json_object(), "buckets", buckets, "sum",
	                               number_json(h->sum), "count", (json_int_t)h->count));
}

json_t *metrics_reply(json_t *families)
{
	return json_pack("{s:o}", "families", families ? families : json_array());
}

static int sample_matches(json_t *sample, const char *label, const char *value)
{
	const char *v =
	    json_string_value(json_object_get(json_object_get(sample, "labels"), label));
	return !label || (v && !strcmp(v, value));
}

double metrics_lookup(json_t *families, const char *name, const char *label, const char *value)
{
	json_t *family, *sample;
	size_t i, j;
	double found;
	json_array_foreach(families, i, family)
	{
		const char *family_name = json_string_value(json_object_get(family, "name"));
		if (!family_name || strcmp(family_name, name))
			continue;
		json_array_foreach(json_object_get(family, "samples"), j, sample)
		{
			json_t *count = json_object_get(sample, "count");
			if (sample_matches(sample, label, value) &&
			    value_of(count ? count : json_object_get(sample, "value"), &found))
				return found;
		}
	}
	return NAN;
}

/* ---- checking ---- */

static int name_char(char c, int first, int colon)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (colon && c == ':') || (!first && c >= '0' && c <= '9');
}

static int name_valid(const char *name, int colon)
{
	if (!name || !*name)
		return 0;
	for (size_t i = 0; name[i]; i++)
		if (!name_char(name[i], i == 0, colon))
			return 0;
	return 1;
}

int metrics_name_valid(const char *name)
{
	return name_valid(name, 1);
}

int metrics_label_name_valid(const char *name)
{
	return name_valid(name, 0) && strncmp(name, "__", 2);
}

/* A value as JSON carries it: a number, or "NaN", "+Inf", "-Inf". */
static int value_of(json_t *v, double *out)
{
	const char *text = json_string_value(v);
	if (json_is_number(v))
		*out = json_number_value(v);
	else if (text && !strcmp(text, "NaN"))
		*out = NAN;
	else if (text && !strcmp(text, "+Inf"))
		*out = INFINITY;
	else if (text && !strcmp(text, "-Inf"))
		*out = -INFINITY;
	else
		return 0;
	return 1;
}

static int labels_valid(json_t *labels, int histogram)
{
	const char *name;
	json_t *value;
	if (!json_is_object(labels))
		return 0;
	json_object_foreach(labels, name, value)
	{
		if (!metrics_label_name_valid(name) || !json_is_string(value) ||
		    (histogram && !strcmp(name, "le")))
			return 0;
	}
	return 1;
}

static int count_of(json_t *v, json_int_t *out)
{
	*out = json_integer_value(v);
	return json_is_integer(v) && *out >= 0;
}

static int histogram_valid(json_t *sample)
{
	json_t *buckets = json_object_get(sample, "buckets"), *bucket;
	json_int_t count, previous = 0, n;
	double le, last = -INFINITY, sum;
	size_t i;
	if (!json_is_array(buckets) || !count_of(json_object_get(sample, "count"), &count) ||
	    !value_of(json_object_get(sample, "sum"), &sum))
		return 0;
	json_array_foreach(buckets, i, bucket)
	{
		if (json_array_size(bucket) != 2 || !value_of(json_array_get(bucket, 0), &le) ||
		    !isfinite(le) || le <= last || !count_of(json_array_get(bucket, 1), &n) ||
		    n < previous || n > count)
			return 0;
		last = le;
		previous = n;
	}
	return 1;
}

static int sample_valid(json_t *sample, const char *type)
{
	int histogram = !strcmp(type, "histogram");
	double value;
	if (!labels_valid(json_object_get(sample, "labels"), histogram))
		return 0;
	if (histogram)
		return histogram_valid(sample);
	if (!value_of(json_object_get(sample, "value"), &value))
		return 0;
	/* a counter only goes up from 0 */
	return strcmp(type, "counter") || isnan(value) || value >= 0;
}

static int ends_with(const char *s, const char *end)
{
	size_t n = strlen(s), m = strlen(end);
	return n >= m && !strcmp(s + n - m, end);
}

static int family_valid(json_t *family)
{
	const char *name = json_string_value(json_object_get(family, "name"));
	const char *type = json_string_value(json_object_get(family, "type"));
	json_t *samples = json_object_get(family, "samples"), *sample;
	size_t i;
	if (!metrics_name_valid(name) || !type ||
	    !json_is_string(json_object_get(family, "help")) || !json_is_array(samples))
		return 0;
	if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram"))
		return 0;
	/* the names Prometheus gives a counter's and a histogram's series */
	int counter = !strcmp(type, "counter");
	if (counter != ends_with(name, "_total"))
		return 0;
	if (!strcmp(type, "histogram") &&
	    (ends_with(name, "_bucket") || ends_with(name, "_sum") || ends_with(name, "_count")))
		return 0;
	json_array_foreach(samples, i, sample)
	{
		if (!sample_valid(sample, type))
			return 0;
	}
	return 1;
}

/* ---- writing ---- */

static void write_number(FILE *out, double value)
{
	char text[64];
	if (isnan(value)) {
		fputs("NaN", out);
		return;
	}
	if (isinf(value)) {
		fputs(value > 0 ? "+Inf" : "-Inf", out);
		return;
	}
	/* the shortest text that reads back as the same number */
	snprintf(text, sizeof(text), "%.15g", value);
	if (strtod(text, NULL) != value)
		snprintf(text, sizeof(text), "%.17g", value);
	fputs(text, out);
}

static void write_value(FILE *out, json_t *v)
{
	double value = 0;
	if (json_is_integer(v))
		fprintf(out, "%lld", (long long)json_integer_value(v));
	else if (value_of(v, &value))
		write_number(out, value);
}

/* HELP escapes backslash and newline; a label value also the quote. */
static void write_escaped(FILE *out, const char *s, int quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", out);
		else if (*s == '\n')
			fputs("\\n", out);
		else if (quote && *s == '"')
			fputs("\\\"", out);
		else
			fputc(*s, out);
	}
}

/* {a="1",b="2"} with an extra label (le) last; nothing when there is none. */
static void write_labels(FILE *out, json_t *labels, const char *extra, json_t *extra_value)
{
	const char *name;
	json_t *value;
	int n = 0;
	json_object_foreach(labels, name, value)
	{
		fprintf(out, "%s%s=\"", n++ ? "," : "{", name);
		write_escaped(out, json_string_value(value), 1);
		fputc('"', out);
	}
	if (extra) {
		fprintf(out, "%s%s=\"", n++ ? "," : "{", extra);
		if (extra_value)
			write_value(out, extra_value);
		else
			fputs("+Inf", out);
		fputc('"', out);
	}
	if (n)
		fputc('}', out);
}

static void write_histogram(FILE *out, const char *name, json_t *sample)
{
	json_t *labels = json_object_get(sample, "labels"), *bucket;
	size_t i;
	json_array_foreach(json_object_get(sample, "buckets"), i, bucket)
	{
		fprintf(out, "%s_bucket", name);
		write_labels(out, labels, "le", json_array_get(bucket, 0));
		fputc(' ', out);
		write_value(out, json_array_get(bucket, 1));
		fputc('\n', out);
	}
	fprintf(out, "%s_bucket", name);
	write_labels(out, labels, "le", NULL);
	fputc(' ', out);
	write_value(out, json_object_get(sample, "count"));
	fprintf(out, "\n%s_sum", name);
	write_labels(out, labels, NULL, NULL);
	fputc(' ', out);
	write_value(out, json_object_get(sample, "sum"));
	fprintf(out, "\n%s_count", name);
	write_labels(out, labels, NULL, NULL);
	fputc(' ', out);
	write_value(out, json_object_get(sample, "count"));
	fputc('\n', out);
}

static void write_family(FILE *out, json_t *family)
{
	const char *name = json_string_value(json_object_get(family, "name"));
	const char *type = json_string_value(json_object_get(family, "type"));
	json_t *sample;
	size_t i;
	fprintf(out, "# HELP %s ", name);
	write_escaped(out, json_string_value(json_object_get(family, "help")), 0);
	fprintf(out, "\n# TYPE %s %s\n", name, type);
	json_array_foreach(json_object_get(family, "samples"), i, sample)
	{
		if (!strcmp(type, "histogram")) {
			write_histogram(out, name, sample);
			continue;
		}
		fputs(name, out);
		write_labels(out, json_object_get(sample, "labels"), NULL, NULL);
		fputc(' ', out);
		write_value(out, json_object_get(sample, "value"));
		fputc('\n', out);
	}
}

int metrics_render(FILE *out, json_t *families, json_t *seen)
{
	json_t *family;
	size_t i;
	int left_out = 0;
	if (!json_is_array(families))
		return 1;
	json_array_foreach(families, i, family)
	{
		const char *name = json_string_value(json_object_get(family, "name"));
		if (!family_valid(family) || json_object_get(seen, name)) {
			left_out++;
			continue;
		}
		json_object_set_new(seen, name, json_true());
		write_family(out, family);
	}
	return ferror(out) ? -EIO : left_out;
}
