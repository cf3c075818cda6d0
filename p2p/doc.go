// Package p2p owns Tally's network layer: a go-libp2p host whose identity is
// the node's secp256k1 key, that talks only to consortium peers, and that
// carries hashicorp/raft's RPCs over libp2p streams.
//
// It owns, and nothing else in Tally does:
//
//   - the mapping from node keys (and the 33-byte compressed validator keys in
//     the genesis file) to libp2p peer IDs (PeerIDFromKey, PeerIDFromPublicKey);
//   - the libp2p host: TCP and QUIC transports, Noise and TLS security, yamux,
//     a fixed-limit resource manager and a connection manager. Relay, NAT port
//     mapping, hole punching, mDNS, AutoNAT services and metrics are off: a
//     consortium node never talks to anyone it was not told about;
//   - the allow list (decision 8 of DESIGN.md): a connection gater that refuses
//     every peer not on it, or isolated by an operator or test, both before
//     dialling (InterceptPeerDial) and right after the security handshake on
//     either side (InterceptSecured), so no protocol ever runs with a stranger;
//   - the background dialer that keeps a connection to every configured
//     consortium peer, with capped exponential backoff; its failed dials
//     are logged once per doubling interval (internal/logrepeat) with the
//     attempt count and the next retry's delay, not once per attempt;
//   - StreamLayer, a raft.StreamLayer over libp2p streams. Raft's ServerID and
//     ServerAddress are both the peer ID string, so Raft membership and the
//     network identity are the same thing and no IP address is ever trusted;
//   - RaftTransport, Raft's NetworkTransport over a StreamLayer that retries
//     an RPC failing on a dead pooled stream (a peer that restarted), so a
//     candidate never loses a vote to a stale connection;
//   - transaction forwarding (ForwardProtocol): Forwarder sends a follower's
//     transactions to the leader in batches and moves a batch in flight to a
//     new leader as soon as the leader changes; Replicator copies the
//     leader's own admissions to another validator before they are
//     acknowledged, so an acknowledged transaction survives the leader.
//     Both reach other nodes through a BatchTransport (one batch out, a
//     verdict per transaction back): HostTransport over libp2p streams in a
//     node, the cluster simulator's network in internal/sim; the receiving
//     end is a BatchHandler either way (ServeBatches in a node, whose
//     handler's Admit decodes each transaction once for both its
//     sender's recovery and its admission).
//   - the height protocol (ServeHeight, QueryHeight: a member's applied
//     height, for the leader's pacing and promotions, and whether it
//     grants votes, for the quorum a configuration change counts) and the member protocol
//     (ServeMember, QueryMember): a node about to start Raft on an empty
//     data directory asks each peer its height, whether it saw the
//     asker's Raft running and has it as a voter (the asker being the
//     stream's authenticated peer), whether its own Raft ran, and its
//     voters with their addresses (AllowAsked lets the asker reach
//     them), so that a node whose directory was lost with its nodekey
//     restored does not bootstrap or join again; /tally/member/2.0.0,
//     and 1.0.0 (no voters) with nodes of the previous release.
//
// Flow: the node builds a Config from its key, listen addresses, peers and the
// validator/observer set, calls New, registers its own protocols (transaction
// forwarding, commit signatures) on Libp2p(), and builds Raft's transport
// with NewRaftTransport(StreamLayer(proto), ...). When the on-chain validator set or the observer
// list changes, the node calls SetAllowed; peers dropped from the list are
// disconnected at once. Isolate and Heal let operators and partition tests cut
// a peer off without changing the allow list.
//
// Everything a remote peer can make grow is bounded: connections by the
// resource manager and connection manager, inbound Raft streams per peer by
// Config.MaxStreamsPerPeer, and streams waiting for Raft to accept them by
// AcceptBacklog. p2p imports only crypto from Tally; it never imports node,
// rpc or consensus.
package p2p
