// The imgforge chaincode-server fixture: a Go chaincode in server mode that takes its package
// ID and listen address from CHAINCODE_ID and CHAINCODE_SERVER_ADDRESS (as fabric-samples'
// asset-transfer-basic/chaincode-external does), with its one dependency vendored.
package main

import (
	"fmt"
	"os"

	shim "example.com/imgforge/fakeshim"
)

func main() {
	server := &shim.ChaincodeServer{
		CCID:    os.Getenv("CHAINCODE_ID"),
		Address: os.Getenv("CHAINCODE_SERVER_ADDRESS"),
	}
	if err := server.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "error starting the chaincode server: %s\n", err)
		os.Exit(1)
	}
}
