// A dApp page in a real browser (Debian's Chromium, headless, driven by
// playwright-core) on another origin than the node: it reads the chain id
// with fetch and sends a signed transfer with ethers' browser bundle, which
// also uses fetch, and follows new blocks over a WebSocket. The node must
// answer the CORS preflight for the allowed origin (http.cors-origins) and
// accept its WebSocket (http.ws-origins), and refuse a page from any other.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { ethers } from "ethers";
import {
  RPC_URL, WS_URL, CHAIN_ID, MNEMONIC, DEV, SENDER, path, freshAddress, within,
} from "../lib/env.js";

/** The origin the node allows (http.cors-origins) and one it does not. */
const PAGE_PORT = Number(process.env.TALLY_PAGE_PORT);
const OTHER_PORT = Number(process.env.TALLY_OTHER_PAGE_PORT);
const CHROMIUM = process.env.TALLY_CHROMIUM || "/usr/bin/chromium";

// The locally installed ethers bundle: no CDN.
const ETHERS_BUNDLE = readFileSync(new URL("../node_modules/ethers/dist/ethers.min.js", import.meta.url));
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>loading</title></head>
<body><script type="module">
import * as ethers from "/ethers.min.js";
window.ethers = ethers;
document.title = "ready";
</script></body></html>`;

/** Serves the dApp page and the ethers bundle on 127.0.0.1:port. */
function servePage(port) {
  const server = createServer((req, res) => {
    if (req.url === "/" || req.url === "/index.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(PAGE);
    } else if (req.url === "/ethers.min.js") {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" });
      res.end(ETHERS_BUNDLE);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

let browser;
const servers = [];

before(async () => {
  assert.ok(PAGE_PORT > 0 && OTHER_PORT > 0, "TALLY_PAGE_PORT and TALLY_OTHER_PAGE_PORT must be set (e2e/js_test.go sets them)");
  servers.push(await servePage(PAGE_PORT), await servePage(OTHER_PORT));
  // playwright-core starts Chromium on a new, empty profile (user data dir)
  // of its own. Flags: no sandbox (root in CI), and none of Chromium's
  // background connections, which a closed network refuses.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

/** Opens the dApp page served on port and waits for ethers to load. */
async function openPage(port) {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.waitForFunction(() => document.title === "ready", null, { timeout: 10_000 })
    .catch((e) => { throw new Error(`page did not load ethers: ${e.message}; page errors: ${errors.join("; ")}`); });
  return page;
}

test("browser: a page on an allowed origin reads the chain id and sends a signed transfer through fetch", async () => {
  const page = await openPage(PAGE_PORT);
  try {
    const to = freshAddress();
    const got = await within(20_000, "page", page.evaluate(async ({ rpc, mnemonic, hdPath, to }) => {
      // A plain fetch with a JSON body: the browser sends a CORS preflight.
      const res = await fetch(rpc, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      });
      const chainId = (await res.json()).result;
      // A wallet in the page: ethers' browser bundle talks to the node with fetch.
      const { ethers } = window;
      const provider = new ethers.JsonRpcProvider(rpc, undefined, { cacheTimeout: -1, pollingInterval: 100 });
      const wallet = ethers.HDNodeWallet.fromPhrase(mnemonic, undefined, hdPath).connect(provider);
      const tx = await wallet.sendTransaction({ to, value: ethers.parseEther("2.5") });
      const receipt = await tx.wait();
      return { chainId, from: wallet.address, hash: tx.hash, status: receipt.status, origin: location.origin };
    }, { rpc: RPC_URL, mnemonic: MNEMONIC, hdPath: path(SENDER.browser), to }));

    assert.equal(got.origin, `http://127.0.0.1:${PAGE_PORT}`);
    assert.notEqual(got.origin, new URL(RPC_URL).origin);
    assert.equal(got.chainId, "0x" + CHAIN_ID.toString(16));
    assert.equal(got.from, DEV[SENDER.browser]);
    assert.equal(got.status, 1);
    // The node's own view of the transfer the page sent.
    const provider = new ethers.JsonRpcProvider(RPC_URL, undefined, { cacheTimeout: -1 });
    try {
      const receipt = await provider.getTransactionReceipt(got.hash);
      assert.equal(receipt.status, 1);
      assert.equal(receipt.from, DEV[SENDER.browser]);
      assert.equal(receipt.to, ethers.getAddress(to));
      assert.equal(await provider.getBalance(to), ethers.parseEther("2.5"));
    } finally {
      provider.destroy();
    }
  } finally {
    await page.close();
  }
});

test("browser: a page on an origin not in http.cors-origins is refused by the browser", async () => {
  const page = await openPage(OTHER_PORT);
  try {
    const got = await within(20_000, "page", page.evaluate(async (rpc) => {
      try {
        const res = await fetch(rpc, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
        });
        return { ok: true, status: res.status };
      } catch (e) {
        return { ok: false, name: e.name, message: e.message };
      }
    }, RPC_URL));
    assert.equal(got.ok, false, `fetch from a refused origin succeeded: ${JSON.stringify(got)}`);
    assert.equal(got.name, "TypeError");
  } finally {
    await page.close();
  }
});

/** In the page: the first new-block notification over ethers' WebSocketProvider, or the error. */
async function pageNewBlock(page) {
  return within(20_000, "page", page.evaluate(async (ws) => {
    const { ethers } = window;
    const provider = new ethers.WebSocketProvider(ws);
    try {
      const n = await new Promise((resolve, reject) => {
        provider.websocket.addEventListener("error", () => reject(new Error("WebSocket error")));
        provider.websocket.addEventListener("close", (e) => reject(new Error(`WebSocket closed (${e.code})`)));
        provider.on("block", resolve);
      });
      return { ok: true, block: n };
    } catch (e) {
      return { ok: false, message: e.message };
    } finally {
      provider.destroy();
    }
  }, WS_URL));
}

test("browser: a page on an allowed origin follows new blocks over a WebSocket", async () => {
  const page = await openPage(PAGE_PORT);
  try {
    const got = await pageNewBlock(page);
    assert.equal(got.ok, true, JSON.stringify(got));
    assert.ok(got.block > 0);
  } finally {
    await page.close();
  }
});

test("browser: a page on an origin not in http.ws-origins cannot open a WebSocket", async () => {
  const page = await openPage(OTHER_PORT);
  try {
    const got = await pageNewBlock(page);
    assert.equal(got.ok, false, `WebSocket from a refused origin worked: ${JSON.stringify(got)}`);
  } finally {
    await page.close();
  }
});
