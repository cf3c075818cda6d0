package consensus

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
)

const testVoteChainID = 99

// memChain is an applied chain in memory: block hashes by height, the
// validator set by height and the certified heights. It follows the
// CertChain contract exactly as store.DB does (validator sets are looked
// up at or below the height).
type memChain struct {
	head      uint64
	sets      map[uint64][]common.Address // height the set takes effect → set
	certified map[uint64]bool
	// unreadable heights fail BlockHash (a block the store cannot read back).
	unreadable map[uint64]bool
}

func (c *memChain) ChainID() uint64    { return testVoteChainID }
func (c *memChain) HeadNumber() uint64 { return c.head }
func (c *memChain) BlockHash(n uint64) (common.Hash, error) {
	if n > c.head || c.unreadable[n] {
		return common.Hash{}, fmt.Errorf("block %d not readable (head %d)", n, c.head)
	}
	return blockHash(n), nil
}
func (c *memChain) ValidatorsAt(n uint64) ([]common.Address, error) {
	for h := n; ; h-- {
		if s, ok := c.sets[h]; ok {
			return s, nil
		}
		if h == 0 {
			return nil, errors.New("no validator set")
		}
	}
}
func (c *memChain) Certified(n uint64) (bool, error) { return c.certified[n], nil }

func blockHash(n uint64) common.Hash { return common.Hash{0xb1, byte(n >> 8), byte(n)} }

type voteEnv struct {
	keys  []*crypto.PrivateKey // 0..2 validators from genesis, 3 an outsider
	chain *memChain
}

func newVoteEnv(t *testing.T) *voteEnv {
	e := &voteEnv{chain: &memChain{head: 10, sets: map[uint64][]common.Address{}, certified: map[uint64]bool{}}}
	for range 4 {
		k, err := crypto.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		e.keys = append(e.keys, k)
	}
	e.chain.sets[0] = []common.Address{e.keys[0].Address(), e.keys[1].Address(), e.keys[2].Address()}
	return e
}

func (e *voteEnv) vote(t *testing.T, signer int, height uint64) *chain.Vote {
	next, err := NextSetHash(e.chain, height)
	if err != nil {
		t.Fatal(err)
	}
	v, err := chain.SignVote(testVoteChainID, height, blockHash(height), next, e.keys[signer])
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVoteCollectorAdd(t *testing.T) {
	for _, tc := range []struct {
		name  string
		vote  func(t *testing.T, e *voteEnv) *chain.Vote
		kept  int
		error error
	}{
		{"valid", func(t *testing.T, e *voteEnv) *chain.Vote { return e.vote(t, 0, 5) }, 1, nil},
		{"head", func(t *testing.T, e *voteEnv) *chain.Vote { return e.vote(t, 1, 10) }, 1, nil},
		{"outsider", func(t *testing.T, e *voteEnv) *chain.Vote { return e.vote(t, 3, 5) }, 0, ErrVoteSigner},
		{"wrong hash", func(t *testing.T, e *voteEnv) *chain.Vote {
			v, _ := chain.SignVote(testVoteChainID, 5, common.Hash{9}, mustNext(t, e, 5), e.keys[0])
			return v
		}, 0, ErrVoteHash},
		{"wrong next", func(t *testing.T, e *voteEnv) *chain.Vote {
			v, _ := chain.SignVote(testVoteChainID, 5, blockHash(5), common.Hash{9}, e.keys[0])
			return v
		}, 0, ErrVoteNext},
		{"wrong chain", func(t *testing.T, e *voteEnv) *chain.Vote {
			v, _ := chain.SignVote(testVoteChainID+1, 5, blockHash(5), mustNext(t, e, 5), e.keys[0])
			return v // recovers to some other address
		}, 0, ErrVoteSigner},
		{"bad signature", func(t *testing.T, e *voteEnv) *chain.Vote {
			v := e.vote(t, 0, 5)
			v.Sig = make([]byte, 65)
			return v
		}, 0, chain.ErrCertSignature},
		{"block 0", func(t *testing.T, e *voteEnv) *chain.Vote { return e.vote(t, 0, 0) }, 0, ErrVoteStale},
		{"below the window", func(t *testing.T, e *voteEnv) *chain.Vote {
			e.chain.head = 100
			return e.vote(t, 0, 5)
		}, 0, ErrVoteStale},
		{"held above the head", func(t *testing.T, e *voteEnv) *chain.Vote {
			v := e.vote(t, 0, 12) // hash known to the test only; the head reaches it later
			return v
		}, 1, nil},
		{"too far above the head", func(t *testing.T, e *voteEnv) *chain.Vote { return e.vote(t, 0, 10+8+1) }, 0, ErrVoteStale},
		{"already certified", func(t *testing.T, e *voteEnv) *chain.Vote {
			e.chain.certified[5] = true
			return e.vote(t, 0, 5)
		}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newVoteEnv(t)
			vc := NewVoteCollector(e.chain, VoteConfig{Window: 50, MaxAhead: 8})
			kept, refused := vc.Add([]*chain.Vote{tc.vote(t, e)})
			if kept != tc.kept {
				t.Errorf("kept %d, want %d", kept, tc.kept)
			}
			switch {
			case tc.error == nil && len(refused) > 0:
				t.Errorf("refused: %v", refused)
			case tc.error != nil && (len(refused) != 1 || !errors.Is(refused[0], tc.error)):
				t.Errorf("refused %v, want %v", refused, tc.error)
			}
		})
	}
}

func mustNext(t *testing.T, e *voteEnv, n uint64) common.Hash {
	h, err := NextSetHash(e.chain, n)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestVoteCollectorReady(t *testing.T) {
	e := newVoteEnv(t)
	vc := NewVoteCollector(e.chain, VoteConfig{Window: 50, MaxAhead: 8})
	add := func(votes ...*chain.Vote) {
		t.Helper()
		if _, refused := vc.Add(votes); len(refused) > 0 {
			t.Fatal(refused)
		}
	}
	heights := func(certs []*chain.Certificate) []uint64 {
		var out []uint64
		for _, c := range certs {
			out = append(out, c.Height)
			if err := chain.VerifyCertificate(c, testVoteChainID, e.chain.sets[0]); err != nil {
				t.Fatalf("certificate %d: %v", c.Height, err)
			}
			if c.Hash != blockHash(c.Height) || c.Next != mustNext(t, e, c.Height) {
				t.Fatalf("certificate %d names the wrong block", c.Height)
			}
		}
		return out
	}
	// One vote is no quorum of three; a duplicate does not make one.
	add(e.vote(t, 0, 7), e.vote(t, 0, 7))
	if got := vc.Ready(11); len(got) != 0 {
		t.Fatalf("ready without quorum: %v", heights(got))
	}
	add(e.vote(t, 2, 7), e.vote(t, 0, 4), e.vote(t, 1, 4), e.vote(t, 2, 4), e.vote(t, 1, 9), e.vote(t, 2, 9))
	for _, tc := range []struct {
		number uint64
		want   []uint64
	}{
		{11, []uint64{4, 7, 9}},
		{9, []uint64{4, 7}}, // nothing at or above the block being built
		{5, []uint64{4}},
	} {
		if got := heights(vc.Ready(tc.number)); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Ready(%d) = %v, want %v", tc.number, got, tc.want)
		}
	}
	c := vc.Ready(11)[0]
	if len(c.Sigs) != 3 {
		t.Fatalf("certificate for 4 has %d signatures, want all 3", len(c.Sigs))
	}
	// Certified heights are pruned.
	e.chain.certified[4], e.chain.certified[7] = true, true
	if got := heights(vc.Ready(11)); fmt.Sprint(got) != "[9]" {
		t.Fatalf("after certification: %v", got)
	}
	if n, _ := vc.Pending(); n != 1 {
		t.Fatalf("%d heights kept, want 1", n)
	}
	// Votes held above the head count once the head reaches them.
	add(e.vote(t, 0, 12), e.vote(t, 1, 12))
	if got := heights(vc.Ready(13)); fmt.Sprint(got) != "[9]" {
		t.Fatalf("held votes counted early: %v", got)
	}
	e.chain.head = 12
	if got := heights(vc.Ready(13)); fmt.Sprint(got) != "[9 12]" {
		t.Fatalf("held votes not counted: %v", got)
	}
	if _, ahead := vc.Pending(); ahead != 0 {
		t.Fatalf("%d votes still held", ahead)
	}
	// Heights that leave the window are forgotten.
	e.chain.head = 200
	if got := vc.Ready(201); len(got) != 0 {
		t.Fatalf("out of window: %v", heights(got))
	}
}

// TestVoteCollectorValidatorChange: a vote counts against the set in force
// at its height, and names the set after it.
func TestVoteCollectorValidatorChange(t *testing.T) {
	e := newVoteEnv(t)
	// From height 8 on, validator 2 is replaced by the outsider 3.
	e.chain.sets[8] = []common.Address{e.keys[0].Address(), e.keys[1].Address(), e.keys[3].Address()}
	vc := NewVoteCollector(e.chain, VoteConfig{Window: 50, MaxAhead: 8})
	for _, tc := range []struct {
		signer int
		height uint64
		err    error
	}{
		{2, 7, nil}, {3, 7, ErrVoteSigner}, {3, 8, nil}, {2, 8, ErrVoteSigner},
	} {
		_, refused := vc.Add([]*chain.Vote{e.vote(t, tc.signer, tc.height)})
		if (tc.err == nil) != (len(refused) == 0) || (tc.err != nil && !errors.Is(refused[0], tc.err)) {
			t.Errorf("signer %d at %d: %v, want %v", tc.signer, tc.height, refused, tc.err)
		}
	}
	if mustNext(t, e, 7) == mustNext(t, e, 6) {
		t.Fatal("the vote for the last block of the old set names the old set")
	}
	vc.Add([]*chain.Vote{e.vote(t, 0, 7)})
	certs := vc.Ready(11)
	if len(certs) != 1 || certs[0].Height != 7 || certs[0].Next != chain.ValidatorSetHash(e.chain.sets[8]) {
		t.Fatalf("certificates %+v", certs)
	}
}

func TestVoteSender(t *testing.T) {
	e := newVoteEnv(t)
	heightsOf := func(votes []*chain.Vote) string {
		var out []uint64
		for _, v := range votes {
			out = append(out, v.Height)
			signer, err := v.Signer(testVoteChainID)
			if err != nil || signer != e.keys[0].Address() || v.Hash != blockHash(v.Height) || v.Next != mustNext(t, e, v.Height) {
				t.Fatalf("vote %d: signer %s, %v", v.Height, signer, err)
			}
		}
		return fmt.Sprint(out)
	}
	e.chain.sets[9] = []common.Address{e.keys[1].Address(), e.keys[2].Address(), e.keys[3].Address()} // key 0 leaves at 9
	vs := NewVoteSender(e.chain, e.keys[0], VoteConfig{Window: 5, MaxAhead: 8})
	for _, step := range []struct {
		name    string
		do      func()
		fresh   string
		all     string
		headSet uint64
	}{
		{"nothing applied", func() {}, "[]", "[]", 10},
		{"two blocks", func() { vs.Applied(5, blockHash(5)); vs.Applied(6, blockHash(6)) }, "[5 6]", "[5 6]", 10},
		{"fresh only once", func() {}, "[]", "[5 6]", 10},
		{"not a validator at 9", func() { vs.Applied(8, blockHash(8)); vs.Applied(9, blockHash(9)) }, "[8]", "[5 6 8]", 10},
		{"certified ones dropped", func() { e.chain.certified[5] = true }, "[]", "[6 8]", 10},
		{"window", func() {}, "[]", "[8]", 12},
		{"reset", func() { vs.Reset() }, "[]", "[]", 12},
	} {
		e.chain.head = step.headSet
		step.do()
		fresh, err := vs.Fresh()
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := heightsOf(fresh); got != step.fresh {
			t.Errorf("%s: fresh %s, want %s", step.name, got, step.fresh)
		}
		if got := heightsOf(vs.All()); got != step.all {
			t.Errorf("%s: all %s, want %s", step.name, got, step.all)
		}
	}
}

// TestSenderToCollector: three senders' votes make certificates the
// collector hands out, and the senders stop re-sending them once certified.
func TestSenderToCollector(t *testing.T) {
	e := newVoteEnv(t)
	vc := NewVoteCollector(e.chain, VoteConfig{})
	var senders []*VoteSender
	for i := range 3 {
		senders = append(senders, NewVoteSender(e.chain, e.keys[i], VoteConfig{}))
	}
	for h := uint64(1); h <= 10; h++ {
		for i, s := range senders {
			if i == 2 && h%2 == 0 {
				continue // validator 2 misses even heights: still a quorum
			}
			s.Applied(h, blockHash(h))
		}
	}
	for _, s := range senders {
		fresh, err := s.Fresh()
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range Batches(fresh, 3) {
			if _, refused := vc.Add(b); len(refused) > 0 {
				t.Fatal(refused)
			}
		}
	}
	certs := vc.Ready(11)
	if len(certs) != 10 {
		t.Fatalf("%d certificates, want 10", len(certs))
	}
	for _, c := range certs {
		if want := 3 - int(1-c.Height%2); len(c.Sigs) != want {
			t.Errorf("certificate %d: %d signatures, want %d", c.Height, len(c.Sigs), want)
		}
		e.chain.certified[c.Height] = true
	}
	for i, s := range senders {
		if left := s.All(); len(left) != 0 {
			t.Errorf("sender %d still holds %d votes", i, len(left))
		}
	}
}

// TestVoteCollectorAppliedHashes: hashes recorded by Applied spare the
// store; without them the collector reads the block back.
func TestVoteCollectorAppliedHashes(t *testing.T) {
	e := newVoteEnv(t)
	e.chain.unreadable = map[uint64]bool{6: true, 7: true}
	vc := NewVoteCollector(e.chain, VoteConfig{Window: 50, MaxAhead: 8})
	vc.Applied(6, blockHash(6))
	if _, refused := vc.Add([]*chain.Vote{e.vote(t, 0, 6)}); len(refused) != 0 {
		t.Fatalf("vote for an applied block: %v", refused)
	}
	if _, refused := vc.Add([]*chain.Vote{e.vote(t, 0, 7)}); len(refused) != 1 {
		t.Fatal("vote for a block neither recorded nor readable accepted")
	}
}

// TestVoteCollectorBounded: a collector that is never asked for
// certificates (on a follower) still keeps at most a window of heights.
func TestVoteCollectorBounded(t *testing.T) {
	e := newVoteEnv(t)
	vc := NewVoteCollector(e.chain, VoteConfig{Window: 10, MaxAhead: 2})
	for h := uint64(1); h <= 100; h++ {
		e.chain.head = h
		vc.Applied(h, blockHash(h))
		vc.Add([]*chain.Vote{e.vote(t, 0, h), e.vote(t, 1, h+1), e.vote(t, 2, h+1)})
	}
	if n, ahead := vc.Pending(); n > 12 || ahead > 2*chain.MaxValidators {
		t.Fatalf("%d heights and %d votes ahead kept, window 10", n, ahead)
	}
	if len(vc.applied) > 11 {
		t.Fatalf("%d applied hashes kept", len(vc.applied))
	}
}

// TestVoteSenderResume: a restarted validator votes again for the blocks
// of the window that are not certified yet.
func TestVoteSenderResume(t *testing.T) {
	e := newVoteEnv(t)
	e.chain.head = 12
	e.chain.certified[9], e.chain.certified[11] = true, true
	vs := NewVoteSender(e.chain, e.keys[1], VoteConfig{Window: 5})
	if err := vs.Resume(); err != nil {
		t.Fatal(err)
	}
	fresh, err := vs.Fresh()
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, v := range fresh {
		got = append(got, v.Height)
	}
	if fmt.Sprint(got) != "[8 10 12]" {
		t.Fatalf("resumed votes for %v, want [8 10 12]", got)
	}
	e.chain.unreadable = map[uint64]bool{10: true}
	if err := NewVoteSender(e.chain, e.keys[1], VoteConfig{Window: 5}).Resume(); err == nil {
		t.Fatal("an unreadable block resumed")
	}
}
