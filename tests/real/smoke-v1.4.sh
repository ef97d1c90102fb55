#!/usr/bin/env bash
# Opt-in network check of an imgforge-built Fabric 1.4 image set (the real consumer of the
# images, not a fixture): a solo orderer and one peer on 127.0.0.1 (`--network host`, free
# ports chosen at run time), crypto material and channel artefacts made with the tools image's
# cryptogen/configtxgen, then the chaincode lifecycle of lib/assets/smoke-chaincode (install,
# instantiate — the peer builds the chaincode in ccenv with its own command —, invoke `move a b
# 10`, query a = 90), with per-phase timings. Everything it starts is removed on exit, also on
# failure and Ctrl-C: its two containers, the peer's chaincode containers and images (all named
# after this run's CORE_PEER_NETWORKID), its temp dir.
#
#   DOCKER_NS=acme BASE_DOCKER_NS=acme TAG=1.4 bash tests/real/smoke-v1.4.sh
#
# after `imgforge all --source <v1.4.12>` (peer, orderer, ccenv, tools) and the base images.
# Nothing is pulled (`--pull never`); a missing image is named before anything starts.
set -euo pipefail
NS=${DOCKER_NS:-hyperledger}; TAG=${TAG:-1.4}
TOOLS=$NS/fabric-tools:$TAG; PEER=$NS/fabric-peer:$TAG; ORDERER=$NS/fabric-orderer:$TAG
CC_SRC=${CC_SRC:-$(cd "$(dirname "$0")/../../lib/assets/smoke-chaincode" && pwd)}
for img in $TOOLS $PEER $ORDERER; do
  docker image inspect "$img" >/dev/null 2>&1 || { echo "error: image $img is missing: build it with imgforge (imgforge all --source TREE DOCKER_NS=$NS)" >&2; exit 2; }
done
# the images the peer will ask for, from its own metadata (core.yaml: chaincode.builder =
# $(DOCKER_NS)/fabric-ccenv:$(TWO_DIGIT_VERSION), chaincode.golang.runtime =
# $(BASE_DOCKER_NS)/fabric-baseos:$(ARCH)-$(BASE_VERSION)); the peer would try to pull a missing one
meta=$(docker run --rm --pull never $PEER peer version)
field() { echo "$meta" | sed -n "s|^ *$1: ||p" | head -1; }
ver=$(field Version); arch=$(field OS/Arch); arch=${arch#*/}
BUILDER=$(field "Docker Namespace")/fabric-ccenv:$(echo "$ver" | cut -d. -f1,2)
RUNTIME=$(field "Base Docker Namespace")/fabric-baseos:$arch-$(field "Base Image Version")
missing=0
for img in $BUILDER $RUNTIME; do
  docker image inspect "$img" >/dev/null 2>&1 || { echo "error: the peer's chaincode image $img is missing (imgforge ccenv / imgforge baseos make it)" >&2; missing=1; }
done
[ $missing = 0 ] || exit 2
RUN=smoke$$; W=$(mktemp -d /tmp/imgforge-smoke.XXXX)
free() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
OP=$(free); PP=$(free); CC=$(free); O1=$(free); O2=$(free)
cleanup() {
  docker rm -f $RUN-orderer $RUN-peer >/dev/null 2>&1 || true
  docker ps -aq --filter "name=^$RUN-" | xargs -r docker rm -f >/dev/null
  docker images --format '{{.Repository}}' | grep "^$RUN-" | xargs -r docker rmi -f >/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "error: $1 failed; last errors of the peer and orderer:" >&2; docker logs $RUN-peer 2>&1 | grep -E "ERRO|panic" | tail -5 >&2 || true; docker logs $RUN-orderer 2>&1 | grep -E "ERRO|panic" | tail -3 >&2 || true; exit 1; }
t0=$(date +%s.%N); phase() { local t=$(date +%s.%N); printf '%-12s %6.1f s\n' "$1" "$(echo "$t - $t0" | bc)"; t0=$t; }
cat > $W/crypto-config.yaml <<Y
OrdererOrgs:
  - Name: Orderer
    Domain: example.com
    Specs:
      - Hostname: orderer
PeerOrgs:
  - Name: Org1
    Domain: org1.example.com
    Template:
      Count: 1
    Users:
      Count: 1
Y
cat > $W/configtx.yaml <<Y
Organizations:
  - &OrdererOrg
    Name: OrdererOrg
    ID: OrdererMSP
    MSPDir: crypto-config/ordererOrganizations/example.com/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Writers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Admins: {Type: Signature, Rule: "OR('OrdererMSP.admin')"}
  - &Org1
    Name: Org1MSP
    ID: Org1MSP
    MSPDir: crypto-config/peerOrganizations/org1.example.com/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('Org1MSP.admin', 'Org1MSP.peer', 'Org1MSP.client', 'Org1MSP.member')"}
      Writers: {Type: Signature, Rule: "OR('Org1MSP.admin', 'Org1MSP.client', 'Org1MSP.member')"}
      Admins: {Type: Signature, Rule: "OR('Org1MSP.admin')"}
    AnchorPeers:
      - Host: 127.0.0.1
        Port: $PP
Capabilities:
  Channel: &ChannelCapabilities {V1_4_3: true}
  Orderer: &OrdererCapabilities {V1_4_2: true}
  Application: &ApplicationCapabilities {V1_4_2: true}
Application: &ApplicationDefaults
  Organizations:
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
  Capabilities: *ApplicationCapabilities
Orderer: &OrdererDefaults
  OrdererType: solo
  Addresses: [127.0.0.1:$OP]
  BatchTimeout: 1s
  BatchSize: {MaxMessageCount: 10, AbsoluteMaxBytes: 99 MB, PreferredMaxBytes: 512 KB}
  Organizations:
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
    BlockValidation: {Type: ImplicitMeta, Rule: "ANY Writers"}
Channel: &ChannelDefaults
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
  Capabilities: *ChannelCapabilities
Profiles:
  Genesis:
    <<: *ChannelDefaults
    Orderer:
      <<: *OrdererDefaults
      Organizations: [*OrdererOrg]
      Capabilities: *OrdererCapabilities
    Consortiums:
      SampleConsortium:
        Organizations: [*Org1]
  Channel:
    Consortium: SampleConsortium
    <<: *ChannelDefaults
    Application:
      <<: *ApplicationDefaults
      Organizations: [*Org1]
      Capabilities: *ApplicationCapabilities
Y
T="docker run --rm --pull never --network host -v $W:/w -w /w"
$T $TOOLS cryptogen generate --config=/w/crypto-config.yaml --output=/w/crypto-config >/dev/null
$T -e FABRIC_CFG_PATH=/w $TOOLS configtxgen -profile Genesis -channelID sys-channel -outputBlock /w/genesis.block 2>/dev/null
$T -e FABRIC_CFG_PATH=/w $TOOLS configtxgen -profile Channel -channelID mychannel -outputCreateChannelTx /w/channel.tx 2>/dev/null
phase artefacts
docker run -d --pull never --name $RUN-orderer --network host -v $W:/w \
  -e ORDERER_GENERAL_LISTENADDRESS=127.0.0.1 -e ORDERER_GENERAL_LISTENPORT=$OP \
  -e ORDERER_GENERAL_GENESISMETHOD=file -e ORDERER_GENERAL_GENESISFILE=/w/genesis.block \
  -e ORDERER_GENERAL_LOCALMSPID=OrdererMSP \
  -e ORDERER_GENERAL_LOCALMSPDIR=/w/crypto-config/ordererOrganizations/example.com/orderers/orderer.example.com/msp \
  -e ORDERER_FILELEDGER_LOCATION=/tmp/ledger -e ORDERER_OPERATIONS_LISTENADDRESS=127.0.0.1:$O1 \
  -e ORDERER_METRICS_PROVIDER=disabled -e ORDERER_GENERAL_TLS_ENABLED=false $ORDERER orderer >/dev/null
docker run -d --pull never --name $RUN-peer --network host -v $W:/w -v /var/run/docker.sock:/host/var/run/docker.sock \
  -e CORE_PEER_ID=peer0.org1.example.com -e CORE_PEER_NETWORKID=$RUN \
  -e CORE_PEER_ADDRESS=127.0.0.1:$PP -e CORE_PEER_LISTENADDRESS=127.0.0.1:$PP \
  -e CORE_PEER_CHAINCODEADDRESS=127.0.0.1:$CC -e CORE_PEER_CHAINCODELISTENADDRESS=127.0.0.1:$CC \
  -e CORE_PEER_GOSSIP_BOOTSTRAP=127.0.0.1:$PP -e CORE_PEER_GOSSIP_EXTERNALENDPOINT=127.0.0.1:$PP \
  -e CORE_PEER_GOSSIP_USELEADERELECTION=false -e CORE_PEER_GOSSIP_ORGLEADER=true \
  -e CORE_PEER_LOCALMSPID=Org1MSP \
  -e CORE_PEER_MSPCONFIGPATH=/w/crypto-config/peerOrganizations/org1.example.com/peers/peer0.org1.example.com/msp \
  -e CORE_PEER_FILESYSTEMPATH=/tmp/production -e CORE_OPERATIONS_LISTENADDRESS=127.0.0.1:$O2 \
  -e CORE_METRICS_PROVIDER=disabled -e CORE_PEER_TLS_ENABLED=false \
  -e CORE_VM_ENDPOINT=unix:///host/var/run/docker.sock -e CORE_VM_DOCKER_HOSTCONFIG_NETWORKMODE=host \
  $PEER peer node start >/dev/null
sleep 4
phase start
ADMIN="-e CORE_PEER_LOCALMSPID=Org1MSP -e CORE_PEER_MSPCONFIGPATH=/w/crypto-config/peerOrganizations/org1.example.com/users/Admin@org1.example.com/msp -e CORE_PEER_ADDRESS=127.0.0.1:$PP -e CORE_PEER_TLS_ENABLED=false"
CLI="$T $ADMIN -v $CC_SRC:/opt/gopath/src/example.com/cc:ro $TOOLS"
$CLI peer channel create -o 127.0.0.1:$OP -c mychannel -f /w/channel.tx --outputBlock /w/mychannel.block > $W/out.log 2>&1 || { tail -3 $W/out.log >&2; fail "channel create"; }; tail -1 $W/out.log
$CLI peer channel join -b /w/mychannel.block > $W/out.log 2>&1 || { tail -3 $W/out.log >&2; fail "channel join"; }; tail -1 $W/out.log
phase channel
$CLI peer chaincode install -n mycc -v 1.0 -p example.com/cc > $W/out.log 2>&1 || { tail -3 $W/out.log >&2; fail "chaincode install"; }; tail -1 $W/out.log
phase install
$CLI peer chaincode instantiate -o 127.0.0.1:$OP -C mychannel -n mycc -v 1.0 -c '{"Args":["init","a","100","b","200"]}' -P "OR ('Org1MSP.member')" > $W/out.log 2>&1 || { tail -3 $W/out.log >&2; fail "chaincode instantiate"; }; tail -1 $W/out.log
phase instantiate
sleep 3
$CLI peer chaincode invoke -o 127.0.0.1:$OP -C mychannel -n mycc -c '{"Args":["move","a","b","10"]}' --waitForEvent > $W/out.log 2>&1 || { tail -3 $W/out.log >&2; fail "chaincode invoke"; }; tail -1 $W/out.log
phase invoke
Q=$($CLI peer chaincode query -C mychannel -n mycc -c '{"Args":["query","a"]}' 2>/dev/null) || fail query
phase query
echo "query a = $Q"
[ "$Q" = "90" ] || fail "query (expected 90)"
echo "smoke: passed"
