package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/node"
)

func (c *cli) testnet(args []string) error {
	cmd := newCommand("testnet", "", `
Writes an N-node local cluster on 127.0.0.1: DIR/genesis.json (the dev
accounts funded as in the dev genesis, the N nodes as validators), and for
node I DIR/nodeI/config.toml with its key in DIR/nodeI/data/nodekey. Node I
serves JSON-RPC on BASE+I, libp2p on BASE+100+I and the admin API on
BASE+200+I. Start node I with: tallyd --config DIR/nodeI/config.toml`)
	nodes := cmd.fs.Int("nodes", 3, "number of nodes (validators)")
	dir := cmd.fs.String("dir", "", "output `DIR` (must not hold a testnet already)")
	base := cmd.fs.Int("base-port", node.DefaultTestnetBasePort, "first JSON-RPC `PORT` (the default leaves 8545 to a dev node)")
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	if *dir == "" {
		return usageErrorf("testnet: --dir is required")
	}
	out, err := node.WriteTestnet(*dir, *nodes, *base)
	if err != nil {
		return usageErrorf("testnet: %v", err)
	}
	for i, nd := range out {
		fmt.Fprintf(c.stdout, "node%d  rpc %s  admin %s  p2p %s\n       tallyd --config %s\n", i, nd.RPC, nd.Admin, nd.P2P, nd.Config)
	}
	return nil
}

func (c *cli) admin(args []string) error {
	if len(args) == 0 {
		return usageErrorf("admin: missing subcommand (checkpoint, raft-status, add-observer, remove-observer, isolate-peer, heal-peer)")
	}
	sub, rest := args[0], args[1:]
	var synopsis, help, method string
	out := ""
	switch sub {
	case "checkpoint":
		synopsis, help, method = "--out DIR", `
Writes a consistent copy of the node's state database (state, blocks,
receipts) into DIR on the node's machine, online: a backup that the audit
and a new node can use. DIR must not exist.`, "admin_checkpoint"
	case "raft-status":
		synopsis, help, method = "", "Prints the node's view of Raft: state, leader, members, statistics.", "admin_raftStatus"
	case "add-observer":
		synopsis, help, method = "MULTIADDR", `
Adds a non-validator node as an observer (a Raft non-voter that replicates
and serves reads). Call the leader. MULTIADDR ends in /p2p/<peer id>.`, "admin_addObserver"
	case "remove-observer":
		synopsis, help, method = "PEER_ID", "Removes an observer. Call the leader.", "admin_removeObserver"
	case "isolate-peer":
		synopsis, help, method = "PEER_ID", "Cuts the node off from a peer (fencing): refused and disconnected until heal-peer.", "admin_isolatePeer"
	case "heal-peer":
		synopsis, help, method = "PEER_ID", "Undoes isolate-peer.", "admin_healPeer"
	default:
		return usageErrorf("admin: unknown subcommand %q (checkpoint, raft-status, add-observer, remove-observer, isolate-peer, heal-peer)", sub)
	}
	cmd := newCommand("admin "+sub, synopsis, help+`

Authenticates with the bearer token in the node's admin.token-file.`)
	adminURL := cmd.fs.String("admin", fmt.Sprintf("http://127.0.0.1:%d", node.DefaultTestnetAdminPort), "the node's admin JSON-RPC `URL` (default: node 0 of `tally testnet`)")
	tokenFile := cmd.fs.String("token-file", "", "`FILE` holding the admin bearer token (required)")
	// No --rpc: the admin API has its own port (--admin), and an --rpc
	// accepted here would be ignored.
	timeout := cmd.fs.Duration("timeout", defaultTimeout, "give up after this long")
	if sub == "checkpoint" {
		cmd.fs.StringVar(&out, "out", "", "checkpoint `DIR` (absolute, on the node's machine)")
	}
	pos, err := c.parse(cmd, rest)
	if err != nil {
		return err
	}
	var callArgs []any
	switch sub {
	case "checkpoint":
		if err := wantArgs(cmd, pos); err != nil {
			return err
		}
		if out == "" {
			return usageErrorf("admin checkpoint: --out is required")
		}
		callArgs = []any{out}
	case "raft-status":
		if err := wantArgs(cmd, pos); err != nil {
			return err
		}
	case "add-observer":
		if err := wantArgs(cmd, pos, "MULTIADDR"); err != nil {
			return err
		}
		callArgs = []any{pos[0]}
	case "remove-observer", "isolate-peer", "heal-peer":
		if err := wantArgs(cmd, pos, "PEER_ID"); err != nil {
			return err
		}
		callArgs = []any{pos[0]}
	}
	if *tokenFile == "" {
		return usageErrorf("admin %s: --token-file is required", sub)
	}
	tok, err := c.readSecret("admin: --token-file", *tokenFile)
	if err != nil {
		return err
	}
	ctx, cancel, err := withTimeout(*timeout)
	if err != nil {
		return err
	}
	defer cancel()
	client, err := gethrpc.DialOptions(ctx, withScheme(*adminURL), gethrpc.WithHeaders(http.Header{"Authorization": {"Bearer " + strings.TrimSpace(string(tok))}}))
	if err != nil {
		return fmt.Errorf("admin: dial %s: %w", *adminURL, err)
	}
	defer client.Close()
	var result json.RawMessage
	if err := client.CallContext(ctx, &result, method, callArgs...); err != nil {
		return fmt.Errorf("admin %s: %w", sub, err)
	}
	return printJSON(c, result)
}

func printJSON(c *cli, raw json.RawMessage) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
