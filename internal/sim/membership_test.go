package sim

import (
	"testing"

	"github.com/hashicorp/raft"
)

// TestQuorumIn: the liveness check expects progress from a connected
// group only when it holds a majority of the validators in force and of
// the Raft voters each of its voting members knows, whichever way the
// chain's set and Raft's configuration differ while a change is under way.
func TestQuorumIn(t *testing.T) {
	v012 := []int{0, 1, 2}
	v0123 := []int{0, 1, 2, 3}
	for _, tc := range []struct {
		name   string
		q, set []int
		voters [][]int // node i's latest configuration's voters
		want   bool
	}{
		{"steady majority", []int{0, 1}, v012, [][]int{v012, v012, v012}, true},
		{"steady minority", []int{0}, v012, [][]int{v012, v012, v012}, false},
		// Addition in force, the new validator still a non-voter: two of
		// the old voters and it are a majority of both.
		{"addition in force, not promoted", []int{0, 1, 3}, v0123, [][]int{v012, v012, v012, v012}, true},
		// Two of four validators are not a majority of the set, though
		// they are of the voters.
		{"half the set", []int{0, 1}, v0123, [][]int{v012, v012, v012, v012}, false},
		// Removal held: 3 left Raft before its removal applies; 0 and 1
		// are a majority of the voters, and with 3 of the set.
		{"removal held", []int{0, 1, 3}, v0123, [][]int{v012, v012, v012, v0123}, true},
		// A group whose only voter knows a configuration it has no
		// majority of cannot elect.
		{"stale voter", []int{1, 3}, []int{1, 2, 3}, [][]int{nil, v0123, nil, {3}}, false},
		// No member is a voter (a new validator not yet added and one
		// that has no configuration): nobody campaigns.
		{"no voter", []int{3, 4}, []int{2, 3, 4}, [][]int{v012, v012, v012, nil, nil}, false},
		{"empty set", []int{0, 1, 2}, nil, [][]int{v012, v012, v012}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := quorumIn(tc.q, tc.set, tc.voters); got != tc.want {
				t.Fatalf("quorumIn(%v, set %v, voters %v) = %v; want %v", tc.q, tc.set, tc.voters, got, tc.want)
			}
		})
	}
}

// TestSimMembers: the simulator's MemberNet names node i n<i> with
// validator key i, sees a member only while it is up and no partition
// cuts the link, and reads its height only then.
func TestSimMembers(t *testing.T) {
	ids, err := newSimIDs(3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		id, err := ids.ServerID(ids.pubs[i])
		if err != nil || id != raft.ServerID(addr(i)) {
			t.Fatalf("ServerID(key %d) = %q, %v; want %s", i, id, err, addr(i))
		}
		a, err := ids.Address(id)
		if err != nil || a != ids.addrs[i] {
			t.Fatalf("Address(%s) = %s, %v; want %s", id, a, err, ids.addrs[i])
		}
	}
	if _, err := ids.ServerID([]byte{2, 1}); err == nil {
		t.Fatal("a key of no node has a server ID")
	}
	for _, bad := range []raft.ServerID{"n3", "x", ""} {
		if _, err := ids.Address(bad); err == nil {
			t.Fatalf("Address(%q) answered", bad)
		}
	}
	net := newNetwork(3)
	defer net.shutdown()
	m := simMembers{simIDs: ids, net: net, self: 0}
	if m.Connected("n1") {
		t.Fatal("a node that never started is connected")
	}
	net.attach(1, 1)
	net.heights[1].Store(7)
	if h, ok := m.Height("n1"); !m.Connected("n1") || !ok || h != 7 {
		t.Fatalf("up node: connected %v, height %d %v; want connected at 7", m.Connected("n1"), h, ok)
	}
	net.setCut([]int{0}, []int{1}, true)
	if _, ok := m.Height("n1"); m.Connected("n1") || ok {
		t.Fatal("a partitioned node is connected")
	}
	net.healAll()
	net.detach(1)
	if _, ok := m.Height("n1"); m.Connected("n1") || ok {
		t.Fatal("a crashed node is connected")
	}
}
