// wagmi (its framework-free core, which its React hooks call) in a dApp
// whose user has an injected wallet: window.ethereum is an EIP-1193
// provider that, as MetaMask does, holds the key, fills and signs
// eth_sendTransaction itself and passes every other call to the node.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import {
  createConfig, http, injected, connect, disconnect, getAccount, getChainId, getBalance,
  readContract, readContracts, writeContract, sendTransaction, waitForTransactionReceipt, watchContractEvent,
} from "@wagmi/core";
import { createWalletClient, defineChain, getAddress, http as viemHttp, parseEventLogs, parseEther, stringToHex } from "viem";
import { mnemonicToAccount } from "viem/accounts";
import {
  RPC_URL, WS_URL, CHAIN_ID, MNEMONIC, DEV, SENDER, UNTOUCHED,
  GENESIS_HKD, HKD_FACADE, MULTICALL3, ASSET_ABI, freshAddress, Inbox, untilLive,
} from "../lib/env.js";

const tally = defineChain({
  id: CHAIN_ID, name: "Tally dev",
  nativeCurrency: { name: "Chinese Yuan", symbol: "CNY", decimals: 18 },
  rpcUrls: { default: { http: [RPC_URL], webSocket: [WS_URL] } },
  // wagmi batches reads (readContracts, useReadContracts) through it.
  contracts: { multicall3: { address: MULTICALL3 } },
});

/** An injected wallet: the EIP-1193 provider a wallet extension puts on window.ethereum. */
class InjectedWallet extends EventEmitter {
  #id = 0;
  constructor(account) {
    super();
    this.account = account;
    this.signer = createWalletClient({ account, chain: tally, transport: viemHttp(RPC_URL) });
  }
  async request({ method, params = [] }) {
    switch (method) {
      case "eth_requestAccounts":
      case "eth_accounts":
        return [this.account.address];
      case "wallet_requestPermissions":
        return [{ parentCapability: "eth_accounts" }];
      case "eth_sendTransaction": {
        const [tx] = params;
        const big = (v) => (v == null ? undefined : BigInt(v));
        return this.signer.sendTransaction({ to: tx.to, data: tx.data, value: big(tx.value), gas: big(tx.gas) });
      }
      default: {
        const res = await fetch(RPC_URL, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ jsonrpc: "2.0", id: ++this.#id, method, params }),
        });
        const body = await res.json();
        if (body.error) throw Object.assign(new Error(body.error.message), body.error);
        return body.result;
      }
    }
  }
}

const account = mnemonicToAccount(MNEMONIC, { addressIndex: SENDER.wagmi });
// wagmi's injected connector looks for window.ethereum, as in a browser.
globalThis.window = Object.assign(new EventTarget(), { ethereum: new InjectedWallet(account) });

const sentBodies = [];
const config = createConfig({
  chains: [tally],
  connectors: [injected({ target: { id: "test-wallet", name: "Test wallet", provider: (w) => w?.ethereum } })],
  // The bodies of the JSON-RPC requests the dApp sends, to count its calls.
  transports: { [tally.id]: http(RPC_URL, { onFetchRequest: (_req, init) => { sentBodies.push(JSON.parse(init.body)); } }) },
  // The test wallet does not announce itself by EIP-6963.
  multiInjectedProviderDiscovery: false,
  pollingInterval: 50,
});

after(async () => {
  await disconnect(config).catch(() => {});
  delete globalThis.window;
});

test("wagmi: connect the injected wallet; chain id, balance and ERC-20 reads", async () => {
  const res = await connect(config, { connector: config.connectors[0] });
  assert.deepEqual(res.accounts, [DEV[SENDER.wagmi]]);
  assert.equal(res.chainId, CHAIN_ID);
  assert.equal(getAccount(config).status, "connected");
  assert.equal(getChainId(config), CHAIN_ID);
  const bal = await getBalance(config, { address: DEV[UNTOUCHED] });
  assert.equal(bal.value, 10n ** 30n);
  assert.equal(bal.symbol, "CNY");
  assert.equal(bal.decimals, 18);
  assert.equal(await readContract(config, { address: HKD_FACADE, abi: ASSET_ABI, functionName: "balanceOf", args: [DEV[UNTOUCHED]] }), GENESIS_HKD);
});

test("wagmi: sendTransaction and writeContract through the wallet; receipts and events", async () => {
  const to = freshAddress();
  const h1 = await sendTransaction(config, { to, value: parseEther("3") });
  const r1 = await waitForTransactionReceipt(config, { hash: h1, timeout: 10_000 });
  assert.equal(r1.status, "success");
  assert.equal((await getBalance(config, { address: to })).value, parseEther("3"));

  const ref = stringToHex("CART-7", { size: 32 });
  const h2 = await writeContract(config, { address: HKD_FACADE, abi: ASSET_ABI, functionName: "transferWithReference", args: [to, 4550n, ref] });
  const r2 = await waitForTransactionReceipt(config, { hash: h2, timeout: 10_000 });
  assert.equal(r2.status, "success");
  const [transfer, payment] = parseEventLogs({ abi: ASSET_ABI, logs: r2.logs });
  assert.equal(transfer.eventName, "Transfer");
  assert.deepEqual(payment.args, { ref, from: account.address, to: getAddress(to), amount: 4550n });
});

test("wagmi: watchContractEvent over HTTP (a polled log filter) sees each payment", async () => {
  const merchant = freshAddress();
  const logs = new Inbox();
  const unwatch = watchContractEvent(config, {
    address: HKD_FACADE, abi: ASSET_ABI, eventName: "PaymentReference", args: { to: merchant },
    poll: true, pollingInterval: 50,
    onLogs: (ls) => ls.forEach((l) => logs.push(l)), onError: (e) => logs.push(e),
  });
  try {
    const pay = async (amount) => {
      const hash = await writeContract(config, { address: HKD_FACADE, abi: ASSET_ABI, functionName: "transferWithReference", args: [merchant, amount, stringToHex(`P-${amount}`, { size: 32 })] });
      await waitForTransactionReceipt(config, { hash, timeout: 10_000 });
      return hash;
    };
    await untilLive(logs, () => pay(1n));
    const hashes = [await pay(101n), await pay(102n)];
    for (const [k, amount] of [101n, 102n].entries()) {
      const l = await logs.nextWhere((x) => x?.args?.amount !== 1n, 10_000, `payment of ${amount}`);
      assert.equal(l.eventName, "PaymentReference", String(l));
      assert.equal(l.args.amount, amount);
      assert.equal(l.transactionHash, hashes[k]);
    }
  } finally {
    unwatch();
  }
});

test("wagmi: readContracts batches reads into one Multicall3 call", async () => {
  const hkdC = { address: HKD_FACADE, abi: ASSET_ABI };
  sentBodies.length = 0;
  const results = await readContracts(config, {
    contracts: [
      { ...hkdC, functionName: "symbol" },
      { ...hkdC, functionName: "decimals" },
      { ...hkdC, functionName: "balanceOf", args: [DEV[UNTOUCHED]] },
    ],
  });
  assert.deepEqual(results, [
    { status: "success", result: "HKD" },
    { status: "success", result: 2 },
    { status: "success", result: GENESIS_HKD },
  ]);
  const calls = sentBodies.flat().filter((b) => b.method === "eth_call");
  assert.deepEqual(calls.map((c) => c.params[0].to.toLowerCase()), [MULTICALL3.toLowerCase()]);
});
