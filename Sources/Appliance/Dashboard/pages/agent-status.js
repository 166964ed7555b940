// The agent's state on an instance page: when the `agent` service (OpenClaw's gateway) is
// failed or in backoff, a banner with its reason, which names the remedy (install a bundle,
// a Node.js ≥ 22, `openclaw doctor --fix` for an invalid config). Fed by the services panel.
import { h, setText } from "../dom.js";

export class AgentBanner {
    constructor() {
        this.text = h("span", { id: "agent-banner-text" });
        this.element = h("div", { class: "agent-banner", id: "agent-banner", role: "status", hidden: true },
            h("strong", {}, "The agent is not running. "), this.text);
    }

    update(services, running) {
        const agent = (services || []).find((s) => s.name === "agent");
        const down = running && agent && (agent.state === "failed" || agent.state === "backoff");
        this.element.hidden = !down;
        this.element.dataset.state = agent ? agent.state : "";
        if (down) setText(this.text, agent.reason || agent.error || agent.state);
    }
}

/// What a settings or provider change did to the running agents, for a save message.
export function agentOutcome(report) {
    if (typeof report === "string") return report === "restarted" ? " The agent was restarted to apply it."
        : report === "reloaded" ? " The agent applied it live." : report === "not running" ? " The agent picks it up at its next start." : "";
    const restarted = (report || []).filter((r) => r.agent === "restarted").map((r) => r.name);
    return restarted.length ? ` Restarted the agent of ${restarted.join(", ")}.` : "";
}
