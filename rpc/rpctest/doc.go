// Package rpctest serves a state database over the real JSON-RPC server
// without a node, for tests of the tools that read a chain (the audit, the
// proof commands): every read works, submissions are refused.
package rpctest
