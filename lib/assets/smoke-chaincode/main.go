// Command chaincode is imgforge's smoke-test chaincode for Fabric 1.4 networks, written against
// the 1.4 shim API: `init NAME VALUE …` stores integer balances, `move FROM TO AMOUNT` moves an
// amount between two of them, `query NAME` returns a balance.
package main

import (
	"fmt"
	"strconv"

	"github.com/hyperledger/fabric/core/chaincode/shim"
	pb "github.com/hyperledger/fabric/protos/peer"
)

type balances struct{}

func (balances) Init(stub shim.ChaincodeStubInterface) pb.Response {
	_, args := stub.GetFunctionAndParameters()
	if len(args)%2 != 0 {
		return shim.Error("init takes NAME VALUE pairs")
	}
	for i := 0; i < len(args); i += 2 {
		if _, err := strconv.Atoi(args[i+1]); err != nil {
			return shim.Error(fmt.Sprintf("balance of %s is not an integer: %q", args[i], args[i+1]))
		}
		if err := stub.PutState(args[i], []byte(args[i+1])); err != nil {
			return shim.Error(err.Error())
		}
	}
	return shim.Success(nil)
}

func balance(stub shim.ChaincodeStubInterface, name string) (int, error) {
	b, err := stub.GetState(name)
	if err != nil {
		return 0, err
	}
	if b == nil {
		return 0, fmt.Errorf("no balance for %s", name)
	}
	return strconv.Atoi(string(b))
}

func (balances) Invoke(stub shim.ChaincodeStubInterface) pb.Response {
	fn, args := stub.GetFunctionAndParameters()
	switch {
	case fn == "move" && len(args) == 3:
		from, err := balance(stub, args[0])
		if err != nil {
			return shim.Error(err.Error())
		}
		to, err := balance(stub, args[1])
		if err != nil {
			return shim.Error(err.Error())
		}
		amount, err := strconv.Atoi(args[2])
		if err != nil || amount < 0 || amount > from {
			return shim.Error(fmt.Sprintf("cannot move %q from %s", args[2], args[0]))
		}
		if err := stub.PutState(args[0], []byte(strconv.Itoa(from-amount))); err != nil {
			return shim.Error(err.Error())
		}
		if err := stub.PutState(args[1], []byte(strconv.Itoa(to+amount))); err != nil {
			return shim.Error(err.Error())
		}
		return shim.Success(nil)
	case fn == "query" && len(args) == 1:
		b, err := balance(stub, args[0])
		if err != nil {
			return shim.Error(err.Error())
		}
		return shim.Success([]byte(strconv.Itoa(b)))
	}
	return shim.Error(fmt.Sprintf("unknown call %s%q: expected move FROM TO AMOUNT or query NAME", fn, args))
}

func main() {
	if err := shim.Start(balances{}); err != nil {
		fmt.Printf("chaincode failed to start: %s\n", err)
	}
}
