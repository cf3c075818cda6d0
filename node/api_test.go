package node

import (
	"strings"
	"testing"
)

// An admin call only the leader makes, sent to another node, names the
// leader to call, or says that none is elected (it said "call the leader
// ()" then).
func TestNotLeaderError(t *testing.T) {
	for _, c := range []struct{ leader, want string }{
		{"12D3KooWleader", "not the leader: call the leader (12D3KooWleader)"},
		{"", "not the leader, and no leader is elected now: call again once one is (tally admin raft-status shows it)"},
	} {
		if got := notLeaderError(c.leader).Error(); got != c.want {
			t.Errorf("leader %q: %q, want %q", c.leader, got, c.want)
		}
		if strings.Contains(notLeaderError(c.leader).Error(), "()") {
			t.Errorf("leader %q: an empty leader in the message", c.leader)
		}
	}
}
