// What every check file shares: where the node is (from the environment that
// e2e/js_test.go sets), the dev chain's well-known facts (docs/dev-chain.md)
// and the published ABIs (abi/*.json), read from the repository as a dApp
// would ship them.
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";

function need(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: run the suite through e2e/js_test.go (go test -run TestJSClients ./e2e), which starts tallyd --dev and sets it`);
  }
  return v;
}

/** HTTP JSON-RPC URL of the node under test. */
export const RPC_URL = need("TALLY_RPC_URL");
/** WebSocket URL of the same node (same port). */
export const WS_URL = need("TALLY_WS_URL");

export const CHAIN_ID = 1337;
export const MNEMONIC = "test test test test test test test test test test test junk";
/** BIP44 path of the mnemonic's index i, as MetaMask and Hardhat derive it. */
export const path = (i) => `m/44'/60'/0'/0/${i}`;

/** Dev accounts and role accounts by mnemonic index (docs/dev-chain.md). */
export const DEV = {
  0: "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
  1: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
  2: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
  3: "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
  4: "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
  5: "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
  6: "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
  7: "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
  8: "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f",
  9: "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
  19: "0x8626f6940E2eb28930eFb4CeF49B2d1F2C9C1199",
  100: "0x8C3229EC621644789d7F61FAa82c6d0E5F97d43D",
  101: "0x9586A4833970847aef259aD5BFB7aa8901DDf746",
  200: "0xCD5691EA878D262516be278cb46f2fd7fF132083",
};

/**
 * Which dev account each check file signs with, so that files never share a
 * sender's nonces. Index 19 is never touched: its genesis balances are known.
 */
export const SENDER = { ethers: 0, viem: 2, web3: 3, browser: 4, methods: 5, reads: 6, wagmi: 7, ethersSpender: 8, multicall: 9, checkout: 10 };
export const UNTOUCHED = 19;

/** Genesis holdings of each dev account: 10^12 CNY and 10^12 HKD. */
export const GENESIS_CNY = 10n ** 30n;
export const GENESIS_HKD = 10n ** 14n;
/** Total supply at genesis: 20 dev accounts × 10^12 of each. */
export const GENESIS_HKD_SUPPLY = 2n * 10n ** 15n;

export const CNY_FACADE = "0x0000000000000000000000000000000000001000";
export const HKD_FACADE = "0x0000000000000000000000000000000000001001";
/** Multicall3's canonical address (the same on every chain). */
export const MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11";

const abiDir = new URL("../../../abi/", import.meta.url);
/** The published ERC-20 facade ABI (abi/Asset.json). */
export const ASSET_ABI = JSON.parse(readFileSync(new URL("Asset.json", abiDir), "utf8"));

/** A fresh address nobody holds a key for: its balances start at zero. */
export function freshAddress() {
  return "0x" + randomBytes(20).toString("hex");
}

/** Resolves with the first value of a promise, or rejects after ms. */
export function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * A queue of pushed values that a test takes one at a time, in order: what a
 * subscription delivers, checked without assuming when it became live.
 */
export class Inbox {
  #items = [];
  #waiters = [];
  push(v) {
    const w = this.#waiters.shift();
    if (w) w(v); else this.#items.push(v);
  }
  /** The next value, or a rejection after ms. */
  next(ms, what) {
    if (this.#items.length > 0) return Promise.resolve(this.#items.shift());
    return within(ms, what, new Promise((resolve) => this.#waiters.push(resolve)));
  }
  /** The next value for which pred holds, dropping the others. */
  async nextWhere(pred, ms, what) {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await this.next(Math.max(1, deadline - Date.now()), what);
      if (pred(v)) return v;
    }
  }
}

/**
 * Waits until a subscription is live: sends probes (each awaited to its
 * receipt) until one is delivered to inbox. A subscription's reply may come
 * before or after the next block, so a probe may be missed; what is sent
 * after one was delivered must not be. Later probes may still arrive: the
 * checks skip them by value (Inbox.nextWhere).
 */
export async function untilLive(inbox, sendProbe, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    await sendProbe();
    try {
      await inbox.next(1_000, "probe");
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`subscription delivered none of the probes within ${ms} ms`);
    }
  }
}

