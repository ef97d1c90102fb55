// Package metadata holds build-time facts about the fixture binaries.
// The values are meant to be overridden at link time, e.g.
//
//	go build -ldflags "-X github.com/hyperledger/fabric/common/metadata.Version=1.4.12"
package metadata

var (
	Version             = "latest"
	CommitSHA           = "development build"
	BaseVersion         = "0.4.22"
	BaseDockerLabel     = "org.hyperledger.fabric"
	DockerNamespace     = "hyperledger"
	BaseDockerNamespace = "hyperledger"
)
