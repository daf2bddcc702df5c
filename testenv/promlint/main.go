// Test infrastructure only: `promtool check metrics` without the rest of Prometheus.
//
// Prometheus's promtool (github.com/prometheus/prometheus/cmd/promtool, CheckMetrics) checks an
// exposition by running client_golang's promlint over stdin, printing each problem as
// "<metric> <text>" on stderr, and exiting 3 on lint problems or 1 when the text does not parse.
// This program does exactly that with the client_golang version that Prometheus v0.316.0 pins
// (see testenv/promtool/go.mod), so the check is the same while the build takes seconds instead
// of compiling all of Prometheus's service discovery.
package main

import (
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func main() {
	if len(os.Args) != 3 || os.Args[1] != "check" || os.Args[2] != "metrics" {
		fmt.Fprintln(os.Stderr, "usage: promlint check metrics < exposition.txt")
		os.Exit(2)
	}
	problems, err := promlint.New(os.Stdin).Lint()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error while linting:", err)
		os.Exit(1)
	}
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, p.Metric, p.Text)
	}
	if len(problems) > 0 {
		os.Exit(3)
	}
}
