// Command cryptogen is an imgforge fixture standing in for Fabric's cryptogen.
package main

import (
	"fmt"

	"github.com/hyperledger/fabric/common/metadata"
)

func main() { fmt.Printf("cryptogen (imgforge fixture) %s\n", metadata.Version) }
