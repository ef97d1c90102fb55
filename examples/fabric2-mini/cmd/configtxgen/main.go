// Command configtxgen of the imgforge fixture: prints its metadata as Fabric 2.x's `configtxgen version`.
package main

import (
	"fmt"
	"os"
	"runtime"

	"example.com/fixdep"
	"github.com/hyperledger/fabric/common/metadata"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Printf("configtxgen:\n Version: %s\n Commit SHA: %s\n Go version: %s\n OS/Arch: %s/%s\n", metadata.Version, metadata.CommitSHA, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		fmt.Printf(" Chaincode:\n  Base Docker Label: %s\n  Docker Namespace: %s\n", metadata.BaseDockerLabel, metadata.DockerNamespace)
		return
	}
	fmt.Printf("configtxgen (imgforge fixture, %s) %s\n", fixdep.Name(), metadata.Version)
}
