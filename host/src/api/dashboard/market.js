// Market: the providers this node discovers (claimed and observed speed, latency, reputation,
// score; sortable) and the components known by name and version.

import { get } from "./api.js";
import { el, fill, card, table, num, short, bytes, problem } from "./html.js";

export async function render(root) {
  fill(root, el("h1", {}, "Market"), el("p", { class: "muted" }, "Discovering providers…"));
  const [providers, components] = await Promise.all([
    get("/v1/providers").catch((e) => e),
    get("/v1/components").catch((e) => e),
  ]);
  const price = (p) => p.manifest.policy.price_per_mfuel;
  fill(root,
    el("h1", {}, "Market"),
    card("Providers",
      providers instanceof Error ? problem(providers) : table([
        ["provider", (p) => short(p.peer_id), (p) => p.peer_id],
        ["claimed fuel/s", (p) => num(p.manifest.fuel_per_second), (p) => p.manifest.fuel_per_second],
        ["observed fuel/s", (p) => num(p.observed_fuel_per_second), (p) => p.observed_fuel_per_second || 0],
        ["latency", (p) => `${p.latency_ms.toFixed(1)} ms`, (p) => p.latency_ms],
        ["reputation", (p) => p.reputation.toFixed(2), (p) => p.reputation],
        ["price / Mfuel", (p) => num(price(p)), price],
        ["base fee", (p) => num(p.manifest.policy.base_fee), (p) => p.manifest.policy.base_fee],
        ["score", (p) => p.score.toFixed(3), (p) => p.score],
      ], providers, { class: "providers", sortBy: 7, descending: true, empty: "no provider found yet" })),
    card("Published components",
      components instanceof Error ? problem(components) : table([
        ["name", (c) => c.name, (c) => c.name],
        ["version", (c) => c.version],
        ["size", (c) => bytes(c.size), (c) => c.size],
        ["sha256", (c) => short(c.sha256)],
        ["publisher", (c) => short(c.publisher)],
        ["", (c) => el("a", { href: `#/submit/${encodeURIComponent(c.name + "@" + c.version)}` }, "submit a job")],
      ], components, { class: "components", empty: "no component published yet" })));
  return {};
}
