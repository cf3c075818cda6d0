package txdecode

import (
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

// Asset is what the decoder needs to know of an asset to show its amounts.
type Asset struct {
	ID     uint32 `json:"id"`
	Symbol string `json:"symbol"`
	// Decimals are the asset's decimals: an amount of n base units is
	// n / 10^Decimals units.
	Decimals uint8 `json:"decimals"`
	// MinorUnits are the decimal places of the currency (ISO 4217): an
	// amount is shown with at least that many (12.50, not 12.5).
	MinorUnits uint8 `json:"minorUnits"`
	// Known is false for an asset id the caller did not give (a facade
	// address of an asset added after the caller's list): Symbol is then
	// "asset #N" and amounts are base units.
	Known bool `json:"known"`
}

// Assets are the assets a caller knows, by asset id.
type Assets map[uint32]Asset

// Of returns asset id, or an unknown asset named "asset #id" (amounts in
// base units) when the caller did not give it.
func (as Assets) Of(id uint32) Asset {
	if a, ok := as[id]; ok {
		a.ID, a.Known = id, true
		return a
	}
	return Asset{ID: id, Symbol: "asset #" + strconv.FormatUint(uint64(id), 10)}
}

// BySymbol returns the asset with the symbol.
func (as Assets) BySymbol(symbol string) (Asset, bool) {
	for id, a := range as {
		if a.Symbol == symbol {
			a.ID, a.Known = id, true
			return a, true
		}
	}
	return Asset{}, false
}

// Symbols lists the known symbols in asset id order, for messages.
func (as Assets) Symbols() []string {
	ids := make([]int, 0, len(as))
	for id := range as {
		ids = append(ids, int(id))
	}
	slices.Sort(ids)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = as[uint32(id)].Symbol
	}
	return out
}

// facade returns the asset whose ERC-20 facade is at a.
func (as Assets) facade(a common.Address) (Asset, bool) {
	id, ok := chain.AssetID(a)
	if !ok {
		return Asset{}, false
	}
	return as.Of(id), true
}

// NativeAssetID is the id of the native asset, moved by a transaction's value.
const NativeAssetID = 0

// Value is one decoded argument of an operation or an event.
type Value struct {
	// Name and Type are the ABI input's ("amount", "uint256").
	Name string `json:"name"`
	Type string `json:"type"`
	// Value is stable for scripts: integers are decimal strings (amounts
	// in base units), addresses EIP-55, bytes32 and bytes 0x hex, strings
	// and booleans as such, arrays as JSON arrays of these.
	Value any `json:"value"`
	// Text is for people: "12.50 HKD", a reference's text when it is
	// printable UTF-8, "0x…1001 (HKD)" for an asset's facade address.
	Text string `json:"text"`
	// Asset is the symbol of the asset an amount counts ("" for a value
	// that is not an amount).
	Asset string `json:"asset,omitempty"`
}

// Call is what a transaction asks for.
type Call struct {
	// Contract is "account" for a native transfer to an account, else the
	// system contract called: "asset", "compliance", "governance" or
	// "exchange", "confirmations", "disputes" ("none" for a transaction
	// without a recipient).
	Contract string `json:"contract"`
	// Asset is the asset the call moves: the facade's asset, or the
	// native asset for a transfer to an account.
	Asset *Asset `json:"asset,omitempty"`
	// Operation is "transfer" for a native transfer, else the name of the
	// ABI function called; "" when the calldata matches none.
	Operation string `json:"operation"`
	// Args are the operation's arguments in ABI order; a native transfer
	// has "to" and "amount", as the facade's transfer.
	Args []Value `json:"args"`
	// Data is the calldata when it does not decode (else omitted).
	Data hexutil.Bytes `json:"data,omitempty"`
}

// Arg returns the argument named name.
func (c *Call) Arg(name string) (Value, bool) { return arg(c.Args, name) }

// Event is one decoded log of a receipt.
type Event struct {
	// Address is the contract that emitted it; Contract and Asset as in Call.
	Address  Address `json:"address"`
	Contract string  `json:"contract"`
	Asset    *Asset  `json:"asset,omitempty"`
	// Name is the ABI event's name ("Transfer"); "" when no event of the
	// contract matches, and then Topics and Data are the raw log.
	Name   string        `json:"name"`
	Args   []Value       `json:"args"`
	Topics []common.Hash `json:"topics,omitempty"`
	Data   hexutil.Bytes `json:"data,omitempty"`
}

// Arg returns the argument named name.
func (e *Event) Arg(name string) (Value, bool) { return arg(e.Args, name) }

func arg(vs []Value, name string) (Value, bool) {
	for _, v := range vs {
		if v.Name == name {
			return v, true
		}
	}
	return Value{}, false
}

// contractAt names the system contract at a and returns its ABI.
func contractAt(a common.Address) (string, *abi.ABI) {
	switch a {
	case chain.ComplianceAddress:
		return "compliance", &chain.ComplianceABI
	case chain.GovernanceAddress:
		return "governance", &chain.GovernanceABI
	case chain.ExchangeAddress:
		return "exchange", &chain.ExchangeABI
	case chain.ConfirmationsAddress:
		return "confirmations", &chain.ConfirmationsABI
	case chain.DisputesAddress:
		return "disputes", &chain.DisputesABI
	}
	if _, ok := chain.AssetID(a); ok {
		return "asset", &chain.AssetABI
	}
	return "account", nil
}

// DecodeCall decodes what a transaction to `to` with value and calldata
// asks for.
func DecodeCall(to *common.Address, value *big.Int, data []byte, assets Assets) Call {
	if to == nil {
		return Call{Contract: "none", Args: []Value{}, Data: data}
	}
	contract, a := contractAt(*to)
	if a == nil {
		native := assets.Of(NativeAssetID)
		c := Call{Contract: contract, Asset: &native, Operation: "transfer", Args: []Value{
			addressValue("to", *to, assets),
			amountValue("amount", "uint256", value, native),
		}}
		if len(data) > 0 {
			c.Data = data
		}
		return c
	}
	c := Call{Contract: contract, Args: []Value{}}
	if asset, ok := assets.facade(*to); ok {
		c.Asset = &asset
	}
	if len(data) < 4 {
		c.Data = data
		return c
	}
	m, err := a.MethodById(data[:4])
	if err != nil {
		c.Data = data
		return c
	}
	vals, err := m.Inputs.Unpack(data[4:])
	if err != nil {
		c.Data = data
		return c
	}
	c.Operation = m.Name
	c.Args = render(m.Inputs, vals, c.Asset, assets, byName)
	return c
}

// DecodeResult decodes what a view returned: out is the eth_call result
// of calldata data at the system contract to. Unnamed results are named
// "result" (one) or "result0", "result1", …. An amount counts the asset
// of the call's "asset" input if it has one, else the facade's.
func DecodeResult(to common.Address, data, out []byte, assets Assets) ([]Value, error) {
	contract, a := contractAt(to)
	if a == nil || len(data) < 4 {
		return nil, fmt.Errorf("no view of a system contract at %s", to.Hex())
	}
	m, err := a.MethodById(data[:4])
	if err != nil {
		return nil, fmt.Errorf("%s contract: %w", contract, err)
	}
	vals, err := m.Outputs.Unpack(out)
	if err != nil {
		return nil, fmt.Errorf("decode the result of %s: %w", m.Name, err)
	}
	var asset *Asset
	if f, ok := assets.facade(to); ok {
		asset = &f
	}
	if in, err := m.Inputs.Unpack(data[4:]); err == nil {
		if ia := assetInput(m.Inputs, in, assets); ia != nil {
			asset = ia
		}
	}
	outs := make(abi.Arguments, len(m.Outputs))
	copy(outs, m.Outputs)
	for i := range outs {
		if outs[i].Name == "" {
			outs[i].Name = "result"
			if len(outs) > 1 {
				outs[i].Name += strconv.Itoa(i)
			}
		}
	}
	isAmount := func(i int, in abi.Argument) bool {
		unnamed := m.Outputs[i].Name == "" && (in.Type.T == abi.UintTy || in.Type.T == abi.IntTy)
		return amountNames[in.Name] || (unnamed && amountViews[m.Name])
	}
	return render(outs, vals, asset, assets, isAmount), nil
}

// assetInput returns the asset of an "asset" address input, if any.
func assetInput(ins abi.Arguments, vals []any, assets Assets) *Asset {
	for i, in := range ins {
		if in.Name == "asset" && in.Type.T == abi.AddressTy {
			if addr, ok := vals[i].(common.Address); ok {
				if a, ok := assets.facade(addr); ok {
					return &a
				}
			}
		}
	}
	return nil
}

// DecodeTx decodes a transaction's call (DecodeCall).
func DecodeTx(tx *types.Transaction, assets Assets) Call {
	return DecodeCall(tx.To(), tx.Value(), tx.Data(), assets)
}

// DecodeLog decodes a log of a system contract.
func DecodeLog(l *types.Log, assets Assets) Event {
	contract, a := contractAt(l.Address)
	e := Event{Address: Address(l.Address), Contract: contract, Args: []Value{}}
	if asset, ok := assets.facade(l.Address); ok {
		e.Asset = &asset
	}
	raw := func() Event {
		e.Name, e.Args = "", []Value{}
		e.Topics, e.Data = append([]common.Hash{}, l.Topics...), l.Data
		return e
	}
	if a == nil || len(l.Topics) == 0 {
		return raw()
	}
	ev, err := a.EventByID(l.Topics[0])
	if err != nil {
		return raw()
	}
	var indexed abi.Arguments
	for _, in := range ev.Inputs {
		if in.Indexed {
			indexed = append(indexed, in)
		}
	}
	if len(l.Topics)-1 != len(indexed) {
		return raw()
	}
	fields := map[string]any{}
	if err := abi.ParseTopicsIntoMap(fields, indexed, l.Topics[1:]); err != nil {
		return raw()
	}
	if err := ev.Inputs.NonIndexed().UnpackIntoMap(fields, l.Data); err != nil {
		return raw()
	}
	vals := make([]any, len(ev.Inputs))
	for i, in := range ev.Inputs {
		vals[i] = fields[in.Name]
	}
	e.Name = ev.Name
	e.Args = render(ev.Inputs, vals, e.Asset, assets, byName)
	return e
}

// DecodeLogs decodes a receipt's logs (DecodeLog), never nil.
func DecodeLogs(logs []*types.Log, assets Assets) []Event {
	out := make([]Event, len(logs))
	for i, l := range logs {
		out[i] = DecodeLog(l, assets)
	}
	return out
}

// amountNames are the integer inputs and outputs of the ABIs that count
// an asset.
var amountNames = map[string]bool{
	"amount": true, "amounts": true, "value": true, "amountOut": true, "amountIn": true,
	"maxBalance": true, "maxTransfer": true, "maxDailyOutflow": true, "cap": true,
	"paid": true, "refunded": true, "minted": true, "burned": true, "escrow": true, "circulating": true,
	"outstanding": true,
}

// byName is the amount rule of calls and events: the input's name.
func byName(_ int, in abi.Argument) bool { return amountNames[in.Name] }

// amountViews are the views whose one unnamed integer result is an amount
// (ERC-20's balanceOf, totalSupply and allowance; the daily allowance).
var amountViews = map[string]bool{
	"balanceOf": true, "totalSupply": true, "allowance": true, "remainingDailyAllowance": true,
}

// render decodes an operation's or event's values; isAmount says which
// integers are amounts. An amount counts, in
// this order: the asset of its own address input (amountOut: assetOut,
// amountIn: assetIn), the call's "asset" input, the facade's asset; an
// integer with none of these is a plain number.
func render(ins abi.Arguments, vals []any, facade *Asset, assets Assets, isAmount func(int, abi.Argument) bool) []Value {
	assetOf := func(name string) *Asset {
		for i, in := range ins {
			if in.Name == name && in.Type.T == abi.AddressTy {
				if addr, ok := vals[i].(common.Address); ok {
					if a, ok := assets.facade(addr); ok {
						return &a
					}
				}
			}
		}
		return nil
	}
	out := make([]Value, len(ins))
	for i, in := range ins {
		var amountOf *Asset
		if isAmount(i, in) {
			switch in.Name {
			case "amountOut":
				amountOf = assetOf("assetOut")
			case "amountIn":
				amountOf = assetOf("assetIn")
			default:
				if amountOf = assetOf("asset"); amountOf == nil {
					amountOf = facade
				}
			}
		}
		out[i] = valueOf(in.Name, in.Type, vals[i], amountOf, assets)
	}
	return out
}

// valueOf renders one decoded value of ABI type t; amountOf is the asset
// it counts, if it is an amount.
func valueOf(name string, t abi.Type, v any, amountOf *Asset, assets Assets) Value {
	typ := t.String()
	switch t.T {
	case abi.SliceTy, abi.ArrayTy:
		rv := reflect.ValueOf(v)
		elems := make([]any, rv.Len())
		texts := make([]string, rv.Len())
		for i := range elems {
			ev := valueOf(name, *t.Elem, rv.Index(i).Interface(), amountOf, assets)
			elems[i], texts[i] = ev.Value, ev.Text
		}
		out := Value{Name: name, Type: typ, Value: elems, Text: strings.Join(texts, ", ")}
		if amountOf != nil {
			out.Asset = amountOf.Symbol
		}
		return out
	case abi.UintTy, abi.IntTy:
		n := toBig(v)
		if amountOf != nil {
			return amountValue(name, typ, n, *amountOf)
		}
		return Value{Name: name, Type: typ, Value: n.String(), Text: n.String()}
	case abi.AddressTy:
		addr, _ := v.(common.Address)
		out := addressValue(name, addr, assets)
		out.Type = typ
		return out
	case abi.FixedBytesTy:
		b := reflect.ValueOf(v)
		raw := make([]byte, b.Len())
		reflect.Copy(reflect.ValueOf(raw), b)
		if t.Size == 32 {
			var ref [32]byte
			copy(ref[:], raw)
			return Value{Name: name, Type: typ, Value: hexutil.Encode(raw), Text: Reference(ref)}
		}
		return Value{Name: name, Type: typ, Value: hexutil.Encode(raw), Text: hexutil.Encode(raw)}
	case abi.BytesTy:
		b, _ := v.([]byte)
		return Value{Name: name, Type: typ, Value: hexutil.Encode(b), Text: hexutil.Encode(b)}
	case abi.StringTy:
		s, _ := v.(string)
		return Value{Name: name, Type: typ, Value: s, Text: Text(s)}
	case abi.BoolTy:
		b, _ := v.(bool)
		return Value{Name: name, Type: typ, Value: b, Text: strconv.FormatBool(b)}
	}
	s := fmt.Sprint(v)
	return Value{Name: name, Type: typ, Value: s, Text: s}
}

// toBig converts a decoded ABI integer (uint8 … uint64, int*, *big.Int).
func toBig(v any) *big.Int {
	switch x := v.(type) {
	case *big.Int:
		if x == nil {
			return new(big.Int)
		}
		return x
	case uint8:
		return new(big.Int).SetUint64(uint64(x))
	case uint16:
		return new(big.Int).SetUint64(uint64(x))
	case uint32:
		return new(big.Int).SetUint64(uint64(x))
	case uint64:
		return new(big.Int).SetUint64(x)
	case int8:
		return big.NewInt(int64(x))
	case int16:
		return big.NewInt(int64(x))
	case int32:
		return big.NewInt(int64(x))
	case int64:
		return big.NewInt(x)
	}
	return new(big.Int)
}

func addressValue(name string, a common.Address, assets Assets) Value {
	text := a.Hex()
	if asset, ok := assets.facade(a); ok {
		text += " (" + asset.Symbol + ")"
	} else if contract, _ := contractAt(a); contract != "account" {
		text += " (" + contract + ")"
	}
	return Value{Name: name, Type: "address", Value: a.Hex(), Text: text}
}

func amountValue(name, typ string, v *big.Int, a Asset) Value {
	if v == nil {
		v = new(big.Int)
	}
	return Value{Name: name, Type: typ, Value: v.String(), Text: FormatAmount(v, a), Asset: a.Symbol}
}

// FormatAmount renders base units in the asset's units with its symbol:
// 1250 base units of a 2-decimal asset are "12.50 HKD". The fraction
// shows at least the currency's minor units and more only when they are
// not zero (2.5 CNY of 18 decimals is "2.50 CNY", one base unit
// "0.000000000000000001 CNY"). An unknown asset's amount is base units:
// "1250 (asset #7 base units)".
func FormatAmount(v *big.Int, a Asset) string {
	if !a.Known {
		return v.String() + " (" + a.Symbol + " base units)"
	}
	return FormatUnits(v, a.Decimals, a.MinorUnits) + " " + a.Symbol
}

// FormatUnits renders base units as a decimal amount with decimals, and at
// least minor (capped at decimals) fractional digits: genesis.FormatUnits,
// the one rule execution's reasons use too.
func FormatUnits(v *big.Int, decimals, minor uint8) string {
	return genesis.FormatUnits(v, decimals, minor)
}

// Reference renders a bytes32 reference (a payment's order id, a bank
// reference, a payout reference): its text when, without its trailing zero
// bytes, it is non-empty printable UTF-8 (as `tally op` and the bridges
// write text references: left-aligned, zero-padded); else 0x and 64 hex
// digits. A text reference is at most 32 bytes, so the two never look
// alike.
func Reference(ref [32]byte) string {
	b := ref[:]
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	if len(b) > 0 && utf8.Valid(b) && printable(string(b)) {
		return string(b)
	}
	return hexutil.Encode(ref[:])
}

// printable reports whether s is only printable characters (spaces
// included), so that it cannot move a terminal's cursor or hide text.
func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// Text renders a string argument (a reason) for a terminal: as is when it
// is printable, else Go-quoted so that control characters show as escapes.
func Text(s string) string {
	if utf8.ValidString(s) && printable(s) {
		return s
	}
	return strconv.Quote(s)
}

// Address is an address that marshals EIP-55 checksummed (common.Address
// marshals lower case), as every rendering of this package shows it.
type Address common.Address

// MarshalText writes the EIP-55 form.
func (a Address) MarshalText() ([]byte, error) { return []byte(common.Address(a).Hex()), nil }

// UnmarshalText reads 0x and 40 hex digits, whatever their case.
func (a *Address) UnmarshalText(b []byte) error {
	return (*common.Address)(a).UnmarshalText(b)
}

// Hex is the EIP-55 form.
func (a Address) Hex() string { return common.Address(a).Hex() }
