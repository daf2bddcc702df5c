//go:build tools

// Package tools pins the etcd server command so that `go build` can compile it from the module cache.
package tools

import _ "go.etcd.io/etcd/server/v3"
