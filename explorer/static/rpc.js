// JSON-RPC over HTTP POST to this node (the page's own origin): the
// explorer reads nothing else.

let nextId = 1;

// RPCError is a JSON-RPC error answer.
export class RPCError extends Error {
  constructor(e) {
    super(e.message);
    this.code = e.code;
    this.data = e.data;
  }
}

async function post(body) {
  const res = await fetch("/", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`node answered HTTP ${res.status}: ${text.slice(0, 200)}`);
  }
}

// call makes one call and returns its result, or throws RPCError.
export async function call(method, ...params) {
  const r = await post({ jsonrpc: "2.0", id: nextId++, method, params });
  if (r.error) throw new RPCError(r.error);
  return r.result;
}

// batch makes calls ([method, ...params]) in one request and returns, in
// order, each result or an RPCError.
export async function batch(calls) {
  if (calls.length === 0) return [];
  const first = nextId;
  const body = calls.map(([method, ...params]) => ({ jsonrpc: "2.0", id: nextId++, method, params }));
  const replies = await post(body);
  if (!Array.isArray(replies)) {
    throw new RPCError(replies.error || { code: 0, message: "batch refused" });
  }
  const out = new Array(calls.length);
  for (const r of replies) {
    const i = r.id - first;
    if (i >= 0 && i < calls.length) out[i] = r.error ? new RPCError(r.error) : r.result;
  }
  return out;
}

// optional calls a method that a node may not have yet: "method not found"
// (-32601) is null.
export async function optional(method, ...params) {
  try {
    return await call(method, ...params);
  } catch (e) {
    if (e instanceof RPCError && e.code === -32601) return null;
    throw e;
  }
}
