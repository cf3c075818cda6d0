// Package explorer is the block explorer every node serves on its JSON-RPC
// port (GET / and /explorer/…; docs/explorer.md): static HTML, CSS and
// JavaScript modules embedded in the binary, with no CDN, font or script
// from elsewhere (a bank's network), which read the ledger only through
// the node's public JSON-RPC, posted to the same origin. Everything the
// pages show is inserted as text, never as HTML, and the responses carry a
// strict Content-Security-Policy (no inline script, nothing from another
// origin), so a reference or a reason an attacker wrote stays inert text.
//
// Handler wraps the JSON-RPC handler: JSON-RPC POSTs, WebSocket upgrades
// and CORS preflights reach it unchanged, whatever their path.
package explorer
