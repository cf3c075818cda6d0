// Package chain defines the data of a Tally chain: transactions, block headers
// and blocks, receipts, the Merkle roots that commit to them and the history
// root that commits to every earlier block.
//
// The types are go-ethereum's where a client computes something itself:
// transactions are core/types typed transactions and the header is a
// core/types.Header, so header.Hash() is the hash ethclient recomputes and a
// signed transaction is what ethers.js signs. Tally adds rules on top:
//
//   - only protected legacy (EIP-155), EIP-2930 and EIP-1559 transactions, with
//     the chain's id and a low-S signature, within MaxTxSize and the
//     access-list limits, are accepted (CheckTx, CheckTxLimits);
//   - a block is within MaxBlockSize and the certificate limits
//     (CheckBlockLimits) and its header has Tally's fixed shape
//     (CheckHeaderShape); TxEncodedSize, MaxHeaderSize and TxBudget let the
//     builder fill a block by bytes within MaxBlockSize;
//   - Header.Extra holds the block time in milliseconds and the proposer's
//     signature over SealHash, which is domain-tagged with the chain id;
//   - Header.MixDigest holds the history root: the RFC 6962 Merkle root (a
//     Merkle Mountain Range with bagged peaks) over the hashes of all earlier
//     blocks;
//   - the transaction and receipt roots are RFC 6962 binary Merkle roots with
//     keccak256, so a single transaction has an O(log n) inclusion proof. An
//     empty list has root types.EmptyRootHash, as in Ethereum, because clients
//     check that an empty body goes with that root.
//
// System contracts (system.go) live at fixed addresses with published ABIs
// (abi/*.json); MulticallAddress is Multicall3's canonical address, which
// only eth_call serves (it is not a system address, and admission refuses
// transactions to it).
//
// The package imports only crypto and go-ethereum's data packages; every other
// package of Tally imports it.
package chain
