// viem against tallyd --dev, used as a wallet app and a dApp (and wagmi,
// which calls these viem actions) use it.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createPublicClient, createWalletClient, http, webSocket, defineChain, getAddress,
  parseEther, parseEventLogs, getContract, stringToHex, zeroHash,
  BaseError, ContractFunctionRevertedError, InsufficientFundsError, NonceTooLowError,
} from "viem";
import { mnemonicToAccount, nonceManager } from "viem/accounts";
import {
  RPC_URL, WS_URL, CHAIN_ID, MNEMONIC, DEV, SENDER, UNTOUCHED,
  GENESIS_CNY, GENESIS_HKD, GENESIS_HKD_SUPPLY, HKD_FACADE, ASSET_ABI,
  freshAddress, Inbox, untilLive,
} from "../lib/env.js";

/** The dev chain as a dApp declares it to viem and wagmi. */
const tally = defineChain({
  id: CHAIN_ID,
  name: "Tally dev",
  nativeCurrency: { name: "Chinese Yuan", symbol: "CNY", decimals: 18 },
  rpcUrls: { default: { http: [RPC_URL], webSocket: [WS_URL] } },
});

// viem polls every 4 s by default; blocks here come within milliseconds.
const client = createPublicClient({ chain: tally, transport: http(), pollingInterval: 50 });
const account = mnemonicToAccount(MNEMONIC, { addressIndex: SENDER.viem });
const wallet = createWalletClient({ account, chain: tally, transport: http(), pollingInterval: 50 });
const hkd = getContract({ address: HKD_FACADE, abi: ASSET_ABI, client: { public: client, wallet } });

/** The first error in err's cause chain that is an instance of cls. */
function causeOf(err, cls) {
  assert.ok(err instanceof BaseError, `not a viem error: ${err}`);
  const found = err.walk((e) => e instanceof cls);
  assert.ok(found instanceof cls, `no ${cls.name} in the cause chain of: ${err.message}`);
  return found;
}

test("viem: mnemonicToAccount derives the documented accounts", () => {
  for (const [i, addr] of Object.entries(DEV)) {
    assert.equal(mnemonicToAccount(MNEMONIC, { addressIndex: Number(i) }).address, addr, `index ${i}`);
  }
});

test("viem: chain id and balances", async () => {
  assert.equal(await client.getChainId(), CHAIN_ID);
  assert.equal(await client.getBalance({ address: DEV[UNTOUCHED] }), GENESIS_CNY);
  assert.equal(await client.getBalance({ address: freshAddress() }), 0n);
});

test("viem: estimateFeesPerGas on base fee 0 gives zero EIP-1559 fees", async () => {
  const block = await client.getBlock();
  assert.equal(block.baseFeePerGas, 0n);
  assert.deepEqual(await client.estimateFeesPerGas(), { maxFeePerGas: 0n, maxPriorityFeePerGas: 0n });
  assert.equal(await client.getGasPrice(), 0n);
});

/** Sends a native transfer, waits for the receipt and checks balances. */
async function transferAndCheck(extra, wantType) {
  const to = freshAddress();
  const value = parseEther("0.75");
  const before = await client.getBalance({ address: account.address });
  const hash = await wallet.sendTransaction({ to, value, ...extra });
  const receipt = await client.waitForTransactionReceipt({ hash, timeout: 10_000 });
  assert.equal(receipt.status, "success");
  assert.equal(receipt.type, wantType);
  assert.equal(receipt.gasUsed, 21000n);
  assert.equal(await client.getBalance({ address: to }), value);
  assert.equal(await client.getBalance({ address: account.address }), before - value);
  const tx = await client.getTransaction({ hash });
  assert.equal(tx.type, wantType);
  assert.equal(tx.from, account.address.toLowerCase());
  return tx;
}

test("viem: default transfer is EIP-1559 with zero fees; waitForTransactionReceipt", async () => {
  const tx = await transferAndCheck({}, "eip1559");
  assert.equal(tx.maxFeePerGas, 0n);
  assert.equal(tx.maxPriorityFeePerGas, 0n);
});

test("viem: legacy transfer", async () => {
  const tx = await transferAndCheck({ type: "legacy", gasPrice: 0n }, "legacy");
  assert.equal(tx.gasPrice, 0n);
  assert.equal(tx.chainId, CHAIN_ID);
});

test("viem: EIP-2930 transfer keeps its access list", async () => {
  const accessList = [{ address: HKD_FACADE, storageKeys: [zeroHash] }];
  const tx = await transferAndCheck({ type: "eip2930", accessList, gasPrice: 0n }, "eip2930");
  assert.deepEqual(tx.accessList, accessList);
});

test("viem: ERC-20 facade reads through readContract", async () => {
  assert.equal(await hkd.read.name(), "Hong Kong Dollar");
  assert.equal(await hkd.read.symbol(), "HKD");
  assert.equal(await hkd.read.decimals(), 2);
  assert.equal(await hkd.read.totalSupply(), GENESIS_HKD_SUPPLY);
  assert.equal(await client.readContract({ address: HKD_FACADE, abi: ASSET_ABI, functionName: "balanceOf", args: [DEV[UNTOUCHED]] }), GENESIS_HKD);
});

test("viem: writeContract transfer and transferWithReference; parseEventLogs, getContractEvents, getLogs and an event filter", async () => {
  const merchant = freshAddress();
  const ref = stringToHex(`INV-${Date.now()}`, { size: 32 });
  const filter = await client.createContractEventFilter({ address: HKD_FACADE, abi: ASSET_ABI, eventName: "Transfer", args: { to: merchant } });

  const h1 = await hkd.write.transfer([merchant, 300n]);
  const r1 = await client.waitForTransactionReceipt({ hash: h1, timeout: 10_000 });
  const h2 = await hkd.write.transferWithReference([merchant, 1200n, ref]);
  const r2 = await client.waitForTransactionReceipt({ hash: h2, timeout: 10_000 });
  assert.equal(r1.status, "success");
  assert.equal(r2.status, "success");
  assert.equal(r2.gasUsed, 60000n);

  const events = parseEventLogs({ abi: ASSET_ABI, logs: r2.logs });
  assert.deepEqual(events.map((e) => e.eventName), ["Transfer", "PaymentReference"]);
  assert.deepEqual(events[1].args, { ref, from: account.address, to: getAddress(merchant), amount: 1200n });

  const transfers = await hkd.getEvents.Transfer({ to: merchant }, { fromBlock: r1.blockNumber });
  assert.deepEqual(transfers.map((e) => e.args.value), [300n, 1200n]);
  assert.deepEqual(transfers.map((e) => e.transactionHash), [h1, h2]);

  const byRef = await client.getContractEvents({ address: HKD_FACADE, abi: ASSET_ABI, eventName: "PaymentReference", args: { ref }, fromBlock: 0n });
  assert.equal(byRef.length, 1);
  assert.equal(byRef[0].args.amount, 1200n);

  const paymentEvent = ASSET_ABI.find((e) => e.type === "event" && e.name === "PaymentReference");
  const logs = await client.getLogs({ address: HKD_FACADE, event: paymentEvent, args: { to: merchant }, fromBlock: r2.blockNumber, toBlock: r2.blockNumber });
  assert.equal(logs.length, 1);
  assert.equal(logs[0].transactionHash, h2);

  // The filter installed before both transfers reports both, then nothing new.
  const changes = await client.getFilterChanges({ filter });
  assert.deepEqual(changes.map((l) => [l.transactionHash, l.args.value]), [[h1, 300n], [h2, 1200n]]);
  assert.deepEqual(await client.getFilterChanges({ filter }), []);
  assert.equal(await client.uninstallFilter({ filter }), true);
});

test("viem: WebSocket transport watches block numbers and a contract event", async () => {
  const ws = createPublicClient({ chain: tally, transport: webSocket(WS_URL) });
  const unwatch = [];
  try {
    const blocks = new Inbox();
    unwatch.push(ws.watchBlockNumber({ onBlockNumber: (n) => blocks.push(n), onError: (e) => blocks.push(e) }));
    const b1 = await blocks.next(5_000, "block number");
    const b2 = await blocks.next(5_000, "next block number");
    assert.equal(typeof b1, "bigint", String(b1));
    assert.ok(b2 > b1, `${b2} after ${b1}`);

    const to = freshAddress();
    const logs = new Inbox();
    unwatch.push(ws.watchContractEvent({
      address: HKD_FACADE, abi: ASSET_ABI, eventName: "Transfer", args: { to },
      onLogs: (ls) => ls.forEach((l) => logs.push(l)), onError: (e) => logs.push(e),
    }));
    const send = async (v) => {
      const hash = await hkd.write.transfer([to, v]);
      await client.waitForTransactionReceipt({ hash, timeout: 10_000 });
      return hash;
    };
    await untilLive(logs, () => send(1n));
    const hashes = [await send(5n), await send(6n)];
    for (const [k, v] of [5n, 6n].entries()) {
      const l = await logs.nextWhere((x) => !(x?.args?.value === 1n), 10_000, `Transfer of ${v}`);
      assert.equal(l.eventName, "Transfer", String(l));
      assert.equal(l.args.value, v);
      assert.equal(l.args.from, account.address);
      assert.equal(l.transactionHash, hashes[k]);
    }
  } finally {
    unwatch.forEach((u) => u());
    await (await ws.transport.getRpcClient()).close();
  }
});

test("viem: simulateContract of a reverting call gives ContractFunctionRevertedError with the reason", async () => {
  const err = await client.simulateContract({
    account, address: HKD_FACADE, abi: ASSET_ABI, functionName: "mint", args: [account.address, 5n, zeroHash],
  }).then(() => null, (e) => e);
  assert.ok(err, "mint by a non-issuer simulated without error");
  const reverted = causeOf(err, ContractFunctionRevertedError);
  assert.match(reverted.reason, /is not an issuing bank of HKD/);

  const err2 = await hkd.simulate.transfer([freshAddress(), GENESIS_HKD * 10n], { account }).then(() => null, (e) => e);
  assert.match(causeOf(err2, ContractFunctionRevertedError).reason, /insufficient balance/);
});

test("viem: overspending the native balance is InsufficientFundsError (gas given: eth_sendRawTransaction)", async () => {
  const err = await wallet.sendTransaction({ to: freshAddress(), value: GENESIS_CNY * 2n, gas: 21000n }).then(() => null, (e) => e);
  assert.ok(err, "overspend accepted");
  causeOf(err, InsufficientFundsError);
});

test("viem: a used nonce is NonceTooLowError", async () => {
  const nonce = await client.getTransactionCount({ address: account.address });
  assert.ok(nonce > 0);
  const err = await wallet.sendTransaction({ to: freshAddress(), value: 1n, nonce: nonce - 1, gas: 21000n }).then(() => null, (e) => e);
  assert.ok(err, "stale nonce accepted");
  causeOf(err, NonceTooLowError);
});

test("viem: an operation that fails at execution is receipted as reverted and uses its nonce", async () => {
  const nonce = await client.getTransactionCount({ address: account.address });
  // gas given: viem does not estimate, the node admits it, the block executes it.
  const hash = await hkd.write.transfer([freshAddress(), GENESIS_HKD * 10n], { gas: 60000n });
  const receipt = await client.waitForTransactionReceipt({ hash, timeout: 10_000 });
  assert.equal(receipt.status, "reverted");
  assert.deepEqual(receipt.logs, []);
  assert.equal(await client.getTransactionCount({ address: account.address }), nonce + 1);
  // viem copies the receipt's JSON: the node's reason comes along, and
  // tally_getTransactionReason gives the same text.
  assert.match(receipt.tallyReason, /^insufficient balance: 0x[0-9a-fA-F]{40} has [0-9.]+ [A-Z]+, needs [0-9.]+ [A-Z]+$/);
  assert.equal(await client.request({ method: "tally_getTransactionReason", params: [hash] }), receipt.tallyReason);
});

test("viem: a nonce manager sends a burst of writes without waiting; all succeed", async () => {
  const managed = mnemonicToAccount(MNEMONIC, { addressIndex: SENDER.viem, nonceManager });
  const w = createWalletClient({ account: managed, chain: tally, transport: http(), pollingInterval: 50 });
  const to = freshAddress();
  const hashes = await Promise.all(Array.from({ length: 10 }, (_, i) =>
    w.writeContract({ address: HKD_FACADE, abi: ASSET_ABI, functionName: "transfer", args: [to, BigInt(i + 1)] })));
  const receipts = await Promise.all(hashes.map((hash) => client.waitForTransactionReceipt({ hash, timeout: 20_000 })));
  assert.ok(receipts.every((r) => r.status === "success"));
  assert.equal(await hkd.read.balanceOf([to]), 55n);
});
