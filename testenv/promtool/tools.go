//go:build tools

// Test infrastructure only: pins Prometheus's promtool, used by the e2e tests to validate the
// /metrics exposition with `promtool check metrics`.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
