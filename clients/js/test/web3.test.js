// web3.js v4 against tallyd --dev. web3.js has no mnemonic derivation of
// its own; a wallet derives the key (here with ethers) and adds it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Web3 } from "web3";
import { ethers } from "ethers";
import {
  RPC_URL, CHAIN_ID, MNEMONIC, DEV, SENDER, UNTOUCHED, path,
  GENESIS_CNY, GENESIS_HKD, HKD_FACADE, ASSET_ABI, freshAddress,
} from "../lib/env.js";

const web3 = new Web3(RPC_URL);
const key = ethers.HDNodeWallet.fromPhrase(MNEMONIC, undefined, path(SENDER.web3)).privateKey;
const [account] = web3.eth.accounts.wallet.add(key);
const hkd = new web3.eth.Contract(ASSET_ABI, HKD_FACADE);
// web3.js polls for receipts every second by default.
web3.transactionPollingInterval = 50;

test("web3.js: account from the derived key, chain id and balances", async () => {
  assert.equal(account.address, DEV[SENDER.web3]);
  assert.equal(await web3.eth.getChainId(), BigInt(CHAIN_ID));
  assert.equal(await web3.eth.getBalance(DEV[UNTOUCHED]), GENESIS_CNY);
});

test("web3.js: sendTransaction fills an EIP-1559 transfer with zero fees and returns the receipt", async () => {
  const to = freshAddress();
  const before = await web3.eth.getBalance(account.address);
  const receipt = await web3.eth.sendTransaction({ from: account.address, to, value: 12345n });
  assert.equal(receipt.status, 1n);
  assert.equal(receipt.type, 2n);
  assert.equal(receipt.gasUsed, 21000n);
  assert.equal(receipt.effectiveGasPrice, 0n);
  assert.equal(await web3.eth.getBalance(to), 12345n);
  assert.equal(await web3.eth.getBalance(account.address), before - 12345n);
  const tx = await web3.eth.getTransaction(receipt.transactionHash);
  assert.equal(tx.maxFeePerGas, 0n);
  assert.equal(tx.chainId, BigInt(CHAIN_ID));
});

test("web3.js: contract reads, transfer with decoded events, getPastEvents with a filter", async () => {
  assert.equal(await hkd.methods.symbol().call(), "HKD");
  assert.equal(await hkd.methods.decimals().call(), 2n);
  assert.equal(await hkd.methods.balanceOf(DEV[UNTOUCHED]).call(), GENESIS_HKD);

  const to = freshAddress();
  const receipt = await hkd.methods.transfer(to, 4200n).send({ from: account.address });
  assert.equal(receipt.status, 1n);
  const ev = receipt.events.Transfer;
  assert.ok(ev, `no Transfer event in ${Object.keys(receipt.events ?? {})}`);
  assert.equal(ev.returnValues.from, account.address);
  assert.equal(ev.returnValues.to, web3.utils.toChecksumAddress(to));
  assert.equal(ev.returnValues.value, 4200n);

  const past = await hkd.getPastEvents("Transfer", { filter: { to }, fromBlock: receipt.blockNumber });
  assert.equal(past.length, 1);
  assert.equal(past[0].transactionHash, receipt.transactionHash);
  assert.equal(await hkd.methods.balanceOf(to).call(), 4200n);
});

test("web3.js: a reverting call gives the revert reason", async () => {
  await assert.rejects(
    hkd.methods.mint(account.address, 5n, ethers.ZeroHash).call({ from: account.address }),
    (e) => {
      assert.equal(e.name, "ContractExecutionError", e.message);
      assert.match(e.cause?.message ?? "", /is not an issuing bank of HKD/);
      return true;
    });
});
