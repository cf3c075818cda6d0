package p2p

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/tally-ledger/tally/crypto"
)

// Raft's RPC type bytes on the wire (hashicorp/raft net_transport.go).
const (
	wireAppendEntries byte = iota
	wireRequestVote
	wireInstallSnapshot
	wireTimeoutNow
	wireRequestPreVote
)

// raftFrame is one request as NetworkTransport writes it: the type byte,
// then the request in msgpack.
func raftFrame(t testing.TB, typ byte, req any) []byte {
	var buf bytes.Buffer
	buf.WriteByte(typ)
	if err := codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(req); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// answerAll answers every RPC tr receives, as Raft would (a response of
// the request's type; a snapshot is refused) until the test ends, and
// passes each request to seen.
func answerAll(t testing.TB, tr raft.Transport, seen chan<- any) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case <-done:
				return
			case rpc := <-tr.Consumer():
				var resp any
				var err error
				switch rpc.Command.(type) {
				case *raft.AppendEntriesRequest:
					resp = &raft.AppendEntriesResponse{Term: 9, LastLog: 7, Success: true}
				case *raft.RequestVoteRequest:
					resp = &raft.RequestVoteResponse{Term: 9, Granted: true}
				case *raft.RequestPreVoteRequest:
					resp = &raft.RequestPreVoteResponse{Term: 9, Granted: true}
				case *raft.TimeoutNowRequest:
					resp = &raft.TimeoutNowResponse{}
				default:
					err = errors.New("refused")
				}
				if seen != nil {
					select {
					case seen <- rpc.Command:
					default:
					}
				}
				rpc.Respond(resp, err)
			}
		}
	}()
}

// fuzzHosts starts two hosts that admit each other, connected, for the
// whole fuzz run.
func fuzzHosts(f *testing.F) (a, b *Host) {
	ka, kb := mustKey(f), mustKey(f)
	ida, err := PeerIDFromKey(ka)
	if err != nil {
		f.Fatal(err)
	}
	idb, err := PeerIDFromKey(kb)
	if err != nil {
		f.Fatal(err)
	}
	for _, k := range []*crypto.PrivateKey{ka, kb} {
		h, err := New(Config{Key: k, ListenAddrs: []string{tcpLoopback}, Allowed: []peer.ID{ida, idb}, Logger: testLogger(), DialTimeout: 2 * time.Second})
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { h.Close() })
		if a == nil {
			a = h
		} else {
			b = h
		}
	}
	for _, addr := range b.Addrs() {
		if err := a.AddPeer(addr); err != nil {
			f.Fatal(err)
		}
	}
	return a, b
}

func mustKey(t testing.TB) *crypto.PrivateKey {
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// FuzzRaftStream: what a permitted peer writes on a Raft stream reaches
// the node's Raft transport exactly as node/cluster.go sets it up
// (NewRaftTransport over a StreamLayer). Arbitrary bytes (garbage,
// truncated or oversized frames) never crash the node and never hold the
// stream: once the peer stops writing, the node closes the stream within
// the deadline. And a request Raft sends through the same layers arrives
// as sent and its answer comes back as given.
func FuzzRaftStream(f *testing.F) {
	hb := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("leader"), Addr: []byte("leader")}
	f.Add(raftFrame(f, wireRequestVote, &raft.RequestVoteRequest{RPCHeader: hb, Term: 2, LastLogIndex: 10, LastLogTerm: 1}), uint64(2), []byte("block"))
	f.Add(raftFrame(f, wireAppendEntries, &raft.AppendEntriesRequest{RPCHeader: hb, Term: 3, PrevLogEntry: 4, PrevLogTerm: 2, LeaderCommitIndex: 4,
		Entries: []*raft.Log{{Index: 5, Term: 3, Type: raft.LogCommand, Data: []byte{0xf8, 0x01, 0x02}}}}), uint64(3), []byte{})
	f.Add(raftFrame(f, wireAppendEntries, &raft.AppendEntriesRequest{RPCHeader: hb, Term: 3}), uint64(0), []byte(nil)) // a heartbeat
	f.Add(raftFrame(f, wireRequestPreVote, &raft.RequestPreVoteRequest{RPCHeader: hb, Term: 4, LastLogIndex: 1}), uint64(1<<63), []byte{0})
	f.Add(raftFrame(f, wireTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: hb}), uint64(1), []byte("x"))
	f.Add(raftFrame(f, wireInstallSnapshot, &raft.InstallSnapshotRequest{RPCHeader: hb, Term: 5, LastLogIndex: 9, Size: 4}), uint64(5), []byte("snap"))
	f.Add(append(raftFrame(f, wireRequestVote, &raft.RequestVoteRequest{RPCHeader: hb, Term: 2}), raftFrame(f, wireRequestVote, &raft.RequestVoteRequest{RPCHeader: hb, Term: 3})...), uint64(9), []byte{})
	f.Add([]byte{wireAppendEntries, 0xdf, 0xff, 0xff, 0xff, 0xff}, uint64(0), []byte{}) // a map of 2^32-1 entries, announced
	f.Add([]byte{wireAppendEntries, 0x81, 0xa7, 'E', 'n', 't', 'r', 'i', 'e', 's', 0xdd, 0x7f, 0xff, 0xff, 0xff}, uint64(0), []byte{})
	f.Add([]byte{0xff}, uint64(0), []byte{})

	const proto = "/tally/raft/fuzz/1"
	a, b := fuzzHosts(f)
	cfg := RaftTransportConfig{MaxPool: 3, Timeout: 5 * time.Second, Logger: hclog.NewNullLogger()}
	tb := NewRaftTransport(b.StreamLayer(proto), cfg)
	f.Cleanup(func() { tb.Close() })
	seen := make(chan any, 1)
	answerAll(f, tb, seen)
	ta := NewRaftTransport(a.StreamLayer(proto), cfg)
	f.Cleanup(func() { ta.Close() })
	target := raft.ServerAddress(b.ID().String())

	f.Fuzz(func(t *testing.T, data []byte, term uint64, entry []byte) {
		// Raw bytes from a permitted peer.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		s, err := a.Libp2p().NewStream(ctx, b.ID(), proto)
		if err != nil {
			t.Fatalf("open stream: %v", err)
		}
		defer s.Reset()
		deadline := time.Now().Add(5 * time.Second)
		s.SetDeadline(deadline)
		if _, err := s.Write(data); err != nil {
			t.Fatalf("write: %v", err)
		}
		if err := s.CloseWrite(); err != nil {
			t.Fatalf("close write: %v", err)
		}
		_, err = io.Copy(io.Discard, s)
		if errors.Is(err, os.ErrDeadlineExceeded) || time.Now().After(deadline) {
			t.Fatalf("%x: the node still holds the stream %v after the peer stopped writing", data, time.Until(deadline)+5*time.Second)
		}

		// A request through Raft's own encoder.
		for len(seen) > 0 {
			<-seen
		}
		req := &raft.AppendEntriesRequest{RPCHeader: hb, Term: term, PrevLogEntry: term / 2, LeaderCommitIndex: term / 3,
			Entries: []*raft.Log{{Index: term/2 + 1, Term: term, Type: raft.LogCommand, Data: entry}}}
		var resp raft.AppendEntriesResponse
		if err := ta.AppendEntries(raft.ServerID(target), target, req, &resp); err != nil {
			t.Fatalf("AppendEntries: %v", err)
		}
		if want := (raft.AppendEntriesResponse{Term: 9, LastLog: 7, Success: true}); !reflect.DeepEqual(resp, want) {
			t.Fatalf("response %+v, answered %+v", resp, want)
		}
		select {
		case got := <-seen:
			g, ok := got.(*raft.AppendEntriesRequest)
			if !ok || g.Term != req.Term || g.PrevLogEntry != req.PrevLogEntry || g.LeaderCommitIndex != req.LeaderCommitIndex ||
				len(g.Entries) != 1 || g.Entries[0].Index != req.Entries[0].Index || !bytes.Equal(g.Entries[0].Data, entry) {
				t.Fatalf("sent %+v, received %+v", req, got)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the request did not arrive")
		}
	})
}

// FuzzParsePeers: the p2p.peers list (one multiaddr per line here) is
// refused naming the bad entry, or parsed to one AddrInfo per distinct
// peer holding every transport address given for it; written back as
// /p2p/ multiaddrs it parses to the same peers and addresses.
func FuzzParsePeers(f *testing.F) {
	var ids []string
	for _, h := range []string{"4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318", "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"} {
		k, err := crypto.HexToPrivateKey(h)
		if err != nil {
			f.Fatal(err)
		}
		id, err := PeerIDFromKey(k)
		if err != nil {
			f.Fatal(err)
		}
		ids = append(ids, id.String())
	}
	id1, id2 := ids[0], ids[1]
	f.Add("/ip4/10.0.0.2/tcp/7000/p2p/" + id1)
	f.Add("/ip4/10.0.0.2/tcp/7000/p2p/" + id1 + "\n/ip4/10.0.0.2/udp/7000/quic-v1/p2p/" + id1 + "\n/dns4/node3.bank.example/tcp/7000/p2p/" + id2)
	f.Add("/ip6/::1/tcp/7000/p2p/" + id2 + "\n/p2p/" + id2)
	f.Add("/ip4/10.0.0.2/tcp/7000")
	f.Add("/ip4/10.0.0.2/tcp/70000/p2p/" + id1)
	f.Add("/p2p/" + id1 + "/p2p-circuit/p2p/" + id2)
	f.Add("not a multiaddr")
	f.Fuzz(func(t *testing.T, list string) {
		entries := strings.Split(list, "\n")
		infos, err := parsePeers(entries)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "p2p: peer address") {
				t.Fatalf("error does not name the entry: %v", err)
			}
			return
		}
		ids := map[peer.ID]bool{}
		for _, ai := range infos {
			if ai.ID.Validate() != nil || ids[ai.ID] {
				t.Fatalf("%q: bad or repeated peer %s in %v", list, ai.ID, infos)
			}
			ids[ai.ID] = true
		}
		for _, e := range entries {
			a, _ := ma.NewMultiaddr(e)
			ai, err := peer.AddrInfoFromP2pAddr(a)
			if err != nil {
				t.Fatalf("%q accepted, alone it is not: %v", e, err)
			}
			i := slices.IndexFunc(infos, func(x peer.AddrInfo) bool { return x.ID == ai.ID })
			if i < 0 {
				t.Fatalf("%q: peer %s missing from %v", list, ai.ID, infos)
			}
			for _, tr := range ai.Addrs {
				if !slices.ContainsFunc(infos[i].Addrs, tr.Equal) {
					t.Fatalf("%q: address %s of %s missing from %v", list, tr, ai.ID, infos[i].Addrs)
				}
			}
		}
		var again []string
		for _, ai := range infos {
			addrs, err := peer.AddrInfoToP2pAddrs(&ai)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range addrs {
				again = append(again, a.String())
			}
		}
		infos2, err := parsePeers(again)
		if err != nil {
			t.Fatalf("%q: written back as %q, refused: %v", list, again, err)
		}
		if len(infos2) != len(infos) {
			t.Fatalf("%q: %d peers, written back %d", list, len(infos), len(infos2))
		}
		for _, ai := range infos { // the order of peers is not kept (a map merges them)
			i := slices.IndexFunc(infos2, func(x peer.AddrInfo) bool { return x.ID == ai.ID })
			if i < 0 || len(infos2[i].Addrs) != len(ai.Addrs) {
				t.Fatalf("%q: %v, written back %v", list, infos, infos2)
			}
		}
	})
}

// FuzzForwardFrame: the forwarding protocol's framing (a uvarint length,
// then RLP) reads back exactly what was written, and every truncation of
// a frame is an error, never a shorter batch.
func FuzzForwardFrame(f *testing.F) {
	f.Add([]byte{0x02, 0xf8, 0x01}, uint8(2))
	f.Add([]byte{}, uint8(0))
	f.Add(bytes.Repeat([]byte{0xab}, 300), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, parts uint8) {
		// Split data into up to parts+1 raw transactions.
		var raws [][]byte
		n := int(parts)%16 + 1
		for i := 0; i < n; i++ {
			lo, hi := len(data)*i/n, len(data)*(i+1)/n
			raws = append(raws, data[lo:hi])
		}
		var buf bytes.Buffer
		if err := writeFrame(&buf, raws); err != nil {
			t.Fatal(err)
		}
		frame := buf.Bytes()
		var got [][]byte
		if err := readFrame(bytes.NewReader(frame), &got); err != nil {
			t.Fatalf("read back: %v", err)
		}
		if len(got) != len(raws) {
			t.Fatalf("wrote %d transactions, read %d", len(raws), len(got))
		}
		for i := range raws {
			if !bytes.Equal(got[i], raws[i]) {
				t.Fatalf("transaction %d: wrote %x, read %x", i, raws[i], got[i])
			}
		}
		for cut := 0; cut < len(frame); cut += 1 + len(frame)/64 {
			var part [][]byte
			if err := readFrame(bytes.NewReader(frame[:cut]), &part); err == nil {
				t.Fatalf("frame cut at %d of %d bytes read as %d transactions", cut, len(frame), len(part))
			}
		}
	})
}
