// Command orderer is an imgforge fixture standing in for Fabric's orderer.
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/hyperledger/fabric/common/metadata"
)

func main() {
	args := os.Args[1:]
	switch {
	case len(args) == 0 || (len(args) == 1 && args[0] == "start"):
		fmt.Printf("fixture orderer %s would start now\n", metadata.Version)
	case len(args) == 1 && args[0] == "version":
		fmt.Printf("orderer:\n Version: %s\n Commit SHA: %s\n Go version: %s\n OS/Arch: %s/%s\n",
			metadata.Version, metadata.CommitSHA, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	default:
		fmt.Fprintln(os.Stderr, "usage: orderer [start | version]")
		os.Exit(2)
	}
}
