// Command configtxgen is an imgforge fixture standing in for Fabric's configtxgen.
package main

import (
	"fmt"

	"github.com/hyperledger/fabric/common/tools/configtxgen/metadata"
)

func main() {
	fmt.Printf("configtxgen (imgforge fixture) %s commit %s\n", metadata.Version, metadata.CommitSHA)
}
