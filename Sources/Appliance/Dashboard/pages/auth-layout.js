// Layout pieces shared by the signed-out pages (setup and login).
import { h, replaceChildren } from "../dom.js";

export function authFrame(root, ...children) {
    const main = h("main", { class: "auth-page" },
        h("div", { class: "auth-brand" },
            h("img", { src: "/static/logo.svg", alt: "", width: 40, height: 40 }),
            h("span", {}, "Claworc")),
        h("section", { class: "card auth-card" }, ...children));
    replaceChildren(root, main);
    return main;
}

/** A labelled input. */
export function field(label, input, hint) {
    return h("div", { class: "field" },
        h("label", { for: input.id }, label),
        input,
        hint ? h("p", { class: "hint" }, hint) : null);
}

/** Disable a form's controls while `work` runs; re-enable after unless the page was left. */
export async function busy(form, button, busyLabel, work) {
    const controls = [...form.elements];
    const label = button.textContent;
    controls.forEach((c) => { c.disabled = true; });
    button.textContent = busyLabel;
    form.setAttribute("aria-busy", "true");
    try {
        return await work();
    } finally {
        controls.forEach((c) => { c.disabled = false; });
        button.textContent = label;
        form.removeAttribute("aria-busy");
    }
}
