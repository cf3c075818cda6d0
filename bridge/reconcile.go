package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"sort"
	"strings"

	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/bridge/iso20022"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/internal/credentials"
	"github.com/tally-ledger/tally/wallet"
)

// Reconciliation (docs/bridge.md, "Reconciliation") compares the bank's
// camt.053 statement of the omnibus account with what the chain says this
// bank did to the asset. The bridge's own store is not consulted: the
// point is to check the two authorities, the bank's books and the chain,
// against each other, independently of the component that links them.

// Break kinds: what disagrees between the statement and the chain.
const (
	// BreakDepositNotMinted: a credit entry with no Minted log of its bankRef.
	BreakDepositNotMinted = "deposit-not-minted"
	// BreakMintWithoutDeposit: a Minted log by this bank with no credit entry.
	BreakMintWithoutDeposit = "mint-without-deposit"
	// BreakPayoutNotSettled: a debit entry (money paid out) with no
	// WithdrawalSettled by this bank for the payout it names.
	BreakPayoutNotSettled = "payout-not-settled"
	// BreakSettlementWithoutPayout: a WithdrawalSettled by this bank with
	// no debit entry carrying its EndToEndId.
	BreakSettlementWithoutPayout = "settlement-without-payout"
	// BreakAmountMismatch: an entry and its log match by reference but not
	// by amount (or currency).
	BreakAmountMismatch = "amount-mismatch"
	// BreakReturnNotOnChain: a credit with return information (RtrInf: a
	// payout the beneficiary's bank sent back) with no WithdrawalReturned
	// by this bank for the payout it names.
	BreakReturnNotOnChain = "return-not-on-chain"
	// BreakReturnWithoutCredit: a WithdrawalReturned by this bank with no
	// return credit carrying its EndToEndId.
	BreakReturnWithoutCredit = "return-without-credit"
	// BreakReversalUnhandled: a reversal debit (RvslInd) of a minted
	// deposit whose mint the chain has not reversed (no MintReversed: the
	// bridge has not got to it, or the chain refused it because the wallet
	// spent the money and it waits for an operator). It names the deposit.
	BreakReversalUnhandled = "reversal-unhandled"
	// BreakReversalWithoutDebit: a MintReversed by this bank with no
	// reversal debit of its deposit in the statement.
	BreakReversalWithoutDebit = "reversal-without-debit"
	// BreakTotalMismatch: the statement's net movement differs from the
	// chain's minted − burned by more than the breaks above explain, or the
	// statement's entries do not add up to its own balances.
	BreakTotalMismatch = "total-mismatch"
)

// Break is one disagreement, with every reference that helps find it on
// both sides.
type Break struct {
	Kind string `json:"kind"`
	// Ref is the bank's entry reference (AcctSvcrRef, else NtryRef).
	Ref          string       `json:"ref,omitempty"`
	BankRef      *common.Hash `json:"bankRef,omitempty"`
	EndToEndID   string       `json:"endToEndId,omitempty"`
	WithdrawalID uint64       `json:"withdrawalId,omitempty"`
	Tx           *common.Hash `json:"tx,omitempty"`
	Block        uint64       `json:"block,omitempty"`
	// StatementAmount and ChainAmount are decimals in the asset's units.
	StatementAmount string `json:"statementAmount,omitempty"`
	ChainAmount     string `json:"chainAmount,omitempty"`
	Detail          string `json:"detail"`
}

// ReconcileReport is the outcome of one reconciliation.
type ReconcileReport struct {
	ChainID     uint64         `json:"chainId"`
	Asset       string         `json:"asset"`
	Bank        common.Address `json:"bank"`
	StatementID string         `json:"statementId"`
	Account     string         `json:"account"`
	FromBlock   uint64         `json:"fromBlock"`
	ToBlock     uint64         `json:"toBlock"`
	Credits     int            `json:"credits"`
	Debits      int            `json:"debits"`
	Mints       int            `json:"mints"`
	Settlements int            `json:"settlements"`
	Returns     int            `json:"returns"`
	Reversals   int            `json:"reversals"`
	// StatementNet is the statement's net movement; NetFrom says whether
	// it was read from the booked balances or summed from the entries.
	StatementNet string  `json:"statementNet"`
	NetFrom      string  `json:"netFrom"`
	ChainMinted  string  `json:"chainMinted"`
	ChainBurned  string  `json:"chainBurned"`
	ChainNet     string  `json:"chainNet"`
	Breaks       []Break `json:"breaks"`
}

// Clean reports whether the statement and the chain agree.
func (r *ReconcileReport) Clean() bool { return len(r.Breaks) == 0 }

// WriteText writes the report for a person: a summary, then one line per
// break with its references.
func (r *ReconcileReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "statement %s, account %s; chain %d, asset %s, bank %s, blocks %d..%d\n",
		r.StatementID, r.Account, r.ChainID, r.Asset, r.Bank.Hex(), r.FromBlock, r.ToBlock)
	fmt.Fprintf(&b, "statement: %d credits, %d debits, net %s (from the %s)\n", r.Credits, r.Debits, r.StatementNet, r.NetFrom)
	fmt.Fprintf(&b, "chain:     %d mints, %d settlements, %d returns, %d reversals, minted %s − burned %s = %s\n",
		r.Mints, r.Settlements, r.Returns, r.Reversals, r.ChainMinted, r.ChainBurned, r.ChainNet)
	if r.Clean() {
		b.WriteString("no breaks\n")
	} else {
		fmt.Fprintf(&b, "%d breaks:\n", len(r.Breaks))
	}
	for _, br := range r.Breaks {
		fmt.Fprintf(&b, "  %-26s %s", br.Kind, br.Detail)
		var refs []string
		add := func(k, v string) {
			if v != "" {
				refs = append(refs, k+"="+v)
			}
		}
		add("ref", br.Ref)
		if br.BankRef != nil {
			add("bankRef", br.BankRef.Hex())
		}
		add("endToEndId", br.EndToEndID)
		if br.WithdrawalID != 0 {
			add("withdrawal", fmt.Sprint(br.WithdrawalID))
		}
		if br.Tx != nil {
			add("tx", br.Tx.Hex())
			add("block", fmt.Sprint(br.Block))
		}
		add("statement", br.StatementAmount)
		add("chain", br.ChainAmount)
		if len(refs) > 0 {
			fmt.Fprintf(&b, " [%s]", strings.Join(refs, " "))
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// StatementError is a statement that cannot be read: malformed XML,
// another message or version, no omnibus account in it. The command exits
// 2 on it, since no comparison was made.
type StatementError struct{ Err error }

func (e *StatementError) Error() string { return "statement: " + e.Err.Error() }
func (e *StatementError) Unwrap() error { return e.Err }

// ReconcileOptions are what a caller can give Reconcile besides the config.
type ReconcileOptions struct {
	// Bank is the issuing bank's address. Zero reads it from the
	// key.keystore-file's "address" field: reconciling needs no password.
	Bank common.Address
	// FromBlock is the first block read (default follower.start-block);
	// ToBlock the last (nil: the head). They should span the statement's
	// period: the chain's side is every log of this bank in the range.
	FromBlock *uint64
	ToBlock   *uint64
	Logger    *slog.Logger
}

// ChainFacts is what the chain says this bank did to the asset in a block
// range: its mints, the withdrawals it settled, the settled withdrawals it
// returned to their holders (returnWithdrawal, a mint) and the mints it
// reversed (reverseMint, a burn).
type ChainFacts struct {
	FromBlock, ToBlock uint64
	Mints              []MintLog
	Settlements        []SettlementLog
	Returns            []SettlementLog
	Reversals          []MintLog
	// Refunds are the withdrawals this bank refunded (WithdrawalRefunded):
	// they move no money on chain (the escrow goes back to the holder),
	// but a payout the bank debited and got back before the chain settled
	// it is refunded, not settled and returned.
	Refunds []SettlementLog
}

// MintLog is one Minted (or MintReversed) log.
type MintLog struct {
	BankRef common.Hash
	To      common.Address
	Amount  *big.Int
	Tx      common.Hash
	Block   uint64
}

// SettlementLog is one WithdrawalSettled (or WithdrawalReturned) log.
type SettlementLog struct {
	ID     uint64
	Holder common.Address
	Amount *big.Int
	Tx     common.Hash
	Block  uint64
}

var (
	mintedEvent   = chain.AssetABI.Events["Minted"]
	settledEvent  = chain.AssetABI.Events["WithdrawalSettled"]
	returnedEvent = chain.AssetABI.Events["WithdrawalReturned"]
	refundedEvent = chain.AssetABI.Events["WithdrawalRefunded"]
	reversedEvent = chain.AssetABI.Events["MintReversed"]
)

// ParseStatement reads a camt.053.001.08 statement and picks the omnibus
// account's: the one numbered account (bankcore.debtor-account), else the
// statement's only account. Every error is a *StatementError.
func ParseStatement(data []byte, account string) (*iso20022.Statement, *iso20022.AccountStatement, error) {
	st, err := iso20022.ParseCamt053(bytes.NewReader(data))
	if err != nil {
		return nil, nil, &StatementError{err}
	}
	if account != "" {
		for i := range st.Accounts {
			if st.Accounts[i].Account.ID() == account {
				return st, &st.Accounts[i], nil
			}
		}
		if len(st.Accounts) != 1 {
			return nil, nil, &StatementError{fmt.Errorf("message %s has no statement of the omnibus account %s (bankcore.debtor-account)", st.MsgID, account)}
		}
		// A statement of one account under another number: a core that
		// numbers its omnibus account differently from the bridge's
		// config. Compare it anyway; the report names the account.
	}
	if len(st.Accounts) != 1 {
		return nil, nil, &StatementError{fmt.Errorf("message %s holds %d account statements; set bankcore.debtor-account to pick the omnibus account", st.MsgID, len(st.Accounts))}
	}
	return st, &st.Accounts[0], nil
}

// Reconcile reads the statement, reads this bank's Minted and
// WithdrawalSettled logs of the asset from the nodes (eth_getLogs in
// ranges of at most follower.max-range blocks, with failover) and
// compares them. An unreadable statement is a *StatementError, returned
// before any node is asked.
func Reconcile(ctx context.Context, cfg Config, statement []byte, opts ReconcileOptions) (*ReconcileReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, acct, err := ParseStatement(statement, cfg.BankCore.DebtorAccount)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	bank := opts.Bank
	if bank == (common.Address{}) {
		if bank, err = keystoreAddress(cfg.Path(cfg.Key.KeystoreFile)); err != nil {
			return nil, fmt.Errorf("key key.keystore-file: %w", err)
		}
	}
	n, err := dialNodes(ctx, cfg.Nodes.Endpoints, cfg.Nodes.Timeout.D(), log)
	if err != nil {
		return nil, err
	}
	defer n.close()
	id, err := n.chainID(ctx)
	if err != nil {
		return nil, err
	}
	a, err := n.assetBySymbol(ctx, cfg.Asset)
	if err != nil {
		return nil, fmt.Errorf("asset %s: %w", cfg.Asset, err)
	}
	info := ChainInfo{ChainID: id.Uint64(), AssetID: a.ID, Symbol: a.Symbol, Decimals: a.Decimals, Facade: a.Address, Bank: bank}
	from := cfg.Follower.StartBlock
	if opts.FromBlock != nil {
		from = *opts.FromBlock
	}
	var to uint64
	if opts.ToBlock != nil {
		to = *opts.ToBlock
	} else if to, err = n.blockNumber(ctx); err != nil {
		return nil, err
	}
	if from > to {
		return nil, fmt.Errorf("block range %d..%d is empty", from, to)
	}
	facts, err := readChainFacts(ctx, n, info, from, to, cfg.Follower.MaxRange)
	if err != nil {
		return nil, err
	}
	r := CompareStatement(st.MsgID, acct, info, facts)
	return r, nil
}

// keystoreAddress reads the "address" field of a keystore v3 file, which
// is stored in clear.
func keystoreAddress(path string) (common.Address, error) {
	data, err := credentials.ReadBounded(path)
	if err != nil {
		return common.Address{}, err
	}
	var f struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return common.Address{}, fmt.Errorf("%s: not a keystore v3 file: %w", path, err)
	}
	h := strings.TrimPrefix(strings.ToLower(f.Address), "0x")
	if len(h) != 2*common.AddressLength || !common.IsHexAddress(h) {
		return common.Address{}, fmt.Errorf("%s: no address field (a keystore v3 file has one)", path)
	}
	return common.HexToAddress(h), nil
}

// readChainFacts reads the bank's Minted, WithdrawalSettled,
// WithdrawalReturned, WithdrawalRefunded and MintReversed logs of the asset in from..to. Each
// has the bank as its second indexed argument.
func readChainFacts(ctx context.Context, n *nodes, info ChainInfo, from, to, maxRange uint64) (*ChainFacts, error) {
	bankTopic := common.BytesToHash(info.Bank[:])
	facts := &ChainFacts{FromBlock: from, ToBlock: to}
	read := func(ev abi.Event) ([]types.Log, []*big.Int, error) {
		logs, err := rangeLogs(ctx, n, ethereum.FilterQuery{Addresses: []common.Address{info.Facade},
			Topics: [][]common.Hash{{ev.ID}, nil, {bankTopic}}}, from, to, maxRange)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s logs: %w", ev.Name, err)
		}
		amts := make([]*big.Int, len(logs))
		for i, l := range logs {
			if amts[i], err = logAmount(ev, l, 4); err != nil {
				return nil, nil, err
			}
		}
		return logs, amts, nil
	}
	mints := func(ev abi.Event) ([]MintLog, error) {
		logs, amts, err := read(ev)
		var out []MintLog
		for i, l := range logs {
			out = append(out, MintLog{BankRef: l.Topics[1], To: common.BytesToAddress(l.Topics[3][:]), Amount: amts[i], Tx: l.TxHash, Block: l.BlockNumber})
		}
		return out, err
	}
	withdrawals := func(ev abi.Event) ([]SettlementLog, error) {
		logs, amts, err := read(ev)
		var out []SettlementLog
		for i, l := range logs {
			id := new(big.Int).SetBytes(l.Topics[1][:])
			if !id.IsUint64() {
				return nil, fmt.Errorf("%s in tx %s: id %s does not fit 64 bits", ev.Name, l.TxHash, id)
			}
			out = append(out, SettlementLog{ID: id.Uint64(), Holder: common.BytesToAddress(l.Topics[3][:]), Amount: amts[i], Tx: l.TxHash, Block: l.BlockNumber})
		}
		return out, err
	}
	var err error
	if facts.Mints, err = mints(mintedEvent); err != nil {
		return nil, err
	}
	if facts.Reversals, err = mints(reversedEvent); err != nil {
		return nil, err
	}
	if facts.Settlements, err = withdrawals(settledEvent); err != nil {
		return nil, err
	}
	if facts.Returns, err = withdrawals(returnedEvent); err != nil {
		return nil, err
	}
	if facts.Refunds, err = withdrawals(refundedEvent); err != nil {
		return nil, err
	}
	return facts, nil
}

// logAmount decodes the amount, the first non-indexed argument of a log
// (Minted and WithdrawalSettled carry only it; WithdrawalReturned and
// MintReversed a reason after it).
func logAmount(ev abi.Event, l types.Log, topics int) (*big.Int, error) {
	if len(l.Topics) != topics {
		return nil, fmt.Errorf("%s log %d in tx %s: %d topics, want %d", ev.Name, l.Index, l.TxHash, len(l.Topics), topics)
	}
	vs, err := ev.Inputs.NonIndexed().Unpack(l.Data)
	if err != nil {
		return nil, fmt.Errorf("%s log %d in tx %s: %w", ev.Name, l.Index, l.TxHash, err)
	}
	amt, ok := vs[0].(*big.Int)
	if !ok {
		return nil, fmt.Errorf("%s log %d in tx %s: amount is a %T", ev.Name, l.Index, l.TxHash, vs[0])
	}
	return amt, nil
}

// rangeLogs runs q over from..to in ranges of at most maxRange blocks,
// halving a range while the node answers that it matches too many logs
// (as the follower does), so a long chain never asks the node for more
// than its http.max-log-block-range allows.
func rangeLogs(ctx context.Context, n *nodes, q ethereum.FilterQuery, from, to, maxRange uint64) ([]types.Log, error) {
	var out []types.Log
	if maxRange == 0 {
		maxRange = 1
	}
	for next := from; next <= to; {
		end := min(to, next+maxRange-1)
		for {
			q.FromBlock, q.ToBlock = new(big.Int).SetUint64(next), new(big.Int).SetUint64(end)
			logs, err := n.filterLogs(ctx, q)
			if err != nil && strings.Contains(err.Error(), "query returned more than") && end > next {
				end = next + (end-next)/2
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("blocks %d..%d: %w", next, end, err)
			}
			out = append(out, logs...)
			break
		}
		if end == to {
			break
		}
		next = end + 1
	}
	return out, nil
}

// CompareStatement compares one account statement with the chain's facts
// and lists every break. It is pure: the tests feed it statements and facts
// directly.
//
// Only booked entries count (pending and information entries may still
// change). A credit entry is one deposit per transaction, keyed and
// hashed to a bankRef exactly as the bridge does (entriesOf, DepositKey);
// a credit with return information (RtrInf) is a payout coming back and
// matches the WithdrawalReturned of the payout its EndToEndId names; a
// debit entry's transactions' EndToEndIds name the payouts it books
// (PayoutEndToEndID), except a debit with RvslInd, the reversal of a
// credit: it names the deposit by its transaction reference, as the
// bridge's intake reads it, and matches the MintReversed of that
// deposit's bankRef (a deposit reversed before it was minted needs
// neither). Totals: the chain's net is minted + returned − burned −
// reversed; a difference the listed breaks explain is not a
// total-mismatch.
func CompareStatement(msgID string, acct *iso20022.AccountStatement, info ChainInfo, facts *ChainFacts) *ReconcileReport {
	dec := info.Decimals
	r := &ReconcileReport{ChainID: info.ChainID, Asset: info.Symbol, Bank: info.Bank, StatementID: msgID, Account: acct.Account.ID(),
		FromBlock: facts.FromBlock, ToBlock: facts.ToBlock, Mints: len(facts.Mints), Settlements: len(facts.Settlements)}
	add := func(b Break) { r.Breaks = append(r.Breaks, b) }

	mints := map[common.Hash][]MintLog{}
	minted := new(big.Int)
	for _, m := range facts.Mints {
		mints[m.BankRef] = append(mints[m.BankRef], m)
		minted.Add(minted, m.Amount)
	}
	settled := map[uint64]SettlementLog{}
	burned := new(big.Int)
	for _, s := range facts.Settlements {
		settled[s.ID] = s
		burned.Add(burned, s.Amount)
	}
	returned := map[uint64]SettlementLog{}
	for _, s := range facts.Returns {
		returned[s.ID] = s
		minted.Add(minted, s.Amount)
	}
	reversed := map[common.Hash]MintLog{}
	for _, m := range facts.Reversals {
		reversed[m.BankRef] = m
		burned.Add(burned, m.Amount)
	}
	r.Returns, r.Reversals = len(facts.Returns), len(facts.Reversals)
	usedMint := map[common.Hash]bool{}
	usedSettle := map[uint64]bool{}
	usedReturn := map[uint64]bool{}
	usedReversal := map[common.Hash]bool{}
	entrySum := new(big.Int)
	entrySumOK := true
	// explained is what the breaks account for of the difference between
	// the statement's entries and the chain (statement − chain).
	explained := new(big.Int)
	explainedOK := true
	explain := func(stmt, chain *big.Int) {
		switch {
		case stmt == nil && chain == nil:
		case stmt == nil:
			explained.Sub(explained, chain)
		case chain == nil:
			explained.Add(explained, stmt)
		default:
			explained.Add(explained, new(big.Int).Sub(stmt, chain))
		}
	}
	neg := func(v *big.Int) *big.Int {
		if v == nil {
			return nil
		}
		return new(big.Int).Neg(v)
	}

	// units converts an entry amount; a currency other than the asset's,
	// or more decimals than it has, leaves nothing to compare.
	units := func(amount, currency string) (*big.Int, string) {
		if currency != info.Symbol {
			return nil, fmt.Sprintf("currency %s, the asset is %s", currency, info.Symbol)
		}
		v, err := wallet.ParseAmount(amount, dec)
		if err != nil {
			return nil, fmt.Sprintf("amount %s is not an amount of %s (%d decimals): %v", amount, info.Symbol, dec, err)
		}
		return v, ""
	}

	// The statement's reversals of credits (debits with RvslInd), by the
	// transaction reference of the credit they reverse.
	type reversal struct {
		entry  string // the reversal entry's own reference
		amount string
		used   bool
	}
	reversals := map[string]*reversal{}
	var reversalOrder []string
	for _, e := range acct.Entries {
		if e.Status != iso20022.EntryBooked || e.Credit || !e.Reversal {
			continue
		}
		for _, d := range entriesOf(acct.Account.ID(), e) {
			if _, dup := reversals[d.Ref]; !dup {
				reversalOrder = append(reversalOrder, d.Ref)
			}
			reversals[d.Ref] = &reversal{entry: d.EntryRef, amount: d.Amount}
		}
	}

	// Payouts the statement debits and credits back (a return, or the
	// reversal of the debit) that the chain refunded rather than settled
	// and returned: the bank's money went out and came back, the holder's
	// escrow went back to the holder. Both entries match the refund.
	refunded := map[uint64]bool{}
	for _, s := range facts.Refunds {
		if _, ok := settled[s.ID]; !ok {
			refunded[s.ID] = true
		}
	}
	debitedBack := map[uint64]int{}
	for _, e := range acct.Entries {
		if e.Status != iso20022.EntryBooked {
			continue
		}
		for _, d := range entriesOf(acct.Account.ID(), e) {
			id, ok := parsePayoutEndToEndID(info.ChainID, info.Symbol, d.EndToEndID)
			switch {
			case !ok || !refunded[id]:
			case !d.Credit && !d.Reversal:
				debitedBack[id] |= 1
			case d.Credit && (d.Return != "" || d.Reversal):
				debitedBack[id] |= 2
			}
		}
	}
	outAndBack := func(id uint64) bool { return debitedBack[id] == 3 }

	for i, e := range acct.Entries {
		if e.Status != iso20022.EntryBooked {
			continue
		}
		what := fmt.Sprintf("entry %d", i+1)
		ref := e.Ref
		if ref == "" {
			ref = e.EntryRef
		}
		amt, _ := units(e.Amount, e.Currency)
		if amt == nil {
			entrySumOK = false
		} else if e.Credit {
			entrySum.Add(entrySum, amt)
		} else {
			entrySum.Sub(entrySum, amt)
		}
		if e.Credit {
			r.Credits++
			// Each deposit the entry carries (one per transaction of a
			// batch), keyed as the bridge keys it (DepositKey).
			for _, d := range entriesOf(acct.Account.ID(), e) {
				damt, bad := units(d.Amount, d.Currency)
				if damt == nil {
					explainedOK = false
				}
				if d.Return != "" || d.Reversal {
					// A payout coming back: returned, or its debit reversed
					// (the bridge handles both as a return).
					if id, ok := parsePayoutEndToEndID(info.ChainID, info.Symbol, d.EndToEndID); !ok || !outAndBack(id) {
						returnBreak(r, info, d, damt, bad, returned, usedReturn, explain)
					}
					continue
				}
				if d.Ref == "" {
					explain(damt, nil)
					add(Break{Kind: BreakDepositNotMinted, StatementAmount: d.Amount, Detail: what + ": a credit without a reference (of its transaction, or AcctSvcrRef or NtryRef) cannot have been minted"})
					continue
				}
				key := DepositKey{Account: d.ReportedAccount, Ref: d.Ref, BookingDate: d.BookingDate}
				br := key.BankRef(info.Bank, info.Symbol)
				ms := mints[br]
				rv := reversals[d.Ref]
				if rv != nil && rv.used {
					rv = nil
				}
				if rv != nil && len(ms) == 0 {
					// Reversed before it was minted: the bridge never
					// mints it; the two entries cancel out.
					rv.used = true
					rvAmt, _ := units(rv.amount, d.Currency)
					explain(damt, nil)
					explain(neg(rvAmt), nil)
					continue
				}
				if len(ms) == 0 || usedMint[br] {
					detail := "credit " + d.Ref + " has no Minted log with its bankRef by this bank"
					if usedMint[br] {
						detail = "credit " + d.Ref + " (booked " + orNone(d.BookingDate) + ") appears twice in the statement; its bankRef minted once"
					}
					explain(damt, nil)
					add(Break{Kind: BreakDepositNotMinted, Ref: d.Ref, BankRef: &br, StatementAmount: d.Amount, Detail: detail})
					continue
				}
				usedMint[br] = true
				m := ms[0]
				if rv != nil {
					rv.used = true
					reversalBreak(r, info, d, rv.entry, rv.amount, m, reversed, usedReversal, explain, units)
				}
				if damt == nil || damt.Cmp(m.Amount) != 0 {
					explain(damt, m.Amount)
					detail := "credit " + d.Ref + " and its mint differ in amount"
					if bad != "" {
						detail = "credit " + d.Ref + ": " + bad
					}
					add(Break{Kind: BreakAmountMismatch, Ref: d.Ref, BankRef: &br, Tx: &m.Tx, Block: m.Block,
						StatementAmount: d.Amount + " " + d.Currency, ChainAmount: wallet.FormatAmount(m.Amount, dec), Detail: detail})
				}
			}
			continue
		}
		r.Debits++
		if e.Reversal {
			continue // the reversal of a credit, matched with its deposit
		}
		// A debit books one payout, or a batch of them (one transaction
		// each); a transaction's own amount, when given, is its share.
		type part struct{ e2e, amount, currency string }
		var parts []part
		for _, d := range e.Details {
			p := part{d.EndToEndID, d.Amount, d.Currency}
			if p.amount == "" || len(e.Details) == 1 {
				p.amount, p.currency = e.Amount, e.Currency
			}
			parts = append(parts, p)
		}
		if len(parts) == 0 {
			parts = []part{{"", e.Amount, e.Currency}}
		}
		for _, p := range parts {
			pv, bad := units(p.amount, p.currency)
			if pv == nil {
				explainedOK = false
			}
			if p.e2e == "" || p.e2e == "NOTPROVIDED" {
				explain(neg(pv), nil)
				add(Break{Kind: BreakPayoutNotSettled, Ref: ref, StatementAmount: p.amount,
					Detail: what + ": a debit without an EndToEndId names no payout"})
				continue
			}
			id, ok := parsePayoutEndToEndID(info.ChainID, info.Symbol, p.e2e)
			if !ok {
				explain(neg(pv), nil)
				add(Break{Kind: BreakPayoutNotSettled, Ref: ref, EndToEndID: p.e2e, StatementAmount: p.amount,
					Detail: fmt.Sprintf("debit %s is not a payout of this bridge (its ids are TALLY-%d-%s-W<id>)", p.e2e, info.ChainID, info.Symbol)})
				continue
			}
			if outAndBack(id) {
				continue
			}
			s, ok := settled[id]
			if !ok || usedSettle[id] {
				detail := fmt.Sprintf("debit %s paid out withdrawal %d, which this bank has not settled on chain", p.e2e, id)
				if usedSettle[id] {
					detail = fmt.Sprintf("debit %s appears twice in the statement; withdrawal %d settled once", p.e2e, id)
				}
				explain(neg(pv), nil)
				add(Break{Kind: BreakPayoutNotSettled, Ref: ref, EndToEndID: p.e2e, WithdrawalID: id, StatementAmount: p.amount, Detail: detail})
				continue
			}
			usedSettle[id] = true
			if pv == nil || pv.Cmp(s.Amount) != 0 {
				explain(neg(pv), neg(s.Amount))
				detail := fmt.Sprintf("debit %s and the settlement of withdrawal %d differ in amount", p.e2e, id)
				if bad != "" {
					detail = fmt.Sprintf("debit %s: %s", p.e2e, bad)
				}
				add(Break{Kind: BreakAmountMismatch, Ref: ref, EndToEndID: p.e2e, WithdrawalID: id, Tx: &s.Tx, Block: s.Block,
					StatementAmount: p.amount + " " + p.currency, ChainAmount: wallet.FormatAmount(s.Amount, dec), Detail: detail})
			}
		}
	}

	// Reversals of credits this statement does not hold.
	for _, ref := range reversalOrder {
		rv := reversals[ref]
		if rv.used {
			continue
		}
		v, _ := units(rv.amount, info.Symbol)
		if v == nil {
			explainedOK = false
		}
		explain(neg(v), nil)
		add(Break{Kind: BreakReversalUnhandled, Ref: ref, StatementAmount: rv.amount,
			Detail: fmt.Sprintf("reversal %s of credit %s: the credit is not in this statement, so its deposit (and whether the chain reversed its mint) cannot be told from here", orNone(rv.entry), ref)})
	}

	// What the chain did that the statement does not show, in chain order.
	for _, m := range facts.Mints {
		if usedMint[m.BankRef] {
			continue
		}
		usedMint[m.BankRef] = true // a bankRef mints once; list it once
		explain(nil, m.Amount)
		br, tx := m.BankRef, m.Tx
		add(Break{Kind: BreakMintWithoutDeposit, BankRef: &br, Tx: &tx, Block: m.Block, ChainAmount: wallet.FormatAmount(m.Amount, dec),
			Detail: fmt.Sprintf("mint to %s has no credit entry in the statement", m.To.Hex())})
	}
	ids := make([]uint64, 0, len(settled))
	for id := range settled {
		if !usedSettle[id] {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		s := settled[id]
		e2e := PayoutEndToEndID(info.ChainID, info.Symbol, id)
		explain(nil, neg(s.Amount))
		add(Break{Kind: BreakSettlementWithoutPayout, EndToEndID: e2e, WithdrawalID: id, Tx: &s.Tx, Block: s.Block,
			ChainAmount: wallet.FormatAmount(s.Amount, dec),
			Detail:      fmt.Sprintf("withdrawal %d of %s settled on chain, but no debit entry carries %s", id, s.Holder.Hex(), e2e)})
	}

	for _, s := range facts.Returns {
		if usedReturn[s.ID] {
			continue
		}
		usedReturn[s.ID] = true
		e2e, tx := PayoutEndToEndID(info.ChainID, info.Symbol, s.ID), s.Tx
		explain(nil, s.Amount)
		add(Break{Kind: BreakReturnWithoutCredit, EndToEndID: e2e, WithdrawalID: s.ID, Tx: &tx, Block: s.Block,
			ChainAmount: wallet.FormatAmount(s.Amount, dec),
			Detail:      fmt.Sprintf("withdrawal %d was returned to %s on chain, but no credit with return information carries %s", s.ID, s.Holder.Hex(), e2e)})
	}
	for _, m := range facts.Reversals {
		if usedReversal[m.BankRef] {
			continue
		}
		usedReversal[m.BankRef] = true
		br, tx := m.BankRef, m.Tx
		explain(nil, neg(m.Amount))
		add(Break{Kind: BreakReversalWithoutDebit, BankRef: &br, Tx: &tx, Block: m.Block, ChainAmount: wallet.FormatAmount(m.Amount, dec),
			Detail: fmt.Sprintf("the mint to %s was reversed on chain, but the statement has no reversal debit of its deposit", m.To.Hex())})
	}

	// Totals.
	chainNet := new(big.Int).Sub(minted, burned)
	r.ChainMinted, r.ChainBurned, r.ChainNet = wallet.FormatAmount(minted, dec), wallet.FormatAmount(burned, dec), formatSigned(chainNet, dec)
	net, from, err := balanceMovement(acct, info)
	switch {
	case err != nil:
		add(Break{Kind: BreakTotalMismatch, Detail: "balances: " + err.Error()})
		net, from = entrySum, "entries"
	case net == nil:
		net, from = entrySum, "entries"
		if !entrySumOK {
			add(Break{Kind: BreakTotalMismatch, Detail: "the statement has no opening and closing booked balances, and its entries cannot all be summed in " + info.Symbol})
		}
	default:
		if !entrySumOK || entrySum.Cmp(net) != 0 {
			add(Break{Kind: BreakTotalMismatch, StatementAmount: formatSigned(net, dec),
				Detail: fmt.Sprintf("the statement's booked entries add up to %s, but its balances moved by %s", formatSigned(entrySum, dec), formatSigned(net, dec))})
		}
	}
	r.StatementNet, r.NetFrom = formatSigned(net, dec), from
	// The entries against the chain, less what the breaks explain (the
	// balances against the entries is checked above); when an amount
	// could not be read, the statement's net against the chain's.
	if entrySumOK && explainedOK {
		unexplained := new(big.Int).Sub(entrySum, chainNet)
		unexplained.Sub(unexplained, explained)
		if unexplained.Sign() != 0 {
			add(Break{Kind: BreakTotalMismatch, StatementAmount: formatSigned(entrySum, dec), ChainAmount: formatSigned(chainNet, dec),
				Detail: fmt.Sprintf("the statement's booked entries net %s and the chain's minted − burned by this bank %s: %s of the difference is not explained by the breaks listed",
					formatSigned(entrySum, dec), formatSigned(chainNet, dec), formatSigned(unexplained, dec))})
		}
	} else if net.Cmp(chainNet) != 0 {
		add(Break{Kind: BreakTotalMismatch, StatementAmount: formatSigned(net, dec), ChainAmount: formatSigned(chainNet, dec),
			Detail: fmt.Sprintf("the statement's net movement (%s) differs from the chain's minted − burned by this bank", from)})
	}
	return r
}

// returnBreak matches a credit with return information (a payout the
// beneficiary's bank sent back) or a reversed debit with the
// WithdrawalReturned of the payout its EndToEndId names.
func returnBreak(r *ReconcileReport, info ChainInfo, d Entry, amt *big.Int, bad string, returned map[uint64]SettlementLog,
	used map[uint64]bool, explain func(stmt, chain *big.Int)) {
	why := d.Return
	if why == "" {
		why = "its debit reversed"
	}
	id, ok := parsePayoutEndToEndID(info.ChainID, info.Symbol, d.EndToEndID)
	if !ok {
		explain(amt, nil)
		r.Breaks = append(r.Breaks, Break{Kind: BreakReturnNotOnChain, Ref: d.Ref, EndToEndID: d.EndToEndID, StatementAmount: d.Amount,
			Detail: fmt.Sprintf("return credit (%s) of %q, which is not a payout of this bridge (its ids are TALLY-%d-%s-W<id>)", why, d.EndToEndID, info.ChainID, info.Symbol)})
		return
	}
	s, ok := returned[id]
	if !ok || used[id] {
		detail := fmt.Sprintf("payout %s (withdrawal %d) came back (%s), but this bank has not returned it to the holder on chain (returnWithdrawal)", d.EndToEndID, id, why)
		if used[id] {
			detail = fmt.Sprintf("return credit of %s appears twice in the statement; withdrawal %d returned once", d.EndToEndID, id)
		}
		explain(amt, nil)
		r.Breaks = append(r.Breaks, Break{Kind: BreakReturnNotOnChain, Ref: d.Ref, EndToEndID: d.EndToEndID, WithdrawalID: id, StatementAmount: d.Amount, Detail: detail})
		return
	}
	used[id] = true
	if amt == nil || amt.Cmp(s.Amount) != 0 {
		detail := fmt.Sprintf("return credit of %s and the return of withdrawal %d differ in amount", d.EndToEndID, id)
		if bad != "" {
			detail = fmt.Sprintf("return credit of %s: %s", d.EndToEndID, bad)
		}
		explain(amt, s.Amount)
		r.Breaks = append(r.Breaks, Break{Kind: BreakAmountMismatch, Ref: d.Ref, EndToEndID: d.EndToEndID, WithdrawalID: id, Tx: &s.Tx, Block: s.Block,
			StatementAmount: d.Amount + " " + d.Currency, ChainAmount: wallet.FormatAmount(s.Amount, info.Decimals), Detail: detail})
	}
}

// reversalBreak matches the reversal debit (entry reference entry, amount
// amount) of deposit d, minted by m, with the MintReversed of its bankRef.
func reversalBreak(r *ReconcileReport, info ChainInfo, d Entry, entry, amount string, m MintLog, reversed map[common.Hash]MintLog,
	used map[common.Hash]bool, explain func(stmt, chain *big.Int), units func(amount, currency string) (*big.Int, string)) {
	br := m.BankRef
	v, _ := units(amount, d.Currency)
	var stmt *big.Int
	if v != nil {
		stmt = new(big.Int).Neg(v)
	}
	rl, ok := reversed[br]
	if !ok || used[br] {
		tx := m.Tx
		explain(stmt, nil)
		r.Breaks = append(r.Breaks, Break{Kind: BreakReversalUnhandled, Ref: d.Ref, BankRef: &br, Tx: &tx, Block: m.Block,
			StatementAmount: amount, ChainAmount: wallet.FormatAmount(m.Amount, info.Decimals),
			Detail: fmt.Sprintf("deposit %s, minted to %s, was reversed by the bank (%s) but its mint is not reversed on chain: reverseMint not yet applied, or refused (the wallet spent the money) and waiting for an operator",
				d.Ref, m.To.Hex(), orNone(entry))})
		return
	}
	used[br] = true
	if v == nil || v.Cmp(rl.Amount) != 0 {
		tx := rl.Tx
		explain(stmt, new(big.Int).Neg(rl.Amount))
		r.Breaks = append(r.Breaks, Break{Kind: BreakAmountMismatch, Ref: d.Ref, BankRef: &br, Tx: &tx, Block: rl.Block,
			StatementAmount: amount + " " + d.Currency, ChainAmount: wallet.FormatAmount(rl.Amount, info.Decimals),
			Detail: fmt.Sprintf("reversal of deposit %s and the reversal of its mint differ in amount", d.Ref)})
	}
}

// balanceMovement is closing − opening booked balance, or nil when the
// statement lacks either.
func balanceMovement(acct *iso20022.AccountStatement, info ChainInfo) (*big.Int, string, error) {
	op, ok1 := acct.Balance(iso20022.BalanceOpeningBooked)
	cl, ok2 := acct.Balance(iso20022.BalanceClosingBooked)
	if !ok1 || !ok2 {
		return nil, "", nil
	}
	signed := func(b iso20022.Balance) (*big.Int, error) {
		if b.Currency != info.Symbol {
			return nil, fmt.Errorf("%s balance in %s, the asset is %s", b.Type, b.Currency, info.Symbol)
		}
		v, err := wallet.ParseAmount(b.Amount, info.Decimals)
		if err != nil {
			return nil, fmt.Errorf("%s balance %s: %w", b.Type, b.Amount, err)
		}
		if !b.Credit {
			v.Neg(v)
		}
		return v, nil
	}
	o, err := signed(op)
	if err != nil {
		return nil, "", err
	}
	c, err := signed(cl)
	if err != nil {
		return nil, "", err
	}
	return c.Sub(c, o), "balances", nil
}

// formatSigned formats a signed amount of base units.
func formatSigned(v *big.Int, dec uint8) string {
	if v.Sign() < 0 {
		return "-" + wallet.FormatAmount(new(big.Int).Neg(v), dec)
	}
	return wallet.FormatAmount(v, dec)
}

// IsStatementError reports whether err means the statement could not be read.
func IsStatementError(err error) bool {
	var se *StatementError
	return errors.As(err, &se)
}
