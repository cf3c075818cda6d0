package audit

import (
	"errors"
	"fmt"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/store"
)

// records checks a data dir's own records, the ones tallyd trusts when it
// opens the dir (and a later audit trusts in a --checkpoint) without
// deriving them from the blocks, against the blocks this audit checked:
// the head record, the history record and the stored history tree nodes,
// the stored genesis, the block-hash, transaction and certificate indexes,
// and the halt record. It runs once the audit has reached the source's
// head. An "Audit OK" data dir is then one tallyd opens and serves from as
// is.
func (a *auditor) records(db *store.DB) error {
	to := a.rep.To
	last := a.index.last()

	// The head record: what the node resumes from.
	head := db.Tip().Head
	if head.Number != to || head.Hash != last {
		a.fail(to, -1, CheckHeadRecord, fmt.Sprintf("block %d %s", to, last.Hex()), fmt.Sprintf("block %d %s", head.Number, head.Hash.Hex()),
			"the stored head is not the last block: the node would build on another parent")
	}
	if head.TimeMs != a.prevTimeMs {
		a.fail(to, -1, CheckHeadRecord, fmt.Sprintf("time %d ms", a.prevTimeMs), fmt.Sprintf("time %d ms", head.TimeMs),
			"the stored head's time is not the last block's: the node would accept or propose blocks at the wrong time")
	}
	if head.RaftIndex < head.Number {
		a.fail(to, -1, CheckHeadRecord, fmt.Sprintf("raft index at least %d", head.Number), fmt.Sprintf("raft index %d", head.RaftIndex),
			"every block after block 0 is one Raft entry: the node would apply entries again")
	}

	// The history: the record the node's next header commits to (mixHash),
	// and the tree nodes its proofs are built from.
	hist, start := chain.NewHistory(), 0
	if a.checkpoint != nil {
		hist, start = a.checkpoint.Tip().History.Clone(), 1
	}
	var badNodes, missingNodes int
	var firstBad string
	var nodeErr error
	err := a.index.hashes(a.hashBase+uint64(start), func(n uint64, h common.Hash) {
		hist.AppendVisit(h, func(level uint, index uint64, want common.Hash) {
			got, ok, err := db.HistoryNode(level, index)
			switch {
			case err != nil:
				nodeErr = err
			case !ok:
				missingNodes++
			case got != want:
				badNodes++
			default:
				return
			}
			if firstBad == "" {
				firstBad = fmt.Sprintf("node (level %d, index %d), completed by block %d: want %s, stored %s", level, index, n, want.Hex(), got.Hex())
			}
		})
	})
	if err != nil {
		return err
	}
	if nodeErr != nil || badNodes > 0 || missingNodes > 0 {
		detail := fmt.Sprintf("%d history tree nodes differ and %d are missing (proofs built from them fail); first: %s", badNodes, missingNodes, firstBad)
		if nodeErr != nil {
			detail = fmt.Sprintf("%s; %v", detail, nodeErr)
		}
		a.fail(to, -1, CheckHistoryNodes, "the nodes of the history of the blocks", "other nodes", detail)
	}
	stored := db.Tip().History
	want, err := hist.MarshalBinary()
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	got, err := stored.MarshalBinary()
	if err != nil || string(got) != string(want) {
		a.fail(to, -1, CheckHistoryRecord, fmt.Sprintf("%d blocks, root %s", hist.Size(), hist.Root().Hex()),
			fmt.Sprintf("%d blocks, root %s", stored.Size(), stored.Root().Hex()),
			"the stored history is not the history of the blocks: the node's next block would carry a wrong mixHash")
	}

	// The genesis the node checks its configuration against.
	if sg, err := db.Genesis(); err != nil {
		a.fail(0, -1, CheckGenesisRecord, a.g.Hash().Hex(), "unreadable", err.Error())
	} else if sg.Hash() != a.g.Hash() {
		a.fail(0, -1, CheckGenesisRecord, a.g.Hash().Hex(), sg.Hash().Hex(), "the stored genesis is not the given genesis file: tallyd refuses to start with it")
	}

	// The block-hash index (blocks by hash, the builder's view of what applied).
	err = a.index.hashes(a.hashBase, func(n uint64, h common.Hash) {
		if got, err := db.BlockNumberByHash(h); err != nil || got != n {
			found := fmt.Sprint(got)
			if err != nil {
				found = err.Error()
			}
			a.fail(n, -1, CheckHashIndex, fmt.Sprintf("%s → block %d", h.Hex(), n), found, "the block-hash index does not lead to the block")
		}
	})
	if err != nil {
		return err
	}

	// The certificate index: which block carries the certificate of each
	// certified block (proofs and the vote collector read it). Both lists
	// are in increasing certified height: they are walked side by side.
	kept, err := a.index.carriers()
	if err != nil {
		return err
	}
	missing := func(below uint64) { // checked carriers the data dir's index lacks, below height below
		for kept.ok && kept.certified < below {
			a.fail(kept.certified, -1, CheckCertIndex, fmt.Sprintf("carried by block %d", kept.carrier), "no entry", "a checked certificate is missing from the index")
			kept.next()
		}
	}
	err = db.CertificateIndex(func(certified, carrier uint64) error {
		if carrier <= a.hashBase && a.checkpoint != nil {
			return nil // in the trusted checkpoint
		}
		missing(certified)
		switch {
		case !kept.ok || kept.certified != certified:
			a.fail(certified, -1, CheckCertIndex, "no entry", fmt.Sprintf("carried by block %d", carrier), fmt.Sprintf("no checked block carries a certificate for block %d", certified))
			return nil
		case kept.carrier != carrier:
			a.fail(certified, -1, CheckCertIndex, fmt.Sprintf("carried by block %d", kept.carrier), fmt.Sprintf("carried by block %d", carrier), "the certificate index points to the wrong block")
		}
		kept.next()
		return nil
	})
	if err != nil {
		a.fail(to, -1, CheckCertIndex, "a readable index", "unreadable", err.Error())
	}
	for kept.ok {
		missing(kept.certified + 1)
	}
	if err := kept.close(); err != nil {
		return err
	}

	// A halt record: tallyd would start halted.
	if rec, err := db.HaltRecord(); err != nil {
		a.fail(to, -1, CheckHaltRecord, "none", "unreadable", err.Error())
	} else if rec != nil {
		a.fail(rec.Height, -1, CheckHaltRecord, "none", rec.Reason,
			fmt.Sprintf("the node halted (raft index %d): tallyd starts halted on this data dir until an operator clears it (docs/cluster.md)", rec.Entry))
	}
	return nil
}

// checkTxIndex checks, on a pipeline worker, that the transaction index of
// a data dir leads to each of b's transactions; the main loop reports what
// it returns.
func checkTxIndex(db *store.DB, b *chain.Block) []string {
	var bad []string
	for i, tx := range b.Txs {
		n, idx, err := db.TxLocation(tx.Hash())
		switch {
		case errors.Is(err, store.ErrNotFound):
			bad = append(bad, fmt.Sprintf("tx %d (%s): not in the index", i, tx.Hash()))
		case err != nil:
			bad = append(bad, fmt.Sprintf("tx %d (%s): %v", i, tx.Hash(), err))
		case n != b.Number() || int(idx) != i:
			bad = append(bad, fmt.Sprintf("tx %d (%s): the index says block %d position %d", i, tx.Hash(), n, idx))
		}
	}
	return bad
}
