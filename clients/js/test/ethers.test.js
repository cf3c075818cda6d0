// ethers v6 against tallyd --dev, used as a wallet app and a dApp use it.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { ethers } from "ethers";
import {
  RPC_URL, WS_URL, CHAIN_ID, MNEMONIC, DEV, SENDER, UNTOUCHED, path,
  GENESIS_CNY, GENESIS_HKD, GENESIS_HKD_SUPPLY, CNY_FACADE, HKD_FACADE, ASSET_ABI,
  freshAddress, within, Inbox, untilLive,
} from "../lib/env.js";

// ethers shares identical requests made within 250 ms (cacheTimeout): a
// wallet that sends again within that time would reuse the pending nonce and
// see a balance from before its last transfer. Blocks come within
// milliseconds here, so the cache is off, and ethers polls every 100 ms for
// wait() instead of every 4 s.
const provider = new ethers.JsonRpcProvider(RPC_URL, undefined, { cacheTimeout: -1, pollingInterval: 100 });
const wallet = ethers.HDNodeWallet.fromPhrase(MNEMONIC, undefined, path(SENDER.ethers)).connect(provider);
const hkd = new ethers.Contract(HKD_FACADE, ASSET_ABI, wallet);
const iface = new ethers.Interface(ASSET_ABI);

after(() => provider.destroy());

const execFileAsync = promisify(execFile);

test("ethers: HD wallet from the dev mnemonic derives the documented accounts", () => {
  for (const [i, addr] of Object.entries(DEV)) {
    const w = ethers.HDNodeWallet.fromPhrase(MNEMONIC, undefined, path(i));
    assert.equal(w.address, addr, `index ${i}`);
  }
  // Wallet.fromPhrase is index 0 (MetaMask's first account).
  assert.equal(ethers.Wallet.fromPhrase(MNEMONIC).address, DEV[0]);
});

test("ethers: network and balances", async () => {
  const net = await provider.getNetwork();
  assert.equal(net.chainId, BigInt(CHAIN_ID));
  assert.equal(await provider.getBalance(DEV[UNTOUCHED]), GENESIS_CNY);
  assert.equal(await provider.getBalance(freshAddress()), 0n);
  assert.ok((await provider.getBlockNumber()) >= 0);
});

test("ethers: getFeeData on a chain with base fee 0 reports no EIP-1559 fees", async () => {
  const block = await provider.getBlock("latest");
  assert.equal(block.baseFeePerGas, 0n);
  const fee = await provider.getFeeData();
  // getFeeData derives maxFeePerGas only from a truthy baseFeePerGas; 0n is not.
  assert.equal(fee.gasPrice, 0n);
  assert.equal(fee.maxFeePerGas, null);
  assert.equal(fee.maxPriorityFeePerGas, null);
});

/** Sends tx from the wallet, waits, and checks the receipt and both balances. */
async function transferAndCheck(tx, wantType) {
  const to = freshAddress();
  const value = ethers.parseEther("1.25");
  const before = await provider.getBalance(wallet.address);
  const sent = await wallet.sendTransaction({ ...tx, to, value });
  assert.equal(sent.type, wantType, "transaction type ethers chose");
  const receipt = await within(10_000, "wait()", sent.wait());
  assert.equal(receipt.status, 1);
  assert.equal(receipt.type, wantType);
  assert.equal(receipt.gasUsed, 21000n);
  assert.equal(receipt.hash, sent.hash);
  assert.equal(await provider.getBalance(to), value);
  // No fees: the sender pays exactly the value.
  assert.equal(await provider.getBalance(wallet.address), before - value);
  const got = await provider.getTransaction(sent.hash);
  assert.equal(got.type, wantType);
  assert.equal(got.blockNumber, receipt.blockNumber);
  return { sent, receipt, got };
}

test("ethers: default transfer is legacy (type 0, gasPrice 0) and wait() returns the receipt", async () => {
  const { got } = await transferAndCheck({}, 0);
  assert.equal(got.gasPrice, 0n);
  assert.equal(got.chainId, BigInt(CHAIN_ID));
});

test("ethers: EIP-1559 transfer (type 2) with fees left to ethers", async () => {
  const { got } = await transferAndCheck({ type: 2 }, 2);
  assert.equal(got.maxFeePerGas, 0n);
  assert.equal(got.maxPriorityFeePerGas, 0n);
});

test("ethers: EIP-1559 transfer with explicit zero fees", async () => {
  await transferAndCheck({ maxFeePerGas: 0n, maxPriorityFeePerGas: 0n }, 2);
});

test("ethers: EIP-2930 transfer (type 1) keeps its access list", async () => {
  const accessList = [{ address: HKD_FACADE, storageKeys: [ethers.ZeroHash] }];
  const { got } = await transferAndCheck({ type: 1, accessList }, 1);
  assert.deepEqual(got.accessList.map((e) => ({ address: e.address, storageKeys: [...e.storageKeys] })),
    [{ address: ethers.getAddress(HKD_FACADE), storageKeys: [ethers.ZeroHash] }]);
});

test("ethers: ERC-20 facade reads (name, symbol, decimals, totalSupply, balanceOf)", async () => {
  assert.equal(await hkd.name(), "Hong Kong Dollar");
  assert.equal(await hkd.symbol(), "HKD");
  assert.equal(await hkd.decimals(), 2n);
  assert.equal(await hkd.totalSupply(), GENESIS_HKD_SUPPLY);
  assert.equal(await hkd.balanceOf(DEV[UNTOUCHED]), GENESIS_HKD);
  const cny = new ethers.Contract(CNY_FACADE, ASSET_ABI, provider);
  assert.equal(await cny.symbol(), "CNY");
  assert.equal(await cny.decimals(), 18n);
  // The native currency and its facade are one balance.
  assert.equal(await cny.balanceOf(DEV[UNTOUCHED]), await provider.getBalance(DEV[UNTOUCHED]));
  assert.equal(await provider.getCode(HKD_FACADE), "0xfe");
});

test("ethers: ERC-20 transfer; receipt logs parse as Transfer", async () => {
  const to = freshAddress();
  const tx = await hkd.transfer(to, 250n); // 2.50 HKD
  const receipt = await within(10_000, "wait()", tx.wait());
  assert.equal(receipt.status, 1);
  assert.equal(receipt.gasUsed, 60000n);
  const events = receipt.logs.filter((l) => l instanceof ethers.EventLog);
  assert.equal(events.length, 1);
  assert.equal(events[0].eventName, "Transfer");
  assert.equal(events[0].address, ethers.getAddress(HKD_FACADE));
  assert.deepEqual([...events[0].args], [wallet.address, ethers.getAddress(to), 250n]);
  assert.equal(await hkd.balanceOf(to), 250n);
});

test("ethers: transferWithReference emits Transfer and PaymentReference; queryFilter and getLogs find them by topic", async () => {
  const merchant = freshAddress();
  const ref = ethers.encodeBytes32String(`ORDER-${Date.now()}`);
  const tx = await hkd.transferWithReference(merchant, 1999n, ref);
  const receipt = await within(10_000, "wait()", tx.wait());
  assert.equal(receipt.status, 1);
  const parsed = receipt.logs.map((l) => iface.parseLog(l));
  assert.deepEqual(parsed.map((p) => p.name), ["Transfer", "PaymentReference"]);
  const pay = parsed[1];
  assert.equal(pay.args.ref, ref);
  assert.equal(pay.args.from, wallet.address);
  assert.equal(pay.args.to, ethers.getAddress(merchant));
  assert.equal(pay.args.amount, 1999n);

  // A merchant's view: payments to it, by topic.
  const byRef = await hkd.queryFilter(hkd.filters.PaymentReference(ref), receipt.blockNumber - 1);
  assert.equal(byRef.length, 1);
  assert.equal(byRef[0].transactionHash, receipt.hash);
  assert.equal(byRef[0].args.amount, 1999n);
  const toMerchant = await hkd.queryFilter(hkd.filters.Transfer(null, merchant), 0);
  assert.equal(toMerchant.length, 1);
  assert.equal(toMerchant[0].args.value, 1999n);
  // A topic that matches nothing.
  assert.equal((await hkd.queryFilter(hkd.filters.Transfer(merchant), 0)).length, 0);

  const logs = await provider.getLogs({
    address: HKD_FACADE,
    topics: [iface.getEvent("PaymentReference").topicHash, null, null, ethers.zeroPadValue(merchant, 32)],
    fromBlock: receipt.blockNumber,
    toBlock: receipt.blockNumber,
  });
  assert.equal(logs.length, 1);
  assert.equal(logs[0].blockHash, receipt.blockHash);
  assert.equal(logs[0].index, receipt.logs[1].index);
});

test("ethers: WebSocketProvider delivers new blocks and Transfer logs of a topic filter", async () => {
  const ws = new ethers.WebSocketProvider(WS_URL);
  try {
    const start = await ws.getBlockNumber();
    const blocks = new Inbox();
    await ws.on("block", (n) => blocks.push(n));
    // The node makes a heartbeat block every second when idle.
    const n1 = await blocks.next(5_000, "ws block event");
    const n2 = await blocks.next(5_000, "second ws block event");
    assert.ok(n1 >= start && n2 > n1, `blocks ${n1}, ${n2} after ${start}`);
    await ws.off("block");

    const to = freshAddress();
    const wsHkd = new ethers.Contract(HKD_FACADE, ASSET_ABI, ws);
    const logs = new Inbox();
    // With a topic filter (filters.Transfer(…)), ethers v6 passes only the
    // event payload to the listener; its args are decoded from the log.
    await wsHkd.on(wsHkd.filters.Transfer(null, to), (ev) => logs.push({ ...ev.args.toObject(), ev }));
    await untilLive(logs, async () => (await hkd.transfer(to, 1n)).wait());
    const sent = [];
    for (const v of [7n, 8n]) sent.push(await hkd.transfer(to, v));
    for (const [k, v] of [7n, 8n].entries()) {
      const got = await logs.nextWhere((l) => l.value !== 1n, 10_000, `Transfer of ${v} over WebSocket`);
      assert.equal(got.from, wallet.address);
      assert.equal(got.to, ethers.getAddress(to));
      assert.equal(got.value, v);
      assert.equal(got.ev.log.transactionHash, sent[k].hash);
    }
    await wsHkd.removeAllListeners();
  } finally {
    await ws.destroy();
  }
});

test("ethers: staticCall and estimateGas of a reverting call give CALL_EXCEPTION with the reason", async () => {
  const want = /is not an issuing bank of HKD/;
  await assert.rejects(hkd.mint.staticCall(wallet.address, 5n, ethers.ZeroHash), (e) => {
    assert.equal(e.code, "CALL_EXCEPTION");
    assert.match(e.reason, want);
    return true;
  });
  await assert.rejects(hkd.mint.estimateGas(wallet.address, 5n, ethers.ZeroHash), (e) => {
    assert.equal(e.code, "CALL_EXCEPTION");
    assert.match(e.reason, want);
    return true;
  });
  // Over the token balance: an ERC-20 reverts.
  await assert.rejects(hkd.transfer.staticCall(freshAddress(), GENESIS_HKD * 10n), (e) => {
    assert.equal(e.code, "CALL_EXCEPTION");
    assert.match(e.reason, /insufficient balance/);
    return true;
  });
});

test("ethers: overspending the native balance is INSUFFICIENT_FUNDS (gas limit given: eth_sendRawTransaction)", async () => {
  const nonce = await provider.getTransactionCount(wallet.address, "pending");
  await assert.rejects(
    wallet.sendTransaction({ to: freshAddress(), value: GENESIS_CNY * 2n, gasLimit: 21000n }),
    (e) => { assert.equal(e.code, "INSUFFICIENT_FUNDS", e.message); return true; });
  // Refused at admission: the nonce is not used.
  assert.equal(await provider.getTransactionCount(wallet.address, "pending"), nonce);
});

test("ethers: a used nonce is NONCE_EXPIRED", async () => {
  const nonce = await provider.getTransactionCount(wallet.address, "pending");
  assert.ok(nonce > 0);
  await assert.rejects(
    wallet.sendTransaction({ to: freshAddress(), value: 1n, nonce: nonce - 1, gasLimit: 21000n }),
    (e) => { assert.equal(e.code, "NONCE_EXPIRED", e.message); return true; });
});

test("ethers: approve, allowance and transferFrom by the spender, with Approval parsed", async () => {
  const spender = ethers.HDNodeWallet.fromPhrase(MNEMONIC, undefined, path(SENDER.ethersSpender)).connect(provider);
  const to = freshAddress();
  const r = await (await hkd.approve(spender.address, 500n)).wait();
  const approval = r.logs.map((l) => iface.parseLog(l)).find((e) => e?.name === "Approval");
  assert.deepEqual([...approval.args], [wallet.address, spender.address, 500n]);
  assert.equal(await hkd.allowance(wallet.address, spender.address), 500n);
  const before = await hkd.balanceOf(wallet.address);
  await (await hkd.connect(spender).transferFrom(wallet.address, to, 300n)).wait();
  assert.equal(await hkd.allowance(wallet.address, spender.address), 200n);
  assert.equal(await hkd.balanceOf(to), 300n);
  assert.equal(await hkd.balanceOf(wallet.address), before - 300n);
  // Beyond the allowance: a revert with the reason, before anything is sent.
  await assert.rejects(hkd.connect(spender).transferFrom.staticCall(wallet.address, to, 201n), (e) => {
    assert.equal(e.code, "CALL_EXCEPTION");
    assert.match(e.reason, /allowance/);
    return true;
  });
});

test("ethers: an operation that fails at execution is included with status 0; wait() throws CALL_EXCEPTION with the receipt", async () => {
  const nonce = await provider.getTransactionCount(wallet.address, "pending");
  // A gas limit given, so nothing is estimated: the node admits it and the
  // block executes it (over the token balance), as on Ethereum.
  const tx = await hkd.transfer(freshAddress(), GENESIS_HKD * 10n, { gasLimit: 60000n });
  await assert.rejects(within(10_000, "wait()", tx.wait()), (e) => {
    assert.equal(e.code, "CALL_EXCEPTION", e.message);
    assert.equal(e.receipt.status, 0);
    assert.equal(e.receipt.hash, tx.hash);
    assert.equal(e.receipt.logs.length, 0);
    // ethers builds its receipt from the fields it knows: the node's
    // extra tallyReason field is dropped, not an error.
    assert.equal(e.receipt.tallyReason, undefined);
    return true;
  });
  // Its nonce is used.
  assert.equal(await provider.getTransactionCount(wallet.address, "latest"), nonce + 1);
  // The node kept why it failed: docs/wallets.md's one-line call, run as
  // written with this provider and the receipt, names it; on a receipt of
  // status 1 it gives null, as its comment says.
  const reason = await reasonLine(provider, { hash: tx.hash });
  assert.match(reason, /^insufficient balance: 0x[0-9a-fA-F]{40} has [0-9.]+ [A-Z]+, needs [0-9.]+ [A-Z]+$/);
  const ok = await (await wallet.sendTransaction({ to: freshAddress(), value: 1n })).wait();
  assert.equal(ok.status, 1);
  assert.equal(await reasonLine(provider, ok), null);
});

// reasonLine runs docs/wallets.md's one-line call of
// tally_getTransactionReason as written: the body of an async function
// given the reader's provider and receipt, handing back its reason.
async function reasonLine(provider, receipt) {
  const lines = jsBlocks("docs/wallets.md").filter((b) => b.includes('provider.send("tally_getTransactionReason"'));
  assert.equal(lines.length, 1, "docs/wallets.md has one block calling tally_getTransactionReason");
  assert.equal(lines[0].trim().split("\n").length, 1, "the call is one line");
  const AsyncFunction = (async () => {}).constructor;
  return new AsyncFunction("provider", "receipt", lines[0] + "\nreturn reason;")(provider, receipt);
}

test("ethers: NonceManager sends a burst of transfers without waiting; all are receipted in nonce order", async () => {
  const managed = new ethers.NonceManager(wallet);
  const to = freshAddress();
  const first = await provider.getTransactionCount(wallet.address, "pending");
  const sent = await Promise.all(Array.from({ length: 10 }, (_, i) => managed.sendTransaction({ to, value: BigInt(i + 1) })));
  assert.deepEqual(sent.map((t) => t.nonce).sort((a, b) => a - b), Array.from({ length: 10 }, (_, i) => first + i));
  const receipts = await within(20_000, "10 receipts", Promise.all(sent.map((t) => t.wait())));
  assert.ok(receipts.every((r) => r.status === 1));
  assert.equal(await provider.getBalance(to), 55n);
});

test("ethers: a transfer offering a fee (as MetaMask may) is accepted and charged nothing; the receipt says 0 was taken", async () => {
  const to = freshAddress();
  const before = await provider.getBalance(wallet.address);
  const gwei = 10n ** 9n;
  const tx = await wallet.sendTransaction({ to, value: 1000n, maxFeePerGas: 2n * gwei, maxPriorityFeePerGas: 3n * gwei / 2n });
  const receipt = await within(10_000, "wait()", tx.wait());
  assert.equal(receipt.status, 1);
  // effectiveGasPrice is the price per gas deducted: none.
  assert.equal(receipt.gasPrice, 0n);
  assert.equal(receipt.fee, 0n);
  // Nothing is charged: the sender pays the value only.
  assert.equal(await provider.getBalance(wallet.address), before - 1000n);
  assert.equal(await provider.getBalance(to), 1000n);
});

// The js blocks of a document, in order.
function jsBlocks(doc) {
  const text = readFileSync(new URL(`../../../${doc}`, import.meta.url), "utf8");
  return [...text.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

// The node address the documents name (a dev node's), which the checks
// below point at the node under test: the one change made to a snippet.
const DOCUMENTED_URL = '"http://127.0.0.1:8545"';

function pointAtNode(code) {
  assert.ok(code.includes(DOCUMENTED_URL), `the snippet names ${DOCUMENTED_URL}`);
  return code.replaceAll(DOCUMENTED_URL, JSON.stringify(RPC_URL));
}

// runModule runs a document's snippet as the ES module a reader saves it
// as, with Node, in a directory of clients/js (so its imports resolve to
// the suite's packages) and the repository's root as its working directory
// (so its relative paths, abi/…, do); after its code come the lines of
// after, which print what the check reads. files are the modules it
// imports by a relative path, saved beside it (name to code). It resolves
// with the process' output.
async function runModule(name, code, after, files = {}) {
  const dir = new URL(`../.doc-snippet-${process.pid}-${name}/`, import.meta.url);
  mkdirSync(dir);
  try {
    for (const [file, text] of Object.entries(files)) {
      writeFileSync(new URL(file, dir), text);
    }
    const main = new URL("main.mjs", dir);
    writeFileSync(main, code + "\n" + after + "\n");
    const { stdout } = await execFileAsync(process.execPath, [fileURLToPath(main)], {
      cwd: fileURLToPath(new URL("../../../", import.meta.url)),
      timeout: 110_000,
    });
    return stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// The documents' snippets sign with the mnemonic's index 0, this file's
// sender, so they run here, after this file's other checks, one at a time.

// docs/dev-chain.md's ethers snippet, run as written: its one js block,
// a console's or a module's body (no imports), pointed at the node.
test("ethers: docs/dev-chain.md's snippet runs as written", async () => {
  const blocks = jsBlocks("docs/dev-chain.md");
  assert.equal(blocks.length, 1, "docs/dev-chain.md has one js block");
  const code = pointAtNode(blocks[0]);
  // The snippet is the body of an async function (it awaits at its top
  // level, as in an ES module or a console) given ethers, as the page's
  // import gives it; it hands back what it made for the checks below.
  const AsyncFunction = (async () => {}).constructor;
  const snippet = new AsyncFunction("ethers", code + "\nreturn { provider, wallet, tx, receipt, hkd };");
  const made = await within(30_000, "the snippet", snippet(ethers));
  try {
    assert.equal(made.wallet.address, DEV[0]);
    assert.equal(made.receipt.status, 1);
    assert.equal(made.receipt.hash, made.tx.hash);
    assert.equal(made.tx.to, DEV[1]);
    assert.equal(made.tx.value, ethers.parseEther("1.5"));
    // The HKD transfer: 2.50 HKD (250 base units) from index 0 to index 1
    // in a block after the CNY transfer's.
    const moved = await hkd.queryFilter(hkd.filters.Transfer(DEV[0], DEV[1]), made.receipt.blockNumber);
    assert.ok(moved.some((e) => e.args.value === 250n), `a Transfer of 250 from ${DEV[0]} to ${DEV[1]}: ${moved.map((e) => e.args.value)}`);
  } finally {
    made.provider.destroy();
  }
});

// docs/wallets.md's ethers and viem modules (its first two js blocks), run
// as written. Its wagmi config runs in the next check, its one-line call
// in the status-0 check above.
test("ethers: docs/wallets.md's ethers and viem modules run as written", async () => {
  const blocks = jsBlocks("docs/wallets.md");
  assert.ok(blocks[0].includes('from "ethers"') && blocks[1].includes('from "viem"'), "blocks 1 and 2 are the ethers and viem examples");
  const out = await runModule("wallets-ethers", pointAtNode(blocks[0]),
    "console.log(JSON.stringify({ tx: receipt.status, paid: paid.status, logs: paid.logs.map((l) => l.topics[0]) }));");
  const got = JSON.parse(out.trim().split("\n").at(-1));
  assert.equal(got.tx, 1);
  assert.equal(got.paid, 1);
  // "paid.logs: Transfer and PaymentReference"
  assert.deepEqual(got.logs, [iface.getEvent("Transfer").topicHash, iface.getEvent("PaymentReference").topicHash]);
  const viem = await runModule("wallets-viem", pointAtNode(blocks[1]), "console.log(receipt.status, receipt.to);");
  assert.equal(viem.trim(), `success ${DEV[1].toLowerCase()}`);
});

// docs/wallets.md's wagmi config (the dApp section's block) saved beside
// the viem module as ./chain.js, which it imports, and read through with
// wagmi's actions over the config's transport. Two Node processes load
// viem and wagmi cold: on a loaded 2-core machine that alone took 18 s, so
// the check has twice the suite's 60 s.
test("ethers: docs/wallets.md's wagmi config runs as written, importing the viem module as ./chain.js", { timeout: 120_000 }, async () => {
  const blocks = jsBlocks("docs/wallets.md");
  const wagmi = blocks.filter((b) => b.includes("createConfig("));
  assert.equal(wagmi.length, 1, "docs/wallets.md has one wagmi config");
  assert.ok(wagmi[0].includes('from "./chain.js"'), "the wagmi config imports the viem block as ./chain.js");
  const before = await provider.getBalance(DEV[1]);
  const cfg = await runModule("wallets-wagmi", wagmi[0], [
    'import { getBalance, getChainId, readContract } from "@wagmi/core";',
    `const balance = await getBalance(config, { address: ${JSON.stringify(DEV[1])} });`,
    `const symbol = await readContract(config, { address: ${JSON.stringify(HKD_FACADE)}, abi: ${JSON.stringify(ASSET_ABI)}, functionName: "symbol" });`,
    "console.log(JSON.stringify({ chainId: getChainId(config), connectors: config.connectors.map((c) => c.type), balance: String(balance.value), symbol }));",
  ].join("\n"), { "chain.js": pointAtNode(blocks[1]) });
  const read = JSON.parse(cfg.trim().split("\n").at(-1));
  assert.equal(read.chainId, CHAIN_ID);
  assert.deepEqual(read.connectors, ["injected"]);
  assert.equal(read.symbol, "HKD");
  // Importing ./chain.js ran the viem module: its 1.5 CNY reached index 1
  // before wagmi read the balance over the config's transport.
  assert.ok(BigInt(read.balance) >= before + ethers.parseEther("1.5"), `balance ${read.balance}, was ${before}`);
});

// docs/operations.md's ethers example, run as written: the payment
// succeeds and the refused one prints the reason the comment shows.
test("ethers: docs/operations.md's ethers example runs as written and prints the reason it shows", async () => {
  const example = jsBlocks("docs/operations.md").filter((b) => b.includes("console.log(e.reason)"));
  assert.equal(example.length, 1, "docs/operations.md has one example printing e.reason");
  const m = example[0].match(/console\.log\(e\.reason\); \/\/ "(.*)"$/m);
  assert.ok(m, "the example shows the reason it prints");
  const out = await runModule("operations", pointAtNode(example[0]), "console.log(JSON.stringify({ status: receipt.status, paid: String(paid) }));");
  const lines = out.trim().split("\n");
  assert.deepEqual(JSON.parse(lines.at(-1)), { status: 1, paid: "12345" });
  // The comment's text, "…" standing for anything.
  const shown = new RegExp("^" + m[1].split("…").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*") + "$");
  assert.match(lines[0], shown, "the reason printed is the one the comment shows");
});
