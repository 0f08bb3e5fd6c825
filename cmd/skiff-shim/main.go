// Command skiff-shim is the supervisor of one container run: it holds the
// container's stdio, writes its log and records its exit status (package
// internal/runtime/shim). It is a binary of its own, beside skiff, because
// one runs per container: it carries only the shim's packages, so it costs
// a fraction of the private memory that `skiff shim` (the same code inside
// the whole skiff binary, with every package's init) did. It imports
// only the shim and the leaf package cgroup (for OOMKilled), and builds
// without cgo (make build): about 0.7 MiB of anonymous memory per container,
// against 2.3 MiB when it imported package oci and 9.5 MiB for `skiff
// shim`. skiff finds it next to its own executable and falls back to
// `skiff shim` without it.
package main

import (
	"os"

	"github.com/skiff-sh/skiff/internal/runtime/cgroup"
	"github.com/skiff-sh/skiff/internal/runtime/shim"
)

func main() { os.Exit(shim.Main(os.Args[1:], cgroup.OOMKilled)) }
