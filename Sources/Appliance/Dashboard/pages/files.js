// The Files tab of an instance: its persistent home ("/" is the home), browse, upload several
// files with progress, download, new folder, rename, delete (asked twice), edit a small text
// file. Works whether the instance runs or not.
import { api, filesURL } from "../api.js";
import { formatTime, h, replaceChildren, setText, showError } from "../dom.js";

const EDITABLE_MAX = 256 * 1024;

function join(dir, name) { return dir === "/" ? `/${name}` : `${dir}/${name}`; }
function parentOf(path) { return path === "/" ? "/" : path.slice(0, path.lastIndexOf("/")) || "/"; }

function formatSize(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let value = bytes / 1024, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
    return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export class FilesPanel {
    constructor(id, signal) {
        this.id = id;
        this.signal = signal;
        this.path = "/";
        this.crumbs = h("nav", { class: "crumbs", id: "files-path", "aria-label": "Folder" });
        this.error = h("p", { class: "error", role: "alert", id: "files-error", hidden: true });
        this.uploads = h("ul", { class: "uploads", id: "files-uploads" });
        this.rows = h("tbody", { id: "files-rows" });
        this.picker = h("input", { type: "file", multiple: true, id: "files-upload-input", hidden: true });
        this.editor = h("div", { class: "editor", id: "files-editor", hidden: true });
        const button = (id, label, onclick, cls = "btn-secondary") =>
            h("button", { type: "button", class: `btn btn-sm ${cls}`, id, onclick }, label);
        this.element = h("section", { class: "files", id: "files-panel", "aria-label": "Files" },
            h("div", { class: "files-bar" },
                this.crumbs,
                h("div", { class: "spacer" }),
                button("files-up", "Up", () => this.open(parentOf(this.path))),
                button("files-refresh", "Refresh", () => this.load()),
                button("files-new-folder", "New folder", () => this.newFolder()),
                button("files-upload", "Upload…", () => this.picker.click(), "btn-primary"),
                this.picker),
            this.error,
            this.uploads,
            this.editor,
            h("table", { class: "table files-table" },
                h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Size"), h("th", {}, "Modified"), h("th", {}, ""))),
                this.rows));
        this.picker.addEventListener("change", () => {
            const files = [...this.picker.files];
            this.picker.value = "";
            this.uploadAll(files);
        });
    }

    async open(path) {
        this.path = path;
        await this.load();
    }

    async load() {
        const path = this.path;
        try {
            const listing = await api.listFiles(this.id, path, { signal: this.signal });
            if (path !== this.path) return;
            showError(this.error, "");
            this.render(listing.entries);
        } catch (e) {
            if (e.aborted || e.status === 401) return;
            showError(this.error, `Could not list ${path}: ${e.message}`);
        }
    }

    render(entries) {
        const parts = this.path.split("/").filter(Boolean);
        const crumbs = [h("a", { href: "#", dataset: { path: "/" } }, "home")];
        parts.forEach((part, i) => crumbs.push(" / ",
            h("a", { href: "#", dataset: { path: "/" + parts.slice(0, i + 1).join("/") } }, part)));
        replaceChildren(this.crumbs, crumbs);
        for (const a of this.crumbs.querySelectorAll("a")) {
            a.addEventListener("click", (ev) => { ev.preventDefault(); this.open(a.dataset.path); });
        }
        if (!entries.length) {
            replaceChildren(this.rows, h("tr", {}, h("td", { colspan: 4, class: "muted" }, "This folder is empty.")));
            return;
        }
        replaceChildren(this.rows, entries.map((entry) => this.row(entry)));
    }

    row(entry) {
        const path = join(this.path, entry.name);
        const name = entry.type === "dir"
            ? h("a", { href: "#", class: "file-name is-dir", onclick: (ev) => { ev.preventDefault(); this.open(path); } }, `${entry.name}/`)
            : entry.type === "file"
                ? h("a", { class: "file-name", href: filesURL(this.id, "/content", path), download: entry.name }, entry.name)
                : h("span", { class: "file-name muted", title: entry.type }, entry.name);
        const action = (label, onclick, cls = "btn-ghost") =>
            h("button", { type: "button", class: `btn btn-sm ${cls}`, dataset: { action: label.toLowerCase() }, onclick }, label);
        const actions = h("div", { class: "row-actions" },
            entry.type === "file" && entry.size <= EDITABLE_MAX ? action("Edit", () => this.edit(path)) : null,
            action("Rename", () => this.rename(path, entry.name)),
            action("Delete", (ev) => this.remove(path, ev.currentTarget), "btn-ghost danger"));
        return h("tr", { dataset: { name: entry.name, type: entry.type } },
            h("td", {}, name),
            h("td", { class: "muted" }, entry.type === "file" ? formatSize(entry.size) : ""),
            h("td", { class: "muted" }, formatTime(new Date(entry.mtime * 1000).toISOString())),
            h("td", {}, actions));
    }

    async act(what, work) {
        try {
            await work();
            showError(this.error, "");
        } catch (e) {
            if (e.aborted || e.status === 401) return;
            showError(this.error, `Could not ${what}: ${e.message}`);
        }
        await this.load();
    }

    newFolder() {
        const name = prompt("Name of the new folder");
        if (name) this.act("create the folder", () => api.makeFolder(this.id, join(this.path, name)));
    }

    rename(path, old) {
        const name = prompt("New name", old);
        if (name && name !== old) this.act("rename", () => api.moveFile(this.id, path, join(parentOf(path), name)));
    }

    // Asked twice: the first click turns the button into the question.
    remove(path, button) {
        if (button.dataset.armed !== "1") {
            button.dataset.armed = "1";
            setText(button, "Really delete?");
            setTimeout(() => { if (button.isConnected) { button.dataset.armed = ""; setText(button, "Delete"); } }, 4000);
            return;
        }
        this.act("delete", () => api.deleteFile(this.id, path));
    }

    uploadAll(files) {
        for (const file of files) this.upload(file, join(this.path, file.name));
    }

    // XMLHttpRequest rather than fetch: only it reports upload progress.
    upload(file, path) {
        const bar = h("progress", { max: file.size || 1, value: 0 });
        const label = h("span", {}, file.name);
        const state = h("span", { class: "muted" }, "0%");
        const item = h("li", { dataset: { name: file.name } }, label, bar, state);
        this.uploads.appendChild(item);
        const xhr = new XMLHttpRequest();
        xhr.open("PUT", filesURL(this.id, "/content", path));
        xhr.upload.addEventListener("progress", (ev) => {
            bar.value = ev.loaded;
            setText(state, `${Math.floor(100 * ev.loaded / (ev.total || 1))}%`);
        });
        xhr.addEventListener("loadend", () => {
            const ok = xhr.status === 201;
            item.dataset.done = ok ? "ok" : "failed";
            let message = `failed (${xhr.status || "network"})`;
            try { message = JSON.parse(xhr.responseText).error.message; } catch { /* not JSON */ }
            setText(state, ok ? "done" : message);
            if (ok) setTimeout(() => item.remove(), 3000);
            if (parentOf(path) === this.path) this.load();
        });
        xhr.send(file);
    }

    async edit(path) {
        let text;
        try {
            const res = await fetch(filesURL(this.id, "/content", path), { credentials: "same-origin", cache: "no-store" });
            if (!res.ok) throw new Error(`the server answered ${res.status}`);
            text = await res.text();
        } catch (e) {
            showError(this.error, `Could not open ${path}: ${e.message}`);
            return;
        }
        const area = h("textarea", { id: "files-editor-text", spellcheck: "false" });
        area.value = text;
        const close = () => { this.editor.hidden = true; replaceChildren(this.editor); };
        const save = h("button", { type: "button", class: "btn btn-sm btn-primary", id: "files-editor-save" }, "Save");
        save.addEventListener("click", () => this.act("save", async () => {
            const res = await fetch(filesURL(this.id, "/content", path),
                { method: "PUT", body: area.value, credentials: "same-origin" });
            if (res.status !== 201) throw new Error(`the server answered ${res.status}`);
            close();
        }));
        replaceChildren(this.editor,
            h("div", { class: "editor-bar" }, h("strong", {}, path), h("div", { class: "spacer" }), save,
                h("button", { type: "button", class: "btn btn-sm btn-secondary", onclick: close }, "Cancel")),
            area);
        this.editor.hidden = false;
        area.focus();
    }
}
