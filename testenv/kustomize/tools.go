//go:build tools

// Package tools pins commands that the test environment builds.
// Nothing here is compiled into tugboat.
package tools

import (
	_ "sigs.k8s.io/kustomize/kustomize/v5"
)
