// bench/panel/run.sh's browser: ROUNDS times each, in a fresh page of one
// signed-in Chromium, from navigation to
//   list:        the device list drawn (ours: the first page; naive: all)
//   interactive: the list drawn and a search typed right away answered
// and then, the page settled, a search round trip (typing to the rows
// shown). Prints one JSON object of the medians and spreads.
// env: PANEL_URL PANEL_PIN PANEL_TOKEN DEVICES ROUNDS RARE RARE2
import { createRequire } from "node:module";

const require = createRequire(new URL("../../tests/node/package.json", import.meta.url));
const { chromium } = require("playwright-core");
const env = process.env;
const devices = Number(env.DEVICES);
const rounds = Number(env.ROUNDS || 5);

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", `--ignore-certificate-errors-spki-list=${env.PANEL_PIN}`,
    "--disable-dev-shm-usage"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const first = await context.newPage();
await first.goto(env.PANEL_URL);
const signed = await first.evaluate(async (token) => {
  const res = await fetch("/api/v1/admin/session", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
  });
  return res.status;
}, env.PANEL_TOKEN);
if (signed !== 200) throw new Error(`sign in: ${signed}`);
await first.close();

// rows of #devices that hold `text`, and no other: the search's answer
const answered = (page, text) => page.waitForFunction((text) => {
  const rows = document.querySelectorAll("#devices tr");
  return rows.length >= 1 && [...rows].every((r) => r.textContent.includes(text));
}, text, { timeout: 120000, polling: "raf" });

async function round(path, listed, arg) {
  const page = await context.newPage();
  page.setDefaultTimeout(120000); // a loaded machine: slow, not failed
  const t0 = performance.now();
  await page.goto(env.PANEL_URL + path, { waitUntil: "commit" });
  await page.waitForFunction(listed, arg, { timeout: 120000, polling: "raf" });
  const list = performance.now() - t0;
  await page.fill("#device-q", env.RARE);
  await answered(page, env.RARE);
  const interactive = performance.now() - t0;
  await page.waitForTimeout(500); // settled: the handshakes are in
  const t1 = performance.now();
  await page.fill("#device-q", env.RARE2);
  await answered(page, env.RARE2);
  const search = performance.now() - t1;
  await page.close();
  return { list, interactive, search };
}

// functions, not strings: the panel's CSP allows no eval, and the bench
// keeps it
const rows = (n) => document.querySelectorAll("#devices tr").length === n;
const ours = () => round("#devices", rows, 50);
const naive = () => round("naive.html", rows, devices);

const results = { ours: [], naive: [] };
for (let i = 0; i < rounds; i++) {
  results.ours.push(await ours()); // interleaved: the machine's noise falls on both
  results.naive.push(await naive());
}
await browser.close();

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const out = {};
for (const [way, list] of Object.entries(results))
  for (const key of ["list", "interactive", "search"]) {
    const xs = list.map((r) => r[key]);
    const m = median(xs);
    out[`${way}_${key}`] = Number(m.toFixed(1));
    out[`${way}_${key}_spread`] = Number(((Math.max(...xs) - Math.min(...xs)) / m).toFixed(2));
  }
out.rounds = rounds;
console.log(JSON.stringify(out));
