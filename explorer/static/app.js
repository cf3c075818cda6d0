// The explorer's pages, routed by path in the browser (/explorer/…). Each
// page reads the ledger through this node's JSON-RPC (rpc.js) and builds
// its content with dom.js, as text.

import { call, batch, optional, RPCError } from "./rpc.js";
import {
  h, link, short, txLink, blockLink, addrLink, assetLink, big, num, units,
  amount, assetAmount, reference, time, status, kv, table, card,
} from "./dom.js";

const main = document.getElementById("main");
const POLL_MS = 2000;
const HOME_BLOCKS = 10;
const HOME_TXS = 10;

// Each render gets a generation number: a page whose user has moved on
// stops updating (its timers check it).
let generation = 0;
let assetsCache = null;

async function assets() {
  if (!assetsCache) assetsCache = await call("tally_assets");
  return assetsCache;
}

function show(...children) {
  main.replaceChildren(...children.flat().filter(Boolean));
}

function fail(e) {
  const msg = e instanceof RPCError ? `${e.message} (JSON-RPC error ${e.code})` : String(e && e.message ? e.message : e);
  show(h("div", { class: "error", id: "error" }, msg));
}

// hex is a JSON-RPC quantity.
const hex = (n) => "0x" + n.toString(16);

function blockTimeMs(b) {
  const x = (b.extraData || "0x").slice(2, 18);
  return x.length === 16 ? Number(BigInt("0x" + x)) : num(b.timestamp) * 1000;
}

// txRow is a decoded transaction as one table row.
function txRow(d) {
  return [
    txLink(d.hash),
    d.blockNumber ? blockLink(num(d.blockNumber)) : h("span", { class: "muted" }, "pending"),
    h("span", { class: "badge" }, d.operation || "?"),
    d.amount ? amount(d.amount) : "",
    d.payer ? addrLink(d.payer, short(d.payer, 4)) : addrLink(d.from, short(d.from, 4)),
    d.payee ? addrLink(d.payee, short(d.payee, 4)) : addrLink(d.to, short(d.to, 4)),
    reference(d.reference),
    status(d.status),
  ];
}
const TX_HEAD = ["transaction", "block", "operation", "amount", "from", "to", "reference", "status"];

// ---- payment rows (docs/payments.md) ----
// A dispute and a payment held for a second confirmation as table rows:
// the payments page, and the transaction and account pages, show them
// alike.

const DISPUTE_HEAD = ["id", "status", "reason", "amount", "reference", "payer", "merchant", "opened", "outcome"];
const disputeRow = (d) => [
  String(num(d.id)), h("span", { class: "badge" }, d.status), d.reason, amount(d.amount), reference(d.reference),
  addrLink(d.payer, short(d.payer, 4)), addrLink(d.merchant, short(d.merchant, 4)), time(num(d.openedMs)),
  d.bank ? h("div", {}, addrLink(d.bank, short(d.bank, 4)), h("div", { class: "muted" }, d.decision))
    : d.answer ? h("div", { class: "muted" }, "merchant: " + d.answer) : "",
];
const HELD_HEAD = ["id", "status", "kind", "amount", "from", "to", "expires"];
const heldRow = (p) => [
  String(num(p.id)), h("span", { class: "badge" }, p.status), p.kind, amount(p.amount),
  addrLink(p.from, short(p.from, 4)), p.to ? addrLink(p.to, short(p.to, 4)) : h("span", { class: "muted" }, "withdrawal"),
  time(num(p.expiresMs)),
];

// paymentsLink links the payments page of an account.
const paymentsLink = (account, text) => h("a", { href: "/explorer/payments?account=" + account, "data-nav": "1", class: "payments-link" }, text);

// byIds reads the disputes or held payments of the given ids, one call
// each ({before: id + 1, limit: 1} starts the newest-first search at id).
async function byIds(method, ids) {
  const pages = await batch(ids.map((id) => [method, { before: hex(id + 1n), limit: hex(1) }]));
  return pages.flatMap((p, i) => (p instanceof Error ? [] : p.items.filter((x) => big(x.id) === ids[i])));
}

// eventIds are the ids (uint256 "id") of d's events of the given names.
const eventIds = (d, names) => [...new Set(d.events.filter((e) => names.includes(e.name))
  .flatMap((e) => e.args.filter((a) => a.name === "id").map((a) => String(a.value))))].map((v) => BigInt(v));

// txPayments finds what the payment rules did with transaction d: the
// payment it held for a second confirmation, or confirmed, rejected or
// cancelled (the Confirmations events); the disputes it opened or moved
// (the Disputes events); and the disputes of its payer that name it (or,
// naming no transaction, its reference to its payee), among the payer's
// newest 500.
async function txPayments(d) {
  const heldIds = eventIds(d, ["ConfirmationRequired", "PaymentConfirmed", "PaymentRejected", "PaymentCancelled"]);
  const disputeIds = eventIds(d, ["DisputeOpened", "DisputeContested", "DisputeRefunded", "DisputeUpheld", "DisputeDismissed"]);
  const [held, disputes, named] = await Promise.all([
    heldIds.length ? byIds("tally_getHeldPayments", heldIds) : [],
    disputeIds.length ? byIds("tally_getDisputes", disputeIds) : [],
    d.payer && d.reference && d.blockNumber ? call("tally_getDisputes", { payer: d.payer, limit: hex(500) }).then((p) => p.items.filter((x) =>
      x.txHash ? x.txHash.toLowerCase() === d.hash.toLowerCase()
        : x.reference && x.reference.hex.toLowerCase() === d.reference.hex.toLowerCase() && d.payee && x.merchant.toLowerCase() === d.payee.toLowerCase()), () => []) : [],
  ]);
  const seen = new Set(disputes.map((x) => num(x.id)));
  return { held, disputes: disputes.concat(named.filter((x) => !seen.has(num(x.id)))) };
}

// paymentSections are the transaction's or account's payment rows, with
// a link to the payments page of account; nothing when there are none.
function paymentSections(held, disputes, account, more) {
  return [
    held.length ? [h("h2", {}, "Held for a second confirmation"), card(h("div", { id: "held" }, table(HELD_HEAD, held.map(heldRow))),
      h("p", {}, paymentsLink(account, more ? "All held payments of this account on the payments page" : "On the payments page")))] : null,
    disputes.length ? [h("h2", {}, "Disputes"), card(h("div", { id: "disputes" }, table(DISPUTE_HEAD, disputes.map(disputeRow))),
      h("p", {}, paymentsLink(account, more ? "All disputes of this account on the payments page" : "On the payments page")))] : null,
  ].flat().filter(Boolean);
}

// ---- home ----

async function home(gen) {
  const [info, chainId] = await batch([["tally_nodeInfo"], ["eth_chainId"]]);
  let shownHead = -1;
  const blocksCard = card(h("h2", {}, "Latest blocks"), h("p", { class: "muted" }, "Loading…"));
  const txsCard = card(h("h2", {}, "Latest transactions"), h("p", { class: "muted" }, "Loading…"));
  const headInfo = h("span", { id: "head" });
  show(
    h("h1", {}, "Ledger"),
    card(kv([
      ["chain id", chainId instanceof Error ? "?" : String(num(chainId))],
      ["head", headInfo],
      ["this node", info instanceof Error ? "" : `${info.role}, ${info.address}`],
    ])),
    h("div", { class: "grid" }, blocksCard, txsCard),
  );
  // The transactions shown: the newest HOME_TXS, found by
  // tally_getRecentTransactions once; after that only the blocks applied
  // since the last refresh are read (a quiet chain is not searched again
  // on every heartbeat block).
  let recent = null;
  const refresh = async () => {
    const head = num(await call("eth_blockNumber"));
    if (head === shownHead) return;
    const calls = [];
    for (let n = head; n >= 0 && n > head - HOME_BLOCKS; n--) calls.push(["eth_getBlockByNumber", hex(n), false]);
    const blocks = (await batch(calls)).filter((b) => b && !(b instanceof Error));
    let next;
    if (recent === null || head - shownHead >= HOME_BLOCKS) {
      const r = await call("tally_getRecentTransactions", hex(HOME_TXS));
      next = { items: r.items, from: num(r.fromBlock) };
    } else {
      const hashes = blocks.filter((b) => num(b.number) > shownHead).flatMap((b) => [...b.transactions].reverse()).slice(0, HOME_TXS);
      const decoded = (await batch(hashes.map((x) => ["tally_decodeTransaction", x]))).filter((d) => d && !(d instanceof Error));
      next = { items: decoded.concat(recent.items).slice(0, HOME_TXS), from: recent.from };
    }
    if (gen !== generation) return;
    recent = next;
    shownHead = head;
    headInfo.replaceChildren(blockLink(head));
    blocksCard.replaceChildren(h("h2", {}, "Latest blocks"), table(
      ["block", "time (UTC)", "txs", "proposer"],
      blocks.map((b) => [
        blockLink(num(b.number)), h("span", { title: time(blockTimeMs(b)), class: "nowrap" }, time(blockTimeMs(b)).slice(11, 19)),
        String(b.transactions.length), addrLink(b.miner, short(b.miner, 4)),
      ]),
    ));
    txsCard.replaceChildren(h("h2", {}, "Latest transactions"),
      table(TX_HEAD, recent.items.map(txRow), `No transactions in blocks ${recent.from}–${head}.`));
  };
  // Poll the head; a failed poll (the node restarting) is retried.
  const poll = async () => {
    if (gen !== generation) return;
    try {
      await refresh();
    } catch { /* retried at the next poll */ }
    if (gen === generation) setTimeout(poll, POLL_MS);
  };
  await refresh();
  setTimeout(poll, POLL_MS);
}

// ---- block ----

async function blockPage(gen, id) {
  const byHash = /^0x[0-9a-fA-F]{64}$/.test(id);
  if (!byHash && !/^\d+$/.test(id)) throw new Error(`not a block number or hash: ${id}`);
  const b = byHash ? await call("eth_getBlockByHash", id, false) : await call("eth_getBlockByNumber", "0x" + BigInt(id).toString(16), false);
  if (!b) throw new Error(`no block ${id}`);
  const n = num(b.number);
  const [cert, ...decoded] = await batch([["tally_getCertificate", hex(n)], ...b.transactions.map((t) => ["tally_decodeTransaction", t])]);
  if (gen !== generation) return;
  show(
    h("h1", {}, `Block #${n}`),
    card(kv([
      ["hash", h("span", { class: "mono" }, b.hash)],
      ["time", time(blockTimeMs(b))],
      ["parent", n > 0 ? h("span", { class: "mono" }, link(b.parentHash, "block", n - 1)) : "—"],
      ["proposer", addrLink(b.miner)],
      ["transactions", String(b.transactions.length)],
      ["state root", h("span", { class: "mono" }, b.stateRoot)],
      ["transactions root", h("span", { class: "mono" }, b.transactionsRoot)],
      ["receipts root", h("span", { class: "mono" }, b.receiptsRoot)],
      ["history root", h("span", { class: "mono" }, b.mixHash)],
      ["next", link(`#${n + 1}`, "block", n + 1)],
    ])),
    h("h2", {}, "Commit certificate"),
    card(certificate(cert, n)),
    h("h2", {}, "Transactions"),
    card(table(TX_HEAD, decoded.filter((d) => d && !(d instanceof Error)).map(txRow), "No transactions (an empty block).")),
  );
}

function certificate(cert, n) {
  if (cert instanceof Error) return h("p", { class: "bad" }, cert.message);
  if (!cert) return h("p", { class: "muted", id: "cert" }, `Block ${n} is not certified yet: a later block carries its certificate, usually within a block or two.`);
  return h("div", { id: "cert" }, kv([
    ["certified block", h("span", { class: "mono" }, cert.hash)],
    ["signatures", `${cert.signers.length} of ${cert.validators} validators (quorum ${cert.quorum})`],
    ["signers", h("div", {}, cert.signers.map((s) => h("div", {}, addrLink(s))))],
    ["carried in", blockLink(num(cert.block))],
    ["next validator set", h("span", { class: "mono" }, cert.next)],
  ]));
}

// ---- transaction ----

function summary(d) {
  const parts = [];
  const op = d.operation;
  if (d.amount) parts.push(amount(d.amount));
  if (d.payer) parts.push(" from ", addrLink(d.payer));
  if (d.payee) parts.push(" to ", addrLink(d.payee));
  if (d.reference) parts.push(", reference ", reference(d.reference));
  const what = { transfer: "Transfer", transferWithReference: "Payment", mint: "Mint", requestWithdrawal: "Withdrawal request", refund: "Refund", batchTransfer: "Batch payment" }[op] || op;
  return h("p", { class: "summary", id: "summary" }, h("strong", {}, what), parts.length ? " of " : "", parts);
}

async function txPage(gen, hash) {
  if (!/^0x[0-9a-fA-F]{64}$/.test(hash)) throw new Error(`not a transaction hash: ${hash}`);
  const d = await call("tally_decodeTransaction", hash);
  if (!d) throw new Error(`no transaction ${hash} on this node`);
  let reason = null;
  if (d.status !== null && num(d.status) === 0) reason = await optional("tally_getTransactionReason", hash);
  const pay = await txPayments(d);
  if (gen !== generation) return;
  const failed = d.status !== null && num(d.status) === 0;
  show(
    h("h1", {}, "Transaction"),
    card(
      summary(d),
      kv([
        ["hash", h("span", { class: "mono" }, d.hash)],
        ["status", h("span", { id: "status" }, status(d.status))],
        failed ? ["reason", h("span", { id: "reason", class: reason ? "bad" : "muted" }, reason || "not recorded by this node")] : null,
        ["block", d.blockNumber ? h("span", {}, blockLink(num(d.blockNumber)), " ", h("span", { class: "muted" }, time(d.timestampMs))) : "pending"],
        ["operation", h("span", { id: "operation" }, `${d.operation || "not decoded"} (${d.contract}${d.asset ? " " + d.asset : ""})`)],
        ["asset", d.asset ? assetLink(d.asset) : null],
        ["amount", h("span", { id: "amount" }, amount(d.amount))],
        ["payer", d.payer ? addrLink(d.payer) : null],
        ["payee", d.payee ? addrLink(d.payee) : null],
        ["reference", h("span", { id: "reference" }, reference(d.reference))],
        ["sender", addrLink(d.from)],
        ["to", addrLink(d.to)],
        ["nonce", String(num(d.nonce))],
      ]),
    ),
    paymentSections(pay.held, pay.disputes, d.payer || d.from, false),
    d.args.length ? [h("h2", {}, "Arguments"), card(table(["name", "type", "value"], d.args.map((a) => [a.name, h("span", { class: "mono" }, a.type), a.text])))] : null,
    h("h2", {}, "Transfers"),
    card(table(["from", "to", "amount"], d.transfers.map((t) => [addrLink(t.from), addrLink(t.to), amount(t.amount)]), failed ? "None: the transaction failed." : "None.")),
    h("h2", {}, "Events"),
    card(table(["contract", "event", "arguments"], d.events.map((e) => [e.asset ? `${e.contract} ${e.asset}` : e.contract, e.name || "(not decoded)",
      h("div", {}, e.args.map((a) => h("div", {}, h("span", { class: "muted" }, a.name + ": "), a.text)))]))),
  );
}

// ---- account ----

// ACCOUNT_PAYMENTS is how many of an account's newest disputes and held
// payments its page shows (the payments page lists them all).
const ACCOUNT_PAYMENTS = 5;

async function addressPage(gen, addr) {
  if (!/^0x[0-9a-fA-F]{40}$/.test(addr)) throw new Error(`not an address: ${addr}`);
  const [acct, list, disputes, held] = await Promise.all([call("tally_getAccount", addr), assets(),
    call("tally_getDisputes", { account: addr, limit: hex(ACCOUNT_PAYMENTS) }), call("tally_getHeldPayments", { account: addr, limit: hex(ACCOUNT_PAYMENTS) })]);
  const bySym = Object.fromEntries(list.map((a) => [a.symbol, a]));
  const historyCard = card(h("p", { class: "muted" }, "Loading…"));
  if (gen !== generation) return;
  show(
    h("h1", {}, "Account ", h("span", { class: "mono" }, acct.address)),
    card(kv([
      ["KYC tier", `${acct.tier} (${acct.tierName || "?"})`],
      ["frozen", h("span", { id: "frozen", class: acct.frozen ? "bad" : null }, acct.frozen ? "yes" : "no")],
      // The risk rules' view (docs/operations.md "Risk control"): rows only when set.
      acct.suspension ? ["suspended", h("span", { id: "suspension", class: "bad" }, `until ${time(acct.suspension.untilMs)}: ${acct.suspension.reason}`)] : null,
      acct.watchList ? ["watch list", h("span", { class: "bad" }, acct.watchList.reason)] : null,
      ["nonce", String(num(acct.nonce))],
    ])),
    acct.velocity && acct.velocity.length ? [h("h2", {}, "Velocity rules"), card(table(["rule", "asset", "window", "transfers", "sent"], acct.velocity.map((v) => [
      v.rule, assetLink(v.asset), v.window,
      v.maxTransfers === null ? String(num(v.transfers)) : `${num(v.transfers)} of ${num(v.maxTransfers)}`,
      v.maxAmount === null ? assetAmount(v.amount, bySym[v.asset]) : h("span", {}, assetAmount(v.amount, bySym[v.asset]), " of ", assetAmount(v.maxAmount, bySym[v.asset])),
    ])))] : null,
    paymentSections(held.items, disputes.items, addr, true),
    h("h2", {}, "Balances"),
    card(table(["asset", "balance", "daily allowance left"], Object.keys(acct.balances).map((sym) => [
      assetLink(sym),
      assetAmount(acct.balances[sym], bySym[sym]),
      acct.remainingDaily[sym] === null ? "unlimited" : assetAmount(acct.remainingDaily[sym], bySym[sym]),
    ]))),
    h("h2", {}, "History"),
    historyCard,
  );
  const pages = [];
  const loadPage = async (cursor) => {
    const page = await call("tally_getAccountHistory", addr, cursor, hex(25));
    if (gen !== generation) return;
    pages.push(page);
    const rows = page.items.map((it) => [
      txLink(it.transactionHash), blockLink(num(it.blockNumber)), time(it.timestampMs), it.direction,
      h("span", { class: "badge" }, it.operation),
      h("div", {}, it.transfers.map((t) => h("div", {}, assetAmount(t.amount, bySym[t.asset]), " ",
        t.from.toLowerCase() === addr.toLowerCase() ? ["to ", addrLink(t.to, short(t.to, 6))] : ["from ", addrLink(t.from, short(t.from, 6))]))),
      it.reference ? reference(refOf(it.reference)) : "",
      status(it.status),
    ]);
    const more = page.nextCursor
      ? h("div", { class: "pager" }, h("button", { id: "older", type: "button" }, "Older transactions"))
      : null;
    historyCard.replaceChildren(h("p", { class: "muted" }, `Page ${pages.length}`),
      table(["transaction", "block", "time", "direction", "operation", "amounts", "reference", "status"], rows, "No transactions."), more || "");
    if (more) more.firstChild.addEventListener("click", () => loadPage(page.nextCursor).catch(fail));
  };
  await loadPage(null);
}

// refOf turns a bytes32 hex into a Reference: its text when printable
// UTF-8 padded with zero bytes (the rule the node applies).
function refOf(hex) {
  const bytes = [];
  for (let i = 2; i < hex.length; i += 2) bytes.push(parseInt(hex.slice(i, i + 2), 16));
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  let text = null;
  if (end > 0) {
    try {
      const s = new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes.slice(0, end)));
      if (!/[\p{C}]/u.test(s)) text = s;
    } catch { /* not UTF-8: shown as hex */ }
  }
  return { hex, text };
}

// ---- assets ----

async function assetsPage(gen) {
  const list = await assets();
  const supplies = await batch(list.map((a) => ["tally_getSupply", a.symbol]));
  if (gen !== generation) return;
  show(h("h1", {}, "Assets"), card(table(["asset", "name", "decimals", "circulating", "facade"], list.map((a, i) => [
    assetLink(a.symbol), a.name, String(a.decimals),
    supplies[i] instanceof Error ? "" : assetAmount(supplies[i].circulating, a),
    h("span", { class: "mono" }, a.address),
  ]))));
}

async function assetPage(gen, symbol) {
  const list = await assets();
  const a = list.find((x) => x.symbol === symbol);
  if (!a) throw new Error(`no asset ${symbol}`);
  const s = await call("tally_getSupply", symbol);
  if (gen !== generation) return;
  const u = (v) => assetAmount(v, a);
  show(
    h("h1", {}, `${a.symbol} — ${a.name}`),
    card(kv([
      ["minted", u(s.minted)],
      ["burned", u(s.burned)],
      ["in escrow", u(s.escrow)],
      ["circulating", u(s.circulating)],
      ["total supply (minted − burned)", u(s.totalSupply)],
      ["decimals", String(a.decimals)],
      ["facade (ERC-20)", h("span", { class: "mono" }, a.address)],
      ["native asset", a.native ? "yes (moved by a transaction's value)" : "no"],
    ])),
    h("h2", {}, "Issuing banks"),
    card(table(["bank", "minted", "burned", "outstanding", "cap"], (s.banks || []).map((b) => [
      addrLink(b.bank), u(b.minted), u(b.burned), u(b.outstanding), b.cap ? u(b.cap) : "none",
    ]), "No issuing bank.")),
  );
}

// ---- validators and certificates ----

async function validatorsPage(gen) {
  const v = await call("tally_getValidators");
  const head = num(v.height);
  const calls = [];
  for (let n = head; n >= 0 && n > head - 10; n--) calls.push(["tally_getCertificate", hex(n)]);
  const certs = await batch(calls);
  if (gen !== generation) return;
  show(
    h("h1", {}, "Validators"),
    card(h("p", {}, `${v.validators.length} validators at block ${head}; a certificate needs ${v.quorum} signatures.`),
      table(["name", "address", "public key"], v.validators.map((x) => [x.name, addrLink(x.address), h("span", { class: "mono" }, short(x.publicKey, 12))]))),
    v.pending.length ? [h("h2", {}, "Approved changes not in effect yet"), card(table(["proposal", "change", "validator", "from block"],
      v.pending.map((c) => [String(num(c.proposalId)), c.add ? "add" : "remove", addrLink(c.validator.address), String(num(c.effectiveHeight))])))] : null,
    h("h2", {}, "Latest certificates"),
    card(table(["block", "signatures", "carried in"], calls.map((c, i) => {
      const cert = certs[i];
      const n = parseInt(c[1], 16);
      if (cert instanceof Error) return [blockLink(n), cert.message, ""];
      if (!cert) return [blockLink(n), h("span", { class: "muted" }, "not certified yet"), ""];
      return [blockLink(n), `${cert.signers.length} of ${cert.validators} (quorum ${cert.quorum})`, blockLink(num(cert.block))];
    }))),
  );
}

// ---- governance ----

async function governancePage(gen) {
  const body = card(h("p", { class: "muted" }, "Loading…"));
  const first = await call("tally_getProposals", null, hex(20));
  if (gen !== generation) return;
  show(
    h("h1", {}, "Governance"),
    card(kv([
      ["members", h("div", {}, first.members.map((m) => h("div", {}, addrLink(m))))],
      ["threshold", `${first.threshold} approvals`],
    ])),
    h("h2", {}, "Proposals"),
    body,
  );
  const render = (page) => {
    const more = page.nextCursor ? h("div", { class: "pager" }, h("button", { type: "button" }, "Older proposals")) : null;
    body.replaceChildren(table(["id", "change", "proposer", "votes", "status", "block"], page.items.map((p) => [
      String(num(p.id)),
      h("div", {}, h("span", { class: "badge" }, p.operation), p.args.map((a) => h("div", {}, h("span", { class: "muted" }, a.name + ": "), a.text))),
      addrLink(p.proposer, short(p.proposer, 6)),
      `${p.approvals.length} for, ${p.rejections.length} against`,
      p.status + (p.status === "approved" ? ` (from block ${num(p.effectiveHeight)})` : ""),
      blockLink(num(p.height)),
    ]), "No proposals."), more || "");
    if (more) more.firstChild.addEventListener("click", () => call("tally_getProposals", page.nextCursor, hex(20)).then(render, fail));
  };
  render(first);
}

// ---- payments: disputes and held payments (docs/payments.md) ----

const PAY_PAGE = 20;

// pagedCard renders a paged listing of method into a card: the newest
// items first, with a button for older ones while nextCursor is set.
function pagedCard(method, filter, head, row, empty, older) {
  const body = card(h("p", { class: "muted" }, "Loading…"));
  const load = (before) => call(method, { ...filter, before, limit: hex(PAY_PAGE) }).then((page) => {
    const more = page.nextCursor ? h("div", { class: "pager" }, h("button", { type: "button" }, older)) : null;
    body.replaceChildren(table(head, page.items.map(row), empty), more || "");
    if (more) more.firstChild.addEventListener("click", () => load(page.nextCursor).catch(fail));
  });
  return [body, load];
}

async function paymentsPage(gen, params) {
  const filter = {};
  const account = params.get("account");
  if (account) filter.account = account;
  const [disputes, loadDisputes] = pagedCard("tally_getDisputes", filter, DISPUTE_HEAD, disputeRow, "No disputes.", "Older disputes");
  const [held, loadHeld] = pagedCard("tally_getHeldPayments", filter, HELD_HEAD, heldRow, "No payments held for a confirmation.", "Older held payments");
  await Promise.all([loadDisputes(), loadHeld()]);
  if (gen !== generation) return;
  show(
    h("h1", {}, "Payments", account ? h("span", { class: "muted" }, " of ", addrLink(account)) : null),
    h("h2", {}, "Disputes"), disputes,
    h("h2", {}, "Held for a second confirmation"), held,
  );
}

// ---- search ----

// search finds what q names: a block number, an address, a transaction or
// block hash, an asset symbol, or an order (bank, payout) reference given
// as text or 0x + 64 hex digits.
async function searchPage(gen, q) {
  q = q.trim();
  if (q === "") throw new Error("type a transaction hash, a block number or hash, an address, an asset or an order reference");
  if (/^\d+$/.test(q) && q.length <= 20) {
    // A block if there is one, else (an order number) a reference.
    const blk = await call("eth_getBlockByNumber", hex(BigInt(q)), false).catch(() => null);
    if (blk) return go(`/explorer/block/${q}`, true);
  }
  if (/^0x[0-9a-fA-F]{40}$/.test(q)) return go(`/explorer/address/${q}`, true);
  if (/^0x[0-9a-fA-F]{64}$/.test(q)) {
    const [tx, blk] = await batch([["tally_decodeTransaction", q], ["eth_getBlockByHash", q, false]]);
    if (tx && !(tx instanceof Error)) return go(`/explorer/tx/${q}`, true);
    if (blk && !(blk instanceof Error)) return go(`/explorer/block/${num(blk.number)}`, true);
  }
  const list = await assets();
  if (list.some((a) => a.symbol === q)) return go(`/explorer/asset/${q}`, true);
  if (new TextEncoder().encode(q).length > 32 && !/^0x[0-9a-fA-F]{64}$/.test(q)) {
    throw new Error(`nothing found for "${q}": a reference is at most 32 bytes`);
  }
  const page = await call("tally_findByReference", q, null, hex(50));
  if (gen !== generation) return;
  if (page.items.length === 1 && !page.nextBlock) return go(`/explorer/tx/${page.items[0].transactionHash}`, true);
  show(
    h("h1", {}, "Reference ", reference(page.reference)),
    card(table(["transaction", "block", "event", "from", "to", "amount"], page.items.map((m) => [
      txLink(m.transactionHash), blockLink(num(m.blockNumber)), m.event,
      m.from ? addrLink(m.from, short(m.from, 6)) : "", m.to ? addrLink(m.to, short(m.to, 6)) : "", amount(m.amount),
    ]), `Nothing found for "${q}".`),
    page.nextBlock ? h("p", { class: "muted" }, `More matches from block ${num(page.nextBlock)} on.`) : null),
  );
}

// ---- routing ----

function route(path, params) {
  const parts = path.replace(/^\/explorer\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const gen = ++generation;
  const [kind, arg] = parts;
  document.getElementById("q").value = kind === "search" ? params.get("q") || "" : "";
  const pages = {
    undefined: () => home(gen),
    block: () => blockPage(gen, arg),
    tx: () => txPage(gen, arg),
    address: () => addressPage(gen, arg),
    assets: () => assetsPage(gen),
    asset: () => assetPage(gen, arg),
    validators: () => validatorsPage(gen),
    governance: () => governancePage(gen),
    payments: () => paymentsPage(gen, params),
    search: () => searchPage(gen, params.get("q") || ""),
  };
  const page = pages[kind];
  document.title = `Tally explorer${kind ? " — " + kind : ""}`;
  main.removeAttribute("data-ready");
  if (!page) {
    fail(new Error(`no page ${path}`));
    main.setAttribute("data-ready", String(gen));
    return Promise.resolve();
  }
  show(h("p", { class: "muted" }, "Loading…"));
  return page().then(() => { if (gen === generation) main.setAttribute("data-ready", String(gen)); }, (e) => {
    if (gen === generation) {
      fail(e);
      main.setAttribute("data-ready", String(gen));
    }
  });
}

function go(url, replace) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  const u = new URL(url, location.origin);
  return route(u.pathname, u.searchParams);
}

document.addEventListener("click", (e) => {
  const a = e.target.closest && e.target.closest("a[href^='/explorer']");
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  go(a.getAttribute("href"));
});
document.getElementById("search").addEventListener("submit", (e) => {
  e.preventDefault();
  go("/explorer/search?q=" + encodeURIComponent(document.getElementById("q").value));
});
window.addEventListener("popstate", () => route(location.pathname, new URLSearchParams(location.search)));

call("web3_clientVersion").then((v) => { document.getElementById("node").textContent = `Served by ${v} at ${location.host}; read through its JSON-RPC.`; }, () => {});
route(location.pathname, new URLSearchParams(location.search));
