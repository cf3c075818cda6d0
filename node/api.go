package node

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors/oserror"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	gethrpc "github.com/ethereum/go-ethereum/rpc"
	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/tally-ledger/tally/internal/durable"
	"github.com/tally-ledger/tally/rpc"
)

// NodeInfo is what tally_nodeInfo returns.
type NodeInfo struct {
	// Role is "leader", "follower", "observer" or "halted".
	Role    string         `json:"role"`
	ID      string         `json:"id"`
	Address common.Address `json:"address"`
	// PublicKey is the node key's compressed secp256k1 public key: what
	// governance's proposeAddValidator takes to make this node a validator.
	PublicKey hexutil.Bytes  `json:"publicKey"`
	Leader    string         `json:"leader"`
	Height    hexutil.Uint64 `json:"height"`
	Hash      common.Hash    `json:"hash"`
	StateRoot common.Hash    `json:"stateRoot"`
	Term      hexutil.Uint64 `json:"term"`
	Peers     []string       `json:"peers"`
	Halted    string         `json:"halted,omitempty"`
}

// TallyAPI serves the tally_* namespace.
type TallyAPI struct{ n *Node }

// NodeInfo describes this node: its role, the leader, its applied head and
// its connected peers.
func (api *TallyAPI) NodeInfo() NodeInfo { return api.n.Info() }

// Info returns the node's NodeInfo.
func (n *Node) Info() NodeInfo {
	head, _ := n.db.Head()
	info := NodeInfo{
		Address:   n.key.Address(),
		PublicKey: ethcrypto.CompressPubkey(&n.key.ECDSA().PublicKey),
		Height:    hexutil.Uint64(head.Number),
		Hash:      head.Hash,
		StateRoot: head.StateRoot,
		Peers:     []string{},
	}
	_, leader := n.engine.Raft.LeaderWithID()
	info.Leader = string(leader)
	info.ID = n.localID()
	if term, err := strconv.ParseUint(n.engine.Raft.Stats()["term"], 10, 64); err == nil {
		info.Term = hexutil.Uint64(term)
	}
	if n.host != nil {
		for _, p := range n.host.ConnectedPeers() {
			info.Peers = append(info.Peers, p.String())
		}
	}
	switch {
	case n.engine.Halted() != nil:
		info.Role = "halted"
		info.Halted = n.engine.Halted().Error()
	case n.engine.IsLeader():
		info.Role = "leader"
	case !n.db.IsValidator(n.key.Address()):
		info.Role = "observer"
	default:
		info.Role = "follower"
	}
	return info
}

// PendingStatus is what tally_getPendingStatus returns: what this node's
// pool holds for one sender.
type PendingStatus struct {
	Address common.Address `json:"address"`
	// Nonce is the account's nonce in the applied state.
	Nonce hexutil.Uint64 `json:"nonce"`
	// PendingNonce is the nonce the sender's next transaction should carry.
	PendingNonce hexutil.Uint64 `json:"pendingNonce"`
	// InFlight counts transactions in proposed blocks (leader only).
	InFlight int `json:"inFlight"`
	// Queued are the nonces of the transactions waiting in the pool.
	Queued []hexutil.Uint64 `json:"queued"`
	// MissingNonce is the nonce the queued transactions wait for (null
	// when nothing waits behind a gap); GapSince is when that started
	// (Unix milliseconds), and GapGraceLeft how long new transactions
	// behind it are still admitted (0: they are refused until the
	// missing nonce is sent).
	MissingNonce *hexutil.Uint64 `json:"missingNonce"`
	GapSince     hexutil.Uint64  `json:"gapSince,omitempty"`
	GapGraceLeft string          `json:"gapGraceLeft,omitempty"`
}

// GetPendingStatus shows what the pool holds for addr, and in particular a
// nonce gap: transactions waiting for a nonce that never arrived (a wallet
// re-sends it; docs/rpc.md). Answered from this node's pool: the leader's
// is the one that builds blocks.
func (api *TallyAPI) GetPendingStatus(addr common.Address) (PendingStatus, error) {
	n := api.n
	if err := n.engine.Halted(); err != nil {
		return PendingStatus{}, err
	}
	nonce, err := n.db.Nonce(addr)
	if err != nil {
		return PendingStatus{}, err
	}
	st, err := n.pool.Status(addr)
	if err != nil {
		return PendingStatus{}, err
	}
	out := PendingStatus{Address: addr, Nonce: hexutil.Uint64(nonce), PendingNonce: hexutil.Uint64(st.PendingNonce),
		InFlight: st.InFlight, Queued: make([]hexutil.Uint64, len(st.Queued))}
	for i, q := range st.Queued {
		out.Queued[i] = hexutil.Uint64(q)
	}
	if st.Missing != nil {
		m := hexutil.Uint64(*st.Missing)
		out.MissingNonce = &m
		out.GapSince = hexutil.Uint64(st.GapSince.UnixMilli())
		out.GapGraceLeft = max(0, time.Duration(n.cfg.Mempool.GapGrace)-time.Since(st.GapSince)).Round(time.Millisecond).String()
	}
	return out, nil
}

func (n *Node) localID() string {
	if n.host != nil {
		return n.host.ID().String()
	}
	return n.key.Address().Hex()
}

// AdminAPI serves admin_* on the authenticated admin listener.
type AdminAPI struct{ n *Node }

// adminTimeout bounds a membership change.
const adminTimeout = 30 * time.Second

// AddObserver adds a non-validator node as a Raft non-voter: it replicates
// every block and serves reads, and never votes or proposes. Call it on the
// leader; addr is the observer's libp2p multiaddr ending in /p2p/<id>.
func (api *AdminAPI) AddObserver(addr string) (string, error) {
	n := api.n
	if n.host == nil {
		return "", errors.New("this node runs without p2p: no observers")
	}
	ma, err := multiaddr.NewMultiaddr(addr)
	if err != nil {
		return "", fmt.Errorf("observer address: %w", err)
	}
	info, err := peer.AddrInfoFromP2pAddr(ma)
	if err != nil {
		return "", fmt.Errorf("observer address must end in /p2p/<peer id>: %w", err)
	}
	if err := n.requireLeader(); err != nil {
		return "", err
	}
	for _, v := range mustValidatorPeers(n) {
		if v == info.ID {
			return "", fmt.Errorf("%s is a validator: validators follow the chain, not the admin API", info.ID)
		}
	}
	n.refreshAllowed(info.ID)
	if err := n.host.AddPeer(ma); err != nil {
		return "", err
	}
	id := raft.ServerID(info.ID.String())
	if err := n.engine.Await(n.engine.Raft.AddNonvoter(id, raft.ServerAddress(id), 0, adminTimeout)); err != nil {
		return "", fmt.Errorf("add observer: %w", err)
	}
	n.log.Info("observer added", "peer_id", info.ID)
	return info.ID.String(), nil
}

// RemoveObserver removes an observer from the Raft configuration; its
// connections are closed at the next membership refresh.
func (api *AdminAPI) RemoveObserver(id string) error {
	n := api.n
	pid, err := peer.Decode(id)
	if err != nil {
		return fmt.Errorf("observer id: %w", err)
	}
	if err := n.requireLeader(); err != nil {
		return err
	}
	f := n.engine.Raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) != pid.String() {
			continue
		}
		if s.Suffrage == raft.Voter {
			return fmt.Errorf("%s is a voter: validators follow the chain, not the admin API", id)
		}
		if err := n.engine.Await(n.engine.Raft.RemoveServer(s.ID, 0, adminTimeout)); err != nil {
			return fmt.Errorf("remove observer: %w", err)
		}
		n.log.Info("observer removed", "peer_id", id)
		return nil
	}
	return fmt.Errorf("%s is not an observer of this cluster", id)
}

// IsolatePeer cuts this node off from a peer: the gater refuses it and
// existing connections are closed, until HealPeer. For fencing a
// misbehaving node, and for partition tests.
func (api *AdminAPI) IsolatePeer(id string) error {
	pid, err := api.peerArg(id)
	if err != nil {
		return err
	}
	api.n.host.Isolate(pid)
	api.n.log.Warn("peer isolated by admin", "peer_id", pid)
	return nil
}

// HealPeer undoes IsolatePeer.
func (api *AdminAPI) HealPeer(id string) error {
	pid, err := api.peerArg(id)
	if err != nil {
		return err
	}
	api.n.host.Heal(pid)
	api.n.log.Info("peer healed by admin", "peer_id", pid)
	return nil
}

func (api *AdminAPI) peerArg(id string) (peer.ID, error) {
	if api.n.host == nil {
		return "", errors.New("this node runs without p2p")
	}
	pid, err := peer.Decode(id)
	if err != nil {
		return "", fmt.Errorf("peer id: %w", err)
	}
	return pid, nil
}

// RaftServer is one member of the Raft configuration.
type RaftServer struct {
	ID       string `json:"id"`
	Suffrage string `json:"suffrage"`
}

// RaftStatus is what admin_raftStatus returns.
type RaftStatus struct {
	State   string            `json:"state"`
	Leader  string            `json:"leader"`
	Servers []RaftServer      `json:"servers"`
	Stats   map[string]string `json:"stats"`
}

// RaftStatus returns this node's view of Raft.
func (api *AdminAPI) RaftStatus() (RaftStatus, error) {
	r := api.n.engine.Raft
	_, leader := r.LeaderWithID()
	st := RaftStatus{State: api.n.engine.State().String(), Leader: string(leader), Stats: r.Stats()}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return st, err
	}
	for _, s := range f.Configuration().Servers {
		st.Servers = append(st.Servers, RaftServer{ID: string(s.ID), Suffrage: s.Suffrage.String()})
	}
	return st, nil
}

// Checkpoint is what admin_checkpoint returns.
type Checkpoint struct {
	Dir    string         `json:"dir"`
	Height hexutil.Uint64 `json:"height"`
	Hash   common.Hash    `json:"hash"`
}

// Checkpoint writes a consistent copy of the state database (blocks,
// receipts, state) into dir, which must not exist: an online backup that
// the audit and a new node can use. The head is the one at the start of the
// copy or later.
func (api *AdminAPI) Checkpoint(dir string) (Checkpoint, error) {
	if dir == "" || !filepath.IsAbs(dir) {
		return Checkpoint{}, errors.New("checkpoint dir must be an absolute path")
	}
	if _, err := os.Stat(dir); err == nil {
		return Checkpoint{}, fmt.Errorf("checkpoint dir %s already exists", dir)
	}
	head, _ := api.n.db.Head()
	if err := api.n.db.Checkpoint(dir); err != nil {
		return Checkpoint{}, err
	}
	return Checkpoint{Dir: dir, Height: hexutil.Uint64(head.Number), Hash: head.Hash}, nil
}

func (n *Node) requireLeader() error {
	if n.engine.IsLeader() {
		return nil
	}
	_, leader := n.engine.Raft.LeaderWithID()
	return notLeaderError(string(leader))
}

// notLeaderError is the refusal of an admin call that only the leader
// makes, naming the leader to call, or saying that none is elected.
func notLeaderError(leader string) error {
	if leader == "" {
		return errors.New("not the leader, and no leader is elected now: call again once one is (tally admin raft-status shows it)")
	}
	return fmt.Errorf("not the leader: call the leader (%s)", leader)
}

func mustValidatorPeers(n *Node) []peer.ID {
	ids, _ := n.validatorPeers()
	return ids
}

// adminServer is the admin JSON-RPC listener, behind a bearer token.
type adminServer struct {
	rpc   *gethrpc.Server
	http  *http.Server
	ln    net.Listener
	token []byte
}

func (n *Node) serveAdmin() error {
	if n.cfg.Admin.Port == 0 {
		return nil // admin listener disabled
	}
	tokenPath := n.cfg.Admin.TokenFile
	if !filepath.IsAbs(tokenPath) {
		tokenPath = filepath.Join(n.cfg.DataDir, tokenPath)
	}
	token, err := loadOrCreateToken(vfs.Default, tokenPath)
	if err != nil {
		return fmt.Errorf("key admin.token-file: %w", err)
	}
	srv := gethrpc.NewServer()
	if err := srv.RegisterName("admin", &AdminAPI{n: n}); err != nil {
		return err
	}
	addr := net.JoinHostPort(n.cfg.Admin.Addr, strconv.Itoa(n.cfg.Admin.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return listenError("admin.port", "", addr, err)
	}
	a := &adminServer{rpc: srv, ln: ln, token: token}
	// The admin port has its own connection cap and the JSON-RPC port's
	// read and idle timeouts, so a client trickling requests at it holds
	// neither descriptors nor slots for long. No write timeout: a
	// checkpoint of a large database may take minutes to answer.
	h := n.cfg.HTTP
	a.http = &http.Server{Handler: a, ReadHeaderTimeout: time.Duration(h.ReadHeaderTimeout), ReadTimeout: time.Duration(h.ReadTimeout),
		IdleTimeout: time.Duration(h.IdleTimeout)}
	go a.http.Serve(rpc.NewLimitListener(ln, rpc.ConnLimits{Max: n.cfg.Admin.MaxConnections, MaxKey: "admin.max-connections",
		OnRefused: func(bound string) { n.metrics.rpcRefused.WithLabelValues(bound).Inc() }}))
	n.admin = a
	n.log.Info("admin JSON-RPC listening", "addr", "http://"+ln.Addr().String(), "token_file", tokenPath)
	return nil
}

// ServeHTTP checks the bearer token in constant time.
func (a *adminServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), a.token) != 1 {
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, `{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"unauthorized: admin calls need the bearer token from admin.token-file"}}`, http.StatusUnauthorized)
		return
	}
	a.rpc.ServeHTTP(w, r)
}

func (a *adminServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := a.http.Shutdown(ctx)
	a.rpc.Stop()
	return err
}

// loadOrCreateToken reads the admin token, writing a random one (mode
// 0600) on first start, durably: an empty token file left by a power cut
// would keep the node from starting.
func loadOrCreateToken(fsys vfs.FS, path string) ([]byte, error) {
	b, err := durable.ReadFile(fsys, path)
	if err == nil {
		t := strings.TrimSpace(string(b))
		if len(t) < 16 {
			return nil, fmt.Errorf("%s: token shorter than 16 characters", path)
		}
		return []byte(t), nil
	}
	if !oserror.IsNotExist(err) {
		return nil, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	t := hex.EncodeToString(raw)
	if err := durable.WriteFile(fsys, path, []byte(t+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	return []byte(t), nil
}
