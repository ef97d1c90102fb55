// release BLD RELEASE: BLD/connection.json to RELEASE/chaincode/server/connection.json and
// BLD/META-INF/statedb to RELEASE/statedb, as fabric-ccs-builder's cmd/release.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/otiai10/copy"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: release BLD RELEASE")
		os.Exit(2)
	}
	bld, rel := os.Args[1], os.Args[2]
	if _, err := os.Stat(filepath.Join(bld, "META-INF/statedb")); err == nil {
		if err := copy.Copy(filepath.Join(bld, "META-INF/statedb"), filepath.Join(rel, "statedb")); err != nil {
			fail(err)
		}
	}
	dir := filepath.Join(rel, "chaincode", "server")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		fail(err)
	}
	if err := copy.Copy(filepath.Join(bld, "connection.json"), filepath.Join(dir, "connection.json")); err != nil {
		fail(err)
	}
}
