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
	// Suspension is the account's active automatic suspension (a
	// velocity rule fired); null when none.
	Suspension *Suspension `json:"suspension"`
	// WatchList is its entry on the compliance watch list; null when it
	// is not listed.
	WatchList *WatchEntry `json:"watchList"`
	// Velocity are the counters of every velocity rule of its tier, in
	// the rules' order (empty when none applies).
	Velocity []VelocityCounter `json:"velocity"`
}

// Suspension is an active automatic suspension: Reason is
// "risk:<rule>:<numbers>"; times are block times in Unix ms.
type Suspension struct {
	Rule    string         `json:"rule"`
	Reason  string         `json:"reason"`
	SinceMs hexutil.Uint64 `json:"sinceMs"`
	UntilMs hexutil.Uint64 `json:"untilMs"`
	Height  hexutil.Uint64 `json:"height"`
}

// WatchEntry is an address's entry on the watch list: why, and the block
// that listed it.
type WatchEntry struct {
	Reason string         `json:"reason"`
	Height hexutil.Uint64 `json:"height"`
}

// VelocityCounter is what an account sent in one velocity rule's rolling
// window (at the head's time) and the rule's caps, base units; a cap not
// set is null.
type VelocityCounter struct {
	Rule         string          `json:"rule"`
	Asset        string          `json:"asset"`
	Window       string          `json:"window"`
	Transfers    hexutil.Uint64  `json:"transfers"`
	MaxTransfers *hexutil.Uint64 `json:"maxTransfers"`
	Amount       *hexutil.Big    `json:"amount"`
	MaxAmount    *hexutil.Big    `json:"maxAmount"`
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
	// Banks is each issuing bank's own count (DESIGN.md decision 11), in
	// the order of the genesis' list.
	Banks []BankIssuance `json:"banks"`
}

// BankIssuance is what one issuing bank has minted and burned of an asset
// and what it has outstanding (minted − burned), against its cap.
type BankIssuance struct {
	Bank        common.Address `json:"bank"`
	Minted      *hexutil.Big   `json:"minted"`
	Burned      *hexutil.Big   `json:"burned"`
	Outstanding *hexutil.Big   `json:"outstanding"`
	// Cap is the governance cap on Outstanding; null when uncapped.
	Cap *hexutil.Big `json:"cap"`
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

// Amount is an amount of an asset: Value in base units, Units the same
// amount in the currency's units (with at least its minor units:
// "12.50"), Text with the symbol ("12.50 HKD").
type Amount struct {
	Asset    string       `json:"asset"`
	Decimals uint8        `json:"decimals"`
	Value    *hexutil.Big `json:"value"`
	Units    string       `json:"units"`
	Text     string       `json:"text"`
}

// Reference is a bytes32 reference (an order, bank or payout reference) as
// carried on chain, and as text when it is printable UTF-8 padded with
// zero bytes (how the wallet and the CLI encode a text reference); Text
// is null for any other.
type Reference struct {
	Hex  common.Hash `json:"hex"`
	Text *string     `json:"text"`
}

// DecodedArg is one decoded argument of an operation or an event, as
// package txdecode renders it: Value stable for scripts (integers as
// decimal strings of base units, addresses EIP-55, bytes 0x hex, arrays
// as arrays), Text for people ("12.50 HKD", a reference's text), Asset the
// symbol an amount counts.
type DecodedArg struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value any    `json:"value"`
	Text  string `json:"text"`
	Asset string `json:"asset,omitempty"`
}

// DecodedEvent is a log decoded with the ABI of the system contract that
// emitted it; Name is empty, and Topics and Data are the raw log, when no
// event of the contract matches.
type DecodedEvent struct {
	Address  common.Address `json:"address"`
	Contract string         `json:"contract"`
	Asset    string         `json:"asset,omitempty"`
	Name     string         `json:"name"`
	Args     []DecodedArg   `json:"args"`
	Topics   []common.Hash  `json:"topics,omitempty"`
	Data     hexutil.Bytes  `json:"data,omitempty"`
}

// DecodedTx is what tally_decodeTransaction returns: a transaction as
// people read it. Block fields and Status are null while it is pending.
type DecodedTx struct {
	Hash        common.Hash     `json:"hash"`
	BlockNumber *hexutil.Uint64 `json:"blockNumber"`
	BlockHash   *common.Hash    `json:"blockHash"`
	TxIndex     *hexutil.Uint   `json:"transactionIndex"`
	TimestampMs uint64          `json:"timestampMs,omitempty"`
	From        common.Address  `json:"from"`
	To          common.Address  `json:"to"`
	Nonce       hexutil.Uint64  `json:"nonce"`
	Status      *hexutil.Uint64 `json:"status"`
	// Contract is "account" for a native transfer, else the system
	// contract called ("asset", "compliance", "governance", "exchange").
	Contract string `json:"contract"`
	// Operation is "transfer" for a native transfer, else the system
	// operation's name; "" for calldata no operation matches (Data).
	Operation string `json:"operation"`
	// Asset is the symbol of the asset a facade call or a native
	// transfer moves.
	Asset string `json:"asset,omitempty"`
	// Amount, Payer, Payee and Reference are the operation's money
	// movement as its arguments state it (what actually moved is
	// Transfers: nothing when it failed).
	Amount    *Amount         `json:"amount,omitempty"`
	Payer     *common.Address `json:"payer,omitempty"`
	Payee     *common.Address `json:"payee,omitempty"`
	Reference *Reference      `json:"reference,omitempty"`
	// Args are the operation's decoded arguments; Data the calldata when
	// it does not decode.
	Args []DecodedArg  `json:"args"`
	Data hexutil.Bytes `json:"data,omitempty"`
	// Transfers are the movements the transaction made: its receipt's
	// Transfer logs, or a native transfer's value when it succeeded; none
	// while pending or when it failed.
	Transfers []DecodedTransfer `json:"transfers"`
	// Events are the receipt's logs, decoded.
	Events []DecodedEvent `json:"events"`
}

// DecodedTransfer is one movement of an asset.
type DecodedTransfer struct {
	From   common.Address `json:"from"`
	To     common.Address `json:"to"`
	Amount Amount         `json:"amount"`
}

// RecentTransactions is what tally_getRecentTransactions returns: the
// newest transactions, newest first, found in blocks From..To.
type RecentTransactions struct {
	Items []DecodedTx `json:"items"`
	// From and To are the blocks searched (To the head); blocks below From
	// were not searched.
	From hexutil.Uint64 `json:"fromBlock"`
	To   hexutil.Uint64 `json:"toBlock"`
}

// ReferenceMatch is a transaction whose logs carry a reference
// (tally_findByReference).
type ReferenceMatch struct {
	TxHash      common.Hash    `json:"transactionHash"`
	BlockNumber hexutil.Uint64 `json:"blockNumber"`
	// Event is the log naming the reference: PaymentReference, Refund,
	// Minted, MintReversed or WithdrawalClaimed.
	Event  string          `json:"event"`
	From   *common.Address `json:"from,omitempty"`
	To     *common.Address `json:"to,omitempty"`
	Amount *Amount         `json:"amount,omitempty"`
}

// ReferencePage is one page of tally_findByReference, oldest first.
type ReferencePage struct {
	Reference Reference        `json:"reference"`
	Items     []ReferenceMatch `json:"items"`
	// NextBlock continues the search from that block; null when the
	// search reached the head.
	NextBlock *hexutil.Uint64 `json:"nextBlock"`
}

// Validator is a validator as tally_getValidators lists it.
type Validator struct {
	Address   common.Address `json:"address"`
	Name      string         `json:"name"`
	PublicKey hexutil.Bytes  `json:"publicKey"`
}

// ValidatorChange is an approved change of the validator set not in
// effect yet.
type ValidatorChange struct {
	ProposalID      hexutil.Uint64 `json:"proposalId"`
	Add             bool           `json:"add"`
	Validator       Validator      `json:"validator"`
	EffectiveHeight hexutil.Uint64 `json:"effectiveHeight"`
}

// Validators is what tally_getValidators returns.
type Validators struct {
	Height     hexutil.Uint64    `json:"height"`
	Validators []Validator       `json:"validators"`
	Quorum     int               `json:"quorum"`
	Pending    []ValidatorChange `json:"pending"`
}

// Proposal is a governance proposal as tally_getProposals lists it.
type Proposal struct {
	ID hexutil.Uint64 `json:"id"`
	// Operation is the propose* operation that made it, Args its decoded
	// arguments (the change).
	Operation  string           `json:"operation"`
	Args       []DecodedArg     `json:"args"`
	Proposer   common.Address   `json:"proposer"`
	Approvals  []common.Address `json:"approvals"`
	Rejections []common.Address `json:"rejections"`
	// Status is pending, approved (scheduled for EffectiveHeight),
	// rejected, executed or failed.
	Status          string         `json:"status"`
	Height          hexutil.Uint64 `json:"height"`
	EffectiveHeight hexutil.Uint64 `json:"effectiveHeight,omitempty"`
}

// ProposalPage is one page of tally_getProposals, newest first, with the
// governance members and threshold in force.
type ProposalPage struct {
	Members   []common.Address `json:"members"`
	Threshold int              `json:"threshold"`
	Items     []Proposal       `json:"items"`
	// NextCursor is the id to pass for older proposals; null on the last page.
	NextCursor *hexutil.Uint64 `json:"nextCursor"`
}
