package crypto

import "errors"

// Sentinel errors. Functions wrap them with context, so test with errors.Is.
var (
	// ErrBadChecksum means a mixed-case address is not a valid EIP-55
	// checksum; it most likely contains a typo.
	ErrBadChecksum = errors.New("bad EIP-55 checksum")
	// ErrInvalidAddress means a string is not "0x" followed by 40 hex digits,
	// or public key bytes do not encode a point on secp256k1.
	ErrInvalidAddress = errors.New("invalid address")
	// ErrHighS means a signature's S is above n/2. It would be valid ECDSA,
	// but Tally only accepts the canonical low-S form (see package doc).
	ErrHighS = errors.New("signature S value is not in the lower half of the curve order")
	// ErrInvalidSignature means a signature is malformed: wrong length,
	// R or S zero or >= n, V not 0 or 1, or no key recovers from it.
	ErrInvalidSignature = errors.New("invalid signature")
	// ErrInvalidKey means private key bytes are not a scalar in [1, n-1].
	ErrInvalidKey = errors.New("invalid private key")
	// ErrInvalidMnemonic means a mnemonic has a wrong word count, an unknown
	// word or a bad checksum, or an entropy size is unsupported.
	ErrInvalidMnemonic = errors.New("invalid mnemonic")
	// ErrInvalidExtendedKey means a serialized BIP32 key was rejected.
	ErrInvalidExtendedKey = errors.New("invalid extended key")
	// ErrInvalidPath means a BIP32 derivation path is malformed.
	ErrInvalidPath = errors.New("invalid derivation path")
	// ErrInvalidKeystore means a keystore file is malformed or uses
	// unsupported or unreasonable parameters.
	ErrInvalidKeystore = errors.New("invalid keystore")
	// ErrKeystoreMAC means the keystore MAC does not match: the password is
	// wrong or the file is corrupt. Errors carrying it also match
	// go-ethereum's keystore.ErrDecrypt.
	ErrKeystoreMAC = errors.New("keystore MAC mismatch (wrong password or corrupt file)")
)
