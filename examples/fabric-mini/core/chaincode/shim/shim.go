// Package shim is a stand-in for the chaincode shim that imgforge packs
// into the goshim payload of the ccenv image.
package shim

import (
	"github.com/example/greet"
	"github.com/hyperledger/fabric/common/metadata"
)

// Banner describes this shim and the platform version it was built for.
func Banner(chaincode string) string {
	return greet.Hello(chaincode) + " (shim for fabric " + metadata.Version + ")"
}
