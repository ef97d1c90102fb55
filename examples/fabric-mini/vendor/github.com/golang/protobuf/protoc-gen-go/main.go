// Command protoc-gen-go is a placeholder binary for imgforge's gotools step.
package main

import "fmt"

func main() {
	fmt.Println("protoc-gen-go (imgforge fixture)")
}
