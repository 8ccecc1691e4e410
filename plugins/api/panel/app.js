// meshgate's web panel: one page, plain DOM, the admin API underneath
// (docs/panel.md). Text only ever goes in through textContent: nothing the
// API returns is parsed as HTML.

const API = "/api/v1/admin/";
const PAGE_SIZE = 50;

const state = {
  me: null, // {name, role, who, node, csrf}
  devices: { q: "", cursors: [""], next: null, shown: [], handshakes: null },
  code: null, // {user, code} just shown
};

const $ = (id) => document.getElementById(id);

// ---- talking to the API ----

class ApiError extends Error {
  constructor(status, code, message) {
    super(message ? `${message} (${code})` : code);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  // the session's CSRF token on every change: another site cannot read it
  if (method !== "GET" && state.me && state.me.csrf) headers["X-CSRF-Token"] = state.me.csrf;
  const res = await fetch(API + path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await res.json();
  } catch (e) {
    data = null;
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    const code = typeof err === "string" ? err : err.code || `http_${res.status}`;
    const message = typeof err === "string" ? data.message : err.message;
    if (res.status === 401 && path !== "session") {
      state.me = null;
      showSignIn();
    }
    throw new ApiError(res.status, code, message);
  }
  return data;
}

function showError(e) {
  const box = $("error");
  box.textContent = e instanceof Error ? e.message : String(e);
  box.hidden = false;
}

function notice(text) {
  $("error").hidden = true;
  const box = $("notice");
  box.textContent = text;
  box.hidden = !text;
}

// Runs an action of a button or form: its error is shown, never lost.
function guarded(fn) {
  return async (event) => {
    if (event && event.preventDefault) event.preventDefault();
    $("error").hidden = true;
    try {
      await fn(event);
    } catch (e) {
      showError(e);
    }
  };
}

// ---- small DOM helpers ----

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null ? "" : String(text);
  row.appendChild(td);
  return td;
}

function button(parent, label, onclick, danger) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (danger) b.className = "danger";
  b.addEventListener("click", guarded(onclick));
  parent.appendChild(b);
  return b;
}

function when(seconds) {
  if (!seconds) return "never";
  const age = Math.max(0, Math.round(Date.now() / 1000 - seconds));
  if (age < 120) return `${age} s ago`;
  if (age < 7200) return `${Math.round(age / 60)} min ago`;
  return new Date(seconds * 1000).toLocaleString();
}

// ---- pages ----

const pages = ["signin", "users", "devices", "routes", "nodes"];

function showPage(name) {
  for (const p of pages) $(`page-${p}`).hidden = p !== name;
  for (const a of document.querySelectorAll("nav a"))
    a.classList.toggle("current", a.getAttribute("href") === `#${name}`);
}

async function showSignIn() {
  $("nav").hidden = true;
  showPage("signin");
  try {
    const options = await api("GET", "login-options");
    $("sso").hidden = !options.oidc;
  } catch (e) {
    $("sso").hidden = true;
  }
}

async function route() {
  if (!state.me) {
    try {
      state.me = await api("GET", "session");
    } catch (e) {
      return showSignIn();
    }
  }
  $("nav").hidden = false;
  $("who").textContent = `${state.me.name} (${state.me.role})`;
  const name = location.hash.slice(1) || "users";
  const page = pages.includes(name) && name !== "signin" ? name : "users";
  showPage(page);
  await guarded(loaders[page])();
}

// ---- sign in, sign out ----

async function signIn() {
  const token = $("signin-token").value.trim();
  state.me = await api("POST", "session", { token });
  $("signin-token").value = "";
  notice("");
  if (!location.hash || location.hash === "#signin") location.hash = "#users";
  else await route();
}

async function signOut() {
  await api("DELETE", "session");
  state.me = null;
  notice("Signed out.");
  await showSignIn();
}

// ---- users and codes ----

async function loadUsers() {
  const { users } = await api("GET", "users");
  const body = $("users");
  body.replaceChildren();
  for (const u of users) {
    const row = document.createElement("tr");
    row.dataset.user = u.name;
    cell(row, u.name);
    const roleCell = cell(row, "");
    const role = document.createElement("input");
    role.value = u.role || "";
    role.size = 10;
    role.setAttribute("aria-label", `role of ${u.name}`);
    roleCell.appendChild(role);
    button(roleCell, "Set role", async () => {
      await api("PATCH", `users/${encodeURIComponent(u.name)}`, { role: role.value.trim() });
      notice(`${u.name} is now ${role.value.trim()}.`);
      await loadUsers();
    });
    cell(row, u.devices);
    cell(row, u.access === "until" ? `until ${when(u.access_until)}` : u.access);
    const actions = cell(row, "");
    actions.className = "actions";
    button(actions, "New code", async () => {
      showCode(await api("POST", `users/${encodeURIComponent(u.name)}/codes`, {}));
    });
    button(actions, "Enroll phone (QR)", () => enrollPhone(u.name));
    button(actions, "Delete", async () => {
      if (!confirm(`Delete user ${u.name} and all their devices?`)) return;
      await api("DELETE", `users/${encodeURIComponent(u.name)}`);
      notice(`User ${u.name} deleted.`);
      await loadUsers();
    }, true);
    body.appendChild(row);
  }
}

function showCode(reply) {
  state.code = { user: reply.user || reply.name, code: reply.code };
  $("code-user").textContent = state.code.user;
  $("code-text").textContent = reply.code;
  $("code-box").hidden = false;
}

async function createUser() {
  const name = $("user-name").value.trim();
  const role = $("user-role").value.trim();
  const reply = await api("POST", "users", { name, role });
  showCode({ ...reply, user: reply.user || name });
  $("user-name").value = "";
  await loadUsers();
}

async function copyCode() {
  await navigator.clipboard.writeText($("code-text").textContent);
  notice("Code copied.");
}

async function revokeCode() {
  if (!state.code) return;
  await api("DELETE", `codes/${encodeURIComponent(state.code.code)}`);
  notice(`The code of ${state.code.user} is revoked.`);
  state.code = null;
  $("code-box").hidden = true;
}

// ---- a phone by QR: its key made here, never on the server ----

function base64(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}

async function keyPair() {
  const pair = await crypto.subtle.generateKey({ name: "X25519" }, true, ["deriveBits"]);
  const pub = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  // PKCS #8 of an X25519 key ends with the 32 bytes of the key itself
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  return { publicKey: base64(pub), privateKey: base64(pkcs8.slice(pkcs8.length - 32)) };
}

function wgQuick(config, privateKey) {
  const lines = ["[Interface]", `PrivateKey = ${privateKey}`, `Address = ${config.address}`];
  if (config.dns && config.dns.length) lines.push(`DNS = ${config.dns.join(", ")}`);
  lines.push("", "[Peer]", `PublicKey = ${config.server_public_key}`,
    `Endpoint = ${config.endpoint}`, `AllowedIPs = ${(config.allowed_ips || []).join(", ")}`);
  if (config.keepalive) lines.push(`PersistentKeepalive = ${config.keepalive}`);
  return lines.join("\n") + "\n";
}

async function enrollPhone(user) {
  const keys = await keyPair();
  const config = await api("POST", `users/${encodeURIComponent(user)}/devices`, {
    public_key: keys.publicKey,
    name: `${user}-phone`,
  });
  const text = wgQuick(config, keys.privateKey);
  $("enroll-user").textContent = user;
  $("enroll-config").textContent = text;
  $("enroll-config").hidden = true;
  const qrBox = $("enroll-qr");
  qrBox.replaceChildren();
  if (typeof window.qrcode === "function") {
    const qr = window.qrcode(0, "L");
    qr.addData(text);
    qr.make();
    const img = document.createElement("img");
    img.src = qr.createDataURL(4, 8);
    img.alt = `WireGuard config of ${user}'s phone`;
    qrBox.appendChild(img);
  } else {
    qrBox.textContent = "No QR library on this gateway (api.qrcode_js): use the config text.";
  }
  $("enroll-box").hidden = false;
  notice(`Device ${config.device_id} of ${user} enrolled (${config.address}).`);
  await loadUsers();
}

function closeEnroll() {
  $("enroll-config").textContent = ""; // the private key leaves the page
  $("enroll-qr").replaceChildren();
  $("enroll-box").hidden = true;
}

// ---- devices: pages and search on the server ----

// The last handshakes of the page's devices only (the gateway keeps a
// copy a few seconds old of WireGuard's peers).
async function loadHandshakes(devices) {
  const keys = devices.map((d) => d.public_key).filter(Boolean);
  const handshakes = new Map();
  try {
    if (keys.length) {
      const reply = await api("GET", `handshakes?${new URLSearchParams({ keys: keys.join(",") })}`);
      for (const [key, at] of Object.entries(reply.handshakes)) handshakes.set(key, at);
      state.devices.node = reply.node;
    }
  } catch (e) {
    // no WireGuard answer: the list stands without the handshakes
  }
  return handshakes;
}

async function loadDevices() {
  const d = state.devices;
  const after = d.cursors[d.cursors.length - 1];
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (d.q) params.set("q", d.q);
  if (after) params.set("after", after);
  const q = d.q;
  const reply = await api("GET", `devices?${params}`);
  if (q !== d.q) return; // a newer search is on its way
  d.next = reply.next || null;
  d.shown = reply.devices;
  d.handshakes = null;
  renderDevices(d.shown);
  $("devices-next").disabled = !d.next;
  $("devices-first").disabled = d.cursors.length === 1;
  $("devices-count").textContent = `page ${d.cursors.length}, ${reply.devices.length} shown`;
  // the handshakes come after the page: the list never waits for them
  const shown = d.shown;
  const handshakes = await loadHandshakes(shown);
  if (d.shown !== shown) return; // another page or search by now
  d.handshakes = handshakes;
  renderDevices(shown);
}

function renderDevices(devices) {
  const body = $("devices");
  const handshakes = state.devices.handshakes;
  body.replaceChildren();
  for (const dev of devices) {
    const row = document.createElement("tr");
    row.dataset.device = dev.id;
    cell(row, dev.name);
    cell(row, dev.user);
    cell(row, dev.address);
    cell(row, dev.state);
    const hs = handshakes ? handshakes.get(dev.public_key) : undefined;
    cell(row, handshakes ? when(hs) : "…");
    cell(row, hs ? state.devices.node : "");
    const actions = cell(row, "");
    actions.className = "actions";
    const change = (verb) => async () => {
      await api("POST", `devices/${dev.id}/${verb}`);
      notice(`Device ${dev.name} ${verb}d.`);
      await loadDevices();
    };
    if (dev.state === "disabled") button(actions, "Enable", change("enable"));
    else if (dev.state === "active") button(actions, "Disable", change("disable"));
    button(actions, "Delete", async () => {
      if (!confirm(`Delete device ${dev.name}?`)) return;
      await api("DELETE", `devices/${dev.id}`);
      notice(`Device ${dev.name} deleted.`);
      await loadDevices();
    }, true);
    body.appendChild(row);
  }
}

// Each keystroke asks the server (a search of 10,000 devices takes it a
// few ms); an answer to an older search is dropped (loadDevices).
const searchDevices = guarded(async () => {
  state.devices.q = $("device-q").value.trim();
  state.devices.cursors = [""];
  await loadDevices();
});

// ---- routes and roles ----

async function loadRoutes() {
  const { routes } = await api("GET", "routes");
  const body = $("routes");
  const roles = new Map();
  body.replaceChildren();
  for (const r of routes) {
    const row = document.createElement("tr");
    cell(row, r.subnet);
    cell(row, r.interface);
    cell(row, (r.roles || []).join(", "));
    cell(row, r.source);
    const actions = cell(row, "");
    if (r.source === "runtime")
      button(actions, "Delete", async () => {
        await api("DELETE", `routes/${r.subnet}`);
        notice(`Route ${r.subnet} deleted.`);
        await loadRoutes();
      }, true);
    body.appendChild(row);
    for (const role of r.roles || []) {
      if (!roles.has(role)) roles.set(role, []);
      roles.get(role).push(r.subnet);
    }
  }
  const rolesBody = $("roles");
  rolesBody.replaceChildren();
  for (const [role, subnets] of [...roles].sort()) {
    const row = document.createElement("tr");
    cell(row, role);
    cell(row, subnets.join(", "));
    rolesBody.appendChild(row);
  }
}

async function addRoute() {
  const body = {
    subnet: $("route-subnet").value.trim(),
    roles: $("route-roles").value.split(",").map((s) => s.trim()).filter(Boolean),
  };
  const via = $("route-via").value.trim();
  if (via) body.via = via;
  await api("POST", "routes", body);
  notice(`Route ${body.subnet} added.`);
  await loadRoutes();
}

// ---- nodes, the active one marked ----

async function loadNodes() {
  const body = $("nodes");
  body.replaceChildren();
  let nodes = [];
  let failover = null;
  try {
    nodes = (await api("GET", "nodes")).nodes;
  } catch (e) {
    nodes = [{ name: state.me.node, self: true, reachable: true }]; // no mesh: one node
  }
  try {
    failover = await api("GET", "failover");
  } catch (e) {
    failover = null; // no failover plugin
  }
  const active = failover ? failover.active : nodes.length === 1 ? nodes[0].name : null;
  for (const n of nodes) {
    const row = document.createElement("tr");
    row.dataset.node = n.name;
    if (n.name === active) row.className = "active-node";
    cell(row, n.name + (n.name === active ? " (active)" : "") + (n.self ? " — this node" : ""));
    const record = failover && failover.nodes ? failover.nodes[n.name] : null;
    cell(row, record ? record.state : failover ? "unknown" : "no failover");
    cell(row, n.endpoint || "");
    cell(row, n.reachable ? "yes" : "no");
    body.appendChild(row);
  }
  $("nodes-note").textContent = active ? `Active node: ${active}` : "No active node known.";
}

const loaders = {
  users: loadUsers,
  devices: loadDevices,
  routes: loadRoutes,
  nodes: loadNodes,
};

// ---- wiring ----

function wire() {
  $("signin-form").addEventListener("submit", guarded(signIn));
  $("logout").addEventListener("click", guarded(signOut));
  $("user-form").addEventListener("submit", guarded(createUser));
  $("code-copy").addEventListener("click", guarded(copyCode));
  $("code-revoke").addEventListener("click", guarded(revokeCode));
  $("enroll-show").addEventListener("click", () => {
    $("enroll-config").hidden = !$("enroll-config").hidden;
  });
  $("enroll-close").addEventListener("click", closeEnroll);
  $("device-search").addEventListener("submit", (e) => e.preventDefault());
  $("device-q").addEventListener("input", searchDevices);
  $("devices-next").addEventListener("click", guarded(async () => {
    if (!state.devices.next) return;
    state.devices.cursors.push(state.devices.next);
    await loadDevices();
  }));
  $("devices-first").addEventListener("click", guarded(async () => {
    state.devices.cursors = [""];
    await loadDevices();
  }));
  $("route-form").addEventListener("submit", guarded(addRoute));
  window.addEventListener("hashchange", () => route());
}

wire();
route();
