// Package credentials reads what the services (the bank bridge, the risk
// monitor) are given to act with: a keystore v3 key and its password, an
// HMAC secret, and the bearer tokens of their operators. Both services use
// the same [key] section and tokens-file format, so they read them here,
// once.
package credentials
