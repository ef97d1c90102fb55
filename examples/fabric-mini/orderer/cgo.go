//go:build cgo
// +build cgo

package main

// The fixture is otherwise pure Go. Linking runtime/cgo when cgo is enabled
// keeps the binary working when it is linked externally and statically
// (-linkmode external -extldflags '-static -lpthread'), as Fabric's image
// builds do; without it the linker cannot find runtime/cgo and the static
// binary crashes at start-up.
import _ "runtime/cgo"
