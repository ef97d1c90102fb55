// Command discover is an imgforge fixture standing in for Fabric's discover.
package main

import (
	"fmt"

	"github.com/hyperledger/fabric/common/metadata"
)

func main() { fmt.Printf("discover (imgforge fixture) %s\n", metadata.Version) }
