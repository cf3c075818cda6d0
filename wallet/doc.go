// Package wallet is the client side of Tally: what a wallet app does, in Go.
// The tally CLI is built on it, and so are the bank bridge and the
// benchmark; mobile and web wallets follow the same flow in their own
// languages.
//
// It owns three things:
//
//   - Keystore: a directory of Web3 Secret Storage (keystore v3) files, one
//     per account, named as go-ethereum names them, so keys move freely
//     between Tally, geth and MetaMask. Keys are encrypted with scrypt at
//     go-ethereum's standard cost unless an option asks for the light
//     parameters (tests and devnets only).
//   - Client: a typed JSON-RPC client over go-ethereum's ethclient, because
//     the node speaks the Ethereum JSON-RPC subset wallets need; plus the raw
//     rpc.Client for batches. DialEndpoints gives it several nodes of a
//     cluster: it fails over on unavailability only (Unavailable: transport
//     errors, stalls, 5xx, "node halted", "no leader"), never on a
//     deterministic answer, and re-sends a transaction whose answer was lost
//     with the same bytes, so one intent is one transaction.
//   - Amounts: parsing and formatting decimal amounts exactly, as integers of
//     base units, never through floating point.
//
// Operations: AssetOp, ComplianceOp, GovernanceOp and ExchangeOp encode any
// system operation against the published ABIs; bankops.go has typed
// builders and views of the bank edge (ClaimWithdrawalOp, SettleWithdrawalOp,
// RefundWithdrawalOp, ReturnWithdrawalOp, ReverseMintOp,
// ProposeSetIssuanceCapOp; Client.Withdrawal with its claim, MintRecord,
// BankIssuance, MinorUnits) for bank bridges.
//
// Payment requests (request.go): NewPaymentRequest and
// Client.PaymentRequest make an order's request, the EIP-681 URI of an
// asset's transferWithReference with its QR code (PaymentRequest.QRCode)
// and expiry; ParsePaymentURI reads such a URI; ParseReference is the
// one rule for a text or hex bytes32 reference (docs/merchants.md).
//
// The flow of a transfer: keys are created from a BIP39 mnemonic (package
// crypto) and stored encrypted with Keystore.Import; to send, Unlock the key,
// ask the node for the chain id and the account's pending nonce, build the
// transaction (SignTransfer), sign it locally with chain.SignTx and submit
// the signed bytes (SendSigned, or SendRawBatch for load tools). The key never
// leaves the process. A receipt is final: Tally has no forks, so WaitReceipt
// returning means the transfer is settled. Tally has no fees: transactions
// carry gas price 0 and gas 21000, which the node ignores.
package wallet
