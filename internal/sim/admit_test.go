package sim

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAckedHeldCountsHoldersAtConfirmation is acked-held's rule
// (ackedHeld) on the cases it tells apart: a validator that held the
// transaction when the leader's answer confirming it was produced counts
// if it still holds it or was lost since (seed 651 of the membership
// weights: n1 confirmed to the leader n0, n0's answer to n3 was delayed,
// n1 lost its data directory, n3 acknowledged), never if the answer was
// produced while one validator held it, nor if it is up as the same
// instance and let the transaction go.
func TestAckedHeldCountsHoldersAtConfirmation(t *testing.T) {
	at := time.Unix(1, 0)
	type node struct {
		epoch int
		up    bool
	}
	// n0 leads and holds the transaction throughout; n3 forwarded it.
	cases := []struct {
		name  string
		now   []holderAt
		confs []confirmation
		nodes map[int]node
		lost  []int
		fails bool
	}{
		{name: "seed 651: n1 held it at the answer and lost its directory since (down)",
			now:   []holderAt{{0, 1}},
			confs: []confirmation{{at: at, holders: []holderAt{{0, 1}, {1, 1}}}},
			nodes: map[int]node{1: {1, false}},
			lost:  []int{1}},
		{name: "n1 held it at the answer and came back since as a fresh instance without it",
			now:   []holderAt{{0, 1}},
			confs: []confirmation{{at: at, holders: []holderAt{{0, 1}, {1, 1}}}},
			nodes: map[int]node{1: {2, true}},
			lost:  []int{1}},
		{name: "only n0 held it at the answer, n1 lost since",
			now:   []holderAt{{0, 1}},
			confs: []confirmation{{at: at, holders: []holderAt{{0, 1}}}},
			nodes: map[int]node{1: {1, false}},
			fails: true},
		{name: "n1 held it at the answer and, still the same instance, holds it no more",
			now:   []holderAt{{0, 1}},
			confs: []confirmation{{at: at, holders: []holderAt{{0, 1}, {1, 1}}}},
			nodes: map[int]node{1: {1, true}},
			fails: true},
		{name: "no answer confirmed it (the node's own answer): one holder now",
			now:   []holderAt{{0, 1}},
			nodes: map[int]node{1: {1, false}},
			fails: true},
		{name: "two answers, the first produced while one held it, the second while two did",
			now:   []holderAt{{0, 1}},
			confs: []confirmation{{at: at, holders: []holderAt{{0, 1}}}, {at: at.Add(time.Millisecond), holders: []holderAt{{0, 1}, {1, 1}}}},
			nodes: map[int]node{1: {1, false}},
			lost:  []int{1}},
		{name: "two hold it now",
			now:   []holderAt{{0, 1}, {2, 3}},
			nodes: map[int]node{},
		},
		{name: "applied when the answer was produced",
			now:   []holderAt{{0, 1}},
			confs: []confirmation{{at: at, applied: true}},
			nodes: map[int]node{},
		},
		{name: "seed 69: the leader n1 held it alone at its answer to the forwarder n3, which holds it now; n1 lost since",
			now:   []holderAt{{3, 1}},
			confs: []confirmation{{at: at, holders: []holderAt{{1, 1}}}},
			nodes: map[int]node{1: {1, false}},
			lost:  []int{1}},
		{name: "the leader n1 held it alone at its answer to the forwarder n3, which holds it now; n1, the same instance, holds it no more",
			now:   []holderAt{{3, 1}},
			confs: []confirmation{{at: at, holders: []holderAt{{1, 1}}}},
			nodes: map[int]node{1: {1, true}},
			fails: true},
		{name: "n0 and n1 held it at the answer and are lost since, the acknowledging forwarder holds it",
			now:   []holderAt{{3, 1}},
			confs: []confirmation{{at: at, holders: []holderAt{{0, 1}, {1, 1}}}},
			nodes: map[int]node{0: {1, false}, 1: {2, true}},
			lost:  []int{0, 1}},
		{name: "nobody holds it now, n0 and n1 held it at the answer, n0 still up as the same instance",
			confs: []confirmation{{at: at, holders: []holderAt{{0, 1}, {1, 1}}}},
			nodes: map[int]node{0: {1, true}, 1: {1, false}},
			fails: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			instance := func(i int) (int, bool) {
				if n, ok := c.nodes[i]; ok {
					return n.epoch, n.up
				}
				return 1, true
			}
			lost, err := ackedHeld(3, c.now, c.confs, instance)
			if c.fails {
				if err == nil || !strings.HasPrefix(err.Error(), "held only by validators") {
					t.Fatalf("passed (lost %v), want the failure", lost)
				}
				return
			}
			if err != nil {
				t.Fatalf("failed: %v", err)
			}
			if !slices.Equal(lost, c.lost) {
				t.Errorf("counted as lost since %v, want %v", lost, c.lost)
			}
		})
	}
}
