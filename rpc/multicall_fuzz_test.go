package rpc

import (
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/store"
)

// FuzzMulticall sends any calldata to Multicall3: the node never panics,
// and answers either an output that decodes with the function's ABI or
// one of the errors Multicall3 answers with (a revert, with or without
// data, or the inner-call bound), never a failure of its own.
func FuzzMulticall(f *testing.F) {
	type call3 struct {
		Target       common.Address
		AllowFailure bool
		CallData     []byte
	}
	balanceOf, _ := chain.AssetABI.Pack("balanceOf", common.Address{7})
	name, _ := chain.AssetABI.Pack("name")
	self, _ := chain.Multicall3ABI.Pack("getEthBalance", common.Address{7})
	nested, _ := chain.Multicall3ABI.Pack("aggregate3", []call3{{chain.MulticallAddress, false, self}, {chain.AssetAddress(0), true, balanceOf}})
	seeds := [][]byte{nil, {0x82, 0xad, 0x56, 0xcb}, nested}
	for _, c := range [][]call3{
		{{chain.AssetAddress(0), false, balanceOf}, {chain.AssetAddress(1), true, name}},
		{{chain.MulticallAddress, true, nested}, {common.Address{1}, false, nil}},
	} {
		d, _ := chain.Multicall3ABI.Pack("aggregate3", c)
		seeds = append(seeds, d)
	}
	for _, m := range chain.Multicall3ABI.Methods {
		seeds = append(seeds, append(append([]byte{}, m.ID...), make([]byte, 64)...))
	}
	if d, err := hex.DecodeString("82ad56cb0000000000000000000000000000000000000000000000000000000000000020ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"); err == nil {
		seeds = append(seeds, d) // an array length no calldata can hold
	}
	for _, s := range seeds {
		f.Add(s)
	}
	db, err := store.Open(f.TempDir(), store.Options{NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	if err := db.InitGenesis(genesis.Dev()); err != nil {
		f.Fatal(err)
	}
	api := &EthAPI{b: &testBackend{db: db}, chainID: big.NewInt(genesis.DevChainID), maxMulticall: 64}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := db.LatestState()
		if err != nil {
			t.Fatal(err)
		}
		out, gas, err := api.callMulticall(st, nil, data)
		var rv *RevertError
		var rd *revertDataError
		var lim *Error
		switch {
		case errors.As(err, &rv), errors.As(err, &rd):
		case errors.As(err, &lim) && lim.Code == CodeLimitExceeded:
		case err != nil:
			t.Fatalf("calldata %x: %v", data, err)
		default:
			m, merr := chain.Multicall3ABI.MethodById(data[:4])
			if merr != nil {
				t.Fatalf("calldata %x answered %x for no method", data, out)
			}
			if _, uerr := m.Outputs.Unpack(out); uerr != nil {
				t.Fatalf("%s output %x does not decode: %v", m.Name, out, uerr)
			}
			if gas < chain.GasPerTransfer {
				t.Fatalf("gas %d", gas)
			}
		}
	})
}
