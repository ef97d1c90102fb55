// Command configtxgen is an imgforge fixture standing in for Fabric's configtxgen.
package main

import (
	"fmt"

	"github.com/hyperledger/fabric/common/metadata"
)

func main() { fmt.Printf("configtxgen (imgforge fixture) %s\n", metadata.Version) }
