// The baseline of bench/panel/run.sh: what a panel that does not page does
// (wg-easy's): every device fetched (the admin API's largest pages, one
// after the other), every row rendered at once, the search a filter in
// the browser over all of them. Not part of the panel.
const all = [];
let after = "";
for (;;) {
  const params = new URLSearchParams({ limit: "1000" });
  if (after) params.set("after", after);
  const reply = await (await fetch(`/api/v1/admin/devices?${params}`)).json();
  all.push(...reply.devices);
  if (!reply.next) break;
  after = reply.next;
}

function render(devices) {
  const body = document.getElementById("devices");
  body.replaceChildren();
  for (const d of devices) {
    const row = document.createElement("tr");
    for (const text of [d.name, d.user, d.address, d.state]) {
      const td = document.createElement("td");
      td.textContent = text || "";
      row.appendChild(td);
    }
    const actions = document.createElement("td");
    for (const label of ["Disable", "Delete"]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      actions.appendChild(b);
    }
    row.appendChild(actions);
    body.appendChild(row);
  }
}

render(all);
document.getElementById("device-search").addEventListener("submit", (e) => e.preventDefault());
document.getElementById("device-q").addEventListener("input", (e) => {
  const q = e.target.value.trim().toLowerCase();
  render(all.filter((d) => JSON.stringify(d).toLowerCase().includes(q)));
});
