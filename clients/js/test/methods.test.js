// What dApps call before a wallet is connected, and the methods beyond the
// basic set that ethers and viem expose: estimates and calls without a
// sender, overspending caught at estimation, block receipts, transactions
// by block and index, pending-transaction filters and subscriptions, access
// lists, storage slots, fee history with a decimal count.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { ethers } from "ethers";
import {
  createPublicClient, createWalletClient, http, webSocket, defineChain,
  BaseError, InsufficientFundsError, EstimateGasExecutionError,
} from "viem";
import { mnemonicToAccount } from "viem/accounts";
import {
  RPC_URL, WS_URL, CHAIN_ID, MNEMONIC, SENDER, path, GENESIS_CNY, HKD_FACADE, ASSET_ABI,
  freshAddress, Inbox, untilLive,
} from "../lib/env.js";

const provider = new ethers.JsonRpcProvider(RPC_URL, undefined, { cacheTimeout: -1, pollingInterval: 100 });
const wallet = ethers.HDNodeWallet.fromPhrase(MNEMONIC, undefined, path(SENDER.methods)).connect(provider);
const tally = defineChain({
  id: CHAIN_ID, name: "Tally dev",
  nativeCurrency: { name: "Chinese Yuan", symbol: "CNY", decimals: 18 },
  rpcUrls: { default: { http: [RPC_URL], webSocket: [WS_URL] } },
});
const client = createPublicClient({ chain: tally, transport: http(), pollingInterval: 50 });
const account = mnemonicToAccount(MNEMONIC, { addressIndex: SENDER.methods });
const walletClient = createWalletClient({ account, chain: tally, transport: http(), pollingInterval: 50 });

after(() => provider.destroy());

/** Sends a small transfer from the ethers wallet and waits for its receipt. */
async function sendOne(value = 1n) {
  const tx = await wallet.sendTransaction({ to: freshAddress(), value });
  return tx.wait();
}

test("methods: estimates and calls without a sender (no wallet connected yet)", async () => {
  // As go-ethereum: the sender is the zero address, which holds nothing, so
  // an estimate with a value would be insufficient funds there too.
  assert.equal(await provider.estimateGas({ to: freshAddress() }), 21000n);
  assert.equal(await client.estimateGas({ to: freshAddress() }), 21000n);
  assert.equal(await provider.call({ to: freshAddress() }), "0x");
  const hkd = new ethers.Contract(HKD_FACADE, ASSET_ABI, provider);
  assert.equal(await hkd.decimals(), 2n);
});

test("methods: overspending caught at estimation is INSUFFICIENT_FUNDS (ethers) and InsufficientFundsError (viem)", async () => {
  // No gas limit given: both libraries estimate first, and classify the
  // estimate's error by go-ethereum's text.
  await assert.rejects(
    wallet.sendTransaction({ to: freshAddress(), value: GENESIS_CNY * 2n }),
    (e) => { assert.equal(e.code, "INSUFFICIENT_FUNDS", e.message); return true; });
  const err = await walletClient.sendTransaction({ to: freshAddress(), value: GENESIS_CNY * 2n }).then(() => null, (e) => e);
  assert.ok(err instanceof BaseError, `not a viem error: ${err}`);
  assert.ok(err.walk((e) => e instanceof EstimateGasExecutionError), err.message);
  assert.ok(err.walk((e) => e instanceof InsufficientFundsError), err.message);
});

test("methods: eth_getBlockReceipts and transactions by block number or hash and index", async () => {
  const receipt = await sendOne();
  const receipts = await client.getBlockReceipts({ blockNumber: BigInt(receipt.blockNumber) });
  const mine = receipts.find((r) => r.transactionHash === receipt.hash);
  assert.ok(mine, `block ${receipt.blockNumber} receipts lack ${receipt.hash}`);
  assert.equal(mine.status, "success");
  assert.equal(receipts.length, (await provider.getBlock(receipt.blockNumber)).transactions.length);

  const byNumber = await client.getTransaction({ blockNumber: BigInt(receipt.blockNumber), index: receipt.index });
  assert.equal(byNumber.hash, receipt.hash);
  const byHash = await client.getTransaction({ blockHash: receipt.blockHash, index: receipt.index });
  assert.equal(byHash.hash, receipt.hash);
  // Past the block's last transaction: null, as go-ethereum (viem throws its not-found error).
  assert.equal(await provider.send("eth_getTransactionByBlockNumberAndIndex", [ethers.toQuantity(receipt.blockNumber), "0x7fff"]), null);
});

test("methods: eth_createAccessList and eth_getStorageAt", async () => {
  const list = await client.createAccessList({ account: account.address, to: freshAddress(), value: 1n });
  assert.deepEqual(list.accessList, []);
  assert.equal(list.gasUsed, 21000n);
  assert.equal(await provider.getStorage(HKD_FACADE, 0), ethers.ZeroHash);
});

test("methods: eth_feeHistory takes a decimal block count, as go-ethereum", async () => {
  const head = await provider.getBlockNumber();
  for (const count of [4, "4", "0x4"]) {
    const fh = await provider.send("eth_feeHistory", [count, "latest", [50]]);
    assert.equal(fh.baseFeePerGas.length, 5, `count ${JSON.stringify(count)}`);
    assert.ok(fh.baseFeePerGas.every((f) => BigInt(f) === 0n));
    assert.ok(Number(fh.oldestBlock) >= head - 3);
  }
});

test("methods: a pending-transaction filter and a newPendingTransactions subscription report a sent transaction", async () => {
  const filter = await client.createPendingTransactionFilter();
  const tx = await wallet.sendTransaction({ to: freshAddress(), value: 1n });
  await tx.wait();
  const hashes = await client.getFilterChanges({ filter });
  assert.ok(hashes.includes(tx.hash), `filter changes ${hashes} lack ${tx.hash}`);
  assert.equal(await client.uninstallFilter({ filter }), true);

  const ws = createPublicClient({ chain: tally, transport: webSocket(WS_URL) });
  const seen = new Inbox();
  const unwatch = ws.watchPendingTransactions({ onTransactions: (hs) => hs.forEach((h) => seen.push(h)), onError: (e) => seen.push(e) });
  try {
    let probe;
    await untilLive(seen, async () => { probe = await wallet.sendTransaction({ to: freshAddress(), value: 1n }); await probe.wait(); });
    const next = await wallet.sendTransaction({ to: freshAddress(), value: 2n });
    const got = await seen.nextWhere((h) => h === next.hash, 10_000, "pending hash of the next transaction");
    assert.equal(got, next.hash);
  } finally {
    unwatch();
    await (await ws.transport.getRpcClient()).close();
  }
});
