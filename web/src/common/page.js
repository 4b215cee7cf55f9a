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

// The login form and the session: the token lives in sessionStorage (a reload stays logged
// in). `started(me)` runs once the token is known good; a stale token is forgotten.
export function session(app, api, started) {
  const store = window.sessionStorage;
  app.token = store.getItem('hotline.token');
  const $ = (id) => document.getElementById(id);
  async function begin() {
    try {
      app.me = await api('GET', '/api/auth/me');
    } catch {
      store.removeItem('hotline.token');
      app.token = null;
      return;
    }
    $('login-view').hidden = true;
    await started(app.me);
  }
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    try {
      const s = await api('POST', '/api/auth/login', { username: f.get('username'), password: f.get('password') });
      app.token = s.token;
      store.setItem('hotline.token', s.token);
      await begin();
    } catch (e) {
      $('login-error').textContent = e.message;
    }
  });
  if (app.token) begin();
}

// A JsSIP user agent for the logged-in user's own SIP account (`GET /api/softphone`: the
// MD5 HA1, never the password), over SIP over WebSocket at /sip (or `?ws=`), reconnecting
// by itself (1-8 s back-off).
export function userAgent(JsSIP, sp) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const url = new URLSearchParams(location.search).get('ws') || `${scheme}://${location.host}/sip`;
  return new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(url)],
    uri: `sip:${sp.sip_username}@${location.hostname}`,
    authorization_user: sp.sip_username,
    realm: sp.realm,
    ha1: sp.ha1,
    register: true,
    register_expires: 120,
    session_timers: false,
    connection_recovery_min_interval: 1,
    connection_recovery_max_interval: 8,
  });
}

// What to answer a call with: the microphone, its voice processing off under ?rawaudio (the
// tests' tones must pass as sent).
export function answerOptions() {
  const raw = new URLSearchParams(location.search).has('rawaudio');
  const audio = raw ? { echoCancellation: false, noiseSuppression: false, autoGainControl: false } : true;
  return { mediaConstraints: { audio, video: false } };
}

// Plays what the peer connection receives on `audio`.
export function attachAudio(pc, audio) {
  const set = () => {
    const tracks = pc.getReceivers().map((r) => r.track).filter(Boolean);
    if (tracks.length) audio.srcObject = new MediaStream(tracks);
  };
  pc.addEventListener('track', set);
  set();
}
