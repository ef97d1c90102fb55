// detect of the imgforge fixture's ccaas builder (the shape of Fabric's ccaas_builder/cmd/detect):
// exit 0 when META/metadata.json says type "ccaas", else 1. Needs github.com/pkg/errors, which
// is not vendored: imgforge builds it over Debian's golang-github-pkg-errors-dev.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkg/errors"
)

func run() error {
	if len(os.Args) < 3 {
		return errors.New("usage: detect SRC META")
	}
	b, err := os.ReadFile(filepath.Join(os.Args[2], "metadata.json"))
	if err != nil {
		return errors.WithMessage(err, "reading metadata.json")
	}
	var m struct{ Type string }
	if err := json.Unmarshal(b, &m); err != nil {
		return errors.Wrap(err, "parsing metadata.json")
	}
	if strings.ToLower(m.Type) != "ccaas" {
		return errors.Errorf("chaincode type not supported: %s", m.Type)
	}
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "::Error:", err)
		os.Exit(1)
	}
}
