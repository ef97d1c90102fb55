package shim

import (
	"strings"
	"testing"
)

func TestBanner(t *testing.T) {
	b := Banner("mycc")
	if !strings.HasPrefix(b, "Hello, mycc!") {
		t.Fatalf("unexpected banner %q", b)
	}
}
