// Command configtxlator is an imgforge fixture standing in for Fabric's configtxlator.
package main

import (
	"fmt"

	"github.com/hyperledger/fabric/common/metadata"
)

func main() { fmt.Printf("configtxlator (imgforge fixture) %s\n", metadata.Version) }
