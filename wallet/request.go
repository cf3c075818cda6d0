package wallet

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	qrcode "github.com/skip2/go-qrcode"
)

// PaymentMethod is the asset operation a payment request asks for:
// transferWithReference(address to, uint256 amount, bytes32 ref), whose
// PaymentReference event a merchant matches to the order (docs/merchants.md).
const PaymentMethod = "transferWithReference"

// PaymentRequest is what a merchant shows a payer for one order: pay
// Amount of Asset to Payee under Ref before Expires. URI is its EIP-681
// form, which a wallet scanning the QR code opens.
type PaymentRequest struct {
	URI     string `json:"uri"`
	ChainID uint64 `json:"chainId"`
	Asset   string `json:"asset"`
	// AssetAddress is the asset's ERC-20 facade, the URI's target.
	AssetAddress common.Address `json:"assetAddress"`
	Decimals     uint8          `json:"decimals"`
	Payee        common.Address `json:"payee"`
	// Amount is in the asset's units ("12.34"); AmountBase in base units.
	Amount     string `json:"amount"`
	AmountBase string `json:"amountBase"`
	// Order is the merchant's order id, Reference its bytes32 on chain
	// (ParseReference).
	Order     string      `json:"order"`
	Reference common.Hash `json:"reference"`
	// Expires is when the merchant stops accepting the request: EIP-681
	// has no expiry, so it travels beside the URI (the checkout page, the
	// notifier's order), not in it.
	Expires time.Time `json:"expires"`
}

// ParseReference reads an order or bank reference as the bytes32 a
// payment carries: 0x + 64 hex digits as they are, or text of 1 to 32
// bytes left-aligned and zero-padded (how `tally op`, the bridges and
// ethers' encodeBytes32String write text references, and how
// txdecode.Reference shows them back).
func ParseReference(s string) (common.Hash, error) {
	if strings.HasPrefix(s, "0x") && len(s) == 66 {
		if b, err := hexutil.Decode(s); err == nil {
			return common.BytesToHash(b), nil
		}
	}
	if len(s) == 0 || len(s) > 32 {
		return common.Hash{}, fmt.Errorf("a reference is 0x + 64 hex digits or 1..32 bytes of text, got %d bytes", len(s))
	}
	var ref common.Hash
	copy(ref[:], s)
	return ref, nil
}

// NewPaymentRequest makes the payment request of order: amount (base
// units, positive) of asset to payee on chain chainID, before expires.
func NewPaymentRequest(chainID uint64, asset Asset, payee common.Address, amount *big.Int, order string, expires time.Time) (*PaymentRequest, error) {
	switch {
	case chainID == 0:
		return nil, errors.New("payment request: chain id must be positive")
	case asset.Symbol == "" || asset.Address == (common.Address{}):
		return nil, errors.New("payment request: no asset")
	case payee == (common.Address{}):
		return nil, errors.New("payment request: payee is the zero address")
	case amount == nil || amount.Sign() <= 0:
		return nil, fmt.Errorf("payment request: amount must be positive, got %v", amount)
	case amount.Cmp(maxUint256) > 0:
		return nil, fmt.Errorf("payment request: amount %s is above 2^256-1", amount)
	case expires.IsZero():
		return nil, errors.New("payment request: no expiry")
	}
	ref, err := ParseReference(order)
	if err != nil {
		return nil, fmt.Errorf("payment request: order %q: %w", order, err)
	}
	r := &PaymentRequest{
		ChainID: chainID, Asset: asset.Symbol, AssetAddress: asset.Address, Decimals: asset.Decimals, Payee: payee,
		Amount: FormatAmount(amount, asset.Decimals), AmountBase: amount.String(), Order: order, Reference: ref,
		Expires: expires.UTC().Truncate(time.Second),
	}
	r.URI = PaymentURI{Target: asset.Address, ChainID: chainID, To: payee, Amount: amount, Decimals: asset.Decimals, Ref: ref}.String()
	return r, nil
}

// PaymentRequest makes the payment request of order on the node's chain:
// amount (in units of the asset named by symbol, "12.34") to payee,
// expiring at expires.
func (c *Client) PaymentRequest(ctx context.Context, symbol string, payee common.Address, amount, order string, expires time.Time) (*PaymentRequest, error) {
	chainID, err := c.ChainID(ctx)
	if err != nil {
		return nil, err
	}
	asset, err := c.AssetBySymbol(ctx, symbol)
	if err != nil {
		return nil, err
	}
	v, err := ParseAmount(amount, asset.Decimals)
	if err != nil {
		return nil, fmt.Errorf("amount: %w", err)
	}
	if !chainID.IsUint64() {
		return nil, fmt.Errorf("chain id %s does not fit a payment request", chainID)
	}
	return NewPaymentRequest(chainID.Uint64(), asset, payee, v, order, expires)
}

// QRSize is the side of the QR code PNG in pixels: large enough to scan
// from a screen at arm's length.
const QRSize = 320

// QRCode returns the request's URI as a QR code PNG (error correction
// level M, which recovers 15% of a damaged or partly hidden code).
func (r *PaymentRequest) QRCode() ([]byte, error) {
	png, err := qrcode.Encode(r.URI, qrcode.Medium, QRSize)
	if err != nil {
		return nil, fmt.Errorf("QR code of %s: %w", r.URI, err)
	}
	return png, nil
}

// Expired says whether the request has expired at now.
func (r *PaymentRequest) Expired(now time.Time) bool { return !now.Before(r.Expires) }

// PaymentURI is an EIP-681 transaction request for an asset's
// transferWithReference:
//
//	ethereum:<facade>@<chain id>/transferWithReference?address=<payee>&uint256=<amount>&bytes32=<ref>
//
// Parameters are keyed by their ABI type, in the function's order; the
// amount is in base units written in scientific notation with the
// asset's decimals as the exponent ("12.34e2" is 1234 base units of a
// 2-decimal asset), as EIP-681 recommends, so a person reading it sees
// the nominal amount.
type PaymentURI struct {
	Target   common.Address
	ChainID  uint64
	To       common.Address
	Amount   *big.Int
	Decimals uint8
	Ref      common.Hash
}

// String is the URI.
func (u PaymentURI) String() string {
	amount := u.Amount.String()
	if u.Decimals > 0 {
		amount = FormatAmount(u.Amount, u.Decimals) + "e" + strconv.Itoa(int(u.Decimals))
	}
	return "ethereum:" + u.Target.Hex() + "@" + strconv.FormatUint(u.ChainID, 10) + "/" + PaymentMethod +
		"?address=" + u.To.Hex() + "&uint256=" + amount + "&bytes32=" + u.Ref.Hex()
}

// maxURILen bounds what ParsePaymentURI reads: a request is about 250
// characters.
const maxURILen = 2048

// ParsePaymentURI reads an EIP-681 URI of a transferWithReference request
// (a wallet's side: what it pays). It follows EIP-681's grammar: the
// "ethereum:" scheme with an optional "pay-" prefix, a hex target (ENS
// names are not resolved here), an optional chain id, the function name,
// and parameters keyed by ABI type; the amount is a number, possibly in
// scientific notation, that must be an integer. Decimals is the number's
// exponent (0 without one). Anything else, or a parameter missing or
// repeated, is an error naming it.
func ParsePaymentURI(s string) (PaymentURI, error) {
	var u PaymentURI
	if len(s) > maxURILen {
		return u, fmt.Errorf("payment URI: %d characters, at most %d", len(s), maxURILen)
	}
	rest, ok := strings.CutPrefix(s, "ethereum:")
	if !ok {
		return u, errors.New(`payment URI: not an "ethereum:" URI`)
	}
	rest = strings.TrimPrefix(rest, "pay-")
	path, query, _ := strings.Cut(rest, "?")
	path, fn, hasFn := strings.Cut(path, "/")
	if !hasFn || fn != PaymentMethod {
		return u, fmt.Errorf("payment URI: function %q, want %s", fn, PaymentMethod)
	}
	target, chain, hasChain := strings.Cut(path, "@")
	if !isHexAddress(target) {
		return u, fmt.Errorf("payment URI: target %q is not 0x and 40 hex digits", target)
	}
	u.Target = common.HexToAddress(target)
	if hasChain {
		id, err := strconv.ParseUint(chain, 10, 64)
		if err != nil || id == 0 || !allDigits(chain) {
			return u, fmt.Errorf("payment URI: chain id %q is not a positive decimal number", chain)
		}
		u.ChainID = id
	}
	seen := map[string]bool{}
	for _, p := range strings.Split(query, "&") {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return u, fmt.Errorf("payment URI: parameter %q is not key=value", p)
		}
		v, err := url.PathUnescape(v)
		if err != nil {
			return u, fmt.Errorf("payment URI: parameter %s: %w", k, err)
		}
		if seen[k] {
			return u, fmt.Errorf("payment URI: parameter %s given twice", k)
		}
		seen[k] = true
		switch k {
		case "address":
			if !isHexAddress(v) {
				return u, fmt.Errorf("payment URI: address %q is not 0x and 40 hex digits", v)
			}
			u.To = common.HexToAddress(v)
		case "uint256":
			if u.Amount, u.Decimals, err = parseNumber(v); err != nil {
				return u, fmt.Errorf("payment URI: uint256: %w", err)
			}
		case "bytes32":
			b, err := hexutil.Decode(v)
			if err != nil || len(b) != 32 {
				return u, fmt.Errorf("payment URI: bytes32 %q is not 0x and 64 hex digits", v)
			}
			u.Ref = common.BytesToHash(b)
		case "value", "gas", "gasLimit", "gasPrice":
			// Suggestions a wallet may show; Tally has no fees, and a
			// payment carries no native value.
			if _, _, err := parseNumber(v); err != nil {
				return u, fmt.Errorf("payment URI: %s: %w", k, err)
			}
		default:
			return u, fmt.Errorf("payment URI: parameter %s is not one of %s's (address, uint256, bytes32)", k, PaymentMethod)
		}
	}
	for _, k := range []string{"address", "uint256", "bytes32"} {
		if !seen[k] {
			return u, fmt.Errorf("payment URI: parameter %s is missing", k)
		}
	}
	return u, nil
}

// parseNumber reads an EIP-681 number, [ "-" / "+" ] *DIGIT [ "." 1*DIGIT ]
// [ ( "e" / "E" ) [ 1*DIGIT ] ], which must be a non-negative integer (the
// exponent at least the digits after the point). It returns the value and
// the exponent.
func parseNumber(s string) (*big.Int, uint8, error) {
	m := strings.TrimPrefix(s, "+")
	if strings.HasPrefix(m, "-") {
		return nil, 0, fmt.Errorf("%q is negative", s)
	}
	exp := 0
	if i := strings.IndexAny(m, "eE"); i >= 0 {
		e := m[i+1:]
		m = m[:i]
		if e != "" {
			if !allDigits(e) || len(e) > 3 {
				return nil, 0, fmt.Errorf("%q: exponent %q is not a number of at most 3 digits", s, e)
			}
			exp, _ = strconv.Atoi(e)
		}
		if exp > 255 {
			return nil, 0, fmt.Errorf("%q: exponent %d is above 255", s, exp)
		}
	}
	whole, frac, hasPoint := strings.Cut(m, ".")
	if (whole != "" && !allDigits(whole)) || (hasPoint && !allDigits(frac)) || (whole == "" && !hasPoint) {
		return nil, 0, fmt.Errorf("%q is not an EIP-681 number", s)
	}
	if len(frac) > exp {
		return nil, 0, fmt.Errorf("%q is not an integer: %d digits after the point, exponent %d", s, len(frac), exp)
	}
	if whole == "" {
		whole = "0"
	}
	if hasPoint {
		whole += "." + frac
	}
	v, err := ParseAmount(whole, uint8(exp))
	if err != nil {
		return nil, 0, fmt.Errorf("%q: %w", s, err)
	}
	return v, uint8(exp), nil
}

// isHexAddress says whether s is 0x and 40 hex digits, with a valid
// EIP-55 checksum when it mixes upper and lower case (a mistyped
// address is refused, not paid).
func isHexAddress(s string) bool {
	if !strings.HasPrefix(s, "0x") || len(s) != 42 {
		return false
	}
	if _, err := hexutil.Decode(s); err != nil {
		return false
	}
	h := s[2:]
	if h == strings.ToLower(h) || h == strings.ToUpper(h) {
		return true
	}
	return common.HexToAddress(s).Hex() == s
}
