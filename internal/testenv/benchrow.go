package testenv

import (
	"fmt"
	"strings"
)

// BenchRowPrefix starts the lines BenchRow prints; `make bench` gathers
// them from every benchmark of the run into one table (hack/bench-table.sh).
const BenchRowPrefix = "bench-row|"

// BenchRow prints one row of `make bench`'s table: a metric, Skiff's
// figure, the peer's (or "-") measured in the same run, their ratio (0: none)
// and the goal.
func BenchRow(metric, skiff, peer string, ratio float64, goal string) {
	r := "-"
	if ratio > 0 {
		r = fmt.Sprintf("%.2fx", ratio)
	}
	clean := func(s string) string { return strings.ReplaceAll(s, "|", "/") }
	fmt.Printf("%s%s|%s|%s|%s|%s\n", BenchRowPrefix, clean(metric), clean(skiff), clean(peer), r, clean(goal))
}
