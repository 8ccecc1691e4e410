/* Rounds of a benchmark: each figure is measured once per round, ours and
 * the bare way interleaved, and printed as the median with the spread
 * over the rounds (min-max, and as a share of the median): the machine's
 * noise, next to the figure it blurs. */
#ifndef MG_BENCH_ROUNDS_H
#define MG_BENCH_ROUNDS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROUNDS 32

struct figure {
	const char *name;
	const char *unit;
	double v[MAX_ROUNDS];
	int n;
};

static int figure_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The sorted rounds of f, into sorted[]. */
static double figure_median(const struct figure *f, double *sorted)
{
	memcpy(sorted, f->v, (size_t)f->n * sizeof(double));
	qsort(sorted, (size_t)f->n, sizeof(double), figure_cmp);
	return f->n % 2 ? sorted[f->n / 2] : (sorted[f->n / 2 - 1] + sorted[f->n / 2]) / 2;
}

static void figure_print(const struct figure *f)
{
	double s[MAX_ROUNDS];
	double med = figure_median(f, s);
	printf("  %-44s median %12.2f %-10s spread %.2f-%.2f (%.0f%%) over %d rounds\n", f->name,
	       med, f->unit, s[0], s[f->n - 1], med ? 100 * (s[f->n - 1] - s[0]) / med : 0, f->n);
}

/* ours/bare per round: both taken in the same round, so a slow moment of
 * the machine weighs on both. */
static void ratio_print(const char *name, const struct figure *ours, const struct figure *bare)
{
	struct figure r = {.name = name, .unit = "x bare", .n = ours->n};
	for (int i = 0; i < ours->n; i++)
		r.v[i] = ours->v[i] / bare->v[i];
	figure_print(&r);
}

/* One row of bench/run-all.sh's table: ours against the baseline measured
 * in the same rounds, each the median, the ratio taken per round (then its
 * median), and the noise: the larger spread of the two, as a share of its
 * median. The line starts with "TABLE|" so run-all.sh can collect it; a
 * figure where higher is better and one where lower is better read alike
 * ("ratio" is always ours/baseline; the unit says which way is good). */
static void table_row(const char *what, const struct figure *ours, const char *baseline,
                      const struct figure *bare)
{
	double s[MAX_ROUNDS], b[MAX_ROUNDS], r[MAX_ROUNDS];
	struct figure ratio = {.n = ours->n};
	double med = figure_median(ours, s), bmed = figure_median(bare, b);
	for (int i = 0; i < ours->n; i++)
		ratio.v[i] = ours->v[i] / bare->v[i];
	double rmed = figure_median(&ratio, r);
	double spread = med ? (s[ours->n - 1] - s[0]) / med : 0;
	double bspread = bmed ? (b[bare->n - 1] - b[0]) / bmed : 0;
	printf("TABLE|%s|%.4g %s|%s: %.4g %s|%.3g|%.0f%%|%d\n", what, med, ours->unit, baseline,
	       bmed, bare->unit, rmed, 100 * (spread > bspread ? spread : bspread), ours->n);
}

#endif
