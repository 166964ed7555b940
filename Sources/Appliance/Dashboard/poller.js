// Run an async function every `interval` ms (a number, or a function asked after each run)
// while a page is mounted and the tab is visible.
// Runs never overlap; poke() asks for an immediate run (after the current one, if any).

export class Poller {
    constructor(fn, interval, signal) {
        this.fn = fn;
        this.interval = interval;
        this.timer = null;
        this.running = false;
        this.again = false;
        this.stopped = false;
        this.onVisibility = () => { if (!document.hidden) this.poke(); };
        document.addEventListener("visibilitychange", this.onVisibility);
        if (signal) signal.addEventListener("abort", () => this.stop(), { once: true });
    }

    start() { this.poke(); return this; }

    poke() {
        if (this.stopped) return;
        if (this.running) { this.again = true; return; }
        this.schedule(0);
    }

    stop() {
        this.stopped = true;
        clearTimeout(this.timer);
        document.removeEventListener("visibilitychange", this.onVisibility);
    }

    schedule(delay) {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.run(), delay);
    }

    async run() {
        if (this.stopped || this.running) return;
        if (document.hidden) return;            // resumed by visibilitychange
        this.running = true;
        try {
            await this.fn();
        } catch (e) {
            console.warn("poll failed", e);
        } finally {
            this.running = false;
        }
        if (this.stopped) return;
        if (this.again) {
            this.again = false;
            this.schedule(0);
        } else {
            this.schedule(typeof this.interval === "function" ? this.interval() : this.interval);
        }
    }
}
