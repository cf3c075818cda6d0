package main

import (
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/txdecode"
	"github.com/tally-ledger/tally/wallet"
)

const opHelp = `
Calls a system operation (docs/operations.md): on an asset's ERC-20 facade
with --asset SYMBOL, or on --compliance, --governance, --exchange,
--confirmations or --disputes (docs/payments.md). METHOD
is a function of the contract's ABI under abi/; ARGs follow its inputs:

  address   0x… (EIP-55 or lower case)
  amount    an argument named "amount" or "amounts": in the asset's units
            with up to its decimals (12.50), or base units with the suffix
            "wei" (only with --asset; elsewhere amounts are base units)
  uint      other integers (a withdrawal id, a tier, a proposal id)
  bool      true or false
  bytes32   0x + 64 hex digits, or text of at most 32 bytes (ORDER-1234),
            right-padded with zeros as Solidity does
  bytes     0x + hex
  string    as is (quote it in the shell)
  T[]       comma-separated values of T (0xA…,0xB…)

Examples:
  tally op --from $BANK --asset HKD mint 0xAbc… 100.00 DEPOSIT-0001
  tally op --from $ME --asset HKD transferWithReference $SHOP 12.50 ORDER-1234
  tally op --from $ME --asset HKD requestWithdrawal 50 PAYOUT-77
  tally op --from $COMPLIANCE --compliance setKycTier 0xAbc… 1 "KYC documents verified"
  tally op --from $MEMBER --governance proposeAddBank 0x…1001 0xBank…
  tally op --from $MEMBER --governance vote 1 true
  tally op --asset HKD balanceOf 0xAbc…        (a view: no --from, prints the result;
                                               amounts in the asset's units, --json for scripts)`

func (c *cli) op(args []string) error {
	cmd := newCommand("op", "[--from ADDR] (--asset SYMBOL | --compliance | --governance | --exchange | --confirmations | --disputes) METHOD [ARG...]", opHelp+`

An operation is first run on the node's latest state (eth_call): if it
would fail, the reason is printed and nothing is signed. Otherwise the
transaction is signed with --from's key and sent, and the receipt awaited.`)
	from := cmd.fs.String("from", "", "sender `ADDR` (an account in the keystore); omit for a view")
	symbol := cmd.fs.String("asset", "", "asset `SYMBOL` whose facade to call")
	compliance := cmd.fs.Bool("compliance", false, "call the compliance contract")
	governance := cmd.fs.Bool("governance", false, "call the governance contract")
	exchange := cmd.fs.Bool("exchange", false, "call the exchange contract")
	confirmations := cmd.fs.Bool("confirmations", false, "call the confirmations contract (docs/payments.md)")
	disputes := cmd.fs.Bool("disputes", false, "call the disputes contract (docs/payments.md)")
	wait := cmd.fs.Bool("wait", true, "wait for the receipt")
	asJSON := cmd.fs.Bool("json", false, "print a view's results as one JSON document for scripts (docs/operations.md)")
	ksDir := c.keystoreFlag(cmd.fs)
	pwFile := passwordFileFlag(cmd.fs)
	rpcURL, timeout := rpcFlags(cmd.fs)
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("op: METHOD is required")
	}
	chosen := 0
	for _, on := range []bool{*symbol != "", *compliance, *governance, *exchange, *confirmations, *disputes} {
		if on {
			chosen++
		}
	}
	if chosen != 1 {
		return usageErrorf("op: give exactly one of --asset SYMBOL, --compliance, --governance, --exchange, --confirmations and --disputes")
	}
	contract, to, name := &chain.AssetABI, common.Address{}, "an asset"
	switch {
	case *compliance:
		contract, to, name = &chain.ComplianceABI, chain.ComplianceAddress, "compliance"
	case *governance:
		contract, to, name = &chain.GovernanceABI, chain.GovernanceAddress, "governance"
	case *exchange:
		contract, to, name = &chain.ExchangeABI, chain.ExchangeAddress, "exchange"
	case *confirmations:
		contract, to, name = &chain.ConfirmationsABI, chain.ConfirmationsAddress, "confirmations"
	case *disputes:
		contract, to, name = &chain.DisputesABI, chain.DisputesAddress, "disputes"
	}
	method, ok := contract.Methods[pos[0]]
	if !ok {
		return usageErrorf("op: %s has no operation %q", name, pos[0])
	}
	if len(pos)-1 != len(method.Inputs) {
		return usageErrorf("op: %s takes %d arguments (%s), got %d", method.Name, len(method.Inputs), method.Sig, len(pos)-1)
	}
	view := method.IsConstant()
	var fromAddr common.Address
	if !view {
		if fromAddr, err = parseAddress("op: --from", *from); err != nil {
			return err
		}
	}

	ctx, client, done, err := connect(*rpcURL, *timeout)
	if err != nil {
		return err
	}
	defer done()
	decimals := uint8(0)
	if *symbol != "" {
		asset, err := client.AssetBySymbol(ctx, *symbol)
		if err != nil {
			return usageErrorf("op: --asset: %v", err)
		}
		to, decimals = asset.Address, asset.Decimals
	}
	vals := make([]any, len(method.Inputs))
	for i, in := range method.Inputs {
		if vals[i], err = parseArg(in, pos[1+i], decimals); err != nil {
			return usageErrorf("op: %s argument %d (%s %s): %v", method.Name, i+1, in.Type, in.Name, err)
		}
	}
	data, err := contract.Pack(method.Name, vals...)
	if err != nil {
		return fmt.Errorf("op: encode %s: %w", method.Name, err)
	}
	op := wallet.Op{To: to, Data: data, Method: method.Name}
	out, err := client.Simulate(ctx, fromAddr, op)
	if err != nil {
		return fmt.Errorf("op: %w", err)
	}
	if view {
		_, assets, err := nodeAssets(ctx, client)
		if err != nil {
			return err
		}
		res, err := txdecode.DecodeResult(to, data, out, assets)
		if err != nil {
			return fmt.Errorf("op: %w", err)
		}
		if *asJSON {
			return c.printJSON(struct {
				To      txdecode.Address `json:"to"`
				Method  string           `json:"method"`
				Results []txdecode.Value `json:"results"`
			}{txdecode.Address(to), method.Name, res})
		}
		for _, v := range res {
			fmt.Fprintf(c.stdout, "%s: %s\n", v.Name, v.Text)
		}
		return nil
	}
	if *asJSON {
		return usageErrorf("op: --json prints a view's results; %s is an operation ('tally tx HASH --json' reads it once sent)", method.Name)
	}
	key, err := c.unlock("op", *ksDir, *pwFile, fromAddr)
	if err != nil {
		return err
	}
	tx, err := client.Send(ctx, key, op)
	if err != nil {
		return err
	}
	r, err := c.await(ctx, client, tx, *wait, *rpcURL)
	if err != nil || r == nil {
		return err
	}
	_, assets, err := nodeAssets(ctx, client)
	if err != nil {
		return err
	}
	writeEvents(c.stdout, txdecode.DecodeLogs(r.Logs, assets))
	if r.Status != types.ReceiptStatusSuccessful {
		return errors.New("op: the operation failed at execution (status 0)")
	}
	return nil
}

// parseArg parses a command-line argument for an ABI input.
func parseArg(in abi.Argument, s string, decimals uint8) (any, error) {
	return parseValueOf(in.Type, in.Name, s, decimals)
}

// parseValueOf parses s as a value of ABI type t; name decides whether an
// integer is an amount in the asset's units.
func parseValueOf(t abi.Type, name, s string, decimals uint8) (any, error) {
	switch t.T {
	case abi.SliceTy:
		parts := strings.Split(s, ",")
		out := reflect.MakeSlice(t.GetType(), 0, len(parts))
		for _, part := range parts {
			v, err := parseValueOf(*t.Elem, strings.TrimSuffix(name, "s"), strings.TrimSpace(part), decimals)
			if err != nil {
				return nil, err
			}
			out = reflect.Append(out, reflect.ValueOf(v))
		}
		return out.Interface(), nil
	case abi.BoolTy:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", s)
		}
		return b, nil
	case abi.BytesTy:
		if !strings.HasPrefix(s, "0x") || !isHex(s[2:]) || len(s)%2 != 0 {
			return nil, fmt.Errorf("%q is not 0x-prefixed hex", s)
		}
		return common.FromHex(s), nil
	}
	in := abi.Argument{Name: name, Type: t}
	switch in.Type.T {
	case abi.AddressTy:
		if !common.IsHexAddress(s) {
			return nil, fmt.Errorf("%q is not an address", s)
		}
		return common.HexToAddress(s), nil
	case abi.UintTy:
		var v *big.Int
		var err error
		switch {
		case in.Name == "amount" && decimals > 0:
			if digits, ok := strings.CutSuffix(s, "wei"); ok {
				v, err = wallet.ParseAmount(digits, 0)
			} else {
				v, err = wallet.ParseAmount(s, decimals)
			}
		default:
			v, err = wallet.ParseAmount(s, 0)
		}
		if err != nil {
			return nil, err
		}
		switch in.Type.Size {
		case 8:
			if !v.IsUint64() || v.Uint64() > 255 {
				return nil, fmt.Errorf("%s does not fit uint8", s)
			}
			return uint8(v.Uint64()), nil
		case 64:
			if !v.IsUint64() {
				return nil, fmt.Errorf("%s does not fit uint64", s)
			}
			return v.Uint64(), nil
		}
		return v, nil
	case abi.FixedBytesTy:
		return parseRef(s)
	case abi.StringTy:
		return s, nil
	}
	return nil, fmt.Errorf("type %s is not supported on the command line", in.Type)
}

// parseRef reads a bytes32 reference (wallet.ParseReference's rule).
func parseRef(s string) ([32]byte, error) {
	return wallet.ParseReference(s)
}
