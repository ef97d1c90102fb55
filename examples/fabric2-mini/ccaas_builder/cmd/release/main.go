// release of the imgforge fixture's ccaas builder: BLD/connection.json to
// REL/chaincode/server/connection.json (github.com/otiai10/copy).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/otiai10/copy"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: release BLD REL")
		os.Exit(2)
	}
	dst := filepath.Join(os.Args[2], "chaincode", "server")
	if err := os.MkdirAll(dst, 0o750); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := copy.Copy(filepath.Join(os.Args[1], "connection.json"), filepath.Join(dst, "connection.json")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
