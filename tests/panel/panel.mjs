// The panel in a real Chromium (playwright-core driving Debian's chromium),
// one step of tests/panel/panel.sh per run; the browser's state (the
// session cookie) is kept between steps in STATE_FILE.
//
// usage: node panel.mjs STEP   with, in the environment:
//   PANEL_URL    https://10.0.0.1:8444/
//   PANEL_PIN    base64 SHA-256 of the server's SubjectPublicKeyInfo: the
//                only certificate Chromium accepts (a pin, not "ignore")
//   PANEL_STATE  the file of the browser's cookies between steps
//   PANEL_SHOTS  where screenshots go
//   PANEL_TOKEN  the admin token (step signin)
//   PANEL_ARG    the step's argument (a user, a search)
// It prints one JSON line of results; a failed check exits 1.
import { existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

// playwright-core as tools/install-deps.sh installs it, in tests/node
const require = createRequire(new URL("../node/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const step = process.argv[2];
const env = (name) => {
  if (!process.env[name]) throw new Error(`${name} is not set`);
  return process.env[name];
};
const url = env("PANEL_URL");
const shots = env("PANEL_SHOTS");
const stateFile = env("PANEL_STATE");
mkdirSync(shots, { recursive: true });

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    `--ignore-certificate-errors-spki-list=${env("PANEL_PIN")}`,
    "--disable-dev-shm-usage",
  ],
});
const context = await browser.newContext({
  storageState: existsSync(stateFile) ? stateFile : undefined,
  viewport: { width: 1280, height: 800 },
});
const page = await context.newPage();
const violations = [];
const consoleErrors = [];
page.on("console", (msg) => {
  if (msg.type() === "error") consoleErrors.push(msg.text());
  if (/Content.Security.Policy|Refused to/i.test(msg.text())) violations.push(msg.text());
});
page.on("dialog", (dialog) => dialog.accept());
await page.addInitScript(() => {
  document.addEventListener("securitypolicyviolation", (e) =>
    console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
});

const out = {};
const shot = async (name) => {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
};

async function open(hash) {
  const response = await page.goto(url + hash, { waitUntil: "load" });
  return response;
}

// A row of a table whose text has `text`.
const row = (tbody, text) => page.locator(`#${tbody} tr`, { hasText: text });

try {
  if (step === "signin") {
    const response = await open("#users");
    const headers = response.headers();
    check(/default-src 'none'/.test(headers["content-security-policy"] || ""), "CSP header");
    check(/frame-ancestors 'none'/.test(headers["content-security-policy"]), "frame-ancestors");
    check(headers["x-content-type-options"] === "nosniff", "nosniff");
    check(headers["referrer-policy"] === "no-referrer", "Referrer-Policy");
    const html = await response.text();
    check(!/<script(?![^>]*\bsrc=)[^>]*>/i.test(html), "no inline script in the served HTML");
    check(!/\sstyle=|\son[a-z]+=/i.test(html), "no inline style or handler attribute");
    await page.waitForSelector("#page-signin:not([hidden])");
    await shot("signin");
    await page.fill("#signin-token", "mgt_wrong");
    await page.click("#signin-form button");
    await page.waitForSelector("#error:not([hidden])");
    out.bad_token_message = await page.textContent("#error");
    await page.fill("#signin-token", env("PANEL_TOKEN"));
    await page.click("#signin-form button");
    await page.waitForSelector("#page-users:not([hidden])");
    await page.waitForSelector("#who:has-text('admin')");
    const cookie = (await context.cookies()).find((c) => c.name === "meshgate_session");
    check(cookie, "a meshgate_session cookie");
    check(cookie.httpOnly && cookie.secure && cookie.sameSite === "Strict",
      `cookie flags: ${JSON.stringify(cookie)}`);
    check(!(await page.evaluate(() => document.cookie.includes("meshgate_session"))),
      "the page's script cannot read the cookie");
    out.cookie = cookie.value;
    out.csrf = await page.evaluate(async () =>
      (await (await fetch("/api/v1/admin/session")).json()).csrf);
    await shot("users-empty");
  } else if (step === "create-user") {
    await open("#users");
    await page.waitForSelector("#page-users:not([hidden])");
    await page.fill("#user-name", env("PANEL_ARG"));
    await page.fill("#user-role", "developer");
    await page.click("#user-form button");
    await page.waitForSelector("#code-box:not([hidden])");
    out.code = (await page.textContent("#code-text")).trim();
    await row("users", env("PANEL_ARG")).waitFor();
    await shot("users-code");
  } else if (step === "devices" || step === "disable" || step === "enable") {
    await open("#devices");
    await page.waitForSelector("#page-devices:not([hidden])");
    await page.fill("#device-q", env("PANEL_ARG"));
    const r = row("devices", env("PANEL_ARG"));
    await r.first().waitFor();
    out.rows = await r.count();
    out.state = (await r.first().locator("td").nth(3).textContent()).trim();
    if (step !== "devices") {
      const label = step === "disable" ? "Disable" : "Enable";
      await r.first().getByRole("button", { name: label }).click();
      const want = step === "disable" ? "disabled" : "active";
      await page.waitForFunction(([q, want]) => {
        const tr = [...document.querySelectorAll("#devices tr")]
          .find((t) => t.textContent.includes(q));
        return tr && tr.children[3].textContent === want;
      }, [env("PANEL_ARG"), want]);
      out.state = want;
    } else {
      // the handshake comes after the page
      await page.waitForFunction(([q]) => {
        const tr = [...document.querySelectorAll("#devices tr")]
          .find((t) => t.textContent.includes(q));
        return tr && tr.children[4].textContent !== "…";
      }, [env("PANEL_ARG")]);
      out.handshake = (await r.first().locator("td").nth(4).textContent()).trim();
    }
    await shot(`devices-${step}`);
  } else if (step === "qr") {
    await open("#users");
    const r = row("users", env("PANEL_ARG"));
    await r.first().waitFor();
    await r.first().getByRole("button", { name: "Enroll phone (QR)" }).click();
    await page.waitForSelector("#enroll-box:not([hidden])");
    await page.waitForSelector("#enroll-qr img");
    await page.click("#enroll-show");
    await page.waitForSelector("#enroll-config:not([hidden])");
    out.config = await page.textContent("#enroll-config");
    const size = await page.evaluate(() => {
      const img = document.querySelector("#enroll-qr img");
      return img.naturalWidth;
    });
    check(size > 100, `a QR image (${size} px)`);
    await shot("users-qr");
  } else if (step === "routes" || step === "nodes") {
    await open(`#${step}`);
    await page.waitForSelector(`#page-${step}:not([hidden])`);
    await page.waitForSelector(`#${step} tr`);
    out.rows = await page.locator(`#${step} tr`).count();
    if (step === "nodes") out.active = await page.locator("#nodes tr.active-node").count();
    if (step === "routes")
      out.roles = Object.fromEntries(await page.$$eval("#roles tr", (rows) =>
        rows.map((r) => [r.children[0].textContent, r.children[1].textContent])));
    await shot(step);
  } else if (step === "logout") {
    await open("#users");
    await page.waitForSelector("#page-users:not([hidden])");
    await page.click("#logout");
    await page.waitForSelector("#page-signin:not([hidden])");
    out.cookie_left = (await context.cookies()).some((c) => c.name === "meshgate_session");
    await shot("signed-out");
  } else {
    throw new Error(`unknown step ${step}`);
  }
  check(violations.length === 0, `no CSP violation: ${violations.join("; ")}`);
  out.console_errors = consoleErrors.filter((e) => !/Failed to load resource/.test(e));
  check(out.console_errors.length === 0, `no console error: ${out.console_errors.join("; ")}`);
  await context.storageState({ path: stateFile });
  console.log(JSON.stringify(out));
  await browser.close();
} catch (e) {
  await shot(`failed-${step}`).catch(() => {});
  console.error(`${step}: ${e.message}`);
  console.error(`console: ${consoleErrors.join(" | ")}`);
  await browser.close();
  process.exit(1);
}
