package node

import (
	"strings"
)

// StartupAttrs are what the startup log line tells an operator, as slog
// key-value pairs: the version, the chain, this node's role and identity,
// and every address it serves, so one line answers "what is running where".
func (n *Node) StartupAttrs() []any {
	role := "observer"
	if n.db.IsValidator(n.key.Address()) {
		role = "validator"
	}
	if n.cfg.Dev {
		role += " (dev)"
	}
	p2p := "off"
	if n.host != nil {
		addrs := n.host.Addrs()
		s := make([]string, len(addrs))
		for i, a := range addrs {
			s[i] = a.String()
		}
		p2p = strings.Join(s, ",")
	}
	admin := "off"
	if n.admin != nil {
		admin = "http://" + n.admin.ln.Addr().String()
	}
	return []any{"version", Version, "chain_id", n.genesis.ChainID, "role", role, "address", n.Address(),
		"rpc", "http://" + n.HTTPAddr(), "p2p", p2p, "admin", admin, "datadir", n.cfg.DataDir}
}
