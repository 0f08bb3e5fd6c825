#!/usr/bin/env bash
# Prints the rows that the benchmarks of one `make bench` run printed
# (testenv.BenchRow) as one table: metric, Skiff, peer, ratio, goal.
set -euo pipefail
echo
echo "make bench: every figure measured in this run, peers alternating on the same cached image"
awk -F'|' '$1 == "bench-row" {
  rows[n++] = $0; for (i = 2; i <= 6; i++) if (length($i) > w[i]) w[i] = length($i)
}
END {
  if (n == 0) { print "no benchmark rows"; exit 1 }
  split("|metric|Skiff|peer|ratio|goal", h, "|")
  for (i = 2; i <= 6; i++) if (length(h[i]) > w[i]) w[i] = length(h[i])
  fmt = "%-" w[2] "s  %" w[3] "s  %" w[4] "s  %" w[5] "s  %s\n"
  printf fmt, h[2], h[3], h[4], h[5], h[6]
  for (r = 0; r < n; r++) { split(rows[r], f, "|"); printf fmt, f[2], f[3], f[4], f[5], f[6] }
}' "$1"
