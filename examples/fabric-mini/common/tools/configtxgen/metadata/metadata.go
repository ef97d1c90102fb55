// Package metadata stands in for configtxgen's own metadata package of Fabric 1.4, whose
// CommitSHA the Makefile sets with a GO_LDFLAGS of its own
// (configtxgen: GO_LDFLAGS=-X $(pkgmap.$(@F))/metadata.CommitSHA=$(EXTRA_VERSION)).
package metadata

// Version is a constant in Fabric's configtxgen too.
const Version = "1.4.12"

// CommitSHA is set at link time.
var CommitSHA = "development build"
