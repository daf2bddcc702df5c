//go:build tools

// Package tools pins the kwok command so that `go build` can compile it from the module cache.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
