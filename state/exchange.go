package state

import (
	"encoding/binary"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/chain"
)

// The exchange (abi/Exchange.json, at chain.ExchangeAddress) swaps two
// assets between two named parties without trusting either: the maker's
// side is locked in escrow when the offer is made, so the counterparty's
// acceptance settles both legs in one operation, or neither.
//
//	createOffer ──▶ 1 open ──acceptOffer──▶ 2 accepted  (both legs paid)
//	  (maker)      (escrow) └─cancelOffer──▶ 3 cancelled (escrow back to the maker)
//	                            (the maker; anyone once expired)

// Offer statuses.
const (
	OfferOpen      uint8 = 1
	OfferAccepted  uint8 = 2
	OfferCancelled uint8 = 3
)

// Offer is a maker's standing offer to give AmountOut of AssetOut for
// AmountIn of AssetIn, to Counterparty only, until Expiry (Unix seconds of
// block time). While it is open, AmountOut is escrow of AssetOut: it counts
// in Supply.Escrow, so conservation (DESIGN.md decision 9) holds with the
// money out of every balance.
type Offer struct {
	Maker        common.Address
	AssetOut     uint32
	AmountOut    *big.Int
	AssetIn      uint32
	AmountIn     *big.Int
	Counterparty common.Address
	Expiry       uint64
	Status       uint8
}

// Offer returns offer id; ok is false if there is none.
func (o *Overlay) Offer(id uint64) (f Offer, ok bool, err error) {
	v, err := o.Get(key(prefixOffer, u64(id)))
	if err != nil || len(v) == 0 {
		return f, false, err
	}
	if err := rlp.DecodeBytes(v, &f); err != nil {
		return f, false, fmt.Errorf("state: offer %d: %w", id, err)
	}
	return f, true, nil
}

// SetOffer writes offer id.
func (o *Overlay) SetOffer(id uint64, f Offer) {
	v, err := rlp.EncodeToBytes(&f)
	if err != nil {
		panic(fmt.Sprintf("encode offer: %v", err)) // integers and addresses always encode
	}
	o.Set(key(prefixOffer, u64(id)), v)
}

// nextOfferID allocates the next offer id (ids start at 1; 0 is never an
// offer, so a zero id reads as "none" in offer()).
func (o *Overlay) nextOfferID() (uint64, error) {
	v, err := o.Get(keyOfferSeq)
	if err != nil {
		return 0, err
	}
	var last uint64
	if len(v) == 8 {
		last = binary.BigEndian.Uint64(v)
	}
	o.Set(keyOfferSeq, u64(last+1))
	return last + 1, nil
}

// exchange runs operation name of the exchange contract (abi/Exchange.json)
// with decoded args.
func (x *exec) exchange(name string, args []any) ([]any, error) {
	num := func(i int) *big.Int { return args[i].(*big.Int) }
	addr := func(i int) common.Address { return args[i].(common.Address) }
	ok := []any{true}
	switch name {
	case "offer":
		f, found, err := x.offerOf(num(0))
		if err != nil || !found {
			return []any{common.Address{}, common.Address{}, new(big.Int), common.Address{}, new(big.Int), common.Address{}, uint64(0), uint8(0)}, err
		}
		return []any{f.Maker, chain.AssetAddress(f.AssetOut), f.AmountOut, chain.AssetAddress(f.AssetIn), f.AmountIn, f.Counterparty, f.Expiry, f.Status}, nil
	case "createOffer":
		id, err := x.createOffer(addr(0), num(1), addr(2), num(3), addr(4), args[5].(uint64))
		return []any{new(big.Int).SetUint64(id)}, err
	case "acceptOffer":
		return ok, x.acceptOffer(num(0))
	case "cancelOffer":
		return ok, x.cancelOffer(num(0))
	}
	return nil, revertf("operation %s is not implemented by the exchange", name)
}

// nowSec is the block time in Unix seconds, the unit of offer expiries
// (as the header's Time): block time, never the node's clock.
func (x *exec) nowSec() uint64 { return x.blk.TimeMs / 1000 }

// assetAt returns the id of the existing asset whose facade is at a.
func (x *exec) assetAt(what string, a common.Address) (uint32, error) {
	id, ok := chain.AssetID(a)
	if !ok || !x.rules.HasAsset(id) {
		return 0, revertf("%s: no asset at %s", what, a)
	}
	return id, nil
}

// createOffer locks amountOut of the caller's assetOut in escrow and
// records the offer. The maker sends amountOut now, so its sender checks
// (freeze, tier, per-transfer and daily limits) and balance apply now, and
// the amount counts towards today's outflow; the counterparty is checked
// when it accepts.
func (x *exec) createOffer(assetOut common.Address, amountOut *big.Int, assetIn common.Address, amountIn *big.Int, counterparty common.Address, expiry uint64) (uint64, error) {
	out, err := x.assetAt("assetOut", assetOut)
	if err != nil {
		return 0, err
	}
	in, err := x.assetAt("assetIn", assetIn)
	if err != nil {
		return 0, err
	}
	if out == in {
		return 0, revertf("an offer exchanges two different assets: assetOut and assetIn are both %s", x.rules.Assets[out].Symbol)
	}
	for _, id := range []uint32{out, in} {
		if err := x.checkNotPaused(id); err != nil {
			return 0, err
		}
	}
	switch {
	case amountOut.Sign() <= 0:
		return 0, revertf("amountOut must be positive")
	case amountIn.Sign() <= 0:
		return 0, revertf("amountIn must be positive")
	case counterparty == (common.Address{}):
		return 0, revertf("counterparty is the zero address")
	case chain.IsSystemAddress(counterparty):
		return 0, revertf("counterparty %s is a system address", counterparty)
	case counterparty == x.from:
		return 0, revertf("counterparty %s is the maker", counterparty)
	case expiry < x.nowSec():
		return 0, revertf("expiry %d is already past: block time is %d", expiry, x.nowSec())
	}
	if err := x.refuseUnconfirmable("createOffer", x.from, out, amountOut); err != nil {
		return 0, err
	}
	c, err := x.checkSender(out, x.from, amountOut)
	if err != nil {
		return 0, err
	}
	bal, err := x.o.Balance(out, x.from)
	if err != nil {
		return 0, err
	}
	if bal.Cmp(amountOut) < 0 {
		return 0, revertf("insufficient balance: %s has %s, needs %s", x.from, x.units(out, bal), x.units(out, amountOut))
	}
	s, err := x.o.Supply(out)
	if err != nil {
		return 0, err
	}
	id, err := x.o.nextOfferID()
	if err != nil {
		return 0, err
	}
	x.commit(c, amountOut)
	x.o.SetBalance(out, x.from, bal.Sub(bal, amountOut))
	s.Escrow.Add(s.Escrow, amountOut)
	x.o.SetSupply(out, s)
	x.o.SetOffer(id, Offer{Maker: x.from, AssetOut: out, AmountOut: new(big.Int).Set(amountOut), AssetIn: in, AmountIn: new(big.Int).Set(amountIn),
		Counterparty: counterparty, Expiry: expiry, Status: OfferOpen})
	x.transferLog(out, x.from, assetOut, amountOut)
	x.log(chain.ExchangeAddress, chain.ExchangeABI.Events["OfferCreated"], []common.Hash{numTopic(id), addrTopic(x.from), addrTopic(counterparty)},
		assetOut, amountOut, assetIn, amountIn, expiry)
	return id, nil
}

// offerOf returns offer id, if there is one.
func (x *exec) offerOf(id *big.Int) (Offer, bool, error) {
	if !id.IsUint64() {
		return Offer{}, false, nil
	}
	return x.o.Offer(id.Uint64())
}

// openOffer returns offer id if it exists and is still open.
func (x *exec) openOffer(id *big.Int) (Offer, error) {
	f, found, err := x.offerOf(id)
	switch {
	case err != nil:
		return f, err
	case !found:
		return f, revertf("no offer %s", id)
	case f.Status == OfferAccepted:
		return f, revertf("offer %s is already accepted", id)
	case f.Status == OfferCancelled:
		return f, revertf("offer %s is already cancelled", id)
	}
	return f, nil
}

// acceptOffer swaps both legs of an open offer: the caller, its
// counterparty, pays amountIn to the maker as a transfer (every sender and
// recipient check), and receives the escrowed amountOut (the recipient
// checks: not frozen, its maximum balance). Either leg failing fails both.
func (x *exec) acceptOffer(id *big.Int) error {
	f, err := x.openOffer(id)
	if err != nil {
		return err
	}
	if x.from != f.Counterparty {
		return revertf("only the counterparty %s may accept offer %s", f.Counterparty, id)
	}
	if now := x.nowSec(); now > f.Expiry {
		return revertf("offer %s expired at %d: block time is %d", id, f.Expiry, now)
	}
	for _, a := range []uint32{f.AssetOut, f.AssetIn} {
		if err := x.checkNotPaused(a); err != nil {
			return err
		}
	}
	if err := x.move(f.AssetIn, x.from, f.Maker, f.AmountIn, false); err != nil {
		return err
	}
	bal, err := x.o.Balance(f.AssetOut, x.from)
	if err != nil {
		return err
	}
	bal.Add(bal, f.AmountOut)
	if err := x.checkRecipient(f.AssetOut, x.from, bal); err != nil {
		return err
	}
	if err := x.releaseEscrow(f.AssetOut, f.AmountOut); err != nil {
		return err
	}
	x.o.SetBalance(f.AssetOut, x.from, bal)
	f.Status = OfferAccepted
	x.o.SetOffer(id.Uint64(), f)
	x.transferLog(f.AssetIn, x.from, f.Maker, f.AmountIn)
	x.transferLog(f.AssetOut, chain.AssetAddress(f.AssetOut), x.from, f.AmountOut)
	x.log(chain.ExchangeAddress, chain.ExchangeABI.Events["OfferAccepted"], []common.Hash{numTopic(id.Uint64()), addrTopic(f.Maker), addrTopic(x.from)})
	return nil
}

// cancelOffer closes an open offer and returns its escrow to the maker.
// Before expiry only the maker may cancel; after it anyone may, so money
// never stays locked behind a maker who is gone. Like a refunded
// withdrawal, the money goes back whatever the maker's state: frozen (where
// a forced transfer can reach it, as it cannot reach escrow) or over its
// maximum balance; and a paused asset does not stop it.
func (x *exec) cancelOffer(id *big.Int) error {
	f, err := x.openOffer(id)
	if err != nil {
		return err
	}
	if x.from != f.Maker && x.nowSec() <= f.Expiry {
		return revertf("only the maker %s may cancel offer %s before it expires at %d", f.Maker, id, f.Expiry)
	}
	if err := x.releaseEscrow(f.AssetOut, f.AmountOut); err != nil {
		return err
	}
	bal, err := x.o.Balance(f.AssetOut, f.Maker)
	if err != nil {
		return err
	}
	x.o.SetBalance(f.AssetOut, f.Maker, bal.Add(bal, f.AmountOut))
	f.Status = OfferCancelled
	x.o.SetOffer(id.Uint64(), f)
	x.transferLog(f.AssetOut, chain.AssetAddress(f.AssetOut), f.Maker, f.AmountOut)
	x.log(chain.ExchangeAddress, chain.ExchangeABI.Events["OfferCancelled"], []common.Hash{numTopic(id.Uint64()), addrTopic(f.Maker), addrTopic(x.from)})
	return nil
}

// releaseEscrow takes amount of asset out of escrow, to be credited by the caller.
func (x *exec) releaseEscrow(asset uint32, amount *big.Int) error {
	s, err := x.o.Supply(asset)
	if err != nil {
		return err
	}
	s.Escrow.Sub(s.Escrow, amount)
	if s.Escrow.Sign() < 0 {
		panic("state: escrow below zero") // invariant: escrow holds every open offer
	}
	x.o.SetSupply(asset, s)
	return nil
}
