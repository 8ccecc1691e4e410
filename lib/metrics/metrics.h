/* Prometheus figures: how a plugin tells them and how /metrics shows them.
 *
 * A plugin that has figures answers the bus service "<plugin>.metrics"
 * with {"families": [FAMILY, ...]}, each family
 *
 *   {"name": "meshgate_x_total", "type": "counter"|"gauge"|"histogram",
 *    "help": "one line", "samples": [SAMPLE, ...]}
 *
 * a counter's or gauge's sample {"labels": {"name": "value"}, "value": N}
 * (N a JSON number, or "NaN", "+Inf", "-Inf"), a histogram's
 * {"labels": {...}, "buckets": [[LE, COUNT], ...], "sum": S, "count": C}
 * with the upper bounds LE rising and the counts cumulative (the "+Inf"
 * bucket is `count`, added when rendered). docs/metrics.md lists them.
 *
 * The builders below make that JSON; metrics_render writes it in the text
 * exposition format 0.0.4. Every name is checked where it is rendered, so
 * one plugin's bad family is left out (and counted) without spoiling the
 * others'. */
#ifndef MG_METRICS_H
#define MG_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#define METRICS_BUCKETS_MAX 16

/* Appends a new family to `families` (an array); a borrowed reference to
 * it, or NULL without memory. */
json_t *metrics_family(json_t *families, const char *name, const char *type, const char *help);
/* Appends a sample; `labels` (stolen) may be NULL for none. */
int metrics_sample(json_t *family, json_t *labels, double value);

/* A histogram that the plugin owning it fills on its own thread. */
struct metrics_histogram {
	const double *bounds; /* upper bounds, rising, at most METRICS_BUCKETS_MAX */
	size_t n_bounds;
	uint64_t counts[METRICS_BUCKETS_MAX]; /* per bucket, not cumulative */
	uint64_t count;
	double sum;
};

void metrics_histogram_init(struct metrics_histogram *h, const double *bounds, size_t n_bounds);
void metrics_observe(struct metrics_histogram *h, double value);
/* Appends the histogram's sample; `labels` (stolen) may be NULL. */
int metrics_histogram_sample(json_t *family, json_t *labels, const struct metrics_histogram *h);

/* Reads a figure back (tests, tools): the first sample of the family
 * `name` in `families` whose label `label` is `value` (label NULL: the
 * first sample). A counter's or gauge's value, a histogram's count; NAN
 * when there is no such sample. */
double metrics_lookup(json_t *families, const char *name, const char *label, const char *value);

/* {"families": families} (stolen): a metrics service's reply. */
json_t *metrics_reply(json_t *families);

/* Writes `families` (an array, as above) to `out` in the text format.
 * `seen` (an object) holds the family names written so far: a name
 * already there is a duplicate and left out, so that several plugins'
 * families go into one page. A family that is not well formed (its name,
 * type, a label, a value, a bucket) is left out whole. Returns the number
 * of families left out, or -EIO when writing failed. */
int metrics_render(FILE *out, json_t *families, json_t *seen);

/* Are these valid Prometheus names? [a-zA-Z_:][a-zA-Z0-9_:]* for metrics,
 * [a-zA-Z_][a-zA-Z0-9_]* for labels (not starting with "__"). */
int metrics_name_valid(const char *name);
int metrics_label_name_valid(const char *name);

#endif
