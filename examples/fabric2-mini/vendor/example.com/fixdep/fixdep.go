// Package fixdep stands for a vendored dependency of the fixture: the build must find it in
// vendor/ (no network, no module cache).
package fixdep

// Name says where it came from.
func Name() string { return "fixdep (vendored)" }
