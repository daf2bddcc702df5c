//go:build tools

// Package tools pins the control plane commands (kube-apiserver, kube-controller-manager,
// kube-scheduler) so that `go build` can compile them from the module cache.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
