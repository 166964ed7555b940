// /account (everyone): one's own password, passkeys, sessions and API tokens. Each section is its own
// module exporting `(ctx, page) => element`; `page` is an EventTarget the sections talk over
// ("sessions-changed" when a password change ended the other sessions). A new section is one
// more entry in SECTIONS.
import { h, replaceChildren } from "../dom.js";
import { passwordSection } from "./account-password.js";
import { sessionsSection } from "./account-sessions.js";
import { tokensSection } from "./account-tokens.js";
import { passkeysSection } from "./account-passkeys.js";

const SECTIONS = [passwordSection, passkeysSection, sessionsSection, tokensSection];

export async function accountPage(root, ctx) {
    document.title = "Account · Claworc";
    const main = ctx.shell();
    const user = ctx.session.user || {};
    const page = new EventTarget();
    replaceChildren(main,
        h("div", { class: "page-head" },
            h("div", {}, h("h1", {}, "Account"),
                h("p", { class: "muted" }, "Signed in as ", h("strong", { id: "account-username" }, user.username || ""),
                    user.role ? ` (${user.role})` : ""))),
        h("div", { class: "account-sections" }, SECTIONS.map((section) => section(ctx, page))));
}
