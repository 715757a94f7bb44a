//go:build tools

// Package tools records the commands built from k8s.io/kubernetes so that `go mod tidy` keeps
// their dependencies. Nothing here is compiled; scripts/lib.sh runs `go build` on these packages.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
