// Package metadata holds what the build injects with -ldflags -X, as Fabric 2.x's
// common/metadata (same names and defaults).
package metadata

var Version string = "latest"
var CommitSHA string = "development build"
var BaseDockerLabel string = "org.hyperledger.fabric"
var DockerNamespace string = "hyperledger"
