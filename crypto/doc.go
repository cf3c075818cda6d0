// Package crypto owns Tally's key material and everything derived from it:
// secp256k1 private keys, 65-byte recoverable signatures, Ethereum addresses
// (EIP-55), BIP39 mnemonics, BIP32/BIP44 HD derivation and Web3 Secret
// Storage (keystore v3) files.
//
// It sits at the bottom of the import graph and imports nothing of Tally's:
// only the standard library, decred's secp256k1, go-ethereum, go-bip39 and
// btcutil's hdkeychain. Every other package may depend on it; it depends on
// none of them.
//
// # Signing and recovery
//
// Signing uses decred's secp256k1 (github.com/decred/dcrd/dcrec/secp256k1/v4):
// it is pure Go, constant time, produces deterministic RFC 6979 nonces and
// always emits the canonical low-S form, so the same key and hash always give
// the same signature on every platform. Recovery uses go-ethereum's crypto
// package, which under cgo links bitcoin-core's libsecp256k1: recovery runs on
// every transaction a node sees, so it is the hot path, and using the same code
// as Ethereum clients guarantees Tally accepts exactly the signatures they
// accept. (Built without cgo, go-ethereum falls back to pure Go with the same
// results.)
//
// Signatures are 65 bytes, R || S || V, with V in {0, 1} (not 27/28).
//
// # The low-S rule
//
// For any valid ECDSA signature (R, S), (R, n-S) is also valid, so a third
// party could change a signature's bytes (and so a transaction's hash) without
// the key. Like Ethereum since Homestead (EIP-2), Tally accepts only S <= n/2:
// Sign always produces it and Recover rejects anything else with ErrHighS.
package crypto
