package chain

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

func testLeaves(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		h := crypto.Keccak256Hash([]byte{byte(i), byte(i >> 8)})
		out[i] = h[:]
	}
	return out
}

// TestMerklePathLeft checks that the side bits of every (index, size) path
// verify as VerifyMerklePath, and that flipping any one of them does not.
func TestMerklePathLeft(t *testing.T) {
	for size := 1; size <= 70; size++ {
		leaves := testLeaves(size)
		root := MerkleRoot(leaves)
		for index := 0; index < size; index++ {
			path, err := MerkleProof(leaves, uint64(index))
			if err != nil {
				t.Fatal(err)
			}
			left, n, err := MerklePathLeft(uint64(index), uint64(size))
			if err != nil {
				t.Fatal(err)
			}
			if n != len(path) {
				t.Fatalf("index %d size %d: length %d, path has %d", index, size, n, len(path))
			}
			if err := VerifyMerklePath(leaves[index], left, path, root); err != nil {
				t.Fatalf("index %d size %d: %v", index, size, err)
			}
			for j := 0; j <= len(path); j++ {
				if err := VerifyMerklePath(leaves[index], left^(1<<j), path, root); !errors.Is(err, ErrProof) {
					t.Fatalf("index %d size %d: bit %d flipped verifies (%v)", index, size, j, err)
				}
			}
		}
	}
	if _, _, err := MerklePathLeft(3, 3); err == nil {
		t.Fatal("index out of range accepted")
	}
	if err := VerifyMerklePath([]byte{1}, 0, make([]common.Hash, MaxPathLen+1), common.Hash{}); !errors.Is(err, ErrProof) {
		t.Fatalf("path beyond MaxPathLen: %v", err)
	}
}

// TestHistoryProofNodes checks that proofs built from the nodes AppendVisit
// reports equal MerkleProof over all the hashes, for every (index, size).
func TestHistoryProofNodes(t *testing.T) {
	const n = 67
	leaves := testLeaves(n)
	stored := map[HistoryNodeID]common.Hash{}
	h := NewHistory()
	for i, l := range leaves {
		h.AppendVisit(common.BytesToHash(l), func(level uint, index uint64, hash common.Hash) {
			id := HistoryNodeID{level, index}
			if _, dup := stored[id]; dup {
				t.Fatalf("node %+v reported twice", id)
			}
			stored[id] = hash
		})
		if h.Root() != MerkleRoot(leaves[:i+1]) {
			t.Fatalf("root after %d differs", i+1)
		}
	}
	if len(stored) != 2*n-bitsSet(n) {
		t.Fatalf("%d nodes stored for %d leaves", len(stored), n)
	}
	for size := 1; size <= n; size++ {
		for index := 0; index < size; index++ {
			want, err := MerkleProof(leaves[:size], uint64(index))
			if err != nil {
				t.Fatal(err)
			}
			p, err := HistoryProofNodes(uint64(index), uint64(size))
			if err != nil {
				t.Fatal(err)
			}
			hashes := make([]common.Hash, len(p.Nodes))
			for i, id := range p.Nodes {
				hash, ok := stored[id]
				if !ok {
					t.Fatalf("index %d size %d: node %+v never reported", index, size, id)
				}
				hashes[i] = hash
			}
			got, err := p.Build(hashes)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("index %d size %d: %d hashes, want %d", index, size, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("index %d size %d: hash %d differs", index, size, i)
				}
			}
		}
	}
	if _, err := HistoryProofNodes(5, 5); err == nil {
		t.Fatal("index out of range accepted")
	}
}

func bitsSet(n int) int {
	c := 0
	for ; n > 0; n &= n - 1 {
		c++
	}
	return c
}

func sampleProof() *TxProof {
	h := func(b byte) common.Hash { return common.BytesToHash(bytes.Repeat([]byte{b}, 32)) }
	sig := func(b byte) []byte { return bytes.Repeat([]byte{b}, 65) }
	cert := func(n uint64) *Certificate {
		return &Certificate{Height: n, Hash: h(byte(n)), Next: h(0xee), Sigs: [][]byte{sig(1), sig(2)}}
	}
	return &TxProof{
		Version: ProofVersion, ChainID: 7, GenesisHash: h(0xaa),
		Tx: []byte{2, 0xf8, 0x01}, Receipt: []byte{2, 0xf9}, PathLeft: 5,
		TxPath: []common.Hash{h(1), h(2), h(3)}, ReceiptPath: []common.Hash{h(4), h(5), h(6)},
		Header: []byte{0xc0}, Head: []byte{0xc1}, HistoryPath: []common.Hash{h(9)}, GenesisPath: []common.Hash{},
		Certificate: cert(12),
		ValidatorChanges: []ValidatorSetChange{
			{Height: 1, Validators: []common.Address{{1}, {2}}, Certificate: cert(0)},
			{Height: 5, Validators: []common.Address{{1}, {2}, {3}}, Certificate: cert(4), Before: cert(3)},
		},
	}
}

func TestProofRoundTrip(t *testing.T) {
	p := sampleProof()
	enc, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(enc, " \n\t") || regexp.MustCompile(`0x[0-9a-f]*[A-F]`).Match(enc) {
		t.Fatalf("not compact lowercase: %s", enc)
	}
	dec, err := DecodeTxProof(enc)
	if err != nil {
		t.Fatal(err)
	}
	again, err := dec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, enc) {
		t.Fatalf("round trip differs:\n%s\n%s", enc, again)
	}
	var viaJSON TxProof
	if err := viaJSON.UnmarshalJSON(enc); err != nil || viaJSON.Certificate.Height != 12 {
		t.Fatalf("UnmarshalJSON: %v", err)
	}
}

// TestDecodeProofRefuses checks the canonical form: every variation of a
// valid encoding is refused, naming the field where one is at fault.
func TestDecodeProofRefuses(t *testing.T) {
	enc, err := sampleProof().Encode()
	if err != nil {
		t.Fatal(err)
	}
	s := string(enc)
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "EOF"},
		{"not an object", "[]", "cannot unmarshal"},
		{"trailing data", s + "{}", "data after"},
		{"trailing newline", s + "\n", "canonical"},
		{"leading space", " " + s, "canonical"},
		{"unknown field", strings.Replace(s, `{"version"`, `{"extra":1,"version"`, 1), "unknown field"},
		{"missing field", strings.Replace(s, `"chainId":7,`, ``, 1), "chainId missing"},
		{"null field", strings.Replace(s, `"tx":"0x02f801"`, `"tx":null`, 1), "tx missing or null"},
		{"null path", strings.Replace(s, `"genesisPath":[]`, `"genesisPath":null`, 1), "genesisPath missing or null"},
		{"duplicate key", strings.Replace(s, `"chainId":7,`, `"chainId":7,"chainId":7,`, 1), "canonical"},
		{"key case", strings.Replace(s, `"chainId"`, `"ChainId"`, 1), "canonical"},
		{"uppercase hex", strings.Replace(s, `"tx":"0x02f801"`, `"tx":"0x02F801"`, 1), "tx: character"},
		{"uppercase prefix", strings.Replace(s, `"tx":"0x02f801"`, `"tx":"0X02f801"`, 1), "tx: not 0x-hex"},
		{"odd hex", strings.Replace(s, `"tx":"0x02f801"`, `"tx":"0x02f80"`, 1), "odd number"},
		{"short hash", strings.Replace(s, `"genesisHash":"0xaa`, `"genesisHash":"0x`, 1), "genesisHash: 31 bytes"},
		{"short signature", strings.Replace(s, `"signatures":["0x01`, `"signatures":["0x`, 1), "certificate.signatures[0]: 64 bytes"},
		{"exponent", strings.Replace(s, `"chainId":7`, `"chainId":7e0`, 1), "cannot unmarshal"},
		{"leading zero", strings.Replace(s, `"chainId":7`, `"chainId":07`, 1), "invalid character"},
		{"quoted number", strings.Replace(s, `"chainId":7`, `"chainId":"0x7"`, 1), "cannot unmarshal"},
		{"negative", strings.Replace(s, `"chainId":7`, `"chainId":-7`, 1), "cannot unmarshal"},
		{"version 1", strings.Replace(s, `"version":2`, `"version":1`, 1), "version 1"},
		{"version 3", strings.Replace(s, `"version":2`, `"version":3`, 1), "version 3"},
		{"missing before", strings.Replace(s, `,"before":null`, ``, 1), "canonical"},
		{"before not an object", strings.Replace(s, `"before":null`, `"before":7`, 1), "cannot unmarshal"},
		{"before without height", strings.Replace(s, `"before":{"height":3,`, `"before":{`, 1), "validatorChanges[1].before.height missing"},
		{"escaped char", strings.Replace(s, `"tx":"0x02f801"`, `"tx":"\u0030x02f801"`, 1), "canonical"},
		{"unsorted validators", strings.Replace(s, `"validators":["0x01`, `"validators":["0x04`, 1), "strictly increasing"},
		{"no validators", strings.Replace(s, `"validators":["0x0100000000000000000000000000000000000000","0x0200000000000000000000000000000000000000"]`, `"validators":[]`, 1), "validators: 0"},
		{"missing cert field", strings.Replace(s, `"certificate":{"height":12,`, `"certificate":{`, 1), "certificate.height missing"},
		{"whitespace", strings.Replace(s, `,"tx"`, `, "tx"`, 1), "canonical"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.in == s {
				t.Fatal("test input unchanged")
			}
			_, err := DecodeTxProof([]byte(tt.in))
			if !errors.Is(err, ErrProofMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrProofMalformed containing %q", err, tt.want)
			}
		})
	}
	if _, err := DecodeTxProof(make([]byte, MaxProofSize+1)); !errors.Is(err, ErrProofMalformed) {
		t.Fatalf("oversized: %v", err)
	}
}

// FuzzDecodeTxProof: any input either fails to decode or is exactly the
// canonical encoding of what it decodes to.
func FuzzDecodeTxProof(f *testing.F) {
	enc, err := sampleProof().Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeTxProof(data)
		if err != nil {
			if !errors.Is(err, ErrProofMalformed) {
				t.Fatalf("error not ErrProofMalformed: %v", err)
			}
			return
		}
		again, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("decoded a non-canonical input:\n%q\n%q", data, again)
		}
	})
}
