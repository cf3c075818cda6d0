package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/big"
	"slices"

	"github.com/ethereum/go-ethereum/common"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

// Proposal kinds: one per propose* operation of abi/Governance.json.
const (
	KindAddValidator uint8 = iota + 1
	KindRemoveValidator
	KindAddBank
	KindRemoveBank
	KindRotateBankKey
	KindAddAsset
	KindSetAssetPaused
	KindSetTierLimits
	KindSetCompliance
	KindSetGovernance
	KindSetIssuanceCap
	KindSetVelocityRule
	KindRemoveVelocityRule
	KindSetPayments
	KindSetDisputeWindow
)

var kindOf = map[string]uint8{
	"proposeAddValidator": KindAddValidator, "proposeRemoveValidator": KindRemoveValidator,
	"proposeAddBank": KindAddBank, "proposeRemoveBank": KindRemoveBank, "proposeRotateBankKey": KindRotateBankKey,
	"proposeAddAsset": KindAddAsset, "proposeSetAssetPaused": KindSetAssetPaused, "proposeSetTierLimits": KindSetTierLimits,
	"proposeSetCompliance": KindSetCompliance, "proposeSetGovernance": KindSetGovernance,
	"proposeSetIssuanceCap":  KindSetIssuanceCap,
	"proposeSetVelocityRule": KindSetVelocityRule, "proposeRemoveVelocityRule": KindRemoveVelocityRule,
	"proposeSetPayments": KindSetPayments, "proposeSetDisputeWindow": KindSetDisputeWindow,
}

// Proposal statuses.
const (
	ProposalPending  uint8 = 1
	ProposalApproved uint8 = 2 // scheduled for EffectiveHeight
	ProposalRejected uint8 = 3
	ProposalExecuted uint8 = 4
	// ProposalFailed: approved, but the change no longer applied when its
	// height came (e.g. the bank it rotates was removed meanwhile).
	ProposalFailed uint8 = 5
)

// Proposal is a change of the rules or the validator set awaiting votes.
type Proposal struct {
	Kind uint8
	// Change is the propose call's calldata: the change and its arguments.
	Change     []byte
	Proposer   common.Address
	Approvals  []common.Address
	Rejections []common.Address
	Status     uint8
	// EffectiveHeight is the first block under the change (once approved).
	EffectiveHeight uint64
	// Height is the block the proposal was made in.
	Height uint64
}

// Scheduled is an approved proposal and the height it takes effect at.
type Scheduled struct {
	Height uint64
	ID     uint64
}

// Proposal returns proposal id; ok is false if there is none.
func (o *Overlay) Proposal(id uint64) (p Proposal, ok bool, err error) {
	v, err := o.Get(key(prefixProposal, u64(id)))
	if err != nil || len(v) == 0 {
		return p, false, err
	}
	if err := rlp.DecodeBytes(v, &p); err != nil {
		return p, false, fmt.Errorf("state: proposal %d: %w", id, err)
	}
	return p, true, nil
}

func (o *Overlay) setProposal(id uint64, p Proposal) {
	v, err := rlp.EncodeToBytes(&p)
	if err != nil {
		panic(fmt.Sprintf("encode proposal: %v", err))
	}
	o.Set(key(prefixProposal, u64(id)), v)
}

// Schedule returns the approved changes not yet in effect, in order.
func (o *Overlay) Schedule() ([]Scheduled, error) {
	v, err := o.Get(keySchedule)
	if err != nil || len(v) == 0 {
		return nil, err
	}
	var s []Scheduled
	if err := rlp.DecodeBytes(v, &s); err != nil {
		return nil, fmt.Errorf("state: schedule: %w", err)
	}
	return s, nil
}

func (o *Overlay) setSchedule(s []Scheduled) {
	if len(s) == 0 {
		o.Set(keySchedule, nil)
		return
	}
	v, err := rlp.EncodeToBytes(s)
	if err != nil {
		panic(fmt.Sprintf("encode schedule: %v", err))
	}
	o.Set(keySchedule, v)
}

// ValidatorInfo is a validator as the state holds it.
type ValidatorInfo struct {
	Address   common.Address
	Name      string
	PublicKey []byte // compressed secp256k1, 33 bytes
}

func (o *Overlay) setValidator(v ValidatorInfo) {
	o.Set(validatorKey(v.Address), append(append([]byte{}, v.PublicKey...), v.Name...))
}

func decodeValidator(a common.Address, v []byte) (ValidatorInfo, error) {
	if len(v) < 33 {
		return ValidatorInfo{}, fmt.Errorf("state: validator record of %s is %d bytes", a, len(v))
	}
	return ValidatorInfo{Address: a, PublicKey: append([]byte{}, v[:33]...), Name: string(v[33:])}, nil
}

// Validator returns a's validator record; ok is false if a is not a validator.
func (o *Overlay) Validator(a common.Address) (ValidatorInfo, bool, error) {
	v, err := o.Get(validatorKey(a))
	if err != nil || len(v) == 0 {
		return ValidatorInfo{}, false, err
	}
	vi, err := decodeValidator(a, v)
	return vi, err == nil, err
}

// governance runs operation name of the governance contract
// (abi/Governance.json).
func (x *exec) governance(name string, args []any) ([]any, error) {
	g := x.rules.Governance
	switch name {
	case "members":
		return []any{append([]common.Address{}, g.Members...)}, nil
	case "threshold":
		return []any{big.NewInt(int64(g.Threshold))}, nil
	case "activationDelay":
		return []any{g.ActivationDelay}, nil
	case "validators":
		list, err := x.o.validatorList()
		return []any{list}, err
	case "proposal":
		id := args[0].(*big.Int)
		var p Proposal
		if id.IsUint64() {
			var err error
			if p, _, err = x.o.Proposal(id.Uint64()); err != nil {
				return nil, err
			}
		}
		return []any{p.Proposer, p.Kind, p.Status, big.NewInt(int64(len(p.Approvals))), big.NewInt(int64(len(p.Rejections))), p.EffectiveHeight, p.Change}, nil
	case "vote":
		return []any{true}, x.vote(args[0].(*big.Int), args[1].(bool))
	}
	kind, ok := kindOf[name]
	if !ok {
		return nil, revertf("operation %s is not implemented by governance", name)
	}
	if !slices.Contains(g.Members, x.from) {
		return nil, revertf("%s is not a governance member", x.from)
	}
	change, err := chain.GovernanceABI.Pack(name, args...)
	if err != nil {
		return nil, revertf("encode %s: %v", name, err)
	}
	// A proposal that could not apply now is refused at once; it is checked
	// again when its height comes.
	if _, err := x.applyChange(kind, change, true); err != nil {
		return nil, err
	}
	id, err := x.o.nextSeq(keyProposalSeq)
	if err != nil {
		return nil, err
	}
	p := Proposal{Kind: kind, Change: change, Proposer: x.from, Approvals: []common.Address{x.from}, Status: ProposalPending, Height: x.blk.Number}
	x.log(chain.GovernanceAddress, chain.GovernanceABI.Events["Proposed"], []common.Hash{numTopic(id), addrTopic(x.from)}, kind, change)
	x.log(chain.GovernanceAddress, chain.GovernanceABI.Events["Voted"], []common.Hash{numTopic(id), addrTopic(x.from)}, true)
	if err := x.tally(id, &p); err != nil {
		return nil, err
	}
	return []any{new(big.Int).SetUint64(id)}, nil
}

// vote records a member's vote and settles the proposal once the outcome
// is certain.
func (x *exec) vote(idArg *big.Int, approve bool) error {
	g := x.rules.Governance
	if !slices.Contains(g.Members, x.from) {
		return revertf("%s is not a governance member", x.from)
	}
	if !idArg.IsUint64() {
		return revertf("no proposal %s", idArg)
	}
	id := idArg.Uint64()
	p, ok, err := x.o.Proposal(id)
	if err != nil {
		return err
	}
	switch {
	case !ok:
		return revertf("no proposal %d", id)
	case p.Status != ProposalPending:
		return revertf("proposal %d is no longer open (status %s)", id, statusName(p.Status))
	case slices.Contains(p.Approvals, x.from) || slices.Contains(p.Rejections, x.from):
		return revertf("%s has already voted on proposal %d", x.from, id)
	}
	if approve {
		p.Approvals = append(p.Approvals, x.from)
	} else {
		p.Rejections = append(p.Rejections, x.from)
	}
	x.log(chain.GovernanceAddress, chain.GovernanceABI.Events["Voted"], []common.Hash{numTopic(id), addrTopic(x.from)}, approve)
	return x.tally(id, &p)
}

// tally counts the votes of current members: at the threshold the proposal
// is approved and scheduled ActivationDelay blocks ahead; once the
// threshold cannot be reached it is rejected. It writes p.
func (x *exec) tally(id uint64, p *Proposal) error {
	g := x.rules.Governance
	count := func(votes []common.Address) int {
		n := 0
		for _, a := range votes {
			if slices.Contains(g.Members, a) {
				n++
			}
		}
		return n
	}
	switch {
	case count(p.Approvals) >= g.Threshold:
		p.Status = ProposalApproved
		p.EffectiveHeight = x.blk.Number + g.ActivationDelay
		sched, err := x.o.Schedule()
		if err != nil {
			return err
		}
		sched = append(sched, Scheduled{Height: p.EffectiveHeight, ID: id})
		x.o.setSchedule(sched)
		x.log(chain.GovernanceAddress, chain.GovernanceABI.Events["Approved"], []common.Hash{numTopic(id)}, p.EffectiveHeight)
	case count(p.Rejections) > len(g.Members)-g.Threshold:
		p.Status = ProposalRejected
		x.log(chain.GovernanceAddress, chain.GovernanceABI.Events["Rejected"], []common.Hash{numTopic(id)})
	}
	x.o.setProposal(id, *p)
	return nil
}

func statusName(s uint8) string {
	switch s {
	case ProposalPending:
		return "pending"
	case ProposalApproved:
		return "approved"
	case ProposalRejected:
		return "rejected"
	case ProposalExecuted:
		return "executed"
	case ProposalFailed:
		return "failed"
	}
	return fmt.Sprint(s)
}

// nextSeq allocates the next id of a sequence (ids start at 1).
func (o *Overlay) nextSeq(k []byte) (uint64, error) {
	v, err := o.Get(k)
	if err != nil {
		return 0, err
	}
	var last uint64
	if len(v) == 8 {
		last = binary.BigEndian.Uint64(v)
	}
	o.Set(k, u64(last+1))
	return last + 1, nil
}

// applyChange applies a proposal's change to the state: the rules (written
// with their history) or the validator set. With dryRun it only checks that
// the change applies and writes nothing. Errors are *Revert for a change
// that does not apply.
func (x *exec) applyChange(kind uint8, change []byte, dryRun bool) (*genesis.Rules, error) {
	m, err := chain.GovernanceABI.MethodById(change[:4])
	if err != nil {
		return nil, revertf("unknown change")
	}
	args, err := m.Inputs.Unpack(change[4:])
	if err != nil {
		return nil, revertf("malformed change: %v", err)
	}
	addr := func(i int) common.Address { return args[i].(common.Address) }
	asset := func(i int) (uint32, error) {
		id, ok := chain.AssetID(addr(i))
		if !ok || !x.rules.HasAsset(id) {
			return 0, revertf("no asset at %s", addr(i))
		}
		return id, nil
	}
	r := x.rules.Rules.Clone()
	switch kind {
	case KindAddValidator, KindRemoveValidator:
		return nil, x.changeValidators(kind, args, dryRun)
	case KindAddBank, KindRemoveBank, KindRotateBankKey:
		id, err := asset(0)
		if err != nil {
			return nil, err
		}
		banks := r.Assets[id].Banks
		has := slices.Contains(banks, addr(1))
		switch {
		case kind == KindAddBank && has:
			return nil, revertf("%s already issues %s", addr(1), r.Assets[id].Symbol)
		case kind != KindAddBank && !has:
			return nil, revertf("%s is not an issuing bank of %s", addr(1), r.Assets[id].Symbol)
		case kind == KindAddBank:
			banks = append(banks, addr(1))
		case kind == KindRemoveBank:
			banks = slices.DeleteFunc(banks, func(a common.Address) bool { return a == addr(1) })
			setCap(&r.Assets[id], addr(1), nil)
		default:
			if slices.Contains(banks, addr(2)) {
				return nil, revertf("%s already issues %s", addr(2), r.Assets[id].Symbol)
			}
			banks[slices.Index(banks, addr(1))] = addr(2)
			// The new key inherits the old one's cap, outstanding issuance
			// and claims (sameBank follows the successor record).
			setCap(&r.Assets[id], addr(2), r.Assets[id].CapOf(addr(1)))
			setCap(&r.Assets[id], addr(1), nil)
			if !dryRun {
				if err := x.rotateIssuance(id, addr(1), addr(2)); err != nil {
					return nil, err
				}
			}
		}
		r.Assets[id].Banks = banks
	case KindAddAsset:
		r.Assets = append(r.Assets, genesis.Asset{Symbol: args[0].(string), Name: args[1].(string), Decimals: args[2].(uint8), Banks: args[3].([]common.Address)})
		if len(r.Assets)-1 > chain.MaxAssetID {
			return nil, revertf("no facade address left for another asset")
		}
	case KindSetAssetPaused:
		id, err := asset(0)
		if err != nil {
			return nil, err
		}
		if r.Assets[id].Paused == args[1].(bool) {
			return nil, revertf("asset %s is already %s", r.Assets[id].Symbol, map[bool]string{true: "paused", false: "running"}[args[1].(bool)])
		}
		r.Assets[id].Paused = args[1].(bool)
	case KindSetTierLimits:
		tier := args[0].(uint8)
		id, err := asset(1)
		if err != nil {
			return nil, err
		}
		if int(tier) >= len(r.Tiers) {
			return nil, revertf("tier %d does not exist (tiers are 0..%d)", tier, len(r.Tiers)-1)
		}
		limit := func(v *big.Int) *genesis.Amount {
			if v.Cmp(maxUint256) == 0 {
				return nil // 2^256-1 means no limit
			}
			return &genesis.Amount{Int: new(big.Int).Set(v)}
		}
		if r.Tiers[tier].Limits == nil {
			r.Tiers[tier].Limits = map[string]genesis.Limits{}
		}
		r.Tiers[tier].Limits[r.Assets[id].Symbol] = genesis.Limits{MaxBalance: limit(args[2].(*big.Int)), MaxTransfer: limit(args[3].(*big.Int)), MaxDailyOutflow: limit(args[4].(*big.Int))}
	case KindSetIssuanceCap:
		id, err := asset(0)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(r.Assets[id].Banks, addr(1)) {
			return nil, revertf("%s is not an issuing bank of %s", addr(1), r.Assets[id].Symbol)
		}
		var limit *big.Int
		if v := args[2].(*big.Int); v.Cmp(maxUint256) != 0 {
			limit = new(big.Int).Set(v) // 2^256-1 means no cap
		}
		setCap(&r.Assets[id], addr(1), limit)
	case KindSetVelocityRule, KindRemoveVelocityRule:
		if err := changeVelocity(r, kind, args); err != nil {
			return nil, err
		}
	case KindSetPayments:
		// The payment-trust times (docs/payments.md); 0 is the default, as
		// in a genesis file. r.Validate below names a field out of bounds.
		r.Payments = &genesis.Payments{HoldSeconds: args[0].(uint64), KeyChangeDelaySeconds: args[1].(uint64), DisputeResponseSeconds: args[2].(uint64)}
		if *r.Payments == (genesis.Payments{}) {
			r.Payments = nil // all defaults encode as a genesis without the key
		}
	case KindSetDisputeWindow:
		id, err := asset(0)
		if err != nil {
			return nil, err
		}
		if r.Assets[id].DisputeWindowSeconds == args[1].(uint64) {
			return nil, revertf("assets[%d].disputeWindowSeconds of %s is already %d", id, r.Assets[id].Symbol, args[1].(uint64))
		}
		r.Assets[id].DisputeWindowSeconds = args[1].(uint64)
	case KindSetCompliance:
		r.Compliance = addr(0)
	case KindSetGovernance:
		t := args[1].(*big.Int)
		if !t.IsInt64() || t.Int64() > genesis.MaxMembers {
			return nil, revertf("threshold %s is out of range", t)
		}
		r.Governance.Members = args[0].([]common.Address)
		r.Governance.Threshold = int(t.Int64())
	default:
		return nil, revertf("unknown change kind %d", kind)
	}
	if err := r.Validate(); err != nil {
		return nil, revertf("the rules after this change would be invalid: %v", err)
	}
	if !dryRun {
		enc := r.Encode()
		x.o.Set(keyRules, enc)
		x.o.Set(key(prefixRulesHistory, u64(x.blk.Number+1)), enc)
	}
	return r, nil
}

// setCap sets bank's issuance cap of asset a (nil removes it), keeping
// the caps sorted by bank so that equal rules encode equally.
func setCap(a *genesis.Asset, bank common.Address, limit *big.Int) {
	a.IssuanceCaps = slices.DeleteFunc(a.IssuanceCaps, func(c genesis.IssuanceCap) bool { return c.Bank == bank })
	if limit != nil {
		a.IssuanceCaps = append(a.IssuanceCaps, genesis.IssuanceCap{Bank: bank, Cap: genesis.Amount{Int: new(big.Int).Set(limit)}})
		slices.SortFunc(a.IssuanceCaps, func(x, y genesis.IssuanceCap) int { return bytes.Compare(x.Bank[:], y.Bank[:]) })
	}
	if len(a.IssuanceCaps) == 0 {
		a.IssuanceCaps = nil
	}
}

// rotateIssuance moves bank key old's issuance record of asset to key
// next and records next as old's successor, so the rotated bank keeps its
// outstanding issuance (its cap still binds) and its claims and mints.
func (x *exec) rotateIssuance(asset uint32, old, next common.Address) error {
	from, err := x.o.Issuance(asset, old)
	if err != nil {
		return err
	}
	if err := x.o.addIssuance(asset, next, from.Minted, from.Burned); err != nil {
		return err
	}
	x.o.setIssuance(asset, old, Issuance{Minted: new(big.Int), Burned: new(big.Int)})
	x.o.Set(key(prefixSuccessor, u32(asset), old[:]), next[:])
	return nil
}

// changeValidators adds or removes a validator; the set never becomes empty.
func (x *exec) changeValidators(kind uint8, args []any, dryRun bool) error {
	if kind == KindAddValidator {
		name, pub := args[0].(string), args[1].([]byte)
		if len(name) == 0 || len(name) > 64 {
			return revertf("a validator name is 1..64 bytes")
		}
		if len(pub) != 33 {
			return revertf("publicKey must be a 33-byte compressed secp256k1 key")
		}
		pk, err := ethcrypto.DecompressPubkey(pub)
		if err != nil {
			return revertf("publicKey: %v", err)
		}
		a := ethcrypto.PubkeyToAddress(*pk)
		if _, ok, err := x.o.Validator(a); err != nil || ok {
			if err != nil {
				return err
			}
			return revertf("%s is already a validator", a)
		}
		if dryRun {
			return nil
		}
		list, err := x.o.validatorList()
		if err != nil {
			return err
		}
		if len(list) >= genesis.MaxValidators {
			return revertf("there are already %d validators, the most a chain may have", len(list))
		}
		x.o.setValidator(ValidatorInfo{Address: a, Name: name, PublicKey: pub})
		x.o.setValidatorList(append(list, a), x.blk.Number+1)
		return nil
	}
	a := args[0].(common.Address)
	if _, ok, err := x.o.Validator(a); err != nil || !ok {
		if err != nil {
			return err
		}
		return revertf("%s is not a validator", a)
	}
	list, err := x.o.validatorList()
	if err != nil {
		return err
	}
	if len(list) <= 1 {
		return revertf("the last validator cannot be removed")
	}
	if !dryRun {
		x.o.Set(validatorKey(a), nil)
		x.o.setValidatorList(slices.DeleteFunc(list, func(v common.Address) bool { return v == a }), x.blk.Number+1)
	}
	return nil
}

// validatorList returns the validators' addresses, sorted. The list is kept
// under its own key because an overlay cannot iterate.
func (o *Overlay) validatorList() ([]common.Address, error) {
	v, err := o.Get(keyValidatorList)
	if err != nil {
		return nil, err
	}
	var list []common.Address
	if err := rlp.DecodeBytes(v, &list); err != nil {
		return nil, fmt.Errorf("state: validator list: %w", err)
	}
	return list, nil
}

// setValidatorList records the validator set in force from height from.
func (o *Overlay) setValidatorList(list []common.Address, from uint64) {
	sortAddresses(list)
	v, err := rlp.EncodeToBytes(list)
	if err != nil {
		panic(fmt.Sprintf("encode validator list: %v", err))
	}
	o.Set(keyValidatorList, v)
	o.Set(key(prefixValidatorHistory, u64(from)), v)
}

// ApplyScheduled runs, at the end of block blk, every approved change that
// takes effect at the next height, so the next block (its proposer check
// included) runs under it. A change that no longer applies is marked
// failed. Errors are only state read failures.
func ApplyScheduled(o *Overlay, rules *Rules, blk BlockContext) error {
	sched, err := o.Schedule()
	if err != nil || len(sched) == 0 {
		return err
	}
	var keep []Scheduled
	x := &exec{o: o, rules: rules, blk: blk}
	for _, s := range sched {
		if s.Height > blk.Number+1 {
			keep = append(keep, s)
			continue
		}
		p, ok, err := o.Proposal(s.ID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("state: scheduled proposal %d does not exist", s.ID) // invariant: only approved proposals are scheduled
		}
		child := NewOverlay(o)
		x.o = child
		r, err := x.applyChange(p.Kind, p.Change, false)
		if _, isRevert := IsRevert(err); err != nil && !isRevert {
			return err
		}
		p.Status = ProposalExecuted
		if err != nil {
			p.Status = ProposalFailed
		} else {
			child.mergeInto(o)
			if r != nil { // later changes in this block see this one
				if x.rules, err = compileRules(r.Encode()); err != nil {
					return fmt.Errorf("state: rules after proposal %d: %w", s.ID, err)
				}
			}
		}
		x.o = o
		o.setProposal(s.ID, p)
	}
	o.setSchedule(keep)
	return nil
}

func sortAddresses(as []common.Address) {
	slices.SortFunc(as, func(a, b common.Address) int { return bytes.Compare(a[:], b[:]) })
}
