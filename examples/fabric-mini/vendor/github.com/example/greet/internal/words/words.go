// Package words supplies the vocabulary for package greet.
package words

// Salutation is the opening word of every greeting.
func Salutation() string { return "Hello" }
