// build of the imgforge fixture's ccaas builder: copies META to OUT and SRC/connection.json
// into OUT (github.com/otiai10/copy and github.com/pkg/errors, from Debian's packages).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/otiai10/copy"
	"github.com/pkg/errors"
)

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: build SRC META OUT")
		os.Exit(2)
	}
	src, meta, out := os.Args[1], os.Args[2], os.Args[3]
	if err := copy.Copy(meta, out); err != nil {
		fmt.Fprintln(os.Stderr, errors.Wrap(err, "copying metadata"))
		os.Exit(1)
	}
	if err := copy.Copy(filepath.Join(src, "connection.json"), filepath.Join(out, "connection.json")); err != nil {
		fmt.Fprintln(os.Stderr, errors.Wrap(err, "copying connection.json"))
		os.Exit(1)
	}
}
