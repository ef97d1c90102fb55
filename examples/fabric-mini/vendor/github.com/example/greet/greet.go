// Package greet is a trivial vendored library used by the imgforge fixture.
package greet

import "github.com/example/greet/internal/words"

// Hello returns a friendly greeting for name.
func Hello(name string) string {
	return words.Salutation() + ", " + name + "!"
}
