// Overview: who this node is, where it listens, its peers, balance, providing, refused input,
// and the last hour of contracts and peers.

import { get } from "./api.js";
import { el, fill, card, facts, num, short, problem, sparkline } from "./html.js";

export async function render(root, ctx) {
  const draw = async () => {
    let status;
    let activity;
    let balance;
    let network;
    try {
      [status, activity, network, balance] = await Promise.all([get("/v1/status"), get("/v1/activity"), get("/v1/network"), get("/v1/wallet/balance").catch(() => null)]);
    } catch (e) {
      fill(root, problem(e));
      return;
    }
    ctx.status = status;
    const refused = Object.entries(status.refused || {}).filter(([, n]) => n > 0);
    const manifest = status.manifest;
    fill(root,
      el("h1", {}, "Overview"),
      el("div", { class: "grid" },
        card("This node", facts([
          ["peer id", el("code", { id: "peer-id" }, status.peer_id)],
          ["network (genesis)", network.genesis ? short(network.genesis) : "none: this node keeps no ledger"],
          ["listening on", el("ul", { class: "plain" }, status.listen_addrs.map((a) => el("li", {}, el("code", {}, a))))],
          ["connected peers", el("span", { id: "peer-count" }, num(status.connected_peers.length))],
          ["balance", el("span", { id: "overview-balance" }, balance ? `${num(balance.balance)} CUE` + (balance.locked ? ` (${num(balance.locked)} locked)` : "") : "no ledger")],
          ["providing", manifest ? `yes: ${num(manifest.fuel_per_second)} fuel/s, ${num(manifest.policy.price_per_mfuel)} per Mfuel` : "no"],
        ])),
        card("Refused input", refused.length
          ? el("ul", { class: "plain" }, refused.map(([kind, n]) => el("li", {}, `${kind}: ${num(n)}`)))
          : el("p", { class: "muted" }, "nothing refused since the node started")),
        card("Last hour",
          sparkline(activity.jobs_per_minute, "contracts per minute"),
          sparkline(activity.peers.map(([, n]) => n), "connected peers, sampled each minute")),
        card("Peers", status.connected_peers.length
          ? el("ul", { class: "plain" }, status.connected_peers.map((p) => el("li", {}, short(p))))
          : el("p", { class: "muted" }, "no peer connected"))));
  };
  await draw();
  return { onState: draw };
}
