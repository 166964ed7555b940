// The Account page's passkeys: add one (a WebAuthn registration), rename, delete.
import { api } from "../api.js";
import { formatTime, h, replaceChildren, showError } from "../dom.js";
import { createPasskey, passkeyErrorMessage, passkeysSupported } from "../webauthn.js";

export function passkeysSection(ctx) {
    const nameInput = h("input", {
        id: "passkey-name", name: "name", type: "text", maxlength: 64, required: true,
        placeholder: "e.g. Laptop fingerprint", autocomplete: "off", "aria-label": "Name of the new passkey",
    });
    const addBtn = h("button", { id: "passkey-add", class: "btn btn-primary", type: "submit" }, "Add a passkey");
    const addForm = h("form", { class: "create-form", id: "passkey-form", novalidate: true }, nameInput, addBtn);
    const error = h("p", { class: "error", role: "alert", id: "passkey-error", hidden: true });
    const tbody = h("tbody", { id: "passkey-rows" });
    const table = h("table", { class: "table", id: "passkeys-table", hidden: true },
        h("thead", {}, h("tr", {},
            h("th", { scope: "col" }, "Name"),
            h("th", { scope: "col", class: "col-created" }, "Created"),
            h("th", { scope: "col", class: "col-created" }, "Last used"),
            h("th", { scope: "col", class: "col-actions" }, h("span", { class: "visually-hidden" }, "Actions")))),
        tbody);
    const empty = h("p", { class: "muted", id: "passkeys-empty", hidden: true }, "No passkeys yet.");
    const unsupported = passkeysSupported() ? null
        : h("p", { class: "callout" }, "This browser cannot use passkeys here: open the appliance by its name over HTTPS (or as localhost).");

    const section = h("section", { class: "card account-card", id: "passkeys" },
            h("h2", {}, "Passkeys"),
            h("p", { class: "muted" },
                "A passkey signs you in without a password, with this device's screen lock or a security key."),
            unsupported,
            addForm,
            error,
            empty,
            table);

    async function load() {
        const { passkeys } = await api.listPasskeys({ signal: ctx.signal });
        if (!ctx.alive) return;
        replaceChildren(tbody, passkeys.map(row));
        table.hidden = passkeys.length === 0;
        empty.hidden = passkeys.length !== 0;
    }

    function row(pk) {
        const nameCell = h("td", {}, h("span", { class: "passkey-name" }, pk.name));
        const renameBtn = h("button", { class: "btn btn-ghost btn-sm", type: "button", dataset: { action: "rename" } }, "Rename");
        const deleteBtn = h("button", { class: "btn btn-danger-ghost btn-sm", type: "button", dataset: { action: "delete" } }, "Delete");
        const tr = h("tr", { dataset: { passkeyId: String(pk.id) } },
            nameCell,
            h("td", { class: "nowrap" }, formatTime(pk.created_at)),
            h("td", { class: "nowrap", dataset: { field: "last-used" } }, pk.last_used_at ? formatTime(pk.last_used_at) : "never"),
            h("td", {}, h("div", { class: "row-actions" }, renameBtn, deleteBtn)));

        renameBtn.addEventListener("click", () => {
            const input = h("input", { type: "text", maxlength: 64, value: pk.name, "aria-label": "New name", dataset: { field: "rename" } });
            const save = h("button", { class: "btn btn-primary btn-sm", type: "submit" }, "Save");
            const cancel = h("button", { class: "btn btn-ghost btn-sm", type: "button", onclick: () => load().catch(fail) }, "Cancel");
            const form = h("form", { class: "row-actions", style: { justifyContent: "flex-start" } }, input, save, cancel);
            form.addEventListener("submit", async (ev) => {
                ev.preventDefault();
                showError(error, "");
                try {
                    await api.renamePasskey(pk.id, input.value.trim(), { signal: ctx.signal });
                    await load();
                } catch (e) { fail(e); }
            });
            replaceChildren(nameCell, form);
            input.select();
            input.focus();
        });
        deleteBtn.addEventListener("click", async () => {
            if (!window.confirm(`Delete the passkey "${pk.name}"? It can no longer sign you in.`)) return;
            showError(error, "");
            deleteBtn.disabled = true;
            try {
                await api.deletePasskey(pk.id, { signal: ctx.signal });
                await load();
            } catch (e) { deleteBtn.disabled = false; fail(e); }
        });
        return tr;
    }

    function fail(e) {
        if (e && (e.aborted || !ctx.alive)) return;
        showError(error, (e && e.message) || String(e));
    }

    addForm.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const name = nameInput.value.trim();
        if (!name) {
            showError(error, "Give the new passkey a name, such as the device it is on.");
            nameInput.focus();
            return;
        }
        showError(error, "");
        addBtn.disabled = true;
        const label = addBtn.textContent;
        addBtn.textContent = "Waiting for your authenticator…";
        try {
            const options = await api.passkeyRegisterOptions({ signal: ctx.signal });
            let credential;
            try {
                credential = await createPasskey(options.publicKey, ctx.signal);
            } catch (e) {
                if (!ctx.alive) return;
                throw new Error(passkeyErrorMessage(e));
            }
            await api.registerPasskey(name, credential, { signal: ctx.signal });
            nameInput.value = "";
            await load();
        } catch (e) {
            fail(e);
        } finally {
            addBtn.disabled = false;
            addBtn.textContent = label;
        }
    });

    load().catch(fail);
    return section;
}
