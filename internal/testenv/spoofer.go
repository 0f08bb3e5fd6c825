package testenv

import "testing"

// SpooferBinary builds the static spoofer program (package spoof's frames
// from inside a container) and returns its contents, ready to be placed in
// an image layer.
func SpooferBinary(t testing.TB) string { return helperBinary(t, "spoofer") }
