// The agent desktop: a JsSIP softphone over SIP-over-WebSocket (RFC 7118) registered with
// the agent's own SIP account, the agent's ACD state, the call in hand with what the IVR
// learnt, the ticket form and the knowledge base, all against Hotline's HTTP API.
//
// Recovery: JsSIP reconnects the WebSocket by itself (with back-off) and re-registers; when
// registration comes back the page puts the agent back in the state they had chosen
// (available or paused), since a restarted server starts with nobody logged in. The session
// token is kept in sessionStorage, so a reload keeps the agent logged in.
import JsSIP from 'jssip';
import {
  answerOptions, attachAudio as playOn, badge as setBadge, client, escapeHtml, session as loginSession, userAgent,
} from '../common/page.js';

const $ = (id) => document.getElementById(id);
const store = window.sessionStorage;

const app = {
  token: null,
  me: null,
  ua: null,
  session: null, // the JsSIP call
  callId: null, // the caller's Call-ID (the ACD's view of our call)
  call: null, // what /api/calls/{id} said
  // What the agent asked to be: 'available', 'paused' (with reason) or 'offline'.
  wanted: JSON.parse(store.getItem('hotline.wanted') || '{"state":"offline"}'),
  acdState: 'offline',
  feed: null,
  held: false,
};
window.hotline = app; // for the tests and for debugging in the console

const { api } = client(() => app.token);
const badge = (id, state, text) => setBadge($(id), state, text);

const OFFICE = ['intake', 'dispatcher', 'supervisor'];
function showNumber(full, masked) {
  return app.me && OFFICE.includes(app.me.role) ? full : masked;
}

// ---- log in ------------------------------------------------------------------------------

async function start() {
  $('desk').hidden = false;
  $('who').textContent = `${app.me.display_name || app.me.username} (${app.me.role})`;
  await loadCategories();
  startFeed();
  try {
    const sp = await api('GET', '/api/softphone');
    startPhone(sp);
  } catch (e) {
    badge('reg', 'failed', `softphone: ${e.message}`);
  }
}

// ---- the softphone ------------------------------------------------------------------------

function startPhone(sp) {
  const ua = userAgent(JsSIP, sp);
  app.ua = ua;
  ua.on('connecting', () => badge('conn', 'down', 'connection: connecting'));
  ua.on('connected', () => badge('conn', 'up', 'connection: up'));
  ua.on('disconnected', () => {
    badge('conn', 'down', 'connection: down (reconnecting)');
    badge('reg', 'down', 'registration: none');
  });
  ua.on('registered', async () => {
    badge('reg', 'up', 'registration: registered');
    await restoreState();
  });
  ua.on('unregistered', () => badge('reg', 'down', 'registration: none'));
  ua.on('registrationFailed', (e) => badge('reg', 'failed', `registration failed: ${e.cause}`));
  ua.on('newRTCSession', (e) => {
    if (e.originator !== 'remote') return;
    if (app.session) {
      e.session.terminate({ status_code: 486 });
      return;
    }
    incoming(e.session, e.request);
  });
  ua.start();
}

// The ring: the Chinese ringback cadence (450 Hz, 1 s on, 4 s off) through Web Audio, so an
// agent looking at the ticket form hears the call coming.
const ringer = {
  ctx: null,
  timer: null,
  start() {
    try {
      this.ctx = this.ctx || new AudioContext();
    } catch {
      return;
    }
    const beep = () => {
      const osc = this.ctx.createOscillator();
      const gain = this.ctx.createGain();
      osc.frequency.value = 450;
      gain.gain.value = 0.15;
      osc.connect(gain).connect(this.ctx.destination);
      osc.start();
      osc.stop(this.ctx.currentTime + 1);
    };
    beep();
    this.timer = setInterval(beep, 5000);
  },
  stop() {
    clearInterval(this.timer);
    this.timer = null;
  },
};

function incoming(session, request) {
  ringer.start();
  app.session = session;
  app.held = false;
  const from = session.remote_identity.uri.user || '';
  $('call-panel').dataset.state = 'ringing';
  $('call-status').textContent = 'Ringing';
  $('caller').textContent = showNumber(from, maskNumber(from));
  $('answer').disabled = false;
  $('hangup').disabled = false;
  fillTicket({ caller_phone: from });
  findCall();
  session.on('peerconnection', (e) => attachAudio(e.peerconnection));
  session.on('accepted', () => {
    ringer.stop();
    $('call-panel').dataset.state = 'in-call';
    $('call-status').textContent = 'In call';
    for (const b of ['hold', 'mute', 'transfer']) $(b).disabled = false;
    $('answer').disabled = true;
    if (session.connection) attachAudio(session.connection);
  });
  const over = (e) => {
    ringer.stop();
    $('call-panel').dataset.state = 'idle';
    $('call-status').textContent = `Call ended${e && e.cause ? ` (${e.cause})` : ''}`;
    for (const b of ['answer', 'hangup', 'hold', 'mute', 'transfer']) $(b).disabled = true;
    app.session = null;
  };
  session.on('ended', over);
  session.on('failed', over);
}

const attachAudio = (pc) => playOn(pc, $('remote-audio'));

$('answer').addEventListener('click', () => {
  if (!app.session) return;
  app.session.answer(answerOptions());
});
$('hangup').addEventListener('click', () => app.session && app.session.terminate());
$('mute').addEventListener('click', () => {
  const s = app.session;
  if (!s) return;
  if (s.isMuted().audio) {
    s.unmute({ audio: true });
    $('mute').textContent = 'Mute';
  } else {
    s.mute({ audio: true });
    $('mute').textContent = 'Unmute';
  }
});
$('hold').addEventListener('click', async () => {
  if (!app.callId) return;
  const hold = !app.held;
  try {
    await api('POST', `/api/calls/${encodeURIComponent(app.callId)}/hold`, { hold });
    app.held = hold;
    $('hold').textContent = hold ? 'Resume' : 'Hold';
    $('call-status').textContent = hold ? 'On hold (the caller hears music)' : 'In call';
  } catch (e) {
    $('call-status').textContent = e.message;
  }
});
for (const k of '123456789*0#') {
  const b = document.createElement('button');
  b.textContent = k;
  b.addEventListener('click', () => app.session && app.session.sendDTMF(k, { transportType: 'RFC2833' }));
  $('dtmf').appendChild(b);
}
$('transfer').addEventListener('click', async () => {
  if (!app.callId) return;
  const kind = $('transfer-kind').value;
  const to = $('transfer-to').value.trim();
  try {
    await api('POST', `/api/calls/${encodeURIComponent(app.callId)}/transfer`, { [kind]: to });
    $('call-status').textContent = `Transferred to ${kind} ${to}`;
  } catch (e) {
    $('call-status').textContent = e.message;
  }
});

function maskNumber(n) {
  if (n.length <= 4) return n;
  return n.slice(0, 3) + '*'.repeat(Math.max(0, n.length - 7)) + n.slice(-4);
}

// The caller's Call-ID is the ACD's view of our call; with it, the call's details.
async function findCall(tries = 10) {
  for (let i = 0; i < tries && app.session; i++) {
    try {
      const snap = await api('GET', '/api/acd/snapshot');
      const me = snap.agents.find((a) => a.id === app.me.id);
      if (me && me.call_id) {
        app.callId = me.call_id;
        break;
      }
    } catch { /* the ACD may be busy: try again */ }
    await new Promise((r) => setTimeout(r, 300));
  }
  if (!app.callId) return;
  try {
    const c = await api('GET', `/api/calls/${encodeURIComponent(app.callId)}`);
    app.call = c;
    $('caller').textContent = showNumber(c.caller, c.caller_masked);
    $('queue').textContent = c.queue || '-';
    $('ivr-path').textContent = (c.ivr_path || []).join(' → ') || '-';
    const vars = Object.entries(c.ivr_vars || {}).map(([k, v]) => `${k}=${v}`).join(', ');
    $('ivr-vars').textContent = [c.ivr_keys, vars].filter(Boolean).join(' · ') || '-';
    const f = c.frequent || {};
    $('frequent').textContent = f.flagged
      ? `频繁来电：过去一小时 ${f.calls_last_hour} 次（超过 ${f.threshold} 次）/ Frequent caller: ${f.calls_last_hour} calls in the last hour`
        + (f.routed_to ? ` · 专用队列 / queue ${f.routed_to}` : '')
      : `${f.calls_last_hour ?? 0}`;
    $('frequent').classList.toggle('flag', Boolean(f.flagged));
    $('earlier').textContent = c.earlier_tickets.length
      ? c.earlier_tickets.map((t) => `${t.number} ${t.status} ${t.category}`).join('; ')
      : 'none';
    fillTicket({ caller_phone: c.caller, call_id: c.call_id, recording: c.recording });
    if ((c.ivr_path || []).length) suggestKb(c.ivr_path.join(' '));
  } catch (e) {
    $('earlier').textContent = e.message;
  }
}

// ---- ACD state ----------------------------------------------------------------------------

function want(w) {
  app.wanted = w;
  store.setItem('hotline.wanted', JSON.stringify(w));
}

async function applyState(w) {
  if (w.state === 'offline') {
    await api('POST', '/api/agents/me/logout').catch(() => {});
    return;
  }
  try {
    await api('POST', '/api/agents/me/login');
  } catch (e) {
    if (e.status !== 409) throw e; // already logged in
  }
  if (w.state === 'paused') await api('POST', '/api/agents/me/pause', { reason: w.reason });
  else await api('POST', '/api/agents/me/resume').catch((e) => { if (e.status !== 409) throw e; });
}

async function restoreState() {
  try {
    await applyState(app.wanted);
  } catch (e) {
    $('state-line').textContent = e.message;
  }
}

$('go-available').addEventListener('click', async () => {
  want({ state: 'available' });
  await restoreState();
});
$('go-pause').addEventListener('click', async () => {
  want({ state: 'paused', reason: $('pause-reason').value });
  await restoreState();
});
$('end-wrap').addEventListener('click', async () => {
  want({ state: 'available' });
  await restoreState();
});
$('go-offline').addEventListener('click', async () => {
  want({ state: 'offline' });
  await restoreState();
});

// The live feed: our own state and time in it.
function startFeed() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/api/acd/events?token=${encodeURIComponent(app.token)}`);
  app.feed = ws;
  ws.onmessage = (m) => {
    const snap = JSON.parse(m.data);
    const me = snap.agents.find((a) => a.id === app.me.id);
    const state = me ? me.state : 'offline';
    app.acdState = state;
    badge('acd', state, state + (me && me.reason ? ` (${me.reason})` : ''));
    $('state-line').textContent = me
      ? `${state} for ${me.secs_in_state} s · answered today ${me.answered_today}`
      : 'not logged in to any queue';
  };
  ws.onclose = () => setTimeout(startFeed, 1000);
}

// ---- the ticket form ----------------------------------------------------------------------

async function loadCategories() {
  try {
    const cats = await api('GET', '/api/categories');
    const list = Array.isArray(cats) ? cats : cats.categories || [];
    $('category').innerHTML = list
      .map((c) => `<option value="${escapeHtml(c.code)}">${escapeHtml(c.code)} ${escapeHtml(c.name || '')}</option>`)
      .join('');
  } catch (e) {
    $('ticket-result').textContent = `categories: ${e.message}`;
  }
}

function fillTicket(v) {
  const f = $('ticket-form');
  if (v.caller_phone !== undefined) f.caller_phone.value = v.caller_phone;
  if (v.call_id) {
    f.dataset.callId = v.call_id;
    $('call-link').textContent = v.call_id;
  }
  if (v.recording) {
    f.dataset.recording = v.recording;
    $('recording-link').textContent = v.recording;
  }
}

async function suggestUnit() {
  const f = $('ticket-form');
  const q = new URLSearchParams({ category: f.category.value, district: f.district.value, town: f.town.value });
  try {
    const s = await api('GET', `/api/dispatch-rules/suggest?${q}`);
    $('suggested-unit').textContent = s.unit_name || s.unit || JSON.stringify(s);
  } catch {
    $('suggested-unit').textContent = '-';
  }
}
for (const n of ['category', 'district', 'town']) {
  $('ticket-form').elements[n].addEventListener('change', suggestUnit);
}
$('ticket-form').description.addEventListener('change', (e) => suggestKb(e.target.value));

$('ticket-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const body = {
    channel: f.channel.value,
    request_type: f.request_type.value,
    category: f.category.value,
    district: f.district.value,
    town: f.town.value,
    address: f.address.value,
    description: f.description.value,
    caller_name: f.caller_name.value || null,
    caller_phone: f.caller_phone.value || null,
    confidential: f.confidential.checked,
    call_id: f.dataset.callId || null,
    recording: f.dataset.recording || null,
    ivr_path: app.call ? app.call.ivr_path || [] : [],
  };
  try {
    let t = await api('POST', '/api/tickets', body);
    if (f.answered_directly.checked) {
      t = await api('POST', `/api/tickets/${t.number}/actions`, {
        version: t.version,
        action: 'answer_directly',
        answer: f.answer.value || f.description.value,
      });
    }
    // The citizen follows the ticket with its number and access code: read both out.
    $('ticket-result').textContent =
      `工单 ${t.number} 已受理（${t.status}），查询码 ${t.access_code}，请告知来电人。` +
      ` / Ticket ${t.number} filed (${t.status}); access code ${t.access_code}: tell the caller.`;
    $('ticket-result').dataset.number = t.number;
    $('ticket-result').dataset.accessCode = t.access_code;
  } catch (e) {
    $('ticket-result').textContent = e.message;
  }
});

// ---- knowledge base -----------------------------------------------------------------------

function showResults(hits) {
  $('kb-results').innerHTML = '';
  for (const h of hits) {
    const li = document.createElement('li');
    li.innerHTML = `<b>${escapeHtml(h.title)}</b> ${h.snippet ? `<small>${safeSnippet(h.snippet)}</small>` : ''}`;
    li.addEventListener('click', () => openArticle(h.id));
    $('kb-results').appendChild(li);
  }
}

// Snippets come highlighted with <b> or <em>; everything else is escaped.
// The server's snippet is escaped text with <b> around matches: keep those tags (as <em>)
// and escape everything else again from its plain text, so only they can ever be markup.
const ENTITIES = { lt: '<', gt: '>', quot: '"', '#39': "'", amp: '&' };
function safeSnippet(s) {
  return s.split(/(<\/?(?:b|em)>)/).map((part) => {
    if (/^<(b|em)>$/.test(part)) return '<em>';
    if (/^<\/(b|em)>$/.test(part)) return '</em>';
    return escapeHtml(part.replace(/&(lt|gt|quot|#39|amp);/g, (_, e) => ENTITIES[e]));
  }).join('');
}

async function openArticle(id) {
  try {
    const a = await api('GET', `/api/kb/articles/${id}`);
    const art = a.article || a;
    $('kb-article').hidden = false;
    $('kb-article').innerHTML = `<h3>${escapeHtml(art.title)}</h3><p>${escapeHtml(art.body || '')}</p>`;
  } catch (e) {
    $('kb-article').hidden = false;
    $('kb-article').textContent = e.message;
  }
}

$('kb-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const q = $('kb-q').value.trim();
  if (!q) return;
  try {
    const r = await api('GET', `/api/kb/search?q=${encodeURIComponent(q)}`);
    showResults(r.hits || r.results || r);
  } catch (e) {
    $('kb-results').textContent = e.message;
  }
});

async function suggestKb(text) {
  if (!text) return;
  try {
    const r = await api('POST', '/api/kb/suggest', { text });
    showResults(r.hits || r.results || r);
  } catch { /* suggestions are a help, not a must */ }
}

loginSession(app, api, start);
