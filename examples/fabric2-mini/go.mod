module github.com/hyperledger/fabric

go 1.22.0

require example.com/fixdep v0.1.0
