//go:build tools

// Package engines pins the command built from this module:
//
//	go build github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
package engines

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
