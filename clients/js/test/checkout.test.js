// A merchant checkout paid from its QR code (docs/merchants.md): `tally
// request` makes the payment request of an order and its QR code PNG; a
// wallet decodes the QR (jsQR), parses the EIP-681 URI (eth-url-parser),
// checks it against the chain and pays it with ethers v6, and the chain
// records the payment under the order's reference.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ethers } from "ethers";
import ethUrl from "eth-url-parser";
import jsQR from "jsqr";
import { PNG } from "pngjs";
import { RPC_URL, CHAIN_ID, MNEMONIC, SENDER, HKD_FACADE, ASSET_ABI, path, freshAddress, within } from "../lib/env.js";

const execFileAsync = promisify(execFile);
const TALLY = process.env.TALLY_CLI;

const provider = new ethers.JsonRpcProvider(RPC_URL, undefined, { cacheTimeout: -1, pollingInterval: 100 });
const wallet = ethers.HDNodeWallet.fromPhrase(MNEMONIC, undefined, path(SENDER.checkout)).connect(provider);
const dir = mkdtempSync(join(tmpdir(), "tally-checkout-"));
after(() => {
  provider.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/** What a wallet does with a scanned EIP-681 URI before it asks the payer. */
async function readRequest(uri) {
  const req = ethUrl.parse(uri);
  assert.equal(req.scheme, "ethereum");
  assert.equal(req.function_name, "transferWithReference");
  // The request's chain must be the wallet's.
  assert.equal(BigInt(req.chain_id), (await provider.getNetwork()).chainId);
  const { address, uint256, bytes32 } = req.parameters;
  // EIP-681 writes the amount as <units>e<decimals>: the exponent must be
  // the token's decimals() (EIP-681, Security Considerations), and the
  // amount an integer of base units.
  const [units, exp] = uint256.split(/[eE]/);
  const token = new ethers.Contract(req.target_address, ASSET_ABI, wallet);
  assert.equal(BigInt(exp), await token.decimals(), "the exponent is the token's decimals");
  return { token, to: ethers.getAddress(address), amount: ethers.parseUnits(units, Number(exp)), ref: bytes32, symbol: await token.symbol(), units };
}

test("checkout: tally request's QR code decodes to its EIP-681 URI, which ethers pays", async (t) => {
  if (!TALLY) {
    throw new Error("TALLY_CLI is not set: run the suite through e2e/js_test.go, which builds tally");
  }
  const shop = freshAddress();
  const order = `ORDER-JS-${Date.now()}`;
  const png = join(dir, "order.png");
  const { stdout } = await execFileAsync(TALLY, ["request", "--rpc", RPC_URL, "--asset", "HKD", "--to", shop,
    "--amount", "12.34", "--order", order, "--expires", "10m", "--qr", png, "--json"], { timeout: 30_000 });
  const request = JSON.parse(stdout);
  assert.equal(request.chainId, CHAIN_ID);
  assert.equal(request.amountBase, "1234");

  // The checkout page shows the PNG; the payer's phone scans it.
  const image = PNG.sync.read(readFileSync(png));
  const code = jsQR(new Uint8ClampedArray(image.data), image.width, image.height);
  assert.ok(code, "jsQR found a QR code in the PNG");
  assert.equal(code.data, request.uri);

  const pay = await readRequest(code.data);
  assert.equal(pay.token.target, ethers.getAddress(HKD_FACADE));
  assert.equal(pay.to, ethers.getAddress(shop));
  assert.equal(pay.amount, 1234n);
  assert.equal(pay.symbol, "HKD");
  assert.equal(ethers.decodeBytes32String(pay.ref), order);

  // The payer confirms 12.34 HKD to the shop; the wallet sends it.
  const tx = await pay.token.transferWithReference(pay.to, pay.amount, pay.ref);
  const receipt = await within(10_000, "wait()", tx.wait());
  assert.equal(receipt.status, 1);
  const events = receipt.logs.map((l) => pay.token.interface.parseLog(l)).map((e) => e.name);
  assert.deepEqual(events, ["Transfer", "PaymentReference"]);
  const [paid, refunded] = await pay.token.paidUnderReference(pay.to, pay.ref, wallet.address);
  assert.equal(paid, 1234n);
  assert.equal(refunded, 0n);
  assert.equal(await pay.token.balanceOf(shop), 1234n);
});

test("checkout: a URI whose exponent is not the token's decimals is refused before paying", async () => {
  const uri = `ethereum:${HKD_FACADE}@${CHAIN_ID}/transferWithReference?address=${freshAddress()}&uint256=1234e0&bytes32=${ethers.encodeBytes32String("ORDER-X")}`;
  await assert.rejects(readRequest(uri), /decimals/);
});
