// Package schema holds the JSON shapes of the tally_* JSON-RPC methods,
// shared by the server (package rpc) and the client (package wallet) so the
// two cannot drift. It imports nothing of ours.
package schema

import (
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
)

// Asset describes an asset and its facade.
type Asset struct {
	ID       uint32 `json:"id"`
	Symbol   string `json:"symbol"`
	Name     string `json:"name"`
	Decimals uint8  `json:"decimals"`
	// MinorUnits are the currency's decimal places (ISO 4217, at most
	// Decimals): the smallest amount a bank pays out, and the fraction
	// amounts are shown with ("12.50 HKD").
	MinorUnits uint8            `json:"minorUnits"`
	Address    common.Address   `json:"address"`
	Banks      []common.Address `json:"banks"`
	Native     bool             `json:"native"`
}

// Account is what tally_getAccount returns. Amounts are hex quantities
// of base units, keyed by asset symbol.
type Account struct {
	Address  common.Address          `json:"address"`
	Nonce    hexutil.Uint64          `json:"nonce"`
	Balances map[string]*hexutil.Big `json:"balances"`
	Tier     uint8                   `json:"tier"`
	TierName string                  `json:"tierName"`
	Frozen   bool                    `json:"frozen"`
	// RemainingDaily is what the account may still send today (UTC day of
	// the head block's time) per asset; null for an unlimited asset.
	RemainingDaily map[string]*hexutil.Big `json:"remainingDaily"`
}

// Supply is what tally_getSupply returns (base units).
type Supply struct {
	Symbol      string         `json:"symbol"`
	Address     common.Address `json:"address"`
	Decimals    uint8          `json:"decimals"`
	Minted      *hexutil.Big   `json:"minted"`
	Burned      *hexutil.Big   `json:"burned"`
	Escrow      *hexutil.Big   `json:"escrow"`
	Circulating *hexutil.Big   `json:"circulating"`
	// TotalSupply is minted − burned = circulating + escrow (DESIGN.md decision 9).
	TotalSupply *hexutil.Big `json:"totalSupply"`
}

// HistoryPage is one page of tally_getAccountHistory, newest first.
type HistoryPage struct {
	Items []HistoryItem `json:"items"`
	// NextCursor continues with older entries; null on the last page.
	NextCursor *hexutil.Bytes `json:"nextCursor"`
}

// HistoryItem is one transaction in an account's history.
type HistoryItem struct {
	BlockNumber hexutil.Uint64 `json:"blockNumber"`
	TxIndex     hexutil.Uint   `json:"transactionIndex"`
	TxHash      common.Hash    `json:"transactionHash"`
	TimestampMs uint64         `json:"timestampMs"`
	// From is the transaction's sender; To its target (an account or a system contract).
	From common.Address `json:"from"`
	To   common.Address `json:"to"`
	// Operation is "transfer" for a plain value transfer, else the system operation's name.
	Operation string         `json:"operation"`
	Status    hexutil.Uint64 `json:"status"`
	// Direction is "sent", "received" or "self" from the account's side.
	Direction string `json:"direction"`
	// Transfers are the money movements the transaction made (none if it failed).
	Transfers []Transfer `json:"transfers"`
	// Reference is the payment, bank or payout reference the operation carried.
	Reference *common.Hash `json:"reference,omitempty"`
	// WithdrawalID is set for withdrawal operations.
	WithdrawalID *hexutil.Big `json:"withdrawalId,omitempty"`
}

// Transfer is one movement of an asset.
type Transfer struct {
	Asset  string         `json:"asset"`
	From   common.Address `json:"from"`
	To     common.Address `json:"to"`
	Amount *hexutil.Big   `json:"amount"`
}

// Certificate is what tally_getCertificate returns: the commit certificate
// of block Height (DESIGN.md decision 10), as carried by block Block.
// Signatures are 65-byte secp256k1 signatures over the vote hash, in the
// order of Signers (strictly increasing address); Validators and Quorum
// are the size of the validator set in force at Height and the signatures
// it needs. Next is the hash of the validator set in force at Height+1.
type Certificate struct {
	Height     hexutil.Uint64  `json:"height"`
	Hash       common.Hash     `json:"hash"`
	Next       common.Hash     `json:"next"`
	Signatures []hexutil.Bytes `json:"signatures"`
	// Signers are EIP-55 checksummed addresses.
	Signers    []string       `json:"signers"`
	Validators int            `json:"validators"`
	Quorum     int            `json:"quorum"`
	Block      hexutil.Uint64 `json:"block"`
}
