// build SRC META OUT: checks the type, copies META and SRC/connection.json into OUT (and
// SRC/META-INF when present), as fabric-ccs-builder's cmd/build, with github.com/otiai10/copy.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/otiai10/copy"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: build SRC META OUT")
		os.Exit(2)
	}
	src, meta, out := os.Args[1], os.Args[2], os.Args[3]
	b, err := os.ReadFile(filepath.Join(meta, "metadata.json"))
	if err != nil {
		fail(err)
	}
	var md struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &md); err != nil {
		fail(err)
	}
	if strings.ToLower(md.Type) != "external" {
		fail(fmt.Errorf("chaincode type not supported: %s", md.Type))
	}
	if err := copy.Copy(meta, out); err != nil {
		fail(err)
	}
	if _, err := os.Stat(filepath.Join(src, "META-INF")); err == nil {
		if err := copy.Copy(filepath.Join(src, "META-INF"), filepath.Join(out, "META-INF")); err != nil {
			fail(err)
		}
	}
	if err := copy.Copy(filepath.Join(src, "connection.json"), filepath.Join(out, "connection.json")); err != nil {
		fail(err)
	}
}
