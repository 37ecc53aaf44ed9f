// Open the site in headless Chromium, type a query into Material's search, wait for results,
// print how many and their titles, and save a screenshot.
import { writeFileSync } from "node:fs";
const [,, url, query, out] = process.argv;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let targets;
for (let i = 0; i < 50; i++) {
  try { targets = await (await fetch("http://127.0.0.1:9333/json/list")).json(); break; }
  catch { await sleep(200); }
}
const page = targets.find((t) => t.type === "page");
const ws = new WebSocket(page.webSocketDebuggerUrl);
await new Promise((r) => ws.addEventListener("open", r));
let id = 0; const waiting = new Map();
ws.addEventListener("message", (e) => {
  const m = JSON.parse(e.data);
  if (m.id && waiting.has(m.id)) { waiting.get(m.id)(m.result); waiting.delete(m.id); }
});
const send = (method, params = {}) => new Promise((r) => { const i = ++id; waiting.set(i, r);
  ws.send(JSON.stringify({ id: i, method, params })); });
const js = async (expression) => (await send("Runtime.evaluate",
  { expression, awaitPromise: true, returnByValue: true })).result.value;
await send("Emulation.setDeviceMetricsOverride", { width: 1280, height: 1000, deviceScaleFactor: 1, mobile: false });
await send("Page.navigate", { url });
await sleep(3000);
await js(`document.querySelector("label.md-search__icon, .md-search__input").click(); document.querySelector("input.md-search__input").focus()`);
await sleep(500);
for (const ch of query) {
  await send("Input.dispatchKeyEvent", { type: "keyDown", text: ch, key: ch });
  await send("Input.dispatchKeyEvent", { type: "keyUp", key: ch });
}
let found = [];
for (let i = 0; i < 40; i++) {
  await sleep(500);
  found = await js(`[...document.querySelectorAll(".md-search-result__item h1, .md-search-result__item h2")].map(e => e.textContent.trim())`);
  if (found.length) break;
}
const meta = await js(`document.querySelector(".md-search-result__meta")?.textContent`);
console.log(JSON.stringify({ meta, found: found.slice(0, 8) }));
const shot = await send("Page.captureScreenshot", { format: "png" });
writeFileSync(out, Buffer.from(shot.data, "base64"));
ws.close();
process.exit(0);
