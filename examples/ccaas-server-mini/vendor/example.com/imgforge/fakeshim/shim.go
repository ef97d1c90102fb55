// Package fakeshim stands in for github.com/hyperledger/fabric-chaincode-go/shim in imgforge's
// chaincode-server fixture: a vendored dependency with the shape of the shim's server mode
// (`ChaincodeServer{CCID, Address}`, `Start()` listens on Address; chaincodeserver.go of
// fabric-chaincode-go as vendored in Fabric v2.5.13) but without gRPC, so the fixture stays
// small. It accepts connections and closes them.
package fakeshim

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// ChaincodeServer serves one chaincode on Address.
type ChaincodeServer struct {
	// CCID is the package ID the peer gave the installed package.
	CCID string
	// Address is the listen address.
	Address string
}

// Start listens on Address and serves until the listener fails.
func (s *ChaincodeServer) Start() error {
	if s.CCID == "" {
		return errors.New("ccid must be specified")
	}
	if s.Address == "" {
		return errors.New("address must be specified")
	}
	l, err := net.Listen("tcp", s.Address)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "chaincode %s listening on %s\n", s.CCID, l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		c.Close()
	}
}
