package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/state"
)

// Check names: stable identifiers used in the JSON report, the tests and
// docs/audit.md. Never rename one.
//
// The checks of one block are the rules of block validity, defined once in
// state (state.CheckBlock, state.CheckExecution) and applied by the FSM and
// the leader's builder too; the others are the audit's own.
const (
	CheckGenesis           = "genesis"                   // block 0 is the genesis file's block
	CheckLimits            = state.RuleLimits            // block size, certificates per block and signatures per certificate, transaction size and access list
	CheckLink              = state.RuleLink              // heights follow, parent hash is the previous block's hash, no block missing
	CheckTime              = state.RuleTime              // block time (ms) strictly after the parent's
	CheckHeader            = state.RuleHeader            // fixed header fields, Extra layout, time in seconds, gas used within the limit and as replayed, bloom as replayed
	CheckHistoryRoot       = state.RuleHistoryRoot       // mixHash is the MMR root of every earlier block hash
	CheckProposer          = state.RuleProposer          // coinbase is a validator at that height (set replayed from governance)
	CheckSeal              = state.RuleSeal              // the coinbase signed the header (chain.VerifySeal)
	CheckCertRoot          = state.RuleCertRoot          // the header's certificate root matches the certificates carried
	CheckCertificate       = state.RuleCertificate       // certificate order, height, hash, next set, signatures by validators
	CheckCertificateQuorum = state.RuleCertificateQuorum // a quorum of that height's validators signed
	CheckTxRoot            = state.RuleTxRoot            // the header's tx root matches the transactions
	CheckTxSignature       = state.RuleTxSignature       // valid, low-S, right chain id (chain.CheckTx and sender recovery)
	CheckReceiptsRoot      = state.RuleReceiptsRoot      // the header's receipts root matches the replayed and the stored receipts
	CheckReceipt           = state.RuleIncludable        // each transaction is includable (its nonce is the sender's next); each stored receipt equals the replayed one
	CheckReceiptReason     = "receipt-reason"            // each failure reason kept with a receipt is the one replaying gives (blocks that keep none are not compared)
	CheckStateRoot         = state.RuleStateRoot         // keccak(parent header's root ‖ replayed writes) is the header's root
	CheckFinalState        = "final-state"               // the replayed state is exactly the stored one (at the source's head)
	CheckSupply            = "supply"                    // balances + escrow = minted − burned; minted and burned as the events say
	CheckBankRef           = "bank-ref"                  // no bank reference minted twice, nor reversed twice or without its mint (Minted, MintReversed events)
	CheckWithdrawal        = "withdrawal"                // a withdrawal claimed once, settled or refunded at most once, returned at most once and only if settled
	CheckComplianceReason  = "compliance-reason"         // every compliance action carries a non-empty reason
	CheckEscrow            = "escrow"                    // per asset, the open escrow records (pending withdrawals, open offers, held payments) sum to the supply's escrow, in the replayed state and a data dir's stored one

	// The data dir's own records (a --datadir audit that reaches the head).
	CheckHeadRecord    = "head-record"    // the stored head is the last block: number, hash, time; Raft index not below it
	CheckHistoryRecord = "history-record" // the stored history is the history of the blocks
	CheckHistoryNodes  = "history-nodes"  // every stored history tree node is the one the blocks give
	CheckGenesisRecord = "genesis-record" // the stored genesis is the given genesis file
	CheckHashIndex     = "hash-index"     // each block's hash leads to its number
	CheckTxIndex       = "tx-index"       // each transaction's hash leads to its block and position
	CheckCertIndex     = "cert-index"     // the certificate index is exactly the certificates the blocks carry
	CheckHaltRecord    = "halt-record"    // the node did not halt (tallyd would start halted)
)

// Checks lists every check name in the order a block is checked.
var Checks = []string{CheckGenesis, CheckLimits, CheckLink, CheckTime, CheckHeader, CheckHistoryRoot, CheckProposer, CheckSeal,
	CheckCertRoot, CheckCertificate, CheckCertificateQuorum, CheckTxRoot, CheckTxSignature, CheckReceiptsRoot,
	CheckReceipt, CheckReceiptReason, CheckStateRoot, CheckFinalState, CheckSupply, CheckBankRef, CheckWithdrawal, CheckComplianceReason,
	CheckHeadRecord, CheckHistoryRecord, CheckHistoryNodes, CheckGenesisRecord, CheckHashIndex, CheckTxIndex, CheckCertIndex, CheckHaltRecord}

// RecordChecks are the checks of a data dir's own records (indexes, head,
// history, genesis and halt records): a --datadir audit runs them, an
// audit by RPC cannot (the node's records are not on the wire); every
// other check is the same whichever source served the chain.
var RecordChecks = []string{CheckHeadRecord, CheckHistoryRecord, CheckHistoryNodes, CheckGenesisRecord, CheckHashIndex,
	CheckTxIndex, CheckCertIndex, CheckHaltRecord}

// Report is the outcome of an audit (the --json output).
type Report struct {
	// Source is what was audited ("datadir DIR", "rpc URL"); everything
	// else is the same whichever source served the chain.
	Source      string      `json:"source"`
	GenesisHash common.Hash `json:"genesisHash"`
	ChainID     uint64      `json:"chainId"`
	// Head is the source's head when the audit began.
	Head uint64 `json:"head"`
	// From and To are the heights checked (To is where the audit stopped).
	From         uint64 `json:"from"`
	To           uint64 `json:"to"`
	Blocks       uint64 `json:"blocks"`
	Txs          uint64 `json:"txs"`
	Certificates uint64 `json:"certificates"`
	// LastCertified is the highest height a checked certificate certifies.
	LastCertified *uint64 `json:"lastCertified"`
	// FinalStateChecked is true when the audit reached the source's head
	// and compared the replayed state with the stored one.
	FinalStateChecked bool         `json:"finalStateChecked"`
	Supply            []SupplyLine `json:"supply"`
	Failures          []Failure    `json:"failures"`
	// FailuresOmitted counts failures beyond the report's limit.
	FailuresOmitted int  `json:"failuresOmitted,omitempty"`
	OK              bool `json:"ok"`
}

// SupplyLine is one asset's supply at To, in base units (decimal strings).
type SupplyLine struct {
	Symbol   string `json:"symbol"`
	Minted   string `json:"minted"`
	Burned   string `json:"burned"`
	Escrow   string `json:"escrow"`
	Balances string `json:"balances"`
	// Supply is minted − burned.
	Supply string `json:"supply"`
	// OK: balances + escrow = supply, and minted and burned equal the
	// starting state plus the events: Minted and WithdrawalReturned mint,
	// WithdrawalSettled and MintReversed burn.
	OK bool `json:"ok"`
}

// Failure is one failed check.
type Failure struct {
	Height uint64 `json:"height"`
	// TxIndex is the transaction's index in the block; null for a check
	// of the block or the state.
	TxIndex  *int   `json:"txIndex"`
	Check    string `json:"check"`
	Expected string `json:"expected"`
	Found    string `json:"found"`
	Detail   string `json:"detail"`
}

// Failed reports whether a failure of check was recorded at height (any
// transaction).
func (r *Report) Failed(check string, height uint64) bool {
	for _, f := range r.Failures {
		if f.Check == check && f.Height == height {
			return true
		}
	}
	return false
}

// WriteJSON writes the report, indented.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteSummary writes the human summary.
func (r *Report) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "audit of %s\n", r.Source)
	fmt.Fprintf(w, "genesis file: %s (keccak256 of its canonical form; chain id %d)\n", r.GenesisHash, r.ChainID)
	fmt.Fprintf(w, "heights:      %d to %d (source head %d)\n", r.From, r.To, r.Head)
	fmt.Fprintf(w, "checked:      %d blocks, %d transactions, %d certificates", r.Blocks, r.Txs, r.Certificates)
	if r.LastCertified != nil {
		fmt.Fprintf(w, " (last certified height %d)", *r.LastCertified)
	}
	fmt.Fprintln(w)
	if r.FinalStateChecked {
		fmt.Fprintln(w, "final state:  compared with the stored state")
	} else {
		fmt.Fprintln(w, "final state:  not compared (the audit did not reach the source's head)")
	}
	if len(r.Supply) > 0 {
		fmt.Fprintln(w, "supply (base units):")
		fmt.Fprintf(w, "  %-8s %-4s %s\n", "asset", "ok", "minted − burned = balances + escrow")
		for _, s := range r.Supply {
			ok := "yes"
			if !s.OK {
				ok = "NO"
			}
			fmt.Fprintf(w, "  %-8s %-4s %s − %s = %s + %s\n", s.Symbol, ok, s.Minted, s.Burned, s.Balances, s.Escrow)
		}
	}
	if r.OK {
		fmt.Fprintln(w, "result:       OK, every check holds")
		return
	}
	fmt.Fprintf(w, "result:       FAILED, %d failures\n", len(r.Failures)+r.FailuresOmitted)
	for _, f := range r.Failures {
		where := fmt.Sprintf("block %d", f.Height)
		if f.TxIndex != nil {
			where += fmt.Sprintf(" tx %d", *f.TxIndex)
		}
		line := where + " " + f.Check
		if f.Detail != "" {
			line += ": " + f.Detail
		}
		if f.Expected != "" || f.Found != "" {
			line += fmt.Sprintf(" (expected %s, found %s)", f.Expected, f.Found)
		}
		fmt.Fprintln(w, "  "+strings.Join(strings.Fields(line), " ")) // one line, whatever a detail holds
	}
	if r.FailuresOmitted > 0 {
		fmt.Fprintf(w, "  … and %d more (see the JSON report's limit)\n", r.FailuresOmitted)
	}
}
