// Multicall3: viem's multicall (and wagmi's batched reads) and ethers'
// aggregate3, over the system contracts' views.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { ethers } from "ethers";
import { readFileSync } from "node:fs";
import { createPublicClient, http, defineChain } from "viem";
import {
  RPC_URL, WS_URL, CHAIN_ID, MNEMONIC, DEV, SENDER, UNTOUCHED, path,
  GENESIS_CNY, GENESIS_HKD, GENESIS_HKD_SUPPLY, CNY_FACADE, HKD_FACADE, MULTICALL3, ASSET_ABI,
} from "../lib/env.js";

/** Multicall3's published ABI (abi/Multicall3.json). */
const MULTICALL3_ABI = JSON.parse(readFileSync(new URL("../../../abi/Multicall3.json", import.meta.url), "utf8"));

const provider = new ethers.JsonRpcProvider(RPC_URL, undefined, { cacheTimeout: -1, pollingInterval: 100 });
const wallet = ethers.HDNodeWallet.fromPhrase(MNEMONIC, undefined, path(SENDER.multicall)).connect(provider);
/** The chain as a dApp declares it to viem and wagmi, with Multicall3 at its canonical address. */
const tally = defineChain({
  id: CHAIN_ID, name: "Tally dev",
  nativeCurrency: { name: "Chinese Yuan", symbol: "CNY", decimals: 18 },
  rpcUrls: { default: { http: [RPC_URL], webSocket: [WS_URL] } },
  contracts: { multicall3: { address: MULTICALL3 } },
});
const client = createPublicClient({ chain: tally, transport: http(), pollingInterval: 50 });

after(() => provider.destroy());

test("multicall: viem multicall batches ERC-20 reads through Multicall3", async () => {
  assert.notEqual(await provider.getCode(MULTICALL3), "0x");
  const hkdC = { address: HKD_FACADE, abi: ASSET_ABI };
  const cnyC = { address: CNY_FACADE, abi: ASSET_ABI };
  const results = await client.multicall({
    contracts: [
      { ...hkdC, functionName: "symbol" },
      { ...hkdC, functionName: "decimals" },
      { ...hkdC, functionName: "totalSupply" },
      { ...hkdC, functionName: "balanceOf", args: [DEV[UNTOUCHED]] },
      { ...cnyC, functionName: "balanceOf", args: [DEV[UNTOUCHED]] },
      { ...hkdC, functionName: "isIssuer", args: [DEV[101]] },
    ],
  });
  assert.deepEqual(results.map((r) => r.status), Array(6).fill("success"));
  assert.deepEqual(results.map((r) => r.result), ["HKD", 2, GENESIS_HKD_SUPPLY, GENESIS_HKD, GENESIS_CNY, true]);

  // allowFailure (the default): one failing call does not fail the batch.
  const mixed = await client.multicall({
    contracts: [
      { ...hkdC, functionName: "symbol" },
      { ...hkdC, functionName: "mint", args: [DEV[UNTOUCHED], 1n, ethers.ZeroHash] },
    ],
  });
  assert.equal(mixed[0].status, "success");
  assert.equal(mixed[1].status, "failure");
  // allowFailure false: the failure throws.
  await assert.rejects(client.multicall({ allowFailure: false, contracts: [{ ...hkdC, functionName: "mint", args: [DEV[UNTOUCHED], 1n, ethers.ZeroHash] }] }));
});

test("multicall: Multicall3's own reads (getBlockNumber, getEthBalance, getChainId), ethers' aggregate3, and a transaction to it is refused", async () => {
  const mc = { address: MULTICALL3, abi: MULTICALL3_ABI };
  const before = await client.getBlockNumber({ cacheTime: 0 });
  const n = await client.readContract({ ...mc, functionName: "getBlockNumber" });
  const after = await client.getBlockNumber({ cacheTime: 0 });
  assert.ok(before <= n && n <= after, `Multicall3 getBlockNumber ${n}, eth_blockNumber ${before} before and ${after} after`);
  assert.equal(await client.readContract({ ...mc, functionName: "getEthBalance", args: [DEV[UNTOUCHED]] }), GENESIS_CNY);
  const chainId = await client.readContract({ ...mc, functionName: "getChainId" });
  assert.equal(chainId, BigInt(CHAIN_ID));

  // ethers, as a dApp without viem batches: aggregate3 through staticCall.
  const m3 = new ethers.Contract(MULTICALL3, MULTICALL3_ABI, wallet);
  const iface = new ethers.Interface(ASSET_ABI);
  const out = await m3.aggregate3.staticCall([
    { target: HKD_FACADE, allowFailure: false, callData: iface.encodeFunctionData("balanceOf", [DEV[UNTOUCHED]]) },
  ]);
  assert.equal(out[0].success, true);
  assert.equal(iface.decodeFunctionResult("balanceOf", out[0].returnData)[0], GENESIS_HKD);

  // Read-only: a transaction to it is refused with a reason.
  const nonce = await provider.getTransactionCount(wallet.address, "pending");
  await assert.rejects(
    wallet.sendTransaction({ to: MULTICALL3, data: m3.interface.encodeFunctionData("aggregate3", [[]]), gasLimit: 100000n }),
    (e) => {
      // ethers has no code for this refusal: UNKNOWN_ERROR with the node's error.
      assert.equal(e.code, "UNKNOWN_ERROR");
      assert.match(e.error?.message ?? "", /transaction to Multicall3 \(0x[0-9a-fA-F]{40}\) refused: it is read-only/, e.message);
      return true;
    });
  assert.equal(await provider.getTransactionCount(wallet.address, "pending"), nonce);
});
