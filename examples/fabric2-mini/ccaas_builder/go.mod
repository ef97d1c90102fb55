module github.com/hyperledger/fabric/ccaas_builder

go 1.16

require (
	github.com/otiai10/copy v1.6.0
	github.com/pkg/errors v0.9.1
)
