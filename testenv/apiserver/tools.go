//go:build tools

// Package tools pins the kube-apiserver command so that `go build` can compile it from the module cache.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
