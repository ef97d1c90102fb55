// Command idemixgen is an imgforge fixture standing in for Fabric's idemixgen.
package main

import (
	"fmt"

	"github.com/hyperledger/fabric/common/metadata"
)

func main() { fmt.Printf("idemixgen (imgforge fixture) %s\n", metadata.Version) }
