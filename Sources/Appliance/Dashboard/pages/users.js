// /users (admins): the accounts of this appliance. Create one; per row change the role,
// disable or enable, reset the password, pick the instances the user is assigned to, delete.
// The server enforces every rule (the last enabled admin stays, password length, names):
// this page shows its messages rather than repeating its checks.
import { api } from "../api.js";
import { formatTime, h, replaceChildren, setText, showError } from "../dom.js";
import { AssignmentsPanel } from "./user-assignments.js";

const ROLES = [["user", "User"], ["admin", "Admin"]];

function roleSelect(attrs, value) {
    const select = h("select", attrs, ROLES.map(([v, label]) => h("option", { value: v }, label)));
    select.value = value;
    return select;
}

export async function usersPage(root, ctx) {
    document.title = "Users · Claworc";
    const main = ctx.shell();

    // ---- create form
    const username = h("input", {
        id: "user-create-username", type: "text", required: true, maxlength: 64, placeholder: "username",
        autocomplete: "off", autocapitalize: "off", spellcheck: "false", "aria-label": "Username",
    });
    const password = h("input", {
        id: "user-create-password", type: "password", required: true, placeholder: "password",
        autocomplete: "new-password", "aria-label": "Password",
    });
    const role = roleSelect({ id: "user-create-role", "aria-label": "Role" }, "user");
    const createBtn = h("button", { id: "user-create-submit", class: "btn btn-primary", type: "submit" }, "Create user");
    const createError = h("p", { class: "error", role: "alert", id: "user-create-error", hidden: true });
    const createForm = h("form", { class: "create-form users-create-form", id: "user-create-form", novalidate: true },
        username, password, role, createBtn);

    const listError = h("p", { class: "error", role: "alert", id: "users-list-error", hidden: true });
    const actionErrorText = h("span", {});
    const actionError = h("div", { class: "error error-dismissable", role: "alert", id: "users-error", hidden: true },
        actionErrorText,
        h("button", { type: "button", class: "dismiss", "aria-label": "Dismiss", onclick: () => setActionError("") }, "×"));
    const setActionError = (msg) => { setText(actionErrorText, msg || ""); actionError.hidden = !msg; };
    const tbody = h("tbody", { id: "user-rows" });
    const loading = h("div", { class: "empty muted" }, "Loading users…");
    const table = h("table", { class: "table", id: "users-table", hidden: true },
        h("thead", {}, h("tr", {},
            h("th", { scope: "col" }, "Username"),
            h("th", { scope: "col", class: "col-role" }, "Role"),
            h("th", { scope: "col", class: "col-state" }, "Status"),
            h("th", { scope: "col", class: "col-created" }, "Created"),
            h("th", { scope: "col", class: "col-actions" }, h("span", { class: "visually-hidden" }, "Actions")))),
        tbody);
    const count = h("span", { class: "count muted", id: "users-count" });

    replaceChildren(main,
        h("div", { class: "page-head" },
            h("div", {}, h("h1", {}, "Users ", count),
                h("p", { class: "muted" }, "Admins see and manage everything; users see only the instances assigned to them."))),
        h("section", { class: "card create-card" },
            h("h2", {}, "New user"),
            createForm,
            h("p", { class: "hint" }, "Passwords need at least 8 characters. The user can change it on their Account page."),
            createError),
        listError,
        actionError,
        h("section", { class: "card table-card" }, loading, table));

    const rows = new Map();   // id -> row
    const me = () => ctx.session.user || {};

    function render(users) {
        users = [...users].sort((a, b) => a.id - b.id);
        const seen = new Set();
        for (const user of users) {
            seen.add(user.id);
            let row = rows.get(user.id);
            if (!row) {
                row = makeRow(user);
                rows.set(user.id, row);
            }
            updateRow(row, user);
            tbody.appendChild(row.tr);      // appending in order keeps id order; detail rows follow
            tbody.appendChild(row.detail);
        }
        for (const [id, row] of rows) {
            if (!seen.has(id)) { row.tr.remove(); row.detail.remove(); rows.delete(id); }
        }
        loading.hidden = true;
        table.hidden = false;
        setText(count, String(users.length));
    }

    function makeRow(user) {
        const name = h("span", { class: "user-name", dataset: { field: "username" } });
        const self = h("span", { class: "tag", hidden: true }, "you");
        const roleSel = roleSelect({ class: "select-sm", dataset: { action: "role" }, "aria-label": `Role of ${user.username}` }, user.role);
        const status = h("span", { class: "badge", dataset: { field: "status" } });
        const created = h("td", { class: "muted nowrap", dataset: { field: "created_at" } });
        const btn = (action, label, cls = "btn-secondary") =>
            h("button", { type: "button", class: `btn btn-sm ${cls}`, dataset: { action } }, label);
        const instancesBtn = btn("assignments", "Instances");
        const passwordBtn = btn("password", "Reset password");
        const toggleBtn = btn("toggle-disabled", "Disable");
        const deleteBtn = btn("delete", "Delete", "btn-danger-ghost");
        const tr = h("tr", { dataset: { userId: String(user.id), username: user.username } },
            h("td", {}, name, " ", self),
            h("td", {}, roleSel),
            h("td", {}, status),
            created,
            h("td", { class: "col-actions" },
                h("div", { class: "row-actions" }, instancesBtn, passwordBtn, toggleBtn, deleteBtn)));
        const detailCell = h("td", { colspan: 5 });
        const detail = h("tr", { class: "detail-row", hidden: true, dataset: { detailFor: user.username } }, detailCell);
        const row = { tr, detail, detailCell, name, self, roleSel, status, created, toggleBtn, user, open: "" };

        roleSel.addEventListener("change", () =>
            change(row, { role: roleSel.value }, `change the role of ${row.user.username}`));
        toggleBtn.addEventListener("click", () => {
            const disable = !row.user.disabled;
            if (disable && row.user.id !== me().id && !window.confirm(
                `Disable ${row.user.username}? Their sessions end and their API tokens are deleted.`)) return;
            change(row, { disabled: disable }, `${disable ? "disable" : "enable"} ${row.user.username}`);
        });
        deleteBtn.addEventListener("click", () => remove(row));
        passwordBtn.addEventListener("click", () => toggleDetail(row, "password"));
        instancesBtn.addEventListener("click", () => toggleDetail(row, "assignments"));
        return row;
    }

    function updateRow(row, user) {
        const roleChanged = row.user.role !== user.role;
        row.user = user;
        setText(row.name, user.username);
        row.tr.dataset.username = user.username;
        row.tr.dataset.role = user.role;
        row.tr.dataset.disabled = String(!!user.disabled);
        row.self.hidden = user.id !== me().id;
        row.roleSel.value = user.role;
        setText(row.status, user.disabled ? "Disabled" : "Active");
        row.status.className = `badge ${user.disabled ? "state-failed" : "state-running"}`;
        setText(row.toggleBtn, user.disabled ? "Enable" : "Disable");
        setText(row.created, formatTime(user.created_at));
        row.created.title = user.created_at || "";
        // Admins see every instance: their panel says so instead of offering assignments.
        if (row.open === "assignments" && roleChanged) openDetail(row, "assignments");
    }

    function toggleDetail(row, kind) {
        if (row.open === kind) {
            row.open = "";
            row.detail.hidden = true;
            replaceChildren(row.detailCell);
            return;
        }
        openDetail(row, kind);
    }

    function openDetail(row, kind) {
        row.open = kind;
        row.detail.hidden = false;
        row.detail.dataset.kind = kind;
        if (kind === "password") replaceChildren(row.detailCell, passwordForm(row));
        else if (row.user.role === "admin") {
            replaceChildren(row.detailCell, h("p", { class: "muted detail-note" },
                `${row.user.username} is an admin and sees every instance; assignments apply to users.`));
        } else {
            const panel = new AssignmentsPanel(row.user, ctx.signal);
            replaceChildren(row.detailCell, panel.element);
            panel.load();
        }
    }

    function passwordForm(row) {
        const input = h("input", {
            type: "password", class: "reset-password", autocomplete: "new-password", required: true,
            "aria-label": `New password for ${row.user.username}`, placeholder: `New password for ${row.user.username}`,
        });
        const save = h("button", { type: "submit", class: "btn btn-sm btn-primary" }, "Set password");
        const cancel = h("button", { type: "button", class: "btn btn-sm btn-ghost", onclick: () => toggleDetail(row, "password") }, "Cancel");
        const error = h("p", { class: "error", role: "alert", hidden: true });
        const form = h("form", { class: "inline-form", novalidate: true }, input, save, cancel);
        form.addEventListener("submit", async (ev) => {
            ev.preventDefault();
            if (!input.value) { showError(error, "Enter the new password."); return; }
            showError(error, "");
            save.disabled = input.disabled = true;
            try {
                const res = await api.updateUser(row.user.id, { password: input.value }, { signal: ctx.signal });
                if (!ctx.alive) return;
                if (res.user.id === me().id) { signedOutBySelfChange(); return; }
                updateRow(row, res.user);
                replaceChildren(row.detailCell, h("p", { class: "ok-note", role: "status" },
                    `Password of ${row.user.username} reset; their sessions have ended.`));
            } catch (e) {
                if (e.aborted || !ctx.alive || e.status === 401) return;
                showError(error, e.message);
                save.disabled = input.disabled = false;
            }
        });
        queueMicrotask(() => input.focus());
        return h("div", {}, form, error);
    }

    function signedOutBySelfChange() {
        ctx.session.user = null;
        ctx.navigate("/login", { replace: true });
    }

    async function change(row, changes, what) {
        if (row.user.id === me().id &&
            !window.confirm(`This is your own account: to ${what} ends your sessions, this one too. Go on?`)) {
            updateRow(row, row.user);
            return;
        }
        setActionError("");
        row.tr.classList.add("is-pending");
        try {
            const res = await api.updateUser(row.user.id, changes, { signal: ctx.signal });
            if (!ctx.alive) return;
            // A new role or a disabled account ends the user's sessions, this one too if it is theirs.
            if (res.user.id === me().id) { signedOutBySelfChange(); return; }
            updateRow(row, res.user);
        } catch (e) {
            if (e.aborted || !ctx.alive || e.status === 401) return;
            setActionError(`Could not ${what}: ${e.message}`);
            updateRow(row, row.user);   // puts the role select back
        } finally {
            row.tr.classList.remove("is-pending");
        }
    }

    async function remove(row) {
        const name = row.user.username;
        if (!window.confirm(`Delete user "${name}"? Their sessions, tokens and assignments go with them.`)) return;
        setActionError("");
        row.tr.classList.add("is-pending");
        try {
            await api.deleteUser(row.user.id, { signal: ctx.signal });
            if (!ctx.alive) return;
            rows.delete(row.user.id);
            row.tr.remove();
            row.detail.remove();
            setText(count, String(rows.size));
            if (row.user.id === me().id) ctx.navigate("/login", { replace: true });
        } catch (e) {
            if (e.aborted || !ctx.alive || e.status === 401) return;
            setActionError(`Could not delete ${name}: ${e.message}`);
        } finally {
            row.tr.classList.remove("is-pending");
        }
    }

    createForm.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const values = { username: username.value.trim(), password: password.value, role: role.value };
        let problem = "";
        if (!values.username) problem = "Enter a username.";
        else if (!values.password) problem = "Enter a password for the new user.";
        if (problem) { showError(createError, problem); return; }
        showError(createError, "");
        const controls = [username, password, role, createBtn];
        controls.forEach((c) => { c.disabled = true; });
        try {
            const res = await api.createUser(values.username, values.password, values.role, { signal: ctx.signal });
            if (!ctx.alive) return;
            username.value = "";
            password.value = "";
            role.value = "user";
            render([...[...rows.values()].map((r) => r.user), res.user]);
        } catch (e) {
            if (e.aborted || !ctx.alive || e.status === 401) return;
            showError(createError, e.message);
        } finally {
            controls.forEach((c) => { c.disabled = false; });
            if (ctx.alive) username.focus();
        }
    });

    try {
        const res = await api.listUsers({ signal: ctx.signal });
        if (!ctx.alive) return;
        render(res.users || []);
    } catch (e) {
        if (e.aborted || !ctx.alive || e.status === 401) return;
        loading.hidden = true;
        showError(listError, `Could not load users: ${e.message}`);
    }
}
