// Package attr is a tiny sub-package of the fixture shim.
package attr

import "strings"

// Lookup returns the value for key in a "k=v,k=v" attribute list.
func Lookup(attrs, key string) (string, bool) {
	for _, kv := range strings.Split(attrs, ",") {
		parts := strings.SplitN(kv, "=", 2)
		if len(parts) == 2 && parts[0] == key {
			return parts[1], true
		}
	}
	return "", false
}
