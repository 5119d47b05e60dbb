// Jobs: every contract this node is a party to; a job's page with its contracts and events.

import { get } from "./api.js";
import { el, fill, card, table, num, short, time, problem, facts } from "./html.js";

function contracts(rows) {
  return table([
    ["job", (c) => el("a", { href: `#/jobs/${c.job}` }, short(c.job))],
    ["role", (c) => c.role, (c) => c.role],
    ["counterpart", (c) => short(c.peer)],
    ["state", (c) => el("span", { class: "state " + c.state }, c.state), (c) => c.state],
    ["offer", (c) => num(c.offer), (c) => c.offer],
    ["price", (c) => num(c.price), (c) => c.price || 0],
    ["receipt", (c) => short(c.receipt)],
    ["payment", (c) => short(c.payment)],
    ["changed", (c) => time(c.updated_ms), (c) => c.updated_ms],
  ], rows, { class: "contracts", sortBy: 8, descending: true, empty: "no contract yet" });
}

async function list(root) {
  const draw = async () => {
    try {
      fill(root, el("h1", {}, "Jobs"), card("Contracts", contracts(await get("/v1/jobs?limit=200"))));
    } catch (e) {
      fill(root, el("h1", {}, "Jobs"), problem(e));
    }
  };
  await draw();
  return { onState: draw };
}

async function page(root, id) {
  const draw = async () => {
    let job;
    try {
      job = await get(`/v1/jobs/${encodeURIComponent(id)}`);
    } catch (e) {
      fill(root, el("h1", {}, "Job"), problem(e), el("a", { href: "#/jobs" }, "all jobs"));
      return;
    }
    fill(root,
      el("h1", {}, "Job ", el("code", {}, job.job)),
      el("p", {}, el("a", { href: "#/jobs" }, "← all jobs")),
      card("Contracts", contracts(job.contracts)),
      card("Details", job.contracts.map((c) => facts([
        ["contract", el("code", {}, c.contract)],
        ["request", el("code", {}, c.request)],
        ["receipt", c.receipt ? el("code", {}, c.receipt) : "—"],
        ["payment", c.payment ? el("code", {}, c.payment) : "—"],
        ["pay by", time(c.pay_by_ms)],
        ["note", c.detail || "—"],
      ]))),
      card("Events and attestations", table([
        ["kind", (e) => e.kind],
        ["hash", (e) => el("code", {}, e.hash)],
        ["bytes", (e) => num(e.bytes)],
      ], job.events, { class: "events" })));
  };
  await draw();
  return { onState: draw };
}

export async function render(root, ctx, rest) {
  return rest && rest[0] ? page(root, decodeURIComponent(rest[0])) : list(root);
}
