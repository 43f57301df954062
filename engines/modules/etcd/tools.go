//go:build tools

// Package engines pins the command built from this module:
//
//	go build go.etcd.io/etcd/server/v3
package engines

import _ "go.etcd.io/etcd/server/v3"
