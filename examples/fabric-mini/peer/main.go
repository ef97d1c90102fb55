// Command peer is an imgforge fixture standing in for Fabric's peer binary.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	"github.com/example/greet"
	"github.com/hyperledger/fabric/common/metadata"
)

const defaultCfgPath = "/etc/hyperledger/fabric"

func versionText() string {
	return "peer:\n" +
		" Version: " + metadata.Version + "\n" +
		" Commit SHA: " + metadata.CommitSHA + "\n" +
		" Go version: " + runtime.Version() + "\n" +
		" OS/Arch: " + runtime.GOOS + "/" + runtime.GOARCH + "\n" +
		" Chaincode:\n" +
		"  Base Image Version: " + metadata.BaseVersion + "\n" +
		"  Base Docker Namespace: " + metadata.BaseDockerNamespace + "\n" +
		"  Base Docker Label: " + metadata.BaseDockerLabel + "\n" +
		"  Docker Namespace: " + metadata.DockerNamespace + "\n"
}

func usage() {
	fmt.Fprintln(os.Stderr, greet.Hello("peer user"))
	fmt.Fprintln(os.Stderr, "usage: peer version | peer node start")
}

func start() int {
	dir := os.Getenv("FABRIC_CFG_PATH")
	if dir == "" {
		dir = defaultCfgPath
	}
	fmt.Printf("fixture peer would start now (config: %s)\n", dir)
	var files []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !info.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "peer: cannot list %s: %v\n", dir, err)
		return 1
	}
	sort.Strings(files)
	for _, f := range files {
		fmt.Println(" " + f)
	}
	return 0
}

func main() {
	args := os.Args[1:]
	switch {
	case len(args) == 1 && args[0] == "version":
		fmt.Print(versionText())
	case len(args) == 2 && args[0] == "node" && args[1] == "start":
		os.Exit(start())
	default:
		usage()
		os.Exit(2)
	}
}
