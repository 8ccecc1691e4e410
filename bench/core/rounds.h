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

#endif
