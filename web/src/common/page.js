// What the pages share: Hotline's HTTP API with the session token, HTML escaping, the
// status badges in the header.

// The API with the token `token()` gives: `request` answers the body as text (CSV, SVG),
// `api` parses JSON; a refusal throws an Error with the status and the server's message.
export function client(token) {
  async function request(method, path, body) {
    const headers = body === undefined ? {} : { 'Content-Type': 'application/json' };
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    if (!r.ok) {
      let msg = text || `${r.status}`;
      try {
        const d = JSON.parse(text);
        msg = d.error || d.message || msg;
      } catch { /* not JSON: the text itself */ }
      const e = new Error(`${method} ${path}: ${r.status} ${msg}`);
      e.status = r.status;
      throw e;
    }
    return text;
  }
  async function api(method, path, body) {
    const text = await request(method, path, body);
    try {
      return text ? JSON.parse(text) : null;
    } catch {
      return { error: text };
    }
  }
  return { request, api };
}

export function escapeHtml(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

export function badge(el, state, text) {
  el.dataset.state = state;
  el.textContent = text;
}
