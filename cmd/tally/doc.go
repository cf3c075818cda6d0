// Command tally is the Tally command-line client: a keystore wallet, and
// queries of a node over JSON-RPC.
//
//	tally wallet new                         create a mnemonic and its first account
//	tally wallet import --mnemonic-file F    import an account (or --private-key-file F)
//	tally wallet address --mnemonic-file F   print the address at an HD index
//	tally wallet list                        list the keystore's accounts
//	tally send --from A --to B --value 1.5   sign locally, send, wait for the receipt
//	tally balance ADDR                       an account's balance
//	tally account ADDR                       balances per asset, tier, frozen
//	tally supply SYMBOL                      an asset's issuance
//	tally assets                             the chain's assets
//	tally tx HASH                            a transaction and its receipt, decoded
//	tally history ADDR                       an account's transactions, page by page
//	tally proof tx HASH --out proof.json     the proof that a transaction is in the chain
//	tally verify-proof proof.json --genesis F check a proof offline
//	tally block N|latest                     a block's header
//	tally bench --txs 20000                  load-test a node (docs/benchmarks.md)
//	tally bridge --config bridge.toml        run a bank's bridge (docs/bridge.md)
//	tally bridge reconcile --statement F     compare a camt.053 statement with the chain
//	tally bankcore-sim --config sim.toml     a bank core simulator (tests and demos only)
//	tally monitor --config monitor.toml      run the risk monitor (docs/monitor.md)
//	tally request --asset HKD --to P --amount 12.34 --order ID
//	                                         an order's payment request: EIP-681 URI, QR code
//	tally merchant --config merchant.toml    run the merchant notifier (docs/merchants.md)
//
// Every command takes --help; every query command takes --json. Keys are encrypted in a keystore directory
// (keystore v3 files, as go-ethereum writes them) and never leave the
// process: tally signs locally and sends only signed transactions. Secrets
// (mnemonics, private keys, passwords) are read from files, the terminal or
// the environment, never from flag values, which leak through ps and shell
// history.
//
// Exit status: 0 on success, 1 on failure, 2 on a usage error. Errors are
// printed on one line as "tally: <message>".
package main
