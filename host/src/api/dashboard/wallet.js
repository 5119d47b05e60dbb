// Wallet: balance, signed history, transfer, and mint when this node is the mint authority.

import { get, post } from "./api.js";
import { el, fill, card, table, num, short, time, problem, facts } from "./html.js";

function field(label, input, errorId) {
  return el("label", {}, el("span", {}, label), input, el("span", { class: "field-error", id: errorId }));
}

function paymentForm(title, path, id) {
  const to = el("input", { name: "to", id: `${id}-to`, placeholder: "peer id (12D3Koo…)", required: true, size: 56 });
  const amount = el("input", { name: "amount", id: `${id}-amount`, type: "number", min: 1, step: 1, required: true });
  const outcome = el("div", { id: `${id}-outcome` });
  const form = el("form", { class: "form", id },
    field("to", to, `${id}-to-error`), field("amount", amount, `${id}-amount-error`),
    el("button", { type: "submit", id: `${id}-submit` }, title), outcome);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    fill(outcome);
    const value = Number(amount.value);
    if (!Number.isInteger(value) || value <= 0) {
      fill(document.getElementById(`${id}-amount-error`), "a whole number above 0");
      return;
    }
    fill(document.getElementById(`${id}-amount-error`));
    try {
      const entry = await post(path, { to: to.value.trim(), amount: value });
      fill(outcome, el("p", { class: "ok" }, `${entry.kind} ${num(entry.amount)} signed: `, el("code", {}, entry.hash)));
    } catch (e) {
      fill(outcome, problem(e));
    }
  });
  return form;
}

export async function render(root) {
  const draw = async () => {
    let balance;
    let history;
    let network;
    try {
      [balance, history, network] = await Promise.all([get("/v1/wallet/balance"), get("/v1/wallet/history?limit=100"), get("/v1/network")]);
    } catch (e) {
      fill(root, el("h1", {}, "Wallet"), problem(e));
      return;
    }
    fill(root,
      el("h1", {}, "Wallet"),
      el("div", { class: "grid" },
        card("Balance", facts([
          ["balance", el("span", { id: "wallet-balance", class: "big" }, `${num(balance.balance)} CUE`)],
          ["locked in open offers", num(balance.locked)],
          ["flagged", balance.flagged ? "yes: this account equivocated" : "no"],
          ["mint authority", network.is_mint_authority ? "this node" : short(network.mint_authority)],
        ])),
        card("Transfer", paymentForm("Transfer", "/v1/wallet/transfer", "transfer")),
        network.is_mint_authority ? card("Mint", paymentForm("Mint", "/v1/wallet/mint", "mint")) : null),
      card("Signed history", table([
        ["when", (e) => time(e.timestamp_ms), (e) => e.timestamp_ms],
        ["kind", (e) => e.kind],
        ["from", (e) => short(e.from)],
        ["to", (e) => short(e.to)],
        ["amount", (e) => num(e.amount), (e) => e.amount],
        ["entry", (e) => short(e.hash)],
      ], history, { class: "history", empty: "no entry yet" })));
  };
  await draw();
  // Redraw on a balance change only: a form being filled in is not wiped by unrelated news.
  let last = null;
  return {
    onState: (state) => {
      const now = `${state.balance}/${state.locked}`;
      if (last !== null && now !== last) draw();
      last = now;
    },
  };
}
