// Passkeys in the browser: the server's JSON options (base64url strings) into the
// ArrayBuffers navigator.credentials wants, and the resulting credential back into JSON.

export function passkeysSupported() {
    return !!(window.PublicKeyCredential && navigator.credentials && window.isSecureContext);
}

export function toBytes(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
    const raw = atob(b64);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out.buffer;
}

export function fromBytes(buffer) {
    const bytes = new Uint8Array(buffer);
    let raw = "";
    for (const b of bytes) raw += String.fromCharCode(b);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeDescriptors(list) {
    return (list || []).map((d) => ({ ...d, id: toBytes(d.id) }));
}

/** navigator.credentials.create with the server's creation options → credential JSON. */
export async function createPasskey(publicKey, signal) {
    const options = {
        ...publicKey,
        challenge: toBytes(publicKey.challenge),
        user: { ...publicKey.user, id: toBytes(publicKey.user.id) },
        excludeCredentials: decodeDescriptors(publicKey.excludeCredentials),
    };
    const cred = await navigator.credentials.create({ publicKey: options, signal });
    return {
        id: cred.id,
        rawId: fromBytes(cred.rawId),
        type: cred.type,
        response: {
            clientDataJSON: fromBytes(cred.response.clientDataJSON),
            attestationObject: fromBytes(cred.response.attestationObject),
        },
    };
}

/** navigator.credentials.get with the server's request options → credential JSON. */
export async function getPasskey(publicKey, signal) {
    const options = {
        ...publicKey,
        challenge: toBytes(publicKey.challenge),
        allowCredentials: decodeDescriptors(publicKey.allowCredentials),
    };
    const cred = await navigator.credentials.get({ publicKey: options, mediation: "optional", signal });
    const r = cred.response;
    return {
        id: cred.id,
        rawId: fromBytes(cred.rawId),
        type: cred.type,
        response: {
            clientDataJSON: fromBytes(r.clientDataJSON),
            authenticatorData: fromBytes(r.authenticatorData),
            signature: fromBytes(r.signature),
            userHandle: r.userHandle ? fromBytes(r.userHandle) : null,
        },
    };
}

/** A browser refusal (the person cancelled, timed out) as a sentence. */
export function passkeyErrorMessage(e) {
    if (e && e.name === "NotAllowedError") return "The passkey request was cancelled or timed out.";
    if (e && e.name === "InvalidStateError") return "This authenticator already holds a passkey for your account.";
    if (e && e.name === "SecurityError") return "Passkeys need the appliance to be opened by its name over HTTPS (or localhost).";
    return (e && e.message) || String(e);
}
