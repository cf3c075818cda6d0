package crypto

import (
	"fmt"
	"strings"

	"github.com/tyler-smith/go-bip39"
)

// NewMnemonic returns a fresh English BIP39 mnemonic from entropyBits of
// crypto/rand entropy: 128, 160, 192, 224 or 256 bits (12 to 24 words).
func NewMnemonic(entropyBits int) (string, error) {
	if entropyBits < 128 || entropyBits > 256 || entropyBits%32 != 0 {
		return "", fmt.Errorf("new mnemonic: %w: entropy must be 128..256 bits in steps of 32, got %d", ErrInvalidMnemonic, entropyBits)
	}
	entropy, err := bip39.NewEntropy(entropyBits)
	if err != nil {
		return "", fmt.Errorf("new mnemonic: %w", err)
	}
	defer zero(entropy)
	m, err := entropyToMnemonic(entropy)
	if err != nil {
		return "", fmt.Errorf("new mnemonic: %w", err)
	}
	return m, nil
}

// entropyToMnemonic encodes 16 to 32 bytes of entropy as English words.
func entropyToMnemonic(entropy []byte) (string, error) {
	m, err := bip39.NewMnemonic(entropy)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidMnemonic, err)
	}
	return m, nil
}

// ValidateMnemonic checks the word count, that every word is in the English
// list and the checksum. Runs of whitespace between words are tolerated.
func ValidateMnemonic(m string) error {
	e, err := MnemonicToEntropy(m)
	zero(e)
	return err
}

// MnemonicToEntropy returns the entropy a valid mnemonic encodes (16 to 32
// bytes); it fails on any mnemonic ValidateMnemonic rejects.
func MnemonicToEntropy(m string) ([]byte, error) {
	e, err := bip39.EntropyFromMnemonic(normalizeMnemonic(m))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMnemonic, err)
	}
	return e, nil
}

// MnemonicToSeed returns the 64-byte BIP39 seed (PBKDF2-HMAC-SHA512, 2048
// rounds, salt "mnemonic"+passphrase). Unlike plain BIP39 it first validates
// the checksum, so a mistyped word is an error rather than a different,
// empty wallet. Whitespace between words is normalized to single spaces;
// the passphrase is used as given (no NFKD), which matches BIP39 for ASCII.
func MnemonicToSeed(mnemonic, passphrase string) ([]byte, error) {
	seed, err := bip39.NewSeedWithErrorChecking(normalizeMnemonic(mnemonic), passphrase)
	if err != nil {
		return nil, fmt.Errorf("mnemonic to seed: %w: %w", ErrInvalidMnemonic, err)
	}
	return seed, nil
}

// normalizeMnemonic joins the words with single spaces, as wallets do when
// the user pastes a phrase with stray whitespace. go-bip39 splits on single
// spaces in some functions and on any whitespace in others, so it must only
// ever see the normalized form.
func normalizeMnemonic(m string) string {
	return strings.Join(strings.Fields(m), " ")
}
