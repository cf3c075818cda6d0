package chain

import (
	"errors"
	"fmt"
	"math"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rlp"
)

// The limits a block and its transactions must keep. They are rules of the
// chain, not local policy: state.CheckBlock (which the FSM, the leader's
// builder and the audit all call) refuses a block breaking one, admission
// (CheckTx, through every sender recovery) refuses a transaction breaking
// one, and the builder fills blocks within them (TxBudget), so no
// admissible transaction can make a block the FSM rejects.
const (
	// MaxBlockSize bounds an encoded block (header, transactions and
	// certificates), and so a Raft log entry a peer can make a node decode.
	MaxBlockSize = 64 << 20
	// MaxTxSize bounds one transaction's canonical (EIP-2718) encoding:
	// go-ethereum's transaction slot (32 KiB), which holds the largest
	// transaction the other limits allow (MaxCalldata of calldata and a
	// full access list, ~31 KB). go-ethereum's pool allows four slots;
	// Tally, with no EVM, needs one.
	MaxTxSize = 32 * 1024
	// MaxAccessListEntries bounds the addresses of a transaction's access
	// list (EIP-2930). Tally runs no EVM, so an access list changes
	// nothing; the room is for clients that attach one anyway.
	MaxAccessListEntries = 64
	// MaxAccessListKeys bounds the storage keys of an access list, summed
	// over its entries.
	MaxAccessListKeys = 768
	// MaxTxGas is the most gas one transaction uses (the larger of
	// GasPerTransfer and GasPerSystemCall); the builder reserves it before
	// executing a transaction so a block's gas used never passes
	// BlockGasLimit.
	MaxTxGas = max(GasPerTransfer, GasPerSystemCall)
)

// Limit errors. A transaction or block failing a limit wraps one of them.
var (
	// ErrTxTooLarge is go-ethereum's txpool.ErrOversizedData, with its
	// words, which client libraries match on.
	ErrTxTooLarge         = errors.New("oversized data")
	ErrAccessListTooLarge = errors.New("access list too large")
	ErrBlockTooLarge      = errors.New("block too large")
	ErrTooManyCerts       = errors.New("too many certificates")
)

// CheckTxLimits checks tx's encoded size and access list against
// MaxTxSize, MaxAccessListEntries and MaxAccessListKeys. CheckTx calls it,
// so admission, the FSM and the audit all apply it.
func CheckTxLimits(tx *types.Transaction) error {
	if size := tx.Size(); size > MaxTxSize {
		return fmt.Errorf("%w: transaction size %d, limit %d", ErrTxTooLarge, size, MaxTxSize)
	}
	return CheckAccessList(tx.AccessList())
}

// CheckAccessList checks an access list against MaxAccessListEntries and
// MaxAccessListKeys (a transaction's, or one eth_createAccessList is given).
func CheckAccessList(al types.AccessList) error {
	if len(al) > MaxAccessListEntries {
		return fmt.Errorf("%w: %d addresses, limit %d", ErrAccessListTooLarge, len(al), MaxAccessListEntries)
	}
	keys := 0
	for _, t := range al {
		keys += len(t.StorageKeys)
	}
	if keys > MaxAccessListKeys {
		return fmt.Errorf("%w: %d storage keys, limit %d", ErrAccessListTooLarge, keys, MaxAccessListKeys)
	}
	return nil
}

// CheckBlockLimits checks what bounds a block as a whole: its encoded size
// (b.Size()), the number of certificates and of signatures in each.
// DecodeBlock applies it to what it decodes and state.CheckBlock to every
// block, built or received.
func CheckBlockLimits(b *Block) error {
	if size := b.Size(); size > MaxBlockSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrBlockTooLarge, size, MaxBlockSize)
	}
	if len(b.Certs) > MaxCertsPerBlock {
		return fmt.Errorf("%w: %d, limit %d", ErrTooManyCerts, len(b.Certs), MaxCertsPerBlock)
	}
	for i, c := range b.Certs {
		if c == nil || len(c.Sigs) > MaxValidators {
			return fmt.Errorf("%w: certificate %d has more signatures than the %d validators a set may have", ErrTooManyCerts, i, MaxValidators)
		}
	}
	return nil
}

// ErrHeaderShape is wrapped by CheckHeaderShape's errors.
var ErrHeaderShape = errors.New("header fields outside Tally's fixed London shape")

// CheckHeaderShape checks the header fields Tally fixes (DESIGN.md decision
// 4) of a block after block 0: no uncles, difficulty, nonce, base fee 0,
// gas limit BlockGasLimit and gas used within it, no post-London field,
// Extra of ExtraLen bytes and Time the millisecond time in seconds. It
// names every field that is off.
func CheckHeaderShape(h *types.Header) error {
	var bad []string
	if h.UncleHash != types.EmptyUncleHash {
		bad = append(bad, "uncle hash")
	}
	if h.Difficulty == nil || h.Difficulty.Sign() != 0 {
		bad = append(bad, "difficulty")
	}
	if h.Nonce != (types.BlockNonce{}) {
		bad = append(bad, "nonce")
	}
	if h.BaseFee == nil || h.BaseFee.Sign() != 0 {
		bad = append(bad, "base fee")
	}
	if h.GasLimit != BlockGasLimit {
		bad = append(bad, "gas limit")
	}
	if h.GasUsed > h.GasLimit {
		bad = append(bad, fmt.Sprintf("gas used %d over the gas limit", h.GasUsed))
	}
	if h.WithdrawalsHash != nil || h.BlobGasUsed != nil || h.ExcessBlobGas != nil || h.ParentBeaconRoot != nil ||
		h.RequestsHash != nil || h.BlockAccessListHash != nil || h.SlotNumber != nil {
		bad = append(bad, "post-London fields")
	}
	if len(h.Extra) != ExtraLen {
		bad = append(bad, fmt.Sprintf("extra data of %d bytes (want %d)", len(h.Extra), ExtraLen))
	}
	if timeMs, err := TimeMs(h); err == nil && h.Time != timeMs/1000 {
		bad = append(bad, fmt.Sprintf("time %d s for %d ms", h.Time, timeMs))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %v", ErrHeaderShape, bad)
	}
	return nil
}

// TxEncodedSize is the room tx takes in an encoded block's transaction
// list: a legacy transaction is its RLP list, a typed one its canonical
// encoding wrapped as an RLP string.
func TxEncodedSize(tx *types.Transaction) int {
	n := tx.Size()
	if tx.Type() == types.LegacyTxType {
		return int(n)
	}
	return int(rlp.ListSize(n)) // a string of n ≥ 2 bytes has a list's header length
}

// MaxHeaderSize is the largest encoding of a header after block 0:
// computed by encoding one with every variable-width field at its widest.
var MaxHeaderSize = func() int {
	h := NewHeader(common.Hash{}, math.MaxUint64, math.MaxUint64, common.Address{})
	h.Time = math.MaxUint64
	h.GasUsed = math.MaxUint64
	h.Extra = make([]byte, ExtraLen)
	enc, err := rlp.EncodeToBytes(h)
	if err != nil {
		panic(err) // a header always encodes
	}
	return len(enc)
}()

// TxBudget is how many bytes of transactions (the sum of their
// TxEncodedSize) a block carrying certs may hold so that its encoding stays
// within limit (MaxBlockSize or less): limit less the widest header, the
// certificates and the list headers, each at its widest.
func TxBudget(limit int, certs []*Certificate) int {
	if certs == nil {
		certs = []*Certificate{}
	}
	certsSize, err := rlp.EncodeToBytes(certs)
	if err != nil {
		panic(fmt.Sprintf("encode certificates: %v", err)) // plain fields always encode
	}
	listHeader := int(rlp.ListSize(uint64(limit))) - limit // the widest a list within limit needs
	return max(0, limit-2*listHeader-MaxHeaderSize-len(certsSize))
}
