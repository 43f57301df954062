//go:build tools

// Package engines pins the commands built from this module:
//
//	go build k8s.io/kubernetes/cmd/kube-apiserver
//	go build k8s.io/kubernetes/cmd/kube-controller-manager
package engines

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
