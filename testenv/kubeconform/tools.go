//go:build tools

// Package tools pins commands that the test environment builds.
// Nothing here is compiled into tugboat.
package tools

import (
	_ "github.com/yannh/kubeconform/cmd/kubeconform"
)
