// An instance's events (GET /api/v1/instances/<id>/events, server-sent): its state as the
// daemon changes it and its services' snapshots as the init pushes them, so the page shows a
// service change as it happens instead of at the next poll. EventSource reconnects by itself
// after a dropped connection; a refused one (e.g. 404) is retried with a growing delay.
export function subscribeInstanceEvents(id, signal, { onState, onServices }) {
    let source = null;
    let retry = null;
    let delay = 1000;
    const open = () => {
        if (signal.aborted) return;
        source = new EventSource(`/api/v1/instances/${encodeURIComponent(id)}/events`);
        source.onopen = () => { delay = 1000; };
        source.onmessage = (message) => {
            let event;
            try { event = JSON.parse(message.data); } catch { return; }
            if (event.type === "services" && onServices) onServices(event.services);
            else if (event.type === "state" && onState) onState(event.state, event.last_error);
        };
        source.onerror = () => {
            if (source.readyState !== EventSource.CLOSED) return;
            source.close();
            retry = setTimeout(open, delay);
            delay = Math.min(delay * 2, 15000);
        };
    };
    open();
    signal.addEventListener("abort", () => { clearTimeout(retry); if (source) source.close(); }, { once: true });
}
