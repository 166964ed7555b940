// Token usage the LLM key proxy counted. /usage (admins): a chart per instance over the last
// days, one coloured series per model, and a table of the figures. On the instance page, a
// card with this month's spend against the instance's monthly budget and the recent days.
// Charts are inline SVG drawn here: no library.
import { request } from "../api.js";
import { h, replaceChildren, setText, showError } from "../dom.js";

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#be185d", "#65a30d"];

function svg(tag, attrs = {}, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    for (const c of children) el.append(c);
    return el;
}

const fmt = (n) => Number(n).toLocaleString("en-US");

/** The last `count` UTC days, oldest first, as "YYYY-MM-DD". */
function lastDays(count) {
    const out = [];
    const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
    for (let i = count - 1; i >= 0; i--) out.push(new Date(today - i * 86400000).toISOString().slice(0, 10));
    return out;
}

/**
 * Stacked daily bars of input + output tokens, one colour per model.
 * rows: [{day, model, input_tokens, output_tokens}]
 */
export function usageChart(rows, days, { label = "Tokens per day" } = {}) {
    const models = [...new Set(rows.map((r) => r.model))].sort();
    const colour = (m) => COLOURS[models.indexOf(m) % COLOURS.length];
    const perDay = new Map(days.map((d) => [d, new Map()]));
    for (const r of rows) {
        const day = perDay.get(r.day);
        if (day) day.set(r.model, (day.get(r.model) || 0) + r.input_tokens + r.output_tokens);
    }
    const totals = days.map((d) => [...perDay.get(d).values()].reduce((a, b) => a + b, 0));
    const max = Math.max(1, ...totals);
    const W = 640, H = 160, left = 56, bottom = 20, top = 8;
    const bw = (W - left) / days.length;
    const y = (v) => top + (H - top - bottom) * (1 - v / max);
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "usage-chart", role: "img", "aria-label": label });
    for (const frac of [0, 0.5, 1]) {
        chart.append(svg("line", { x1: left, x2: W, y1: y(max * frac), y2: y(max * frac), class: "usage-grid" }),
            svg("text", { x: left - 6, y: y(max * frac) + 4, "text-anchor": "end", class: "usage-axis" }, fmt(Math.round(max * frac))));
    }
    days.forEach((d, i) => {
        let base = 0;
        for (const m of models) {
            const v = perDay.get(d).get(m) || 0;
            if (!v) continue;
            const rect = svg("rect", { x: left + i * bw + 1, y: y(base + v), width: Math.max(1, bw - 2),
                height: Math.max(1, y(base) - y(base + v)), fill: colour(m) },
            svg("title", {}, `${d} · ${m}: ${fmt(v)} tokens`));
            chart.append(rect);
            base += v;
        }
        if (i === 0 || i === days.length - 1 || i % 7 === 0) {
            chart.append(svg("text", { x: left + i * bw + bw / 2, y: H - 4, "text-anchor": "middle", class: "usage-axis" }, d.slice(5)));
        }
    });
    const legend = h("div", { class: "usage-legend" }, ...models.map((m) =>
        h("span", {}, h("span", { class: "usage-swatch", style: `background:${colour(m)}` }), m)));
    return h("figure", { class: "usage-figure" }, chart, models.length ? legend : h("p", { class: "muted" }, "No requests yet."));
}

function table(rows, withInstance) {
    const head = ["Day", ...(withInstance ? ["Instance"] : []), "Model", "Requests", "Input", "Output", "Errors", "Avg latency"];
    return h("table", { class: "table usage-table" },
        h("thead", {}, h("tr", {}, ...head.map((t) => h("th", {}, t)))),
        h("tbody", {}, ...[...rows].reverse().map((r) => h("tr", {},
            h("td", {}, r.day), ...(withInstance ? [h("td", {}, r.instance_name || `#${r.instance_id}`)] : []),
            h("td", {}, r.model), h("td", {}, fmt(r.requests)), h("td", {}, fmt(r.input_tokens)),
            h("td", {}, fmt(r.output_tokens)), h("td", {}, fmt(r.errors)), h("td", {}, `${fmt(r.latency_ms_avg)} ms`)))));
}

/** /usage: every instance's usage (admins). */
export async function usagePage(root, ctx) {
    document.title = "Usage · Claworc";
    const main = ctx.shell();
    const error = h("p", { class: "error", role: "alert", id: "usage-error", hidden: true });
    const body = h("div", { id: "usage-body" }, h("p", { class: "muted" }, "Loading…"));
    main.append(h("h1", {}, "Usage"),
        h("p", { class: "muted" }, "Tokens the agents used through the key proxy over the last 31 days (UTC), per instance and model."),
        error, body);
    try {
        const { usage } = await request("GET", "/usage?days=31", undefined, { signal: ctx.signal });
        const days = lastDays(31);
        const byInstance = new Map();
        for (const r of usage) {
            const key = r.instance_id;
            if (!byInstance.has(key)) byInstance.set(key, { name: r.instance_name || `#${key}`, rows: [] });
            byInstance.get(key).rows.push(r);
        }
        const total = (rows) => rows.reduce((a, r) => a + r.input_tokens + r.output_tokens, 0);
        replaceChildren(body,
            h("section", { class: "card", id: "usage-all" }, h("h2", {}, "All instances"),
                usageChart(usage, days, { label: "All instances, tokens per day" })),
            ...[...byInstance.entries()].map(([id, { name, rows }]) =>
                h("section", { class: "card usage-instance", dataset: { instance: id } },
                    h("h2", {}, h("a", { href: `/instances/${id}` }, name), h("span", { class: "muted" }, ` · ${fmt(total(rows))} tokens`)),
                    usageChart(rows, days, { label: `${name}, tokens per day` }))),
            usage.length ? h("section", { class: "card" }, h("h2", {}, "Figures"), table(usage, true)) : h("p", { class: "muted" }, "No requests yet."));
    } catch (e) {
        if (!e.aborted) { replaceChildren(body); showError(error, e.message); }
    }
}

/**
 * The instance page's card: this month's tokens against the budget, and the last 14 days. An
 * admin sets the instance's own budget here (empty: the default's).
 */
export class UsageCard {
    constructor(id, ctx) {
        this.id = id;
        this.signal = ctx.signal;
        const admin = ctx.session && ctx.session.user && ctx.session.user.role === "admin";
        this.spent = h("strong", { id: "usage-spent", "data-testid": "usage-spent" });
        this.budget = h("span", { id: "usage-budget", "data-testid": "usage-budget" });
        this.bar = h("progress", { id: "usage-progress", max: 100, value: 0, hidden: true });
        this.chart = h("div", { id: "usage-chart" });
        this.error = h("p", { class: "error", role: "alert", hidden: true });
        this.input = h("input", { type: "number", min: 0, step: 1, id: "usage-budget-input", placeholder: "default",
            "aria-label": "Monthly token budget of this instance" });
        const form = h("form", { class: "inline-form", id: "usage-budget-form", hidden: !admin,
            onsubmit: (ev) => { ev.preventDefault(); this.saveBudget(); } },
        h("label", { for: "usage-budget-input" }, "Monthly budget (tokens) "), this.input,
        h("button", { type: "submit", class: "btn btn-sm", id: "usage-budget-save" }, "Save"));
        // Folded by default: the instance page's room belongs to the browser and its tabs. It
        // unfolds by itself once the budget is nearly spent.
        this.element = h("details", { class: "card usage-card", id: "usage-card", "aria-label": "Token usage" },
            h("summary", {}, h("strong", {}, "Token usage"), " · this month: ", this.spent, " tokens · budget: ", this.budget),
            this.bar, form, this.error, this.chart);
        this.load();
    }

    /** PUT replaces the instance's overrides: the others are sent back as they are. */
    async saveBudget() {
        try {
            const { overrides } = await request("GET", `/instances/${this.id}/settings`, undefined, { signal: this.signal });
            const raw = this.input.value.trim();
            const body = { ...overrides, monthly_token_budget: raw === "" ? null : Number(raw) };
            await request("PUT", `/instances/${this.id}/settings`, body, { signal: this.signal });
            this.error.hidden = true;
            await this.load();
        } catch (e) {
            if (!e.aborted) showError(this.error, e.message);
        }
    }

    async load() {
        try {
            const { usage, budget } = await request("GET", `/instances/${this.id}/usage?days=14`, undefined, { signal: this.signal });
            setText(this.spent, fmt(budget.spent_this_month));
            const limit = budget.monthly_tokens;
            setText(this.budget, limit === null ? "unlimited" :
                `${fmt(limit)}${budget.inherited ? " (default)" : ""}${budget.exhausted ? " — spent: the agent's requests are refused until an admin raises it" : ""}`);
            this.budget.dataset.exhausted = String(budget.exhausted);
            if (document.activeElement !== this.input) this.input.value = budget.inherited || limit === null ? "" : String(limit);
            this.bar.hidden = limit === null;
            if (limit !== null) this.bar.value = limit === 0 ? 100 : Math.min(100, (100 * budget.spent_this_month) / limit);
            if (limit !== null && this.bar.value >= 80 && !this.unfolded) this.element.open = this.unfolded = true;
            replaceChildren(this.chart, usageChart(usage, lastDays(14), { label: "Tokens per day, last 14 days" }));
        } catch (e) {
            if (!e.aborted) showError(this.error, e.message);
        }
    }
}
