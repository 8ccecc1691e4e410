# Rounds of a benchmark in bash, as bench/rounds.h in C: each figure's
# median and spread over the rounds, and the TABLE| row of bench/run-all.sh.
# Source it.

# figure NAME UNIT VALUES...: median and spread (as figure_print in rounds.h)
figure() {
	local name=$1 unit=$2
	shift 2
	printf '%s\n' "$@" | sort -g | awk -v name="$name" -v unit="$unit" '
		{ v[NR] = $1 }
		END {
			med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "  %-44s median %12.2f %-10s spread %.2f-%.2f (%.0f%%) over %d rounds\n",
				name, med, unit, v[1], v[NR], med ? 100 * (v[NR] - v[1]) / med : 0, NR
		}'
}
# tail_figure NAME UNIT VALUES...: p50, p99 (nearest rank, as table_row
# with p99) and max, for figures whose tail is the point (an outage)
tail_figure() {
	local name=$1 unit=$2
	shift 2
	printf '%s\n' "$@" | sort -g | awk -v name="$name" -v unit="$unit" '
		{ v[NR] = $1 }
		END {
			k = int(0.99 * NR); if (k < 0.99 * NR) k++
			printf "  %-48s p50 %7.0f  p99 %7.0f  max %7.0f %s over %d rounds\n",
				name, v[int((NR + 1) / 2)], v[k], v[NR], unit, NR
		}'
}
# table_row WHAT UNIT BASELINE "OURS..." "BARE..." [p99]: one row of
# bench/run-all.sh's table, as table_row in rounds.h (medians, the median of
# the per-round ratios, the larger spread of the two); with p99, the two
# 99th percentiles (nearest rank) and their ratio instead, for figures whose
# tail is the point (an outage)
table_row() {
	awk -v what="$1" -v unit="$2" -v base="$3" -v ours="$4" -v bare="$5" -v stat="${6:-median}" '
		function median(a, n,   i, j, t) {
			for (i = 2; i <= n; i++)
				for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
			return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		}
		function spread(a, n, med,   i, lo, hi) {
			lo = hi = a[1]
			for (i = 2; i <= n; i++) { if (a[i] < lo) lo = a[i]; if (a[i] > hi) hi = a[i] }
			return med ? (hi - lo) / med : 0
		}
		BEGIN {
			n = split(ours, o, " "); split(bare, b, " ")
			for (i = 1; i <= n; i++) r[i] = o[i] / b[i]
			mo = median(o, n); mb = median(b, n); mr = median(r, n)
			so = spread(o, n, mo); sb = spread(b, n, mb)
			# median() sorted o and b in place
			if (stat == "p99") {
				k = int(0.99 * n); if (k < 0.99 * n) k++
				mo = o[k]; mb = b[k]; mr = mb ? mo / mb : 0
			}
			printf "TABLE|%s|%.4g %s|%s: %.4g %s|%.3g|%.0f%%|%d\n", what, mo, unit, base, mb,
				unit, mr, 100 * (so > sb ? so : sb), n
		}'
}
