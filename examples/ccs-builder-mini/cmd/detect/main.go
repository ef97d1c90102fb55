// detect SRC META: exit 0 when META/metadata.json has type "external" (any case), as
// fabric-ccs-builder's cmd/detect.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: detect SRC META")
		os.Exit(2)
	}
	b, err := os.ReadFile(filepath.Join(os.Args[2], "metadata.json"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var md struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &md); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if strings.ToLower(md.Type) != "external" {
		fmt.Fprintf(os.Stderr, "chaincode type not supported: %s\n", md.Type)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "type detected as external")
}
