// Reads pinned to a recent block: clients that read at the block they just
// saw, by number or by hash (EIP-1898).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { ethers } from "ethers";
import { createPublicClient, http, defineChain } from "viem";
import {
  RPC_URL, WS_URL, CHAIN_ID, MNEMONIC, DEV, SENDER, UNTOUCHED, path,
  GENESIS_CNY, HKD_FACADE, ASSET_ABI, freshAddress,
} from "../lib/env.js";

const provider = new ethers.JsonRpcProvider(RPC_URL, undefined, { cacheTimeout: -1, pollingInterval: 100 });
const wallet = ethers.HDNodeWallet.fromPhrase(MNEMONIC, undefined, path(SENDER.reads)).connect(provider);
const hkd = new ethers.Contract(HKD_FACADE, ASSET_ABI, wallet);
const tally = defineChain({
  id: CHAIN_ID, name: "Tally dev",
  nativeCurrency: { name: "Chinese Yuan", symbol: "CNY", decimals: 18 },
  rpcUrls: { default: { http: [RPC_URL], webSocket: [WS_URL] } },
});
const client = createPublicClient({ chain: tally, transport: http(), pollingInterval: 50 });

after(() => provider.destroy());

test("reads: balances, nonces and contract calls pinned to the blocks before and after a transfer", async () => {
  const to = freshAddress();
  const r1 = await (await wallet.sendTransaction({ to, value: 1000n })).wait();
  const r2 = await (await hkd.transfer(to, 250n)).wait();
  const before = r1.blockNumber - 1;

  assert.equal(await provider.getBalance(to, before), 0n);
  assert.equal(await provider.getBalance(to, r1.blockNumber), 1000n);
  const nonceAfter = await provider.getTransactionCount(wallet.address, r2.blockNumber);
  assert.equal(await provider.getTransactionCount(wallet.address, before), nonceAfter - 2);
  assert.equal(await provider.getTransactionCount(wallet.address, r1.blockNumber), nonceAfter - 1);
  assert.equal(await hkd.balanceOf(to, { blockTag: r1.blockNumber }), 0n);
  assert.equal(await hkd.balanceOf(to, { blockTag: r2.blockNumber }), 250n);

  assert.equal(await client.getBalance({ address: to, blockNumber: BigInt(before) }), 0n);
  assert.equal(await client.readContract({ address: HKD_FACADE, abi: ASSET_ABI, functionName: "balanceOf", args: [to], blockNumber: BigInt(r1.blockNumber) }), 0n);
  assert.equal(await client.readContract({ address: HKD_FACADE, abi: ASSET_ABI, functionName: "balanceOf", args: [to], blockNumber: BigInt(r2.blockNumber) }), 250n);
  // By block hash too (EIP-1898).
  assert.equal(await client.getBalance({ address: to, blockHash: r1.blockHash }), 1000n);
});

test("reads: a read older than the node's window of recent states gets go-ethereum's 'historical state … is not available'", async () => {
  const window = Number(process.env.TALLY_HISTORY_BLOCKS);
  assert.ok(window > 4, "TALLY_HISTORY_BLOCKS must be set (e2e/js_test.go sets it to the node's state.history-blocks)");
  // Push block 1 out of the window: each transfer makes a block.
  while ((await provider.getBlockNumber()) < window + 4) {
    await (await wallet.sendTransaction({ to: freshAddress(), value: 1n })).wait();
  }
  const head = await provider.getBlockNumber();
  // Mid-window (other check files may add blocks meanwhile): answered.
  assert.equal(await provider.getBalance(DEV[UNTOUCHED], head - window / 2), GENESIS_CNY);
  const want = /historical state [0-9a-f]+ is not available: block 1 is older than/;
  await assert.rejects(provider.getBalance(DEV[UNTOUCHED], 1), (e) => {
    assert.match(e.error?.message ?? "", want, e.message);
    return true;
  });
  await assert.rejects(client.getBalance({ address: DEV[UNTOUCHED], blockNumber: 1n }), (e) => {
    assert.match(e.details ?? "", want, e.message);
    return true;
  });
});
