package bridge

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	kv "github.com/tally-ledger/tally/internal/pebblekv"
	"github.com/tally-ledger/tally/store"
)

// DepositStatus is where a deposit is on its way to a mint.
type DepositStatus string

// Deposit statuses (docs/bridge.md, "Deposits in").
const (
	// DepositAccepted: persisted, waiting for the outbox to sign its mint.
	DepositAccepted DepositStatus = "accepted"
	// DepositHeld: cannot be minted as is (reason says why); kept for an
	// operator, never minted by the bridge on its own.
	DepositHeld DepositStatus = "held"
	// DepositSubmitted: its mint is signed and recorded, maybe sent.
	DepositSubmitted DepositStatus = "submitted"
	// DepositMinted: the chain has minted its bankRef.
	DepositMinted DepositStatus = "minted"
	// DepositReversed: the bank reversed the credit (RvslInd): nothing was
	// minted and nothing will be, or the mint is reversed on chain.
	DepositReversed DepositStatus = "reversed"
	// DepositReversing: the bank reversed the credit after its mint: the
	// reverser takes the money back from the wallet (reverseMint) and the
	// deposit becomes reversed; while the chain refuses (the wallet holds
	// less than was minted) it is raised (log, refusal, metric
	// tally_bridge_unhandled_returns_total) for an operator.
	DepositReversing DepositStatus = "reversing"
	// DepositReturnDue: an operator returns a held deposit to its payer
	// (Return); never minted from then on. The return order is not yet
	// acknowledged by the core.
	DepositReturnDue DepositStatus = "return-due"
	// DepositReturned: the core acknowledged the return order.
	DepositReturned DepositStatus = "returned"
)

// DepositStatuses lists the statuses in the order /v1/status shows them.
var DepositStatuses = []DepositStatus{DepositAccepted, DepositHeld, DepositSubmitted, DepositMinted, DepositReversed, DepositReversing,
	DepositReturnDue, DepositReturned}

// DepositKey identifies a deposit (docs/bridge.md, "Deposit identity"):
// the account it is booked on, the transaction's reference there
// (DepositRef) and the booking date. Its text is what BankRef hashes.
type DepositKey struct {
	Account     string `json:"account"`
	Ref         string `json:"ref"`
	BookingDate string `json:"bookingDate,omitempty"`
}

// String is the key as BankRef takes it: "<len>:<account>|<len>:<ref>|
// <booking date>". The lengths make it unambiguous whatever characters
// the account and the reference hold.
func (k DepositKey) String() string {
	return k.prefix() + k.BookingDate
}

// prefix is the key without its booking date: what a reversal, booked on
// another day, finds its deposit by.
func (k DepositKey) prefix() string {
	return fmt.Sprintf("%d:%s|%d:%s|", len(k.Account), k.Account, len(k.Ref), k.Ref)
}

// BankRef is the bankRef a deposit of this key mints under for bank and
// asset symbol.
func (k DepositKey) BankRef(bank common.Address, symbol string) common.Hash {
	return BankRef(bank, symbol, k.String())
}

// Reversal is the bank taking a deposit back (a reversed credit).
type Reversal struct {
	At     time.Time `json:"at"`
	MsgID  string    `json:"msgId"`
	Ref    string    `json:"ref"`
	Reason string    `json:"reason,omitempty"`
}

// PayoutStatus is where a withdrawal's payout is.
type PayoutStatus string

// Payout statuses (docs/bridge.md, "Withdrawals out").
const (
	// PayoutNew: seen on chain, the order is not yet acknowledged by the core.
	PayoutNew PayoutStatus = "new"
	// PayoutOrdered: the core answered 2xx to the pain.001; waiting for the outcome.
	PayoutOrdered PayoutStatus = "ordered"
	// PayoutSettling: the core reports it paid; settleWithdrawal is due.
	PayoutSettling PayoutStatus = "settling"
	// PayoutRefunding: the core rejected it; refundWithdrawal is due.
	PayoutRefunding PayoutStatus = "refunding"
	// PayoutReturning: the bank paid, then the money came back (a return
	// by the beneficiary's bank, or the debit reversed): the holder is owed
	// it again. The closer refunds a withdrawal still pending on chain and
	// returns (returnWithdrawal) one already settled.
	PayoutReturning PayoutStatus = "returning"
	// PayoutClosed: the withdrawal is settled, refunded or returned on chain.
	PayoutClosed PayoutStatus = "closed"
)

// PayoutStatuses lists the statuses in the order /v1/status shows them.
var PayoutStatuses = []PayoutStatus{PayoutNew, PayoutOrdered, PayoutSettling, PayoutRefunding, PayoutReturning, PayoutClosed}

// SignedTx is a transaction the bridge signed and recorded before sending,
// so that after a crash it can look the transaction up instead of guessing.
type SignedTx struct {
	Raw      hexutil.Bytes `json:"raw"`
	Hash     common.Hash   `json:"hash"`
	Nonce    uint64        `json:"nonce"`
	SignedAt time.Time     `json:"signedAt"`
}

// Deposit is one credit entry of the bank, keyed by its bankRef.
type Deposit struct {
	BankRef common.Hash `json:"bankRef"`
	// Seq is the arrival order; the outbox mints in this order.
	Seq uint64 `json:"seq"`
	// Key is the deposit's identity; BankRef is Key.BankRef.
	Key DepositKey `json:"key"`
	// Ref is Key.Ref (kept at the top for tools); EntryRef the entry's
	// own reference (AcctSvcrRef, else NtryRef).
	Ref        string `json:"ref"`
	EntryRef   string `json:"entryRef,omitempty"`
	MsgID      string `json:"msgId"`
	EndToEndID string `json:"endToEndId,omitempty"`
	UETR       string `json:"uetr,omitempty"`
	// Account is the customer's account the money came from.
	Account string `json:"account"`
	// RoutedBy says how the wallet was found: "account" (a linked debtor
	// account), "creditor-reference" or "virtual-account".
	RoutedBy string `json:"routedBy,omitempty"`
	// Wallet is the linked wallet; zero while the account is not linked.
	Wallet common.Address `json:"wallet"`
	// Amount is the decimal text as the bank wrote it; Units its value in
	// base units (nil when it does not parse).
	Amount   string   `json:"amount"`
	Units    *big.Int `json:"units,omitempty"`
	Currency string   `json:"currency"`

	Status DepositStatus `json:"status"`
	// Reason says why a deposit is held, or how it was found minted.
	Reason string `json:"reason,omitempty"`
	// Tx is the last mint signed for it.
	Tx *SignedTx `json:"tx,omitempty"`
	// Reversal is set once the bank reversed the credit; ReverseTx is the
	// last reverseMint signed for it.
	Reversal  *Reversal `json:"reversal,omitempty"`
	ReverseTx *SignedTx `json:"reverseTx,omitempty"`
	// Return is set once an operator returns the deposit to its payer.
	Return *DepositReturn `json:"return,omitempty"`
	// Attempts counts mints that reverted for a reason a retry could fix.
	Attempts   int       `json:"attempts,omitempty"`
	ReceivedAt time.Time `json:"receivedAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

// sameEntry reports whether e describes the same credit as d: a bank that
// resends a notification resends the same entries.
func (d *Deposit) sameEntry(e *Deposit) bool {
	return d.differs(e) == ""
}

// differs names the first fact in which e describes another credit than
// d, or returns "": the amount, currency, debtor account, EndToEndId and
// UETR of the transaction.
func (d *Deposit) differs(e *Deposit) string {
	amountSame := d.Amount == e.Amount
	if d.Units != nil && e.Units != nil {
		amountSame = d.Units.Cmp(e.Units) == 0
	}
	switch {
	case !amountSame || d.Currency != e.Currency:
		return fmt.Sprintf("amount %s %s, not %s %s", d.Amount, d.Currency, e.Amount, e.Currency)
	case d.Account != e.Account:
		return fmt.Sprintf("debtor account %q, not %q", d.Account, e.Account)
	case d.EndToEndID != e.EndToEndID:
		return fmt.Sprintf("EndToEndId %q, not %q", d.EndToEndID, e.EndToEndID)
	case d.UETR != e.UETR:
		return fmt.Sprintf("UETR %q, not %q", d.UETR, e.UETR)
	}
	return ""
}

// Link maps a bank account to the wallet that proved it holds its key.
type Link struct {
	Account string         `json:"account"`
	Wallet  common.Address `json:"wallet"`
	// Name is the account holder's name as the bank knows it: the
	// creditor name (Cdtr/Nm) of the account's payouts.
	Name      string        `json:"name,omitempty"`
	Signature hexutil.Bytes `json:"signature"`
	LinkedAt  time.Time     `json:"linkedAt"`
}

// Payout is one withdrawal of the bridge's asset by a holder with a
// linked account, keyed by the withdrawal id.
type Payout struct {
	ID        uint64         `json:"id"`
	Holder    common.Address `json:"holder"`
	Amount    *big.Int       `json:"amount"`
	PayoutRef common.Hash    `json:"payoutRef"`
	Account   string         `json:"account"`
	// EndToEndID is the payout's EndToEndId (PayoutEndToEndID); the
	// order's other identifiers derive from the withdrawal id too
	// (PayoutIDs).
	EndToEndID string `json:"endToEndId"`
	// Block and RequestTx locate the WithdrawalRequested log.
	Block     uint64      `json:"block"`
	RequestTx common.Hash `json:"requestTx"`

	Status PayoutStatus `json:"status"`
	// Outcome is the bank's final word: ACSC, BOOK (a booked camt.054
	// debit), RJCT or CANC; Reason its reason for a rejection. Returned is
	// RTRN when the money came back after that (ReturnReason says why).
	Outcome      string `json:"outcome,omitempty"`
	Reason       string `json:"reason,omitempty"`
	Returned     string `json:"returned,omitempty"`
	ReturnReason string `json:"returnReason,omitempty"`
	// Progress is what the bank said that decided nothing (ACTC, ACCP,
	// PDNG, a duplicate-message rejection, ...), the last maxProgress.
	Progress []StatusNote `json:"progress,omitempty"`
	// Tx is the last settleWithdrawal or refundWithdrawal signed for it.
	Tx *SignedTx `json:"tx,omitempty"`
	// ClaimOrder is the order id this bridge instance claims the
	// withdrawal with (claimWithdrawal): random, drawn and fsynced once
	// before the first claim, so two instances of one bank (one key) never
	// both pass the claim, and a restarted instance recognises its own.
	ClaimOrder *common.Hash `json:"claimOrder,omitempty"`
	// Closed is what the chain says in the end: "settled" or "refunded";
	// "claimed-elsewhere" when another bank's bridge claimed the withdrawal
	// first, "claimed-by-instance" when another instance of this bank did
	// (this one never ordered it).
	Closed string `json:"closed,omitempty"`
	// Orders counts the pain.001 POSTs; LastError is the last failure.
	Orders    int       `json:"orders,omitempty"`
	LastError string    `json:"lastError,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// StatusNote is one bank status recorded on a payout.
type StatusNote struct {
	At     time.Time `json:"at"`
	MsgID  string    `json:"msgId"`
	Level  string    `json:"level"`
	Status string    `json:"status"`
	Reason string    `json:"reason,omitempty"`
}

// maxProgress bounds a payout's Progress: the bank sends a handful of
// statuses per order; a bank repeating itself must not grow the record.
const maxProgress = 16

// note appends a status to p's progress, dropping the oldest beyond
// maxProgress.
func (p *Payout) note(n StatusNote) {
	p.Progress = append(p.Progress, n)
	if len(p.Progress) > maxProgress {
		p.Progress = append([]StatusNote(nil), p.Progress[len(p.Progress)-maxProgress:]...)
	}
}

// Refusal is an input the bridge refused, kept (boundedly) for /v1/status
// so an operator sees what the core sent that did not go through.
type Refusal struct {
	Seq      uint64    `json:"seq"`
	At       time.Time `json:"at"`
	Endpoint string    `json:"endpoint"`
	// Kind is one of the Refused* constants.
	Kind    string `json:"kind"`
	Message string `json:"message"`
	MsgID   string `json:"msgId,omitempty"`
	Ref     string `json:"ref,omitempty"`
}

// ChainInfo is what the bridge learnt about its chain and asset on its
// first start; later starts check that the nodes still agree, so a bridge
// pointed at another chain by mistake refuses to run.
type ChainInfo struct {
	ChainID  uint64 `json:"chainId"`
	AssetID  uint32 `json:"assetId"`
	Symbol   string `json:"symbol"`
	Decimals uint8  `json:"decimals"`
	// MinorUnits is the currency's ISO 4217 minor units as the chain says
	// (minorUnits()): payment orders carry amounts at that precision. nil in
	// a store written before the chain had it; the next start with a node
	// records it.
	MinorUnits *uint8         `json:"minorUnits,omitempty"`
	Facade     common.Address `json:"facade"`
	Bank       common.Address `json:"bank"`
}

// OrderDecimals is how many decimals a payment order's amount has: the
// currency's minor units, or the asset's decimals where they are unknown.
func (ci *ChainInfo) OrderDecimals() uint8 {
	if ci.MinorUnits != nil && *ci.MinorUnits <= ci.Decimals {
		return *ci.MinorUnits
	}
	return ci.Decimals
}

// Key layout of the bridge's Pebble database. Every record is JSON.
//
//	d/<bankRef 32>                    Deposit
//	q/d/<status>/<seq 8>              bankRef: deposits an outbox must look at (accepted, submitted)
//	x/<DepositKey>                    bankRef: deposits by account and reference (then booking date)
//	l/<account>                       Link
//	w/<wallet 20><account>            (empty): the accounts linked to a wallet
//	t/<route kind>/<id>               Link: a creditor reference's or virtual account's wallet
//	p/<id 8>                          Payout
//	q/p/<status>/<id 8>               (empty): payouts not closed, by status
//	r/<seq 8>                         Refusal (the last limits.max-refusals)
//	c/d/<status>, c/p/<status>        uint64 counters for /v1/status
//	m/cursor                          next block the follower reads
//	m/seq, m/rseq                     last deposit and refusal sequence numbers
//	m/chain                           ChainInfo
//	m/format                          the store format (StoreFormat)
//	o/<seq 8>, m/ohead                the operator log (oplog.go)
var (
	prefixDeposit  = []byte("d/")
	prefixLink     = []byte("l/")
	prefixWallet   = []byte("w/")
	prefixPayout   = []byte("p/")
	prefixRefusal  = []byte("r/")
	prefixCounter  = []byte("c/")
	keyCursor      = []byte("m/cursor")
	keyDepositSeq  = []byte("m/seq")
	keyRefusalSeq  = []byte("m/rseq")
	keyChainInfo   = []byte("m/chain")
	keyFormat      = []byte("m/format")
	prefixDepQueue = []byte("q/d/")
	prefixDepRef   = []byte("x/")
	prefixRoute    = []byte("t/")
	prefixPayQueue = []byte("q/p/")
)

// Store is the bridge's durable state, in its own Pebble database. Every
// change that must survive a crash is one batch committed with fsync. It is
// safe for concurrent use: writes are serialised by a mutex, so a
// read-check-write (is this reference new?) is atomic.
type Store struct {
	db          *pebble.DB
	maxRefusals uint64

	// OnReversing, when set, is called (outside the lock) when a deposit
	// whose reversal arrived while its mint was in flight is found minted:
	// the bridge raises it as it raises any minted deposit reversed.
	OnReversing func(*Deposit)

	mu       sync.Mutex
	counters map[string]uint64 // mirror of c/…, guarded by mu
	depSeq   uint64
	refSeq   uint64
}

// OpenStore opens (creating) the store in dir, keeping at most maxRefusals
// refused inputs.
func OpenStore(dir string, maxRefusals int, log *slog.Logger) (*Store, error) {
	if maxRefusals < 1 {
		maxRefusals = DefaultMaxRefusals
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{log}})
	if err != nil {
		if held := store.HeldError(dir, "a running bridge", err); errors.Is(held, store.ErrInUse) {
			return nil, fmt.Errorf("open bridge store: %w", held)
		}
		return nil, fmt.Errorf("open bridge store %s: %w", dir, err)
	}
	s := &Store{db: db, maxRefusals: uint64(maxRefusals), counters: map[string]uint64{}}
	if err := s.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open bridge store %s: %w", dir, err)
	}
	return s, nil
}

// StoreFormat is the layout version of the bridge's store. Format 2 keys
// deposits by DepositKey (account, transaction reference, booking date);
// format 1 (no m/format key) keyed them by the entry's reference alone, so
// its bankRefs are not the ones this bridge derives. A format-1 store is
// refused at open with what to do (docs/bridge.md, "Store format").
const StoreFormat = 2

// ErrStoreFormat is returned (wrapped) when the store was written by a
// bridge of another format.
var ErrStoreFormat = errors.New("store format changed")

func (s *Store) checkFormat() error {
	v, err := s.getUint(keyFormat)
	if err != nil {
		return err
	}
	switch {
	case v == StoreFormat:
		return nil
	case v > StoreFormat:
		return fmt.Errorf("%w: the store has format %d, this bridge reads format %d (a newer bridge wrote it)", ErrStoreFormat, v, StoreFormat)
	}
	used, err := s.get(keyChainInfo)
	if err != nil {
		return err
	}
	if used != nil {
		return fmt.Errorf("%w: the store has format 1 (deposits keyed by entry reference), this bridge needs format %d (deposits keyed by account, transaction reference and booking date); let the old bridge finish its backlog and start this one on a new datadir (docs/bridge.md, \"Store format\")", ErrStoreFormat, StoreFormat)
	}
	return s.db.Set(keyFormat, kv.BE8(StoreFormat), pebble.Sync)
}

func (s *Store) load() error {
	if err := s.checkFormat(); err != nil {
		return err
	}
	var err error
	if s.depSeq, err = s.getUint(keyDepositSeq); err != nil {
		return err
	}
	if s.refSeq, err = s.getUint(keyRefusalSeq); err != nil {
		return err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefixCounter, UpperBound: kv.UpperBound(prefixCounter)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if len(it.Value()) != 8 {
			return fmt.Errorf("counter %q: %d bytes, want 8", it.Key(), len(it.Value()))
		}
		s.counters[string(it.Key()[len(prefixCounter):])] = binary.BigEndian.Uint64(it.Value())
	}
	if err := it.Error(); err != nil {
		return err
	}
	if err := s.indexUnresolved(); err != nil {
		return err
	}
	// Trim refusals beyond the limit, which may have been lowered since.
	if s.refSeq > s.maxRefusals {
		return s.db.DeleteRange(prefixRefusal, refusalKey(s.refSeq-s.maxRefusals+1), pebble.Sync)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close bridge store: %w", err)
	}
	return nil
}

// ErrNotFound is returned (wrapped) for a record the store does not hold.
var ErrNotFound = errors.New("not found")

func depositKey(ref common.Hash) []byte { return kv.Cat(prefixDeposit, ref[:]) }
func payoutKey(id uint64) []byte        { return kv.Cat(prefixPayout, kv.BE8(id)) }
func refusalKey(seq uint64) []byte      { return kv.Cat(prefixRefusal, kv.BE8(seq)) }
func linkKey(account string) []byte     { return kv.Cat(prefixLink, []byte(account)) }
func walletKey(w common.Address, account string) []byte {
	return kv.Cat(prefixWallet, w[:], []byte(account))
}
func depQueuePrefix(st DepositStatus) []byte { return kv.Cat(prefixDepQueue, []byte(st), []byte("/")) }
func payQueuePrefix(st PayoutStatus) []byte  { return kv.Cat(prefixPayQueue, []byte(st), []byte("/")) }

func (s *Store) get(key []byte) ([]byte, error)          { return kv.Get(s.db, key) }
func (s *Store) getUint(key []byte) (uint64, error)      { return kv.GetUint(s.db, key) }
func (s *Store) getJSON(key []byte, v any) (bool, error) { return kv.GetJSON(s.db, key, v) }

// commit adds the counter changes to b and writes it with fsync; the
// in-memory counters follow only once the batch is durable.
func (s *Store) commit(b *pebble.Batch, counters map[string]int64) error {
	for k, d := range counters {
		v := uint64(int64(s.counters[k]) + d)
		if err := b.Set(kv.Cat(prefixCounter, []byte(k)), kv.BE8(v), nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	for k, d := range counters {
		s.counters[k] = uint64(int64(s.counters[k]) + d)
	}
	return nil
}

// ---- deposits ----

func depCounter(st DepositStatus) string { return "d/" + string(st) }
func payCounter(st PayoutStatus) string  { return "p/" + string(st) }

// queuedDeposit reports whether a deposit in st is indexed under
// q/d/<status>/<seq>: a worker's work (the outbox's accepted and
// submitted, the reverser's reversing), and the deposits waiting for an
// operator (held, return-due); the metrics report the oldest of them.
func queuedDeposit(st DepositStatus) bool {
	switch st {
	case DepositAccepted, DepositSubmitted, DepositHeld, DepositReversing, DepositReturnDue:
		return true
	}
	return false
}

// putDeposit adds d's writes to b, moving its queue entry and counters
// from old's status (nil for a new deposit).
func putDeposit(b *pebble.Batch, old, d *Deposit, counters map[string]int64) error {
	if old != nil && old.Status != d.Status {
		counters[depCounter(old.Status)]--
		if queuedDeposit(old.Status) {
			if err := b.Delete(kv.Cat(depQueuePrefix(old.Status), kv.BE8(old.Seq)), nil); err != nil {
				return err
			}
		}
	}
	if old == nil {
		if err := b.Set(kv.Cat(prefixDepRef, []byte(d.Key.String())), d.BankRef[:], nil); err != nil {
			return err
		}
	}
	if old == nil || old.Status != d.Status {
		counters[depCounter(d.Status)]++
		if queuedDeposit(d.Status) {
			if err := b.Set(kv.Cat(depQueuePrefix(d.Status), kv.BE8(d.Seq)), d.BankRef[:], nil); err != nil {
				return err
			}
		}
	}
	return kv.SetJSON(b, depositKey(d.BankRef), d)
}

// AddResult is what AddDeposits did with one deposit.
type AddResult struct {
	// Deposit is the stored record: the new one, or the one already there.
	Deposit *Deposit
	// Duplicate is set when the reference was already recorded.
	Duplicate bool
}

// AddDeposits records new deposits in one synced batch, assigning their
// sequence numbers. A deposit whose bankRef is already recorded (or
// appears twice in ds) is not written again: its result carries the
// stored record and Duplicate.
func (s *Store) AddDeposits(ds []*Deposit) ([]AddResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	counters := map[string]int64{}
	out := make([]AddResult, len(ds))
	seen := map[common.Hash]*Deposit{}
	seq := s.depSeq
	for i, d := range ds {
		if prev, ok := seen[d.BankRef]; ok {
			out[i] = AddResult{Deposit: prev, Duplicate: true}
			continue
		}
		var old Deposit
		found, err := s.getJSON(depositKey(d.BankRef), &old)
		if err != nil {
			return nil, fmt.Errorf("add deposits: %w", err)
		}
		if found {
			out[i] = AddResult{Deposit: &old, Duplicate: true}
			seen[d.BankRef] = &old
			continue
		}
		seq++
		d.Seq = seq
		if err := putDeposit(b, nil, d, counters); err != nil {
			return nil, fmt.Errorf("add deposits: %w", err)
		}
		out[i] = AddResult{Deposit: d}
		seen[d.BankRef] = d
	}
	if seq == s.depSeq {
		return out, nil
	}
	if err := b.Set(keyDepositSeq, kv.BE8(seq), nil); err != nil {
		return nil, err
	}
	if err := s.commit(b, counters); err != nil {
		return nil, fmt.Errorf("add deposits: %w", err)
	}
	s.depSeq = seq
	return out, nil
}

// Deposit returns the deposit of bankRef, or an error wrapping ErrNotFound.
func (s *Store) Deposit(ref common.Hash) (*Deposit, error) {
	var d Deposit
	found, err := s.getJSON(depositKey(ref), &d)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("deposit %s: %w", ref, ErrNotFound)
	}
	return &d, nil
}

// ErrReversed is returned (wrapped) when a worker would mint a deposit the
// bank has reversed meanwhile.
var ErrReversed = errors.New("the bank reversed the deposit")

// UpdateDeposit writes d (an existing deposit, changed) in a synced batch.
// A reversal recorded meanwhile (ReverseDeposit) is kept whatever d's copy
// says: a deposit reversed before its mint was signed is never signed
// (ErrReversed); one that gets minted after its reversal arrived becomes
// reversing.
func (s *Store) UpdateDeposit(d *Deposit) error {
	raise, err := s.updateDeposit(d)
	if err == nil && raise && s.OnReversing != nil {
		s.OnReversing(d)
	}
	return err
}

func (s *Store) updateDeposit(d *Deposit) (raise bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur Deposit
	found, err := s.getJSON(depositKey(d.BankRef), &cur)
	if err != nil {
		return false, fmt.Errorf("update deposit %s: %w", d.BankRef.Hex(), err)
	}
	if found && cur.Reversal != nil {
		d.Reversal = cur.Reversal
		switch {
		case cur.Status == DepositReversed && d.Status != DepositReversed:
			return false, fmt.Errorf("update deposit %s to %s: %w", d.BankRef.Hex(), d.Status, ErrReversed)
		case d.Status == DepositMinted:
			d.Status, raise = DepositReversing, true
		}
	}
	return raise, updateRecord(s, depositKey(d.BankRef), d, putDeposit, "update deposit "+d.BankRef.Hex())
}

// ReverseDeposit records the bank's reversal of deposit ref: one not
// minted becomes reversed (never minted), a minted one reversing, one whose
// mint is in flight keeps its status and becomes reversing if the mint
// lands (UpdateDeposit). It returns the record; a second reversal of the
// same deposit changes nothing.
func (s *Store) ReverseDeposit(ref common.Hash, r Reversal) (*Deposit, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.Deposit(ref)
	if err != nil {
		return nil, false, err
	}
	if d.Reversal != nil {
		return d, false, nil
	}
	d.Reversal = &r
	d.UpdatedAt = r.At
	switch d.Status {
	case DepositAccepted, DepositHeld:
		d.Status = DepositReversed
	case DepositMinted:
		d.Status = DepositReversing
	}
	if err := updateRecord(s, depositKey(ref), d, putDeposit, "reverse deposit "+ref.Hex()); err != nil {
		return nil, false, err
	}
	return d, true, nil
}

// updateRecord replaces the existing record at key with rec in a synced
// batch: put writes it (and its queue entries) given the old version, and
// adjusts the status counters. The caller holds s.mu.
func updateRecord[T any](s *Store, key []byte, rec *T, put func(b *pebble.Batch, old, rec *T, counters map[string]int64) error, what string) error {
	var old T
	found, err := s.getJSON(key, &old)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !found {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	b := s.db.NewBatch()
	defer b.Close()
	counters := map[string]int64{}
	if err := put(b, &old, rec, counters); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := s.commit(b, counters); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// QueuedDeposits returns up to limit deposits in status st (accepted or
// submitted) in arrival order.
func (s *Store) QueuedDeposits(st DepositStatus, limit int) ([]*Deposit, error) {
	return s.depositsIndexed(depQueuePrefix(st), limit, fmt.Sprintf("queued %s deposits", st))
}

// depositsIndexed returns up to limit deposits named by the index entries
// under p (each entry's value is a bankRef), in index order.
func (s *Store) depositsIndexed(p []byte, limit int, what string) ([]*Deposit, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: kv.UpperBound(p)})
	if err != nil {
		return nil, err
	}
	var refs []common.Hash
	for it.First(); it.Valid() && len(refs) < limit; it.Next() {
		refs = append(refs, common.BytesToHash(it.Value()))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := make([]*Deposit, 0, len(refs))
	for _, r := range refs {
		d, err := s.Deposit(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// DepositsByRef returns the deposits booked on account under reference
// ref, on any day (at most limit).
func (s *Store) DepositsByRef(account, ref string, limit int) ([]*Deposit, error) {
	p := kv.Cat(prefixDepRef, []byte(DepositKey{Account: account, Ref: ref}.prefix()))
	return s.depositsIndexed(p, limit, fmt.Sprintf("deposits of %s %s", account, ref))
}

// Deposits returns up to limit deposits in bankRef order, for tools and tests.
func (s *Store) Deposits(limit int) ([]*Deposit, error) {
	return scanJSON(s, prefixDeposit, limit, "deposit", func(*Deposit) bool { return true })
}

// scanJSON decodes the records under prefix in key order and returns up to
// limit of those keep accepts; what names the record in a decode error.
func scanJSON[T any](s *Store, prefix []byte, limit int, what string, keep func(*T) bool) ([]*T, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: kv.UpperBound(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*T
	for it.First(); it.Valid() && len(out) < limit; it.Next() {
		var rec T
		if err := json.Unmarshal(it.Value(), &rec); err != nil {
			return nil, fmt.Errorf("decode %s %x: %w", what, it.Key(), err)
		}
		if keep(&rec) {
			out = append(out, &rec)
		}
	}
	return out, it.Error()
}

// ---- links ----

// PutLink records (or replaces) the link of l.Account in a synced batch.
func (s *Store) PutLink(l *Link) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	var old Link
	found, err := s.getJSON(linkKey(l.Account), &old)
	if err != nil {
		return fmt.Errorf("link %q: %w", l.Account, err)
	}
	if found && old.Wallet != l.Wallet {
		if err := b.Delete(walletKey(old.Wallet, old.Account), nil); err != nil {
			return err
		}
	}
	if err := kv.SetJSON(b, linkKey(l.Account), l); err != nil {
		return err
	}
	if err := b.Set(walletKey(l.Wallet, l.Account), nil, nil); err != nil {
		return err
	}
	counters := map[string]int64{}
	if !found {
		counters["links"] = 1
	}
	if err := s.commit(b, counters); err != nil {
		return fmt.Errorf("link %q: %w", l.Account, err)
	}
	return nil
}

// Routes: besides a linked account, a deposit can name its wallet by a
// structured creditor reference or by the virtual account it was paid
// into (docs/bridge.md, "Routing deposits"). They are kept apart from the
// account links (a payout is never sent to a reference).
const (
	RouteAccount           = "account"
	RouteCreditorReference = "creditor-reference"
	RouteVirtualAccount    = "virtual-account"
)

func routeKey(kind, id string) []byte {
	return kv.Cat(prefixRoute, []byte(kind), []byte("/"), []byte(id))
}

// PutRoute records (or replaces) a creditor reference or virtual account
// of a wallet (l.Account holds the reference or the account number).
func (s *Store) PutRoute(kind string, l *Link) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	if err := kv.SetJSON(b, routeKey(kind, l.Account), l); err != nil {
		return err
	}
	if err := s.commit(b, nil); err != nil {
		return fmt.Errorf("%s %q: %w", kind, l.Account, err)
	}
	return nil
}

// Route returns the wallet a creditor reference or virtual account names,
// or an error wrapping ErrNotFound.
func (s *Store) Route(kind, id string) (*Link, error) {
	var l Link
	found, err := s.getJSON(routeKey(kind, id), &l)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%s %q: %w", kind, id, ErrNotFound)
	}
	return &l, nil
}

// Link returns the link of a bank account, or an error wrapping ErrNotFound.
func (s *Store) Link(account string) (*Link, error) {
	var l Link
	found, err := s.getJSON(linkKey(account), &l)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("account %q: %w", account, ErrNotFound)
	}
	return &l, nil
}

// LinksOf returns the accounts linked to wallet, in byte order.
func (s *Store) LinksOf(wallet common.Address) ([]string, error) {
	p := kv.Cat(prefixWallet, wallet[:])
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: kv.UpperBound(p)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []string
	for it.First(); it.Valid(); it.Next() {
		out = append(out, string(it.Key()[len(p):]))
	}
	return out, it.Error()
}

// ---- payouts ----

// putPayout adds p's writes to b, moving its queue entry and counters.
func putPayout(b *pebble.Batch, old, p *Payout, counters map[string]int64) error {
	if old != nil && old.Status != p.Status {
		counters[payCounter(old.Status)]--
		if old.Status != PayoutClosed {
			if err := b.Delete(kv.Cat(payQueuePrefix(old.Status), kv.BE8(old.ID)), nil); err != nil {
				return err
			}
		}
	}
	if old == nil || old.Status != p.Status {
		counters[payCounter(p.Status)]++
		if p.Status != PayoutClosed {
			if err := b.Set(kv.Cat(payQueuePrefix(p.Status), kv.BE8(p.ID)), nil, nil); err != nil {
				return err
			}
		}
	}
	return kv.SetJSON(b, payoutKey(p.ID), p)
}

// AddPayouts records new payouts and moves the follower's cursor to next,
// in one synced batch, so a crash never leaves a read block without its
// payouts nor payouts without the cursor past them. A payout whose id is
// already recorded is left as it is.
func (s *Store) AddPayouts(ps []*Payout, next uint64) (added int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	counters := map[string]int64{}
	seen := map[uint64]bool{}
	for _, p := range ps {
		v, err := s.get(payoutKey(p.ID))
		if err != nil {
			return 0, fmt.Errorf("add payouts: %w", err)
		}
		if v != nil || seen[p.ID] {
			continue
		}
		seen[p.ID] = true
		if err := putPayout(b, nil, p, counters); err != nil {
			return 0, fmt.Errorf("add payouts: %w", err)
		}
		added++
	}
	if err := b.Set(keyCursor, kv.BE8(next), nil); err != nil {
		return 0, err
	}
	if err := s.commit(b, counters); err != nil {
		return 0, fmt.Errorf("add payouts: %w", err)
	}
	return added, nil
}

// Payout returns withdrawal id's payout, or an error wrapping ErrNotFound.
func (s *Store) Payout(id uint64) (*Payout, error) {
	var p Payout
	found, err := s.getJSON(payoutKey(id), &p)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("payout of withdrawal %d: %w", id, ErrNotFound)
	}
	return &p, nil
}

// updatePayoutLocked writes p (an existing payout, changed) in a synced
// batch. The caller holds s.mu.
func (s *Store) updatePayoutLocked(p *Payout) error {
	return updateRecord(s, payoutKey(p.ID), p, putPayout, fmt.Sprintf("update payout %d", p.ID))
}

// ModifyPayout reads payout id, lets fn change it and writes it back, all
// under the store's lock, so an outcome posted by the core and a worker's
// update never overwrite each other. fn returns false to write nothing.
func (s *Store) ModifyPayout(id uint64, fn func(p *Payout) (bool, error)) (*Payout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.Payout(id)
	if err != nil {
		return nil, err
	}
	write, err := fn(p)
	if err != nil || !write {
		return p, err
	}
	if err := s.updatePayoutLocked(p); err != nil {
		return nil, err
	}
	return p, nil
}

// QueuedPayouts returns up to limit payouts in status st (not closed) in
// id order.
func (s *Store) QueuedPayouts(st PayoutStatus, limit int) ([]*Payout, error) {
	p := payQueuePrefix(st)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: kv.UpperBound(p)})
	if err != nil {
		return nil, err
	}
	var ids []uint64
	for it.First(); it.Valid() && len(ids) < limit; it.Next() {
		ids = append(ids, binary.BigEndian.Uint64(it.Key()[len(p):]))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, fmt.Errorf("queued %s payouts: %w", st, err)
	}
	out := make([]*Payout, 0, len(ids))
	for _, id := range ids {
		pay, err := s.Payout(id)
		if err != nil {
			return nil, fmt.Errorf("queued %s payouts: %w", st, err)
		}
		out = append(out, pay)
	}
	return out, nil
}

// closedPayouts returns up to limit closed payouts, in id order (they
// have no queue: this reads every payout).
func (s *Store) closedPayouts(limit int) ([]*Payout, error) {
	return scanJSON(s, prefixPayout, limit, "payout", func(p *Payout) bool { return p.Status == PayoutClosed })
}

// Cursor returns the next block the follower reads (0 when never set).
func (s *Store) Cursor() (next uint64, set bool, err error) {
	v, err := s.get(keyCursor)
	if err != nil || v == nil {
		return 0, false, err
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("cursor: %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// ---- refusals, counters, meta ----

// Refused input kinds.
const (
	RefusedBadSignature    = "bad-signature"
	RefusedStaleTimestamp  = "stale-timestamp"
	RefusedMalformed       = "malformed"
	RefusedTooLarge        = "too-large"
	RefusedUnknownAccount  = "unknown-account"
	RefusedBadAmount       = "bad-amount"
	RefusedUnknownCurrency = "unknown-currency"
	RefusedConflict        = "conflict"
	RefusedUnknownPayout   = "unknown-payout"
	RefusedBadLink         = "bad-link"
	// RefusedUnhandledReversal: a reversal or return the bridge cannot act
	// on by itself (raised to the operator).
	RefusedUnhandledReversal = "unhandled-reversal"
	// RefusedRoutingConflict: a deposit's routes name different wallets.
	RefusedRoutingConflict = "routing-conflict"
)

// AddRefusals records refused inputs in one synced batch, dropping the
// oldest beyond the limit.
func (s *Store) AddRefusals(rs ...*Refusal) error {
	if len(rs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	seq := s.refSeq
	for _, r := range rs {
		seq++
		r.Seq = seq
		if err := kv.SetJSON(b, refusalKey(seq), r); err != nil {
			return err
		}
		if seq > s.maxRefusals {
			if err := b.Delete(refusalKey(seq-s.maxRefusals), nil); err != nil {
				return err
			}
		}
	}
	if err := b.Set(keyRefusalSeq, kv.BE8(seq), nil); err != nil {
		return err
	}
	if err := s.commit(b, map[string]int64{"refusals": int64(len(rs))}); err != nil {
		return fmt.Errorf("record refusals: %w", err)
	}
	s.refSeq = seq
	return nil
}

// Refusals returns up to limit refused inputs, newest first.
func (s *Store) Refusals(limit int) ([]*Refusal, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefixRefusal, UpperBound: kv.UpperBound(prefixRefusal)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*Refusal
	for it.Last(); it.Valid() && len(out) < limit; it.Prev() {
		var r Refusal
		if err := json.Unmarshal(it.Value(), &r); err != nil {
			return nil, fmt.Errorf("decode refusal: %w", err)
		}
		out = append(out, &r)
	}
	return out, it.Error()
}

// Counts is the number of records per state.
type Counts struct {
	Deposits map[DepositStatus]uint64 `json:"deposits"`
	Payouts  map[PayoutStatus]uint64  `json:"payouts"`
	Links    uint64                   `json:"links"`
	Refusals uint64                   `json:"refusals"`
}

// Counts returns the records per state.
func (s *Store) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := Counts{Deposits: map[DepositStatus]uint64{}, Payouts: map[PayoutStatus]uint64{},
		Links: s.counters["links"], Refusals: s.counters["refusals"]}
	for _, st := range DepositStatuses {
		c.Deposits[st] = s.counters[depCounter(st)]
	}
	for _, st := range PayoutStatuses {
		c.Payouts[st] = s.counters[payCounter(st)]
	}
	return c
}

// ChainInfo returns what the first start recorded, or nil.
func (s *Store) ChainInfo() (*ChainInfo, error) {
	var ci ChainInfo
	found, err := s.getJSON(keyChainInfo, &ci)
	if err != nil || !found {
		return nil, err
	}
	return &ci, nil
}

// SetChainInfo records ci.
func (s *Store) SetChainInfo(ci *ChainInfo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	if err := kv.SetJSON(b, keyChainInfo, ci); err != nil {
		return err
	}
	return s.commit(b, nil)
}

// pebbleLogger routes Pebble's logs into slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
	panic(fmt.Sprintf(format, args...))
}
