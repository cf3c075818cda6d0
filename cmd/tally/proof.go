package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/audit"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/txdecode"
)

// codeUnavailable is the JSON-RPC code tally_getProof answers while the
// transaction's block is not certified yet (rpc.CodeUnavailable).
const codeUnavailable = -32002

// proofRetryEvery is how often `tally proof tx` asks again while the
// transaction's block awaits its certificate.
const proofRetryEvery = 250 * time.Millisecond

// proof dispatches `tally proof <kind>`; transactions are the one kind.
func (c *cli) proof(args []string) error {
	if len(args) == 0 {
		return usageErrorf("proof: missing subcommand (tx)")
	}
	switch args[0] {
	case "tx":
		return c.proofTx(args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(c.stderr, "Usage: tally proof tx HASH [--rpc URL] [--out FILE]")
		return errHelp
	}
	return usageErrorf("proof: unknown subcommand %q (tx)", args[0])
}

func (c *cli) proofTx(args []string) error {
	cmd := newCommand("proof tx", "HASH", `
Fetches the proof that a transaction is in the chain (tally_getProof) and
writes it as canonical JSON (docs/proofs.md). Anyone holding the genesis
file checks it offline with 'tally verify-proof FILE --genesis FILE'.
A block is certified by a later one: the command retries until then, within
--timeout, unless --wait=false.`)
	rpcURL, timeout := rpcFlags(cmd.fs)
	out := cmd.fs.String("out", "", "write the proof to `FILE` (default: stdout)")
	wait := cmd.fs.Bool("wait", true, "retry while the transaction's block is not certified yet")
	hash, err := parseOneArg(c, cmd, args, "HASH", parseHash)
	if err != nil {
		return err
	}
	ctx, client, done, err := connect(*rpcURL, *timeout)
	if err != nil {
		return err
	}
	defer done()
	var raw json.RawMessage
	for {
		err = client.Call(ctx, &raw, "tally_getProof", hash)
		var rerr gethrpc.Error
		if err == nil || !*wait || !errors.As(err, &rerr) || rerr.ErrorCode() != codeUnavailable {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("proof of tx %s: %w (still: %v)", hash, ctx.Err(), err)
		case <-time.After(proofRetryEvery):
		}
	}
	if err != nil {
		return fmt.Errorf("proof of tx %s: %w", hash, err)
	}
	// The node sends the canonical form; compacting first tolerates a proxy
	// that re-indents, and decoding checks what is written.
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return fmt.Errorf("proof of tx %s: node sent bad JSON: %w", hash, err)
	}
	p, err := chain.DecodeTxProof(compact.Bytes())
	if err != nil {
		return fmt.Errorf("proof of tx %s from the node: %w", hash, err)
	}
	enc, err := p.Encode()
	if err != nil {
		return err
	}
	enc = append(enc, '\n')
	if *out == "" {
		_, err := c.stdout.Write(enc)
		return err
	}
	if err := os.WriteFile(*out, enc, 0o644); err != nil {
		return fmt.Errorf("write proof: %w", err)
	}
	fmt.Fprintf(c.stdout, "proof of tx %s written to %s (%d bytes)\n", hash, *out, len(enc))
	return nil
}

// readProofFile reads a proof file: the canonical JSON, optionally
// followed by one newline (as 'tally proof tx' writes it).
func readProofFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, chain.MaxProofSize+2))
	if err != nil {
		return nil, err
	}
	if len(data) > chain.MaxProofSize+1 {
		return nil, fmt.Errorf("larger than %d bytes", chain.MaxProofSize)
	}
	return bytes.TrimSuffix(data, []byte{'\n'}), nil
}

func (c *cli) verifyProof(args []string) error {
	cmd := newCommand("verify-proof", "FILE --genesis FILE", `
Checks a transaction proof offline, with no node: the validator sets from
the genesis file through every change the proof carries, the certificate of
the head it reaches, the block's place in that head's history, the block's
seal, and the transaction's and receipt's places in the block
(docs/proofs.md). It prints what the proof establishes: the transaction's
operation and events as people read them (amounts in the units of the
genesis file's assets, references as text), its block and the certified
head.

Exit status: 0 the proof is valid; 1 it is not (malformed, or a check
failed: the message names which); 2 a file cannot be read, or the genesis
file is not a valid genesis.`)
	genesisPath := cmd.fs.String("genesis", "", "the chain's genesis `FILE` (required)")
	asJSON := jsonFlag(cmd.fs)
	arg, err := c.oneArg(cmd, args, "FILE")
	if err != nil {
		return err
	}
	if *genesisPath == "" {
		return usageErrorf("verify-proof: --genesis FILE is required")
	}
	g, err := genesis.Load(*genesisPath)
	if err != nil {
		return usageErrorf("verify-proof: %v", err)
	}
	data, err := readProofFile(arg)
	if err != nil {
		return usageErrorf("verify-proof: read proof: %v", err)
	}
	p, err := chain.DecodeTxProof(data)
	if err != nil {
		return fmt.Errorf("proof invalid: %w", err)
	}
	res, err := audit.VerifyProof(p, g)
	if err != nil {
		return err
	}
	// The proof is valid, so its transaction and receipt decode (the
	// verifier decoded them); the assets are the genesis file's: one added
	// later by governance shows in base units (txdecode).
	tx, err := chain.DecodeTx(p.Tx)
	if err != nil {
		return fmt.Errorf("proof transaction: %w", err)
	}
	var receipt types.Receipt
	if err := receipt.UnmarshalBinary(p.Receipt); err != nil {
		return fmt.Errorf("proof receipt: %w", err)
	}
	assets := txdecode.FromGenesis(g.Assets)
	doc := proofJSON{Valid: true, Tx: res.TxHash, Status: statusWord(res.Status), From: txdecode.Address(res.Sender), To: txdecode.Address(res.To),
		Call: txdecode.DecodeTx(tx, assets), Events: txdecode.DecodeLogs(receipt.Logs, assets),
		Block:            proofBlockJSON{Number: res.BlockNumber, Hash: res.BlockHash, Time: timeText(res.BlockTimeMs)},
		Certified:        proofCertJSON{Number: res.Head, Hash: res.HeadHash, Signers: res.Signers, Validators: res.Validators},
		ValidatorChanges: res.ValidatorChanges, ChainID: g.ChainID, GenesisHash: p.GenesisHash}
	if *asJSON {
		return c.printJSON(doc)
	}
	w := c.stdout
	fmt.Fprintf(w, "proof valid\n")
	field(w, "tx", res.TxHash.Hex())
	field(w, "status", statusText(res.Status))
	field(w, "from", res.Sender.Hex())
	field(w, "to", toText(&res.To, doc.Call))
	writeCall(w, doc.Call)
	writeEvents(w, doc.Events)
	field(w, "block", fmt.Sprintf("%d (%s) at %s", res.BlockNumber, res.BlockHash, doc.Block.Time))
	field(w, "certified", fmt.Sprintf("block %d (%s), signed by %d of %d validators", res.Head, res.HeadHash, res.Signers, res.Validators))
	fmt.Fprintf(w, "validator set changes followed: %d\n", res.ValidatorChanges)
	field(w, "chain", fmt.Sprintf("%d, genesis block %s", g.ChainID, p.GenesisHash))
	return nil
}

// proofJSON is 'tally verify-proof --json' for a valid proof (an invalid
// one prints nothing on stdout and exits 1).
type proofJSON struct {
	Valid bool        `json:"valid"`
	Tx    common.Hash `json:"tx"`
	// Status is "success" or "failed" (the receipt's status 1 or 0).
	Status           string           `json:"status"`
	From             txdecode.Address `json:"from"`
	To               txdecode.Address `json:"to"`
	Call             txdecode.Call    `json:"call"`
	Events           []txdecode.Event `json:"events"`
	Block            proofBlockJSON   `json:"block"`
	Certified        proofCertJSON    `json:"certified"`
	ValidatorChanges int              `json:"validatorChanges"`
	ChainID          uint64           `json:"chainId"`
	GenesisHash      common.Hash      `json:"genesisHash"`
}

// proofBlockJSON is the block holding the proven transaction.
type proofBlockJSON struct {
	Number uint64      `json:"number"`
	Hash   common.Hash `json:"hash"`
	Time   string      `json:"time"`
}

// proofCertJSON is the certified head the proof reaches, and its quorum.
type proofCertJSON struct {
	Number     uint64      `json:"number"`
	Hash       common.Hash `json:"hash"`
	Signers    int         `json:"signers"`
	Validators int         `json:"validators"`
}
